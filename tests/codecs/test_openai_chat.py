"""OpenAI Chat Completions codec: decode, patch-encode, response decode and stream aggregation.

Fixtures under ``fixtures/openai_chat`` hold realistic payloads together with the annotation the
reference implementation produces for them; the edit and error tables below were checked against
the reference as well.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest
from codec_helpers import (
    Body,
    EditCase,
    EncodeErrorCase,
    Fixtures,
    assign,
    change_messages,
    patched,
    update_message,
)
from codec_helpers import roundtrip as codec_roundtrip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roundtrip_check import encode_unedited

from nemo_relay import LLMRequest
from nemo_relay._core.codecs.openai_chat import OpenAIChatCodec
from nemo_relay._core.errors import InternalError, InvalidArgumentError

FIXTURES = Fixtures("openai_chat")
CODEC = OpenAIChatCodec()

load, names = FIXTURES.load, FIXTURES.names
roundtrip = functools.partial(codec_roundtrip, CODEC, {"authorization": "Bearer <redacted>"})


# --- decode -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names("request_"))
def test_decode_matches_reference_annotation(name: str) -> None:
    fixture = load(name)
    assert CODEC.decode_json(copy.deepcopy(fixture["request"]), {}) == fixture["annotation"]
    assert CODEC.decode(LLMRequest({}, fixture["request"]))._to_json() == fixture["annotation"]


@pytest.mark.parametrize("name", names("request_"))
def test_no_edit_round_trip_returns_the_original(name: str) -> None:
    body = load(name)["request"]
    request = LLMRequest({"authorization": "Bearer <redacted>"}, body)
    encoded = encode_unedited(CODEC, request)
    assert encoded.content == body
    assert encoded.headers == {"authorization": "Bearer <redacted>"}


def test_decode_maps_roles_parts_and_options() -> None:
    annotation = load("request_multimodal")["annotation"]
    developer, user = annotation["messages"][0], annotation["messages"][1]
    assert developer["role"] == "developer" and developer["content"][1]["text"] == "Never guess brand names."
    assert user["name"] == "alice"
    text, image, audio, file = user["content"]
    assert text["cache_control"] == {"type": "ephemeral"}  # unknown part fields ride along
    assert image == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}}
    assert audio["type"] == "audio" and audio["audio"]["format"] == "wav"
    assert file == {"type": "file", "file": {"file_id": "file-abc123", "filename": "notes.pdf"}}
    assert annotation["params"] == {"temperature": 0.0, "max_tokens": 512}


def test_decode_keeps_what_the_view_cannot_hold_as_provider_native() -> None:
    annotation = load("request_vendor")["annotation"]
    assistant = annotation["messages"][2]
    assert assistant["role"] == "provider_native" and assistant["provider"] == "openai_chat"
    assert assistant["kind"] == "assistant" and assistant["value"]["refusal"] is None
    assert (
        annotation["tools"][0]["type"] == "provider_native" and annotation["tools"][0]["kind"] == "web_search_preview"
    )
    assert annotation["api_specific"]["reasoning_effort"] == "medium"
    assert annotation["top_k"] == 40 and annotation["x_request_tag"] is None  # extra, flattened, nulls kept


def test_decode_api_specific_and_first_class_fields() -> None:
    annotation = load("request_text")["annotation"]
    assert annotation["api_specific"] == {"api": "openai_chat", "stream_options": {"include_usage": True}}
    assert annotation["stream"] is True and annotation["user"] == "user-1234"
    assert annotation["params"]["stop"] == ["\n\n"]  # one stop string is a list in the view
    assert annotation["params"]["max_tokens"] == 256  # from max_completion_tokens


def test_decode_prefers_max_completion_tokens() -> None:
    body = {"messages": [], "max_tokens": 100, "max_completion_tokens": 50}
    assert CODEC.decode_json(body, {})["params"] == {"max_tokens": 50}


def test_decode_tool_choice_shapes() -> None:
    def choice(value: Any) -> Any:
        return CODEC.decode_json({"messages": [], "tool_choice": value}, {})["tool_choice"]

    assert choice("required") == "required"
    assert choice({"type": "function", "function": {"name": "f"}, "x": 1}) == {
        "type": "function",
        "function": {"name": "f"},
    }
    native = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    assert choice(native) == {"kind": "tool_choice", "provider": "openai_chat", "value": native}
    assert choice(None) == {"kind": "tool_choice", "provider": "openai_chat", "value": None}


MALFORMED_REQUESTS = [
    ({"model": "m"}, "OpenAI Chat request is missing messages"),
    ({"messages": {}}, "OpenAI Chat messages must be an array"),
    ({"messages": ["hi"]}, "OpenAI Chat message must be an object"),
    ({"messages": [{"content": "hi"}]}, "OpenAI Chat message is missing role"),
    ({"messages": [{"role": "user"}]}, "OpenAI Chat message is missing content"),
    ({"messages": [{"role": "user", "content": None}]}, "OpenAI Chat message content must be a string or array"),
    ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "OpenAI Chat message name must be a string or null"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "OpenAI Chat tool message is missing tool_call_id"),
    ({"messages": [{"role": "function", "content": "x"}]}, "OpenAI Chat function message is missing name"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "OpenAI Chat text part is missing text"),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "OpenAI Chat content part must be an object"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x"}]}]},
        'invalid OpenAI Chat image_url: invalid type: string "https://x", expected struct OpenAiImageUrl',
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}]},
        "invalid OpenAI Chat image_url: missing field `url`",
    ),
    (
        {
            "messages": [
                {"role": "assistant", "tool_calls": [{"type": "function", "id": "c", "function": {"name": "f"}}]}
            ]
        },
        "OpenAI Chat function tool call is missing arguments",
    ),
    (
        {"messages": [{"role": "assistant", "tool_calls": "x"}]},
        "OpenAI Chat assistant tool_calls must be an array or null",
    ),
    ({"messages": [], "model": 4}, "OpenAI Chat model must be a string or null"),
    ({"messages": [], "temperature": "hot"}, "OpenAI Chat temperature must be a number or null"),
    ({"messages": [], "max_tokens": -1}, "OpenAI Chat max_tokens must be a non-negative integer or null"),
    ({"messages": [], "stop": 5}, "OpenAI Chat stop must be a string, array, or null"),
    (
        {"messages": [], "stop": ["a", 2]},
        "invalid OpenAI Chat stop value: invalid type: integer `2`, expected a string",
    ),
    (
        {"messages": [], "modalities": "text"},
        'invalid OpenAI Chat modalities: invalid type: string "text", expected a sequence',
    ),
    ({"messages": [], "seed": 1.5}, "OpenAI Chat seed must be an integer or null"),
    ({"messages": [], "response_format": "json"}, "OpenAI Chat response_format must be an object or null"),
    ({"messages": [], "tools": None}, "OpenAI Chat tools must be an array"),
    ({"messages": [], "tools": [{"type": "function", "function": {}}]}, "OpenAI Chat function tool is missing name"),
    (
        {"messages": [], "tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]},
        "OpenAI Chat function tool strict must be a boolean or null",
    ),
]


@pytest.mark.parametrize(("body", "message"), MALFORMED_REQUESTS)
def test_malformed_requests_name_the_field(body: Body, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        CODEC.decode(LLMRequest({}, body))
    assert str(caught.value) == f"invalid argument: {message}"
    assert isinstance(caught.value, RuntimeError)  # what reference callers catch


def test_decode_rejects_non_object_content() -> None:
    with pytest.raises(RuntimeError, match=r"^internal error: request content is not an object$"):
        CODEC.decode(LLMRequest({}, ["not", "a", "body"]))


# --- encode: edits patch the original -------------------------------------------------------------------


def set_message(index: int, message: Any) -> Callable[[Any], None]:
    """Edit: replace one message."""

    def edit(annotated: Any) -> None:
        messages = annotated.messages
        messages[index] = message
        annotated.messages = messages

    return edit


def _params(annotated: Any) -> None:
    annotated.params = {**annotated.params, "temperature": 0.9, "max_tokens": 64}


def _clear_params_expected(body: Body) -> None:
    for key in ("temperature", "top_p", "max_completion_tokens", "stop"):
        del body[key]


def _tool_description(annotated: Any) -> None:
    tools = annotated.tools
    tools[1]["function"]["description"] = "Local time for a city (IANA zone)."
    annotated.tools = tools


def _edit_extra(annotated: Any) -> None:
    extra = annotated.extra
    del extra["top_k"]
    extra["repetition_penalty"] = 1.3
    annotated.extra = extra


def _drop_reasoning_effort(annotated: Any) -> None:
    api = annotated.api_specific
    del api["reasoning_effort"]
    api["seed"] = 7
    annotated.api_specific = api


def _native_value(message: Any) -> None:
    message["value"]["content"] = '{"primes": [2, 3, 5, 7]}'


NEW_TOOL = {
    "type": "function",
    "function": {"name": "get_time_zone", "parameters": {"type": "object", "properties": {}}},
}

EDIT_CASES = [
    EditCase(
        "rewrite the system prompt",
        "request_text",
        update_message(0, lambda m: m.update(content="You are terse.")),
        patched(lambda b: b["messages"][0].update(content="You are terse.")),
    ),
    EditCase(
        "append a user turn",
        "request_text",
        change_messages(lambda ms: [*ms, {"role": "user", "content": "And of Italy?"}]),
        patched(lambda b: b["messages"].append({"role": "user", "content": "And of Italy?"})),
    ),
    EditCase(
        "drop the last user turn",
        "request_tool_loop",
        change_messages(lambda ms: ms[:-1]),
        patched(lambda b: b["messages"].pop()),
    ),
    EditCase(
        "insert a developer message first",
        "request_tool_loop",
        change_messages(lambda ms: [{"role": "developer", "content": "Use metric units."}, *ms]),
        patched(lambda b: b["messages"].insert(0, {"role": "developer", "content": "Use metric units."})),
    ),
    EditCase(
        "change an image url, keeping the vendor field inside image_url",
        "request_multimodal",
        update_message(1, lambda m: m["content"][1]["image_url"].update(url="https://example.com/dog.png")),
        patched(lambda b: b["messages"][1]["content"][1]["image_url"].update(url="https://example.com/dog.png")),
    ),
    EditCase(
        "redact a text part, keeping cache_control",
        "request_multimodal",
        update_message(1, lambda m: m["content"][0].update(text="[redacted]")),
        patched(lambda b: b["messages"][1]["content"][0].update(text="[redacted]")),
    ),
    EditCase(
        "drop one content part",
        "request_multimodal",
        update_message(1, lambda m: m["content"].pop(2)),
        patched(lambda b: b["messages"][1]["content"].pop(2)),
    ),
    EditCase(
        "string content becomes parts",
        "request_text",
        update_message(1, lambda m: m.update(content=[{"type": "text", "text": "Capital of France?"}])),
        patched(lambda b: b["messages"][1].update(content=[{"type": "text", "text": "Capital of France?"}])),
    ),
    EditCase(
        "edit a tool call's arguments",
        "request_tool_loop",
        update_message(2, lambda m: m["tool_calls"][1]["function"].update(arguments='{"city": "Osaka"}')),
        patched(lambda b: b["messages"][2]["tool_calls"][1]["function"].update(arguments='{"city": "Osaka"}')),
    ),
    EditCase(
        "params go back under the caller's spelling",
        "request_text",
        _params,
        patched(lambda b: b.update(temperature=0.9, max_completion_tokens=64)),
    ),
    EditCase(
        "max_tokens stays max_tokens",
        "request_multimodal",
        assign(params={"temperature": 0.0, "max_tokens": 1024}),
        patched(lambda b: b.update(max_tokens=1024)),
    ),
    EditCase(
        "one stop string stays a string",
        "request_text",
        assign(params={"temperature": 0.3, "top_p": 0.95, "max_tokens": 256, "stop": ["END"]}),
        patched(lambda b: b.update(stop="END")),
    ),
    EditCase("clear params", "request_text", assign(params=None), patched(_clear_params_expected)),
    EditCase(
        "change the model",
        "request_text",
        assign(model="gpt-4.1-nano"),
        patched(lambda b: b.update(model="gpt-4.1-nano")),
    ),
    EditCase(
        "add a tool",
        "request_tool_loop",
        lambda a: setattr(a, "tools", [*a.tools, NEW_TOOL]),
        patched(lambda b: b["tools"].append(NEW_TOOL)),
    ),
    EditCase(
        "edit a tool description, keeping its vendor field",
        "request_tool_loop",
        _tool_description,
        patched(lambda b: b["tools"][1]["function"].update(description="Local time for a city (IANA zone).")),
    ),
    EditCase("remove all tools", "request_tool_loop", assign(tools=None), patched(lambda b: b.pop("tools"))),
    EditCase(
        "tool choice to auto",
        "request_tool_loop",
        assign(tool_choice="auto"),
        patched(lambda b: b.update(tool_choice="auto")),
    ),
    EditCase(
        "edit extra: drop one vendor key, change another",
        "request_vendor",
        _edit_extra,
        patched(lambda b: (b.pop("top_k"), b.update(repetition_penalty=1.3))),
    ),
    EditCase(
        "edit api_specific",
        "request_vendor",
        _drop_reasoning_effort,
        patched(lambda b: (b.pop("reasoning_effort"), b.update(seed=7))),
    ),
    EditCase(
        "edit a provider-native message",
        "request_vendor",
        update_message(2, _native_value),
        patched(lambda b: b["messages"][2].update(content='{"primes": [2, 3, 5, 7]}')),
    ),
    EditCase(
        "replace a provider-native message with a plain one",
        "request_vendor",
        set_message(2, {"role": "assistant", "content": "2, 3, 5"}),
        patched(lambda b: b["messages"].__setitem__(2, {"role": "assistant", "content": "2, 3, 5"})),
    ),
    EditCase(
        "first-class request options",
        "request_vendor",
        assign(user="u-9", metadata={"trace": "t-78"}, store=True, service_tier=None),
        patched(lambda b: (b.update(user="u-9", metadata={"trace": "t-78"}, store=True), b.pop("service_tier"))),
    ),
    EditCase(
        "reorder messages keeps each original",
        "request_multimodal",
        change_messages(lambda ms: [ms[0], ms[3], ms[2], ms[1]]),
        patched(lambda b: b.update(messages=[b["messages"][i] for i in (0, 3, 2, 1)])),
    ),
]


@pytest.mark.parametrize("case", EDIT_CASES, ids=lambda case: case.name)
def test_edit_patches_only_what_changed(case: EditCase) -> None:
    body = load(case.fixture)["request"]
    assert roundtrip(body, case.edit) == case.expected(body)
    assert body == load(case.fixture)["request"]  # the caller's body is never touched


ENCODE_ERRORS = [
    EncodeErrorCase(
        "two in-place edits cannot be lined up",
        "request_text",
        change_messages(lambda ms: [{**ms[0], "content": "A"}, {**ms[1], "content": "B"}]),
        "cannot safely preserve provider fields for multiple edited array items without stable identities",
    ),
    EncodeErrorCase(
        "another provider's native message",
        "request_text",
        change_messages(
            lambda ms: [
                *ms,
                {"role": "provider_native", "provider": "anthropic_messages", "kind": "x", "value": {"a": 1}},
            ]
        ),
        'message ProviderNative { provider: "anthropic_messages", kind: "x", value: Object {"a": Number(1)} } '
        "cannot be encoded for OpenAI Chat",
    ),
    EncodeErrorCase(
        "a Responses tool-call item",
        "request_text",
        change_messages(lambda ms: [*ms, {"role": "tool_call", "call_id": "c1", "name": "f", "arguments": "{}"}]),
        'message ToolCallItem { id: None, call_id: "c1", name: "f", arguments: String("{}"), extra: {} } '
        "cannot be encoded for OpenAI Chat",
    ),
    EncodeErrorCase(
        "an image part from another API",
        "request_text",
        change_messages(lambda ms: [*ms, {"role": "user", "content": [{"type": "image", "image": {"url": "u"}}]}]),
        'content part Image { image: Object {"url": String("u")}, extra: {} } cannot be encoded for OpenAI Chat',
    ),
    EncodeErrorCase(
        "another API's provider-native tool",
        "request_text",
        assign(
            tools=[
                {
                    "type": "provider_native",
                    "provider": "openai_responses",
                    "kind": "web_search",
                    "value": {"type": "web_search"},
                }
            ]
        ),
        'tool ProviderNative { provider: "openai_responses", kind: "web_search", value: Object {"type": '
        'String("web_search")} } cannot be encoded for OpenAI Chat',
    ),
    EncodeErrorCase(
        "another API's tool choice",
        "request_text",
        assign(tool_choice={"kind": "tool_choice", "provider": "openai_responses", "value": "auto"}),
        "tool choice for openai_responses cannot be encoded for OpenAI Chat",
    ),
    EncodeErrorCase(
        "api_specific of another API",
        "request_text",
        assign(api_specific={"api": "openai_responses"}),
        "api_specific provider does not match OpenAI Chat",
    ),
    EncodeErrorCase(
        "a Responses-only field",
        "request_text",
        assign(instructions="Be brief."),
        "request contains fields that cannot be encoded for OpenAI Chat",
    ),
]


@pytest.mark.parametrize("case", ENCODE_ERRORS, ids=lambda case: case.name)
def test_encode_refuses_what_it_cannot_write(case: EncodeErrorCase) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        roundtrip(load(case.fixture)["request"], case.edit)
    assert str(caught.value) == f"invalid argument: {case.message}"


def test_encode_keeps_matching_provider_native_components() -> None:
    native = {"role": "assistant", "content": "hi", "audio": {"id": "audio_1"}}
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    appended = {"role": "provider_native", "provider": "openai_chat", "kind": "assistant", "value": native}
    assert roundtrip(body, change_messages(lambda ms: [*ms, appended]))["messages"][-1] == native


def test_no_edit_round_trip_keeps_nulls_and_unusual_shapes() -> None:
    body = {
        "messages": [
            {"role": "function", "name": "f"},
            {"role": "assistant", "content": None, "tool_calls": None, "name": None},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u", "detail": None}}]},
        ],
        "tools": [
            {"type": "function", "function": {"name": "a", "parameters": None, "description": None}},
            {"type": "function", "function": {"name": "b", "parameters": None, "strict": None}},
        ],
        "function_call": None,
        "model": None,
        "stop": None,
        "tool_choice": None,
    }
    assert roundtrip(body) == body


# --- responses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names("response_"))
def test_response_decode_matches_reference(name: str) -> None:
    fixture = load(name)
    assert CODEC.decode_response_json(copy.deepcopy(fixture["response"])) == fixture["annotation"]
    assert CODEC.decode_response(fixture["response"])._to_json() == fixture["annotation"]


def test_response_usage_counts_cached_tokens_inside_prompt_tokens() -> None:
    decoded = CODEC.decode_response(load("response_text")["response"])
    assert decoded.usage == {
        "prompt_tokens": 1200,
        "completion_tokens": 9,
        "total_tokens": 1209,
        "cache_read_tokens": 1024,
    }
    assert decoded.response_text() == "Paris is the capital of France."
    assert decoded.api_specific == {
        "api": "openai_chat",
        "service_tier": "default",
        "system_fingerprint": "fp_44709d6fcb",
    }
    assert decoded.extra == {"object": "chat.completion", "created": 1731000000}


def test_response_tool_calls_parse_arguments_when_json() -> None:
    decoded = CODEC.decode_response(load("response_tool_calls")["response"])
    assert decoded.finish_reason == "tool_use"
    assert decoded.tool_calls == [
        {"id": "call_t1", "name": "get_time", "arguments": {"city": "Paris"}},
        {"id": "call_t2", "name": "get_time", "arguments": "Tokyo"},
    ]
    assert decoded.message is None


def test_response_reported_costs() -> None:
    filtered = CODEC.decode_response(load("response_content_filter")["response"])
    assert filtered.finish_reason == "content_filter"
    assert filtered.usage is not None
    assert filtered.usage["cost"] == {
        "total": 0.000125,
        "currency": "USD",
        "input": 0.000125,
        "output": 0.0,
        "source": "provider_reported",
    }
    vendor = CODEC.decode_response(load("response_vendor")["response"])
    assert vendor.usage is not None
    assert vendor.usage["cost"] == {"total": 0.0000128, "currency": "USD", "source": "provider_reported"}


@pytest.mark.parametrize(
    ("raw", "normalised", "json_form"),
    [
        ("stop", "complete", "complete"),
        ("length", "length", "length"),
        ("tool_calls", "tool_use", "tool_use"),
        ("function_call", "tool_use", "tool_use"),
        ("content_filter", "content_filter", "content_filter"),
        ("eos", "eos", {"unknown": "eos"}),
    ],
)
def test_finish_reasons_normalise(raw: str, normalised: str, json_form: Any) -> None:
    response = {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": raw}]}
    assert CODEC.decode_response_json(response)["finish_reason"] == json_form
    assert CODEC.decode_response(response).finish_reason == normalised


def test_response_without_choices_or_usage() -> None:
    assert CODEC.decode_response_json({"id": "x", "choices": []}) == {"id": "x", "api_specific": {"api": "openai_chat"}}
    assert "usage" not in CODEC.decode_response_json({"usage": None})


MALFORMED_RESPONSES = [
    ([], "invalid type: sequence, expected struct RawChatCompletion"),
    ({"id": 5}, "invalid type: integer `5`, expected a string"),
    ({"choices": "x"}, 'invalid type: string "x", expected a sequence'),
    ({"choices": [{"message": {"content": [1]}}]}, "invalid type: sequence, expected a string"),
    ({"usage": {"prompt_tokens": -1}}, "invalid value: integer `-1`, expected u64"),
    ({"usage": {"prompt_tokens": 1.5}}, "invalid type: floating point `1.5`, expected u64"),
    ({"usage": {"cost": "cheap"}}, "data did not match any variant of untagged enum RawChatUsageCost"),
]


@pytest.mark.parametrize(("response", "message"), MALFORMED_RESPONSES)
def test_malformed_responses(response: Any, message: str) -> None:
    with pytest.raises(InternalError) as caught:
        CODEC.decode_response(response)
    assert str(caught.value) == f"internal error: OpenAI Chat response decode: {message}"


# --- streaming ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names("stream_"))
def test_stream_aggregation_equals_the_non_streamed_response(name: str) -> None:
    fixture = load(name)
    aggregator = CODEC.stream_aggregator()
    for chunk in fixture["chunks"]:
        aggregator.add(copy.deepcopy(chunk))
    result = aggregator.result()
    assert result == fixture["response"]
    assert CODEC.decode_response(result)._to_json() == fixture["annotation"]


def test_stream_aggregator_ignores_noise_and_starts_empty() -> None:
    aggregator = CODEC.stream_aggregator()
    assert aggregator.result() == {}
    aggregator.add("[DONE]")
    aggregator.add(None)
    aggregator.add({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}}]})
    assert aggregator.result()["choices"][0]["message"] == {"content": "a"}


def test_stream_aggregator_without_choice_indices() -> None:
    aggregator = CODEC.stream_aggregator()
    for fragment in ("He", "llo"):
        aggregator.add({"choices": [{"delta": {"content": fragment}}]})
    aggregator.add(
        {"choices": [{"delta": {"tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]}}]}
    )
    message = aggregator.result()["choices"][0]["message"]
    assert message["content"] == "Hello"
    assert message["tool_calls"] == [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]


# --- properties -----------------------------------------------------------------------------------------

KNOWN_ROLES = {
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
    "provider_native",
    "tool_call",
    "tool_result",
}
texts = st.text(max_size=12)
leaves = st.none() | st.booleans() | st.integers(-1000, 1000) | texts
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": texts}, optional={"cache_control": json_values}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries(
                {"url": texts}, optional={"detail": st.none() | texts, "x": json_values}
            ),
        },
        optional={"extra": json_values},
    ),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": json_values}),
    st.fixed_dictionaries({"type": st.just("file"), "file": json_values}),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": texts}),
    st.fixed_dictionaries({"type": st.sampled_from(["input_text", "image", "video"]), "data": json_values}),
)
contents = texts | st.lists(parts, max_size=3)
tool_calls = st.fixed_dictionaries(
    {"id": texts, "type": st.just("function"), "function": st.fixed_dictionaries({"name": texts, "arguments": texts})}
)
messages = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user"]), "content": contents},
        optional={"name": st.none() | texts},
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant")},
        optional={
            "content": st.none() | contents,
            "tool_calls": st.none() | st.lists(tool_calls, max_size=2),
            "name": st.none() | texts,
            "refusal": st.none() | texts,
        },
    ),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": texts, "content": contents}),
    st.fixed_dictionaries({"role": st.just("function"), "name": texts}, optional={"content": st.none() | texts}),
    st.fixed_dictionaries({"role": texts.filter(lambda role: role not in KNOWN_ROLES), "content": json_values}),
)
tools = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": texts},
                optional={
                    "description": st.none() | texts,
                    "parameters": json_values,
                    "strict": st.none() | st.booleans(),
                    "x": json_values,
                },
            ),
        },
        optional={"y": json_values},
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["custom", "web_search"]), "config": json_values}),
)
requests = st.fixed_dictionaries(
    {"messages": st.lists(messages, max_size=5)},
    optional={
        "model": st.none() | texts,
        "temperature": st.none() | st.integers(0, 2) | st.floats(0, 2),
        "top_p": st.none() | st.floats(0, 1),
        "stop": st.none() | texts | st.lists(texts, max_size=3),
        "max_tokens": st.none() | st.integers(0, 10**6),
        "max_completion_tokens": st.none() | st.integers(0, 10**6),
        "tools": st.lists(tools, max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required"]) | json_values,
        "user": st.none() | texts,
        "metadata": st.none() | st.dictionaries(texts, texts, max_size=2),
        "stream": st.none() | st.booleans(),
        "seed": st.none() | st.integers(-(2**40), 2**40),
        "response_format": st.none() | st.dictionaries(texts, json_values, max_size=2),
        "function_call": json_values,
        "x_vendor": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_property_no_edit_round_trip(body: Body) -> None:
    assert roundtrip(body) == body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, st.data())
def test_property_one_text_edit_touches_one_message(body: Body, data: st.DataObject) -> None:
    editable = [i for i, m in enumerate(body["messages"]) if m["role"] == "user" and isinstance(m["content"], str)]
    if not editable:
        return
    index = data.draw(st.sampled_from(editable))
    result = roundtrip(body, update_message(index, lambda m: m.update(content=m["content"] + "!")))
    expected = copy.deepcopy(body)
    expected["messages"][index]["content"] += "!"
    assert result == expected


@settings(max_examples=150, deadline=None)
@given(texts, st.lists(st.integers(1, 5), max_size=6), st.lists(st.tuples(texts, texts), max_size=3))
def test_property_stream_fragments_fold_back(text: str, cuts: list[int], calls: list[tuple[str, str]]) -> None:
    fragments, rest = [], text
    for cut in cuts:
        fragments.append(rest[:cut])
        rest = rest[cut:]
    fragments.append(rest)
    aggregator = CODEC.stream_aggregator()
    aggregator.add({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    for fragment in fragments:
        aggregator.add({"id": "c", "choices": [{"index": 0, "delta": {"content": fragment}}]})
    for i, (name, arguments) in enumerate(calls):
        head = {
            "index": i,
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": arguments[:2]},
        }
        aggregator.add({"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]})
        tail = {"index": i, "function": {"arguments": arguments[2:]}}
        aggregator.add({"choices": [{"index": 0, "delta": {"tool_calls": [tail]}}]})
    aggregator.add({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    message: Body = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(calls)
        ]
    complete = {"id": "c", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    assert CODEC.decode_response_json(aggregator.result()) == CODEC.decode_response_json(complete)
