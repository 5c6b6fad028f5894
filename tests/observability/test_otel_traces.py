"""OpenTelemetry traces through the public API: the three projections, captured in memory.

Spans go to a ``TracerProvider`` the test passes in (``OpenTelemetrySubscriber(config,
tracer_provider=...)``) with an ``InMemorySpanExporter``; the scripted agent run is in
``traces_scenario.py``. Expected attribute sets were compared with the reference wheel's OTLP export of
the same runs (nemo-relay 0.8.4).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("openinference.semconv.trace")

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from traces_scenario import (
    CHAT_REQUEST,
    agent_run,
    id_int,
    mark_of,
    run,
    span_id,
    start_of,
)

import nemo_relay
from nemo_relay import (
    LLMRequest,
    OpenTelemetryConfig,
    OpenTelemetrySubscriber,
    PropagationContext,
    ScopeType,
    llm,
    scope,
    subscribers,
)
from nemo_relay.codecs import AnthropicMessagesCodec

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


def ns(when: dt.datetime) -> int:
    """Nanoseconds since the epoch, exactly (microsecond datetimes)."""
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an event's RFC 3339 timestamp (all nine fraction digits)."""
    whole, _, rest = text.partition(".")
    fraction = rest[: rest.index("+")] if rest else "0"
    seconds = ns(dt.datetime.fromisoformat(whole + "+00:00")) // 1_000_000_000
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0"))


class Traced:
    """A subscriber exporting into memory, and accessors for what it exported."""

    def __init__(self, subscriber: OpenTelemetrySubscriber, exporter: InMemorySpanExporter, name: str) -> None:
        self.subscriber = subscriber
        self.exporter = exporter
        self.name = name

    def spans(self) -> list[ReadableSpan]:
        assert subscribers.flush(timeout=10)
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [span for span in self.spans() if span.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def attrs(self, name: str) -> dict[str, Any]:
        return dict(self.span(name).attributes or {})

    def diagnostics(self) -> dict[str, tuple[str, int]]:
        assert subscribers.flush(timeout=10)
        return {d.code: (d.message, d.count) for d in self.subscriber.runtime_diagnostics().entries}


@pytest.fixture
def traced() -> Iterator[Callable[..., Traced]]:
    """``traced(otel_type, **config_fields)``: a registered subscriber writing to an in-memory exporter."""
    made: list[tuple[Traced, TracerProvider]] = []

    def make(otel_type: str = "full", **options: Any) -> Traced:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        config = OpenTelemetryConfig(otel_type, "http://127.0.0.1:4318")
        for field, value in options.items():
            setattr(config, field, value)
        subscriber = OpenTelemetrySubscriber(config, tracer_provider=provider)
        name = f"otel-test-{uuid.uuid4()}"
        subscriber.register(name)
        result = Traced(subscriber, exporter, name)
        made.append((result, provider))
        return result

    try:
        yield make
    finally:
        for result, provider in made:
            subscribers.flush(timeout=10)
            result.subscriber.deregister(result.name)
            result.subscriber.shutdown(timeout=5)
            provider.shutdown()


def event_names(span: ReadableSpan) -> list[str]:
    return [event.name for event in span.events]


# --- the scripted run, one test per projection -----------------------------------------------------------


def test_full_projection_of_an_agent_run(traced: Callable[..., Traced], events: list[Any]) -> None:
    out = traced("full")
    results = run(agent_run)
    assert results == ["chatcmpl-9", 5, "internal error: ValueError: boom"]  # the agent is unaffected

    spans = {span.name: span for span in out.spans()}
    assert set(spans) == {"agent-run", "openai.chat", "add", "helper", "bad"}  # metric mark: no span
    agent = start_of(events, "agent-run")
    trace_id = id_int(agent.uuid)
    for name, span in spans.items():
        start = start_of(events, name)
        assert span.context.span_id == span_id(start.uuid)
        assert span.context.trace_id == trace_id
        if name != "agent-run":
            assert span.parent is not None and span.parent.span_id == span_id(agent.uuid)
    assert spans["agent-run"].parent is None
    assert spans["agent-run"].kind is SpanKind.INTERNAL and spans["helper"].kind is SpanKind.INTERNAL
    assert {spans[n].kind for n in ("openai.chat", "add", "bad")} == {SpanKind.CLIENT}

    root = dict(spans["agent-run"].attributes or {})
    assert root["nemo_relay.uuid"] == agent.uuid
    assert root["nemo_relay.parent_uuid"] == agent.parent_uuid
    assert root["nemo_relay.scope_type"] == "agent"
    assert root["nemo_relay.handle_attributes"] == "[]"
    assert root["nemo_relay.start.data.q"] == root["nemo_relay.start.input.q"] == "2+3"
    assert root["nemo_relay.start.metadata.session_id"] == "sess-1"
    assert root["nemo_relay.end.metadata.otel.status_code"] == "OK"
    assert (root["session.id"], root["user.id"], root["nemo_relay.agent.kind"]) == ("sess-1", "u-1", "planner")
    assert root["nemo_relay.session.instance_id"] == agent.parent_uuid  # the stack root
    assert spans["agent-run"].status.status_code is StatusCode.OK

    chat = dict(spans["openai.chat"].attributes or {})
    assert chat["nemo_relay.model_name"] == "gpt-4o-2024"  # the response model replaces the request's
    assert json.loads(str(chat["nemo_relay.start.data.content"])) == CHAT_REQUEST
    assert json.loads(str(chat["nemo_relay.end.output.usage"]))["prompt_tokens"] == 20
    assert "session.id" not in chat  # session identity only on trace roots

    tool = dict(spans["add"].attributes or {})
    assert tool["nemo_relay.tool_call_id"] == "call_1"
    assert (tool["nemo_relay.start.data.a"], tool["nemo_relay.end.output"]) == (2, 5)
    assert tool["nemo_relay.end.data"] == 5

    bad = spans["bad"]
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description == "internal error: ValueError: boom"
    assert (bad.attributes or {})["error.type"] == "internal_error"
    assert [(e.name, dict(e.attributes or {})) for e in bad.events] == [("exception", {"exception.type": "ValueError"})]

    note, chunk = mark_of(events, "note"), mark_of(events, "llm.chunk")
    assert event_names(spans["agent-run"]) == ["note", "llm.chunk"]
    note_event = spans["agent-run"].events[0]
    assert note_event.timestamp == rfc3339_ns(note.timestamp)
    assert dict(note_event.attributes or {}) == {
        "nemo_relay.mark.uuid": note.uuid,
        "nemo_relay.mark.parent_uuid": agent.uuid,
        "nemo_relay.mark.data.n": 3,
        "nemo_relay.mark.data.text": "hello",
        "nemo_relay.mark.metadata.m": 1,
    }
    assert dict(spans["agent-run"].events[1].attributes or {})["nemo_relay.mark.uuid"] == chunk.uuid
    assert event_names(spans["helper"]) == ["inside-helper"]
    assert out.diagnostics() == {}


def test_openinference_projection_of_an_agent_run(traced: Callable[..., Traced], events: list[Any]) -> None:
    out = traced("openinference")
    run(agent_run)
    spans = {span.name: dict(span.attributes or {}) for span in out.spans()}
    kinds = {name: attrs["openinference.span.kind"] for name, attrs in spans.items()}
    assert kinds == {"agent-run": "AGENT", "openai.chat": "LLM", "add": "TOOL", "helper": "CHAIN", "bad": "TOOL"}

    chat = spans["openai.chat"]
    assert chat["input.value"] == "system: be brief\n\nuser: what is 2+3?"
    assert chat["input.mime_type"] == "text/plain"
    assert chat["llm.invocation_parameters"] == '{"temperature":0.2,"max_tokens":50}'
    assert [chat[f"llm.input_messages.{i}.message.{k}"] for i in (0, 1) for k in ("role", "content")] == [
        "system",
        "be brief",
        "user",
        "what is 2+3?",
    ]
    assert (
        chat["llm.tools.0.tool.json_schema"]
        == '{"type":"function","function":{"name":"add","parameters":{"type":"object"}}}'
    )
    assert (chat["llm.token_count.prompt"], chat["llm.token_count.completion"], chat["llm.token_count.total"]) == (
        20,
        7,
        27,
    )
    assert chat["llm.token_count.prompt_details.cache_read"] == 4
    assert chat["llm.finish_reason"] == "tool_use"
    assert chat["output.value"] == "Requested tools: add"
    prefix = "llm.output_messages.0.message."
    assert chat[prefix + "role"] == "assistant"
    assert chat[prefix + "tool_calls.0.tool_call.id"] == "call_1"
    assert chat[prefix + "tool_calls.0.tool_call.function.name"] == "add"
    assert chat[prefix + "tool_calls.0.tool_call.function.arguments"] == '{"a":2,"b":3}'
    assert chat["llm.model_name"] == "gpt-4o-2024"
    assert chat["metadata"] == '{"otel.status_code":"OK"}'
    assert not any(key.startswith("nemo_relay.start.") for key in chat)  # LLM starts carry no start payload

    tool = spans["add"]
    assert (tool["tool.name"], tool["tool_call.function.name"], tool["tool_call.id"]) == ("add", "add", "call_1")
    assert tool["tool.parameters"] == tool["tool_call.function.arguments"] == tool["input.value"] == '{"a":2,"b":3}'
    assert (tool["output.value"], tool["output.mime_type"]) == ("5", "application/json")

    agent = spans["agent-run"]
    assert json.loads(str(agent["metadata"]))["session_id"] == "sess-1"
    assert agent["openinference.metadata.agent_kind"] == "planner"
    assert (agent["session.id"], agent["user.id"]) == ("sess-1", "u-1")
    assert "error.type" not in spans["bad"]  # OpenInference reports only the exception event
    assert [e.name for e in out.span("bad").events] == ["exception"]


def test_gen_ai_projection_of_an_agent_run(traced: Callable[..., Traced], events: list[Any]) -> None:
    out = traced("gen_ai")
    run(agent_run)
    spans = {span.name: span for span in out.spans()}
    assert set(spans) == {"invoke_agent agent-run", "chat gpt-4o", "execute_tool add", "helper", "execute_tool bad"}
    for span in spans.values():
        assert not [key for key in (span.attributes or {}) if key.startswith("nemo_relay.")]
        assert [e.name for e in span.events] in ([], ["exception"])  # marks are not traced
    assert spans["chat gpt-4o"].kind is SpanKind.CLIENT
    assert spans["execute_tool add"].kind is SpanKind.INTERNAL
    assert dict(spans["helper"].attributes or {}) == {}  # no GenAI meaning: a bare span, parentage kept
    assert spans["helper"].parent is not None
    assert spans["helper"].parent.span_id == span_id(start_of(events, "agent-run").uuid)

    agent = dict(spans["invoke_agent agent-run"].attributes or {})
    assert agent == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.conversation.id": "sess-1",
        "gen_ai.agent.name": "agent-run",
    }
    chat = dict(spans["chat gpt-4o"].attributes or {})
    assert chat["gen_ai.provider.name"] == "openai"
    assert (chat["gen_ai.request.model"], chat["gen_ai.response.model"]) == ("gpt-4o", "gpt-4o-2024")
    assert (chat["gen_ai.request.temperature"], chat["gen_ai.request.max_tokens"]) == (0.2, 50)
    assert json.loads(str(chat["gen_ai.input.messages"]))[1] == {
        "parts": [{"content": "what is 2+3?", "type": "text"}],
        "role": "user",
    }
    assert chat["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(str(chat["gen_ai.output.messages"])) == [
        {
            "finish_reason": "tool_call",
            "parts": [{"arguments": {"a": 2, "b": 3}, "id": "call_1", "name": "add", "type": "tool_call"}],
            "role": "assistant",
        }
    ]
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (20, 7)
    assert chat["gen_ai.usage.cache_read.input_tokens"] == 4
    tool = dict(spans["execute_tool add"].attributes or {})
    assert tool == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add", "gen_ai.tool.call.id": "call_1"}
    assert dict(spans["execute_tool bad"].attributes or {})["error.type"] == "internal_error"


# --- lifecycle, ids, status and errors -------------------------------------------------------------------


def test_span_times_are_the_event_times(traced: Callable[..., Traced]) -> None:
    out = traced("full")
    handle = scope.push("timed", ScopeType.Agent, timestamp=T0)
    scope.event("tick", handle=handle, timestamp=T0 + dt.timedelta(seconds=1))
    scope.pop(handle, timestamp=T0 + dt.timedelta(seconds=2))
    span = out.span("timed")
    assert (span.start_time, span.end_time) == (ns(T0), ns(T0 + dt.timedelta(seconds=2)))
    assert span.events[0].timestamp == ns(T0 + dt.timedelta(seconds=1))
    assert span.status.status_code is StatusCode.UNSET  # a manual pop sets no status


@pytest.mark.parametrize(
    ("metadata", "code", "description"),
    [
        ({"otel.status_code": "OK", "otel.status_description": "ignored"}, StatusCode.OK, None),
        ({"otel.status_code": "ERROR", "otel.status_description": "broke"}, StatusCode.ERROR, "broke"),
        ({"otel.status_code": "ERROR"}, StatusCode.ERROR, None),
        ({"otel.status_code": "UNSET"}, StatusCode.UNSET, None),
        ({"otel.status_code": "ok"}, StatusCode.UNSET, None),  # only exact values count
    ],
)
def test_status_comes_from_end_metadata(
    traced: Callable[..., Traced], metadata: dict[str, str], code: StatusCode, description: str | None
) -> None:
    out = traced("full")
    scope.pop(scope.push("s", ScopeType.Custom), metadata=metadata)
    span = out.span("s")
    assert (span.status.status_code, span.status.description) == (code, description)
    assert ("error.type" in (span.attributes or {})) is (code is StatusCode.ERROR)


def test_error_type_falls_back_to_the_first_failed_child(traced: Callable[..., Traced]) -> None:
    out = traced("full")
    agent = scope.push("agent", ScopeType.Agent)
    fn = scope.push("fn", ScopeType.Function)
    first = scope.push("first", ScopeType.Function)
    scope.pop(first, metadata={"otel.status_code": "ERROR", "error.type": "timeout", "exception.type": "Timeout"})
    second = scope.push("second", ScopeType.Function)
    scope.pop(second, metadata={"otel.status_code": "ERROR", "error.type": "later", "exception.type": "Later"})
    scope.pop(fn, metadata={"otel.status_code": "ERROR"})
    plain = scope.push("plain", ScopeType.Function)
    scope.pop(plain, metadata={"otel.status_code": "ERROR"})
    scope.pop(agent, metadata={"otel.status_code": "ERROR", "error.type": "own"})
    fn_span, plain_span, agent_span = out.span("fn"), out.span("plain"), out.span("agent")
    assert (fn_span.attributes or {})["error.type"] == "timeout"
    assert [dict(e.attributes or {}) for e in fn_span.events] == [{"exception.type": "Timeout"}]
    assert (plain_span.attributes or {})["error.type"] == "_OTHER" and not plain_span.events
    assert (agent_span.attributes or {})["error.type"] == "own"  # its own error.type wins
    assert [dict(e.attributes or {}) for e in agent_span.events] == [{"exception.type": "Timeout"}]


def test_scope_types_map_to_span_kinds(traced: Callable[..., Traced]) -> None:
    out = traced("openinference")
    for scope_type in ScopeType:
        scope.pop(scope.push(f"s-{scope_type.name}", scope_type))
    spans = {span.name: span for span in out.spans()}
    client = {"Llm", "Tool", "Retriever", "Embedder", "Reranker"}
    for scope_type in ScopeType:
        span = spans[f"s-{scope_type.name}"]
        assert (span.kind is SpanKind.CLIENT) is (scope_type.name in client)
    kinds = {name: (span.attributes or {})["openinference.span.kind"] for name, span in spans.items()}
    assert kinds["s-Guardrail"] == "GUARDRAIL" and kinds["s-Embedder"] == "EMBEDDING"
    assert kinds["s-Custom"] == kinds["s-Unknown"] == kinds["s-Function"] == "CHAIN"


def test_top_level_scopes_start_their_own_traces(traced: Callable[..., Traced], events: list[Any]) -> None:
    out = traced("full")
    for name in ("one", "two"):
        scope.pop(scope.push(name, ScopeType.Agent))
    one, two = out.span("one"), out.span("two")
    assert one.parent is None and two.parent is None
    assert one.context.trace_id == id_int(start_of(events, "one").uuid)
    assert two.context.trace_id == id_int(start_of(events, "two").uuid)


def test_propagated_parent_continues_the_remote_trace(traced: Callable[..., Traced], events: list[Any]) -> None:
    out = traced("full")
    root = "01a201a8-0000-7000-8000-00000000abcd"
    parent = "01a201a8-0000-7000-8000-000000001234"
    with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack_from_propagation(PropagationContext(parent, root))):
        scope.pop(scope.push("remote-child", ScopeType.Agent, metadata={"session_id": "S"}))
    with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack_from_propagation(PropagationContext(parent))):
        scope.pop(scope.push("rootless-child", ScopeType.Agent))
    child = out.span("remote-child")
    assert child.context.trace_id == id_int(root)
    assert child.parent is not None and child.parent.is_remote
    assert (child.parent.trace_id, child.parent.span_id) == (id_int(root), span_id(parent))
    assert "session.id" not in (child.attributes or {})  # not a trace root
    rootless = out.span("rootless-child")
    assert rootless.parent is None
    assert rootless.context.trace_id == id_int(start_of(events, "rootless-child").uuid)
    assert (rootless.attributes or {})["nemo_relay.session.instance_id"] == parent


# --- marks -----------------------------------------------------------------------------------------------


def _mark_run() -> None:
    scope.event("root-mark", data={"a": 1})  # under the bare stack root: no span to attach to
    agent = scope.push("agent", ScopeType.Agent)
    scope.event("m1", data={"x": [1, 2]}, metadata={"hook_event_name": "llm.chunk"})
    scope.event("llm.chunk", data="delta")
    scope.event("session.start", metadata={"session_id": "S", "user_id": "U", "agent_kind": "K"})
    child = scope.push("child", ScopeType.Function)
    scope.pop(child)
    scope.event("after-child", handle=child)  # parent ended: parented to the completed span
    scope.pop(agent)


@pytest.mark.parametrize("projection", ["inherit", "event"])
def test_marks_become_span_events_or_orphan_spans(
    traced: Callable[..., Traced], events: list[Any], projection: str
) -> None:
    out = traced("full", mark_projection=projection)
    _mark_run()
    agent = out.span("agent")
    assert event_names(agent) == ["m1", "llm.chunk", "session.start"]
    session = dict(agent.events[2].attributes or {})
    assert (session["session.id"], session["user.id"], session["nemo_relay.agent.kind"]) == ("S", "U", "K")
    assert session["nemo_relay.session.instance_id"] == start_of(events, "agent").parent_uuid
    assert dict(agent.events[1].attributes or {})["nemo_relay.mark.data"] == "delta"

    orphan = out.span("mark:after-child")
    assert orphan.start_time == orphan.end_time and orphan.kind is SpanKind.INTERNAL
    assert orphan.parent is not None and orphan.parent.span_id == span_id(start_of(events, "child").uuid)
    assert (orphan.attributes or {})["nemo_relay.mark.orphan"] is True
    root_mark = out.span("mark:root-mark")
    assert root_mark.parent is None
    assert root_mark.context.trace_id == id_int(mark_of(events, "root-mark").uuid)
    assert (root_mark.attributes or {})["nemo_relay.mark.data.a"] == 1


def test_tool_mark_projection_makes_child_spans(traced: Callable[..., Traced], events: list[Any]) -> None:
    out = traced("openinference", mark_projection="tool")
    _mark_run()
    agent = out.span("agent")
    assert event_names(agent) == ["m1", "llm.chunk"]  # excluded names (and hook_event_name) stay events
    session = out.span("mark:session.start")
    assert session.parent is not None and session.parent.span_id == span_id(start_of(events, "agent").uuid)
    attrs = dict(session.attributes or {})
    assert attrs["nemo_relay.mark.projection"] == "tool"
    assert (attrs["openinference.span.kind"], attrs["tool.name"], attrs["tool_call.function.name"]) == (
        "TOOL",
        "session.start",
        "session.start",
    )
    assert "nemo_relay.mark.orphan" not in attrs
    root_mark = dict(out.span("mark:root-mark").attributes or {})
    assert (root_mark["output.value"], root_mark["output.mime_type"]) == ('{"a":1}', "application/json")
    assert root_mark["nemo_relay.mark.orphan"] is True


def test_full_tool_mark_and_gen_ai_drops_marks(traced: Callable[..., Traced]) -> None:
    full = traced("full", mark_projection="tool")
    gen_ai = traced("gen_ai", mark_projection="tool")
    _mark_run()
    attrs = dict(full.span("mark:session.start").attributes or {})
    assert (attrs["nemo_relay.mark.projection"], attrs["nemo_relay.scope_type"]) == ("tool", "tool")
    assert sorted(span.name for span in gen_ai.spans()) == ["child", "invoke_agent agent"]
    assert all(not span.events for span in gen_ai.spans())


def test_metric_marks_are_never_traced_and_invalid_ones_are_reported(traced: Callable[..., Traced]) -> None:
    out = traced("full")
    schema = {"name": "nemo.relay.metric_measurements", "version": "1"}
    with scope.scope("agent", ScopeType.Agent):
        scope.metric(
            "ok", [nemo_relay.MetricMeasurement("ok", nemo_relay.MetricKind.Gauge, nemo_relay.MetricValueType.I64, 1)]
        )
        scope.event("bad-metric", data={"measurements": []}, data_schema=schema)
    assert not out.span("agent").events
    message, count = out.diagnostics()["otel.metric_mark_invalid"]
    assert count == 1
    assert message == (
        'OpenTelemetry metric mark "bad-metric" was dropped atomically: measurements must contain at least one entry'
    )


# --- metadata promotion and attribute mappings ------------------------------------------------------------


def test_metadata_promotion_accepts_rejects_and_reports(traced: Callable[..., Traced]) -> None:
    out = traced("full", promote_metadata_prefixes=["tenant.", "gen_ai.", "p."])
    metadata = {
        "tenant.tier": "gold",
        "tenant.ids": [1, 2.5],
        "gen_ai.agent.description": "reserved",
        "p.null": None,
        "p.big": 2**63 + 5,
        "other": 1,
    }
    handle = scope.push("agent", ScopeType.Agent, metadata=metadata)
    scope.event("m", metadata={"tenant.tier": "silver"})
    scope.pop(handle, metadata={"tenant.tier": "platinum"})
    attrs = out.attrs("agent")
    assert attrs["tenant.tier"] == "platinum"  # the end event is authoritative
    assert attrs["tenant.ids"] == (1.0, 2.5)
    assert "gen_ai.agent.description" not in attrs
    assert attrs["nemo_relay.start.metadata.gen_ai.agent.description"] == "reserved"  # refused keys stay put
    assert "nemo_relay.start.metadata.tenant.tier" not in attrs  # promoted keys move out of the projection
    assert attrs["nemo_relay.start.metadata.other"] == 1
    mark = dict(out.span("agent").events[0].attributes or {})
    assert mark["tenant.tier"] == "silver" and "nemo_relay.mark.metadata.tenant.tier" not in mark

    diagnostics = out.diagnostics()
    message, count = diagnostics["otel.metadata_promotion_value_unsupported.gen_ai.agent.description"]
    assert count == 2  # evaluated at start and at end
    assert message == (
        'OpenTelemetry metadata attribute "gen_ai.agent.description" was not promoted: '
        "attribute key is reserved by Relay or an OpenTelemetry projection"
    )
    assert "not OTLP attributes" in diagnostics["otel.metadata_promotion_value_unsupported.p.null"][0]
    assert "larger than OTLP i64" in diagnostics["otel.metadata_promotion_value_unsupported.p.big"][0]
    assert not any(str(2**63 + 5) in message for message, _ in diagnostics.values())  # never the value


def test_gen_ai_promotes_metadata_too(traced: Callable[..., Traced]) -> None:
    out = traced("gen_ai", promote_metadata_prefixes=["tenant."])
    scope.pop(scope.push("fn", ScopeType.Function, metadata={"tenant.tier": "gold"}))
    assert out.attrs("fn") == {"tenant.tier": "gold"}


def test_attribute_mappings_copy_values_to_aliases(traced: Callable[..., Traced]) -> None:
    mappings = [
        {"key": "nemo_relay.scope_type", "alias": "kind.alias"},
        {"key": "nemo_relay.end.metadata.otel.status_code", "alias": "status.alias"},
        {"key": "nemo_relay.mark.data.z", "alias": "z.alias"},
        {"key": "nemo_relay.uuid", "alias": "nemo_relay.scope_type"},  # already set: not overwritten
        {"key": "missing.key", "alias": "never"},
    ]
    out = traced("full", attribute_mappings=mappings)
    gen_ai = traced("gen_ai", attribute_mappings=[{"key": "gen_ai.operation.name", "alias": "op"}])
    with scope.scope("agent", ScopeType.Agent):
        scope.event("mk", data={"z": 1})
    attrs = out.attrs("agent")
    assert (attrs["kind.alias"], attrs["status.alias"], attrs["nemo_relay.scope_type"]) == ("agent", "OK", "agent")
    assert "never" not in attrs
    assert dict(out.span("agent").events[0].attributes or {})["z.alias"] == 1
    assert "op" not in gen_ai.attrs("invoke_agent agent")  # mappings are for full and OpenInference


# --- LLM details -----------------------------------------------------------------------------------------

ANTHROPIC_REQUEST = {
    "model": "claude-3",
    "system": "be nice",
    "max_tokens": 100,
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tu1", "name": "f", "input": {"x": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "42"}]},
    ],
}
ANTHROPIC_RESPONSE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-x",
    "content": [
        {"type": "text", "text": "Hi there"},
        {"type": "tool_use", "id": "tu3", "name": "g", "input": {"y": 2}},
    ],
    "stop_reason": "max_tokens",
    "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2},
}


async def _anthropic_call() -> None:
    codec = AnthropicMessagesCodec()
    with scope.scope("agent", ScopeType.Agent):
        await llm.execute(
            "anthropic.messages",
            LLMRequest({}, ANTHROPIC_REQUEST),
            lambda r: ANTHROPIC_RESPONSE,
            codec=codec,
            response_codec=codec,
        )


def test_anthropic_usage_counts_cached_input_once(traced: Callable[..., Traced]) -> None:
    openinference, gen_ai = traced("openinference"), traced("gen_ai")
    run(_anthropic_call)
    oi = openinference.attrs("anthropic.messages")
    assert (oi["llm.token_count.prompt"], oi["llm.token_count.completion"], oi["llm.token_count.total"]) == (15, 5, 20)
    assert (oi["llm.token_count.prompt_details.cache_read"], oi["llm.token_count.prompt_details.cache_write"]) == (3, 2)
    assert oi["llm.finish_reason"] == "length"
    assert oi["output.value"] == "Hi there\nRequested tools: g"
    assert oi["input.value"] == "user: hello\n\nassistant: Requested tools: f"
    assert (oi["llm.input_messages.0.message.role"], oi["llm.input_messages.0.message.content"]) == (
        "system",
        "be nice",
    )
    assert (oi["llm.input_messages.3.message.role"], oi["llm.input_messages.3.message.tool_call_id"]) == ("tool", "tu1")
    ga = gen_ai.attrs("chat claude-3")
    assert ga["gen_ai.provider.name"] == "anthropic"
    assert (ga["gen_ai.usage.input_tokens"], ga["gen_ai.usage.output_tokens"]) == (15, 5)
    assert (ga["gen_ai.usage.cache_read.input_tokens"], ga["gen_ai.usage.cache_creation.input_tokens"]) == (3, 2)
    assert ga["gen_ai.system_instructions"] == '[{"content":"be nice","type":"text"}]'
    assert json.loads(str(ga["gen_ai.input.messages"]))[2] == {
        "parts": [{"id": "tu1", "response": "42", "type": "tool_call_response"}],
        "role": "tool",
    }


def test_llm_calls_without_codec_are_read_from_the_raw_payload(traced: Callable[..., Traced]) -> None:
    out, gen_ai = traced("openinference"), traced("gen_ai")
    response = {
        "id": "r1",
        "model": "gpt-x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }

    async def calls() -> None:
        await llm.execute(
            "azure_openai.chat_completion",
            LLMRequest({}, {"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}),
            lambda r: response,
            metadata={"server.address": "api.example.com", "server.port": 8443, "conversation_id": "C9"},
        )
        await llm.execute("plain", LLMRequest({}, {"prompt": "p"}), lambda r: {"text": "y"}, model_name="m1")

    run(calls)
    chat = out.attrs("azure_openai.chat_completion")
    assert (chat["llm.token_count.prompt"], chat["llm.token_count.total"]) == (3, 4)
    assert (chat["output.value"], chat["llm.finish_reason"], chat["llm.model_name"]) == ("hi", "complete", "gpt-x")
    plain = out.attrs("plain")
    assert (plain["input.value"], plain["output.value"], plain["llm.model_name"]) == ("p", "y", "m1")
    ga = gen_ai.attrs("chat gpt-x")
    assert (ga["gen_ai.provider.name"], ga["server.address"], ga["server.port"]) == (
        "azure.ai.openai",
        "api.example.com",
        8443,
    )
    assert ga["gen_ai.conversation.id"] == "C9"
    assert gen_ai.attrs("chat m1") == {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m1"}


def test_gen_ai_operations_and_lookups(traced: Callable[..., Traced]) -> None:
    out = traced("gen_ai")
    with scope.scope("agent", ScopeType.Agent, metadata={"thread_id": "T1", "gen_ai.agent.name": "Named"}):
        retriever = scope.push("retr", ScopeType.Retriever, input={"top_k": 3}, metadata={"index_name": "idx"})
        scope.pop(retriever)
        embedder = scope.push("embed", ScopeType.Embedder, input={"model": "emb-3"}, metadata={"provider": "openai"})
        scope.pop(embedder, output={"model": "emb-3-small", "usage": {"prompt_tokens": 4}})
    assert out.attrs("invoke_agent Named")["gen_ai.conversation.id"] == "T1"
    assert out.attrs("retrieval idx") == {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": "idx",
        "gen_ai.retrieval.top_k": 3,
    }
    assert out.attrs("embeddings emb-3") == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "emb-3",
        "gen_ai.response.model": "emb-3-small",
        "gen_ai.usage.input_tokens": 4,
    }
    from nemo_relay._core.observability.otel.projection_genai import llm_operation

    assert [llm_operation(n) for n in ("gemini.generateContent", "legacy.completion", "x.chat_completion")] == [
        "generate_content",
        "text_completion",
        "chat",
    ]


# --- providers -------------------------------------------------------------------------------------------


def test_a_callers_provider_is_used_and_nothing_global_is_installed(traced: Callable[..., Traced]) -> None:
    before = trace_api.get_tracer_provider()
    out = traced("full")
    scope.pop(scope.push("s", ScopeType.Agent))
    assert out.span("s")  # exported through the caller's processor
    assert trace_api.get_tracer_provider() is before


def test_the_callers_tracer_keeps_its_own_ids() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    subscriber = OpenTelemetrySubscriber(OpenTelemetryConfig("full", "http://x"), tracer_provider=provider)
    tracer: Any = provider.get_tracer("opentelemetry")
    assert tracer.id_generator is provider.id_generator  # our deterministic ids live on a private copy
    subscriber.shutdown(timeout=1)


class CostCodec:
    """A response codec reporting a cost in ``currency`` (and a message the raw payload does not have)."""

    def __init__(self, currency: str) -> None:
        self.currency = currency

    def decode_response(self, response: Any) -> nemo_relay.AnnotatedLLMResponse:
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        usage["cost"] = {"total": 0.25, "currency": self.currency, "source": "provider_reported"}  # type: ignore[assignment]
        return nemo_relay.AnnotatedLLMResponse(id="r", model="m-x", message="hello", usage=usage)


@pytest.mark.parametrize("currency", ["USD", "EUR"])
def test_tool_annotations_and_llm_costs(traced: Callable[..., Traced], currency: str) -> None:
    full, openinference = traced("full"), traced("openinference")

    async def calls() -> None:
        async def tool(args: Any) -> nemo_relay.ToolExecutionResult[Any]:
            return nemo_relay.ToolExecutionResult({"r": 1}, annotation={"kind": "file"})

        await nemo_relay.tools.execute("annotated", {}, tool)
        request = LLMRequest({}, {"messages": [{"role": "user", "content": "x"}]})
        await llm.execute("costly", request, lambda r: {"raw": 1}, response_codec=CostCodec(currency))

    run(calls)
    assert full.attrs("annotated")["nemo_relay.tool.result.annotation"] == '{"kind":"file"}'
    costly = full.attrs("costly")
    assert (costly["nemo_relay.llm.cost.total"], costly["nemo_relay.llm.cost.currency"]) == (0.25, currency)
    oi = openinference.attrs("costly")
    assert ("llm.cost.total" in oi) is (currency == "USD")  # OpenInference costs are US dollars
    assert oi["llm.output_messages.0.message.content"] == "hello"  # messages come from the codec view ...
    assert (oi["output.value"], oi["output.mime_type"]) == ('{"raw":1}', "application/json")  # ... display from raw
