"""LLM calls through the public API: request values, manual ``llm.call``/``call_end``, managed ``llm.execute``
(guardrails, request and execution intercepts, header injection), the standalone helpers and LLM sanitizers.

Expected payloads and messages were confirmed against the reference wheel (nemo-relay 0.8.4), except for the
documented intended differences (request-intercept error wording, eager callable checks).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import re
import threading

import pytest

import nemo_relay
from nemo_relay import (
    LLMAttributes,
    LLMHandle,
    LLMRequest,
    LLMRequestInterceptOutcome,
    LogSeverity,
    PendingMarkSpec,
    PropagationContext,
    ScopeType,
    guardrails,
    intercepts,
    llm,
    scope,
    scope_local,
    subscribers,
)

PARENT = "0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b"
ROOT = "0190a1b2-0000-7e5f-8a6b-1c2d3e4f5a6b"
CREDENTIAL_HEADERS = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "anthropic-api-key",
    "x-goog-api-key",
]
INACTIVE = "invalid argument: execution continuation is no longer active"
ASYNC_CALLER = "internal error: awaitable Python middleware requires an async caller"


# --- helpers ----------------------------------------------------------------------------------------------


def hex_of(uuid: str) -> str:
    return uuid.replace("-", "")


def traceparent(root: str, parent: str) -> str:
    return f"00-{hex_of(root)}-{hex_of(parent)[-16:]}-01"


def phase(event: object) -> str:
    return getattr(event, "scope_category", "mark")


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def ts_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 event timestamp (up to 9 fractional digits)."""
    match = _TS.match(text)
    assert match, text
    base, frac, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    seconds = int(dt.datetime.fromisoformat(base + zone).timestamp())
    return seconds * 1_000_000_000 + int((frac or "").ljust(9, "0")[:9])


async def delivered(events) -> list:
    await subscribers.flush_async()
    return list(events)


def llm_events(evs: list, name: str = "chat") -> list:
    return [e for e in evs if e.name == name and getattr(e, "category", None) == "llm"]


def request(headers=None, content=None) -> LLMRequest:
    return LLMRequest({} if headers is None else headers, {"messages": []} if content is None else content)


# --- LLMRequest and outcome values ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [[], "x", 5, None, ("a", "b")], ids=["list", "str", "int", "none", "tuple"])
def test_llm_request_headers_must_be_a_dict(headers):
    with pytest.raises(TypeError, match="not an instance of 'dict'"):
        LLMRequest(headers, {})


@pytest.mark.parametrize(
    "content",
    [{"messages": [{"role": "user", "content": "hi"}]}, [1, "two", None], "text", 7, 2.5, True, None],
    ids=["object", "list", "str", "int", "float", "bool", "null"],
)
def test_llm_request_content_is_any_json(content):
    req = LLMRequest({"h": "v"}, content)
    assert req.content == content
    assert req.headers == {"h": "v"}


def test_llm_request_rejects_values_that_are_not_json():
    with pytest.raises(ValueError, match="Failed to convert to JSON: unsupported type object"):
        LLMRequest({"h": object()}, {})
    with pytest.raises(ValueError, match="Failed to convert to JSON: unsupported type object"):
        LLMRequest({}, {"c": object()})
    with pytest.raises(ValueError, match="'int' object is not an instance of 'str'"):
        LLMRequest({1: "x"}, {})


def test_llm_request_getters_return_fresh_copies():
    headers = {"h": "v", "nested": {"k": [1]}}
    content = {"messages": [{"role": "user"}]}
    req = LLMRequest(headers, content)
    headers["h"] = "changed"  # the constructor copied its inputs
    content["messages"].append("changed")

    got = req.headers
    got["h"] = "mutated"
    got["nested"]["k"].append(2)
    body = req.content
    body["messages"][0]["role"] = "mutated"

    assert req.headers == {"h": "v", "nested": {"k": [1]}}
    assert req.content == {"messages": [{"role": "user"}]}
    assert req.headers is not req.headers
    assert req.content is not req.content


def test_llm_request_large_body_reads_are_fresh_copies_of_the_converted_value():
    # A conversation-sized body takes the large path (copied with marshal, read back from a frozen snapshot).
    messages = [{"role": "user", "content": f"turn {i}", "parts": (i, i + 1)} for i in range(100)]
    content = {"messages": messages, "temperature": float("nan")}
    req = LLMRequest({}, content)
    messages.append({"role": "late"})  # the constructor copied its input
    expected = {
        "messages": [{"role": "user", "content": f"turn {i}", "parts": [i, i + 1]} for i in range(100)],
        "temperature": None,
    }
    first = req.content
    assert first == expected
    first["messages"][0]["content"] = "mutated"
    first["messages"].clear()
    second = req.content
    assert second == expected
    assert second is not first and second["messages"] is not first["messages"]
    rebuilt = req.with_headers({"h": "v"})  # shares the converted body
    assert rebuilt.headers == {"h": "v"} and req.headers == {}
    assert rebuilt.content == expected
    with pytest.raises(TypeError, match="argument 'headers': 'list' object is not an instance of 'dict'"):
        req.with_headers([])  # type: ignore[arg-type]


def test_llm_request_is_immutable():
    req = LLMRequest({"h": "v"}, {"a": 1})
    with pytest.raises(AttributeError):
        req.headers = {}  # type: ignore[misc]
    with pytest.raises(AttributeError):
        req.content = {}  # type: ignore[misc]
    with pytest.raises(AttributeError):
        req.extra = 1  # type: ignore[attr-defined]
    assert req.headers == {"h": "v"}
    assert req.content == {"a": 1}


def test_llm_request_keyword_arguments_and_repr():
    req = LLMRequest(headers={"x": "1"}, content=None)
    assert req.headers == {"x": "1"}
    assert req.content is None
    assert "LLMRequest" in repr(req)


def test_intercept_outcome_defaults():
    req = LLMRequest({"a": "b"}, "body")
    outcome = LLMRequestInterceptOutcome(req)
    assert isinstance(outcome.request, LLMRequest)
    assert outcome.request.headers == {"a": "b"}
    assert outcome.request.content == "body"
    assert outcome.annotated_request is None
    assert outcome.pending_marks == []
    assert outcome.optimization_contributions == []


def test_intercept_outcome_keeps_pending_marks_in_order():
    marks = [PendingMarkSpec("one"), PendingMarkSpec("two")]
    outcome = LLMRequestInterceptOutcome(LLMRequest({}, {}), None, marks)
    assert [m.name for m in outcome.pending_marks] == ["one", "two"]
    outcome.pending_marks.clear()  # a copy
    assert [m.name for m in outcome.pending_marks] == ["one", "two"]


def test_intercept_outcome_validates_its_arguments():
    with pytest.raises(TypeError, match="'dict' object is not an instance of 'LLMRequest'"):
        LLMRequestInterceptOutcome({"headers": {}, "content": {}})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'str' object is not an instance of 'PendingMarkSpec'"):
        LLMRequestInterceptOutcome(LLMRequest({}, {}), None, ["x"])  # type: ignore[list-item]


def test_pending_mark_spec_properties():
    spec = PendingMarkSpec(
        "n",
        category="bogus",
        category_profile={"model_name": "m", "custom": 1},
        data={"d": [1]},
        metadata={"m": 1},
        data_schema={"name": "s", "version": "1"},
        severity=LogSeverity.Warn,
    )
    assert spec.name == "n"
    assert spec.category == "bogus"
    assert spec.category_profile == {"model_name": "m", "custom": 1}
    assert spec.data == {"d": [1]}
    assert spec.metadata == {"m": 1}
    assert spec.data_schema == {"name": "s", "version": "1"}
    assert spec.severity == LogSeverity.Warn


def test_pending_mark_spec_defaults_and_validation():
    spec = PendingMarkSpec("plain")
    assert (spec.category, spec.category_profile, spec.data, spec.metadata, spec.data_schema, spec.severity) == (
        None,
        None,
        None,
        None,
        None,
        None,
    )
    with pytest.raises(TypeError, match="'str' object is not an instance of 'LogSeverity'"):
        PendingMarkSpec("n", severity="warn")  # type: ignore[arg-type]


# --- manual lifecycle -------------------------------------------------------------------------------------


def test_manual_call_start_and_end_events(events):
    top = scope.get_handle()
    handle = llm.call(
        "chat", request({"keep": "v"}, {"m": 1}), model_name="gpt", metadata={"a": 1}, data={"fallback": 1}
    )
    llm.call_end(handle, {"text": "hi"}, metadata={"b": 2})
    start, end = llm_events(events.flush())

    assert (phase(start), phase(end)) == ("start", "end")
    assert start.uuid == end.uuid == handle.uuid
    assert start.parent_uuid == end.parent_uuid == top.uuid
    assert start.category == end.category == "llm"
    assert start.data == {"headers": {"keep": "v"}, "content": {"m": 1}}
    assert start.category_profile == end.category_profile == {"model_name": "gpt"}
    assert start.metadata == {"a": 1}
    assert start.attributes == end.attributes == []
    assert end.data == {"text": "hi"}
    assert end.metadata == {"a": 1, "b": 2, "otel.status_code": "OK"}


def test_manual_call_without_model_name_has_an_empty_profile(events):
    handle = llm.call("chat", request(content=[1, 2]))
    llm.call_end(handle, "resp")
    start, end = llm_events(events.flush())
    assert start.category_profile == {} and end.category_profile == {}
    assert start.metadata is None
    assert start.data == {"headers": {}, "content": [1, 2]}
    assert end.data == "resp"
    assert end.metadata == {"otel.status_code": "OK"}


@pytest.mark.parametrize("header", CREDENTIAL_HEADERS)
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title], ids=["lower", "upper", "title"])
def test_manual_call_removes_credential_headers_case_insensitively(events, header, case):
    original = {case(header): "secret", "x-keep": "kept"}
    req = LLMRequest(original, {"q": 1})
    llm.call_end(llm.call("chat", req), None)
    start, _ = llm_events(events.flush())
    assert start.data == {"headers": {"x-keep": "kept"}, "content": {"q": 1}}
    assert req.headers == original  # the caller's request is untouched


def test_manual_call_removes_every_credential_header_at_once(events):
    headers = {name: "secret" for name in CREDENTIAL_HEADERS} | {"Content-Type": "json", "x-api-key-id": "not-a-key"}
    llm.call_end(llm.call("chat", LLMRequest(headers, {})), None)
    start, _ = llm_events(events.flush())
    assert start.data["headers"] == {"Content-Type": "json", "x-api-key-id": "not-a-key"}


def test_call_end_null_response_falls_back_to_data(events):
    llm.call_end(llm.call("chat", request()), None, data={"d": 2})
    llm.call_end(llm.call("chat", request()), {"resp": 1}, data={"d": 2})
    llm.call_end(llm.call("chat", request()), None)
    llm.call_end(llm.call("chat", request()), 0)
    ends = [e for e in llm_events(events.flush()) if phase(e) == "end"]
    assert [e.data for e in ends] == [{"d": 2}, {"resp": 1}, None, 0]


def test_call_end_metadata_merges_over_start_metadata(events):
    handle = llm.call("chat", request(), metadata={"a": 1, "shared": "start"})
    llm.call_end(handle, "r", metadata={"shared": "end", "otel.status_code": "ERROR", "b": 2})
    other = llm.call("chat", request(), metadata="not-an-object")
    llm.call_end(other, "r", metadata={"b": 1})
    ends = [e for e in llm_events(events.flush()) if phase(e) == "end"]
    assert ends[0].metadata == {"a": 1, "shared": "end", "b": 2, "otel.status_code": "OK"}
    assert ends[1].metadata == {"b": 1, "otel.status_code": "OK"}


def test_manual_call_explicit_parent_attributes_and_timestamps(events):
    start_at = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    with scope.scope("outer", ScopeType.Agent) as outer, scope.scope("inner", ScopeType.Function):
        attrs = LLMAttributes(LLMAttributes.STREAMING) | LLMAttributes(LLMAttributes.STATEFUL)
        handle = llm.call("chat", request(), handle=outer, attributes=attrs, timestamp=start_at)
    llm.call_end(handle, {"r": 1}, timestamp=start_at + dt.timedelta(seconds=1))
    start, end = llm_events(events.flush())
    assert handle.parent_uuid == outer.uuid
    assert start.parent_uuid == end.parent_uuid == outer.uuid
    assert start.attributes == end.attributes == ["stateful", "streaming"]
    assert start.timestamp == "2024-01-02T03:04:05.123456+00:00"
    assert end.timestamp == "2024-01-02T03:04:06.123456+00:00"


def test_call_end_without_timestamp_is_after_the_start(events):
    start_at = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    llm.call_end(llm.call("chat", request(), timestamp=start_at), "r")
    start, end = llm_events(events.flush())
    assert ts_ns(end.timestamp) > ts_ns(start.timestamp)


def test_llm_handle_properties_and_repr():
    top = scope.get_handle()
    handle = llm.call("chat", request(), data={"fb": 1}, metadata={"a": 1}, attributes=LLMAttributes(0b10))
    assert isinstance(handle, LLMHandle)
    assert handle.name == "chat"
    assert handle.parent_uuid == top.uuid
    assert handle.data == {"fb": 1}
    assert handle.metadata == {"a": 1}
    assert handle.attributes.is_streaming and not handle.attributes.is_stateful
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", handle.uuid)
    assert repr(handle) == f"LLMHandle(name='chat', uuid='{handle.uuid}')"
    llm.call_end(handle, None)


def test_manual_call_validates_arguments():
    with pytest.raises(TypeError, match="'dict' object is not an instance of 'LLMRequest'"):
        llm.call("chat", {"headers": {}})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'int' object is not an instance of 'str'"):
        llm.call(5, request())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'int' object is not an instance of 'str'"):
        llm.call("chat", request(), model_name=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'str' object is not an instance of 'LLMHandle'"):
        llm.call_end("not-a-handle", 1)  # type: ignore[arg-type]
    handle = llm.call("chat", request())
    with pytest.raises(ValueError, match="Failed to convert to JSON: unsupported type object"):
        llm.call_end(handle, object())


# --- managed execute: basics ----------------------------------------------------------------------------------


def _sync_provider(req):
    return {"echo": req.content}


async def _async_provider(req):
    await asyncio.sleep(0)
    return {"echo": req.content}


@pytest.mark.parametrize("provider", [_sync_provider, _async_provider], ids=["sync", "async"])
async def test_execute_returns_the_provider_response_and_records_the_call(events, provider):
    top = scope.get_handle()
    result = await llm.execute("chat", request({"h": "v"}, {"q": 1}), provider, model_name="m", metadata={"k": 1})
    assert result == {"echo": {"q": 1}}
    start, end = llm_events(await delivered(events))
    assert start.uuid == end.uuid
    assert start.parent_uuid == end.parent_uuid == top.uuid
    assert start.data == {"headers": {"h": "v"}, "content": {"q": 1}}
    assert start.category_profile == end.category_profile == {"model_name": "m"}
    assert start.metadata == {"k": 1}
    assert end.data == {"echo": {"q": 1}}
    assert end.metadata == {"k": 1, "otel.status_code": "OK"}
    assert ts_ns(end.timestamp) > ts_ns(start.timestamp)


async def test_execute_returns_the_raw_response_not_the_sanitized_one(events):
    def mutate(resp, ctx):
        resp["sanitized"] = True
        return resp

    guardrails.register_llm_sanitize_response("mutate", 1, mutate)
    raw = {"a": 1}
    result = await llm.execute("chat", request(), lambda req: raw)
    _, end = llm_events(await delivered(events))
    assert end.data == {"a": 1, "sanitized": True}
    assert result == {"a": 1}
    assert raw == {"a": 1}


def test_execute_requires_a_running_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        llm.execute("chat", request(), _sync_provider)


async def test_execute_rejects_a_non_callable_func(events):
    with pytest.raises(TypeError):
        llm.execute("chat", request(), 5)  # type: ignore[arg-type]
    assert await delivered(events) == []


@pytest.mark.parametrize("spelling", ["traceparent", "TraceParent", "TRACEPARENT"])
async def test_provider_request_carries_a_fresh_traceparent(events, spelling):
    seen = {}

    def provider(req):
        seen["headers"] = req.headers
        return "ok"

    await llm.execute("chat", request({spelling: "00-caller-value-01", "h": "v"}), provider)
    start, _ = llm_events(await delivered(events))
    assert seen["headers"] == {"h": "v", "traceparent": traceparent(start.uuid, start.uuid)}
    assert start.data["headers"] == {spelling: "00-caller-value-01", "h": "v"}


async def test_provider_sees_credentials_the_start_event_hides(events):
    seen = {}

    def provider(req):
        seen["headers"] = req.headers
        return "ok"

    await llm.execute("chat", request({"Authorization": "Bearer s", "x-api-key": "k", "h": "v"}), provider)
    start, _ = llm_events(await delivered(events))
    assert start.data["headers"] == {"h": "v"}
    assert {k: v for k, v in seen["headers"].items() if k != "traceparent"} == {
        "Authorization": "Bearer s",
        "x-api-key": "k",
        "h": "v",
    }


async def test_traceparent_root_is_the_first_scope_under_the_root(events):
    seen = {}

    def provider(req):
        seen["tp"] = req.headers["traceparent"]
        return "ok"

    with scope.scope("first", ScopeType.Function) as first, scope.scope("second", ScopeType.Agent):
        await llm.execute("chat", request(), provider)
    start, _ = llm_events(await delivered(events))
    assert seen["tp"] == traceparent(first.uuid, start.uuid)


@pytest.mark.parametrize(
    "ctx_args",
    [(PARENT, ROOT), (PARENT, PARENT)],
    ids=["root-differs", "root-is-parent"],
)
async def test_traceparent_root_is_the_propagated_root(events, ctx_args):
    seen = []

    def provider(req):
        seen.append((req.headers["traceparent"], nemo_relay.capture_traceparent()))
        return "ok"

    stack = nemo_relay.create_scope_stack_from_propagation(PropagationContext(*ctx_args))
    with nemo_relay.use_scope_stack(stack):
        await llm.execute("chat", request(), provider)
        with scope.scope("inner", ScopeType.Function):
            await llm.execute("chat", request(), provider)
    calls = [e for e in llm_events(await delivered(events)) if phase(e) == "start"]
    root = ctx_args[1]
    assert [s[0] for s in seen] == [traceparent(root, calls[0].uuid), traceparent(root, calls[1].uuid)]
    assert [s[1] for s in seen] == [s[0] for s in seen]
    assert calls[0].parent_uuid == PARENT


async def test_traceparent_root_of_a_rootless_propagated_stack(events):
    seen = []

    def provider(req):
        seen.append(req.headers["traceparent"])
        return "ok"

    stack = nemo_relay.create_scope_stack_from_propagation(PropagationContext(PARENT))
    with nemo_relay.use_scope_stack(stack):
        await llm.execute("chat", request(), provider)
        with scope.scope("inner", ScopeType.Function) as inner:
            await llm.execute("chat", request(), provider)
    first, second = [e for e in llm_events(await delivered(events)) if phase(e) == "start"]
    assert seen == [traceparent(first.uuid, first.uuid), traceparent(inner.uuid, second.uuid)]


async def test_provider_runs_as_the_llm_call(events):
    seen = {}

    def provider(req):
        seen["tp"] = nemo_relay.capture_traceparent()
        seen["parent"] = nemo_relay.capture_propagation_context().parent_uuid
        seen["header"] = req.headers["traceparent"]
        return "ok"

    await llm.execute("chat", request(), provider)
    start, _ = llm_events(await delivered(events))
    llm_hex = hex_of(start.uuid)
    assert seen["tp"] == f"00-{llm_hex}-{llm_hex[-16:]}-01"
    assert seen["header"] == seen["tp"]
    assert seen["parent"] == start.uuid


async def test_async_provider_runs_as_the_llm_call(events):
    seen = {}

    async def provider(req):
        await asyncio.sleep(0)
        seen["parent"] = nemo_relay.capture_propagation_context().parent_uuid
        return "ok"

    with scope.scope("agent", ScopeType.Agent):
        await llm.execute("chat", request(), provider)
    start, _ = llm_events(await delivered(events))
    assert seen["parent"] == start.uuid


# --- Dynamo session headers ---------------------------------------------------------------------------------


async def _provider_headers(req_headers=None, **kwargs) -> dict:
    seen = {}

    def provider(req):
        seen.update(req.headers)
        return "ok"

    await llm.execute("chat", request(req_headers), provider, **kwargs)
    seen.pop("traceparent")
    return seen


async def test_dynamo_headers_from_the_two_innermost_agents(events):
    with (
        scope.scope("outermost", ScopeType.Agent, metadata={"session_id": "S0"}),
        scope.scope("outer", ScopeType.Agent, metadata={"session_id": "S1"}),
        scope.scope("fn", ScopeType.Function),
        scope.scope("inner", ScopeType.Agent, metadata={"subagent_session_id": "S2"}),
        scope.scope("tool-ish", ScopeType.Custom),
    ):
        headers = await _provider_headers({"x-dynamo-parent-session-id": "stale"})
    assert headers == {"x-dynamo-session-id": "S2", "x-dynamo-parent-session-id": "S1"}
    start, _ = llm_events(await delivered(events))
    assert start.data["headers"] == headers  # injected before the start event


async def test_single_agent_removes_a_caller_parent_session_header(events):
    with scope.scope("solo", ScopeType.Agent):
        headers = await _provider_headers({"x-dynamo-parent-session-id": "stale", "h": "v"})
    assert headers == {"h": "v", "x-dynamo-session-id": "solo"}


async def test_no_dynamo_headers_without_an_explicit_agent(events):
    headers = await _provider_headers({"x-dynamo-parent-session-id": "kept"})
    assert headers == {"x-dynamo-parent-session-id": "kept"}
    with scope.scope("fn", ScopeType.Function), scope.scope("custom", ScopeType.Custom):
        headers = await _provider_headers()
    assert headers == {}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"session_id": "s", "subagent_id": "sa", "subagent_session_id": "ss", "codex_subagent_session_id": "cx"},
            "cx",
        ),
        ({"session_id": "s", "subagent_id": "sa", "subagent_session_id": "ss"}, "ss"),
        ({"session_id": "s", "subagent_id": "sa"}, "sa"),
        ({"session_id": "s"}, "s"),
        ({"subagent_id": 5, "session_id": "s"}, "s"),
        ({"codex_subagent_session_id": None}, "agent-name"),
        ({"other": "x"}, "agent-name"),
        (None, "agent-name"),
        ("not-an-object", "agent-name"),
    ],
    ids=["codex", "subagent-session", "subagent-id", "session", "non-string-skipped", "null", "other", "none", "str"],
)
async def test_dynamo_agent_id_precedence(events, metadata, expected):
    with scope.scope("agent-name", ScopeType.Agent, metadata=metadata):
        headers = await _provider_headers()
    assert headers == {"x-dynamo-session-id": expected}


# --- managed execute: failures and cancellation ----------------------------------------------------------------


async def test_provider_failure_raises_and_records_an_error_end(events):
    guardrails.register_llm_sanitize_response("wrap", 1, lambda resp, ctx: {"sanitized": resp})

    def provider(req):
        raise ValueError("nope")

    with pytest.raises(RuntimeError, match=r"^internal error: ValueError: nope$"):
        await llm.execute("chat", request(), provider, data={"fallback": 1}, metadata={"m": 1})
    start, end = llm_events(await delivered(events))
    assert start.metadata == {"m": 1}
    assert end.data == {"sanitized": {"fallback": 1}}
    assert end.metadata == {
        "m": 1,
        "otel.status_code": "ERROR",
        "otel.status_description": "internal error: ValueError: nope",
        "error.type": "internal_error",
        "exception.type": "ValueError",
    }


async def test_async_provider_failure_without_fallback_data(events):
    async def provider(req):
        await asyncio.sleep(0)
        raise KeyError("kk")

    with pytest.raises(RuntimeError, match=r"^internal error: KeyError: 'kk'$"):
        await llm.execute("chat", request(), provider)
    _, end = llm_events(await delivered(events))
    assert end.data is None
    assert end.metadata["exception.type"] == "KeyError"
    assert end.metadata["error.type"] == "internal_error"


async def test_non_json_provider_response_is_an_internal_error(events):
    with pytest.raises(RuntimeError, match="internal error: ValueError: Failed to convert to JSON: unsupported type"):
        await llm.execute("chat", request(), lambda req: object())
    _, end = llm_events(await delivered(events))
    assert end.metadata["otel.status_code"] == "ERROR"
    assert end.metadata["error.type"] == "internal_error"
    assert "exception.type" not in end.metadata


@pytest.mark.timeout(30)
@pytest.mark.parametrize("yields_before_cancel", [0, 3], ids=["before-the-task-ran", "while-suspended"])
async def test_cancellation_records_a_cancelled_end(events, yields_before_cancel):
    started = asyncio.Event()
    cancelled = []

    async def provider(req):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    future = llm.execute("chat", request(), provider, metadata={"m": 1})
    await started.wait()
    for _ in range(yields_before_cancel):
        await asyncio.sleep(0)
    future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await future
    for _ in range(3):
        await asyncio.sleep(0)
    start, end = llm_events(await delivered(events))
    assert end.uuid == start.uuid
    assert end.data is None
    assert end.metadata == {
        "m": 1,
        "otel.status_code": "ERROR",
        "otel.status_description": "LLM execution cancelled",
    }
    assert cancelled == [True]


# --- conditional guardrails -----------------------------------------------------------------------------------


async def test_allowing_guardrail_records_its_scope_and_lets_the_call_run(events):
    seen = []
    guardrails.register_llm_conditional_execution("allow", 1, lambda req: seen.append(req.content))
    with scope.scope("agent", ScopeType.Agent) as agent:
        assert await llm.execute("chat", request(content={"q": 1}), _sync_provider, metadata={"mm": 1}) == {
            "echo": {"q": 1}
        }
    assert seen == [{"q": 1}]
    evs = [e for e in await delivered(events) if e.name != "agent"]
    assert [(e.name, phase(e)) for e in evs] == [
        ("allow", "start"),
        ("allow", "end"),
        ("chat", "start"),
        ("chat", "end"),
    ]
    g_start, g_end = evs[:2]
    assert g_start.category == "guardrail"
    assert g_start.uuid == g_end.uuid
    assert g_start.parent_uuid == agent.uuid
    assert g_start.data == {"kind": "llm_conditional_execution"}
    assert g_end.data == {"allowed": True, "rejected": False}
    assert g_start.metadata == g_end.metadata == {"mm": 1}


async def test_rejecting_guardrail_stops_the_call_and_emits_a_mark(events):
    called = []
    guardrails.register_llm_conditional_execution("allow", 1, lambda req: None)
    guardrails.register_llm_conditional_execution("deny", 2, lambda req: f"blocked {req.content['q']}")
    intercepts.register_llm_request("req", 1, False, lambda *a: called.append("request"))
    intercepts.register_llm_execution("exe", 1, lambda *a: called.append("execution"))
    with (
        scope.scope("outer", ScopeType.Agent) as outer,
        scope.scope("inner", ScopeType.Function),
        pytest.raises(RuntimeError, match=r"^guardrail rejected: blocked 1$"),
    ):
        await llm.execute(
            "chat", request(content={"q": 1}), lambda r: called.append("func"), handle=outer, metadata={"m": 1}
        )
    assert called == []
    evs = [e for e in await delivered(events) if e.name not in ("outer", "inner")]
    assert [(e.name, phase(e)) for e in evs] == [
        ("allow", "start"),
        ("allow", "end"),
        ("deny", "start"),
        ("deny", "end"),
        ("chat", "mark"),
    ]
    assert evs[3].data == {"allowed": False, "rejected": True, "rejection_reason": "blocked 1"}
    mark = evs[4]
    assert mark.parent_uuid == outer.uuid
    assert mark.data == {"rejected": True, "rejection_reason": "blocked 1"}
    assert mark.metadata == {"m": 1}
    assert mark.category is None and mark.category_profile is None


async def test_raising_guardrail_fails_the_call_without_llm_events(events):
    def guard(req):
        raise KeyError("g")

    guardrails.register_llm_conditional_execution("boom", 1, guard)
    with pytest.raises(RuntimeError, match=r"^internal error: KeyError: 'g'$"):
        await llm.execute("chat", request(), _sync_provider)
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("boom", "start"), ("boom", "end")]
    assert evs[1].data == {"allowed": False, "error": "internal error: KeyError: 'g'"}


async def test_guardrail_returning_a_non_string_is_an_error(events):
    guardrails.register_llm_conditional_execution("bad", 1, lambda req: 5)
    message = (
        "internal error: LLM conditional guardrail returned unexpected type: TypeError: "
        "'int' object is not an instance of 'str'"
    )
    with pytest.raises(RuntimeError) as info:
        await llm.execute("chat", request(), _sync_provider)
    assert str(info.value) == message
    evs = await delivered(events)
    assert evs[-1].data == {"allowed": False, "error": message}


async def test_async_guardrail_can_reject(events):
    async def guard(req):
        await asyncio.sleep(0)
        return "async no"

    guardrails.register_llm_conditional_execution("async", 1, guard)
    with pytest.raises(RuntimeError, match="guardrail rejected: async no"):
        await llm.execute("chat", request(), _sync_provider)
    assert [(e.name, phase(e)) for e in await delivered(events)] == [
        ("async", "start"),
        ("async", "end"),
        ("chat", "mark"),
    ]


# --- request intercepts ---------------------------------------------------------------------------------------


async def test_request_intercepts_edit_the_provider_request_and_the_start_event(events):
    seen = {}

    def first(name, req, annotated):
        seen["first"] = (name, req.headers, req.content, annotated)
        headers = req.headers | {"x-added": "1", "Authorization": "secret"}
        return LLMRequestInterceptOutcome(LLMRequest(headers, {"edited": True}))

    def second(name, req, annotated):
        seen["second"] = (req.headers, req.content)
        return LLMRequestInterceptOutcome(LLMRequest(req.headers, {**req.content, "second": True}))

    def provider(req):
        seen["provider"] = (req.headers, req.content)
        return "ok"

    intercepts.register_llm_request("b-second", 2, False, second)
    intercepts.register_llm_request("a-first", 1, False, first)
    await llm.execute("chat", request({"h": "v"}, {"orig": 1}), provider)

    assert seen["first"] == ("chat", {"h": "v"}, {"orig": 1}, None)
    assert seen["second"] == ({"h": "v", "x-added": "1", "Authorization": "secret"}, {"edited": True})
    headers, content = seen["provider"]
    assert content == {"edited": True, "second": True}
    assert {k: v for k, v in headers.items() if k != "traceparent"} == {
        "h": "v",
        "x-added": "1",
        "Authorization": "secret",
    }
    start, _ = llm_events(await delivered(events))
    assert start.data == {"headers": {"h": "v", "x-added": "1"}, "content": {"edited": True, "second": True}}


async def test_request_intercept_pending_marks_follow_the_start(events):
    def first(name, req, annotated):
        marks = [
            PendingMarkSpec("m1", data={"a": 1}),
            PendingMarkSpec(
                "m2",
                category="bogus",
                category_profile={"model_name": "x"},
                data_schema={"name": "s", "version": "1"},
                severity=LogSeverity.Info,
                metadata={"k": "v"},
            ),
        ]
        return LLMRequestInterceptOutcome(req, None, marks)

    intercepts.register_llm_request("a", 1, False, first)
    intercepts.register_llm_request(
        "b", 2, False, lambda n, r, a: LLMRequestInterceptOutcome(r, None, [PendingMarkSpec("m3")])
    )
    await llm.execute("chat", request(), lambda req: "ok")
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [
        ("chat", "start"),
        ("m1", "mark"),
        ("m2", "mark"),
        ("m3", "mark"),
        ("chat", "end"),
    ]
    start, m1, m2, m3, _ = evs
    for mark in (m1, m2, m3):
        assert mark.parent_uuid == start.uuid
        assert ts_ns(mark.timestamp) == ts_ns(start.timestamp) + 1000
    assert m1.data == {"a": 1} and m1.metadata is None and m1.category is None
    assert m2.category == "bogus"
    assert m2.category_profile == {"model_name": "x"}
    assert m2.data_schema == {"name": "s", "version": "1"}
    assert m2.metadata == {"k": "v", "nemo_relay.log.severity": "info"}
    assert len({m1.uuid, m2.uuid, m3.uuid}) == 3


async def test_break_chain_stops_later_request_intercepts_but_keeps_its_marks(events):
    called = []

    def breaker(name, req, annotated):
        called.append("breaker")
        return LLMRequestInterceptOutcome(LLMRequest(req.headers, "from breaker"), None, [PendingMarkSpec("kept")])

    def later(name, req, annotated):
        called.append("later")
        return LLMRequestInterceptOutcome(req, None, [PendingMarkSpec("never")])

    seen = []
    intercepts.register_llm_request("breaker", 1, True, breaker)
    intercepts.register_llm_request("later", 2, False, later)
    await llm.execute("chat", request(), lambda req: seen.append(req.content))
    assert called == ["breaker"]
    assert seen == ["from breaker"]
    assert [(e.name, phase(e)) for e in await delivered(events)] == [
        ("chat", "start"),
        ("kept", "mark"),
        ("chat", "end"),
    ]


async def test_async_request_intercept(events):
    async def edit(name, req, annotated):
        await asyncio.sleep(0)
        return LLMRequestInterceptOutcome(LLMRequest({"async": "y"}, req.content))

    intercepts.register_llm_request("async", 1, False, edit)
    headers = await _provider_headers()
    assert headers == {"async": "y"}


async def test_raising_request_intercept_fails_the_call(events):
    called = []

    def boom(name, req, annotated):
        raise RuntimeError("boom")

    intercepts.register_llm_request("boom", 1, False, boom)
    with pytest.raises(RuntimeError, match="callable failed") as info:
        await llm.execute("chat", request(), lambda req: called.append(1))
    assert str(info.value) == "internal error: LLM request intercept callable failed: RuntimeError: boom"
    assert called == []
    assert await delivered(events) == []


@pytest.mark.parametrize(
    ("returned", "rendered"),
    [
        (object(), "'object' object"),
        ((None, None, []), "'tuple' object"),
        ({"request": {}}, "'dict' object"),
        (None, "'None'"),  # the reference's wording for None
    ],
    ids=["object", "tuple", "dict", "none"],
)
async def test_request_intercept_must_return_an_outcome(events, returned, rendered):
    called = []
    intercepts.register_llm_request("bad", 1, False, lambda name, req, annotated: returned)
    with pytest.raises(RuntimeError, match="must return LLMRequestInterceptOutcome") as info:
        await llm.execute("chat", request(), lambda req: called.append(1))
    assert str(info.value) == (
        "internal error: LLM request intercept must return LLMRequestInterceptOutcome: "
        f"{rendered} is not an instance of 'LLMRequestInterceptOutcome'"
    )
    assert called == []
    assert await delivered(events) == []


async def test_request_tuple_from_intercept_is_rejected_even_with_a_request_inside(events):
    intercepts.register_llm_request("tuple", 1, False, lambda name, req, annotated: (req, None, []))
    with pytest.raises(RuntimeError, match="must return LLMRequestInterceptOutcome"):
        await llm.execute("chat", request(), _sync_provider)


async def test_failing_later_intercept_discards_earlier_marks(events):
    intercepts.register_llm_request(
        "a", 1, False, lambda n, r, a: LLMRequestInterceptOutcome(r, None, [PendingMarkSpec("dropped")])
    )
    intercepts.register_llm_request("b", 2, False, lambda n, r, a: object())
    with pytest.raises(RuntimeError, match="must return LLMRequestInterceptOutcome"):
        await llm.execute("chat", request(), _sync_provider)
    assert await delivered(events) == []


# --- execution intercepts -------------------------------------------------------------------------------------


async def test_execution_intercept_can_replace_the_result(events):
    called = []
    intercepts.register_llm_execution("replace", 1, lambda name, req, nxt: {"replaced": name})
    result = await llm.execute("chat", request(), lambda req: called.append(1))
    assert result == {"replaced": "chat"}
    assert called == []
    _, end = llm_events(await delivered(events))
    assert end.data == {"replaced": "chat"}
    assert end.metadata == {"otel.status_code": "OK"}


async def test_execution_intercepts_nest_lowest_priority_outermost(events):
    order = []
    seen = []

    def layer(tag):
        async def intercept(name, req, nxt):
            order.append(f"{tag}>")
            inner = await nxt(LLMRequest(req.headers, {**req.content, tag: True}))
            order.append(f"<{tag}")
            return {"by": tag, "inner": inner}

        return intercept

    def provider(req):
        seen.append((req.content, "traceparent" in req.headers))
        return "raw"

    intercepts.register_llm_execution("p10", 10, layer("p10"))
    intercepts.register_llm_execution("p1", 1, layer("p1"))
    result = await llm.execute("chat", request(content={}), provider)
    assert order == ["p1>", "p10>", "<p10", "<p1"]
    assert seen == [({"p1": True, "p10": True}, True)]
    assert result == {"by": "p1", "inner": {"by": "p10", "inner": "raw"}}
    _, end = llm_events(await delivered(events))
    assert end.data == result


async def test_execution_intercept_sees_the_provider_request_and_runs_as_the_call(events):
    seen = {}

    def intercept(name, req, nxt):
        seen["headers"] = req.headers
        seen["tp"] = nemo_relay.capture_traceparent()
        seen["parent"] = nemo_relay.capture_propagation_context().parent_uuid
        return "short"

    intercepts.register_llm_execution("spy", 1, intercept)
    await llm.execute("chat", request({"h": "v"}), _sync_provider)
    start, _ = llm_events(await delivered(events))
    expected = traceparent(start.uuid, start.uuid)
    assert seen == {"headers": {"h": "v", "traceparent": expected}, "tp": expected, "parent": start.uuid}


async def test_next_after_the_intercept_settled_fails(events):
    saved = {}
    called = []

    def intercept(name, req, nxt):
        saved["next"] = nxt
        saved["request"] = req
        return "done"

    intercepts.register_llm_execution("keep", 1, intercept)
    assert await llm.execute("chat", request(), lambda req: called.append(1)) == "done"
    with pytest.raises(RuntimeError, match=re.escape(INACTIVE)):
        await saved["next"](saved["request"])
    assert called == []


async def test_next_requires_an_llm_request(events):
    async def intercept(name, req, nxt):
        return await nxt({"not": "a request"})

    intercepts.register_llm_execution("bad", 1, intercept)
    with pytest.raises(RuntimeError, match="'dict' object is not an instance of 'LLMRequest'"):
        await llm.execute("chat", request(), _sync_provider)


async def test_raising_execution_intercept_records_an_error_end(events):
    def intercept(name, req, nxt):
        raise ValueError("ebad")

    intercepts.register_llm_execution("bad", 1, intercept)
    with pytest.raises(RuntimeError, match=r"^internal error: ValueError: ebad$"):
        await llm.execute("chat", request(), _sync_provider, data="fallback")
    _, end = llm_events(await delivered(events))
    assert end.data == "fallback"
    assert end.metadata == {
        "otel.status_code": "ERROR",
        "otel.status_description": "internal error: ValueError: ebad",
        "error.type": "internal_error",
        "exception.type": "ValueError",
    }


# --- standalone helpers ---------------------------------------------------------------------------------------


def _mark_intercept(name, req, annotated):
    headers = req.headers | {"x": "1", "traceparent": "mine"}
    spec = PendingMarkSpec("pm", data={"d": 1}, data_schema={"name": "n", "version": "2"}, severity=LogSeverity.Error)
    return LLMRequestInterceptOutcome(LLMRequest(headers, {"new": 1}), None, [spec])


def test_standalone_request_intercepts_return_the_outcome_without_emitting(events):
    intercepts.register_llm_request("ri", 1, False, _mark_intercept)
    outcome = llm.request_intercepts("nm", LLMRequest({"TRACEPARENT": "caller"}, {}))
    assert isinstance(outcome, LLMRequestInterceptOutcome)
    # at the bare root there is no emitted scope to continue from: no traceparent is injected
    assert outcome.request.headers == {"TRACEPARENT": "caller", "x": "1", "traceparent": "mine"}
    assert outcome.request.content == {"new": 1}
    assert outcome.annotated_request is None
    [mark] = outcome.pending_marks
    assert (mark.name, mark.data, mark.data_schema, mark.severity) == (
        "pm",
        {"d": 1},
        {"name": "n", "version": "2"},
        LogSeverity.Error,
    )
    assert events.flush() == []


def test_standalone_request_intercepts_inject_dynamo_headers_and_traceparent(events):
    intercepts.register_llm_request("ri", 1, False, _mark_intercept)
    with (
        scope.scope("ag", ScopeType.Agent, metadata={"codex_subagent_session_id": "CX"}) as agent,
        scope.scope("fn", ScopeType.Function) as fn,
    ):
        outcome = llm.request_intercepts("nm", LLMRequest({"TRACEPARENT": "caller"}, {}))
    assert outcome.request.headers == {
        "x": "1",
        "x-dynamo-session-id": "CX",
        "traceparent": traceparent(agent.uuid, fn.uuid),
    }
    assert [e.name for e in events.flush()] == ["ag", "fn", "fn", "ag"]


def test_standalone_request_intercepts_without_intercepts(events):
    with scope.scope("fn", ScopeType.Function) as fn:
        outcome = llm.request_intercepts("nm", LLMRequest({"x-dynamo-session-id": "keep"}, {"c": 1}))
    assert outcome.request.headers == {"x-dynamo-session-id": "keep", "traceparent": traceparent(fn.uuid, fn.uuid)}
    assert outcome.request.content == {"c": 1}
    assert outcome.pending_marks == []


async def test_standalone_request_intercepts_in_a_loop_return_an_awaitable(events):
    async def edit(name, req, annotated):
        await asyncio.sleep(0)
        return LLMRequestInterceptOutcome(LLMRequest({"async": "1"}, req.content), None, [PendingMarkSpec("p")])

    intercepts.register_llm_request("ri", 1, False, edit)
    pending = llm.request_intercepts("nm", request())
    assert not isinstance(pending, LLMRequestInterceptOutcome)
    outcome = await pending
    assert outcome.request.headers == {"async": "1"}
    assert [m.name for m in outcome.pending_marks] == ["p"]
    assert await delivered(events) == []


def test_standalone_request_intercepts_errors():
    async def edit(name, req, annotated):
        return LLMRequestInterceptOutcome(req)

    intercepts.register_llm_request("async", 1, False, edit)
    with pytest.raises(RuntimeError, match=re.escape(ASYNC_CALLER)):
        llm.request_intercepts("nm", request())
    intercepts.deregister_llm_request("async")

    def boom(name, req, annotated):
        raise ValueError("rb")

    intercepts.register_llm_request("boom", 1, False, boom)
    with pytest.raises(RuntimeError, match=r"^internal error: LLM request intercept callable failed: ValueError: rb$"):
        llm.request_intercepts("nm", request())


def test_standalone_conditional_execution_outside_a_loop(events):
    seen = []
    guardrails.register_llm_conditional_execution("allow", 1, lambda req: seen.append(req.content))
    assert llm.conditional_execution(request(content={"q": 1})) is None
    assert seen == [{"q": 1}]
    guardrails.register_llm_conditional_execution("deny", 2, lambda req: "nope")
    with (
        scope.scope("fn", ScopeType.Function) as fn,
        pytest.raises(RuntimeError, match=r"^guardrail rejected: nope$"),
    ):
        llm.conditional_execution(request())
    evs = [e for e in events.flush() if e.name != "fn"]
    assert [(e.name, phase(e)) for e in evs] == [
        ("allow", "start"),
        ("allow", "end"),
        ("allow", "start"),
        ("allow", "end"),
        ("deny", "start"),
        ("deny", "end"),
    ]  # no rejection mark
    assert all(e.parent_uuid == fn.uuid for e in evs[2:])
    assert all(e.metadata is None for e in evs)
    assert evs[0].data == {"kind": "llm_conditional_execution"}
    assert evs[5].data == {"allowed": False, "rejected": True, "rejection_reason": "nope"}


def test_standalone_conditional_execution_rejects_async_guardrails_outside_a_loop(events):
    async def guard(req):
        return None

    guardrails.register_llm_conditional_execution("async", 1, guard)
    with pytest.raises(RuntimeError, match=re.escape(ASYNC_CALLER)):
        llm.conditional_execution(request())
    evs = events.flush()
    assert evs[-1].data == {"allowed": False, "error": ASYNC_CALLER}


async def test_standalone_conditional_execution_in_a_loop(events):
    async def guard(req):
        await asyncio.sleep(0)
        return "async nope" if req.content == "bad" else None

    guardrails.register_llm_conditional_execution("async", 1, guard)
    pending = llm.conditional_execution(LLMRequest({}, "good"))
    assert pending is not None
    assert await pending is None
    with pytest.raises(RuntimeError, match=r"^guardrail rejected: async nope$"):
        await llm.conditional_execution(LLMRequest({}, "bad"))
    assert [(e.name, phase(e)) for e in await delivered(events)] == [("async", "start"), ("async", "end")] * 2


# --- LLM sanitizers ---------------------------------------------------------------------------------------------


def _one_arg(payload):
    return payload


def _three_args(payload, context, extra):
    return payload


def _keyword_only(payload, *, context):
    return payload


@pytest.mark.parametrize("callback", [_one_arg, _three_args, _keyword_only, lambda: None], ids=["1", "3", "kw", "0"])
@pytest.mark.parametrize(
    "register", [guardrails.register_llm_sanitize_request, guardrails.register_llm_sanitize_response]
)
def test_global_sanitizer_registration_checks_the_signature(register, callback):
    with pytest.raises(TypeError, match="payload, context") as info:
        register("s", 1, callback)
    assert str(info.value) == "LLM sanitizer callback must accept `(payload, context)`"


@pytest.mark.parametrize(
    "register", [guardrails.register_llm_sanitize_request, guardrails.register_llm_sanitize_response]
)
def test_sanitizer_registration_rejects_uninspectable_callbacks(register):
    with pytest.raises(TypeError, match="payload, context") as info:
        register("s", 1, object())
    assert str(info.value) == (
        "LLM sanitizer callback signature cannot be inspected; use a callable that accepts `(payload, context)`"
    )


@pytest.mark.parametrize(
    "callback",
    [lambda *a: None, lambda payload, context: None, lambda a, b=1, c=2: None, lambda a, *rest, **kw: None],
    ids=["varargs", "two", "defaults", "mixed-varargs"],
)
@pytest.mark.parametrize(
    ("register", "deregister"),
    [
        (guardrails.register_llm_sanitize_request, guardrails.deregister_llm_sanitize_request),
        (guardrails.register_llm_sanitize_response, guardrails.deregister_llm_sanitize_response),
    ],
    ids=["request", "response"],
)
def test_sanitizer_registration_accepts_compatible_signatures(register, deregister, callback):
    register("s", 1, callback)
    assert deregister("s") is True


@pytest.mark.parametrize(
    "register", [scope_local.register_llm_sanitize_request, scope_local.register_llm_sanitize_response]
)
def test_scope_local_sanitizer_registration_checks_the_signature(register):
    with scope.scope("owner", ScopeType.Agent) as owner:
        with pytest.raises(TypeError, match="payload, context"):
            register(owner, "s", 1, _one_arg)
        with pytest.raises(TypeError, match="cannot be inspected"):
            register(owner, "s", 1, object())
        register(owner, "ok", 1, lambda *a: None)


def test_sanitizer_contexts_without_a_codec(events):
    contexts = []

    def on_request(req, ctx):
        contexts.append(("request", type(ctx).__name__, ctx.codec.kind, ctx.codec.id, ctx.resolve_codec()))
        return req

    def on_response(resp, ctx):
        contexts.append(("response", type(ctx).__name__, ctx.codec.kind, ctx.codec.id, ctx.resolve_codec()))
        return resp

    guardrails.register_llm_sanitize_request("req", 1, on_request)
    guardrails.register_llm_sanitize_response("resp", 1, on_response)
    llm.call_end(llm.call("chat", request()), "r")
    events.flush()
    assert contexts == [
        ("request", "LlmSanitizeRequestContext", "none", None, None),
        ("response", "LlmSanitizeResponseContext", "none", None, None),
    ]


async def test_sanitizer_contexts_of_a_managed_call_without_a_codec(events):
    kinds = []
    guardrails.register_llm_sanitize_request("req", 1, lambda r, c: kinds.append((c.codec.kind, c.codec.id)) or r)
    guardrails.register_llm_sanitize_response("resp", 1, lambda r, c: kinds.append((c.codec.kind, c.codec.id)) or r)
    await llm.execute("chat", request(), _sync_provider)
    await delivered(events)
    assert kinds == [("none", None), ("none", None)]


def test_sanitizer_chain_threads_the_value_in_priority_order(events):
    seen = []

    def first(req, ctx):
        seen.append(("first", req.headers))
        return LLMRequest(req.headers | {"s1": "y"}, {"san": req.content})

    def second(req, ctx):
        seen.append(("second", req.headers, req.content))
        return req

    guardrails.register_llm_sanitize_request("second", 2, second)
    guardrails.register_llm_sanitize_request("first", 1, first)
    guardrails.register_llm_sanitize_response("r2", 2, lambda resp, ctx: {"r2": resp})
    guardrails.register_llm_sanitize_response("r1", 1, lambda resp, ctx: {"r1": resp})
    handle = llm.call("chat", LLMRequest({"authorization": "k", "a": "b"}, {"q": 1}))
    llm.call_end(handle, "raw")
    start, end = llm_events(events.flush())
    assert seen == [("first", {"a": "b"}), ("second", {"a": "b", "s1": "y"}, {"san": {"q": 1}})]
    assert start.data == {"headers": {"a": "b", "s1": "y"}, "content": {"san": {"q": 1}}}
    assert end.data == {"r2": {"r1": "raw"}}


def test_request_sanitizer_returning_none_omits_the_payload_and_stops_the_chain(events):
    later = []
    guardrails.register_llm_sanitize_request("omit", 1, lambda req, ctx: None)
    guardrails.register_llm_sanitize_request("later", 2, lambda req, ctx: later.append(1) or req)
    llm.call_end(llm.call("chat", request()), "r")
    start, end = llm_events(events.flush())
    assert start.data is None
    assert end.data == "r"
    assert later == []


def test_response_sanitizer_returning_none_omits_the_payload_and_stops_the_chain(events):
    later = []
    guardrails.register_llm_sanitize_response("omit", 1, lambda resp, ctx: None)
    guardrails.register_llm_sanitize_response("later", 2, lambda resp, ctx: later.append(1) or resp)
    llm.call_end(llm.call("chat", request()), "r")
    _, end = llm_events(events.flush())
    assert end.data is None
    assert later == []


def test_response_sanitizer_may_return_a_scalar(events):
    guardrails.register_llm_sanitize_response("scalar", 1, lambda resp, ctx: "sanitized:" + resp)
    llm.call_end(llm.call("chat", request()), "raw-response")
    _, end = llm_events(events.flush())
    assert end.data == "sanitized:raw-response"


def _raise(payload, context):
    raise ValueError("sanitizer boom")


@pytest.mark.parametrize("bad", [_raise, lambda payload, context: object()], ids=["raises", "returns-object"])
def test_failing_sanitizers_omit_the_payload_and_report(events, capfd, bad):
    later = []
    guardrails.register_llm_sanitize_request("bad", 1, bad)
    guardrails.register_llm_sanitize_request("later", 2, lambda r, c: later.append(1) or r)
    guardrails.register_llm_sanitize_response("bad", 1, bad)
    guardrails.register_llm_sanitize_response("later", 2, lambda r, c: later.append(1) or r)
    handle = llm.call("chat", request())
    llm.call_end(handle, {"r": 1})
    start, end = llm_events(events.flush())
    assert start.data is None
    assert end.data is None
    assert end.metadata == {"otel.status_code": "OK"}
    assert later == []
    err = capfd.readouterr().err
    assert "Python LLM sanitize request callable failed" in err
    assert "Python LLM sanitize response callable failed" in err


def test_request_sanitizer_must_return_a_request(events, capfd):
    guardrails.register_llm_sanitize_request("dict", 1, lambda req, ctx: {"headers": {}, "content": {}})
    llm.call_end(llm.call("chat", request()), "r")
    start, end = llm_events(events.flush())
    assert start.data is None
    assert end.data == "r"
    assert "Python LLM sanitize request callable failed" in capfd.readouterr().err


def test_failing_sanitizers_log_an_operational_error(events, capfd):
    guardrails.register_llm_sanitize_request("bad-req", 1, _raise)
    guardrails.register_llm_sanitize_response("bad-resp", 1, _raise)
    llm.call_end(llm.call("chat", request()), "r")
    events.flush()
    err = capfd.readouterr().err
    assert re.search(r"ERROR .*event=llm_request_sanitizer_failed sanitizer=bad-req ", err), err
    assert re.search(r"ERROR .*event=llm_response_sanitizer_failed sanitizer=bad-resp ", err), err


def test_sanitizers_receive_copies(events):
    def mutate_request(req, ctx):
        return LLMRequest(req.headers | {"mutated": "1"}, req.content)

    def mutate_response(resp, ctx):
        resp["mutated"] = True
        return resp

    guardrails.register_llm_sanitize_request("req", 1, mutate_request)
    guardrails.register_llm_sanitize_response("resp", 1, mutate_response)
    original = LLMRequest({"h": "v"}, {"q": 1})
    response = {"r": 1}
    llm.call_end(llm.call("chat", original), response)
    start, end = llm_events(events.flush())
    assert start.data["headers"] == {"h": "v", "mutated": "1"}
    assert end.data == {"r": 1, "mutated": True}
    assert response == {"r": 1}
    assert original.headers == {"h": "v"}


async def test_async_sanitizers_run_on_the_loop_with_the_callers_context(events):
    var: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")
    var.set("caller")
    loop = asyncio.get_running_loop()
    seen = []

    async def on_request(req, ctx):
        await asyncio.sleep(0)
        seen.append(("request", var.get(), asyncio.get_running_loop() is loop))
        return LLMRequest(req.headers, {"async": True})

    async def on_response(resp, ctx):
        await asyncio.sleep(0)
        seen.append(("response", var.get(), asyncio.get_running_loop() is loop))
        return {"async_resp": resp}

    guardrails.register_llm_sanitize_request("async", 1, on_request)
    guardrails.register_llm_sanitize_response("async", 1, on_response)
    assert await llm.execute("chat", request(), lambda req: "raw") == "raw"
    start, end = llm_events(await delivered(events))
    assert seen == [("request", "caller", True), ("response", "caller", True)]
    assert start.data == {"headers": {}, "content": {"async": True}}
    assert end.data == {"async_resp": "raw"}


@pytest.mark.timeout(30)
async def test_blocking_start_sanitizer_does_not_hold_up_the_provider(events):
    provider_ran = threading.Event()
    observed = {}

    def blocking(req, ctx):
        observed["provider_ran_meanwhile"] = provider_ran.wait(10)
        return req

    def provider(req):
        provider_ran.set()
        return "raw"

    guardrails.register_llm_sanitize_request("block", 1, blocking)
    guardrails.register_llm_sanitize_response("wrap", 1, lambda resp, ctx: {"sanitized": resp})
    assert await llm.execute("chat", request(), provider) == "raw"
    start, end = llm_events(await delivered(events))
    assert observed == {"provider_ran_meanwhile": True}
    assert start.data == {"headers": {}, "content": {"messages": []}}
    assert end.data == {"sanitized": "raw"}


def test_scope_local_sanitizers_apply_inside_the_owner_only(events):
    with scope.scope("owner", ScopeType.Agent) as owner:
        scope_local.register_llm_sanitize_request(owner, "local", 1, lambda req, ctx: None)
        scope_local.register_llm_sanitize_response(owner, "local", 1, lambda resp, ctx: "local")
        llm.call_end(llm.call("chat", request()), "r")
    llm.call_end(llm.call("chat", request()), "r")
    first_start, first_end, second_start, second_end = llm_events(events.flush())
    assert (first_start.data, first_end.data) == (None, "local")
    assert second_start.data == {"headers": {}, "content": {"messages": []}}
    assert second_end.data == "r"
