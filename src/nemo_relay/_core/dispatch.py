"""⑨ ⑩ The dispatcher: one daemon thread delivers queued events to their subscriber snapshots in FIFO order.

The emitting thread only appends to a bounded deque and, when the worker sleeps, sets one Event;
everything else (strings, sanitizers, subscriber calls) happens here. Each event is delivered inside
the context copied at emission, with the emission-time stack snapshot as the current stack.

Guarantees: FIFO per process; the queue holds at most ``capacity`` events and counts every event it
refuses (the newest is dropped, so events already queued stay intact); ``flush(timeout)`` is a barrier
that reports whether it drained in time; at a normal interpreter exit queued events are delivered
within ``exit_timeout`` seconds; a forked child starts with an empty queue and its own worker.

Stalls: a watchdog thread, parked while the dispatcher is idle, samples which subscriber the worker is
calling. A call still running after ``stall_timeout`` seconds gets its subscriber quarantined (skipped,
reported once) and its worker abandoned: a fresh worker delivers the rest of that event to the other
subscribers, then the queue, in order. If the stuck call ever returns, the old worker sees that it was
replaced, lifts the quarantine (reporting how many events the subscriber missed) and exits without
delivering anything. Emitters pay nothing for this; the worker pays two stores and a read per
subscriber call.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import os
import sys
import threading
import time
from collections import deque, namedtuple
from collections.abc import Callable

from nemo_relay._core import oplog, registry
from nemo_relay._core import publish as _publish
from nemo_relay._core.aio import running_loop as _running_loop
from nemo_relay._core.context import _override_var
from nemo_relay._core.events import MarkEvent, ScopeEvent

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from contextvars import Context
    from typing import Any, NamedTuple

DEFAULT_CAPACITY = 100_000
DEFAULT_EXIT_TIMEOUT = 10.0
# Half the exit deadline, so a stuck subscriber is dropped in time for the others to get what is queued at
# exit; yet far beyond what an observer should take (exporters send over the network on their own threads).
DEFAULT_STALL_TIMEOUT = 5.0
_THREAD_NAME = "nemo-relay-subscriber-dispatcher"
_WATCHDOG_NAME = "nemo-relay-subscriber-watchdog"
_nested_sink_get = _publish.nested_sink.get
_PUBLICATION = registry.PUBLICATION
_SUBSCRIBER = registry.SUBSCRIBER
_LINGER_SECONDS = 0.002
# A call seen on this many consecutive watchdog ticks, each ``stall_timeout / _WATCH_TICKS`` long, has run
# for at least ``stall_timeout``. Counting ticks instead of reading a clock means a process that was
# suspended (SIGSTOP, a sleeping laptop) does not find every running call stalled when it resumes.
_WATCH_TICKS = 5


if TYPE_CHECKING:

    class _StatsFields(NamedTuple):
        queued: int
        capacity: int
        published: int
        delivered: int
        dropped: int
        subscriber_errors: int
        quarantined: int

else:
    _StatsFields = namedtuple(
        "_StatsFields",
        ["queued", "capacity", "published", "delivered", "dropped", "subscriber_errors", "quarantined"],
    )


class DispatcherStats(_StatsFields):
    """Counters of the event dispatcher since process start (or fork).

    Fields: ``queued`` events waiting now; ``capacity`` the queue bound (beyond it new events are
    dropped); ``published`` events accepted; ``delivered`` events whose subscribers have all been
    called; ``dropped`` events refused because the queue was full; ``subscriber_errors`` subscriber
    calls that raised (reported on stderr, then skipped); ``quarantined`` subscriber calls that ran past
    the stall timeout (each one's subscriber is skipped until that call returns; in a forked child it
    never does).
    """

    __slots__ = ()


class _Barrier:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Resume:
    """The rest of an event whose delivery stopped at a stalled subscriber; queued first for the new worker."""

    __slots__ = ("event", "subscribers", "ctx", "snap")

    def __init__(self, event: Any, subscribers: tuple[registry.Entry, ...], ctx: Context, snap: Any) -> None:
        self.event = event
        self.subscribers = subscribers
        self.ctx = ctx
        self.snap = snap


_queue: deque[Any] = deque()
_capacity = DEFAULT_CAPACITY
_exit_timeout = DEFAULT_EXIT_TIMEOUT
_stall_timeout = DEFAULT_STALL_TIMEOUT
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

# Watchdog state. The worker sets ``_inflight`` per event and ``_calling`` around each subscriber call.
# After a call it clears ``_calling``, then checks that it still is ``_owner``. To take over, the watchdog
# holds ``_call_lock``, clears ``_owner``, and only then checks that ``_calling`` still names the stuck
# call: if it does, the worker has not yet cleared it, so it will see the cleared ``_owner`` and wait on
# the lock for the verdict; if not, the watchdog restores ``_owner``. Exactly one of them goes on, and the
# worker takes the lock only in that rare race.
_call_lock = threading.Lock()
_owner: threading.Thread | None = None  # the worker entitled to deliver
_calling: registry.Entry | None = None
_inflight: tuple[Any, tuple[registry.Entry, ...], Context, Any] | None = None
_quarantined: set[registry.Entry] = set()  # subscribers whose stalled call has not returned yet
_missed: dict[registry.Entry, int] = {}  # events each quarantined subscriber was skipped for
_quarantines = 0  # stalled subscriber calls since start
_stale_idents: set[int] = set()  # abandoned workers still stuck in a call (still "the dispatcher thread")
_watchdog: threading.Thread | None = None
_watch_wake = threading.Event()  # set by the worker when it stops being idle
_watch_reset = threading.Event()  # set by configure(): start counting ticks again


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


def publish_scope_args(args: tuple[Any, ...]) -> None:
    """Queue the ``ScopeEvent`` constructor arguments of an event nothing processes (no transform, no
    injectors or sanitizers); the dispatcher builds the event before delivering it, off the caller's
    thread. Otherwise the same as ``publish``."""
    nested = _nested_sink_get()
    if nested is not None:
        nested.append(args)
        return
    if len(_queue) >= _capacity:
        _drop()
        return
    _queue.append(args)
    if _idle:
        _wake_idle_worker()


def _wake_idle_worker() -> None:
    # Clear the flag here, not only in the worker: until the worker gets the GIL back, later emitters
    # must not pay for waking it again (it cannot miss this wake-up: it re-checks the queue after setting
    # ``_idle`` and before sleeping).
    global _idle
    _idle = False
    _wakeup()


def _wakeup() -> bool:
    """Wake the worker, starting it if needed; False if it cannot run (no thread can be started)."""
    if _thread is None and not _start():
        return False
    _wake.set()
    return True


def _start() -> bool:
    """Start the worker (and the watchdog) if there is none; False if no thread can be started."""
    global _thread, _owner
    with _start_lock:
        if _thread is None:
            thread = threading.Thread(target=_run, name=_THREAD_NAME, daemon=True)
            # Published before start(): flushes must never see "no worker" while it delivers.
            _thread = _owner = thread
            try:
                thread.start()
            except RuntimeError:  # interpreter shutdown: Python 3.12+ starts no thread from an atexit hook
                _thread = _owner = None
                return False
            _start_watchdog()
    return True


def _start_watchdog() -> None:
    global _watchdog
    if _watchdog is None:
        watchdog = threading.Thread(target=_watch, name=_WATCHDOG_NAME, daemon=True)
        with contextlib.suppress(RuntimeError):  # interpreter shutdown: deliver without a watchdog
            watchdog.start()
            _watchdog = watchdog


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
    me = threading.current_thread()
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
            if not queue:
                _wake.wait()
                _wake.clear()
            _idle = False
            _watch_wake.set()  # the watchdog parks while we are idle
            continue
        kind = type(item)
        if kind is tuple:  # queued by publish_scope_args: build the event now
            item = ScopeEvent(*item)
            item._loop = None
            kind = ScopeEvent
        if kind is _Barrier:
            if _idle_hooks:
                _run_idle_hooks()  # what was delivered before the barrier is written out before it opens
            item.done.set()
            continue
        try:
            if kind is _Resume:
                current = _resume(item, me)
            else:
                _taken += 1
                current = _deliver(item, me)
        except BaseException as exc:  # the worker must survive anything a callback does
            current = _still_owner(me)
            if current:
                _report(f"nemo_relay: dispatcher failed to deliver an event: {type(exc).__name__}: {exc}")
        if not current:  # abandoned while a subscriber was stuck: a new worker owns the queue now
            _stale_idents.discard(threading.get_ident())
            return
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


def _deliver(event: ScopeEvent | MarkEvent, me: threading.Thread) -> bool:
    """Publish ``event`` and call its subscribers; False if this worker was abandoned meanwhile."""
    view, ctx, snap = event._view, event._ctx, event._snap
    event._view = event._ctx = event._snap = None
    if view is None or ctx is None:
        return True
    subscribers = view[_SUBSCRIBER]
    if event._xf is not None or view[_PUBLICATION]:
        nested = ctx.run(_publish.process, event, view, snap, (event._loop,))
        if nested:
            _queue.extendleft(reversed(nested))  # emitted while processing: delivered next, in order
    if not subscribers:
        return True
    return ctx.run(_call_subscribers, event, subscribers, ctx, snap, me)


def _resume(item: _Resume, me: threading.Thread) -> bool:
    ctx = item.ctx.copy()  # the abandoned worker may still be inside the original context
    return ctx.run(_call_subscribers, item.event, item.subscribers, ctx, item.snap, me)


def _call_subscribers(
    event: ScopeEvent | MarkEvent,
    subscribers: tuple[registry.Entry, ...],
    ctx: Context,
    snap: Any,
    me: threading.Thread,
) -> bool:
    """Call each subscriber in snapshot order, inside the event's context; False once ``me`` is abandoned.

    A raising subscriber is reported (``publish.subscriber_failed``) and skipped.
    """
    global _calling, _inflight
    _override_var.set(snap)  # the emission-time snapshot is the current stack
    _inflight = (event, subscribers, ctx, snap)
    for entry in subscribers:
        if _quarantined and entry in _quarantined:
            _missed[entry] = _missed.get(entry, 0) + 1
            continue
        _calling = entry
        try:
            entry.callback(event)
        except BaseException as exc:
            _calling = None  # first, then the ownership check (see _call_lock)
            if _owner is not me and not _still_owner(me):
                _reinstate(entry)
                return False
            _publish.subscriber_failed(exc)
            continue
        _calling = None
        if _owner is not me and not _still_owner(me):
            _reinstate(entry)
            return False  # the watchdog gave this event and the queue to a new worker
    _inflight = None  # do not keep the event's context alive while idle
    return True


def _reinstate(entry: registry.Entry) -> None:
    # The stuck call returned (on its abandoned worker): the subscriber may be called again, and never
    # twice at once, since that worker now exits. What it missed meanwhile is reported, not replayed.
    _quarantined.discard(entry)
    missed = _missed.pop(entry, 0)
    oplog.log(
        "error", "nemo_relay.runtime", "subscriber_resumed",
        f"Event subscriber returned after its stall; it receives events again. {missed} events were not "
        "delivered to it while it was quarantined",
        subscriber=entry.name, missed_events=missed,
    )  # fmt: skip


def _still_owner(me: threading.Thread) -> bool:
    # The slow path: wait for a takeover decision in progress.
    with _call_lock:
        return _owner is me


# --- the watchdog ----------------------------------------------------------------------------------------


def _watch() -> None:
    seen: tuple[Any, ...] | None = None
    ticks = 0
    while True:
        wake, reset = _watch_wake, _watch_reset
        wake.clear()
        stall = _stall_timeout
        if _idle or not 0 < stall < math.inf:
            seen = None
            wake.wait()  # until the worker has something to do (or forever while the watchdog is off)
            continue
        if reset.wait(stall / _WATCH_TICKS):
            reset.clear()
            seen = None
            continue
        owner, taken, calling = _owner, _taken, _calling
        key = (owner, taken, calling)  # one subscriber call of one event by one worker
        if owner is None or calling is None or key != seen:
            seen, ticks = key, 0
            continue
        ticks += 1
        if ticks < _WATCH_TICKS:
            continue
        seen = None
        if _quarantine(owner, taken, calling, stall):
            _run()  # no new thread could be started (interpreter shutdown): this one delivers the rest
            return


def _quarantine(owner: threading.Thread, taken: int, entry: registry.Entry, stall: float) -> bool:
    """Quarantine ``entry`` and replace the worker stuck calling it; True if the caller must run the worker."""
    global _calling, _inflight, _thread, _owner, _quarantines
    with _call_lock:
        if _owner is not owner:
            return False
        _owner = None  # first, then look at _calling (see _call_lock)
        if _taken != taken or _calling is not entry or _inflight is None:
            _owner = owner
            return False  # the call returned meanwhile
        event, subscribers, ctx, snap = _inflight
        _quarantined.add(entry)
        _quarantines += 1
        rest = subscribers[subscribers.index(entry) + 1 :]
        _queue.appendleft(_Resume(event, rest, ctx, snap))
        _calling = _inflight = None
        if _thread_ident is not None:
            _stale_idents.add(_thread_ident)
        owner.name = f"{_THREAD_NAME}-abandoned"  # one thread keeps the dispatcher's name
        # Reported before the new worker starts, so the report precedes anything a flush can observe.
        oplog.log(
            "error", "nemo_relay.runtime", "subscriber_quarantined",
            f"Event subscriber did not return within {stall:g}s; it is skipped until that call returns. Raise "
            "the limit with NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT or subscribers.configure(stall_timeout=...) "
            "(0 turns it off)",
            subscriber=entry.name, stall_timeout_seconds=stall,
        )  # fmt: skip
        with _start_lock:
            _thread = None
        inline = not _start()
        if inline:
            with _start_lock:
                _thread = _owner = threading.current_thread()
    return inline


def _report(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except Exception:  # stderr closed or broken: nothing more we can do
        pass


def on_dispatcher_thread() -> bool:
    """Whether the caller is the dispatcher's worker (a subscriber or sanitizer callback)."""
    ident = threading.get_ident()
    return ident == _thread_ident or (bool(_stale_idents) and ident in _stale_idents)


def wait_drained(timeout: float | None) -> bool:
    """Block until everything queued before the call is delivered; ``False`` if ``timeout`` ran out."""
    if not _queue and not _busy:
        return True  # nothing queued and nothing being delivered
    barrier = _Barrier()
    _queue.append(barrier)
    # Unconditionally: a lingering worker must not wait out its linger.
    if not _wakeup():
        return False  # no worker can run (interpreter shutdown): waiting would never end
    return barrier.done.wait(timeout)


def stats() -> DispatcherStats:
    """Snapshot of the dispatcher counters."""
    queued = sum(1 for item in list(_queue) if type(item) is not _Barrier and type(item) is not _Resume)
    delivered = _delivered
    return DispatcherStats(
        queued=queued,
        capacity=_capacity,
        # Accepted events are delivered, waiting, or the one being delivered right now.
        published=_taken + queued,
        delivered=delivered,
        dropped=_peek(_dropped),
        subscriber_errors=_publish.subscriber_error_count(),
        quarantined=_quarantines,
    )


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count has no read: its repr carries the next value.
    return int(repr(counter)[6:-1])


def configure(
    capacity: int | None = None, exit_timeout: float | None = None, stall_timeout: float | None = None
) -> None:
    """Set the queue bound, the exit drain deadline and/or the subscriber stall timeout (validated).

    A ``stall_timeout`` of 0 (or infinity) turns the watchdog off.
    """
    global _capacity, _exit_timeout, _stall_timeout, _last_drop_report
    # Validate everything before changing anything.
    new_capacity = _capacity if capacity is None else validate_capacity(capacity, "queue_capacity")
    new_timeout = _exit_timeout if exit_timeout is None else validate_timeout(exit_timeout, "exit_flush_timeout")
    new_stall = _stall_timeout if stall_timeout is None else validate_timeout(stall_timeout, "stall_timeout")
    if new_capacity != _capacity:
        _last_drop_report = 0.0  # the first drop under a new bound is reported at once
    _capacity, _exit_timeout, _stall_timeout = new_capacity, new_timeout, new_stall
    if stall_timeout is not None:
        # A ticking watchdog starts over with the new length; a parked one (it was off) looks again.
        _watch_reset.set()
        _watch_wake.set()


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


_ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "NEMO_RELAY_QUEUE_CAPACITY": ("capacity", int),
    "NEMO_RELAY_EXIT_FLUSH_TIMEOUT": ("exit_timeout", float),
    "NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT": ("stall_timeout", float),
}


def _configure_from_env() -> None:
    for variable, (keyword, parse) in _ENVIRONMENT.items():
        raw = os.environ.get(variable)
        if raw is None:
            continue
        try:
            configure(**{keyword: parse(raw)})  # type: ignore[arg-type]
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
    # The worker and watchdog threads do not exist in the child; start over with an empty queue. The
    # quarantine stays: a subscriber that hung in the parent may hold a lock that is held forever here.
    global _queue, _wake, _idle, _busy, _thread, _thread_ident, _start_lock, _delivered, _taken
    global _dropped, _call_lock, _owner, _calling, _inflight, _stale_idents, _watchdog, _watch_wake, _watch_reset
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
    _call_lock = threading.Lock()
    _owner = None
    _calling = None
    _inflight = None
    _stale_idents = set()
    _watchdog = None
    _watch_wake = threading.Event()
    _watch_reset = threading.Event()
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
