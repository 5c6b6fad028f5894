"""Codecs inside the managed LLM pipeline: intercepts edit the annotation, events carry annotated views,
wrong codec return types and failures give the reference's errors, history projection, streams.

Expected texts were confirmed against the reference wheel (nemo-relay 0.8.4).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import nemo_relay
from nemo_relay import (
    AnnotatedLLMRequest,
    AnnotatedLLMResponse,
    LLMRequest,
    LLMRequestInterceptOutcome,
    ScopeType,
    codecs,
    guardrails,
    intercepts,
    llm,
    scope,
    subscribers,
)
from nemo_relay.codecs import AnthropicMessagesCodec, LlmCodec, LlmResponseCodec, OpenAIChatCodec

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}
CHAT_RESPONSE = {
    "id": "chatcmpl-1",
    "model": "gpt-test",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


def llm_events(events: list[Any], phase: str) -> list[Any]:
    return [e for e in events if getattr(e, "category", None) == "llm" and e.scope_category == phase]


class ListCodec:
    """A user codec: the annotation's messages are the request's messages; ``extra`` carries a marker."""

    def __init__(self) -> None:
        self.encoded = 0

    def decode(self, request: LLMRequest) -> AnnotatedLLMRequest:
        content = request.content
        return AnnotatedLLMRequest(content["messages"], model=content.get("model"), extra={"custom": "yes"})

    def encode(self, annotated: AnnotatedLLMRequest, original: LLMRequest) -> LLMRequest:
        self.encoded += 1
        content = dict(original.content)
        content["messages"] = annotated.messages
        return LLMRequest(original.headers, content)


# --- protocols and exports ------------------------------------------------------------------------------------


def test_protocols_recognise_codecs_by_their_methods():
    assert not isinstance(object(), LlmCodec)
    assert isinstance(ListCodec(), LlmCodec)
    for codec in (
        codecs.OpenAIChatCodec(),
        codecs.OpenAIResponsesCodec(),
        codecs.AnthropicMessagesCodec(),
        codecs.OCIGenAIChatCodec(),
        codecs.GeminiGenerateContentCodec(),
    ):
        assert isinstance(codec, LlmCodec) and isinstance(codec, LlmResponseCodec)


def test_annotated_types_are_shared_with_the_native_module():
    assert nemo_relay.AnnotatedLLMRequest is nemo_relay._native.AnnotatedLLMRequest
    assert codecs.AnnotatedLLMRequest is nemo_relay.AnnotatedLLMRequest
    assert not hasattr(nemo_relay, "OpenAIChatCodec")
    assert not hasattr(codecs, "BUILTIN_CODECS")


# --- request intercepts with a codec --------------------------------------------------------------------------


async def test_intercepts_edit_the_annotation_and_the_provider_sees_the_encoded_request(events):
    seen: list[tuple[str, dict[str, Any]]] = []

    def add_message(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest | None) -> Any:
        assert annotated is not None
        seen.append((type(annotated).__name__, annotated.extra))
        annotated.messages = [*annotated.messages, {"role": "user", "content": "added"}]
        return LLMRequestInterceptOutcome(request, annotated)

    intercepts.register_llm_request("add", 1, False, add_message)
    received: list[Any] = []
    codec = ListCodec()
    request = LLMRequest({}, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    await llm.execute("chat", request, lambda r: received.append(r.content) or {"ok": True}, codec=codec)
    assert seen == [("AnnotatedLLMRequest", {"custom": "yes"})]
    assert received[0]["messages"] == [{"role": "user", "content": "hi"}, {"role": "user", "content": "added"}]
    assert codec.encoded == 1
    await subscribers.flush_async(timeout=10)
    (start,) = llm_events(events, "start")
    assert isinstance(start.annotated_request, AnnotatedLLMRequest)
    assert start.annotated_request.extra == {"custom": "yes"}


async def test_builtin_codec_edits_reach_the_provider_and_unknown_fields_survive(events):
    def rewrite(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest | None) -> Any:
        assert annotated is not None
        annotated.messages = [{"role": "system", "content": "be brief"}, *annotated.messages]
        return LLMRequestInterceptOutcome(request, annotated)

    intercepts.register_llm_request("rewrite", 1, False, rewrite)
    received: list[Any] = []
    content = {**CHAT, "vendor_flag": {"keep": None}}
    await llm.execute(
        "chat", LLMRequest({}, content), lambda r: received.append(r.content) or CHAT_RESPONSE, codec=OpenAIChatCodec()
    )
    assert received[0]["messages"][0] == {"role": "system", "content": "be brief"}
    assert received[0]["vendor_flag"] == {"keep": None}
    assert received[0]["temperature"] == 0.2


async def test_changing_request_content_while_a_codec_is_active_is_rejected_before_the_provider(events):
    def edit_raw(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest | None) -> Any:
        return LLMRequestInterceptOutcome(LLMRequest(request.headers, {**request.content, "model": "other"}), annotated)

    intercepts.register_llm_request("raw", 1, False, edit_raw)
    called: list[Any] = []
    with pytest.raises(RuntimeError, match=r"request\.content") as info:
        await llm.execute("chat", LLMRequest({}, CHAT), lambda r: called.append(r) or {}, codec=OpenAIChatCodec())
    assert str(info.value) == (
        "invalid argument: LLM request intercept 'raw' changed request.content while a request codec is active; "
        "modify annotated_request instead"
    )
    assert called == []


async def test_omitting_the_annotation_while_a_codec_is_active_is_rejected_before_the_provider(events):
    intercepts.register_llm_request(
        "drop", 1, False, lambda name, request, annotated: LLMRequestInterceptOutcome(request)
    )
    called: list[Any] = []
    with pytest.raises(RuntimeError, match="omitted annotated_request"):
        await llm.execute("chat", LLMRequest({}, CHAT), lambda r: called.append(r) or {}, codec=OpenAIChatCodec())
    assert called == []


async def test_header_edits_by_intercepts_win_over_the_encoded_request(events):
    def add_header(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest | None) -> Any:
        return LLMRequestInterceptOutcome(LLMRequest({**request.headers, "x-team": "blue"}, request.content), annotated)

    intercepts.register_llm_request("hdr", 1, False, add_header)
    received: list[LLMRequest] = []
    await llm.execute(
        "chat", LLMRequest({"x-a": "1"}, CHAT), lambda r: received.append(r) or {}, codec=OpenAIChatCodec()
    )
    assert received[0].headers["x-team"] == "blue" and received[0].headers["x-a"] == "1"
    assert received[0].content == CHAT


# --- codec failures ----------------------------------------------------------------------------------------


class WrongDecode:
    def decode(self, request: LLMRequest) -> Any:
        return {"x": 1}

    def encode(self, annotated: Any, original: LLMRequest) -> LLMRequest:
        return original


class WrongEncode(WrongDecode):
    def decode(self, request: LLMRequest) -> Any:
        return AnnotatedLLMRequest([{"role": "user", "content": "hi"}])

    def encode(self, annotated: Any, original: LLMRequest) -> Any:
        return "nope"


class RaisingDecode(WrongDecode):
    def decode(self, request: LLMRequest) -> Any:
        raise KeyError("k")


@pytest.mark.parametrize(
    ("codec", "message"),
    [
        (
            WrongDecode(),
            "internal error: Codec decode() returned unexpected type (expected AnnotatedLLMRequest): "
            "'dict' object is not an instance of 'AnnotatedLLMRequest'",
        ),
        (
            WrongEncode(),
            "internal error: Codec encode() returned unexpected type (expected LlmRequest): "
            "'str' object is not an instance of 'LLMRequest'",
        ),
        (RaisingDecode(), "internal error: Codec decode() failed: KeyError: 'k'"),
    ],
)
async def test_codec_wrong_return_types_and_failures_fail_the_call(events, codec, message):
    called: list[Any] = []
    with pytest.raises(RuntimeError) as info:
        await llm.execute("chat", LLMRequest({}, CHAT), lambda r: called.append(r) or {}, codec=codec)
    assert str(info.value) == message
    assert called == []


async def test_builtin_decode_errors_propagate():
    with pytest.raises(RuntimeError, match="OpenAI Responses request is missing input"):
        await llm.execute("chat", LLMRequest({}, {"model": "m"}), lambda r: {}, codec=codecs.OpenAIResponsesCodec())


async def test_a_response_codec_returning_the_wrong_type_is_logged_and_the_call_succeeds(events, capfd):
    class WrongResponse:
        def decode_response(self, response: Any) -> Any:
            return 5

    result = await llm.execute("chat", LLMRequest({}, CHAT), lambda r: {"ok": 1}, response_codec=WrongResponse())
    assert result == {"ok": 1}
    await subscribers.flush_async(timeout=10)
    (end,) = llm_events(events, "end")
    assert end.data == {"ok": 1} and end.annotated_response is None
    err = capfd.readouterr().err
    assert "managed_llm_response_codec_failed" in err
    assert "(expected AnnotatedLLMResponse): 'int' object is not an instance of 'AnnotatedLLMResponse'" in err


async def test_a_malformed_provider_response_never_breaks_the_call(events, capfd):
    malformed = {"id": "r", "choices": 5}
    result = await llm.execute("chat", LLMRequest({}, CHAT), lambda r: malformed, response_codec=OpenAIChatCodec())
    assert result == malformed
    await subscribers.flush_async(timeout=10)
    (end,) = llm_events(events, "end")
    assert end.data == malformed and end.annotated_response is None
    assert end.metadata == {"otel.status_code": "OK"}
    err = capfd.readouterr().err
    assert "managed_llm_response_codec_failed" in err and "OpenAI Chat response decode" in err


def test_manual_call_end_logs_response_codec_failures(events, capfd):
    handle = llm.call("chat", LLMRequest({}, CHAT))
    llm.call_end(handle, "not an object", response_codec=OpenAIChatCodec())
    events.flush()
    (end,) = llm_events(events, "end")
    assert end.data == "not an object" and end.annotated_response is None
    assert "manual_llm_response_codec_failed" in capfd.readouterr().err


def test_manual_call_end_takes_an_annotated_response_object_or_dict(events):
    first = llm.call("chat", LLMRequest({}, CHAT))
    llm.call_end(first, {"raw": 1}, annotated_response=AnnotatedLLMResponse(id="r1", finish_reason="complete"))
    second = llm.call("chat", LLMRequest({}, CHAT))
    llm.call_end(second, {"raw": 1}, annotated_response={"id": "r2", "bogus": 5})
    third = llm.call("chat", LLMRequest({}, CHAT))
    llm.call_end(third, CHAT_RESPONSE, response_codec=OpenAIChatCodec())
    events.flush()
    first_end, second_end, third_end = llm_events(events, "end")
    assert first_end.annotated_response.id == "r1"
    assert first_end.annotated_response.finish_reason == "complete"
    assert second_end.category_profile["annotated_response"] == {"id": "r2", "bogus": 5}
    assert third_end.annotated_response.response_text() == "hello"
    assert third_end.annotated_response.usage["total_tokens"] == 7


def test_manual_call_end_rejects_a_bad_annotated_response_dict(events):
    handle = llm.call("chat", LLMRequest({}, CHAT))
    with pytest.raises(ValueError, match=r"^invalid annotated_response: "):
        llm.call_end(handle, {}, annotated_response={"finish_reason": 5})
    with pytest.raises(ValueError, match=r"^invalid annotated_response: invalid type: sequence, expected struct"):
        llm.call_end(handle, {}, annotated_response=[1])
    with pytest.raises(ValueError, match=r"^Failed to convert to JSON: unexpected type: 'int' object"):
        llm.call_end(handle, {}, annotated_response={1: "x"})


# --- events and sanitizers with a codec ----------------------------------------------------------------------


async def test_events_carry_the_annotated_request_and_response(events):
    await llm.execute(
        "chat", LLMRequest({}, CHAT), lambda r: CHAT_RESPONSE, codec=OpenAIChatCodec(), response_codec=OpenAIChatCodec()
    )
    await subscribers.flush_async(timeout=10)
    (start,), (end,) = llm_events(events, "start"), llm_events(events, "end")
    assert start.annotated_request.messages == [{"role": "user", "content": "hi"}]
    assert start.category_profile["annotated_request"]["api_specific"] == {"api": "openai_chat"}
    assert end.annotated_response.finish_reason == "complete"
    assert end.annotated_response.usage["prompt_tokens"] == 5
    assert start.to_dict()["category_profile"]["annotated_request"]["model"] == "gpt-test"


async def test_sanitizer_contexts_name_the_builtin_codec_and_resolve_it(events):
    seen: list[Any] = []

    def on_request(request: LLMRequest, context: Any) -> LLMRequest:
        codec = context.resolve_codec()
        seen.append((context.codec.kind, context.codec.id))
        seen.append(codec.encode(codec.decode(request), request).content == request.content)
        return request

    def on_response(response: Any, context: Any) -> Any:
        seen.append((context.codec.kind, context.codec.id))
        seen.append(context.resolve_codec().decode_response(response).id)
        return response

    guardrails.register_llm_sanitize_request("req", 1, on_request)
    guardrails.register_llm_sanitize_response("resp", 1, on_response)
    await llm.execute(
        "chat", LLMRequest({}, CHAT), lambda r: CHAT_RESPONSE, codec=OpenAIChatCodec(), response_codec=OpenAIChatCodec()
    )
    await subscribers.flush_async(timeout=10)
    assert seen == [("builtin", "openai_chat"), True, ("builtin", "openai_chat"), "chatcmpl-1"]


async def test_a_request_sanitizer_rewrite_is_re_decoded_for_the_annotation(events):
    def redact(request: LLMRequest, context: Any) -> LLMRequest:
        content = request.content
        content["messages"] = [{"role": "user", "content": "[redacted]"}]
        return LLMRequest(request.headers, content)

    guardrails.register_llm_sanitize_request("redact", 1, redact)
    received: list[Any] = []
    await llm.execute("chat", LLMRequest({}, CHAT), lambda r: received.append(r.content) or {}, codec=OpenAIChatCodec())
    await subscribers.flush_async(timeout=10)
    (start,) = llm_events(events, "start")
    assert start.data["content"]["messages"] == [{"role": "user", "content": "[redacted]"}]
    assert start.annotated_request.messages == [{"role": "user", "content": "[redacted]"}]
    assert received[0] == CHAT  # the provider request is never the sanitized one


async def test_a_request_sanitizer_returning_none_drops_data_and_annotation(events):
    guardrails.register_llm_sanitize_request("drop", 1, lambda request, context: None)
    await llm.execute("chat", LLMRequest({}, CHAT), lambda r: {}, codec=OpenAIChatCodec())
    await subscribers.flush_async(timeout=10)
    (start,) = llm_events(events, "start")
    assert start.data is None and start.annotated_request is None


# --- provider-native components -----------------------------------------------------------------------------


async def test_cross_provider_native_components_fail_before_the_provider_call(events):
    anthropic = AnthropicMessagesCodec()
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    original = LLMRequest(
        {},
        {
            "model": "claude",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [thinking]}],
        },
    )
    native = anthropic.decode(original).messages[1]["content"][0]
    assert native == {
        "type": "provider_native",
        "provider": "anthropic_messages",
        "kind": "thinking",
        "value": thinking,
    }

    def inject(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest | None) -> Any:
        assert annotated is not None
        annotated.messages = [*annotated.messages, {"role": "assistant", "content": [native]}]
        return LLMRequestInterceptOutcome(request, annotated)

    intercepts.register_llm_request("inject", 1, False, inject)
    called: list[Any] = []
    with pytest.raises(RuntimeError, match="cannot be encoded for OpenAI Chat"):
        await llm.execute("chat", LLMRequest({}, CHAT), lambda r: called.append(r) or {}, codec=OpenAIChatCodec())
    assert called == []
    # The provider that produced the component encodes it back verbatim.
    received: list[Any] = []
    await llm.execute("chat", original, lambda r: received.append(r.content) or {}, codec=anthropic)
    assert received[0]["messages"][-1] == {"role": "assistant", "content": [thinking]}


# --- history projection -----------------------------------------------------------------------------------


async def test_history_is_projected_after_the_agents_first_call_until_compaction(events):
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    request = LLMRequest({}, {"model": "m", "messages": messages})
    received: list[Any] = []
    with scope.scope("agent", ScopeType.Agent):
        for name in ("first", "second"):
            await llm.execute(name, request, lambda r: received.append(r.content) or {}, codec=OpenAIChatCodec())
        scope.event("compaction")
        await llm.execute("third", request, lambda r: received.append(r.content) or {}, codec=OpenAIChatCodec())
    await subscribers.flush_async(timeout=10)
    recorded = {e.name: [m["content"] for m in e.data["content"]["messages"]] for e in llm_events(events, "start")}
    annotated = {e.name: [m["content"] for m in e.annotated_request.messages] for e in llm_events(events, "start")}
    assert recorded == {"first": ["sys", "u1", "a1", "u2"], "second": ["sys", "u2"], "third": ["sys", "u1", "a1", "u2"]}
    assert annotated == recorded
    assert all(content["messages"] == messages for content in received)  # the provider always gets everything


async def test_a_nested_agent_starts_fresh(events):
    request = LLMRequest(
        {}, {"model": "m", "messages": [{"role": "user", "content": "u1"}, {"role": "user", "content": "u2"}]}
    )
    with scope.scope("outer", ScopeType.Agent):
        await llm.execute("outer-1", request, lambda r: {}, codec=OpenAIChatCodec())
        with scope.scope("inner", ScopeType.Agent):
            await llm.execute("inner-1", request, lambda r: {}, codec=OpenAIChatCodec())
        await llm.execute("outer-2", request, lambda r: {}, codec=OpenAIChatCodec())
    await subscribers.flush_async(timeout=10)
    counts = {e.name: len(e.data["content"]["messages"]) for e in llm_events(events, "start")}
    assert counts == {"outer-1": 2, "inner-1": 2, "outer-2": 1}


# --- streams --------------------------------------------------------------------------------------------------


def _stream_pieces(final: Any) -> tuple[Any, Any, Any]:
    async def produce(request: LLMRequest) -> AsyncIterator[Any]:
        for index in range(3):
            yield {"choices": [{"index": 0, "delta": {"content": str(index)}}]}
            await asyncio.sleep(0)

    return produce, (lambda chunk: None), (lambda: final)


async def test_a_stream_closed_early_is_ok_when_the_response_says_it_finished(events):
    produce, collect, finalize = _stream_pieces(CHAT_RESPONSE)
    stream = await llm.stream_execute(
        "chat", LLMRequest({}, CHAT), produce, collect, finalize, response_codec=OpenAIChatCodec()
    )
    await stream.__anext__()
    await stream.aclose()
    await subscribers.flush_async(timeout=10)
    (end,) = llm_events(events, "end")
    assert end.metadata["otel.status_code"] == "OK"
    assert end.annotated_response.finish_reason == "complete"


async def test_a_stream_closed_early_without_a_finish_reason_is_dropped(events):
    produce, collect, finalize = _stream_pieces({"id": "partial", "choices": []})
    stream = await llm.stream_execute(
        "chat", LLMRequest({}, CHAT), produce, collect, finalize, response_codec=OpenAIChatCodec()
    )
    await stream.__anext__()
    await stream.aclose()
    await subscribers.flush_async(timeout=10)
    (end,) = llm_events(events, "end")
    assert end.metadata == {
        "otel.status_code": "ERROR",
        "otel.status_description": "stream dropped before clean completion",
    }


async def test_a_codec_stream_aggregator_serves_as_collector_and_finalizer(events):
    chunks = [
        {"id": "c1", "model": "gpt-test", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hel"}}]},
        {
            "id": "c1",
            "model": "gpt-test",
            "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}],
        },
        {
            "id": "c1",
            "model": "gpt-test",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        },
    ]

    async def produce(request: LLMRequest) -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    codec = OpenAIChatCodec()
    aggregator = codec.stream_aggregator()
    stream = await llm.stream_execute(
        "chat", LLMRequest({}, CHAT), produce, aggregator.add, aggregator.result, response_codec=codec
    )
    assert [chunk async for chunk in stream] == chunks
    await subscribers.flush_async(timeout=10)
    (end,) = llm_events(events, "end")
    assert end.metadata == {"otel.status_code": "OK"}
    assert end.annotated_response.response_text() == "hello"
    assert end.annotated_response.finish_reason == "complete"
    assert end.annotated_response.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


async def test_the_recorded_annotation_is_a_snapshot_taken_at_the_call(events):
    kept: list[AnnotatedLLMRequest] = []

    def keep(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest | None) -> Any:
        assert annotated is not None
        kept.append(annotated)
        return LLMRequestInterceptOutcome(request, annotated)

    intercepts.register_llm_request("keep", 1, False, keep)
    await llm.execute("chat", LLMRequest({}, CHAT), lambda r: {}, codec=OpenAIChatCodec())
    kept[0].messages = [{"role": "user", "content": "changed after the call"}]
    kept[0].model = "other"
    await subscribers.flush_async(timeout=10)
    (start,) = llm_events(events, "start")
    assert start.annotated_request.messages == [{"role": "user", "content": "hi"}]
    assert start.annotated_request.model == "gpt-test"


def test_annotated_requests_copy_into_independent_views():
    import copy

    original = OpenAIChatCodec().decode(LLMRequest({}, CHAT))
    for clone in (copy.copy(original), copy.deepcopy(original)):
        clone.messages = [{"role": "user", "content": "other"}]
        assert original.messages == [{"role": "user", "content": "hi"}]
        assert clone.messages == [{"role": "user", "content": "other"}]


def test_an_unedited_decode_encodes_back_to_the_same_body_and_an_edit_does_not():
    codec = OpenAIChatCodec()
    request = LLMRequest({"x-a": "1"}, CHAT)
    annotated = codec.decode(request)
    assert codec.encode(annotated, request).content == CHAT
    annotated.model = "gpt-other"  # any assignment, even to an equal value, takes the patch path
    assert codec.encode(annotated, request).content == {**CHAT, "model": "gpt-other"}
    assert AnthropicMessagesCodec().encode(
        AnthropicMessagesCodec().decode(LLMRequest({}, {"model": "c", "max_tokens": 5, "messages": []})),
        LLMRequest({}, {"model": "c", "max_tokens": 5, "messages": []}),
    ).content == {"model": "c", "max_tokens": 5, "messages": []}
