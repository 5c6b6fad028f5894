"""OpenAI Responses codec: decode, patch-encode, response decode and stream aggregation.

Fixtures under ``fixtures/openai_responses`` hold realistic payloads (one is a real Codex CLI request)
together with the annotation the reference implementation produces; the edit and error tables below
were checked against the reference as well.
"""

from __future__ import annotations

import copy
import functools
import json
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
from nemo_relay._core.codecs.openai_responses import OpenAIResponsesCodec
from nemo_relay._core.errors import InternalError, InvalidArgumentError

FIXTURES = Fixtures("openai_responses")
CODEC = OpenAIResponsesCodec()

load, names = FIXTURES.load, FIXTURES.names
roundtrip = functools.partial(codec_roundtrip, CODEC, {"openai-beta": "responses=v1"})


# --- decode -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names("request_"))
def test_decode_matches_reference_annotation(name: str) -> None:
    fixture = load(name)
    assert CODEC.decode_json(copy.deepcopy(fixture["request"]), {}) == fixture["annotation"]
    assert CODEC.decode(LLMRequest({}, fixture["request"]))._to_json() == fixture["annotation"]


@pytest.mark.parametrize("name", names("request_"))
def test_no_edit_round_trip_returns_the_original(name: str) -> None:
    body = load(name)["request"]
    request = LLMRequest({"openai-beta": "responses=v1"}, body)
    encoded = encode_unedited(CODEC, request)
    assert encoded.content == body
    assert encoded.headers == {"openai-beta": "responses=v1"}


def test_string_input_is_one_user_message() -> None:
    annotation = load("request_string_input")["annotation"]
    assert annotation["messages"] == [{"role": "user", "content": "Name three moons of Jupiter."}]
    assert annotation["instructions"] == "Answer briefly."
    # The output limit shows up both as the generic parameter and as its own field.
    assert annotation["params"] == {"temperature": 0.7, "max_tokens": 200}
    assert annotation["max_output_tokens"] == 200


def test_decode_maps_every_item_kind() -> None:
    messages = load("request_items")["annotation"]["messages"]
    developer, user, reasoning, call, output, assistant, reference, last = messages
    assert developer == {"role": "developer", "content": [{"type": "text", "text": "Cite sources."}]}
    text, image, file, audio = user["content"]
    assert text == {"type": "text", "text": "Summarise the attached report and chart."}
    assert image == {"type": "image", "image": {"image_url": "https://example.com/chart.png", "detail": "low"}}
    assert file == {"type": "file", "file": {"file_id": "file-report-1", "filename": "report.pdf"}}
    assert audio["type"] == "provider_native" and audio["kind"] == "input_audio"
    assert reasoning["role"] == "provider_native" and reasoning["kind"] == "reasoning"
    assert call == {
        "role": "tool_call",
        "id": "fc_01",
        "call_id": "call_read",
        "name": "read_file",
        "arguments": {"path": "report.pdf", "pages": [1, 2]},  # parsed from the JSON string
        "status": "completed",  # unknown item fields ride along
    }
    assert output == {"role": "tool_result", "call_id": "call_read", "output": "Revenue grew 12% year over year."}
    assert assistant["role"] == "provider_native" and assistant["kind"] == "message"  # an id/status does not fit
    assert reference["kind"] == "item_reference"
    assert last == {"role": "user", "content": "Add one risk."}


def test_decode_request_options() -> None:
    annotation = load("request_items")["annotation"]
    assert annotation["tool_choice"] == {"type": "function", "function": {"name": "read_file"}}
    assert annotation["tools"][0]["function"]["name"] == "read_file"
    assert annotation["tools"][1]["type"] == "provider_native"
    assert annotation["tools"][2] == {
        "type": "function",
        "function": {"name": "legacy_lookup", "parameters": {"type": "object"}},
    }
    for key, value in {
        "store": True,
        "previous_response_id": "resp_prev_01",
        "truncation": "auto",
        "include": ["reasoning.encrypted_content", "web_search_call.action.sources"],
        "user": "analyst-7",
        "metadata": {"ticket": "T-9"},
        "service_tier": "priority",
        "parallel_tool_calls": False,
        "max_tool_calls": 5,
        "top_logprobs": 0,
        "stream": True,
        "reasoning": {"effort": "high", "summary": "detailed"},
    }.items():
        assert annotation[key] == value, key
    assert annotation["api_specific"] == {
        "api": "openai_responses",
        "background": False,
        "conversation": {"id": "conv_77"},
        "prompt_cache_key": "research-v2",
        "safety_identifier": "sid-7",
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
    }
    assert annotation["x_gateway_route"] == "eu" and annotation["service_hint"] is None


def test_decode_keeps_untyped_nulls() -> None:
    annotation = CODEC.decode_json({"input": "x", "truncation": None, "conversation": None, "store": None}, {})
    assert annotation["truncation"] is None and "store" not in annotation
    assert annotation["api_specific"] == {"api": "openai_responses", "conversation": None}


MALFORMED_REQUESTS = [
    ({"model": "gpt-5"}, "OpenAI Responses request is missing input"),
    ({"input": 5}, "OpenAI Responses input must be a string or an array"),
    ({"input": ["hi"]}, "OpenAI Responses input item must be an object"),
    ({"input": [{"role": "user"}]}, "OpenAI Responses message is missing content"),
    ({"input": [{"role": "user", "content": None}]}, "OpenAI Responses message content must be a string or array"),
    ({"input": [{"role": "user", "content": ["x"]}]}, "OpenAI Responses content part must be an object"),
    ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "OpenAI Responses text part is missing text"),
    (
        {"input": [{"role": "assistant", "content": [{"type": "refusal"}]}]},
        "OpenAI Responses refusal part is missing refusal",
    ),
    (
        {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        "OpenAI Responses function_call is missing call_id",
    ),
    (
        {"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
        "OpenAI Responses function_call is missing name",
    ),
    (
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {"a": 1}}]},
        "OpenAI Responses function_call is missing arguments",
    ),
    (
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "id": 7}]},
        "OpenAI Responses function_call id must be a string or null",
    ),
    (
        {"input": [{"type": "function_call_output", "output": "x"}]},
        "OpenAI Responses function_call_output is missing call_id",
    ),
    (
        {"input": [{"type": "function_call_output", "call_id": "c"}]},
        "OpenAI Responses function_call_output is missing output",
    ),
    ({"input": "x", "instructions": ["be brief"]}, "OpenAI Responses instructions must be a string or null"),
    ({"input": "x", "model": 5}, "OpenAI Responses model must be a string or null"),
    ({"input": "x", "temperature": "warm"}, "OpenAI Responses temperature must be a number or null"),
    (
        {"input": "x", "max_output_tokens": -1},
        "OpenAI Responses max_output_tokens must be a non-negative integer or null",
    ),
    ({"input": "x", "include": "all"}, "OpenAI Responses include must be an array or null"),
    ({"input": "x", "reasoning": "high"}, "OpenAI Responses reasoning must be an object or null"),
    ({"input": "x", "metadata": []}, "OpenAI Responses metadata must be an object or null"),
    ({"input": "x", "background": "yes"}, "OpenAI Responses background must be a boolean or null"),
    ({"input": "x", "context_management": {}}, "OpenAI Responses context_management must be an array or null"),
    ({"input": "x", "text": "plain"}, "OpenAI Responses text must be an object or null"),
    ({"input": "x", "tools": None}, "OpenAI Responses tools must be an array"),
    ({"input": "x", "tools": ["web_search"]}, "OpenAI Responses tool must be an object"),
    ({"input": "x", "tools": [{"type": "function"}]}, "OpenAI Responses function tool is missing name"),
    (
        {"input": "x", "tools": [{"type": "function", "name": "f", "description": 1}]},
        "OpenAI Responses function tool description must be a string or null",
    ),
]


@pytest.mark.parametrize(("body", "message"), MALFORMED_REQUESTS)
def test_malformed_requests_name_the_field(body: Body, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        CODEC.decode(LLMRequest({}, body))
    assert str(caught.value) == f"invalid argument: {message}"
    assert isinstance(caught.value, RuntimeError)


# --- encode: edits patch the original -------------------------------------------------------------------


def _items(body: Body, *indices: int) -> list[Any]:
    return [body["input"][i] for i in indices]


def _edit_tool(index: int, **definition: Any) -> Callable[[Any], None]:
    def edit(annotated: Any) -> None:
        tools = annotated.tools
        tools[index]["function"].update(definition)
        annotated.tools = tools

    return edit


def _api(change: Callable[[dict[str, Any]], Any]) -> Callable[[Any], None]:
    def edit(annotated: Any) -> None:
        api = annotated.api_specific
        change(api)
        annotated.api_specific = api

    return edit


def _drop_extra(key: str) -> Callable[[Any], None]:
    def edit(annotated: Any) -> None:
        extra = annotated.extra
        del extra[key]
        annotated.extra = extra

    return edit


FOLLOW_UP = {"role": "user", "content": "Thanks, now say goodbye."}
FOLLOW_UP_ITEM = {"type": "message", "role": "user", "content": "Thanks, now say goodbye."}
NEW_CALL = {
    "role": "tool_call",
    "call_id": "call_x",
    "name": "exec_command",
    "arguments": {"cmd": "date", "timeout": 5},
}
NEW_CALL_ITEM = {
    "type": "function_call",
    "call_id": "call_x",
    "name": "exec_command",
    "arguments": '{"cmd":"date","timeout":5}',
}
NEW_RESULT = {"role": "tool_result", "call_id": "call_x", "output": "Mon Jan 1"}
NEW_RESULT_ITEM = {"type": "function_call_output", "call_id": "call_x", "output": "Mon Jan 1"}

EDIT_CASES = [
    EditCase(
        "a string input stays a string",
        "request_string_input",
        update_message(0, lambda m: m.update(content="Name four moons of Saturn.")),
        patched(lambda b: b.update(input="Name four moons of Saturn.")),
    ),
    EditCase(
        "a string input grows into items",
        "request_string_input",
        change_messages(lambda ms: [*ms, {"role": "assistant", "content": "Io."}]),
        patched(
            lambda b: b.update(
                input=[
                    {"type": "message", "role": "user", "content": "Name three moons of Jupiter."},
                    {"type": "message", "role": "assistant", "content": "Io."},
                ]
            )
        ),
    ),
    EditCase(
        "change instructions",
        "request_string_input",
        assign(instructions="Answer in French."),
        patched(lambda b: b.update(instructions="Answer in French.")),
    ),
    EditCase(
        "drop instructions", "request_string_input", assign(instructions=None), patched(lambda b: b.pop("instructions"))
    ),
    EditCase(
        "params.max_tokens writes max_output_tokens",
        "request_string_input",
        assign(params={"temperature": 0.2, "max_tokens": 50}),
        patched(lambda b: b.update(temperature=0.2, max_output_tokens=50)),
    ),
    EditCase(
        "max_output_tokens wins over params",
        "request_string_input",
        assign(max_output_tokens=99, params={"temperature": 0.7, "max_tokens": 10}),
        patched(lambda b: b.update(max_output_tokens=99)),
    ),
    EditCase(
        "clear params",
        "request_string_input",
        assign(params=None),
        patched(lambda b: (b.pop("temperature"), b.pop("max_output_tokens"))),
    ),
    EditCase(
        "redact the user's text in a Codex turn (an item with an id stays provider-native)",
        "request_codex_turn2",
        update_message(3, lambda m: m["value"]["content"][0].update(text="[redacted]")),
        patched(lambda b: b["input"][3]["content"][0].update(text="[redacted]")),
    ),
    EditCase(
        "append a user turn to a Codex turn",
        "request_codex_turn2",
        change_messages(lambda ms: [*ms, FOLLOW_UP]),
        patched(lambda b: b["input"].append(FOLLOW_UP_ITEM)),
    ),
    EditCase(
        "append a tool call and its result",
        "request_codex_turn2",
        change_messages(lambda ms: [*ms, NEW_CALL, NEW_RESULT]),
        patched(lambda b: b["input"].extend([NEW_CALL_ITEM, NEW_RESULT_ITEM])),
    ),
    EditCase(
        "drop a function call and its output",
        "request_codex_turn2",
        change_messages(lambda ms: ms[:4]),
        patched(lambda b: b.update(input=b["input"][:4])),
    ),
    EditCase(
        "rewrite function call arguments",
        "request_codex_turn2",
        update_message(4, lambda m: m.update(arguments={"cmd": "echo hi"})),
        patched(lambda b: b["input"][4].update(arguments='{"cmd":"echo hi"}')),
    ),
    EditCase(
        "rename a function call, keeping its argument formatting",
        "request_codex_turn2",
        update_message(4, lambda m: m.update(name="shell")),
        patched(lambda b: b["input"][4].update(name="shell")),
    ),
    EditCase(
        "edit a tool result",
        "request_items",
        update_message(4, lambda m: m.update(output="Revenue grew 13%.")),
        patched(lambda b: b["input"][4].update(output="Revenue grew 13%.")),
    ),
    EditCase(
        "change an image's detail",
        "request_items",
        update_message(1, lambda m: m["content"][1]["image"].update(detail="high")),
        patched(lambda b: b["input"][1]["content"][1].update(detail="high")),
    ),
    EditCase(
        "drop the reasoning item",
        "request_items",
        change_messages(lambda ms: ms[:2] + ms[3:]),
        patched(lambda b: b["input"].pop(2)),
    ),
    EditCase(
        "edit a provider-native reasoning item",
        "request_items",
        update_message(2, lambda m: m["value"].update(summary=[])),
        patched(lambda b: b["input"][2].update(summary=[])),
    ),
    EditCase(
        "edit a function tool description",
        "request_items",
        _edit_tool(0, description="Read pages of a file."),
        patched(lambda b: b["tools"][0].update(description="Read pages of a file.")),
    ),
    EditCase(
        "a nested (Chat-style) tool keeps its nesting",
        "request_items",
        _edit_tool(2, description="Old lookup."),
        patched(lambda b: b["tools"][2]["function"].update(description="Old lookup.")),
    ),
    EditCase(
        "add a tool",
        "request_string_input",
        assign(tools=[{"type": "function", "function": {"name": "moon_facts", "parameters": {"type": "object"}}}]),
        patched(
            lambda b: b.update(tools=[{"type": "function", "name": "moon_facts", "parameters": {"type": "object"}}])
        ),
    ),
    EditCase(
        "tool choice by name stays flat",
        "request_items",
        assign(tool_choice={"type": "function", "function": {"name": "legacy_lookup"}}),
        patched(lambda b: b["tool_choice"].update(name="legacy_lookup")),
    ),
    EditCase(
        "tool choice to required",
        "request_items",
        assign(tool_choice="required"),
        patched(lambda b: b.update(tool_choice="required")),
    ),
    EditCase(
        "first-class request options",
        "request_items",
        assign(store=False, previous_response_id=None, truncation="disabled", include=[], service_tier="default"),
        patched(
            lambda b: (
                b.update(store=False, truncation="disabled", include=[], service_tier="default"),
                b.pop("previous_response_id"),
            )
        ),
    ),
    EditCase(
        "more request options",
        "request_items",
        assign(
            reasoning={"effort": "low"}, parallel_tool_calls=True, max_tool_calls=None, top_logprobs=3, stream=False
        ),
        patched(
            lambda b: (
                b.update(reasoning={"effort": "low"}, parallel_tool_calls=True, top_logprobs=3, stream=False),
                b.pop("max_tool_calls"),
            )
        ),
    ),
    EditCase(
        "edit api_specific",
        "request_items",
        _api(lambda api: (api["text"].update(verbosity="low"), api.pop("prompt_cache_key"))),
        patched(lambda b: (b["text"].update(verbosity="low"), b.pop("prompt_cache_key"))),
    ),
    EditCase(
        "drop an unknown field",
        "request_items",
        _drop_extra("x_gateway_route"),
        patched(lambda b: b.pop("x_gateway_route")),
    ),
    EditCase(
        "change the model",
        "request_codex_turn2",
        assign(model="gpt-5-codex"),
        patched(lambda b: b.update(model="gpt-5-codex")),
    ),
]


@pytest.mark.parametrize("case", EDIT_CASES, ids=lambda case: case.name)
def test_edit_patches_only_what_changed(case: EditCase) -> None:
    body = load(case.fixture)["request"]
    assert roundtrip(body, case.edit) == case.expected(body)
    assert body == load(case.fixture)["request"]


def _append(message: Any) -> Callable[[Any], None]:
    return change_messages(lambda ms: [*ms, message])


ENCODE_ERRORS = [
    EncodeErrorCase(
        "stop sequences",
        "request_string_input",
        assign(params={"stop": ["END"]}),
        "OpenAI Responses does not support stop sequences",
    ),
    EncodeErrorCase(
        "instructions as parts",
        "request_string_input",
        assign(instructions=[{"type": "text", "text": "Be brief."}]),
        "OpenAI Responses instructions cannot contain content parts",
    ),
    EncodeErrorCase(
        "a Chat tool message",
        "request_codex_turn2",
        _append({"role": "tool", "tool_call_id": "c1", "content": "ok"}),
        'message Tool { content: Text("ok"), tool_call_id: "c1" } cannot be encoded for OpenAI Responses',
    ),
    EncodeErrorCase(
        "an assistant turn with only tool_calls",
        "request_codex_turn2",
        _append(
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        ),
        'message Assistant { content: None, tool_calls: Some([ToolCall { id: "c1", call_type: "function", '
        'function: FunctionCall { name: "f", arguments: "{}" } }]), name: None } '
        "cannot be encoded for OpenAI Responses",
    ),
    EncodeErrorCase(
        "a refusal outside an assistant turn",
        "request_codex_turn2",
        _append({"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}),
        'content part Refusal { refusal: "no", extra: {} } cannot be encoded for OpenAI Responses',
    ),
    EncodeErrorCase(
        "an audio part",
        "request_codex_turn2",
        _append({"role": "user", "content": [{"type": "audio", "audio": {"data": "AAAA", "format": "wav"}}]}),
        'content part Audio { audio: Object {"data": String("AAAA"), "format": String("wav")}, extra: {} } '
        "cannot be encoded for OpenAI Responses",
    ),
    EncodeErrorCase(
        "an image that is not an object",
        "request_codex_turn2",
        _append({"role": "user", "content": [{"type": "image", "image": "https://example.com/x.png"}]}),
        "OpenAI Responses image content must be an object",
    ),
    EncodeErrorCase(
        "a Chat provider-native message",
        "request_codex_turn2",
        _append(
            {"role": "provider_native", "provider": "openai_chat", "kind": "assistant", "value": {"role": "assistant"}}
        ),
        'message ProviderNative { provider: "openai_chat", kind: "assistant", '
        'value: Object {"role": String("assistant")} } cannot be encoded for OpenAI Responses',
    ),
    EncodeErrorCase(
        "a Chat provider-native tool",
        "request_string_input",
        assign(
            tools=[
                {"type": "provider_native", "provider": "openai_chat", "kind": "custom", "value": {"type": "custom"}}
            ]
        ),
        'tool ProviderNative { provider: "openai_chat", kind: "custom", value: Object {"type": String("custom")} } '
        "cannot be encoded for OpenAI Responses",
    ),
    EncodeErrorCase(
        "a Chat tool choice",
        "request_string_input",
        assign(tool_choice={"kind": "tool_choice", "provider": "openai_chat", "value": "auto"}),
        "tool choice for openai_chat cannot be encoded for OpenAI Responses",
    ),
    EncodeErrorCase(
        "api_specific of another API",
        "request_string_input",
        assign(api_specific={"api": "openai_chat"}),
        "api_specific provider does not match OpenAI Responses",
    ),
]


@pytest.mark.parametrize("case", ENCODE_ERRORS, ids=lambda case: case.name)
def test_encode_refuses_what_it_cannot_write(case: EncodeErrorCase) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        roundtrip(load(case.fixture)["request"], case.edit)
    assert str(caught.value) == f"invalid argument: {case.message}"


def test_two_in_place_edits_are_refused() -> None:
    def edit(annotated: Any) -> None:
        messages = annotated.messages
        messages[2]["value"]["content"][0]["text"] = "a"
        messages[3]["value"]["content"][0]["text"] = "b"
        annotated.messages = messages

    with pytest.raises(InvalidArgumentError, match="multiple edited array items without stable identities"):
        roundtrip(load("request_codex_turn2")["request"], edit)


def test_matching_provider_native_items_encode_back() -> None:
    reasoning = {"type": "reasoning", "id": "rs_9", "summary": [], "encrypted_content": "gAAA"}
    appended = {"role": "provider_native", "provider": "openai_responses", "kind": "reasoning", "value": reasoning}
    body = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]}
    assert roundtrip(body, _append(appended))["input"][-1] == reasoning


# --- responses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names("response_"))
def test_response_decode_matches_reference(name: str) -> None:
    fixture = load(name)
    assert CODEC.decode_response_json(copy.deepcopy(fixture["response"])) == fixture["annotation"]
    assert CODEC.decode_response(fixture["response"])._to_json() == fixture["annotation"]


def test_response_text_and_usage() -> None:
    decoded = CODEC.decode_response(load("response_text")["response"])
    assert decoded.response_text() == "Io, Europa and Ganymede."
    assert decoded.finish_reason == "complete"
    assert decoded.usage == {
        "prompt_tokens": 2100,
        "completion_tokens": 90,
        "total_tokens": 2190,
        "cache_read_tokens": 2048,
    }
    api = decoded.api_specific
    assert api is not None
    assert api["status"] == "completed" and api["input_tokens_details"] == {"cached_tokens": 2048}
    assert [item["type"] for item in api["output_items"]] == ["reasoning", "message"]
    assert decoded.extra["created_at"] == 1741476542


def test_response_function_call() -> None:
    decoded = CODEC.decode_response(load("response_function_call")["response"])
    assert decoded.tool_calls == [
        {"id": "call_read2", "name": "read_file", "arguments": {"path": "report.pdf", "pages": [3]}}
    ]
    assert decoded.finish_reason == "complete"  # Responses reports completion, not a tool-use stop
    assert decoded.message == "Let me read it."


@pytest.mark.parametrize(
    ("status", "details", "reason"),
    [
        ("completed", None, "complete"),
        ("incomplete", {"reason": "max_output_tokens"}, "length"),
        ("incomplete", {"reason": "content_filter"}, "content_filter"),
        ("incomplete", {"reason": "other"}, {"unknown": "other"}),
        ("incomplete", None, {"unknown": "incomplete"}),
        ("failed", None, {"unknown": "failed"}),
        ("in_progress", None, {"unknown": "in_progress"}),
    ],
)
def test_finish_reason_from_status(status: str, details: Any, reason: Any) -> None:
    response = {"status": status, "incomplete_details": details, "output": []}
    assert CODEC.decode_response_json(response)["finish_reason"] == reason


def test_message_joins_output_texts_and_falls_back_to_output_text() -> None:
    two = {"type": "message", "content": [{"type": "output_text", "text": "a"}, {"type": "output_text", "text": "b"}]}
    assert CODEC.decode_response_json({"output": [two, two]})["message"] == "a\nb\na\nb"
    assert CODEC.decode_response_json({"output": [], "output_text": "sdk text"})["message"] == "sdk text"


MALFORMED_RESPONSES = [
    ([], "invalid type: sequence, expected struct RawResponsesResponse"),
    ({"usage": "x"}, 'invalid type: string "x", expected struct RawResponsesUsage'),
    ({"usage": {"input_tokens": -1}}, "invalid value: integer `-1`, expected u64"),
    ({"usage": {"cost": 0.5}}, "invalid type: floating point `0.5`, expected struct RawUsageCost"),
    ({"output": 5}, "invalid type: integer `5`, expected a sequence"),
    ({"store": "x"}, 'invalid type: string "x", expected a boolean'),
    ({"usage": {"input_tokens_details": []}}, "invalid type: sequence, expected struct RawInputTokensDetails"),
]


@pytest.mark.parametrize(("response", "message"), MALFORMED_RESPONSES)
def test_malformed_responses(response: Any, message: str) -> None:
    with pytest.raises(InternalError) as caught:
        CODEC.decode_response(response)
    assert str(caught.value) == f"internal error: OpenAI Responses response decode: {message}"


# --- streaming ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names("stream_"))
def test_stream_aggregation_equals_the_non_streamed_response(name: str) -> None:
    fixture = load(name)
    aggregator = CODEC.stream_aggregator()
    for event in fixture["chunks"]:
        aggregator.add(copy.deepcopy(event))
    result = aggregator.result()
    assert result == fixture["response"]
    assert CODEC.decode_response(result)._to_json() == fixture["annotation"]


def test_stream_cut_before_completion_keeps_what_was_produced() -> None:
    events = load("stream_function_call")["chunks"][:-1]  # no response.completed
    aggregator = CODEC.stream_aggregator()
    for event in events:
        aggregator.add(event)
    result = aggregator.result()
    assert result["status"] == "in_progress"
    decoded = CODEC.decode_response_json(result)
    assert decoded["message"] == "Let me read it."
    assert decoded["tool_calls"] == [
        {"id": "call_read2", "name": "read_file", "arguments": {"path": "report.pdf", "pages": [3]}}
    ]


def test_stream_assembles_items_from_deltas_alone() -> None:
    aggregator = CODEC.stream_aggregator()
    aggregator.add({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hel"})
    aggregator.add({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "lo"})
    aggregator.add({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"a":'})
    aggregator.add({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "1}"})
    assert aggregator.result() == {
        "output": [{"content": [{"type": "output_text", "text": "Hello"}]}, {"arguments": '{"a":1}'}],
    }


def test_stream_ignores_noise_and_events_after_completion() -> None:
    fixture = load("stream_text")
    aggregator = CODEC.stream_aggregator()
    assert aggregator.result() == {}
    for event in [*fixture["chunks"], "[DONE]", None, {"type": "response.created", "response": {"id": "late"}}]:
        aggregator.add(event)
    assert aggregator.result() == fixture["response"]


def test_stream_accepts_a_whole_response_object() -> None:
    response = load("response_text")["response"]
    aggregator = CODEC.stream_aggregator()
    aggregator.add(response)
    assert aggregator.result() == response


# --- properties -----------------------------------------------------------------------------------------

texts = st.text(max_size=12)
leaves = st.none() | st.booleans() | st.integers(-1000, 1000) | texts
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
parts = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_text", "output_text"]), "text": texts}, optional={"annotations": json_values}
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_image")}, optional={"image_url": texts, "detail": texts, "file_id": texts}
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_file")}, optional={"file_id": texts, "file_data": texts, "filename": texts}
    ),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": texts}),
    st.fixed_dictionaries({"type": st.sampled_from(["input_audio", "text", "summary_text"]), "data": json_values}),
)
arguments = texts | st.dictionaries(texts, leaves, max_size=3).map(lambda value: json.dumps(value))
items = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system", "developer"]),
            "content": texts | st.lists(parts, max_size=3),
        },
        optional={"type": st.just("message"), "id": texts, "status": texts},
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call"), "call_id": texts, "name": texts, "arguments": arguments},
        optional={"id": st.none() | texts, "status": texts},
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call_output"), "call_id": texts, "output": json_values},
        optional={"id": st.none() | texts, "status": texts},
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["reasoning", "item_reference", "web_search_call"]),
            "id": texts,
            "payload": json_values,
        }
    ),
)
tools = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("function"), "name": texts},
        optional={
            "description": st.none() | texts,
            "parameters": json_values,
            "strict": st.none() | st.booleans(),
            "x": json_values,
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries({"name": texts}, optional={"parameters": json_values}),
        }
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["web_search", "file_search", "mcp"]), "config": json_values}),
)
requests = st.fixed_dictionaries(
    {"input": texts | st.lists(items, max_size=5)},
    optional={
        "model": st.none() | texts,
        "instructions": st.none() | texts,
        "temperature": st.none() | st.floats(0, 2),
        "max_output_tokens": st.none() | st.integers(0, 10**6),
        "tools": st.lists(tools, max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required"]) | json_values,
        "store": st.none() | st.booleans(),
        "truncation": json_values,
        "include": st.none() | st.lists(texts, max_size=2),
        "reasoning": st.none() | st.dictionaries(texts, json_values, max_size=2),
        "text": st.none() | st.dictionaries(texts, json_values, max_size=2),
        "conversation": json_values,
        "x_vendor": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_property_no_edit_round_trip(body: Body) -> None:
    assert roundtrip(body) == body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, texts)
def test_property_appending_a_message_keeps_every_original_item(body: Body, text: str) -> None:
    result = roundtrip(body, _append({"role": "user", "content": text}))
    original = body["input"]
    if isinstance(original, str):
        assert result["input"][0] == {"type": "message", "role": "user", "content": original}
        original = result["input"][:1]
    assert result["input"] == [*original, {"type": "message", "role": "user", "content": text}]
    assert {k: v for k, v in result.items() if k != "input"} == {k: v for k, v in body.items() if k != "input"}
