"""The dispatcher: bounded queue with drop-newest accounting, stats, exit drain, flush bridge, fork safety."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import nemo_relay
from nemo_relay import ScopeType, scope, subscribers
from nemo_relay._core import dispatch

SRC = str(Path(nemo_relay.__file__).resolve().parents[1])
DISPATCHER_THREAD = "nemo-relay-subscriber-dispatcher"


class Gate:
    """A subscriber that blocks the dispatcher on the mark named ``block`` until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, event) -> None:
        if event.name == "block":
            self.entered.set()
            self.released.wait(60)  # safety net only: tests release explicitly

    def hold(self) -> None:
        """Emit ``block`` and wait until the dispatcher is stuck in it."""
        scope.event("block")
        assert self.entered.wait(10), "dispatcher never reached the blocking subscriber"


@pytest.fixture
def gate(events) -> Iterator[Gate]:
    blocker = Gate()
    subscribers.register("test-gate", blocker)
    try:
        yield blocker
    finally:
        blocker.released.set()
        assert subscribers.flush(timeout=10)


@pytest.fixture
def restore_config() -> Iterator[None]:
    capacity, exit_timeout, stall = dispatch.stats().capacity, dispatch._exit_timeout, dispatch._stall_timeout
    try:
        yield
    finally:
        subscribers.configure(queue_capacity=capacity, exit_flush_timeout=exit_timeout, stall_timeout=stall)


def run_python(code: str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEMO_RELAY_")}
    full_env["PYTHONPATH"] = SRC + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=20,  # guard against a hang, not a measurement
        check=False,
    )


def mark_names(recorder) -> list[str]:
    return [name for kind, name in recorder.names() if kind == "mark"]


# --- bounded queue ------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("capacity", "extra"), [(1, 1), (5, 3), (50, 20)])
def test_full_queue_drops_exactly_the_newest_events(events, gate, restore_config, capacity, extra):
    gate.hold()  # "block" is being delivered, so it no longer occupies the queue
    subscribers.configure(queue_capacity=capacity)
    before = subscribers.stats()
    for i in range(capacity):
        scope.event(f"keep-{i}")
    for i in range(extra):
        scope.event(f"drop-{i}")
    during = subscribers.stats()
    assert during.queued == capacity
    assert during.capacity == capacity
    assert during.dropped - before.dropped == extra
    assert during.published - before.published == capacity
    gate.released.set()
    assert mark_names(events) == ["block"] + [f"keep-{i}" for i in range(capacity)]
    # Once drained, new events flow again and nothing more is dropped.
    scope.event("fresh")
    assert mark_names(events)[-1] == "fresh"
    after = subscribers.stats()
    assert after.dropped - before.dropped == extra
    assert after.queued == 0


@pytest.mark.timeout(60)
def test_full_queue_never_exceeds_capacity_with_concurrent_emitters(events, gate, restore_config):
    gate.hold()
    subscribers.configure(queue_capacity=100)
    before = subscribers.stats()
    total_threads, per_thread = 8, 500
    start = threading.Barrier(total_threads)

    def emit(tid: int) -> None:
        start.wait()
        for n in range(per_thread):
            scope.event("t", data={"t": tid, "n": n})

    threads = [threading.Thread(target=emit, args=(tid,)) for tid in range(total_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    during = subscribers.stats()
    accepted = during.published - before.published
    dropped = during.dropped - before.dropped
    assert during.queued <= 100
    assert accepted == during.queued
    assert accepted + dropped == total_threads * per_thread
    gate.released.set()
    events.flush()
    delivered = [e for e in events if e.name == "t"]
    assert len(delivered) == accepted
    for tid in range(total_threads):  # what was kept is, per thread, a prefix of what was emitted
        seq = [e.data["n"] for e in delivered if e.data["t"] == tid]
        assert seq == list(range(len(seq)))


@pytest.mark.timeout(30)
def test_overflow_is_reported_once_with_capacity_and_how_to_raise_it():
    result = run_python(
        """
        import threading
        from nemo_relay import scope, subscribers
        entered, release = threading.Event(), threading.Event()
        def block(event):
            if event.name == "block":
                entered.set()
                release.wait()
        subscribers.register("block", block)
        subscribers.configure(queue_capacity=3)
        scope.event("block")
        assert entered.wait(10)
        for i in range(10):
            scope.event(f"e{i}")
        print(subscribers.stats().dropped)
        release.set()
        assert subscribers.flush(timeout=10)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"
    reports = [line for line in result.stderr.splitlines() if "queue full" in line]
    assert len(reports) == 1, result.stderr  # one report per burst, not one line per dropped event
    assert "capacity 3" in reports[0]
    assert "NEMO_RELAY_QUEUE_CAPACITY" in reports[0]
    assert "configure(queue_capacity=" in reports[0]


@pytest.mark.timeout(30)
def test_lowering_capacity_below_the_backlog_keeps_queued_events(events, gate, restore_config):
    gate.hold()
    for i in range(5):
        scope.event(f"old-{i}")
    before = subscribers.stats()
    subscribers.configure(queue_capacity=2)
    scope.event("refused")
    assert subscribers.stats().dropped - before.dropped == 1
    gate.released.set()
    assert mark_names(events) == ["block"] + [f"old-{i}" for i in range(5)]


# --- configuration validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (0, ValueError, "got 0"),
        (-1, ValueError, "got -1"),
        ("x", TypeError, "got str"),
        (True, TypeError, "got bool"),
        (1.5, TypeError, "got float"),
    ],
)
def test_queue_capacity_validation(restore_config, value, error, text):
    capacity = subscribers.stats().capacity
    with pytest.raises(error) as info:
        subscribers.configure(queue_capacity=value)
    assert "queue_capacity must be a positive int" in str(info.value)
    assert text in str(info.value)
    assert subscribers.stats().capacity == capacity


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (float("nan"), ValueError), ("10", TypeError), (True, TypeError)]
)
def test_exit_flush_timeout_validation(restore_config, value, error):
    previous = dispatch._exit_timeout
    with pytest.raises(error, match="exit_flush_timeout"):
        subscribers.configure(exit_flush_timeout=value)
    assert dispatch._exit_timeout == previous


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (float("nan"), ValueError), ("5", TypeError), (False, TypeError)]
)
def test_stall_timeout_validation(restore_config, value, error):
    previous = dispatch._stall_timeout
    with pytest.raises(error, match="stall_timeout"):
        subscribers.configure(stall_timeout=value)
    assert dispatch._stall_timeout == previous


def test_stall_timeout_default_and_values(restore_config):
    assert dispatch.DEFAULT_STALL_TIMEOUT == 5.0
    assert dispatch.DEFAULT_STALL_TIMEOUT < dispatch.DEFAULT_EXIT_TIMEOUT  # quarantined before the exit gives up
    subscribers.configure(stall_timeout=0)  # off
    assert dispatch._stall_timeout == 0.0
    subscribers.configure(stall_timeout=float("inf"))  # also off
    subscribers.configure(stall_timeout=2)
    assert dispatch._stall_timeout == 2.0
    subscribers.configure(queue_capacity=9)
    assert dispatch._stall_timeout == 2.0


def test_quarantine_changes_nothing_once_the_call_has_returned(events, restore_config):
    # The watchdog decided on a call that has returned meanwhile: it must leave the worker alone.
    scope.event("start-the-worker")
    assert subscribers.flush(timeout=10)
    owner, taken = dispatch._owner, dispatch._taken
    assert owner is not None
    entry = dispatch.registry.Entry("not-being-called", 0, lambda event: None)
    before = subscribers.stats()
    assert dispatch._quarantine(owner, taken, entry, 1.0) is False
    assert dispatch._owner is owner
    assert dispatch._quarantine(threading.current_thread(), taken, entry, 1.0) is False  # not the worker
    assert dispatch._owner is owner
    assert subscribers.stats().quarantined == before.quarantined
    scope.event("still-delivering")
    assert mark_names(events)[-1] == "still-delivering"


def test_configure_accepts_valid_values(restore_config):
    subscribers.configure(queue_capacity=7, exit_flush_timeout=0)
    assert subscribers.stats().capacity == 7
    assert dispatch._exit_timeout == 0.0
    subscribers.configure()  # nothing given: nothing changes
    assert subscribers.stats().capacity == 7
    subscribers.configure(exit_flush_timeout=2)
    assert subscribers.stats().capacity == 7
    assert dispatch._exit_timeout == 2.0


def test_configure_with_one_invalid_value_changes_nothing(restore_config):
    capacity, exit_timeout = subscribers.stats().capacity, dispatch._exit_timeout
    with pytest.raises(ValueError, match="exit_flush_timeout"):
        subscribers.configure(queue_capacity=capacity + 1, exit_flush_timeout=-1)
    assert subscribers.stats().capacity == capacity
    assert dispatch._exit_timeout == exit_timeout


def test_configure_takes_keyword_arguments_only():
    with pytest.raises(TypeError):
        subscribers.configure(10)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError), (None, TypeError), (False, TypeError)]
)
def test_validate_capacity_names_the_setting(value, error):
    with pytest.raises(error, match=r"^where-it-came-from must be a positive int"):
        dispatch.validate_capacity(value, "where-it-came-from")


def test_validate_timeout_accepts_non_negative_numbers():
    assert dispatch.validate_timeout(0, "t") == 0.0
    assert dispatch.validate_timeout(2, "t") == 2.0
    assert isinstance(dispatch.validate_timeout(2, "t"), float)
    assert dispatch.validate_timeout(0.25, "t") == 0.25


# --- stats --------------------------------------------------------------------------------------------


def test_stats_is_a_named_tuple_with_the_documented_fields():
    snapshot = subscribers.stats()
    assert isinstance(snapshot, subscribers.DispatcherStats)
    assert subscribers.DispatcherStats._fields == (
        "queued",
        "capacity",
        "published",
        "delivered",
        "dropped",
        "subscriber_errors",
        "quarantined",
    )
    assert all(type(value) is int for value in snapshot)


@pytest.mark.timeout(30)
def test_stats_are_consistent_after_flush(events):
    before = subscribers.stats()
    with scope.scope("s", ScopeType.Function):
        for i in range(10):
            scope.event(f"m{i}")
    assert subscribers.flush(timeout=10)
    after = subscribers.stats()
    assert after.published - before.published == 12
    assert after.delivered - before.delivered == 12
    assert after.published == after.delivered
    assert after.queued == 0
    assert after.dropped == before.dropped


def test_no_subscriber_means_nothing_is_published():
    before = subscribers.stats()
    with scope.scope("quiet", ScopeType.Function):
        scope.event("unheard")
    assert subscribers.stats().published == before.published


@pytest.mark.timeout(30)
def test_stats_queued_counts_waiting_events_but_not_flush_barriers(events, gate):
    gate.hold()
    for i in range(3):
        scope.event(f"w{i}")
    assert subscribers.flush(timeout=0) is False  # leaves a barrier behind the three events
    snapshot = subscribers.stats()
    assert snapshot.queued == 3
    assert snapshot.published - snapshot.delivered == 4  # "block" is in delivery, three are waiting
    gate.released.set()
    assert subscribers.flush(timeout=10)
    assert subscribers.stats().queued == 0


def test_on_dispatcher_thread_only_inside_callbacks(events):
    seen: list[bool] = []
    subscribers.register("probe", lambda event: seen.append(dispatch.on_dispatcher_thread()))
    scope.event("x")
    assert subscribers.flush(timeout=10)
    assert seen == [True]
    assert dispatch.on_dispatcher_thread() is False


def test_wait_drained_is_the_flush_barrier(events):
    for i in range(50):
        scope.event(f"d{i}")
    assert dispatch.wait_drained(10) is True
    assert len(events) == 50


@pytest.mark.timeout(60)
def test_barrier_is_not_met_while_the_very_first_event_is_being_delivered():
    # A fresh process, so the event below is the one that starts the dispatcher. Until its delivery
    # finishes it is not delivered, so a barrier taken meanwhile cannot be met (it times out).
    result = run_python(
        """
        from nemo_relay import scope, subscribers
        from nemo_relay._core import dispatch
        seen = []
        subscribers.register("probe", lambda event: seen.append(dispatch.wait_drained(0.2)))
        scope.event("first")
        assert subscribers.flush(timeout=10)
        print(seen)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[False]"


def test_dispatcher_thread_is_a_single_daemon(events):
    scope.event("start-it")
    assert subscribers.flush(timeout=10)
    workers = [t for t in threading.enumerate() if t.name == DISPATCHER_THREAD]
    assert len(workers) == 1
    assert workers[0].daemon is True
    watchdogs = [t for t in threading.enumerate() if t.name == "nemo-relay-subscriber-watchdog"]
    assert len(watchdogs) == 1
    assert watchdogs[0].daemon is True


# --- the flush bridge ---------------------------------------------------------------------------------


class ScriptedFlush:
    """A flush function for a private FlushBridge: each call blocks until the test lets it finish."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.finish = threading.Semaphore(0)
        self.calls = 0
        self.fail_next = False

    def __call__(self) -> bool:
        self.calls += 1
        self.started.release()
        assert self.finish.acquire(timeout=20)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("scripted failure")
        return True


@pytest.fixture
def scripted_bridge() -> Iterator[tuple[dispatch.FlushBridge, ScriptedFlush]]:
    flush = ScriptedFlush()
    bridge = dispatch.FlushBridge(flush, thread_name=f"test-bridge-{id(flush):x}")
    try:
        yield bridge, flush
    finally:
        for _ in range(10):
            flush.finish.release()


async def started(flush: ScriptedFlush) -> None:
    assert await asyncio.to_thread(flush.started.acquire, True, 10), "bridge never started a flush"


@pytest.mark.timeout(30)
async def test_bridge_requests_during_a_flush_are_served_by_one_later_flush(scripted_bridge):
    bridge, flush = scripted_bridge
    loop = asyncio.get_running_loop()
    first = bridge.request(loop)
    await started(flush)
    later = [bridge.request(loop) for _ in range(5)]
    flush.finish.release()  # the first flush began before the later requests: it must not settle them
    assert await asyncio.wait_for(first, 10) is True
    await started(flush)
    assert not any(f.done() for f in later)
    flush.finish.release()
    assert await asyncio.wait_for(asyncio.gather(*later), 10) == [True] * 5
    assert flush.calls == 2
    assert sum(1 for t in threading.enumerate() if t.name == bridge._thread_name) == 1


@pytest.mark.timeout(30)
async def test_bridge_propagates_a_flush_failure_and_keeps_serving(scripted_bridge):
    bridge, flush = scripted_bridge
    loop = asyncio.get_running_loop()
    flush.fail_next = True
    failing = bridge.request(loop)
    await started(flush)
    flush.finish.release()
    with pytest.raises(RuntimeError, match="scripted failure"):
        await asyncio.wait_for(failing, 10)
    ok = bridge.request(loop)
    await started(flush)
    flush.finish.release()
    assert await asyncio.wait_for(ok, 10) is True


@pytest.mark.timeout(30)
async def test_bridge_ignores_a_cancelled_waiter(scripted_bridge):
    bridge, flush = scripted_bridge
    loop = asyncio.get_running_loop()
    abandoned = bridge.request(loop)
    await started(flush)
    abandoned.cancel()
    flush.finish.release()
    survivor = bridge.request(loop)
    await started(flush)
    flush.finish.release()
    assert await asyncio.wait_for(survivor, 10) is True
    assert abandoned.cancelled()


@pytest.mark.timeout(30)
def test_bridge_survives_a_waiter_whose_loop_closed(scripted_bridge):
    bridge, flush = scripted_bridge
    dead_loop = asyncio.new_event_loop()
    bridge.request(dead_loop)
    assert flush.started.acquire(timeout=10)
    dead_loop.close()
    flush.finish.release()

    async def again() -> bool:
        future = bridge.request(asyncio.get_running_loop())
        await started(flush)
        flush.finish.release()
        return await asyncio.wait_for(future, 10)

    assert asyncio.run(again()) is True


# --- interpreter exit ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_queued_events_are_delivered_at_normal_exit(tmp_path):
    out = tmp_path / "delivered.txt"
    result = run_python(
        f"""
        import time
        from nemo_relay import scope, subscribers
        out = open({str(out)!r}, "a")
        def slow(event):
            time.sleep(0.002)
            out.write(event.name + "\\n")
            out.flush()
        subscribers.register("slow", slow)
        for i in range(200):
            scope.event(f"m{{i}}")
        # no flush: the exit drain must deliver the backlog
        """
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == [f"m{i}" for i in range(200)]
    assert "not delivered" not in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["env", "configure"])
def test_exit_drain_is_bounded_when_a_subscriber_never_returns(how):
    setup = "subscribers.configure(exit_flush_timeout=0.2)" if how == "configure" else ""
    result = run_python(
        f"""
        import threading
        from nemo_relay import scope, subscribers
        {setup}
        forever = threading.Event()
        entered = threading.Event()
        def stuck(event):
            entered.set()
            forever.wait()
        subscribers.register("stuck", stuck)
        for i in range(5):
            scope.event(f"m{{i}}")
        assert entered.wait(10)
        print("exiting")
        """,
        env={"NEMO_RELAY_EXIT_FLUSH_TIMEOUT": "0.2"} if how == "env" else None,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exiting"
    assert "4 queued events were not delivered" in result.stderr
    assert "NEMO_RELAY_EXIT_FLUSH_TIMEOUT" in result.stderr


@pytest.mark.timeout(60)
def test_exit_without_any_event_is_silent():
    result = run_python("import nemo_relay\nfrom nemo_relay import scope\nscope.event('nobody-listens')\n")
    assert result.returncode == 0
    assert result.stderr == ""


# --- environment configuration ------------------------------------------------------------------------

STATS_SCRIPT = """
from nemo_relay import scope, subscribers
from nemo_relay._core import dispatch
got = []
subscribers.register("rec", got.append)
scope.event("works")
assert subscribers.flush(timeout=10)
print(subscribers.stats().capacity, dispatch._exit_timeout, len(got))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEMO_RELAY_QUEUE_CAPACITY", "abc"),
        ("NEMO_RELAY_QUEUE_CAPACITY", "0"),
        ("NEMO_RELAY_QUEUE_CAPACITY", "-5"),
        ("NEMO_RELAY_QUEUE_CAPACITY", "1.5"),
        ("NEMO_RELAY_EXIT_FLUSH_TIMEOUT", "soon"),
        ("NEMO_RELAY_EXIT_FLUSH_TIMEOUT", "-1"),
    ],
)
def test_bad_environment_values_are_reported_and_ignored(variable, value):
    result = run_python(STATS_SCRIPT, env={variable: value})
    assert result.returncode == 0, result.stderr
    capacity, exit_timeout, delivered = result.stdout.split()
    assert int(capacity) == dispatch.DEFAULT_CAPACITY
    assert float(exit_timeout) == dispatch.DEFAULT_EXIT_TIMEOUT
    assert delivered == "1"
    assert variable in result.stderr
    assert repr(value) in result.stderr or value in result.stderr
    assert "default" in result.stderr


STALL_SCRIPT = """
from nemo_relay import scope, subscribers
from nemo_relay._core import dispatch
print(dispatch._stall_timeout)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_stall_timeout_from_the_environment_is_reported_and_ignored(value):
    result = run_python(STALL_SCRIPT, env={"NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT": value})
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == dispatch.DEFAULT_STALL_TIMEOUT
    assert f"ignoring NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT={value!r}" in result.stderr
    assert "using the default" in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("value", "expected"), [("0.5", 0.5), ("0", 0.0), ("12", 12.0)])
def test_stall_timeout_from_the_environment(value, expected):
    result = run_python(STALL_SCRIPT, env={"NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT": value})
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == expected
    assert result.stderr == ""


@pytest.mark.timeout(60)
def test_good_environment_values_are_applied_silently():
    result = run_python(STATS_SCRIPT, env={"NEMO_RELAY_QUEUE_CAPACITY": "7", "NEMO_RELAY_EXIT_FLUSH_TIMEOUT": "1.5"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "1.5", "1"]
    assert result.stderr == ""


# --- fork ---------------------------------------------------------------------------------------------


def _wait_child(pid: int, timeout: float = 20) -> int:
    """Reap ``pid``; kill it and fail if it is still running after ``timeout`` (a hang guard)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("forked child hung")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.timeout(60)
def test_forked_child_gets_a_fresh_dispatcher_and_parent_keeps_its_backlog(events, gate):
    gate.hold()
    for i in range(5):
        scope.event(f"pre-{i}")
    # A flush_async stuck in the parent's bridge thread when the fork happens.
    parent_flush: list[bool] = []
    flusher = threading.Thread(target=lambda: parent_flush.append(asyncio.run(subscribers.flush_async(timeout=20))))
    flusher.start()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_fd)
            seen_at_fork = len(events)
            report: dict[str, object] = {"stats_at_fork": list(subscribers.stats())}
            report["flush_async"] = asyncio.run(asyncio.wait_for(subscribers.flush_async(), 10))
            report["flush"] = subscribers.flush(timeout=10)
            for i in range(3):
                scope.event(f"child-{i}")
            report["flush_after_emit"] = subscribers.flush(timeout=10)
            report["child_delivered"] = [e.name for e in events[seen_at_fork:]]
            report["thread_daemon"] = [t.daemon for t in threading.enumerate() if t.name == DISPATCHER_THREAD]
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        assert _wait_child(pid) == 0
        with os.fdopen(read_fd, "rb") as pipe:
            report = json.loads(pipe.read())
    finally:
        gate.released.set()
        flusher.join(20)
    queued, _capacity, published, delivered, dropped, errors, _quarantined = report["stats_at_fork"]
    assert (queued, published, delivered, dropped, errors) == (0, 0, 0, 0, 0)
    assert report["flush_async"] is True
    assert report["flush"] is True
    assert report["flush_after_emit"] is True
    assert report["child_delivered"] == ["child-0", "child-1", "child-2"]
    assert report["thread_daemon"] == [True]
    # The parent delivers its own pre-fork backlog exactly once, and never sees the child's events.
    assert parent_flush == [True]
    assert mark_names(events) == ["block", "pre-0", "pre-1", "pre-2", "pre-3", "pre-4"]


def test_idle_hooks_run_before_a_flush_barrier_opens_and_when_the_queue_empties():
    from nemo_relay._core import dispatch

    delivered: list[str] = []
    written: list[list[str]] = []

    def hook() -> None:
        if delivered:
            written.append(list(delivered))
            delivered.clear()

    subscribers.register("batcher", lambda event: delivered.append(event.name))
    dispatch.add_idle_hook(hook)
    try:
        for index in range(50):
            scope.event(f"m{index}")
        assert subscribers.flush(timeout=10)
        # Everything delivered before the barrier has been handed to the hook when flush returns.
        assert [name for batch in written for name in batch] == [f"m{index}" for index in range(50)]
        scope.event("late")
        deadline = time.monotonic() + 10
        while not written or written[-1] != ["late"]:  # no flush: the worker runs the hook when it goes idle
            assert time.monotonic() < deadline, "idle hook did not run"
            time.sleep(0.005)
    finally:
        dispatch.remove_idle_hook(hook)
        subscribers.deregister("batcher")
