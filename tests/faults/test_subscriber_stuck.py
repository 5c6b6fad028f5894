"""Fault: a subscriber that never returns (until the test lets it), caught by the dispatcher's watchdog."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from nemo_relay import ToolExecutionResult, scope, subscribers, tools

STALL = 0.2  # seconds; the default is 5
DISPATCHER_THREAD = "nemo-relay-subscriber-dispatcher"


def flush_forever() -> bool | None:
    """``subscribers.flush()`` with no timeout, on a helper thread; None if it has not returned in 10 s."""
    result: list[bool] = []
    helper = threading.Thread(target=lambda: result.append(subscribers.flush()), daemon=True)
    helper.start()
    helper.join(10)
    return result[0] if result else None


def emit_block(how: str) -> None:
    if how == "mark":
        scope.event("block")
        return

    async def call() -> object:  # a managed tool named "block": its start event takes the publication path
        return await tools.execute("block", {}, lambda args: ToolExecutionResult("done"))

    asyncio.run(call())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["mark", "tool"])
@pytest.mark.parametrize("raises_when_released", [False, True])
def test_a_subscriber_that_never_returns_is_quarantined(
    how: str,
    raises_when_released: bool,
    blocker: Any,
    dispatcher_settings: Callable[..., None],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Caller: emitting returns at once, and ``flush()`` without a timeout returns True once the watchdog
    has acted (about ``stall_timeout`` later) instead of never. Recorded: the stuck subscriber is reported
    once (``subscriber_quarantined`` on the operational log, naming it), counted in
    ``stats().quarantined`` and skipped while its call is stuck; the subscribers before and after it get
    the event in flight and every later one exactly once, in order (the one after it gets the event in
    flight from the fresh worker). When the stuck call finally returns (or raises), its abandoned worker
    lifts the quarantine, reports once how many events the subscriber missed (``subscriber_resumed``)
    and exits without delivering anything or reporting the late raise; the subscriber gets later events
    again."""
    dispatcher_settings(stall_timeout=STALL)
    before: list[str] = []
    after: list[str] = []
    worker: list[threading.Thread] = []

    def stuck(event: Any) -> None:
        if event.name == "block":
            worker.append(threading.current_thread())
        blocker(event)
        if raises_when_released:
            raise RuntimeError("returned too late")

    subscribers.register("before", lambda event: before.append(event.name))
    subscribers.register("stuck", stuck)
    subscribers.register("after", lambda event: after.append(event.name))
    initial = subscribers.stats()

    emit_block(how)
    blocker.wait_entered()
    for index in range(5):
        scope.event(f"e{index}")
    assert not blocker.returned.is_set()  # the caller got here while the subscriber was stuck

    assert flush_forever() is True
    expected = ["block"] * (2 if how == "tool" else 1) + [f"e{index}" for index in range(5)]
    assert before == expected
    assert after == expected
    assert blocker.seen == ["block"]  # quarantined on its first stuck call: skipped since
    stats = subscribers.stats()
    assert stats.quarantined == initial.quarantined + 1
    assert stats.queued == 0
    assert stats.delivered - initial.delivered == len(expected)
    assert stats.subscriber_errors == initial.subscriber_errors

    scope.event("later")
    assert subscribers.flush(timeout=10)
    assert after[-1] == "later"
    assert blocker.seen == ["block"]

    # The abandoned worker: let the stuck call return; it must notice it was replaced and just exit.
    (abandoned,) = worker
    blocker.release.set()
    abandoned.join(10)
    assert not abandoned.is_alive()
    scope.event("last")
    assert subscribers.flush(timeout=10)
    assert after == [*expected, "later", "last"]
    assert before == after
    assert blocker.seen == ["block", "last"]  # reinstated once its stuck call returned
    final = subscribers.stats()
    # The late raise of the stuck call is not reported; a raise of the reinstated subscriber is.
    assert final.subscriber_errors == initial.subscriber_errors + (1 if raises_when_released else 0)
    assert final.delivered - initial.delivered == len(expected) + 2
    assert final.quarantined == initial.quarantined + 1
    assert [t.name for t in threading.enumerate()].count(DISPATCHER_THREAD) == 1

    err = capfd.readouterr().err.splitlines()
    reports = [line for line in err if "subscriber_quarantined" in line]
    assert len(reports) == 1, reports
    assert "subscriber=stuck" in reports[0]
    assert "did not return within 0.2s" in reports[0]
    assert "NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT" in reports[0]
    resumed = [line for line in err if "subscriber_resumed" in line]
    assert len(resumed) == 1, resumed
    assert "subscriber=stuck" in resumed[0]
    # Skipped: the rest of the events it was stuck in, plus "later" (the tool's end event too).
    assert f"missed_events={len(expected)}" in resumed[0]


@pytest.mark.timeout(60)
def test_two_stuck_subscribers_are_each_quarantined(dispatcher_settings: Callable[..., None]) -> None:
    """Caller: unaffected. Recorded: each stuck subscriber is quarantined in turn (the second one stalls
    the fresh worker, which is replaced in turn); the healthy subscriber after them gets everything in order."""
    dispatcher_settings(stall_timeout=STALL)
    release = threading.Event()
    calls: list[str] = []
    got: list[str] = []

    def make_stuck(name: str) -> Callable[[Any], None]:
        def stuck(event: Any) -> None:
            calls.append(f"{name}:{event.name}")
            release.wait(30)

        return stuck

    subscribers.register("first", make_stuck("first"))
    subscribers.register("second", make_stuck("second"))
    subscribers.register("healthy", lambda event: got.append(event.name))
    initial = subscribers.stats().quarantined
    try:
        for index in range(3):
            scope.event(f"e{index}")
        assert flush_forever() is True
        assert got == ["e0", "e1", "e2"]
        assert calls == ["first:e0", "second:e0"]
        assert subscribers.stats().quarantined == initial + 2
    finally:
        release.set()


@pytest.mark.timeout(60)
def test_a_slow_call_that_returns_in_time_is_not_quarantined(
    blocker: Any, dispatcher_settings: Callable[..., None]
) -> None:
    """Caller: unaffected. Recorded: nothing; a call that returns before the stall timeout keeps its
    subscriber, and the watchdog never acts on a dispatcher that is merely busy or idle."""
    dispatcher_settings(stall_timeout=30)
    subscribers.register("slow", blocker)
    initial = subscribers.stats().quarantined
    scope.event("block")
    blocker.wait_entered()
    scope.event("after-block")
    blocker.release.set()
    assert subscribers.flush(timeout=10)
    assert blocker.seen == ["block", "after-block"]
    assert subscribers.stats().quarantined == initial


@pytest.mark.timeout(60)
def test_stuck_subscriber_at_exit_does_not_cost_the_others_their_events(
    run_python: Callable[..., Any], tmp_path: Any
) -> None:
    """Caller: the program exits normally (status 0) without calling flush. Recorded: the exit drain
    waits for the watchdog, not forever: the stuck subscriber is quarantined (one report) and the other
    subscriber still gets all 50 queued events, in order; nothing is reported as undelivered. The stall
    timeout comes from ``NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT``."""
    out = tmp_path / "delivered.txt"
    result = run_python(
        """
        import sys, threading
        from nemo_relay import scope, subscribers
        out = open(sys.argv[1], "a")
        forever = threading.Event()
        subscribers.register("stuck", lambda event: forever.wait())
        subscribers.register("writer", lambda event: (out.write(event.name + "\\n"), out.flush()))
        for index in range(50):
            scope.event(f"m{index}")
        print("exiting", flush=True)
        """,
        str(out),
        env={"NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT": str(STALL)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "exiting\n"
    assert out.read_text().splitlines() == [f"m{index}" for index in range(50)]
    assert result.stderr.count("subscriber_quarantined") == 1, result.stderr
    assert "subscriber=stuck" in result.stderr
    assert "not delivered" not in result.stderr


@pytest.mark.timeout(60)
def test_when_no_thread_can_be_started_the_watchdog_delivers_the_rest_itself(run_python: Callable[..., Any]) -> None:
    """Caller: unaffected. Recorded: as for any stuck subscriber; but when a fresh worker thread cannot be
    started (Python 3.12+ refuses new threads in atexit hooks, simulated here), the watchdog thread
    delivers the rest of the queue itself."""
    result = run_python(
        """
        import threading
        from nemo_relay import scope, subscribers
        subscribers.configure(stall_timeout=0.2)
        entered, forever = threading.Event(), threading.Event()
        got = []
        def stuck(event):
            if event.name == "block":
                entered.set()
                forever.wait()
        subscribers.register("stuck", stuck)
        subscribers.register("healthy", lambda event: got.append(event.name))
        scope.event("block")
        assert entered.wait(10)
        def refuse(self):
            raise RuntimeError("can't create new thread at interpreter shutdown")
        threading.Thread.start = refuse
        for index in range(3):
            scope.event(f"e{index}")
        print(subscribers.flush(timeout=10), got, subscribers.stats().quarantined)
        print(threading.current_thread() is not threading.main_thread() or
              [t.name for t in threading.enumerate() if t.name.startswith("nemo-relay-subscriber")])
        """
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == "True ['block', 'e0', 'e1', 'e2'] 1"
    # The old worker, renamed, and the watchdog (now delivering); no new dispatcher thread.
    assert sorted(eval(second)) == ["nemo-relay-subscriber-dispatcher-abandoned", "nemo-relay-subscriber-watchdog"]
