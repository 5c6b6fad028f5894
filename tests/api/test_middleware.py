"""Middleware registries: naming, priority and merge order, scope-local ownership, snapshots, tool/LLM
sanitize chains and event metadata injectors, all observed through the public API."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nemo_relay
from nemo_relay import (
    LLMRequest,
    ScopeType,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
    event_metadata,
    guardrails,
    intercepts,
    llm,
    scope,
    scope_local,
    subscribers,
    tools,
)

# --- helpers ------------------------------------------------------------------------------------------


def _noop(*args: Any) -> None:
    return None


def _keep_fields(event: Any, fields: Any) -> Any:
    return fields


def _no_attributes(event: Any) -> dict[str, Any]:
    return {}


def _raise(*args: Any) -> Any:
    raise ValueError("sanitizer boom")


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


class Blocker:
    """A subscriber that holds the dispatcher on the mark named ``block`` until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, event: Any) -> None:
        if event.name == "block":
            self.entered.set()
            self.released.wait(30)  # safety net: every test releases explicitly or at teardown

    def hold(self) -> None:
        """Emit the blocking mark and wait until the dispatcher is stuck on it."""
        scope.event("block")
        assert self.entered.wait(10), "dispatcher never reached the blocking mark"

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def blocker(events) -> Iterator[Blocker]:
    """A blocking subscriber registered after ``events``; always released at teardown."""
    gate = Blocker()
    subscribers.register("test-blocker", gate)
    try:
        yield gate
    finally:
        gate.release()
        assert subscribers.flush(timeout=10)


def appender(label: str) -> Callable[[str, Any], Any]:
    """A tool request intercept that appends ``label`` to ``args["order"]``."""

    def intercept(name: str, args: Any) -> Any:
        return {**args, "order": [*args.get("order", []), label]}

    return intercept


def request_order() -> list[str]:
    result = tools.request_intercepts("tool", {})
    return result.get("order", [])  # type: ignore[union-attr]


def marks_named(recorder: Any, name: str) -> list[Any]:
    return [event for event in recorder.flush() if event.name == name]


# --- the families ---------------------------------------------------------------------------------------

# (id, register(name, *rest), deregister(name), rest)
GLOBAL_FAMILIES = [
    ("tool_sanitize_request", guardrails.register_tool_sanitize_request, guardrails.deregister_tool_sanitize_request,
     (0, _noop)),
    ("tool_sanitize_response", guardrails.register_tool_sanitize_response,
     guardrails.deregister_tool_sanitize_response, (0, _noop)),
    ("tool_conditional_execution", guardrails.register_tool_conditional_execution,
     guardrails.deregister_tool_conditional_execution, (0, _noop)),
    ("llm_sanitize_request", guardrails.register_llm_sanitize_request, guardrails.deregister_llm_sanitize_request,
     (0, _noop)),
    ("llm_sanitize_response", guardrails.register_llm_sanitize_response, guardrails.deregister_llm_sanitize_response,
     (0, _noop)),
    ("llm_conditional_execution", guardrails.register_llm_conditional_execution,
     guardrails.deregister_llm_conditional_execution, (0, _noop)),
    ("mark_sanitize", guardrails.register_mark_sanitize, guardrails.deregister_mark_sanitize, (0, _keep_fields)),
    ("scope_sanitize_start", guardrails.register_scope_sanitize_start, guardrails.deregister_scope_sanitize_start,
     (0, _keep_fields)),
    ("scope_sanitize_end", guardrails.register_scope_sanitize_end, guardrails.deregister_scope_sanitize_end,
     (0, _keep_fields)),
    ("tool_request", intercepts.register_tool_request, intercepts.deregister_tool_request, (0, False, _noop)),
    ("tool_execution", intercepts.register_tool_execution, intercepts.deregister_tool_execution, (0, _noop)),
    ("llm_request", intercepts.register_llm_request, intercepts.deregister_llm_request, (0, False, _noop)),
    ("llm_execution", intercepts.register_llm_execution, intercepts.deregister_llm_execution, (0, _noop)),
    ("llm_stream_execution", intercepts.register_llm_stream_execution, intercepts.deregister_llm_stream_execution,
     (0, _noop)),
    ("event_metadata_injector", event_metadata.register_injector, event_metadata.deregister_injector,
     (0, _no_attributes)),
    ("subscriber", subscribers.register, subscribers.deregister, (_noop,)),
]  # fmt: skip

# (id, register(owner, name, *rest), deregister(owner, name), rest)
LOCAL_FAMILIES = [
    ("event_metadata_injector", scope_local.register_event_metadata_injector,
     scope_local.deregister_event_metadata_injector, (0, _no_attributes)),
    ("mark_sanitize", scope_local.register_mark_sanitize, scope_local.deregister_mark_sanitize, (0, _keep_fields)),
    ("scope_sanitize_start", scope_local.register_scope_sanitize_start, scope_local.deregister_scope_sanitize_start,
     (0, _keep_fields)),
    ("scope_sanitize_end", scope_local.register_scope_sanitize_end, scope_local.deregister_scope_sanitize_end,
     (0, _keep_fields)),
    ("tool_sanitize_request", scope_local.register_tool_sanitize_request,
     scope_local.deregister_tool_sanitize_request, (0, _noop)),
    ("tool_sanitize_response", scope_local.register_tool_sanitize_response,
     scope_local.deregister_tool_sanitize_response, (0, _noop)),
    ("tool_conditional_execution", scope_local.register_tool_conditional_execution,
     scope_local.deregister_tool_conditional_execution, (0, _noop)),
    ("tool_request", scope_local.register_tool_request, scope_local.deregister_tool_request, (0, False, _noop)),
    ("tool_execution", scope_local.register_tool_execution, scope_local.deregister_tool_execution, (0, _noop)),
    ("llm_sanitize_request", scope_local.register_llm_sanitize_request, scope_local.deregister_llm_sanitize_request,
     (0, _noop)),
    ("llm_sanitize_response", scope_local.register_llm_sanitize_response,
     scope_local.deregister_llm_sanitize_response, (0, _noop)),
    ("llm_conditional_execution", scope_local.register_llm_conditional_execution,
     scope_local.deregister_llm_conditional_execution, (0, _noop)),
    ("llm_request", scope_local.register_llm_request, scope_local.deregister_llm_request, (0, False, _noop)),
    ("llm_execution", scope_local.register_llm_execution, scope_local.deregister_llm_execution, (0, _noop)),
    ("llm_stream_execution", scope_local.register_llm_stream_execution,
     scope_local.deregister_llm_stream_execution, (0, _noop)),
    ("subscriber", scope_local.register_subscriber, scope_local.deregister_subscriber, (_noop,)),
]  # fmt: skip

GLOBAL_PARAMS = [pytest.param(reg, dereg, rest, id=fid) for fid, reg, dereg, rest in GLOBAL_FAMILIES]
LOCAL_PARAMS = [pytest.param(reg, dereg, rest, id=fid) for fid, reg, dereg, rest in LOCAL_FAMILIES]


def _duplicate_message(register: Any, name: str) -> str:
    kind = " subscriber" if register in (subscribers.register, scope_local.register_subscriber) else ""
    return f"already exists: {name}{kind} already exists"


def test_every_public_registration_function_is_covered():
    covered = {reg for _, reg, _, _ in GLOBAL_FAMILIES} | {dereg for _, _, dereg, _ in GLOBAL_FAMILIES}
    for module in (guardrails, intercepts, event_metadata):
        for name in module.__all__:
            if name.startswith(("register_", "deregister_")):
                assert getattr(module, name) in covered, name
    local = {reg for _, reg, _, _ in LOCAL_FAMILIES} | {dereg for _, _, dereg, _ in LOCAL_FAMILIES}
    assert {getattr(scope_local, name) for name in scope_local.__all__} == local


# --- names: duplicates and deregistration ----------------------------------------------------------------


@pytest.mark.parametrize(("register", "deregister", "rest"), GLOBAL_PARAMS)
def test_global_duplicate_name_raises_already_exists(register, deregister, rest):
    register("dup", *rest)
    with pytest.raises(RuntimeError, match=_exact(_duplicate_message(register, "dup"))):
        register("dup", *rest)
    assert deregister("dup") is True  # the original registration is intact


@pytest.mark.parametrize(("register", "deregister", "rest"), GLOBAL_PARAMS)
def test_global_deregister_unknown_false_known_true_then_false(register, deregister, rest):
    assert deregister("never-registered") is False
    register("known", *rest)
    assert deregister("known") is True
    assert deregister("known") is False
    register("known", *rest)  # the name is free again
    assert deregister("known") is True


@pytest.mark.parametrize(("register", "deregister", "rest"), LOCAL_PARAMS)
def test_scope_local_duplicate_name_raises_already_exists(register, deregister, rest):
    with scope.scope("owner", ScopeType.Agent) as owner:
        register(owner, "dup", *rest)
        with pytest.raises(RuntimeError, match=_exact(_duplicate_message(register, "dup"))):
            register(owner, "dup", *rest)
        assert deregister(owner, "dup") is True


@pytest.mark.parametrize(("register", "deregister", "rest"), LOCAL_PARAMS)
def test_scope_local_deregister_unknown_false_known_true_then_false(register, deregister, rest):
    with scope.scope("owner", ScopeType.Agent) as owner:
        assert deregister(owner, "never-registered") is False
        register(owner, "known", *rest)
        assert deregister(owner, "known") is True
        assert deregister(owner, "known") is False


def test_names_are_scoped_per_family_and_per_registry():
    """One name in every global family and every scope-local family of two nested owners: no clash."""
    for _, register, _, rest in GLOBAL_FAMILIES:
        register("shared", *rest)
    with scope.scope("outer", ScopeType.Agent) as outer, scope.scope("inner", ScopeType.Agent) as inner:
        for owner in (outer, inner):
            for _, register, _, rest in LOCAL_FAMILIES:
                register(owner, "shared", *rest)
        for owner in (inner, outer):
            for _, _, deregister, _ in LOCAL_FAMILIES:
                assert deregister(owner, "shared") is True
    for _, _, deregister, _ in GLOBAL_FAMILIES:
        assert deregister("shared") is True


def test_same_name_global_outer_and_inner_all_run_and_deregister_independently():
    intercepts.register_tool_request("x", 0, False, appender("global"))
    with scope.scope("outer", ScopeType.Agent) as outer:
        scope_local.register_tool_request(outer, "x", 0, False, appender("outer"))
        with scope.scope("inner", ScopeType.Agent) as inner:
            scope_local.register_tool_request(inner, "x", 0, False, appender("inner"))
            assert request_order() == ["global", "outer", "inner"]
            assert scope_local.deregister_tool_request(inner, "x") is True
            assert request_order() == ["global", "outer"]
            assert scope_local.deregister_tool_request(inner, "x") is False
        assert scope_local.deregister_tool_request(outer, "x") is True
    assert request_order() == ["global"]


# --- argument validation (intended difference: eager, naming the argument) -------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        pytest.param((1, 0, False, _noop), "name", id="name"),
        pytest.param(("n", "0", False, _noop), "priority", id="priority-str"),
        pytest.param(("n", 1.0, False, _noop), "priority", id="priority-float"),
        pytest.param(("n", 0, 1, _noop), "break_chain", id="break_chain"),
    ],
)
def test_registration_type_errors_name_the_argument(args, argument):
    with pytest.raises(TypeError, match=argument):
        intercepts.register_tool_request(*args)
    assert intercepts.deregister_tool_request("n") is False  # nothing was registered


@pytest.mark.parametrize(("register", "deregister", "rest"), GLOBAL_PARAMS)
def test_non_callable_callback_raises_type_error(register, deregister, rest):
    with pytest.raises(TypeError):
        register("bad", *rest[:-1], object())
    assert deregister("bad") is False


def test_non_callable_callback_raises_type_error_scope_local():
    with scope.scope("owner", ScopeType.Agent) as owner:
        with pytest.raises(TypeError):
            scope_local.register_mark_sanitize(owner, "bad", 0, "not callable")
        assert scope_local.deregister_mark_sanitize(owner, "bad") is False


def test_priority_bounds_are_i32():
    intercepts.register_tool_request("low", -(2**31), False, appender("low"))
    intercepts.register_tool_request("high", 2**31 - 1, False, appender("high"))
    assert request_order() == ["low", "high"]
    with pytest.raises(OverflowError):
        intercepts.register_tool_request("too-high", 2**31, False, _noop)


# --- priority and merge order (§4.2) ----------------------------------------------------------------------


def test_global_order_is_priority_then_name_not_registration_order():
    intercepts.register_tool_request("b", 1, False, appender("b"))
    intercepts.register_tool_request("z-first", -3, False, appender("z-first"))
    intercepts.register_tool_request("a", 1, False, appender("a"))
    intercepts.register_tool_request("c", 0, False, appender("c"))
    intercepts.register_tool_request("neg", -10, False, appender("neg"))
    assert request_order() == ["neg", "z-first", "c", "a", "b"]


def test_merge_order_globals_then_outer_then_inner_at_equal_priority():
    """The observed reference order: [o-neg(-5), g-aa(0), g-zz(0), o-00(0, outer), i-000(0, inner)]."""
    intercepts.register_tool_request("g-zz", 0, False, appender("g-zz"))
    intercepts.register_tool_request("g-aa", 0, False, appender("g-aa"))
    with scope.scope("outer", ScopeType.Agent) as outer:
        scope_local.register_tool_request(outer, "o-00", 0, False, appender("o-00"))
        scope_local.register_tool_request(outer, "o-neg", -5, False, appender("o-neg"))
        with scope.scope("inner", ScopeType.Agent) as inner:
            scope_local.register_tool_request(inner, "i-000", 0, False, appender("i-000"))
            assert request_order() == ["o-neg", "g-aa", "g-zz", "o-00", "i-000"]
        assert request_order() == ["o-neg", "g-aa", "g-zz", "o-00"]
    assert request_order() == ["g-aa", "g-zz"]


def test_merge_is_stable_by_priority_only_names_do_not_reorder_across_registries():
    intercepts.register_tool_request("zz-global", 0, False, appender("zz-global"))
    intercepts.register_tool_request("late-global", 7, False, appender("late-global"))
    with scope.scope("outer", ScopeType.Agent) as outer:
        scope_local.register_tool_request(outer, "m-outer", 0, False, appender("m-outer"))
        scope_local.register_tool_request(outer, "b-outer", 0, False, appender("b-outer"))
        with scope.scope("inner", ScopeType.Agent) as inner:
            scope_local.register_tool_request(inner, "aa-inner", 0, False, appender("aa-inner"))
            scope_local.register_tool_request(inner, "first-inner", -1, False, appender("first-inner"))
            scope_local.register_tool_request(inner, "0-inner", 7, False, appender("0-inner"))
            assert request_order() == [
                "first-inner",
                "zz-global",
                "b-outer",
                "m-outer",
                "aa-inner",
                "late-global",
                "0-inner",
            ]


def test_break_chain_stops_the_merged_chain():
    intercepts.register_tool_request("g", 0, False, appender("g"))
    with scope.scope("owner", ScopeType.Agent) as owner:
        scope_local.register_tool_request(owner, "stop", 0, True, appender("stop"))
        scope_local.register_tool_request(owner, "after", 1, False, appender("after"))
        assert request_order() == ["g", "stop"]


async def test_execution_intercepts_merge_with_outermost_first():
    seen: list[str] = []

    def wrapper(label: str) -> Any:
        async def intercept(name: str, args: Any, call_next: Any) -> ToolExecutionInterceptOutcome:
            seen.append(f"{label}>")
            result = await call_next(args)
            seen.append(f"<{label}")
            return ToolExecutionInterceptOutcome(result.result, [], annotation=result.annotation)

        return intercept

    def func(args: Any) -> ToolExecutionResult:
        seen.append("func")
        return ToolExecutionResult("done")

    intercepts.register_tool_execution("p10", 10, wrapper("p10"))
    intercepts.register_tool_execution("g0", 0, wrapper("g0"))
    with scope.scope("owner", ScopeType.Agent) as owner:
        scope_local.register_tool_execution(owner, "a-local", 0, wrapper("a-local"))
        scope_local.register_tool_execution(owner, "neg", -1, wrapper("neg"))
        result = await tools.execute("tool", {}, func)
    assert result.result == "done"
    assert seen == ["neg>", "g0>", "a-local>", "p10>", "func", "<p10", "<a-local", "<g0", "<neg"]


def test_injectors_are_fully_sorted_by_priority_then_name(events):
    order: list[str] = []

    def injector(label: str) -> Any:
        def inject(event: Any) -> dict[str, Any]:
            if event.name == "probe":
                order.append(label)
            return {"who": label}

        return inject

    event_metadata.register_injector("g-zz", 0, injector("g-zz"))
    event_metadata.register_injector("g-bb", 0, injector("g-bb"))
    event_metadata.register_injector("g-neg", -1, injector("g-neg"))
    with scope.scope("outer", ScopeType.Agent) as outer:
        scope_local.register_event_metadata_injector(outer, "a-out", 0, injector("a-out"))
        scope_local.register_event_metadata_injector(outer, "c-out", -1, injector("c-out"))
        with scope.scope("inner", ScopeType.Agent) as inner:
            scope_local.register_event_metadata_injector(inner, "a-in", 0, injector("a-in"))
            scope_local.register_event_metadata_injector(inner, "0-in", 5, injector("0-in"))
            scope.event("probe")
    (probe,) = marks_named(events, "probe")
    # Unlike the other families, a scope-local injector named "a-in" runs before the global "g-bb".
    assert order == ["c-out", "g-neg", "a-in", "a-out", "g-bb", "g-zz", "0-in"]
    assert probe.metadata == {"who": "c-out"}  # first writer wins


# --- scope-local ownership ------------------------------------------------------------------------------


def test_scope_local_registration_is_visible_to_descendants_and_removed_on_pop():
    outer = scope.push("outer", ScopeType.Agent)
    scope_local.register_tool_request(outer, "local", 0, False, appender("local"))
    assert request_order() == ["local"]
    child = scope.push("child", ScopeType.Function)
    grandchild = scope.push("grandchild", ScopeType.Function)
    assert request_order() == ["local"]
    scope.pop(grandchild)
    scope.pop(child)
    assert request_order() == ["local"]  # popping descendants keeps the owner's registration
    scope.pop(outer)
    assert request_order() == []
    again = scope.push("outer", ScopeType.Agent)  # a new scope starts without registrations
    assert request_order() == []
    scope.pop(again)


def test_owner_below_the_top_can_register_and_deregister():
    with scope.scope("outer", ScopeType.Agent) as outer, scope.scope("inner", ScopeType.Agent):
        scope_local.register_tool_request(outer, "below", 0, False, appender("below"))
        assert request_order() == ["below"]
        assert scope_local.deregister_tool_request(outer, "below") is True
        assert request_order() == []


def test_scope_local_registration_is_invisible_to_siblings():
    with scope.scope("parent", ScopeType.Agent):
        with scope.scope("first", ScopeType.Function) as first:
            scope_local.register_tool_request(first, "first-only", 0, False, appender("first-only"))
            assert request_order() == ["first-only"]
        with scope.scope("second", ScopeType.Function):
            assert request_order() == []


@pytest.mark.parametrize(("register", "deregister", "rest"), LOCAL_PARAMS)
def test_popped_owner_is_not_found_for_register_and_deregister(register, deregister, rest):
    owner = scope.push("owner", ScopeType.Agent)
    register(owner, "kept", *rest)
    scope.pop(owner)
    message = _exact(f"not found: scope {owner.uuid} not found")
    with pytest.raises(RuntimeError, match=message):
        register(owner, "late", *rest)
    with pytest.raises(RuntimeError, match=message):
        deregister(owner, "kept")
    with pytest.raises(RuntimeError, match=message):
        deregister(owner, "never-registered")


def test_owner_on_another_stack_is_not_found():
    other = nemo_relay.create_scope_stack()
    with nemo_relay.use_scope_stack(other):
        foreign = scope.push("foreign", ScopeType.Agent)
    message = _exact(f"not found: scope {foreign.uuid} not found")
    with pytest.raises(RuntimeError, match=message):
        scope_local.register_tool_request(foreign, "x", 0, False, appender("x"))
    with pytest.raises(RuntimeError, match=message):
        scope_local.deregister_tool_request(foreign, "x")
    with nemo_relay.use_scope_stack(other):
        scope_local.register_tool_request(foreign, "x", 0, False, appender("x"))
        assert request_order() == ["x"]
    assert request_order() == []  # never leaks into the current stack


def test_fork_asyncio_context_child_does_not_see_scope_local_registrations(events):
    with scope.scope("owner", ScopeType.Agent) as owner:
        scope_local.register_tool_request(owner, "local", 0, False, appender("local"))
        scope_local.register_mark_sanitize(owner, "local", 0, lambda event, fields: {**fields, "data": "local"})
        local_seen: list[str] = []
        scope_local.register_subscriber(owner, "local", lambda event: local_seen.append(event.name))
        forked = nemo_relay.fork_asyncio_context()
        assert forked.run(request_order) == []
        forked.run(scope.event, "in-fork", data="raw")
        assert request_order() == ["local"]
        scope.event("in-parent", data="raw")
    events.flush()
    assert [e.data for e in events if e.name == "in-fork"] == ["raw"]
    assert [e.data for e in events if e.name == "in-parent"] == ["local"]
    assert local_seen == ["in-parent", "owner"]


# --- snapshots: deregistering or popping does not affect queued events -----------------------------------


@pytest.mark.timeout(30)
def test_queued_marks_keep_their_sanitizer_snapshot(events, blocker):
    guardrails.register_mark_sanitize("global", 0, lambda event, fields: {**fields, "data": "global"})
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_mark_sanitize(
        owner, "local", 1, lambda event, fields: {**fields, "data": f"{fields['data']}+local"}
    )
    blocker.hold()
    scope.event("queued", data="raw")
    assert guardrails.deregister_mark_sanitize("global") is True
    scope.pop(owner)
    scope.event("later", data="raw")
    blocker.release()
    assert [e.data for e in marks_named(events, "queued")] == ["global+local"]
    assert [e.data for e in marks_named(events, "later")] == ["raw"]


@pytest.mark.timeout(30)
def test_queued_tool_events_keep_their_sanitizer_snapshot(events, blocker):
    guardrails.register_tool_sanitize_request("global", 0, lambda name, args: {**args, "global": True})
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_tool_sanitize_request(owner, "local", 1, lambda name, args: {**args, "local": True})
    blocker.hold()
    tools.call("queued", {"a": 1})
    assert guardrails.deregister_tool_sanitize_request("global") is True
    scope.pop(owner)
    tools.call("later", {"a": 1})
    blocker.release()
    events.flush()
    data = {e.name: e.data for e in events if e.name in ("queued", "later")}
    assert data == {"queued": {"a": 1, "global": True, "local": True}, "later": {"a": 1}}


@pytest.mark.timeout(30)
def test_queued_events_keep_their_subscriber_snapshot(events, blocker):
    seen: list[str] = []
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_subscriber(owner, "local", lambda event: seen.append(event.name))
    blocker.hold()
    scope.event("queued")
    scope.pop(owner)  # its end event still has the local subscriber in its snapshot
    scope.event("later")
    blocker.release()
    events.flush()
    assert seen == ["block", "queued", "owner"]


# --- tool sanitize chains -------------------------------------------------------------------------------


def test_tool_sanitize_chains_thread_the_value_in_priority_order(events):
    seen: list[tuple[str, Any]] = []

    def request(label: str) -> Any:
        def sanitize(name: str, args: Any) -> Any:
            seen.append((label, name, args))
            return {**args, "by": [*args.get("by", []), label]}

        return sanitize

    guardrails.register_tool_sanitize_request("second", 10, request("second"))
    guardrails.register_tool_sanitize_request("first", 5, request("first"))
    guardrails.register_tool_sanitize_response("wrap", 0, lambda name, result: {"wrapped": result})
    guardrails.register_tool_sanitize_response("tag", 1, lambda name, result: {**result, "tag": name})
    handle = tools.call("tool", {"k": "v"})
    tools.call_end(handle, ToolExecutionResult({"out": 1}))
    start, end = events.flush()
    assert seen == [
        ("first", "tool", {"k": "v"}),
        ("second", "tool", {"k": "v", "by": ["first"]}),
    ]
    assert start.data == {"k": "v", "by": ["first", "second"]}
    assert end.data == {"wrapped": {"out": 1}, "tag": "tool"}


async def test_tool_sanitizers_get_copies_and_never_change_the_real_args_or_result(events):
    def mutate_request(name: str, args: Any) -> Any:
        args["mutated"] = True
        args["nested"]["x"] = "changed"
        return args

    def mutate_response(name: str, result: Any) -> Any:
        result["mutated"] = True
        result["nested"].append("changed")
        return result

    guardrails.register_tool_sanitize_request("mutate", 0, mutate_request)
    guardrails.register_tool_sanitize_request("observe", 1, lambda name, args: dict(args))
    guardrails.register_tool_sanitize_response("mutate", 0, mutate_response)
    args = {"nested": {"x": "original"}}
    result_value = {"nested": ["original"]}
    received: list[Any] = []

    def func(tool_args: Any) -> ToolExecutionResult:
        received.append(tool_args)
        return ToolExecutionResult(result_value)

    result = await tools.execute("tool", args, func)
    await subscribers.flush_async()
    assert received == [{"nested": {"x": "original"}}]
    assert result.result == {"nested": ["original"]}
    assert args == {"nested": {"x": "original"}}
    assert result_value == {"nested": ["original"]}
    start, end = events
    assert start.data == {"nested": {"x": "changed"}, "mutated": True}
    assert end.data == {"nested": ["original", "changed"], "mutated": True}


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(_raise, id="raises"),
        pytest.param(lambda name, value: object(), id="non-json"),
    ],
)
def test_failing_tool_sanitizer_omits_payload_stops_chain_and_reports(events, capfd, failure):
    later: list[str] = []
    guardrails.register_tool_sanitize_request("fail", 0, failure)
    guardrails.register_tool_sanitize_request("later", 1, lambda name, args: later.append("request") or args)
    guardrails.register_tool_sanitize_response("fail", 0, failure)
    guardrails.register_tool_sanitize_response("later", 1, lambda name, result: later.append("response") or result)
    handle = tools.call("tool", {"secret": 1}, tool_call_id="call-1")
    tools.call_end(handle, ToolExecutionResult({"secret": 2}))
    start, end = events.flush()
    assert start.data is None
    assert end.data is None
    assert start.category_profile == {"tool_call_id": "call-1"}  # only the payload is omitted
    assert later == []
    err = capfd.readouterr().err
    assert err.count("nemo_relay: Python tool sanitizer callable failed") == 2


def test_tool_and_llm_sanitizers_run_without_any_subscriber():
    seen: list[tuple[str, Any]] = []
    guardrails.register_tool_sanitize_request("req", 0, lambda name, args: seen.append(("tool-req", args)) or args)
    guardrails.register_tool_sanitize_response(
        "resp", 0, lambda name, result: seen.append(("tool-resp", result)) or result
    )
    guardrails.register_llm_sanitize_request(
        "req", 0, lambda request, context: seen.append(("llm-req", request.content)) or request
    )
    guardrails.register_llm_sanitize_response(
        "resp", 0, lambda response, context: seen.append(("llm-resp", response)) or response
    )
    handle = tools.call("tool", {"a": 1})
    tools.call_end(handle, ToolExecutionResult({"r": 1}))
    llm_handle = llm.call("model", LLMRequest({}, {"q": 1}))
    llm.call_end(llm_handle, {"answer": 2})
    assert subscribers.flush(timeout=10)
    assert seen == [("tool-req", {"a": 1}), ("tool-resp", {"r": 1}), ("llm-req", {"q": 1}), ("llm-resp", {"answer": 2})]


def test_tool_events_run_injectors_and_scope_sanitizers_without_any_subscriber():
    """Tool start/end carry a transform, so their whole publication path runs even with nobody listening."""
    seen: list[tuple[str, str]] = []
    event_metadata.register_injector("inj", 0, lambda event: seen.append(("inject", event.name)) or {})
    guardrails.register_scope_sanitize_start(
        "start", 0, lambda event, fields: seen.append(("start", event.name)) or fields
    )
    guardrails.register_scope_sanitize_end("end", 0, lambda event, fields: seen.append(("end", event.name)) or fields)
    handle = tools.call("tool", {"a": 1})
    tools.call_end(handle, ToolExecutionResult({"r": 1}))
    assert subscribers.flush(timeout=10)
    assert seen == [("inject", "tool"), ("start", "tool"), ("inject", "tool"), ("end", "tool")]


def test_plain_events_without_subscribers_are_not_processed():
    seen: list[str] = []
    event_metadata.register_injector("inj", 0, lambda event: seen.append(f"inject:{event.name}") or {})
    guardrails.register_mark_sanitize("mark", 0, lambda event, fields: seen.append(f"mark:{event.name}") or fields)
    guardrails.register_scope_sanitize_start("start", 0, lambda event, fields: seen.append("start") or fields)
    with scope.scope("quiet", ScopeType.Agent):
        scope.event("quiet-mark")
    assert subscribers.flush(timeout=10)
    assert seen == []
    subscribers.register("listener", _noop)
    scope.event("heard")
    assert subscribers.flush(timeout=10)
    assert seen == ["inject:heard", "mark:heard"]


# --- event metadata injectors ---------------------------------------------------------------------------


def injected(events: Any, metadata: Any = None, **emit: Any) -> Any:
    """Emit one mark named ``probe`` and return its delivered metadata."""
    scope.event("probe", metadata=metadata, **emit)
    (probe,) = marks_named(events, "probe")
    return probe.metadata


def test_injector_adds_attributes_to_every_event_kind(events):
    event_metadata.register_injector("session", 0, lambda event: {"session.id": "s-1"})
    with scope.scope("agent", ScopeType.Agent, metadata={"mine": 1}):
        scope.event("mark")
    handle = tools.call("tool", {})
    tools.call_end(handle, ToolExecutionResult(None))
    events.flush()
    assert [e.name for e in events] == ["agent", "mark", "agent", "tool", "tool"]
    for event in events:
        assert event.metadata["session.id"] == "s-1"
    assert events[0].metadata == {"mine": 1, "session.id": "s-1"}


def test_injection_is_insert_only_existing_key_and_first_writer_win(events):
    event_metadata.register_injector("first", 0, lambda event: {"existing": "first", "shared": "first"})
    event_metadata.register_injector("second", 1, lambda event: {"shared": "second", "only.second": True})
    assert injected(events, {"existing": "kept"}) == {
        "existing": "kept",
        "shared": "first",
        "only.second": True,
    }


def test_metadata_none_gets_a_new_dict(events):
    event_metadata.register_injector("inj", 0, lambda event: {"a": 1})
    assert injected(events, None) == {"a": 1}


@pytest.mark.parametrize("metadata", ["a string", [1, 2], 7], ids=["str", "list", "int"])
def test_non_object_metadata_is_left_alone(events, metadata):
    event_metadata.register_injector("inj", 0, lambda event: {"a": 1})
    assert injected(events, metadata) == metadata


def test_metadata_stays_none_when_nothing_is_added(events):
    event_metadata.register_injector("empty", 0, lambda event: {})
    event_metadata.register_injector("failing", 1, lambda event: 1 / 0)
    event_metadata.register_injector("invalid", 2, lambda event: {"k": None})
    assert injected(events, None) is None


def test_later_injector_sees_metadata_added_by_earlier_ones(events):
    seen: list[Any] = []
    event_metadata.register_injector("first", 0, lambda event: {"one": 1})
    event_metadata.register_injector("second", 1, lambda event: seen.append(event.metadata) or {"two": 2})
    assert injected(events, {"orig": 0}) == {"orig": 0, "one": 1, "two": 2}
    assert seen == [{"orig": 0, "one": 1}]


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({"a.b-c_d.E1": "x"}, id="dotted-key"),
        pytest.param({"k": "text"}, id="str"),
        pytest.param({"k": True}, id="bool"),
        pytest.param({"k": 1.5}, id="float"),
        pytest.param({"k": -(2**63)}, id="i64-min"),
        pytest.param({"k": 2**63 - 1}, id="i64-max"),
        pytest.param({"k": ["a", "b"]}, id="str-list"),
        pytest.param({"k": [True, False]}, id="bool-list"),
        pytest.param({"k": [1, 2]}, id="int-list"),
        pytest.param({"k": [1.0, 2.5]}, id="float-list"),
        pytest.param({"k": [1, 2.5]}, id="mixed-number-list"),
        pytest.param({"k": []}, id="empty-list"),
        pytest.param({"a": 1, "b": "two", "c": [3]}, id="several"),
    ],
)
def test_valid_injector_outputs_are_applied(events, attributes):
    event_metadata.register_injector("inj", 0, lambda event: attributes)
    assert injected(events, None) == attributes


def test_tuple_attribute_value_is_converted_to_a_list(events):
    event_metadata.register_injector("inj", 0, lambda event: {"k": (1, 2)})
    assert injected(events, None) == {"k": [1, 2]}


@pytest.mark.parametrize(
    "output",
    [
        pytest.param({"a..b": 1}, id="empty-segment"),
        pytest.param({".a": 1}, id="leading-dot"),
        pytest.param({"a.": 1}, id="trailing-dot"),
        pytest.param({"": 1}, id="empty-key"),
        pytest.param({"a b": 1}, id="space"),
        pytest.param({"a/b": 1}, id="slash"),
        pytest.param({"é": 1}, id="non-ascii"),
        pytest.param({"k": None}, id="null"),
        pytest.param({"k": {}}, id="object"),
        pytest.param({"k": {"x": 1}}, id="nested-object"),
        pytest.param({"k": [1, "a"]}, id="mixed-list"),
        pytest.param({"k": [True, 1]}, id="bool-number-list"),
        pytest.param({"k": [[1]]}, id="nested-list"),
        pytest.param({"k": [None]}, id="null-list"),
        pytest.param({"k": 2**63}, id="beyond-i64"),
        pytest.param({"k": float("nan")}, id="nan-becomes-null"),
        pytest.param({"good": 1, "bad": None}, id="one-bad-entry-rejects-all"),
        pytest.param([("k", 1)], id="list-instead-of-dict"),
        pytest.param("k=1", id="string"),
        pytest.param(None, id="none"),
    ],
)
def test_invalid_injector_output_is_rejected_atomically_and_logged(events, capfd, output):
    event_metadata.register_injector("a-invalid", 0, lambda event: output)
    event_metadata.register_injector("b-valid", 1, lambda event: {"after": 1})
    assert injected(events, {"orig": 0}) == {"orig": 0, "after": 1}
    err = capfd.readouterr().err
    assert "event_metadata_injector_failed" in err or "event_metadata_injector_invalid_output" in err
    assert "a-invalid" in err


def test_failing_injector_is_logged_and_later_injectors_still_run(events, capfd):
    def boom(event: Any) -> Any:
        raise ValueError("injector boom")

    event_metadata.register_injector("a-boom", 0, boom)
    event_metadata.register_injector("b-after", 1, lambda event: {"after": True})
    assert injected(events, None) == {"after": True}
    err = capfd.readouterr().err
    assert "event_metadata_injector_failed" in err
    assert "a-boom" in err
    assert "ERROR" in err


async def test_async_injector_is_awaited(events):
    loop = asyncio.get_running_loop()
    seen: list[Any] = []

    async def inject(event: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        seen.append(asyncio.get_running_loop() is loop)
        return {"async.value": event.name}

    event_metadata.register_injector("async", 0, inject)
    scope.event("probe")
    await subscribers.flush_async()
    assert [e.metadata for e in events if e.name == "probe"] == [{"async.value": "probe"}]
    assert seen == [True]


async def test_failing_async_injector_is_skipped(events, capfd):
    async def inject(event: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        raise RuntimeError("async injector boom")

    event_metadata.register_injector("a-async", 0, inject)
    event_metadata.register_injector("b-sync", 1, lambda event: {"sync": 1})
    scope.event("probe")
    await subscribers.flush_async()
    assert [e.metadata for e in events if e.name == "probe"] == [{"sync": 1}]
    assert "event_metadata_injector_failed" in capfd.readouterr().err


def test_scope_local_injector_applies_inside_its_owner_only(events):
    scope.event("before")
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_event_metadata_injector(owner, "local", 0, lambda event: {"local": event.name})
    scope.event("inside")
    child = scope.push("child", ScopeType.Function)
    scope.event("in-child")
    scope.pop(child)
    scope.pop(owner)
    scope.event("outside")
    events.flush()
    metadata = [(getattr(e, "scope_category", "mark"), e.name, e.metadata) for e in events]
    assert metadata == [
        ("mark", "before", None),
        ("start", "owner", None),  # emitted before the registration existed
        ("mark", "inside", {"local": "inside"}),
        ("start", "child", {"local": "child"}),
        ("mark", "in-child", {"local": "in-child"}),
        ("end", "child", {"local": "child"}),
        ("end", "owner", {"local": "owner"}),
        ("mark", "outside", None),
    ]


def test_deregistering_scope_local_injector_while_owner_active(events):
    with scope.scope("owner", ScopeType.Agent) as owner:
        scope_local.register_event_metadata_injector(owner, "local", 0, lambda event: {"local": True})
        scope.event("with")
        assert scope_local.deregister_event_metadata_injector(owner, "local") is True
        assert scope_local.deregister_event_metadata_injector(owner, "local") is False
        scope.event("without")
    events.flush()
    assert {e.name: e.metadata for e in events if e.kind == "mark"} == {"with": {"local": True}, "without": None}
