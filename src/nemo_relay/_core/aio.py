"""The sync/async seam: the only module that asks whether a loop runs or a value is awaitable.

Middleware chains are written once as *flows*: generators that yield whatever a user callback
returned and receive the resolved value back. ``drive_sync`` runs a flow where no loop may be used,
``drive_async`` awaits, and ``resolve_blocking`` (for the dispatcher thread) runs awaitables on an
event loop and waits. ``start`` runs a coroutine eagerly on the caller's stack and only creates a
task if it really suspends, which keeps a managed call that never waits to a few microseconds.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from collections.abc import Coroutine as CoroutineABC
from contextvars import Context
from types import CoroutineType, GeneratorType

from nemo_relay._core.errors import InternalError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")
    Flow = Generator[Any, Any, T]

_CO_ITERABLE_COROUTINE = 0x100
_CO_COROUTINE_FLAGS = 0x80 | 0x100 | 0x200  # coroutine, iterable coroutine, async generator

AWAITABLE_IN_SYNC = "awaitable Python middleware requires an async caller"


_get_running_loop: Callable[[], Any] | None = None


def running_loop() -> Any:
    """The event loop running on this thread, or ``None``; never imports asyncio itself."""
    global _get_running_loop
    if _get_running_loop is None:
        asyncio = sys.modules.get("asyncio")
        if asyncio is None:
            return None  # asyncio was never imported, so no loop can be running
        _get_running_loop = asyncio._get_running_loop
    return _get_running_loop()


def require_loop(what: str) -> Any:
    """The running loop, or ``RuntimeError("no running event loop")`` naming the async-only API."""
    loop = _get_running_loop() if _get_running_loop is not None else running_loop()
    if loop is None:
        raise RuntimeError(f"no running event loop: {what} must be called from async code (inside a running loop)")
    return loop


class _NeverRaised(BaseException):
    """Stands in for asyncio.CancelledError while asyncio is not imported (nothing can raise it then)."""


def cancelled_error_type() -> type[BaseException]:
    """``asyncio.CancelledError`` if asyncio is loaded, else a type nothing raises."""
    asyncio = sys.modules.get("asyncio")
    return _NeverRaised if asyncio is None else asyncio.CancelledError


def is_awaitable(value: object) -> bool:
    """Cheap ``inspect.isawaitable`` (no ``inspect`` import): coroutines, futures, ``__await__`` objects."""
    t = type(value)
    if t is CoroutineType:
        return True
    if t is dict or t is list or t is str or value is None or t is int or t is bool or t is float:
        return False
    if t is GeneratorType:
        return bool(value.gi_code.co_flags & _CO_ITERABLE_COROUTINE)  # type: ignore[attr-defined]
    return getattr(t, "__await__", None) is not None


def close_awaitable(value: object) -> None:
    """Dispose of an awaitable we will not await, without a "never awaited" warning."""
    close = getattr(value, "close", None)
    if close is not None and type(value) is CoroutineType:
        close()
    cancel = getattr(value, "cancel", None)
    if cancel is not None and type(value) is not CoroutineType:
        cancel()


def maybe_async(callback: object) -> bool:
    """Whether a callback is declared async (an ``async def``, or wraps one); used only as a hint."""
    target = getattr(callback, "func", callback)  # functools.partial
    code = getattr(target, "__code__", None)
    if code is None:
        method = type(target).__dict__.get("__call__")  # instances of classes with an async __call__
        code = getattr(method, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE_FLAGS)


# --- flows ---------------------------------------------------------------------------------------------


def drive_sync(flow: Flow[T]) -> T:
    """Run a flow with no event loop: an awaitable from a callback is an error."""
    try:
        pending = next(flow)
        while True:
            if is_awaitable(pending):
                close_awaitable(pending)
                pending = flow.throw(InternalError(AWAITABLE_IN_SYNC))
            else:
                pending = flow.send(pending)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def drive_async(flow: Flow[T]) -> T:
    """Run a flow on the running loop, awaiting what callbacks return."""
    try:
        pending = next(flow)
        while True:
            if is_awaitable(pending):
                try:
                    value = await pending
                except BaseException as exc:  # the flow decides (and re-raises cancellation)
                    pending = flow.throw(exc)
                    continue
                pending = flow.send(value)
            else:
                pending = flow.send(pending)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


# --- eager start -------------------------------------------------------------------------------------


def start(loop: Any, coro: Coroutine[Any, Any, T], context: Context) -> Any:
    """Run ``coro`` in ``context`` on the caller's stack until it first suspends.

    Returns a finished ``asyncio.Future`` when it never suspends, otherwise a Task that continues it
    (cancelling that task cancels the coroutine where it waits). Either way the result is an
    ``asyncio.Future`` of ``loop``.
    """
    try:
        pending = context.run(coro.send, None)
    except StopIteration as done:
        future = loop.create_future()
        future.set_result(done.value)
        return future
    except BaseException as exc:
        future = loop.create_future()
        if isinstance(exc, cancelled_error_type()):
            future.cancel(exc.args[0] if exc.args else None)  # keeps the message (cancel takes one)
        else:
            future.set_exception(exc)
        return future
    return loop.create_task(_Resumed(coro, pending), context=context)


class _Resumed(CoroutineABC):  # type: ignore[type-arg]
    """A half-run coroutine handed to a Task: the first step re-yields what it last yielded.

    Being a coroutine itself (not a wrapper ``async def``), it also receives a cancellation that
    arrives before the task's first step, and passes it into the coroutine where it waits.
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending: Any = pending

    def send(self, value: Any) -> Any:
        pending = self._pending
        if pending is not _STARTED:
            self._pending = _STARTED
            return pending
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        pending = self._pending
        if pending is not _STARTED:
            self._pending = _STARTED
            cancel = getattr(pending, "cancel", None)
            if cancel is not None:  # the task never waited on it: nobody else will cancel it
                cancel()
        if val is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        raise TypeError("a resumed pipeline coroutine is driven by its task only")


_STARTED = object()


class Continue:
    """Awaitable that continues a coroutine which already ran up to ``pending`` (what it last yielded)."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # thrown in by the awaiting task: cancellation or an exception
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


# --- from the dispatcher thread ------------------------------------------------------------------------

ASYNC_CALLBACK_TIMEOUT = 30.0


class _Waiter:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def resolve_blocking(awaitable: Awaitable[T], loops: tuple[Any, ...], context: Context) -> T:
    """Await ``awaitable`` on the first running loop of ``loops`` (else a private loop) and block for it.

    Runs in ``context``. Raises ``TimeoutError`` after ``ASYNC_CALLBACK_TIMEOUT`` seconds so a stuck
    callback cannot stall the dispatcher forever.
    """
    waiter = _Waiter()

    async def run() -> None:
        try:
            waiter.value = await awaitable
        except BaseException as exc:
            waiter.error = exc
        finally:
            waiter.done.set()

    def submit() -> None:
        loop.create_task(run(), context=context)

    for loop in (*(candidate for candidate in loops if candidate is not None), None):
        if loop is None:
            loop = _fallback_loop()
        elif loop.is_closed() or not loop.is_running():
            continue
        try:
            loop.call_soon_threadsafe(submit)
        except RuntimeError:  # closed between the check and the call
            continue
        break
    if not waiter.done.wait(ASYNC_CALLBACK_TIMEOUT):
        raise TimeoutError(f"async callback did not finish within {ASYNC_CALLBACK_TIMEOUT:g}s")
    if waiter.error is not None:
        raise waiter.error
    return waiter.value  # type: ignore[no-any-return]


_fallback: Any = None
_fallback_lock = threading.Lock()


def _fallback_loop() -> Any:
    # A private loop on a daemon thread, for async callbacks whose own loops are gone.
    global _fallback
    with _fallback_lock:
        if _fallback is None or _fallback.is_closed():
            import asyncio

            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=serve, name="nemo-relay-async-fallback", daemon=True).start()
            ready.wait(5)
            _fallback = loop
        return _fallback


def after_fork_in_child() -> None:
    """Forget the fallback loop: its thread does not exist in a forked child."""
    global _fallback, _fallback_lock
    _fallback = None
    _fallback_lock = threading.Lock()


def call_in(context: Context | None, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` inside ``context`` when given."""
    return fn(*args) if context is None else context.run(fn, *args)
