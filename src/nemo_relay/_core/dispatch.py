"""⑨ ⑩ The dispatcher: one daemon thread delivers queued events to their subscriber snapshots in FIFO order.

The emitting thread only appends to a bounded deque and, when the worker sleeps, sets one Event;
everything else (strings, sanitizers, subscriber calls) happens here. Each event is delivered inside
the context copied at emission, with the emission-time stack snapshot as the current stack.

Guarantees: FIFO per process; the queue holds at most ``capacity`` events and counts every event it
refuses (the newest is dropped, so events already queued stay intact); ``flush(timeout)`` is a barrier
that reports whether it drained in time; at a normal interpreter exit queued events are delivered
within ``exit_timeout`` seconds; a forked child starts with an empty queue and its own worker.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import sys
import threading
import time
from collections import deque, namedtuple
from collections.abc import Callable

from nemo_relay._core import publish as _publish
from nemo_relay._core import registry
from nemo_relay._core.aio import running_loop as _running_loop
from nemo_relay._core.context import _override_var
from nemo_relay._core.events import MarkEvent, ScopeEvent

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, NamedTuple

DEFAULT_CAPACITY = 100_000
DEFAULT_EXIT_TIMEOUT = 10.0
_THREAD_NAME = "nemo-relay-subscriber-dispatcher"
_nested_sink_get = _publish.nested_sink.get
_PUBLICATION = registry.PUBLICATION
_LINGER_SECONDS = 0.002


if TYPE_CHECKING:

    class _StatsFields(NamedTuple):
        queued: int
        capacity: int
        published: int
        delivered: int
        dropped: int
        subscriber_errors: int

else:
    _StatsFields = namedtuple(
        "_StatsFields", ["queued", "capacity", "published", "delivered", "dropped", "subscriber_errors"]
    )


class DispatcherStats(_StatsFields):
    """Counters of the event dispatcher since process start (or fork).

    Fields: ``queued`` events waiting now; ``capacity`` the queue bound (beyond it new events are
    dropped); ``published`` events accepted; ``delivered`` events whose subscribers have all been
    called; ``dropped`` events refused because the queue was full; ``subscriber_errors`` subscriber
    calls that raised (reported on stderr, then skipped).
    """

    __slots__ = ()


class _Barrier:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_queue: deque[Any] = deque()
_capacity = DEFAULT_CAPACITY
_exit_timeout = DEFAULT_EXIT_TIMEOUT
_wake = threading.Event()
_idle = True
_busy = False
_thread: threading.Thread | None = None
_thread_ident: int | None = None
_start_lock = threading.Lock()
_dropped = itertools.count()
_delivered = 0
_taken = 0  # events popped for delivery (delivered, or being delivered)
_last_drop_report = 0.0


def publish(event: ScopeEvent | MarkEvent) -> None:
    """Queue ``event`` for delivery; O(1), never blocks, never raises."""
    # Where async sanitizers of this event should run (only looked up when it can matter).
    event._loop = _running_loop() if event._xf is not None or event._view[_PUBLICATION] else None  # type: ignore[index]
    nested = _nested_sink_get()
    if nested is not None:  # emitted by a transform or sanitizer: goes right after the event in process
        nested.append(event)
        return
    if len(_queue) >= _capacity:
        _drop()
        return
    _queue.append(event)
    if _idle:
        _wake_idle_worker()


def _wake_idle_worker() -> None:
    # Clear the flag here, not only in the worker: until the worker gets the GIL back, later emitters
    # must not pay for waking it again (it cannot miss this wake-up: it re-checks the queue after setting
    # ``_idle`` and before sleeping).
    global _idle
    _idle = False
    _wakeup()


def _wakeup() -> None:
    if _thread is None:
        _start()
    _wake.set()


def _start() -> None:
    global _thread
    with _start_lock:
        if _thread is None:
            # Published before start(): flushes must never see "no worker" while it delivers.
            _thread = threading.Thread(target=_run, name=_THREAD_NAME, daemon=True)
            _thread.start()


def _drop() -> None:
    global _last_drop_report
    count = next(_dropped) + 1
    now = time.monotonic()
    if count == 1 or now - _last_drop_report >= 10.0:
        _last_drop_report = now
        _report(
            f"nemo_relay: event queue full (capacity {_capacity}); dropped the newest event, {count} dropped so far. "
            "Raise the bound with NEMO_RELAY_QUEUE_CAPACITY or subscribers.configure(queue_capacity=...), "
            "or speed up slow subscribers."
        )


def _run() -> None:
    global _idle, _thread_ident, _delivered, _busy, _taken
    _thread_ident = threading.get_ident()
    while True:
        queue = _queue  # re-read: a fork replaces it
        _busy = True  # set before taking an item, so "empty and not busy" really means drained
        try:
            item = queue.popleft()
        except IndexError:
            if _idle_hooks:
                _run_idle_hooks()  # still "busy": a flush barrier must not see the queue drained before this
            _busy = False
            # Linger before declaring ourselves idle: emitters do not pay for a wake-up while we
            # linger, and whatever they queue meanwhile is drained as one batch.
            _wake.wait(_LINGER_SECONDS)
            _wake.clear()
            if queue:
                continue
            _idle = True
            if queue:
                _idle = False
                continue
            _wake.wait()
            _wake.clear()
            _idle = False
            continue
        if type(item) is _Barrier:
            if _idle_hooks:
                _run_idle_hooks()  # what was delivered before the barrier is written out before it opens
            item.done.set()
            continue
        _taken += 1
        try:
            _deliver(item)
        except BaseException as exc:  # the worker must survive anything a callback does
            _report(f"nemo_relay: dispatcher failed to deliver an event: {type(exc).__name__}: {exc}")
        _delivered += 1


# Called on the worker whenever it runs out of events and at every flush barrier: subscribers that batch
# their output (the ATOF file sink) write it out here, once per batch instead of once per event.
_idle_hooks: list[Callable[[], None]] = []


def add_idle_hook(hook: Callable[[], None]) -> None:
    """Run ``hook`` on the dispatcher thread each time its queue empties and before each flush barrier opens."""
    with _start_lock:
        _idle_hooks.append(hook)


def remove_idle_hook(hook: Callable[[], None]) -> None:
    """Stop calling ``hook`` (no-op if it was not added)."""
    with _start_lock:
        if hook in _idle_hooks:
            _idle_hooks.remove(hook)


def _run_idle_hooks() -> None:
    for hook in tuple(_idle_hooks):
        try:
            hook()
        except BaseException as exc:  # the worker must survive anything a hook does
            _report(f"nemo_relay: dispatcher idle hook failed: {type(exc).__name__}: {exc}")


def _deliver(event: ScopeEvent | MarkEvent) -> None:
    view, ctx, snap = event._view, event._ctx, event._snap
    event._view = event._ctx = event._snap = None
    if view is None or ctx is None:
        return
    if event._xf is None and not view[registry.PUBLICATION]:
        ctx.run(_run_subscribers, event, view[registry.SUBSCRIBER], snap)
        return
    nested = ctx.run(_publish.process, event, view, snap, (event._loop,))
    if nested:
        _queue.extendleft(reversed(nested))  # emitted while processing: delivered next, in order


def _run_subscribers(event: ScopeEvent | MarkEvent, subscribers: tuple[registry.Entry, ...], snap: Any) -> None:
    # Inside the emitter's copied context: make the emission-time snapshot the current stack.
    _override_var.set(snap)
    _publish.deliver(event, subscribers)


def _report(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except Exception:  # stderr closed or broken: nothing more we can do
        pass


def on_dispatcher_thread() -> bool:
    """Whether the caller is the dispatcher's worker (a subscriber or sanitizer callback)."""
    return _thread_ident is not None and threading.get_ident() == _thread_ident


def wait_drained(timeout: float | None) -> bool:
    """Block until everything queued before the call is delivered; ``False`` if ``timeout`` ran out."""
    if not _queue and not _busy:
        return True  # nothing queued and nothing being delivered
    barrier = _Barrier()
    _queue.append(barrier)
    _wakeup()  # unconditionally: a lingering worker must not wait out its linger
    return barrier.done.wait(timeout)


def stats() -> DispatcherStats:
    """Snapshot of the dispatcher counters."""
    queued = sum(1 for item in list(_queue) if type(item) is not _Barrier)
    delivered = _delivered
    return DispatcherStats(
        queued=queued,
        capacity=_capacity,
        # Accepted events are delivered, waiting, or the one being delivered right now.
        published=_taken + queued,
        delivered=delivered,
        dropped=_peek(_dropped),
        subscriber_errors=_publish.subscriber_error_count(),
    )


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count has no read: its repr carries the next value.
    return int(repr(counter)[6:-1])


def configure(capacity: int | None = None, exit_timeout: float | None = None) -> None:
    """Set the queue bound and/or the exit drain deadline (validated)."""
    global _capacity, _exit_timeout
    # Validate everything before changing anything.
    new_capacity = _capacity if capacity is None else validate_capacity(capacity, "queue_capacity")
    new_timeout = _exit_timeout if exit_timeout is None else validate_timeout(exit_timeout, "exit_flush_timeout")
    _capacity, _exit_timeout = new_capacity, new_timeout


def validate_capacity(value: object, where: str) -> int:
    """A positive int, or a ``ValueError``/``TypeError`` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{where} must be a positive int, got {value}")
    return value


def validate_timeout(value: object, where: str) -> float:
    """A non-negative number of seconds, or a ``ValueError``/``TypeError`` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number of seconds or None, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{where} must be >= 0 seconds, got {value}")
    return float(value)


def _configure_from_env() -> None:
    for variable in ("NEMO_RELAY_QUEUE_CAPACITY", "NEMO_RELAY_EXIT_FLUSH_TIMEOUT"):
        raw = os.environ.get(variable)
        if raw is None:
            continue
        try:
            if variable == "NEMO_RELAY_QUEUE_CAPACITY":
                configure(capacity=int(raw))
            else:
                configure(exit_timeout=float(raw))
        except (TypeError, ValueError) as exc:
            _report(f"nemo_relay: ignoring {variable}={raw!r}: {exc}; using the default")


_configure_from_env()


def _drain_at_exit() -> None:
    if _thread is None:
        return
    started = time.monotonic()
    if not wait_drained(_exit_timeout):
        left = stats().queued
        _report(
            f"nemo_relay: {left} queued events were not delivered within the {_exit_timeout:g}s exit deadline "
            f"(waited {time.monotonic() - started:.1f}s); set NEMO_RELAY_EXIT_FLUSH_TIMEOUT to wait longer."
        )


atexit.register(_drain_at_exit)


def _after_fork_in_child() -> None:
    # The worker thread does not exist in the child; start over with an empty queue.
    global _queue, _wake, _idle, _busy, _thread, _thread_ident, _start_lock, _delivered, _taken
    global _dropped
    _queue = deque()
    _wake = threading.Event()
    _idle = True
    _busy = False
    _thread = None
    _thread_ident = None
    _start_lock = threading.Lock()
    _dropped = itertools.count()
    _publish.reset_counters()
    _delivered = 0
    _taken = 0
    for hook in _fork_child_hooks:
        hook()


_fork_child_hooks: list[Callable[[], None]] = []


class FlushBridge:
    """One daemon thread that runs blocking flushes for ``flush_async`` callers and wakes their loops.

    Requests that arrive while a flush runs are served by the next flush, so each caller's barrier
    covers everything it queued; concurrent callers share one flush and one thread.
    """

    def __init__(self, flush: Callable[[], object], thread_name: str = "nemo-relay-flush") -> None:
        self._flush = flush
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._waiters: list[tuple[Any, Any]] = []
        self._thread: threading.Thread | None = None

    def request(self, loop: Any) -> Any:
        """A future on ``loop`` that completes after a flush that started after this call."""
        future = loop.create_future()
        with self._lock:
            self._waiters.append((loop, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
                self._thread.start()
        self._wake.set()
        return future

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                batch, self._waiters = self._waiters, []
            if not batch:
                continue
            error: BaseException | None = None
            try:
                self._flush()
            except BaseException as exc:
                error = exc
            for loop, future in batch:
                # A loop that closed while we flushed has nobody waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(True)
    else:
        future.set_exception(error)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
