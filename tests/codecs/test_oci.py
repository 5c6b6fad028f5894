"""OCIGenAIChatCodec: GENERIC, COHERE and COHEREV2 requests, responses and streamed events.

Expected values in ``fixtures/oci/*.json`` were produced by the reference implementation (nemo-relay 0.8.4):
annotations and encoded payloads are its output for the same inputs and edits; ``stream_result`` entries are
the ``ChatResult`` the aggregator is expected to build (the reference has no OCI stream aggregation).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from codec_helpers import Fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roundtrip_check import encode_unedited

from nemo_relay import (
    AnnotatedLLMRequest,
    AnnotatedLLMResponse,
    LLMRequest,
    LLMRequestInterceptOutcome,
    intercepts,
    llm,
)
from nemo_relay._core.codecs.oci import OCIGenAIChatCodec, OCIStreamAggregator
from nemo_relay._core.errors import InvalidArgumentError

FIXTURES = Fixtures("oci")
load = FIXTURES.load
FORMATS = ("generic", "cohere", "coherev2")
REQUEST_PROPERTIES = ("messages", "model", "params", "tools", "tool_choice", "api_specific", "extra")
RESPONSE_PROPERTIES = ("id", "model", "message", "tool_calls", "finish_reason", "usage", "api_specific", "extra")

codec = OCIGenAIChatCodec()


def request_properties(annotated: AnnotatedLLMRequest) -> dict[str, Any]:
    return {name: getattr(annotated, name) for name in REQUEST_PROPERTIES}


def response_properties(annotated: AnnotatedLLMResponse) -> dict[str, Any]:
    return {name: getattr(annotated, name) for name in RESPONSE_PROPERTIES}


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (``1`` is not ``1.0`` and not ``True``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def apply_ops(annotated: AnnotatedLLMRequest, ops: list[list[Any]]) -> None:
    """Edits described as data in ``edits.json``, applied through the public properties."""
    for kind, *args in ops:
        if kind == "set_message":
            messages = annotated.messages
            messages[args[0]] = args[1]
            annotated.messages = messages
        elif kind == "append_message":
            annotated.messages = [*annotated.messages, args[0]]
        elif kind == "insert_message":
            messages = annotated.messages
            messages.insert(args[0], args[1])
            annotated.messages = messages
        elif kind == "drop_message":
            messages = annotated.messages
            del messages[args[0]]
            annotated.messages = messages
        elif kind == "set":
            setattr(annotated, args[0], args[1])
        elif kind == "api_specific":
            api_specific = annotated.api_specific or {}
            for key, value in args[0].items():
                if value is None:
                    api_specific.pop(key, None)
                else:
                    api_specific[key] = value
            annotated.api_specific = api_specific
        elif kind == "extra":
            extra = annotated.extra
            for key, value in args[0].items():
                if value == "__delete__":
                    extra.pop(key, None)
                else:
                    extra[key] = value
            annotated.extra = extra
        else:  # pragma: no cover - fixture typo
            raise AssertionError(kind)


# --- identity ----------------------------------------------------------------------------------------------


def test_codec_identity() -> None:
    assert OCIGenAIChatCodec._relay_builtin_id == "oci_genai"
    assert OCIGenAIChatCodec.provider == "oci_genai"
    assert repr(codec) == "OCIGenAIChatCodec()"
    assert isinstance(codec.stream_aggregator(), OCIStreamAggregator)


# --- one realistic fixture per format ---------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_decode_matches_reference(name: str) -> None:
    fixture = load(name)
    annotated = codec.decode(LLMRequest({}, fixture["request"]))
    assert same(request_properties(annotated), fixture["properties"])
    assert same(annotated._to_json(), fixture["annotation"])
    assert same(codec.decode_json(copy.deepcopy(fixture["request"]), {}), fixture["annotation"])


@pytest.mark.parametrize("name", FORMATS)
def test_round_trip_without_edits_is_exact(name: str) -> None:
    content = load(name)["request"]
    request = LLMRequest({"authorization": "Bearer t", "x-trace": "1"}, content)
    encoded = encode_unedited(codec, request)
    assert same(encoded.content, content)
    assert encoded.headers == {"authorization": "Bearer t", "x-trace": "1"}


@pytest.mark.parametrize("name", FORMATS)
def test_decoded_annotation_does_not_alias_the_request(name: str) -> None:
    content = load(name)["request"]
    pristine = copy.deepcopy(content)
    annotation = codec.decode_json(content, {})
    for message in annotation["messages"]:
        message.clear()
    annotation["api_specific"].clear()
    for tool in annotation.get("tools") or []:
        tool["value"] = None
    assert content == pristine


@pytest.mark.parametrize("name", FORMATS)
def test_response_matches_reference(name: str) -> None:
    fixture = load(name)
    annotated = codec.decode_response(fixture["response"])
    assert isinstance(annotated, AnnotatedLLMResponse)
    assert same(response_properties(annotated), fixture["response_properties"])
    assert same(annotated._to_json(), fixture["annotated_response"])


@pytest.mark.parametrize("name", FORMATS)
def test_stream_aggregates_to_the_final_result(name: str) -> None:
    fixture = load(name)
    aggregator = codec.stream_aggregator()
    for event in fixture["stream"]:
        aggregator.add(event)
    result = aggregator.result()
    assert same(result, fixture["stream_result"])
    assert same(response_properties(codec.decode_response(result)), fixture["stream_response_properties"])


# --- edits: decode, edit, encode, exact payload -----------------------------------------------------------


EDITS = load("edits")


@pytest.mark.parametrize("case", EDITS, ids=[case["name"] for case in EDITS])
def test_edit_then_encode(case: dict[str, Any]) -> None:
    request = LLMRequest({"authorization": "Bearer x"}, load(case["fixture"])["request"])
    annotated = codec.decode(request)
    apply_ops(annotated, case["ops"])
    if "error" in case:
        with pytest.raises(InvalidArgumentError) as caught:
            codec.encode(annotated, request)
        assert isinstance(caught.value, RuntimeError)
        assert str(caught.value) == case["error"]
    else:
        encoded = codec.encode(annotated, request)
        assert same(encoded.content, case["expected"])
        assert encoded.headers == {"authorization": "Bearer x"}


def test_generic_edit_rewrites_only_the_changed_message() -> None:
    content = {
        "compartmentId": "c",
        "servingMode": {"modelId": "m", "servingType": "ON_DEMAND"},
        "chatRequest": {
            "apiFormat": "GENERIC",
            "messages": [
                {"role": "USER", "content": [{"type": "TEXT", "text": "hi", "cacheHint": 1}], "name": "bob"},
                {"role": "USER", "content": "plain"},
            ],
            "topK": 5,
            "seed": None,
        },
        "opcRequestId": "req-1",
    }
    request = LLMRequest({}, content)
    annotated = codec.decode(request)
    assert annotated.messages == [{"role": "user", "content": "hi"}, {"role": "user", "content": "plain"}]
    assert annotated.extra == {"topK": 5, "seed": None}
    annotated.messages = [annotated.messages[0], {"role": "user", "content": "edited"}]
    annotated.extra = {"seed": None}
    expected = copy.deepcopy(content)
    # The edited message is rebuilt in OCI shape; the untouched one keeps its unknown fields byte for byte.
    expected["chatRequest"]["messages"][1] = {"role": "USER", "content": [{"type": "TEXT", "text": "edited"}]}
    del expected["chatRequest"]["topK"]
    assert same(codec.encode(annotated, request).content, expected)


def test_cohere_edit_rebuilds_history_preamble_and_message() -> None:
    content = {
        "chatRequest": {
            "apiFormat": "COHERE",
            "preambleOverride": "P",
            "chatHistory": [{"role": "USER", "message": "a", "vendor": 1}],
            "message": "q",
        }
    }
    request = LLMRequest({}, content)
    annotated = codec.decode(request)
    assert annotated.messages == [
        {"role": "system", "content": "P"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "q"},
    ]
    annotated.messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert codec.encode(annotated, request).content == {
        "chatRequest": {
            "apiFormat": "COHERE",
            "chatHistory": [{"role": "USER", "message": "a"}, {"role": "CHATBOT", "message": "b"}],
            "message": "c",
        }
    }


def test_json_hooks_patch_only_what_changed() -> None:
    content = {"apiFormat": "COHEREV2", "messages": [{"role": "USER", "content": "x"}], "maxTokens": 5, "vendor": [1]}
    baseline = codec.decode_json(copy.deepcopy(content), {})
    assert baseline == {
        "messages": [{"role": "user", "content": "x"}],
        "params": {"max_tokens": 5},
        "api_specific": {"api": "oci_genai", "api_format": "COHEREV2"},
        "vendor": [1],
    }
    edited = copy.deepcopy(baseline)
    edited["params"] = {"max_tokens": 5, "temperature": 1}
    del edited["vendor"]
    patched = codec.encode_json(edited, baseline, copy.deepcopy(content))
    assert same(
        patched,
        {"apiFormat": "COHEREV2", "messages": [{"role": "USER", "content": "x"}], "maxTokens": 5, "temperature": 1.0},
    )
    # Clearing api_specific is not an edit; leaving everything as decoded changes nothing.
    edited = copy.deepcopy(baseline)
    del edited["api_specific"]
    assert same(codec.encode_json(edited, baseline, copy.deepcopy(content)), content)


def test_vendor_keys_named_like_fields_stay_extra() -> None:
    content = {"chatRequest": {"apiFormat": "COHERE", "message": "q", "messages": ["vendor"], "metadata": {"k": "v"}}}
    request = LLMRequest({}, content)
    annotated = codec.decode(request)
    assert annotated.messages == [{"role": "user", "content": "q"}]
    assert annotated.metadata is None
    assert annotated.extra == {"messages": ["vendor"], "metadata": {"k": "v"}}
    # Editing the field and the same-named extra key are two different edits.
    annotated.messages = [{"role": "user", "content": "edited"}]
    annotated.extra = {"messages": ["vendor"], "metadata": {"k": "w"}}
    assert codec.encode(annotated, request).content == {
        "chatRequest": {"apiFormat": "COHERE", "message": "edited", "messages": ["vendor"], "metadata": {"k": "w"}}
    }
    annotated.metadata = {"k": "z"}  # the annotation field has no OCI form
    with pytest.raises(InvalidArgumentError, match="request contains fields that cannot be encoded for OCI GenAI"):
        codec.encode(annotated, request)


def test_bare_request_cannot_take_envelope_edits() -> None:
    request = LLMRequest({}, {"apiFormat": "GENERIC", "messages": []})
    annotated = codec.decode(request)
    annotated.api_specific = {"api": "oci_genai", "api_format": "GENERIC", "compartment_id": "c"}
    with pytest.raises(
        InvalidArgumentError, match="compartmentId and servingMode edits require a ChatDetails envelope"
    ):
        codec.encode(annotated, request)


async def test_foreign_provider_native_fails_before_the_provider_is_called() -> None:
    def add_foreign(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest) -> LLMRequestInterceptOutcome:
        native = {
            "role": "provider_native",
            "provider": "anthropic_messages",
            "kind": "user",
            "value": {"role": "user"},
        }
        annotated.messages = [*annotated.messages, native]
        return LLMRequestInterceptOutcome(request, annotated)

    calls: list[Any] = []

    async def provider(request: LLMRequest) -> Any:
        calls.append(request)
        return {}

    intercepts.register_llm_request("add-foreign", 1, False, add_foreign)
    try:
        with pytest.raises(RuntimeError, match=r"message ProviderNative \{ provider: \"anthropic_messages\""):
            await llm.execute("oci", LLMRequest({}, load("generic")["request"]), provider, codec=codec)
    finally:
        intercepts.deregister_llm_request("add-foreign")
    assert calls == []


async def test_matching_provider_native_reaches_the_provider_verbatim() -> None:
    raw = {"role": "USER", "content": [{"type": "TEXT", "text": "raw"}], "vendorField": {"keep": True}}

    def add_native(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest) -> LLMRequestInterceptOutcome:
        native = {"role": "provider_native", "provider": "oci_genai", "kind": "user", "value": raw}
        annotated.messages = [*annotated.messages, native]
        return LLMRequestInterceptOutcome(request, annotated)

    seen: list[Any] = []

    async def provider(request: LLMRequest) -> Any:
        seen.append(request.content)
        return load("generic")["response"]

    intercepts.register_llm_request("add-native", 1, False, add_native)
    try:
        await llm.execute("oci", LLMRequest({}, load("generic")["request"]), provider, codec=codec)
    finally:
        intercepts.deregister_llm_request("add-native")
    assert seen[0]["chatRequest"]["messages"][-1] == raw
    assert seen[0]["chatRequest"]["messages"][:-1] == load("generic")["request"]["chatRequest"]["messages"]


# --- odd shapes and malformed requests -----------------------------------------------------------------------


REQUESTS = load("requests")


@pytest.mark.parametrize("case", REQUESTS, ids=[case["name"] for case in REQUESTS])
def test_request_shapes_match_reference(case: dict[str, Any]) -> None:
    request = LLMRequest({}, case["request"])
    if "error" in case:
        with pytest.raises(InvalidArgumentError) as caught:
            codec.decode(request)
        assert str(caught.value) == case["error"]
        return
    annotated = codec.decode(request)
    expected = dict(case["properties"])
    assert same(request_properties(annotated), expected)
    assert same(codec.encode(annotated, request).content, case["request"])


@pytest.mark.parametrize(
    ("chat_request", "message"),
    [
        ({"apiFormat": "GENERIC", "messages": {}}, "OCI GenAI GENERIC messages must be an array"),
        ({"apiFormat": "GENERIC", "messages": [], "maxTokens": -1}, "OCI GenAI maxTokens must be a non-negative"),
        ({"apiFormat": "GENERIC", "messages": [], "temperature": "hot"}, "OCI GenAI temperature must be a number"),
        ({"apiFormat": "GENERIC", "messages": [], "stop": "END"}, "OCI GenAI stop must be a string array"),
        ({"apiFormat": "COHEREV2", "messages": [], "stopSequences": [1]}, "OCI GenAI stopSequences must be a string"),
        ({"apiFormat": "COHERE", "message": "q", "chatHistory": None}, "OCI GenAI COHERE chatHistory must be an array"),
        ({"apiFormat": "GENERIC", "messages": [], "tools": {}}, "OCI GenAI tools must be an array"),
        ({"apiFormat": "GENERIC", "messages": [{"role": "ASSISTANT", "toolCalls": "x"}]}, "toolCalls must be an array"),
    ],
)
def test_malformed_request_names_the_field(chat_request: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        codec.decode(LLMRequest({}, {"compartmentId": "c", "chatRequest": chat_request}))


# --- responses -----------------------------------------------------------------------------------------------


RESPONSES = load("responses")


@pytest.mark.parametrize("case", RESPONSES, ids=[case["name"] for case in RESPONSES])
def test_responses_match_reference(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(InvalidArgumentError) as caught:
            codec.decode_response(case["response"])
        assert str(caught.value) == case["error"]
        return
    annotated = codec.decode_response(case["response"])
    assert same(response_properties(annotated), case["properties"])
    assert same(annotated._to_json(), case["json"])


def test_usage_prompt_tokens_already_include_cached_tokens() -> None:
    response = {
        "chatResponse": {
            "apiFormat": "GENERIC",
            "choices": [{"message": {"role": "ASSISTANT", "content": "ok"}, "finishReason": "length"}],
            "usage": {
                "promptTokens": 100,
                "completionTokens": 7,
                "totalTokens": 107,
                "promptTokensDetails": {"cachedTokens": 64},
            },
        }
    }
    annotated = codec.decode_response(response)
    assert annotated.usage == {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "cache_read_tokens": 64,
    }
    assert annotated.finish_reason == "length"
    assert annotated.response_text() == "ok"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("stop", "complete"),
        ("COMPLETE", "complete"),
        ("length", "length"),
        ("MAX_TOKENS", "length"),
        ("max_tokens", "length"),
        ("tool_calls", "tool_use"),
        ("TOOL_CALL", "tool_use"),
        ("content_filter", "content_filter"),
        ("ERROR_TOXIC", {"unknown": "ERROR_TOXIC"}),
        ("STOP", {"unknown": "STOP"}),
    ],
)
def test_finish_reasons(raw: str, normalised: Any) -> None:
    for body in (
        {"apiFormat": "GENERIC", "choices": [{"message": {"content": "x"}, "finishReason": raw}]},
        {"apiFormat": "COHERE", "text": "x", "finishReason": raw},
        {"apiFormat": "COHEREV2", "message": {"content": "x"}, "finishReason": raw},
    ):
        assert codec.decode_response_json({"chatResponse": body})["finish_reason"] == normalised
        annotated = codec.decode_response({"chatResponse": body})
        assert annotated.finish_reason == (normalised if isinstance(normalised, str) else raw)


def test_response_json_keeps_named_fields_on_name_clashes() -> None:
    response = {"chatResponse": {"apiFormat": "COHEREV2", "message": {"content": "Yo", "toolPlan": "p"}}}
    assert codec.decode_response_json(response)["message"] == "Yo"
    annotated = codec.decode_response(response)
    assert annotated.message == "Yo"
    assert annotated.extra == {"message": {"toolPlan": "p"}}


async def test_event_annotations_match_reference() -> None:
    from nemo_relay import subscribers

    fixture = load("coherev2")
    seen: list[Any] = []
    subscribers.register("oci-events", seen.append)
    try:

        async def provider(request: LLMRequest) -> Any:
            return fixture["response"]

        await llm.execute("oci", LLMRequest({}, fixture["request"]), provider, codec=codec, response_codec=codec)
        await subscribers.flush_async()
    finally:
        subscribers.deregister("oci-events")
    profiles = [event.category_profile or {} for event in seen]
    requests = [p["annotated_request"] for p in profiles if p.get("annotated_request") is not None]
    responses = [p["annotated_response"] for p in profiles if p.get("annotated_response") is not None]
    assert same(requests, [fixture["annotation"]])
    assert same(responses, [fixture["annotated_response"]])


# --- streams -------------------------------------------------------------------------------------------------


def aggregate(*chunks: Any) -> dict[str, Any]:
    aggregator = codec.stream_aggregator()
    for chunk in chunks:
        aggregator.add(chunk)
    return aggregator.result()


def test_stream_skips_sentinels_and_reads_sse_text() -> None:
    result = aggregate(
        b'data: {"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"a"}]}}',
        "",
        "   ",
        'data: {"index":0,"message":{"content":[{"type":"TEXT","text":"b"}],"reasoningContent":"why"}}',
        "data: [DONE]",
    )
    assert result == {
        "chatResponse": {
            "apiFormat": "GENERIC",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "ASSISTANT",
                        "content": [{"type": "TEXT", "text": "ab"}],
                        "reasoningContent": "why",
                    },
                }
            ],
        }
    }
    annotated = codec.decode_response(result)
    assert annotated.message == "ab"
    assert annotated.extra == {"message": {"reasoningContent": "why"}}


def test_stream_rejects_garbage() -> None:
    aggregator = codec.stream_aggregator()
    with pytest.raises(InvalidArgumentError, match="OCI GenAI stream event is not JSON"):
        aggregator.add("data: {not json")
    with pytest.raises(InvalidArgumentError, match="OCI GenAI stream event must be a JSON object"):
        aggregator.add([1, 2])


def test_stream_parallel_tool_calls_and_model() -> None:
    result = aggregate(
        {
            "modelId": "m",
            "index": 0,
            "message": {
                "toolCalls": [{"id": "a", "name": "f", "arguments": '{"x"'}, {"id": "b", "name": "g", "arguments": ""}]
            },
        },
        {"index": 0, "message": {"toolCalls": [{"arguments": ":1}"}, {"arguments": "{}"}]}},
        {"index": 0, "message": {"role": "ASSISTANT"}, "finishReason": "tool_calls"},
    )
    annotated = codec.decode_response(result)
    assert annotated.model == "m"
    assert annotated.tool_calls == [
        {"id": "a", "name": "f", "arguments": {"x": 1}},
        {"id": "b", "name": "g", "arguments": {}},
    ]
    assert annotated.finish_reason == "tool_use"


def test_stream_id_less_calls_get_positional_ids() -> None:
    result = aggregate({"message": {"toolCalls": [{"name": "f", "arguments": "{}"}]}})
    assert codec.decode_response(result).tool_calls == [{"id": "call_0", "name": "f", "arguments": {}}]


def test_stream_cohere_tool_calls_and_inferred_format() -> None:
    result = aggregate(
        {"text": "Look"},
        {"text": "ing", "toolCalls": [{"name": "search", "parameters": {"q": "x"}}]},
        {"text": "Looking", "finishReason": "TOOL_CALL", "toolCalls": [{"name": "search", "parameters": {"q": "x"}}]},
    )
    assert result == {
        "chatResponse": {
            "apiFormat": "COHERE",
            "text": "Looking",
            "toolCalls": [{"name": "search", "parameters": {"q": "x"}}],
            "finishReason": "TOOL_CALL",
        }
    }


def test_stream_whole_result_chunk_and_empty_stream() -> None:
    whole = load("generic")["response"]
    assert aggregate({"index": 0, "message": {"content": "x"}}, whole) == whole
    assert aggregate() == {
        "chatResponse": {"apiFormat": "GENERIC", "choices": [{"index": 0, "message": {"role": "ASSISTANT"}}]}
    }


def test_decode_response_of_non_object_keeps_it_raw() -> None:
    annotated = codec.decode_response("upstream timeout")
    assert annotated.extra == {"raw": "upstream timeout"}
    assert annotated.api_specific is None


# --- property: lossless round trip ---------------------------------------------------------------------------


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
# Vendor keys, including some that share a name with annotation fields (they must stay plain extra).
unknown_fields = st.dictionaries(
    st.sampled_from(["vendorA", "topK", "seed", "isStream", "documents", "model", "metadata", "stream", "user"]),
    json_value,
    max_size=3,
)
text_part = st.fixed_dictionaries(
    {"type": st.just("TEXT")}, optional={"text": st.one_of(st.none(), st.text(max_size=6)), "cache": json_value}
)
other_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["IMAGE", "IMAGE_URL", "AUDIO", "text"])}, optional={"imageUrl": json_value}
)
content = st.one_of(st.none(), st.text(max_size=8), st.lists(st.one_of(text_part, other_part), max_size=3))
tool_call = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=4), st.integers(-(2**53), 2**53)),
        "type": st.just("FUNCTION"),
        "name": json_value,
        "arguments": json_value,
        "function": json_value,
    },
)
chat_message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.one_of(
            st.sampled_from(["SYSTEM", "USER", "ASSISTANT", "TOOL", "user", "DEVELOPER", "CHATBOT"]), json_leaf
        ),
        "content": content,
        "toolCalls": st.one_of(st.none(), st.lists(tool_call, max_size=2)),
        "toolCallId": json_leaf,
        "name": json_value,
    },
)
cohere_turn = st.fixed_dictionaries(
    {},
    optional={
        "role": st.one_of(st.sampled_from(["SYSTEM", "USER", "CHATBOT", "TOOL", "chatbot"]), json_leaf),
        "message": json_leaf,
        "toolCalls": json_value,
        "toolResults": json_value,
    },
)
params = st.fixed_dictionaries(
    {},
    optional={
        "maxTokens": st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
        "temperature": st.one_of(st.none(), st.integers(0, 2), st.floats(0, 2)),
        "topP": st.one_of(st.none(), st.floats(0, 1)),
        "tools": st.one_of(st.none(), st.lists(json_value, max_size=2)),
        "toolChoice": json_value,
    },
)


@st.composite
def oci_requests(draw: st.DrawFn) -> dict[str, Any]:
    api_format = draw(st.sampled_from(["GENERIC", "COHERE", "COHEREV2", "generic", "FOO"]))
    body: dict[str, Any] = {"apiFormat": api_format}
    body.update(draw(unknown_fields))
    body.update(draw(params))
    stop_key = "stop" if api_format.upper() not in ("COHERE", "COHEREV2") else "stopSequences"
    if draw(st.booleans()):
        body[stop_key] = draw(st.one_of(st.none(), st.lists(st.text(max_size=4), max_size=2)))
    if api_format.upper() == "COHERE":
        body["chatHistory"] = draw(st.lists(cohere_turn, max_size=4))
        body["message"] = draw(json_leaf)
        body["preambleOverride"] = draw(json_leaf)
        if draw(st.booleans()):
            body["messages"] = draw(json_value)  # unknown to COHERE, named like the annotation field
    else:
        body["messages"] = draw(st.lists(chat_message, max_size=5))
    if draw(st.booleans()):
        return body
    envelope: dict[str, Any] = {"chatRequest": body, "compartmentId": draw(json_leaf)}
    if draw(st.booleans()):
        envelope["servingMode"] = draw(
            st.one_of(
                json_value,
                st.fixed_dictionaries(
                    {"servingType": st.just("ON_DEMAND")}, optional={"modelId": json_leaf, "endpointId": json_leaf}
                ),
            )
        )
    return envelope


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(oci_requests())
def test_round_trip_property(content: dict[str, Any]) -> None:
    pristine = copy.deepcopy(content)
    request = LLMRequest({"h": "v"}, content)
    annotated = codec.decode(request)
    encoded = encode_unedited(codec, request)
    assert same(encoded.content, pristine)
    baseline = codec.decode_json(copy.deepcopy(pristine), {})
    assert same(baseline, annotated._to_json())
    assert same(content, pristine)
