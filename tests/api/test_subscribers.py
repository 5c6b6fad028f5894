"""Global subscribers: registration, FIFO delivery off the caller's thread, error isolation, flush barriers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import nemo_relay
from nemo_relay import MarkEvent, ScopeEvent, ScopeType, errors, scope, scope_local, subscribers
from nemo_relay._event_sanitizer_context import callback_active

FLUSH_ON_LOOP = "subscribers.flush() cannot block a running asyncio event loop; use 'await subscribers.flush_async()'"
DISPATCHER_THREAD = "nemo-relay-subscriber-dispatcher"
BRIDGE_THREAD = "nemo-relay-flush"
SRC = str(Path(nemo_relay.__file__).resolve().parents[1])


class Gate:
    """A subscriber that blocks the dispatcher on marks whose name is in ``names`` until that name is released."""

    def __init__(self, *names: str) -> None:
        self.entered = {name: threading.Event() for name in names}
        self.released = {name: threading.Event() for name in names}

    def __call__(self, event: ScopeEvent | MarkEvent) -> None:
        if event.name in self.entered:
            self.entered[event.name].set()
            self.released[event.name].wait(60)  # safety net only: tests release explicitly

    def wait_entered(self, name: str = "block") -> None:
        assert self.entered[name].wait(10), f"dispatcher never reached {name!r}"

    def release(self, name: str | None = None) -> None:
        for key, flag in self.released.items():
            if name is None or key == name:
                flag.set()


@pytest.fixture
def gate(events) -> Iterator[Gate]:
    """A blocking subscriber registered after the ``events`` recorder; always released at teardown."""
    blocker = Gate("block", "block2")
    subscribers.register("test-gate", blocker)
    try:
        yield blocker
    finally:
        blocker.release()
        assert subscribers.flush(timeout=10)


def marks(recorder) -> list[str]:
    return [name for kind, name in recorder.names() if kind == "mark"]


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = SRC + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def bridge_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == BRIDGE_THREAD]


# --- registration -------------------------------------------------------------------------------------


def test_duplicate_name_raises_already_exists():
    subscribers.register("dup", lambda event: None)
    with pytest.raises(RuntimeError) as info:
        subscribers.register("dup", lambda event: None)
    assert str(info.value) == "already exists: dup subscriber already exists"
    assert isinstance(info.value, errors.AlreadyExistsError)
    assert info.value.error_type == "already_exists"


def test_deregister_returns_true_once_then_false():
    subscribers.register("once", lambda event: None)
    assert subscribers.deregister("once") is True
    assert subscribers.deregister("once") is False
    assert subscribers.deregister("never-registered") is False


def test_name_can_be_reused_after_deregister(events):
    first: list[str] = []
    second: list[str] = []
    subscribers.register("reused", lambda event: first.append(event.name))
    scope.event("one")
    assert subscribers.deregister("reused")
    subscribers.register("reused", lambda event: second.append(event.name))
    scope.event("two")
    assert subscribers.flush(timeout=10)
    assert first == ["one"]
    assert second == ["two"]


@pytest.mark.parametrize("name", [1, None, b"bytes", ("tuple",)])
def test_non_str_name_raises_type_error(name):
    with pytest.raises(TypeError, match="str"):
        subscribers.register(name, lambda event: None)


@pytest.mark.parametrize("callback", [5, "not callable", None, object()])
def test_non_callable_callback_raises_type_error_and_registers_nothing(callback):
    with pytest.raises(TypeError, match="callable"):
        subscribers.register("not-callable", callback)
    assert subscribers.deregister("not-callable") is False
    subscribers.register("not-callable", lambda event: None)  # the name is still free


def test_scope_local_subscriber_must_be_callable_too():
    with scope.scope("owner", ScopeType.Agent) as owner:
        with pytest.raises(TypeError, match="callable"):
            scope_local.register_subscriber(owner, "local", 42)
        assert scope_local.deregister_subscriber(owner, "local") is False


def test_callable_objects_are_accepted(events):
    class Counter:
        def __init__(self) -> None:
            self.seen = 0

        def __call__(self, event) -> None:
            self.seen += 1

    counter = Counter()
    subscribers.register("callable-object", counter)
    scope.event("hello")
    assert subscribers.flush(timeout=10)
    assert counter.seen == 1


def test_deregistered_subscriber_gets_no_later_events(events):
    got: list[str] = []
    subscribers.register("temp", lambda event: got.append(event.name))
    scope.event("before")
    assert subscribers.flush(timeout=10)
    subscribers.deregister("temp")
    scope.event("after")
    assert marks(events) == ["before", "after"]
    assert got == ["before"]


# --- delivery -----------------------------------------------------------------------------------------


def test_events_are_scope_or_mark_events(events):
    with scope.scope("outer", ScopeType.Agent):
        scope.event("inside")
    assert events.names() == [("start", "outer"), ("mark", "inside"), ("end", "outer")]
    assert all(isinstance(event, ScopeEvent | MarkEvent) for event in events)
    assert all(isinstance(event.uuid, str) and isinstance(event.kind, str) for event in events)


def test_delivery_is_fifo_across_many_events(events):
    for i in range(2000):
        scope.event(f"m{i}")
    assert marks(events) == [f"m{i}" for i in range(2000)]


@pytest.mark.timeout(60)
def test_per_thread_order_is_preserved_with_concurrent_emitters(events):
    threads_count, per_thread = 8, 300
    start = threading.Barrier(threads_count)

    def emit(tid: int) -> None:
        start.wait()
        for n in range(per_thread):
            scope.event("t", data={"t": tid, "n": n})

    threads = [threading.Thread(target=emit, args=(tid,)) for tid in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    events.flush()
    assert len(events) == threads_count * per_thread
    for tid in range(threads_count):
        assert [e.data["n"] for e in events if e.data["t"] == tid] == list(range(per_thread))


def test_each_subscriber_sees_events_in_emission_order(events):
    second: list[str] = []
    subscribers.register("second", lambda event: second.append(event.name))
    for i in range(300):
        scope.event(f"e{i}")
    assert marks(events) == second == [f"e{i}" for i in range(300)]


def test_subscriber_runs_on_daemon_dispatcher_thread(events):
    seen: list[tuple[str, bool, int]] = []

    def where(event) -> None:
        thread = threading.current_thread()
        seen.append((thread.name, thread.daemon, threading.get_ident()))

    subscribers.register("where", where)
    scope.event("x")
    scope.event("y")
    assert subscribers.flush(timeout=10)
    assert [(name, daemon) for name, daemon, _ in seen] == [(DISPATCHER_THREAD, True)] * 2
    assert seen[0][2] == seen[1][2] != threading.get_ident()


def test_subscriber_sees_callback_active_but_emitter_does_not(events):
    inside: list[bool] = []
    subscribers.register("probe", lambda event: inside.append(callback_active()))
    scope.event("x")
    assert subscribers.flush(timeout=10)
    assert inside == [True]
    assert callback_active() is False


# --- subscriber errors --------------------------------------------------------------------------------


def test_raising_subscriber_is_reported_and_others_get_every_event(events, capsys):
    good: list[str] = []

    def bad(event) -> None:
        raise ValueError(f"boom {event.name}")

    subscribers.register("bad", bad)
    subscribers.register("good", lambda event: good.append(event.name))
    before = subscribers.stats().subscriber_errors
    with scope.scope("s", ScopeType.Function):
        scope.event("m")
    assert subscribers.flush(timeout=10)
    assert good == ["s", "m", "s"]
    assert events.names() == [("start", "s"), ("mark", "m"), ("end", "s")]
    err = capsys.readouterr().err
    assert "Event subscriber error: ValueError: boom s" in err
    assert "Event subscriber error: ValueError: boom m" in err
    assert subscribers.stats().subscriber_errors - before == 3


class Quit(SystemExit):
    pass


class Interrupt(KeyboardInterrupt):
    pass


class Fatal(BaseException):
    pass


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("exc", "type_name"),
    [(Quit("bye"), "Quit"), (Interrupt("stop"), "Interrupt"), (SystemExit(3), "SystemExit"), (Fatal(), "Fatal")],
)
def test_base_exception_in_subscriber_does_not_kill_dispatcher(events, capsys, exc, type_name):
    idents: list[int] = []

    def explode(event) -> None:
        idents.append(threading.get_ident())
        if event.name == "explode":
            raise exc

    subscribers.register("explode", explode)
    before = subscribers.stats().subscriber_errors
    scope.event("explode")
    scope.event("after")
    assert subscribers.flush(timeout=10), "dispatcher died or stalled after a BaseException"
    scope.event("later")
    assert marks(events) == ["explode", "after", "later"]
    assert len(set(idents)) == 1
    assert f"Event subscriber error: {type_name}" in capsys.readouterr().err
    assert subscribers.stats().subscriber_errors - before == 1


def test_stats_subscriber_errors_counts_each_failed_call(events):
    def bad(event) -> None:
        raise RuntimeError("nope")

    subscribers.register("bad-a", bad)
    subscribers.register("bad-b", bad)
    before = subscribers.stats().subscriber_errors
    for i in range(5):
        scope.event(f"e{i}")
    assert subscribers.flush(timeout=10)
    assert subscribers.stats().subscriber_errors - before == 10
    assert len(events) == 5


# --- a blocked subscriber -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_emission_does_not_wait_for_a_blocked_subscriber(events, gate):
    scope.event("block")
    gate.wait_entered()
    returned = threading.Event()

    def emit() -> None:
        scope.event("after")
        with scope.scope("also", ScopeType.Tool):
            pass
        returned.set()

    worker = threading.Thread(target=emit)
    worker.start()
    worker.join(10)
    assert returned.is_set(), "emission waited for the blocked subscriber"
    # The subscriber is still blocked, so nothing emitted afterwards can have been delivered.
    assert [e.name for e in events] == ["block"]
    assert subscribers.flush(timeout=0.2) is False
    gate.release()
    assert subscribers.flush(timeout=10) is True
    assert events.names() == [("mark", "block"), ("mark", "after"), ("start", "also"), ("end", "also")]


@pytest.mark.timeout(30)
def test_flush_timeout_reports_false_only_while_blocked(events, gate):
    scope.event("block")
    gate.wait_entered()
    assert subscribers.flush(timeout=0) is False
    assert subscribers.flush(timeout=0.1) is False
    gate.release()
    assert subscribers.flush(timeout=10) is True


def test_flush_with_nothing_queued_returns_true():
    assert subscribers.flush() is True
    assert subscribers.flush(timeout=5) is True


@pytest.mark.timeout(30)
def test_flush_zero_timeout_on_idle_dispatcher_is_true(events):
    scope.event("warm-up")  # make sure the dispatcher thread exists
    assert subscribers.flush(timeout=10)
    # Nothing is pending, so there is nothing whose delivery the timeout could cut short.
    assert subscribers.flush(timeout=0) is True


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)])
def test_flush_rejects_bad_timeouts(timeout, error):
    with pytest.raises(error, match="timeout"):
        subscribers.flush(timeout=timeout)


@pytest.mark.timeout(60)
def test_flush_is_a_barrier_for_every_thread(events):
    def emit(tid: int) -> None:
        for n in range(250):
            scope.event("t", data={"t": tid, "n": n})

    threads = [threading.Thread(target=emit, args=(tid,)) for tid in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for i in range(1000):
        scope.event("main", data={"t": -1, "n": i})
    assert subscribers.flush() is True
    # Read the raw list: no further flush between the barrier and the check.
    assert len(events) == 2000


@pytest.mark.timeout(30)
def test_flush_inside_a_subscriber_is_a_no_op(events):
    results: list[object] = []

    def flusher(event) -> None:
        if event.name == "flush-here":
            results.append(subscribers.flush(timeout=5))
            results.append(subscribers.flush())
            results.append(asyncio.run(subscribers.flush_async(timeout=5)))

    scope.event("warm-up")  # the dispatcher is running before the flusher subscribes
    assert subscribers.flush(timeout=10)
    subscribers.register("flusher", flusher)
    scope.event("flush-here")
    scope.event("queued-behind")
    assert subscribers.flush(timeout=20)
    assert results == [True, True, True]
    assert marks(events) == ["warm-up", "flush-here", "queued-behind"]


async def test_flush_on_a_running_loop_raises_with_hint():
    with pytest.raises(RuntimeError) as info:
        subscribers.flush()
    assert str(info.value) == FLUSH_ON_LOOP
    assert "await subscribers.flush_async()" in str(info.value)
    with pytest.raises(RuntimeError, match="flush_async"):
        subscribers.flush(timeout=1)


# --- flush_async --------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_flush_async_is_a_barrier(events):
    for i in range(500):
        scope.event(f"a{i}")
    assert await subscribers.flush_async() is True
    assert [e.name for e in events] == [f"a{i}" for i in range(500)]


@pytest.mark.timeout(30)
async def test_flush_async_runs_on_the_bridge_thread(events, monkeypatch):
    real = subscribers._native_flush
    threads: list[str] = []

    def spy() -> bool:
        threads.append(threading.current_thread().name)
        return real()

    monkeypatch.setattr(subscribers, "_native_flush", spy)
    assert await subscribers.flush_async() is True
    assert threads == [BRIDGE_THREAD]
    assert all(t.daemon for t in bridge_threads())


@pytest.mark.timeout(60)
async def test_hundred_concurrent_flush_async_share_one_bridge_thread(events):
    for i in range(200):
        scope.event(f"c{i}")
    results = await asyncio.wait_for(asyncio.gather(*(subscribers.flush_async() for _ in range(100))), 30)
    assert results == [True] * 100
    assert len(bridge_threads()) == 1
    assert len(events) == 200


@pytest.mark.timeout(60)
def test_hundred_concurrent_flush_async_in_a_fresh_process():
    code = """
import asyncio, threading
from nemo_relay import scope, subscribers
got = []
subscribers.register("rec", lambda event: got.append(event.name))
async def main():
    for i in range(50):
        scope.event(f"e{i}")
    results = await asyncio.gather(*(subscribers.flush_async() for _ in range(100)))
    assert results == [True] * 100, results
    assert len(got) == 50, len(got)
asyncio.run(main())
print(sum(1 for t in threading.enumerate() if t.name == "nemo-relay-flush"))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


@pytest.mark.timeout(30)
async def test_flush_async_does_not_use_the_default_executor(events):
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-default-executor")
    loop.set_default_executor(executor)
    busy = threading.Event()
    unblock = threading.Event()

    def hog() -> None:
        busy.set()
        unblock.wait(30)

    hogging = loop.run_in_executor(None, hog)
    try:
        for _ in range(1000):  # let the only default worker pick the hog up
            if busy.is_set():
                break
            await asyncio.sleep(0.01)
        assert busy.is_set()
        scope.event("x")
        assert await asyncio.wait_for(subscribers.flush_async(), 10) is True
        assert not hogging.done()  # the only default worker was busy the whole time
        assert [e.name for e in events] == ["x"]
    finally:
        unblock.set()
        await hogging
        executor.shutdown(wait=True)


@pytest.mark.timeout(30)
async def test_flush_async_timeout_returns_false_while_blocked(events, gate):
    scope.event("block")
    await asyncio.to_thread(gate.wait_entered)
    assert await subscribers.flush_async(timeout=0.2) is False
    gate.release()
    assert await subscribers.flush_async(timeout=10) is True
    assert [e.name for e in events] == ["block"]


@pytest.mark.timeout(30)
async def test_cancelling_flush_async_is_safe(events, gate):
    scope.event("block")
    await asyncio.to_thread(gate.wait_entered)
    task = asyncio.ensure_future(subscribers.flush_async())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    scope.event("after")
    gate.release()
    assert await asyncio.wait_for(subscribers.flush_async(), 10) is True
    assert [e.name for e in events] == ["block", "after"]


@pytest.mark.timeout(30)
async def test_flush_async_waits_for_events_queued_while_another_flush_runs(events, gate, monkeypatch):
    real = subscribers._native_flush
    flushing = threading.Event()

    def spy() -> bool:
        flushing.set()
        return real()

    monkeypatch.setattr(subscribers, "_native_flush", spy)
    scope.event("block")
    await asyncio.to_thread(gate.wait_entered)
    first = asyncio.ensure_future(subscribers.flush_async())
    assert await asyncio.to_thread(flushing.wait, 10)  # the bridge is now busy with the first flush
    scope.event("block2")
    second = asyncio.ensure_future(subscribers.flush_async())
    gate.release("block")
    await asyncio.to_thread(gate.wait_entered, "block2")
    # "block2" was queued before the second flush_async, so it cannot finish while block2 is undelivered.
    done, _ = await asyncio.wait({second}, timeout=0.3)
    assert not done
    gate.release("block2")
    assert await asyncio.wait_for(asyncio.gather(first, second), 10) == [True, True]
    assert [e.name for e in events] == ["block", "block2"]


@pytest.mark.timeout(30)
async def test_flush_async_honours_a_monkeypatched_native_flush(monkeypatch):
    calls: list[str] = []

    def fake_flush() -> bool:
        calls.append(threading.current_thread().name)
        return True

    monkeypatch.setattr(subscribers, "_native_flush", fake_flush)
    assert await asyncio.wait_for(subscribers.flush_async(), 10) is True
    assert calls == [BRIDGE_THREAD]


@pytest.mark.timeout(30)
async def test_flush_async_propagates_a_failing_flush_and_recovers(monkeypatch):
    def broken() -> bool:
        raise RuntimeError("flush exploded")

    monkeypatch.setattr(subscribers, "_native_flush", broken)
    with pytest.raises(RuntimeError, match="flush exploded"):
        await asyncio.wait_for(subscribers.flush_async(), 10)
    monkeypatch.undo()
    assert await asyncio.wait_for(subscribers.flush_async(), 10) is True


@pytest.mark.parametrize(("timeout", "error"), [(-0.5, ValueError), ("soon", TypeError)])
async def test_flush_async_rejects_bad_timeouts(timeout, error):
    with pytest.raises(error, match="timeout"):
        await subscribers.flush_async(timeout=timeout)


@pytest.mark.timeout(60)
def test_cancelled_flush_async_does_not_block_process_exit():
    code = """
import asyncio, threading
from nemo_relay import scope, subscribers
release = threading.Event()
subscribers.register("stuck", lambda event: release.wait())
async def main():
    scope.event("stuck")
    task = asyncio.ensure_future(subscribers.flush_async())
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("cancelled")
asyncio.run(main())
"""
    result = run_python(code, env={"NEMO_RELAY_EXIT_FLUSH_TIMEOUT": "0.2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cancelled"


# --- snapshots and nested emission --------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_deregistered_subscriber_still_gets_events_already_queued(gate):
    got: list[str] = []
    subscribers.register("late-leaver", lambda event: got.append(event.name))
    scope.event("block")
    gate.wait_entered()
    scope.event("queued-1")
    scope.event("queued-2")
    assert subscribers.deregister("late-leaver") is True
    scope.event("after-deregister")
    gate.release()
    assert subscribers.flush(timeout=10)
    assert got == ["block", "queued-1", "queued-2"]


@pytest.mark.timeout(30)
def test_subscriber_registered_after_emission_does_not_get_it(events, gate):
    got: list[str] = []
    scope.event("block")
    gate.wait_entered()
    scope.event("emitted-before-register")
    subscribers.register("newcomer", lambda event: got.append(event.name))
    scope.event("emitted-after-register")
    gate.release()
    assert subscribers.flush(timeout=10)
    assert got == ["emitted-after-register"]
    assert marks(events) == ["block", "emitted-before-register", "emitted-after-register"]


@pytest.mark.timeout(30)
def test_emission_from_a_subscriber_goes_to_the_tail(events):
    go = threading.Event()

    def chain(event) -> None:
        if event.name == "outer":
            assert go.wait(10)
            scope.event("from-sub")

    subscribers.register("chain", chain)
    scope.event("outer")
    scope.event("after")
    go.set()
    assert marks(events) == ["outer", "after", "from-sub"]


@pytest.mark.timeout(30)
def test_emission_from_a_subscriber_is_parented_to_the_emission_time_scope(events):
    def chain(event) -> None:
        if event.name == "outer":
            scope.event("from-sub")

    subscribers.register("chain", chain)
    with scope.scope("agent", ScopeType.Agent) as agent:
        scope.event("outer")
    names = events.names()
    assert names[-1] == ("mark", "from-sub")
    assert events[-1].parent_uuid == agent.uuid
