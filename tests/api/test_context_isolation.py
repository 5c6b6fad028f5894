"""Which scope stack is current: per-context and per-thread isolation, explicit bindings, forks, scope-local
subscribers, and the environment (stack snapshot and contextvars) that subscriber callbacks run in."""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import nemo_relay
from nemo_relay import ScopeType, scope, scope_local, subscribers
from nemo_relay._native import capture_thread_scope_stack, restore_thread_scope_stack

T = TypeVar("T")

NO_STACK_MESSAGE = (
    "no active scope stack in current context; call nemo_relay.get_scope_stack() or nemo_relay.scope.push() first"
)

_cv: contextvars.ContextVar[str] = contextvars.ContextVar("test_context_isolation_cv", default="unset")


def run_in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a brand-new OS thread (fresh context, no thread binding) and return its result."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "worker thread did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def phase(event: Any) -> str:
    return getattr(event, "scope_category", "mark")


def flush() -> None:
    assert subscribers.flush(timeout=10), "dispatcher did not drain within 10 s"


async def flush_async() -> None:
    assert await subscribers.flush_async(timeout=10), "dispatcher did not drain within 10 s"


# --- stacks, contexts and threads -------------------------------------------------------------------


def test_create_scope_stack_repr_and_is_not_installed():
    created = nemo_relay.create_scope_stack()
    assert repr(created) == "<ScopeStack>"
    assert isinstance(created, nemo_relay.ScopeStack)
    assert created is not nemo_relay.create_scope_stack()
    assert nemo_relay.get_scope_stack() is not created
    assert nemo_relay._scope_stack_var.get() is not created


def test_get_scope_stack_is_stable_within_a_context():
    first = nemo_relay.get_scope_stack()
    handle = scope.push("outer", ScopeType.Agent)
    assert nemo_relay.get_scope_stack() is first
    assert nemo_relay._scope_stack_var.get() is first
    scope.pop(handle)
    assert nemo_relay.get_scope_stack() is first


def test_new_thread_gets_an_isolated_stack_with_its_own_root():
    main_stack = nemo_relay.get_scope_stack()
    main_root = scope.get_handle()
    outer = scope.push("main-scope", ScopeType.Agent)

    def probe() -> tuple[Any, str, str, Any, Any]:
        top = scope.get_handle()
        return nemo_relay.get_scope_stack(), top.name, top.uuid, top.parent_uuid, top.scope_type

    first_stack, name, first_root, parent, scope_type = run_in_thread(probe)
    second_stack, _, second_root, _, _ = run_in_thread(probe)
    assert first_stack is not main_stack and second_stack is not main_stack and first_stack is not second_stack
    assert name == "root" and parent is None and scope_type == ScopeType.Agent
    assert len({main_root.uuid, first_root, second_root, outer.uuid}) == 4
    # The main context is untouched by the workers.
    assert scope.get_handle().uuid == outer.uuid
    scope.pop(outer)


async def test_tasks_created_after_a_stack_exists_share_it():
    stack = nemo_relay.get_scope_stack()

    async def push_in_task() -> Any:
        assert nemo_relay.get_scope_stack() is stack
        return scope.push("pushed-in-task", ScopeType.Function)

    handle = await asyncio.create_task(push_in_task())
    # Same mutable stack: the task's push is the parent's top.
    assert scope.get_handle().uuid == handle.uuid
    scope.pop(handle)
    assert scope.get_handle().name == "root"


async def test_tasks_created_without_a_stack_get_their_own():
    parent_stack = nemo_relay.get_scope_stack()

    async def lazily_created() -> tuple[Any, str]:
        assert nemo_relay._scope_stack_var.get(None) is None
        return nemo_relay.get_scope_stack(), scope.get_handle().uuid

    first = asyncio.create_task(lazily_created(), context=contextvars.Context())
    second = asyncio.create_task(lazily_created(), context=contextvars.Context())
    (first_stack, first_root), (second_stack, second_root) = await asyncio.gather(first, second)
    assert first_stack is not second_stack
    assert parent_stack not in (first_stack, second_stack)
    assert first_root != second_root
    assert scope.get_handle().uuid not in (first_root, second_root)


async def test_setting_the_context_var_inside_a_task_isolates_it():
    parent_top = scope.push("parent", ScopeType.Agent)
    pushed = asyncio.Event()
    release = asyncio.Event()

    async def isolated() -> tuple[Any, Any]:
        own = nemo_relay.create_scope_stack()
        nemo_relay._scope_stack_var.set(own)
        handle = scope.push("task-scope", ScopeType.Agent)
        pushed.set()
        await release.wait()
        assert nemo_relay.get_scope_stack() is own
        top = scope.get_handle()
        scope.pop(handle)
        return handle, top

    async def sharing() -> str:
        await pushed.wait()
        return scope.get_handle().uuid

    task = asyncio.create_task(isolated())
    assert await asyncio.create_task(sharing()) == parent_top.uuid
    assert scope.get_handle().uuid == parent_top.uuid
    release.set()
    handle, top = await task
    assert top.uuid == handle.uuid
    assert handle.parent_uuid != parent_top.uuid
    scope.pop(parent_top)


async def test_concurrent_scope_exits_on_task_owned_stacks(events):
    rng = random.Random(7)
    delays = [[rng.uniform(0, 0.003) for _ in range(3)] for _ in range(20)]

    async def worker(index: int) -> tuple[str, str, str]:
        nemo_relay._scope_stack_var.set(nemo_relay.create_scope_stack())
        root = scope.get_handle().uuid
        with scope.scope(f"task-{index}", ScopeType.Agent) as outer:
            await asyncio.sleep(delays[index][0])
            with scope.scope(f"task-{index}-inner", ScopeType.Function) as inner:
                await asyncio.sleep(delays[index][1])
                assert scope.get_handle().uuid == inner.uuid
            await asyncio.sleep(delays[index][2])
            assert scope.get_handle().uuid == outer.uuid
        assert scope.get_handle().uuid == root
        return root, outer.uuid, inner.uuid

    results = await asyncio.gather(*(worker(i) for i in range(20)))
    await flush_async()
    by_uuid: dict[str, list[Any]] = {}
    for event in events:
        by_uuid.setdefault(event.uuid, []).append(event)
    assert len(events) == 4 * 20
    for index, (root, outer, inner) in enumerate(results):
        assert [phase(e) for e in by_uuid[outer]] == ["start", "end"]
        assert [phase(e) for e in by_uuid[inner]] == ["start", "end"]
        assert {e.parent_uuid for e in by_uuid[outer]} == {root}
        assert {e.parent_uuid for e in by_uuid[inner]} == {outer}
        assert by_uuid[outer][1].name == f"task-{index}"
        assert by_uuid[outer][1].metadata == {"otel.status_code": "OK"}
    assert len({root for root, _, _ in results}) == 20


# --- thread bindings ----------------------------------------------------------------------------------


def test_scope_stack_active_is_false_in_a_fresh_thread():
    assert run_in_thread(nemo_relay.scope_stack_active) is False


def test_scope_stack_active_after_get_scope_stack_in_a_thread():
    def probe() -> tuple[bool, bool]:
        before = nemo_relay.scope_stack_active()
        nemo_relay.get_scope_stack()
        return before, nemo_relay.scope_stack_active()

    assert run_in_thread(probe) == (False, True)


def test_scope_stack_active_after_set_thread_scope_stack_in_a_thread():
    def probe() -> tuple[bool, bool, Any]:
        before = nemo_relay.scope_stack_active()
        nemo_relay.set_thread_scope_stack(nemo_relay.create_scope_stack())
        # The explicit binding does not touch the ContextVar.
        return before, nemo_relay.scope_stack_active(), nemo_relay._scope_stack_var.get(None)

    assert run_in_thread(probe) == (False, True, None)


def test_native_capture_and_restore_of_a_thread_binding():
    def probe() -> tuple[bool, bool, bool]:
        unbound = capture_thread_scope_stack()
        nemo_relay.set_thread_scope_stack(nemo_relay.create_scope_stack())
        bound = nemo_relay.scope_stack_active()
        restore_thread_scope_stack(unbound)
        return nemo_relay.scope_stack_active(), bound, nemo_relay._scope_stack_var.get(None) is None

    assert run_in_thread(probe) == (False, True, True)


def test_propagate_scope_to_thread_raises_in_a_fresh_thread():
    with pytest.raises(RuntimeError) as info:
        run_in_thread(nemo_relay.propagate_scope_to_thread)
    assert str(info.value) == NO_STACK_MESSAGE


def test_propagate_scope_to_thread_works_across_threads(events):
    parent = scope.push("parent_scope", ScopeType.Agent)
    stack = nemo_relay.propagate_scope_to_thread()
    assert repr(stack) == "<ScopeStack>"
    assert stack is nemo_relay.get_scope_stack()

    def worker() -> tuple[str, str, Any]:
        nemo_relay.set_thread_scope_stack(stack)
        seen = scope.get_handle()
        child = scope.push("worker_child", ScopeType.Function)
        scope.pop(child)
        return seen.name, seen.uuid, child

    name, uuid, child = run_in_thread(worker)
    assert (name, uuid) == ("parent_scope", parent.uuid)
    assert child.parent_uuid == parent.uuid
    assert scope.get_handle().uuid == parent.uuid
    scope.pop(parent)
    assert events.names() == [
        ("start", "parent_scope"),
        ("start", "worker_child"),
        ("end", "worker_child"),
        ("end", "parent_scope"),
    ]
    assert events[1].parent_uuid == parent.uuid


def test_propagate_scope_to_thread_with_only_an_explicit_binding_returns_that_stack():
    def probe() -> tuple[bool, Any]:
        bound = nemo_relay.create_scope_stack()
        nemo_relay.set_thread_scope_stack(bound)
        return nemo_relay.propagate_scope_to_thread() is bound, nemo_relay._scope_stack_var.get(None)

    assert run_in_thread(probe) == (True, None)


def test_worker_with_set_thread_scope_stack_sees_the_root():
    def worker() -> tuple[str, Any]:
        nemo_relay.set_thread_scope_stack(nemo_relay.create_scope_stack())
        top = scope.get_handle()
        return top.name, top.parent_uuid

    assert run_in_thread(worker) == ("root", None)


def test_pushes_in_a_bound_thread_land_on_the_bound_stack():
    bound = nemo_relay.create_scope_stack()

    def worker() -> str:
        nemo_relay.set_thread_scope_stack(bound)
        return scope.push("pushed-by-worker", ScopeType.Agent).uuid

    pushed = run_in_thread(worker)
    assert scope.get_handle().name == "root"
    with nemo_relay.use_scope_stack(bound):
        assert scope.get_handle().uuid == pushed
        assert scope.get_handle().name == "pushed-by-worker"


# --- use_scope_stack ----------------------------------------------------------------------------------


def test_use_scope_stack_yields_the_stack_and_restores_the_context_var():
    outer = nemo_relay.get_scope_stack()
    outer_scope = scope.push("outer", ScopeType.Agent)
    other = nemo_relay.create_scope_stack()
    with nemo_relay.use_scope_stack(other) as yielded:
        assert yielded is other
        assert nemo_relay._scope_stack_var.get() is other
        assert nemo_relay.get_scope_stack() is other
        assert scope.get_handle().name == "root"
        inner = scope.push("inner", ScopeType.Function)
        assert inner.parent_uuid != outer_scope.uuid
    assert nemo_relay._scope_stack_var.get() is outer
    assert nemo_relay.get_scope_stack() is outer
    assert scope.get_handle().uuid == outer_scope.uuid
    with nemo_relay.use_scope_stack(other):
        # The push made inside the first block stayed on ``other``.
        assert scope.get_handle().uuid == inner.uuid
        scope.pop(inner)
    scope.pop(outer_scope)


def test_use_scope_stack_nested_uses_restore_in_order():
    outer = nemo_relay.get_scope_stack()
    first, second = nemo_relay.create_scope_stack(), nemo_relay.create_scope_stack()
    with nemo_relay.use_scope_stack(first):
        a = scope.push("a", ScopeType.Agent)
        with nemo_relay.use_scope_stack(second):
            b = scope.push("b", ScopeType.Agent)
            assert nemo_relay.get_scope_stack() is second
            with nemo_relay.use_scope_stack(first):
                assert scope.get_handle().uuid == a.uuid
            assert nemo_relay.get_scope_stack() is second
            assert scope.get_handle().uuid == b.uuid
        assert nemo_relay.get_scope_stack() is first
        assert scope.get_handle().uuid == a.uuid
    assert nemo_relay.get_scope_stack() is outer
    assert scope.get_handle().name == "root"


def test_use_scope_stack_restores_after_an_exception():
    outer = nemo_relay.get_scope_stack()
    token = nemo_relay._propagation_root_var.set("outer-root-marker")
    try:
        with pytest.raises(KeyError), nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
            scope.push("left-open", ScopeType.Agent)
            raise KeyError("boom")
        assert nemo_relay._scope_stack_var.get() is outer
        assert scope.get_handle().name == "root"
        assert nemo_relay._propagation_root_var.get() == "outer-root-marker"
    finally:
        nemo_relay._propagation_root_var.reset(token)


def test_use_scope_stack_in_a_fresh_thread_leaves_no_binding_behind():
    def probe() -> tuple[bool, bool, Any, bool]:
        with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
            inside = nemo_relay.scope_stack_active()
        after = nemo_relay.scope_stack_active()
        with pytest.raises(ValueError), nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
            raise ValueError("boom")
        return inside, after, nemo_relay._scope_stack_var.get(None), nemo_relay.scope_stack_active()

    assert run_in_thread(probe) == (True, False, None, False)


def test_use_scope_stack_restores_an_explicit_thread_binding():
    def probe() -> dict[str, Any]:
        bound = nemo_relay.create_scope_stack()
        nemo_relay.set_thread_scope_stack(bound)
        pinned = scope.push("in_explicit", ScopeType.Agent)
        seen: dict[str, Any] = {}
        with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
            seen["inside"] = (scope.get_handle().name, nemo_relay.scope_stack_active())
        seen["after"] = (scope.get_handle().uuid == pinned.uuid, nemo_relay.scope_stack_active())
        with pytest.raises(RuntimeError), nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
            raise RuntimeError("boom")
        seen["after_error"] = (scope.get_handle().uuid == pinned.uuid, nemo_relay.scope_stack_active())
        seen["context_var"] = nemo_relay._scope_stack_var.get(None)
        seen["propagated_is_bound"] = nemo_relay.propagate_scope_to_thread() is bound
        return seen

    assert run_in_thread(probe) == {
        "inside": ("root", True),
        "after": (True, True),
        "after_error": (True, True),
        "context_var": None,
        "propagated_is_bound": True,
    }


def test_use_scope_stack_sets_the_propagation_root_var():
    token = nemo_relay._propagation_root_var.set("outer-root-marker")
    try:
        fresh = nemo_relay.create_scope_stack()
        with nemo_relay.use_scope_stack(fresh):
            assert nemo_relay._propagation_root_var.get() is None
            first = scope.push("first", ScopeType.Agent)
            scope.push("second", ScopeType.Function)
        # ``fresh`` now has a first scope above its root: that scope is the trace root.
        with nemo_relay.use_scope_stack(fresh):
            assert nemo_relay._propagation_root_var.get() == first.uuid.replace("-", "")
        assert nemo_relay._propagation_root_var.get() == "outer-root-marker"

        root = "0190a1b2-0000-7e5f-8a6b-1c2d3e4f5a6b"
        parent = "0190a1b2-1111-7e5f-8a6b-1c2d3e4f5a6b"
        rooted = nemo_relay.create_scope_stack_from_propagation(nemo_relay.PropagationContext(parent, root))
        with nemo_relay.use_scope_stack(rooted):
            assert nemo_relay._propagation_root_var.get() == root.replace("-", "")
        same = nemo_relay.create_scope_stack_from_propagation(nemo_relay.PropagationContext(parent, parent))
        with nemo_relay.use_scope_stack(same):
            assert nemo_relay._propagation_root_var.get() == parent.replace("-", "")
        rootless = nemo_relay.create_scope_stack_from_propagation(nemo_relay.PropagationContext(parent))
        with nemo_relay.use_scope_stack(rootless):
            assert nemo_relay._propagation_root_var.get() is None
        assert nemo_relay._propagation_root_var.get() == "outer-root-marker"
    finally:
        nemo_relay._propagation_root_var.reset(token)


# --- fork_asyncio_context -----------------------------------------------------------------------------


async def test_fork_child_continues_from_the_parent_top(events):
    parent = scope.push("parent", ScopeType.Agent)
    ctx = nemo_relay.fork_asyncio_context()

    async def child() -> tuple[Any, Any]:
        top = scope.get_handle()
        pushed = scope.push("child", ScopeType.Function)
        scope.event("child-mark")
        scope.pop(pushed)
        return top, pushed

    top, pushed = await asyncio.get_running_loop().create_task(child(), context=ctx)
    assert top.name == "propagated-root"
    assert top.uuid == parent.uuid
    assert top.scope_type == ScopeType.Agent
    assert top.parent_uuid is None
    assert pushed.parent_uuid == parent.uuid
    assert scope.get_handle().uuid == parent.uuid
    scope.pop(parent)
    await flush_async()
    assert [(phase(e), e.name) for e in events] == [
        ("start", "parent"),
        ("start", "child"),
        ("mark", "child-mark"),
        ("end", "child"),
        ("end", "parent"),
    ]
    assert events[1].parent_uuid == parent.uuid
    assert events[2].parent_uuid == pushed.uuid


async def test_fork_siblings_are_isolated():
    parent = scope.push("parent", ScopeType.Agent)
    both_pushed = asyncio.Barrier(3)

    async def sibling(name: str) -> tuple[str, str, str]:
        own = scope.push(name, ScopeType.Function)
        await both_pushed.wait()
        seen = scope.get_handle().uuid
        scope.pop(own)
        return own.uuid, seen, own.parent_uuid

    loop = asyncio.get_running_loop()
    first = loop.create_task(sibling("first"), context=nemo_relay.fork_asyncio_context())
    second = loop.create_task(sibling("second"), context=nemo_relay.fork_asyncio_context())
    await both_pushed.wait()
    assert scope.get_handle().uuid == parent.uuid
    (first_uuid, first_seen, first_parent), (second_uuid, second_seen, second_parent) = await asyncio.gather(
        first, second
    )
    assert first_seen == first_uuid and second_seen == second_uuid
    assert first_parent == second_parent == parent.uuid
    assert scope.get_handle().uuid == parent.uuid
    scope.pop(parent)


def test_fork_preserves_other_context_vars():
    _cv.set("outer")
    ctx = nemo_relay.fork_asyncio_context()
    assert ctx.run(_cv.get) == "outer"
    ctx.run(_cv.set, "inner")
    assert ctx.run(_cv.get) == "inner"
    assert _cv.get() == "outer"


def test_fork_gives_a_distinct_stack_per_fork():
    parent_stack = nemo_relay.get_scope_stack()
    first_ctx = nemo_relay.fork_asyncio_context()
    second_ctx = nemo_relay.fork_asyncio_context()
    first = first_ctx.run(nemo_relay.get_scope_stack)
    second = second_ctx.run(nemo_relay.get_scope_stack)
    assert first is not second
    assert parent_stack not in (first, second)
    assert first_ctx[nemo_relay._scope_stack_var] is first
    assert nemo_relay.get_scope_stack() is parent_stack


async def test_fork_does_not_apply_parent_scope_local_subscribers(events):
    owner = scope.push("owner", ScopeType.Agent)
    local: list[Any] = []
    scope_local.register_subscriber(owner, "owner-local", local.append)
    ctx = nemo_relay.fork_asyncio_context()

    async def child() -> None:
        with scope.scope("child-work", ScopeType.Function):
            scope.event("child-mark")

    await asyncio.get_running_loop().create_task(child(), context=ctx)
    scope.event("parent-mark")
    scope.pop(owner)
    await flush_async()
    assert [(phase(e), e.name) for e in local] == [("mark", "parent-mark"), ("end", "owner")]
    # Global subscribers still see the child's events.
    assert [(phase(e), e.name) for e in events] == [
        ("start", "owner"),
        ("start", "child-work"),
        ("mark", "child-mark"),
        ("end", "child-work"),
        ("mark", "parent-mark"),
        ("end", "owner"),
    ]


# --- scope-local subscribers --------------------------------------------------------------------------


def test_scope_local_subscriber_owner_must_be_on_the_current_stack():
    with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
        foreign = scope.push("foreign", ScopeType.Agent)
    expected = f"not found: scope {foreign.uuid} not found"
    with pytest.raises(RuntimeError) as info:
        scope_local.register_subscriber(foreign, "sub", lambda event: None)
    assert str(info.value) == expected
    with pytest.raises(RuntimeError) as info:
        scope_local.deregister_subscriber(foreign, "sub")
    assert str(info.value) == expected


def test_scope_local_subscriber_after_the_owner_was_popped():
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_subscriber(owner, "sub", lambda event: None)
    scope.pop(owner)
    expected = f"not found: scope {owner.uuid} not found"
    with pytest.raises(RuntimeError) as info:
        scope_local.register_subscriber(owner, "sub2", lambda event: None)
    assert str(info.value) == expected
    with pytest.raises(RuntimeError) as info:
        scope_local.deregister_subscriber(owner, "sub")
    assert str(info.value) == expected


def test_scope_local_subscriber_sees_descendants_marks_and_the_owner_end(events):
    scope.event("before-owner")
    owner = scope.push("owner", ScopeType.Agent)
    local: list[Any] = []
    scope_local.register_subscriber(owner, "local", local.append)
    child = scope.push("child", ScopeType.Function)
    grandchild = scope.push("grandchild", ScopeType.Tool)
    scope.event("deep-mark")
    scope.pop(grandchild)
    scope.pop(child)
    scope.event("owner-mark")
    scope.pop(owner)
    scope.event("after-owner")
    with scope.scope("sibling", ScopeType.Agent):
        scope.event("sibling-mark")
    flush()
    assert [(phase(e), e.name) for e in local] == [
        ("start", "child"),
        ("start", "grandchild"),
        ("mark", "deep-mark"),
        ("end", "grandchild"),
        ("end", "child"),
        ("mark", "owner-mark"),
        ("end", "owner"),
    ]
    assert len(events) == 13


def test_scope_local_subscriber_duplicate_name():
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_subscriber(owner, "dup", lambda event: None)
    with pytest.raises(RuntimeError) as info:
        scope_local.register_subscriber(owner, "dup", lambda event: None)
    assert str(info.value) == "already exists: dup subscriber already exists"
    scope.pop(owner)


def test_scope_local_subscriber_deregister_returns_true_then_false():
    owner = scope.push("owner", ScopeType.Agent)
    local: list[Any] = []
    scope_local.register_subscriber(owner, "local", local.append)
    scope.event("while-registered")
    assert scope_local.deregister_subscriber(owner, "local") is True
    assert scope_local.deregister_subscriber(owner, "local") is False
    assert scope_local.deregister_subscriber(owner, "never-registered") is False
    scope.event("after-deregister")
    scope.pop(owner)
    flush()
    assert [e.name for e in local] == ["while-registered"]


def test_queued_events_keep_their_subscriber_snapshot_after_deregistration():
    gate = threading.Event()
    entered = threading.Event()

    def blocker(event: Any) -> None:
        if event.name == "gate":
            entered.set()
            gate.wait(5)

    subscribers.register("blocker", blocker)
    owner = scope.push("owner", ScopeType.Agent)
    local: list[Any] = []
    scope_local.register_subscriber(owner, "local", local.append)
    scope.event("gate")
    assert entered.wait(5), "the dispatcher never reached the gate event"
    scope.event("queued")  # queued behind the blocked delivery
    assert scope_local.deregister_subscriber(owner, "local") is True
    scope.event("after-deregister")
    gate.set()
    flush()
    assert [e.name for e in local] == ["gate", "queued"]
    scope.pop(owner)


async def test_scope_local_registration_is_invisible_to_another_tasks_events(events):
    registered = asyncio.Event()
    other_done = asyncio.Event()
    local: list[Any] = []
    owner_box: list[Any] = []

    async def owning_task() -> None:
        nemo_relay._scope_stack_var.set(nemo_relay.create_scope_stack())
        owner = scope.push("owner", ScopeType.Agent)
        owner_box.append(owner)
        scope_local.register_subscriber(owner, "task-local", local.append)
        registered.set()
        await other_done.wait()
        scope.event("owner-mark")
        scope.pop(owner)

    async def other_task() -> str:
        nemo_relay._scope_stack_var.set(nemo_relay.create_scope_stack())
        await registered.wait()
        with scope.scope("other", ScopeType.Agent):
            scope.event("other-mark")
        try:
            scope_local.register_subscriber(owner_box[0], "intruder", local.append)
        except RuntimeError as exc:
            return str(exc)
        finally:
            other_done.set()
        return "registered"

    _, message = await asyncio.gather(owning_task(), other_task())
    await flush_async()
    assert message == f"not found: scope {owner_box[0].uuid} not found"
    assert [(phase(e), e.name) for e in local] == [("mark", "owner-mark"), ("end", "owner")]
    assert sorted(e.name for e in events) == ["other", "other", "other-mark", "owner", "owner", "owner-mark"]


# --- the environment subscriber callbacks run in -----------------------------------------------------


def test_subscriber_runs_with_the_emission_snapshot_as_current_stack():
    seen: list[tuple[str, str, str, str]] = []

    def record(event: Any) -> None:
        top = scope.get_handle()
        seen.append((phase(event), event.name, top.name, top.uuid))

    subscribers.register("snapshot-recorder", record)
    outer = scope.push("outer", ScopeType.Agent)
    inner = scope.push("inner", ScopeType.Function)
    scope.event("inner-mark")
    scope.pop(inner)
    scope.event("outer-mark")
    scope.pop(outer)
    # By delivery time the live stack is back at the root; callbacks still see the emission-time stack.
    flush()
    assert seen == [
        ("start", "outer", "outer", outer.uuid),
        ("start", "inner", "inner", inner.uuid),
        ("mark", "inner-mark", "inner", inner.uuid),
        ("end", "inner", "inner", inner.uuid),
        ("mark", "outer-mark", "outer", outer.uuid),
        ("end", "outer", "outer", outer.uuid),
    ]
    assert scope.get_handle().name == "root"


def test_mark_emitted_from_a_subscriber_gets_the_snapshot_parent(events):
    def emit_from_subscriber(event: Any) -> None:
        if phase(event) in ("start", "end") and event.name == "outer":
            scope.event(f"from-sub-{phase(event)}")

    subscribers.register("emitter", emit_from_subscriber)
    outer = scope.push("outer", ScopeType.Agent)
    scope.pop(outer)
    flush()  # delivers outer start/end; their nested marks are queued behind this barrier
    flush()
    marks = {e.name: e for e in events if phase(e) == "mark"}
    assert set(marks) == {"from-sub-start", "from-sub-end"}
    assert marks["from-sub-start"].parent_uuid == outer.uuid
    assert marks["from-sub-end"].parent_uuid == outer.uuid
    assert scope.get_handle().name == "root"


def test_subscriber_sees_the_emitters_context_var_values():
    seen: list[tuple[str, str]] = []
    subscribers.register("cv-recorder", lambda event: seen.append((event.name, _cv.get())))
    _cv.set("first")
    scope.event("one")
    _cv.set("second")
    scope.event("two")
    _cv.set("changed-before-delivery")
    flush()
    assert seen == [("one", "first"), ("two", "second")]


async def test_concurrent_emitters_each_see_their_own_context_var_values():
    seen: list[tuple[str, str]] = []
    subscribers.register("cv-recorder", lambda event: seen.append((event.name, _cv.get())))
    rng = random.Random(11)
    delays = [rng.uniform(0, 0.003) for _ in range(12)]

    async def emitter(index: int) -> None:
        value = f"v{index}"
        _cv.set(value)
        await asyncio.sleep(delays[index])
        scope.event(f"loop-{value}")
        await asyncio.to_thread(scope.event, f"thread-{value}")
        _cv.set(f"overwritten-{index}")

    await asyncio.gather(*(emitter(i) for i in range(12)))
    await flush_async()
    assert len(seen) == 24
    for name, value in seen:
        assert name.split("-", 1)[1] == value
    assert {name for name, _ in seen} == {f"{kind}-v{i}" for kind in ("loop", "thread") for i in range(12)}
