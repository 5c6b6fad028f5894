"""Event subscribers: callbacks that receive every lifecycle event, delivered off the caller's thread.

Events are queued when emitted and delivered in FIFO order by one background dispatcher thread, each
to the subscribers that were registered (globally or on an enclosing scope) at emission time. A
raising subscriber is reported on stderr and skipped; the call that emitted the event never sees it.
A subscriber whose call runs past the stall timeout (``configure(stall_timeout=...)``) is skipped until
that call returns, and the others go on receiving events.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from nemo_relay._core import aio as _aio
from nemo_relay._core import dispatch as _dispatch
from nemo_relay._core import registrars as _registrars
from nemo_relay._core import registry as _registry
from nemo_relay._core.context import _publication_callback_var
from nemo_relay._core.dispatch import DispatcherStats
from nemo_relay._core.events import MarkEvent, ScopeEvent

__all__ = ["DispatcherStats", "configure", "deregister", "flush", "flush_async", "register", "stats"]

_FLUSH_ON_LOOP = "subscribers.flush() cannot block a running asyncio event loop; use 'await subscribers.flush_async()'"


def register(name: str, callback: Callable[[ScopeEvent | MarkEvent], None]) -> None:
    """Register a global subscriber.

    Args:
        name: Unique subscriber name.
        callback: Called as ``callback(event)`` on the dispatcher thread for every event emitted after
            registration; its return value is ignored and its exceptions are reported, not raised.

    Raises:
        RuntimeError: ``already exists: <name> subscriber already exists``.
        TypeError: ``name`` is not a str or ``callback`` is not callable.
    """
    _registrars.register(_registry.SUBSCRIBER, name, 0, callback)


def deregister(name: str) -> bool:
    """Remove a global subscriber.

    Events already emitted keep the subscriber snapshot they were emitted with, so queued deliveries to
    it may still happen.

    Returns:
        True if a subscriber by that name was removed, else False.
    """
    return _registrars.deregister(_registry.SUBSCRIBER, name)


def flush(timeout: float | None = None) -> bool:
    """Block until every event emitted before this call has been delivered.

    It returns at once (True) when called from a subscriber or sanitizer callback, where waiting would
    deadlock.

    Args:
        timeout: Seconds to wait at most; None waits until drained.

    Returns:
        True if everything was delivered, False if ``timeout`` ran out first.

    Raises:
        RuntimeError: Called on a thread with a running event loop; use ``await flush_async()`` there.
    """
    if _dispatch.on_dispatcher_thread() or _publication_callback_var.get():
        return True
    if _aio.running_loop() is not None:
        raise RuntimeError(_FLUSH_ON_LOOP)
    if timeout is not None:
        timeout = _dispatch.validate_timeout(timeout, "timeout")
    return _dispatch.wait_drained(timeout)


async def flush_async(timeout: float | None = None) -> bool:
    """Await delivery of every event emitted before this call, without blocking the event loop.

    The blocking wait runs on one shared daemon thread (``nemo-relay-flush``), never on the loop's
    default executor; concurrent callers share it. Cancelling the await is safe.

    Args:
        timeout: Seconds to wait at most; None waits until drained.

    Returns:
        True if everything was delivered, False if ``timeout`` ran out first.
    """
    if _dispatch.on_dispatcher_thread() or _publication_callback_var.get():
        return True
    import asyncio

    if timeout is not None:
        timeout = _dispatch.validate_timeout(timeout, "timeout")
    future = _bridge().request(asyncio.get_running_loop())
    if timeout is None:
        await future
        return True
    try:
        await asyncio.wait_for(future, timeout)
    except TimeoutError:
        return False
    return True


def configure(
    *,
    queue_capacity: int | None = None,
    exit_flush_timeout: float | None = None,
    stall_timeout: float | None = None,
) -> None:
    """Tune the dispatcher; None leaves a setting as it is.

    Each setting can also come from the environment at import: ``NEMO_RELAY_QUEUE_CAPACITY``,
    ``NEMO_RELAY_EXIT_FLUSH_TIMEOUT``, ``NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT``.

    Args:
        queue_capacity: Most events held in the queue (default 100,000). Beyond it the newest event is
            dropped and counted in ``stats().dropped``.
        exit_flush_timeout: Seconds the interpreter waits at exit for queued events (default 10).
        stall_timeout: Seconds one subscriber call may run (default 5). A subscriber whose call runs
            longer is quarantined: reported once, counted in ``stats().quarantined`` and skipped until
            that call returns (then reported again, with the number of events it missed), while a fresh
            dispatcher thread delivers the rest of that event and the queue to the other subscribers.
            0 turns the watchdog off (then a subscriber that never returns holds up every later event,
            and ``flush()`` without a timeout waits for it).

    Raises:
        ValueError: A value is out of range.
        TypeError: A value has the wrong type.
    """
    _dispatch.configure(queue_capacity, exit_flush_timeout, stall_timeout)


def stats() -> DispatcherStats:
    """Dispatcher counters: queued, capacity, published, delivered, dropped, subscriber_errors, quarantined."""
    return _dispatch.stats()


def _native_flush() -> bool:
    # Looked up on this module by the flush bridge at call time, so it can be replaced.
    return _dispatch.wait_drained(None)


_flush_bridge: _dispatch.FlushBridge | None = None


def _bridge() -> _dispatch.FlushBridge:
    global _flush_bridge
    if _flush_bridge is None:
        module = sys.modules[__name__]
        _flush_bridge = _dispatch.FlushBridge(lambda: module._native_flush())
    return _flush_bridge


def _after_fork_child() -> None:
    # Never inspect the inherited bridge: its thread does not exist in the child.
    global _flush_bridge
    _flush_bridge = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
