"""Helpers for mixing sync, async and thread-pool code without losing the scope stack.

Work handed to another thread normally loses its context: its events become orphan roots (the most
reported problem with tracing SDKs). ``wrap``, ``ContextPropagatingExecutor`` and ``to_thread`` carry
the caller's context and continue from the caller's current scope in an isolated stack, so scopes the
worker opens nest under the caller's scope without tangling with the caller's own stack.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from nemo_relay._core import aio as _aio
from nemo_relay._core.context import _override_var, _scope_stack_var, get_scope_stack
from nemo_relay._core.propagation import capture_propagation_context, create_scope_stack_from_propagation

__all__ = ["ContextPropagatingExecutor", "run_sync", "to_thread", "wrap"]

T = TypeVar("T")
P = ParamSpec("P")

_executor: ThreadPoolExecutor | None = None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code and return its result.

    Without a running loop it runs on a new loop in this thread. Inside a running loop (where blocking
    on the same loop would deadlock) it runs on a new loop in a worker thread while this thread waits.
    Either way the coroutine runs in a copy of the caller's context, so it sees the same scope stack.

    Args:
        coro: The coroutine to run.

    Returns:
        The coroutine's result; its exception propagates.
    """
    import asyncio

    get_scope_stack()  # make sure the stack exists before the context is copied
    ctx = contextvars.copy_context()
    if _aio.running_loop() is None:
        return ctx.run(asyncio.run, coro)
    return _worker().submit(ctx.run, asyncio.run, coro).result()


def _worker() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nemo-relay-run-sync")
    return _executor


def wrap(fn: Callable[P, T]) -> Callable[P, T]:
    """Bind ``fn`` to the caller's context and current scope, wherever and however often it runs later.

    Each call runs in a copy of the context captured now, with a fresh stack that continues from the
    scope current now (like ``fork_asyncio_context``): scopes opened by ``fn`` get that scope as parent,
    and concurrent calls never share a stack.

    Args:
        fn: The callable to bind.

    Returns:
        A callable with the same signature.
    """
    parent = capture_propagation_context()
    base = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> T:
        context = base.copy()
        context.run(_install, create_scope_stack_from_propagation(parent))
        return context.run(fn, *args, **kwargs)

    return bound


def _install(stack: Any) -> None:
    _scope_stack_var.set(stack)
    _override_var.set(None)


class ContextPropagatingExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the submitter's context, under the submitter's scope.

    Use it wherever a thread pool runs instrumented work (``loop.run_in_executor(executor, ...)``
    included); every task gets its own stack continuing from the scope current at ``submit``.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` with the caller's context and scope."""
        return super().submit(wrap(fn), *args, **kwargs)


async def to_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like ``asyncio.to_thread``, but the thread continues from the caller's scope in its own stack."""
    import asyncio

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(wrap(fn), *args, **kwargs))
