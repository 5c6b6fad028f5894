"""AnthropicMessagesCodec: decode, patch-encode, response decoding and stream aggregation.

Expected values (annotations, encoded payloads, error texts) were recorded from the reference
implementation (nemo-relay 0.8.4); the fixtures under ``fixtures/anthropic`` carry them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from codec_helpers import Fixtures, check_recorded_edit, decode, encode_edit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roundtrip_check import encode_unedited

from nemo_relay import AnnotatedLLMRequest, LLMRequest
from nemo_relay.codecs import AnthropicMessagesCodec, LlmCodec, LlmResponseCodec

FIXTURES = Fixtures("anthropic")
CODEC = AnthropicMessagesCodec()
_load, _names = FIXTURES.load, FIXTURES.names
_decode = functools.partial(decode, CODEC)
_encode_edit = functools.partial(encode_edit, CODEC)


BASE: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


# --- identity ------------------------------------------------------------------------------------------------


def test_codec_identity_and_protocols() -> None:
    assert isinstance(CODEC, LlmCodec)
    assert isinstance(CODEC, LlmResponseCodec)
    assert CODEC._relay_builtin_id == "anthropic_messages"
    assert CODEC.provider == "anthropic_messages"
    assert repr(CODEC) == "AnthropicMessagesCodec()"


# --- request fixtures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("request_"))
def test_fixture_decodes_to_reference_annotation(name: str) -> None:
    fixture = _load(name)
    assert _decode(fixture["request"])._to_json() == fixture["annotation"]


@pytest.mark.parametrize("name", _names("request_"))
def test_fixture_round_trip_is_identity(name: str) -> None:
    fixture = _load(name)
    original = LLMRequest({"x-trace": "1"}, fixture["request"])
    encoded = encode_unedited(CODEC, original)
    assert encoded.content == fixture["request"]
    # Untouched bodies keep their key order too, and headers survive.
    assert json.dumps(encoded.content) == json.dumps(fixture["request"])
    assert encoded.headers == {"x-trace": "1"}


@pytest.mark.parametrize(("name", "edit"), FIXTURES.edit_cases())
def test_fixture_edit_produces_reference_payload(name: str, edit: dict[str, Any]) -> None:
    check_recorded_edit(CODEC, _load(name)["request"], edit)


def test_edit_keeps_untouched_fields_and_order() -> None:
    body = {
        "vendor_first": {"a": [1, None]},
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "temperature": 1,
        "nothing": None,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": "hello"},
        ],
    }
    out = _encode_edit(body, model="claude-opus-4-1")
    assert list(out) == list(body)
    assert out == {**body, "model": "claude-opus-4-1"}
    assert type(out["temperature"]) is int  # an untouched integer stays an integer


def test_message_edit_rewrites_only_that_message() -> None:
    body = {**BASE, "messages": [*BASE["messages"], {"role": "assistant", "content": "hello"}]}
    annotated = _decode(body)
    annotated.messages = [annotated.messages[0], {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]}]
    out = CODEC.encode(annotated, LLMRequest({}, body)).content
    assert out["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
    ]


def test_assistant_tool_calls_and_name_do_not_reach_anthropic() -> None:
    # The reference drops OpenAI-style tool_calls and names: Anthropic carries calls as tool_use blocks.
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    out = _encode_edit(
        BASE, messages=[{"role": "user", "content": "hi", "name": "bob"}, {"role": "assistant", "tool_calls": [call]}]
    )
    assert out["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": []}]


def test_parallel_flag_patches_only_the_original_directive() -> None:
    body = {**BASE, "tool_choice": {"type": "tool", "name": "f", "vendor": 1}}
    assert _encode_edit(body, parallel_tool_calls=False)["tool_choice"] == {
        "type": "tool",
        "name": "f",
        "vendor": 1,
        "disable_parallel_tool_use": True,
    }
    assert _encode_edit(BASE, parallel_tool_calls=True)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": False,
    }
    assert _encode_edit(body, tool_choice="auto")["tool_choice"] == {"type": "auto"}


def test_extra_edits_write_and_remove_top_level_keys() -> None:
    body = {**BASE, "vendor": 1, "nothing": None}
    annotated = _decode(body)
    assert annotated.extra == {"vendor": 1, "nothing": None}
    annotated.extra = {"nothing": None, "added": [1]}
    assert CODEC.encode(annotated, LLMRequest({}, body)).content == {**BASE, "nothing": None, "added": [1]}


def test_user_profile_id_is_an_api_specific_body_field() -> None:
    body = {**BASE, "anthropic-user-profile-id": "prof-1"}
    assert _decode(body).api_specific == {"api": "anthropic_messages", "user_profile_id": "prof-1"}
    out = _encode_edit(BASE, api_specific={"api": "anthropic_messages", "user_profile_id": "p2", "top_k": 3})
    assert out == {**BASE, "anthropic-user-profile-id": "p2", "top_k": 3}


def test_foreign_provider_native_message_errors_before_the_provider_call() -> None:
    import asyncio

    from nemo_relay import intercepts, llm
    from nemo_relay._core.values import LLMRequestInterceptOutcome

    called: list[Any] = []

    async def provider(request: LLMRequest) -> Any:
        called.append(request)
        return {}

    def intercept(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest) -> LLMRequestInterceptOutcome:
        native = {"role": "provider_native", "provider": "gemini", "kind": "user", "value": {}}
        annotated.messages = [*annotated.messages, native]
        return LLMRequestInterceptOutcome(request, annotated)

    intercepts.register_llm_request("inject-native", 1, False, intercept)

    async def run() -> None:
        await llm.execute("claude", LLMRequest({}, BASE), provider, codec=CODEC, response_codec=CODEC)

    with pytest.raises(RuntimeError, match=r"ProviderNative \{ provider: \"gemini\".*cannot be encoded for Anthropic"):
        asyncio.run(run())
    assert called == []


def test_own_provider_native_components_encode_their_value() -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    out = _encode_edit(
        BASE,
        messages=[
            {
                "role": "provider_native",
                "provider": "anthropic_messages",
                "kind": "user",
                "value": {"role": "user", "content": "x"},
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "provider_native", "provider": "anthropic_messages", "kind": "thinking", "value": thinking}
                ],
            },
        ],
        tool_choice={"provider": "anthropic_messages", "kind": "auto", "value": {"type": "auto"}},
    )
    assert out["messages"] == [{"role": "user", "content": "x"}, {"role": "assistant", "content": [thinking]}]
    assert out["tool_choice"] == {"type": "auto"}


# --- malformed requests --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"model": "m"}, "Anthropic Messages request is missing messages"),
        ({"messages": None}, "Anthropic Messages messages must be an array"),
        ({"messages": ["hi"]}, "Anthropic Messages message must be an object"),
        ({"messages": [{"content": "x"}]}, "Anthropic Messages message is missing role"),
        ({"messages": [{"role": "user"}]}, "Anthropic Messages message is missing content"),
        ({"messages": [{"role": "user", "content": 5}]}, "Anthropic Messages content must be a string or an array"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "Anthropic Messages content block must be an object"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "Anthropic text block is missing text"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]},
            "Anthropic tool_use block is missing id",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "input": {}}]}]},
            "Anthropic tool_use block is missing name",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f"}]}]},
            "Anthropic tool_use block is missing input",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            "Anthropic tool_result block is missing tool_use_id",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]},
            "Anthropic tool_result block is missing content",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": "no"}],
                    }
                ]
            },
            "Anthropic tool_result is_error must be a boolean",
        ),
        ({**BASE, "system": None}, "Anthropic Messages content must be a string or an array"),
        ({**BASE, "model": 5}, "Anthropic Messages model must be a string or null"),
        ({**BASE, "max_tokens": "10"}, "Anthropic Messages max_tokens must be a non-negative integer or null"),
        ({**BASE, "temperature": "hot"}, "Anthropic Messages temperature must be a number or null"),
        ({**BASE, "top_p": True}, "Anthropic Messages top_p must be a number or null"),
        ({**BASE, "top_k": -1}, "Anthropic Messages top_k must be a non-negative integer or null"),
        ({**BASE, "stream": 1}, "Anthropic Messages stream must be a boolean or null"),
        ({**BASE, "metadata": "x"}, "Anthropic Messages metadata must be an object or null"),
        ({**BASE, "thinking": "x"}, "Anthropic Messages thinking must be an object or null"),
        ({**BASE, "service_tier": 5}, "Anthropic Messages service_tier must be a string or null"),
        ({**BASE, "container": {"id": "c"}}, "Anthropic Messages container must be a string or null"),
        (
            {**BASE, "anthropic-user-profile-id": 5},
            "Anthropic Messages anthropic-user-profile-id must be a string or null",
        ),
        (
            {**BASE, "stop_sequences": "X"},
            'invalid Anthropic stop_sequences value: invalid type: string "X", expected a sequence',
        ),
        (
            {**BASE, "stop_sequences": [1]},
            "invalid Anthropic stop_sequences value: invalid type: integer `1`, expected a string",
        ),
        ({**BASE, "tools": None}, "Anthropic Messages tools must be an array"),
        ({**BASE, "tools": ["x"]}, "Anthropic Messages tool must be an object"),
        ({**BASE, "tools": [{"name": 5, "input_schema": {}}]}, "Anthropic Messages tool name must be a string or null"),
        (
            {**BASE, "tools": [{"name": "f", "input_schema": {}, "strict": "x"}]},
            "Anthropic Messages tool strict must be a boolean or null",
        ),
        (
            {**BASE, "tool_choice": {"type": "auto", "disable_parallel_tool_use": "x"}},
            "Anthropic Messages tool_choice disable_parallel_tool_use must be a boolean or null",
        ),
    ],
)
def test_malformed_requests_name_the_field(content: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        _decode(content)
    assert str(info.value) == f"invalid argument: {message}"


def test_non_object_request_content_is_refused() -> None:
    with pytest.raises(RuntimeError) as info:
        CODEC.decode(LLMRequest({}, ["not", "an", "object"]))
    assert str(info.value) == "internal error: request content is not an object"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"store": True}, "request contains fields that cannot be encoded for Anthropic Messages"),
        ({"api_specific": {"api": "openai_chat"}}, "api_specific provider does not match Anthropic Messages"),
        (
            {"tool_choice": {"provider": "openai_chat", "kind": "x", "value": {}}},
            "tool choice for openai_chat cannot be encoded for Anthropic Messages",
        ),
        (
            {"messages": [{"role": "tool", "content": "r", "tool_call_id": "c1"}]},
            'message Tool { content: Text("r"), tool_call_id: "c1" } cannot be encoded for Anthropic Messages',
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]},
            'content part Refusal { refusal: "no", extra: {} } cannot be encoded for Anthropic Messages',
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "image": "x"}]}]},
            "Anthropic image payload must be an object",
        ),
        (
            {
                "tools": [
                    {
                        "type": "provider_native",
                        "provider": "gemini",
                        "kind": "googleSearch",
                        "value": {"googleSearch": {}},
                    }
                ]
            },
            'tool ProviderNative { provider: "gemini", kind: "googleSearch", '
            'value: Object {"googleSearch": Object {}} } cannot be encoded for Anthropic Messages',
        ),
    ],
)
def test_unencodable_edits_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        _encode_edit(BASE, **changes)
    assert str(info.value) == f"invalid argument: {message}"


# --- responses -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("response_") + _names("stream_"))
def test_response_fixture_matches_reference(name: str) -> None:
    fixture = _load(name)
    assert CODEC.decode_response(fixture["response"])._to_json() == fixture["annotated"]


def test_usage_prompt_tokens_include_cache_reads_and_writes() -> None:
    usage = CODEC.decode_response(_load("response_tool_use_cached")["response"]).usage
    # Anthropic's input_tokens (12) excludes cache reads and writes; our convention counts every input token.
    assert usage == {
        "prompt_tokens": 12 + 3000 + 1500,
        "completion_tokens": 40,
        "total_tokens": 12 + 3000 + 1500 + 40,
        "cache_read_tokens": 3000,
        "cache_write_tokens": 1500,
    }


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"input_tokens": 10}, {"prompt_tokens": 10}),
        ({"output_tokens": 3}, {"completion_tokens": 3}),
        ({}, {}),
        ({"cache_read_input_tokens": 5, "cache_creation_input_tokens": None}, {"cache_read_tokens": 5}),
        (
            {"input_tokens": 2, "output_tokens": 1, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 7},
            {
                "prompt_tokens": 14,
                "completion_tokens": 1,
                "total_tokens": 15,
                "cache_read_tokens": 5,
                "cache_write_tokens": 7,
            },
        ),
        (
            {"input_tokens": 1, "output_tokens": 2, "cost_usd": 0.5},
            {
                "prompt_tokens": 1,
                "completion_tokens": 2,
                "total_tokens": 3,
                "cost": {"total": 0.5, "currency": "USD", "source": "provider_reported"},
            },
        ),
        (
            {"cost": {"input": 0.1, "output": 0.2, "currency": "EUR"}},
            {
                "cost": {
                    "total": 0.1 + 0.2,
                    "currency": "EUR",
                    "input": 0.1,
                    "output": 0.2,
                    "source": "provider_reported",
                }
            },
        ),
        (
            {"cost": {"input": 0.1}, "cost_usd": 1},
            {"cost": {"total": 1.0, "currency": "USD", "input": 0.1, "source": "provider_reported"}},
        ),
        ({"cost": {}}, {}),
    ],
)
def test_usage_mapping(usage: dict[str, Any], expected: dict[str, Any]) -> None:
    assert CODEC.decode_response({"usage": usage}).usage == expected


@pytest.mark.parametrize(
    ("stop_reason", "finish", "finish_json"),
    [
        ("end_turn", "complete", "complete"),
        ("max_tokens", "length", "length"),
        ("tool_use", "tool_use", "tool_use"),
        ("stop_sequence", "stop_sequence", {"unknown": "stop_sequence"}),
        ("refusal", "refusal", {"unknown": "refusal"}),
        ("pause_turn", "pause_turn", {"unknown": "pause_turn"}),
        (
            "model_context_window_exceeded",
            "model_context_window_exceeded",
            {"unknown": "model_context_window_exceeded"},
        ),
        (None, None, None),
    ],
)
def test_finish_reasons(stop_reason: str | None, finish: str | None, finish_json: Any) -> None:
    decoded = CODEC.decode_response({"content": [], "stop_reason": stop_reason})
    assert decoded.finish_reason == finish
    assert decoded._to_json().get("finish_reason") == finish_json


def test_response_text_and_tool_calls() -> None:
    decoded = CODEC.decode_response(
        {
            "content": [
                {"type": "thinking", "thinking": "x", "signature": "s"},
                {"type": "text", "text": "A"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                {"type": "text", "text": "B"},
                {"type": "tool_use", "id": "t2", "name": "g"},  # no input: not a usable call
            ]
        }
    )
    assert decoded.message == "A\nB"
    assert decoded.tool_calls == [{"id": "t1", "name": "f", "arguments": {"a": 1}}]
    assert decoded.has_tool_calls()


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"id": 5}, "invalid type: integer `5`, expected a string"),
        ({"content": "hi"}, 'invalid type: string "hi", expected a sequence'),
        ({"usage": "x"}, 'invalid type: string "x", expected struct RawAnthropicUsage'),
        ({"usage": {"input_tokens": -1}}, "invalid value: integer `-1`, expected u64"),
        ({"usage": {"input_tokens": 1.5}}, "invalid type: floating point `1.5`, expected u64"),
        ({"usage": {"cost": 0.5}}, "invalid type: floating point `0.5`, expected struct RawUsageCost"),
        ({"usage": {"cost_usd": "1"}}, 'invalid type: string "1", expected f64'),
    ],
)
def test_malformed_responses(response: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        CODEC.decode_response(response)
    assert str(info.value) == f"internal error: Anthropic Messages response decode: {message}"


@pytest.mark.parametrize(
    ("response", "fragment"),
    [([], "sequence"), ("x", 'string "x"'), (5, "integer `5`"), (None, "null"), (True, "boolean `true`")],
)
def test_non_object_responses(response: Any, fragment: str) -> None:
    with pytest.raises(RuntimeError) as info:
        CODEC.decode_response(response)
    assert str(info.value) == (
        "internal error: Anthropic Messages response decode: "
        f"invalid type: {fragment}, expected struct RawAnthropicResponse"
    )


# --- streaming -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("stream_"))
def test_stream_aggregation_equals_non_streamed_response(name: str) -> None:
    fixture = _load(name)
    aggregator = CODEC.stream_aggregator()
    for event in fixture["events"]:
        aggregator.add(event)
    result = aggregator.result()
    assert result == fixture["response"]
    assert CODEC.decode_response(result)._to_json() == fixture["annotated"]


def test_stream_error_event_becomes_the_result() -> None:
    aggregator = CODEC.stream_aggregator()
    aggregator.add(_load("stream_text")["events"][0])
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    aggregator.add(error)
    assert aggregator.result() == error


def test_stream_bad_tool_json_is_reported() -> None:
    aggregator = CODEC.stream_aggregator()
    aggregator.add(
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        }
    )
    aggregator.add(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a": '}}
    )
    with pytest.raises(RuntimeError, match="not valid JSON"):
        aggregator.add({"type": "content_block_stop", "index": 0})


# --- property tests ------------------------------------------------------------------------------------------

_text = st.text(max_size=8)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), _text)
_vendor = st.dictionaries(st.sampled_from(["vendor_a", "x_flag", "nullish"]), _scalar, max_size=2)


def _block() -> st.SearchStrategy[dict[str, Any]]:
    cache = st.sampled_from([{}, {"cache_control": {"type": "ephemeral"}}])
    return st.one_of(
        st.builds(lambda t, c: {"type": "text", "text": t, **c}, _text, cache),
        st.builds(
            lambda d: {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": d}}, _text
        ),
        st.builds(lambda u: {"type": "document", "source": {"type": "url", "url": u}, "title": "t"}, _text),
        st.builds(lambda i, a: {"type": "tool_use", "id": i, "name": "f", "input": {"a": a}}, _text, _scalar),
        st.builds(
            lambda i, c, e: {"type": "tool_result", "tool_use_id": i, "content": c, **e},
            _text,
            st.one_of(_text, st.just([{"type": "text", "text": "r"}])),
            st.sampled_from([{}, {"is_error": True}, {"is_error": None}]),
        ),
        st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "s"}, _text),
        st.just({"type": "redacted_thinking", "data": "d"}),
        st.builds(lambda t: {"type": "search_result", "title": t, "content": []}, _text),
    )


_message = st.builds(
    lambda role, content, extra: {"role": role, "content": content, **extra},
    st.sampled_from(["user", "assistant"]),
    st.one_of(_text, st.lists(_block(), max_size=3)),
    st.sampled_from([{}, {}, {}, {"name": "n"}]),
)
_optional_fields = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.none(), _text),
        "max_tokens": st.one_of(st.none(), st.integers(0, 10_000)),
        "temperature": st.one_of(st.none(), st.floats(0, 2), st.integers(0, 1)),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(0, 100),
        "stop_sequences": st.one_of(st.none(), st.lists(_text, max_size=2)),
        "system": st.one_of(_text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, _text), max_size=2)),
        "metadata": st.one_of(st.none(), st.just({"user_id": "u"})),
        "stream": st.one_of(st.none(), st.booleans()),
        "thinking": st.just({"type": "enabled", "budget_tokens": 1024}),
        "tools": st.lists(
            st.one_of(
                st.builds(lambda n: {"name": n, "description": "d", "input_schema": {"type": "object"}}, _text),
                st.just({"type": "web_search_20250305", "name": "web_search"}),
            ),
            max_size=2,
        ),
        "tool_choice": st.one_of(
            st.none(),
            st.sampled_from(
                [
                    {"type": "auto"},
                    {"type": "any", "disable_parallel_tool_use": True},
                    {"type": "tool", "name": "f"},
                    {"type": "none"},
                    "auto",
                ]
            ),
        ),
    },
)


@st.composite
def _requests(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": draw(st.lists(_message, max_size=4))}
    body.update(draw(_optional_fields))
    body.update(draw(_vendor))
    return body


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_requests())
def test_property_no_edit_round_trip(body: dict[str, Any]) -> None:
    original = LLMRequest({}, body)
    encoded = encode_unedited(CODEC, original)
    assert json.dumps(encoded.content) == json.dumps(body)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_requests(), _text, st.integers(0, 50))
def test_property_representable_edits_survive_a_re_decode(body: dict[str, Any], text: str, max_tokens: int) -> None:
    original = LLMRequest({}, body)
    annotated = CODEC.decode(original)
    messages = annotated.messages
    messages.append({"role": "user", "content": text})
    annotated.messages = messages
    annotated.model = "edited"
    annotated.params = {**(annotated.params or {}), "max_tokens": max_tokens}
    redecoded = CODEC.decode(CODEC.encode(annotated, original))
    assert redecoded.messages == annotated.messages
    assert redecoded.model == "edited"
    assert redecoded.params == annotated.params
    assert redecoded.extra == annotated.extra
