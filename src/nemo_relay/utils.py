"""Helpers for mixing synchronous and asynchronous code without losing the scope stack."""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from nemo_relay._core import aio as _aio
from nemo_relay._core.context import get_scope_stack

__all__ = ["run_sync"]

T = TypeVar("T")

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
