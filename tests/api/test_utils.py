"""run_sync and the context-propagating helpers for thread pools."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import nemo_relay
from nemo_relay import ScopeType, scope, subscribers, utils

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_run_sync_without_a_loop_sees_the_same_stack():
    stack = nemo_relay.get_scope_stack()

    async def probe() -> object:
        return nemo_relay.get_scope_stack()

    assert utils.run_sync(probe()) is stack


async def test_run_sync_inside_a_loop_runs_on_a_worker_and_sees_the_same_stack():
    stack = nemo_relay.get_scope_stack()

    async def probe() -> tuple[object, str]:
        return nemo_relay.get_scope_stack(), threading.current_thread().name

    seen_stack, thread_name = utils.run_sync(probe())
    assert seen_stack is stack
    assert thread_name.startswith("nemo-relay-run-sync")


def test_plain_thread_pool_work_loses_its_parent_but_the_propagating_executor_keeps_it(events):
    def work(label: str) -> str:
        with scope.scope(label, ScopeType.Function) as handle:
            return handle.parent_uuid  # type: ignore[return-value]

    with scope.scope("request", ScopeType.Agent) as request:
        with utils.ContextPropagatingExecutor(max_workers=2) as pool:
            parents = [pool.submit(work, f"job-{i}").result() for i in range(4)]
        with ThreadPoolExecutor(max_workers=1) as plain:
            orphan_parent = plain.submit(work, "orphan").result()
    assert parents == [request.uuid] * 4
    assert orphan_parent != request.uuid  # the problem the helper solves
    events.flush()
    started = [e for e in events if getattr(e, "scope_category", None) == "start" and e.name.startswith("job-")]
    assert {e.parent_uuid for e in started} == {request.uuid}


def test_wrap_carries_context_variables_and_isolates_concurrent_calls():
    barrier = threading.Barrier(2, timeout=10)
    seen: list[tuple[str, str, str | None]] = []

    def work(label: str) -> None:
        handle = scope.push(label, ScopeType.Function)
        barrier.wait()  # both calls are inside their own scope at the same time
        seen.append((label, REQUEST_ID.get(), scope.get_handle().name))
        scope.pop(handle)

    token = REQUEST_ID.set("req-7")
    try:
        with scope.scope("outer", ScopeType.Agent):
            bound = utils.wrap(work)
        threads = [threading.Thread(target=bound, args=(f"t{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        REQUEST_ID.reset(token)
    assert sorted(seen) == [("t0", "req-7", "t0"), ("t1", "req-7", "t1")]


@pytest.mark.timeout(30)
async def test_to_thread_nests_under_the_callers_scope(events):
    def work() -> str | None:
        with scope.scope("in-thread", ScopeType.Function) as handle:
            return handle.parent_uuid

    with scope.scope("caller", ScopeType.Agent) as caller:
        parent = await utils.to_thread(work)
        top_after = scope.get_handle().uuid
    assert parent == caller.uuid
    assert top_after == caller.uuid  # the worker's scopes never landed on the caller's stack
    await subscribers.flush_async()
    assert [e.name for e in events if getattr(e, "scope_category", None) == "start"] == ["caller", "in-thread"]
    assert asyncio.get_running_loop().is_running()
