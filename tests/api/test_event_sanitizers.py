"""Event sanitizers (mark, scope start, scope end) on the publication path: order, the field contract,
failures, every scope category, the emission-time environment (stack, contextvars, event loops) and
nested emissions."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nemo_relay import (
    LLMRequest,
    ScopeAttributes,
    ScopeType,
    ToolExecutionResult,
    event_metadata,
    guardrails,
    llm,
    scope,
    scope_local,
    subscribers,
    tools,
)

FAILED = "Python event sanitizer callable failed"
FLUSH_HINT = "await subscribers.flush_async"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


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
        scope.event("block")
        assert self.entered.wait(10), "dispatcher never reached the blocking mark"

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def blocker(events) -> Iterator[Blocker]:
    gate = Blocker()
    subscribers.register("test-blocker", gate)
    try:
        yield gate
    finally:
        gate.release()
        assert subscribers.flush(timeout=10)


def keep(event: Any, fields: Any) -> Any:
    return fields


def only(recorder: Any, name: str) -> Any:
    (event,) = [e for e in recorder.flush() if e.name == name]
    return event


def triple(event: Any) -> tuple[Any, Any, Any]:
    return event.data, event.category_profile, event.metadata


# --- the field contract ---------------------------------------------------------------------------------


def test_mark_sanitizers_run_in_priority_order_and_thread_their_output(events):
    calls: list[tuple[str, Any, Any]] = []

    def twenty(event: Any, fields: Any) -> Any:
        calls.append(("20", fields, (event.data, event.metadata)))
        return {"data": {"by": 20, "prev": fields["data"]}, "category_profile": None, "metadata": None}

    def ten(event: Any, fields: Any) -> Any:
        calls.append(("10", fields, (event.data, event.metadata)))
        return {**fields, "data": {"by": 10, "prev": fields["data"]}, "metadata": {"ten": True}}

    guardrails.register_mark_sanitize("twenty", 20, twenty)
    guardrails.register_mark_sanitize("ten", 10, ten)
    scope.event("mark", data={"x": 1}, metadata={"k": "v"})
    mark = only(events, "mark")
    assert [label for label, _, _ in calls] == ["10", "20"]
    assert calls[0][1] == {"data": {"x": 1}, "category_profile": None, "metadata": {"k": "v"}}
    first_output = {"data": {"by": 10, "prev": {"x": 1}}, "category_profile": None, "metadata": {"ten": True}}
    assert calls[1][1] == first_output
    assert calls[1][2] == (first_output["data"], first_output["metadata"])  # the event shows current values
    assert mark.data == {"by": 20, "prev": {"by": 10, "prev": {"x": 1}}}
    assert mark.metadata is None  # returning metadata None removes it


def test_returned_mapping_replaces_all_three_fields_missing_keys_mean_none(events):
    guardrails.register_scope_sanitize_start("data-only", 0, lambda event, fields: {"data": "only"})
    handle = tools.call("tool", {"a": 1}, metadata={"m": 1}, tool_call_id="call-1")
    tools.call_end(handle, ToolExecutionResult(None))
    start, end = events.flush()
    assert triple(start) == ("only", None, None)
    assert end.category_profile == {"tool_call_id": "call-1"}  # end events use the end chain only


def test_sanitizers_receive_copies_of_the_fields(events):
    def mutate(event: Any, fields: Any) -> Any:
        fields["data"]["changed"] = True
        return {"data": "replaced", "category_profile": None, "metadata": None}

    def observe(event: Any, fields: Any) -> Any:
        return {**fields, "data": [fields["data"], event.data]}

    guardrails.register_mark_sanitize("a-mutate", 0, mutate)
    guardrails.register_mark_sanitize("b-observe", 1, observe)
    payload = {"x": 1}
    scope.event("mark", data=payload)
    assert only(events, "mark").data == ["replaced", "replaced"]
    assert payload == {"x": 1}


def test_extra_keys_and_string_metadata_are_accepted(events):
    guardrails.register_mark_sanitize(
        "extra", 0, lambda event, fields: {**fields, "metadata": "plain string", "unknown": 1}
    )
    scope.event("mark", data={"x": 1})
    assert triple(only(events, "mark")) == ({"x": 1}, None, "plain string")


def _raises(event: Any, fields: Any) -> Any:
    raise ValueError("sanitizer boom")


@pytest.mark.parametrize(
    "sanitizer",
    [
        pytest.param(_raises, id="raises"),
        pytest.param(lambda event, fields: object(), id="object"),
        pytest.param(lambda event, fields: None, id="none"),
        pytest.param(lambda event, fields: [1], id="list"),
        pytest.param(lambda event, fields: {**fields, "data": object()}, id="non-json-data"),
        pytest.param(lambda event, fields: {**fields, "category_profile": "text"}, id="str-profile"),
        pytest.param(lambda event, fields: {**fields, "category_profile": [1]}, id="list-profile"),
    ],
)
def test_failing_sanitizer_clears_fields_stops_chain_and_reports(events, capfd, sanitizer):
    later: list[str] = []
    guardrails.register_mark_sanitize("a-failing", 0, sanitizer)
    guardrails.register_mark_sanitize("b-later", 1, lambda event, fields: later.append(event.name) or fields)
    guardrails.register_scope_sanitize_start("a-failing", 0, sanitizer)
    handle = tools.call("tool", {"secret": 1}, metadata={"secret": 2}, tool_call_id="call-1")
    scope.event("mark", data={"secret": 3}, metadata={"secret": 4})
    tools.call_end(handle, ToolExecutionResult({"r": 1}))
    start, mark, end = events.flush()
    assert triple(start) == (None, None, None)
    assert triple(mark) == (None, None, None)
    assert later == []
    assert end.data == {"r": 1}  # the end chain is separate
    assert start.uuid == end.uuid
    assert capfd.readouterr().err.count(FAILED) == 2


def test_identity_parentage_timestamps_kind_category_attributes_and_schema_are_kept(events):
    def hijack(event: Any, fields: Any) -> Any:
        return {
            **fields,
            "uuid": "hijacked",
            "parent_uuid": "hijacked",
            "timestamp": "2020-01-01T00:00:00+00:00",
            "name": "renamed",
            "kind": "mark",
            "scope_category": "end",
            "category": "tool",
            "attributes": ["remote"],
            "data_schema": {"name": "other", "version": "9"},
        }

    with scope.scope("plain", ScopeType.Agent, attributes=ScopeAttributes(ScopeAttributes.PARALLEL)):
        scope.event("mark", data={"d": 1}, data_schema={"name": "schema", "version": "2"})
    expected = [e.to_dict() for e in events.flush()]
    events.clear()
    guardrails.register_scope_sanitize_start("hijack", 0, hijack)
    guardrails.register_scope_sanitize_end("hijack", 0, hijack)
    guardrails.register_mark_sanitize("hijack", 0, hijack)
    with scope.scope("plain", ScopeType.Agent, attributes=ScopeAttributes(ScopeAttributes.PARALLEL)) as handle:
        scope.event("mark", data={"d": 1}, data_schema={"name": "schema", "version": "2"})
    start, mark, end = events.flush()
    for event, before in zip((start, mark, end), expected, strict=True):
        after = event.to_dict()
        assert after["name"] == before["name"]
        assert after["kind"] == before["kind"]
        assert after["category"] == before["category"]
        assert after.get("scope_category") == before.get("scope_category")
        assert after.get("attributes") == before.get("attributes")
        assert after["data_schema"] == before["data_schema"]
        assert after["data"] == before["data"]
    assert start.uuid == end.uuid == handle.uuid
    assert mark.parent_uuid == handle.uuid
    assert start.parent_uuid == end.parent_uuid == handle.parent_uuid
    assert "2020" not in start.timestamp + mark.timestamp + end.timestamp
    assert start.attributes == ["parallel"]
    assert mark.data_schema == {"name": "schema", "version": "2"}


# --- scope sanitizers apply to every category ------------------------------------------------------------


def test_scope_sanitizers_apply_to_custom_tool_llm_and_guardrail_scopes(events):
    seen: list[tuple[str, str, Any]] = []

    def wrap(event: Any, fields: Any) -> Any:
        seen.append((event.category, event.scope_category, fields))
        profile = {**(fields["category_profile"] or {}), "subtype": f"sub-{event.category}"}
        return {"data": {"wrapped": fields["data"]}, "category_profile": profile, "metadata": {"sanitized": True}}

    guardrails.register_scope_sanitize_start("wrap", 0, wrap)
    guardrails.register_scope_sanitize_end("wrap", 0, wrap)
    guardrails.register_tool_sanitize_request("tool-req", 0, lambda name, args: {"tool_sanitized": True})
    guardrails.register_tool_sanitize_response("tool-resp", 0, lambda name, result: {"result_sanitized": True})
    guardrails.register_llm_sanitize_response("llm-resp", 0, lambda response, context: {"llm_sanitized": True})
    guardrails.register_tool_conditional_execution("guard", 0, lambda name, args: None)

    custom = scope.push("custom", ScopeType.Custom, input={"in": 1})
    scope.pop(custom, output={"out": 1})
    tool = tools.call("tool", {"raw": 1}, tool_call_id="call-1")
    tools.call_end(tool, ToolExecutionResult({"raw": 2}, annotation={"source": "provider"}))
    model = llm.call("model", LLMRequest({}, {"messages": []}), model_name="gpt")
    llm.call_end(model, {"raw": 3})
    assert tools.conditional_execution("tool", {"a": 1}) is None
    delivered = events.flush()

    assert [(e.category, e.scope_category) for e in delivered] == [
        (category, phase) for category in ("custom", "tool", "llm", "guardrail") for phase in ("start", "end")
    ]
    for event in delivered:
        assert event.category_profile["subtype"] == f"sub-{event.category}"
        assert event.metadata == {"sanitized": True}
    by_key = {(e.category, e.scope_category): e for e in delivered}
    assert by_key["custom", "start"].data == {"wrapped": {"in": 1}}
    assert by_key["custom", "end"].data == {"wrapped": {"out": 1}}
    assert by_key["custom", "start"].category_profile == {"subtype": "sub-custom"}  # a profile where there was none
    assert by_key["tool", "start"].category_profile == {"tool_call_id": "call-1", "subtype": "sub-tool"}
    assert by_key["llm", "start"].category_profile == {"model_name": "gpt", "subtype": "sub-llm"}
    # Scope sanitizers run after the tool/LLM sanitizers: they see the already-sanitized data.
    seen_data = {(category, phase): fields["data"] for category, phase, fields in seen}
    assert seen_data["tool", "start"] == {"tool_sanitized": True}
    assert seen_data["tool", "end"] == {"result_sanitized": True}
    assert seen_data["llm", "end"] == {"llm_sanitized": True}
    assert seen_data["guardrail", "start"] == {"kind": "tool_conditional_execution", "target_name": "tool"}
    assert seen_data["guardrail", "end"] == {"allowed": True, "rejected": False}


def test_scope_end_sanitizer_can_remove_tool_result_annotation(events):
    def strip(event: Any, fields: Any) -> Any:
        profile = {k: v for k, v in (fields["category_profile"] or {}).items() if k != "tool_result_annotation"}
        return {**fields, "category_profile": profile}

    guardrails.register_scope_sanitize_end("strip", 0, strip)
    handle = tools.call("tool", {}, tool_call_id="call-1")
    tools.call_end(handle, ToolExecutionResult({"r": 1}, annotation={"secret": "annotation"}))
    _, end = events.flush()
    assert end.category_profile == {"tool_call_id": "call-1"}


async def test_scope_sanitizers_apply_to_managed_tool_events(events):
    guardrails.register_scope_sanitize_start("start", 0, lambda event, fields: {**fields, "data": "start-sanitized"})
    guardrails.register_scope_sanitize_end("end", 0, lambda event, fields: {**fields, "data": "end-sanitized"})
    result = await tools.execute("tool", {"a": 1}, lambda args: ToolExecutionResult({"secret": 1}))
    await subscribers.flush_async()
    assert result.result == {"secret": 1}  # sanitizers never touch what the caller gets
    assert [(e.scope_category, e.data) for e in events] == [("start", "start-sanitized"), ("end", "end-sanitized")]


# --- the emission-time environment -------------------------------------------------------------------------


def test_scope_start_sanitizer_sees_started_scope_and_its_mark_gets_that_parent(events):
    observed: list[tuple[str, str]] = []

    def start(event: Any, fields: Any) -> Any:
        observed.append((event.name, scope.get_handle().uuid))
        if event.name == "started":
            scope.event("from-sanitizer")
        return fields

    guardrails.register_scope_sanitize_start("start", 0, start)
    handle = scope.push("started", ScopeType.Agent)
    scope.pop(handle)
    delivered = events.flush()
    assert observed == [("started", handle.uuid)]
    assert [(getattr(e, "scope_category", "mark"), e.name) for e in delivered] == [
        ("start", "started"),
        ("mark", "from-sanitizer"),
        ("end", "started"),
    ]
    assert delivered[1].parent_uuid == handle.uuid


def test_scope_end_sanitizer_still_sees_the_popped_scope_on_top(events):
    observed: list[str] = []
    guardrails.register_scope_sanitize_end(
        "end", 0, lambda event, fields: observed.append(scope.get_handle().uuid) or fields
    )
    handle = scope.push("popped", ScopeType.Agent)
    scope.pop(handle)
    events.flush()
    assert observed == [handle.uuid]
    assert scope.get_handle().uuid != handle.uuid


@pytest.mark.timeout(30)
def test_mark_sanitizer_observes_emission_time_scope_after_owner_is_popped(events, blocker):
    observed: list[tuple[str, str]] = []
    guardrails.register_mark_sanitize(
        "observe", 0, lambda event, fields: observed.append((event.name, scope.get_handle().uuid)) or fields
    )
    blocker.hold()
    owner = scope.push("owner", ScopeType.Agent)
    scope.event("inside")
    scope.pop(owner)
    blocker.release()
    events.flush()
    assert ("inside", owner.uuid) in observed
    assert only(events, "inside").parent_uuid == owner.uuid


def test_scope_local_mark_sanitizer_applies_to_owner_and_children_not_after_pop(events):
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_mark_sanitize(owner, "local", 0, lambda event, fields: {**fields, "data": "local"})
    scope.event("in-owner", data="raw")
    child = scope.push("child", ScopeType.Function)
    scope.event("in-child", data="raw")
    scope.pop(child)
    scope.pop(owner)
    scope.event("after-pop", data="raw")
    marks = {e.name: e.data for e in events.flush() if e.kind == "mark"}
    assert marks == {"in-owner": "local", "in-child": "local", "after-pop": "raw"}


def test_scope_local_scope_sanitizers_apply_to_children_and_the_owner_end(events):
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_scope_sanitize_start(owner, "start", 0, lambda event, fields: {**fields, "data": "s"})
    scope_local.register_scope_sanitize_end(owner, "end", 0, lambda event, fields: {**fields, "data": "e"})
    with scope.scope("child", ScopeType.Function, input="raw"):
        pass
    scope.pop(owner, output="raw")
    with scope.scope("after", ScopeType.Function, input="raw"):
        pass
    delivered = [(e.name, e.scope_category, e.data) for e in events.flush()]
    assert delivered == [
        ("owner", "start", None),  # emitted before the registrations existed
        ("child", "start", "s"),
        ("child", "end", "e"),
        ("owner", "end", "e"),
        ("after", "start", "raw"),
        ("after", "end", None),
    ]


def test_injectors_run_before_sanitizers(events):
    seen: list[Any] = []
    event_metadata.register_injector("inject", 0, lambda event: {"injected": "yes"})
    guardrails.register_mark_sanitize("observe", 0, lambda event, fields: seen.append(fields["metadata"]) or fields)
    scope.event("mark", metadata={"orig": 1})
    assert only(events, "mark").metadata == {"orig": 1, "injected": "yes"}
    assert seen == [{"orig": 1, "injected": "yes"}]


def test_sanitizer_can_remove_injected_metadata(events):
    event_metadata.register_injector("inject", 0, lambda event: {"injected": "yes"})
    guardrails.register_mark_sanitize("drop", 0, lambda event, fields: {**fields, "metadata": None})
    scope.event("mark", metadata={"orig": 1})
    assert only(events, "mark").metadata is None


# --- nested emissions --------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_nested_emission_from_sanitizer_is_delivered_before_earlier_queued_events(events, blocker):
    def emit_nested(event: Any, fields: Any) -> Any:
        if event.name == "outer":
            scope.event("nested")
        return fields

    guardrails.register_mark_sanitize("nested", 0, emit_nested)
    blocker.hold()
    scope.event("outer")
    scope.event("later")
    blocker.release()
    assert [name for _, name in events.names()] == ["block", "outer", "nested", "later"]


def test_emission_from_subscriber_goes_to_the_tail(events):
    def from_subscriber(event: Any) -> None:
        if event.name == "outer":
            scope.event("from-sub")

    subscribers.register("emitter", from_subscriber)
    scope.event("outer")
    scope.event("after")
    assert [name for _, name in events.names()] == ["outer", "after", "from-sub"]


@pytest.mark.timeout(30)
def test_flush_inside_a_sanitizer_is_a_no_op(events):
    done: list[str] = []

    def flushing(event: Any, fields: Any) -> Any:
        subscribers.flush()
        done.append(event.name)
        return fields

    guardrails.register_mark_sanitize("flushing", 0, flushing)
    scope.event("one")
    scope.event("two")
    assert [name for _, name in events.names()] == ["one", "two"]
    assert done == ["one", "two"]


# --- contextvars and event loops --------------------------------------------------------------------------


def test_sync_sanitizer_sees_the_emitters_contextvars(events):
    seen: list[tuple[str, str]] = []
    guardrails.register_mark_sanitize(
        "ctx", 0, lambda event, fields: seen.append((event.name, request_id.get())) or fields
    )
    token = request_id.set("first")
    scope.event("one")
    request_id.set("second")
    scope.event("two")
    request_id.reset(token)
    scope.event("three")
    events.flush()
    assert seen == [("one", "first"), ("two", "second"), ("three", "unset")]


def test_concurrent_emitters_each_see_their_own_contextvars(events):
    seen: dict[str, str] = {}
    guardrails.register_mark_sanitize(
        "ctx", 0, lambda event, fields: seen.__setitem__(event.name, request_id.get()) or fields
    )
    barrier = threading.Barrier(4)

    def emit(index: int) -> None:
        request_id.set(f"thread-{index}")
        barrier.wait(10)
        scope.event(f"mark-{index}")

    threads = [threading.Thread(target=emit, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    events.flush()
    assert seen == {f"mark-{index}": f"thread-{index}" for index in range(4)}


async def test_sync_sanitizer_sees_contextvars_when_emitting_from_to_thread(events):
    seen: list[tuple[str, str]] = []
    guardrails.register_mark_sanitize(
        "ctx", 0, lambda event, fields: seen.append((event.name, request_id.get())) or fields
    )
    request_id.set("from-task")
    await asyncio.to_thread(scope.event, "threaded")
    await subscribers.flush_async()
    assert seen == [("threaded", "from-task")]


@pytest.mark.timeout(30)
async def test_async_sanitizer_runs_on_the_originating_loop(events):
    loop = asyncio.get_running_loop()
    seen: list[tuple[bool, bool, str]] = []

    async def sanitize(event: Any, fields: Any) -> Any:
        await asyncio.sleep(0)
        running = asyncio.get_running_loop()
        seen.append((running is loop, threading.current_thread() is threading.main_thread(), request_id.get()))
        return {**fields, "data": "async"}

    guardrails.register_mark_sanitize("async", 0, sanitize)
    request_id.set("in-loop")
    scope.event("mark", data="raw")
    with pytest.raises(RuntimeError, match=FLUSH_HINT):
        subscribers.flush()
    await subscribers.flush_async()
    assert seen == [(True, True, "in-loop")]
    assert [e.data for e in events if e.name == "mark"] == ["async"]


@pytest.mark.timeout(30)
async def test_async_scope_sanitizer_for_managed_tool_runs_on_the_originating_loop(events):
    loop = asyncio.get_running_loop()
    seen: list[bool] = []

    async def sanitize(event: Any, fields: Any) -> Any:
        seen.append(asyncio.get_running_loop() is loop)
        return {**fields, "data": f"{event.scope_category}-sanitized"}

    guardrails.register_scope_sanitize_start("start", 0, sanitize)
    guardrails.register_scope_sanitize_end("end", 0, sanitize)
    await tools.execute("tool", {}, lambda args: ToolExecutionResult(1))
    await subscribers.flush_async()
    assert seen == [True, True]
    assert [e.data for e in events] == ["start-sanitized", "end-sanitized"]


@pytest.mark.timeout(30)
async def test_async_sanitizer_emitted_from_a_loopless_thread_runs_on_its_registration_loop(events):
    loop = asyncio.get_running_loop()
    seen: list[tuple[bool, bool]] = []

    async def sanitize(event: Any, fields: Any) -> Any:
        seen.append((asyncio.get_running_loop() is loop, threading.current_thread() is threading.main_thread()))
        return fields

    guardrails.register_mark_sanitize("async", 0, sanitize)
    await asyncio.to_thread(scope.event, "from-thread")
    await subscribers.flush_async()
    assert seen == [(True, True)]


@pytest.mark.timeout(30)
def test_async_sanitizer_after_its_loop_closed_runs_on_a_fallback_loop(events):
    seen: list[tuple[str, Any, bool, str]] = []
    loops: list[Any] = []

    async def register() -> None:
        loops.append(asyncio.get_running_loop())

        async def sanitize(event: Any, fields: Any) -> Any:
            running = asyncio.get_running_loop()
            seen.append((event.name, running, running.is_running(), request_id.get()))
            await asyncio.sleep(0)
            return {**fields, "data": "async"}

        guardrails.register_mark_sanitize("async", 0, sanitize)

    asyncio.run(register())
    (closed,) = loops
    assert closed.is_closed()
    request_id.set("after-close")
    scope.event("late", data="raw")
    events.flush()
    assert len(seen) == 1
    name, running, was_running, value = seen[0]
    assert (name, was_running, value) == ("late", True, "after-close")
    assert running is not closed
    assert only(events, "late").data == "async"
