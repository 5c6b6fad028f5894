"""GeminiGenerateContentCodec: decode, patch-encode, response decoding and stream aggregation.

Expected values (annotations, encoded payloads, error texts) were recorded from the reference
implementation (nemo-relay 0.8.4); the fixtures under ``fixtures/gemini`` carry them.
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
from nemo_relay.codecs import GeminiGenerateContentCodec, LlmCodec, LlmResponseCodec

FIXTURES = Fixtures("gemini")
CODEC = GeminiGenerateContentCodec()
_load, _names = FIXTURES.load, FIXTURES.names
_decode = functools.partial(decode, CODEC)
_encode_edit = functools.partial(encode_edit, CODEC)


def _contents(*items: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"contents": [{"role": role, "parts": parts} for role, parts in items]}


THOUGHT = {"text": "pondering", "thought": True}


def _not_representable(field: str) -> str:
    return (
        f"Gemini encoder: field '{field}' is not representable in the Gemini generateContent API; "
        "use a provider-native extra field instead"
    )


# --- identity ------------------------------------------------------------------------------------------------


def test_codec_identity_and_protocols() -> None:
    assert isinstance(CODEC, LlmCodec)
    assert isinstance(CODEC, LlmResponseCodec)
    assert CODEC._relay_builtin_id == "gemini_generate_content"
    # Gemini provider-native components are tagged "gemini" (the api tag is "gemini_generate_content").
    assert CODEC.provider == "gemini"
    assert repr(CODEC) == "GeminiGenerateContentCodec()"


# --- request fixtures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("request_"))
def test_fixture_decodes_to_reference_annotation(name: str) -> None:
    fixture = _load(name)
    assert _decode(fixture["request"])._to_json() == fixture["annotation"]


@pytest.mark.parametrize("name", _names("request_"))
def test_fixture_round_trip_is_identity(name: str) -> None:
    fixture = _load(name)
    original = LLMRequest({"x-goog-api-client": "t"}, fixture["request"])
    encoded = encode_unedited(CODEC, original)
    assert json.dumps(encoded.content) == json.dumps(fixture["request"])
    assert encoded.headers == {"x-goog-api-client": "t"}


@pytest.mark.parametrize(("name", "edit"), FIXTURES.edit_cases())
def test_fixture_edit_produces_reference_payload(name: str, edit: dict[str, Any]) -> None:
    check_recorded_edit(CODEC, _load(name)["request"], edit)


# --- decode details ------------------------------------------------------------------------------------------


def test_function_calls_and_responses_become_tool_calls_and_tool_messages() -> None:
    body = _contents(
        ("model", [{"text": "Checking."}, {"functionCall": {"name": "f", "args": {"b": 1, "a": {"d": 1, "c": 2}}}}]),
        ("user", [{"functionResponse": {"id": "call_1", "name": "f", "response": {"ok": True}}}]),
    )
    assert _decode(body).messages == [
        {
            "role": "assistant",
            "content": "Checking.",
            # arguments are compact JSON with sorted keys; a missing id falls back to the name
            "tool_calls": [
                {"id": "f", "type": "function", "function": {"name": "f", "arguments": '{"a":{"c":2,"d":1},"b":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"ok":true}'},
    ]


def test_hidden_and_native_parts() -> None:
    body = _contents(
        ("model", [THOUGHT, {"inlineData": {"mimeType": "image/png", "data": "AA"}}, {"videoMetadata": {}}])
    )
    assert _decode(body).messages == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "provider_native",
                    "provider": "gemini",
                    "kind": "inlineData",
                    "value": {"inlineData": {"mimeType": "image/png", "data": "AA"}},
                },
                {"type": "provider_native", "provider": "gemini", "kind": "unknown", "value": {"videoMetadata": {}}},
            ],
        }
    ]


def test_snake_case_keys_are_not_gemini_fields() -> None:
    # The reference reads the camelCase REST form only; snake_case keys stay unknown (extra).
    annotated = _decode(
        {"contents": [], "system_instruction": {"parts": [{"text": "s"}]}, "generation_config": {"temperature": 1}}
    )
    assert annotated.messages == []
    assert annotated.params is None
    assert annotated.extra == {
        "system_instruction": {"parts": [{"text": "s"}]},
        "generation_config": {"temperature": 1},
    }


def test_tools_flatten_declarations_and_keep_other_keys_native() -> None:
    body = {
        "contents": [],
        "tools": [
            {"functionDeclarations": [{"name": "f", "behavior": "BLOCKING"}], "googleSearch": {}},
            {"codeExecution": {}, "urlContext": {}},
        ],
    }
    assert _decode(body).tools == [
        {"type": "function", "function": {"name": "f", "behavior": "BLOCKING"}},
        {"type": "provider_native", "provider": "gemini", "kind": "googleSearch", "value": {"googleSearch": {}}},
        {
            "type": "provider_native",
            "provider": "gemini",
            "kind": "codeExecution",
            "value": {"codeExecution": {}, "urlContext": {}},
        },
    ]


# --- encode details ------------------------------------------------------------------------------------------


def test_text_edit_lands_on_the_first_text_part_and_keeps_signatures() -> None:
    body = _contents(
        (
            "model",
            [THOUGHT, {"text": "a", "thoughtSignature": "s1"}, {"text": "b", "thoughtSignature": "s2"}, {"text": "c"}],
        )
    )
    out = _encode_edit(body, messages=[{"role": "assistant", "content": "X"}])
    assert out["contents"] == [
        {
            "role": "model",
            "parts": [THOUGHT, {"text": "X", "thoughtSignature": "s1"}, {"text": "b", "thoughtSignature": "s2"}],
        }
    ]


def test_part_list_edit_replaces_visible_parts_in_place() -> None:
    body = _contents(("model", [THOUGHT, {"text": "a", "thoughtSignature": "s1"}]))
    parts = [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]
    out = _encode_edit(body, messages=[{"role": "assistant", "content": parts}])
    assert out["contents"] == [{"role": "model", "parts": [THOUGHT, {"text": "x"}, {"text": "y"}]}]


def test_call_argument_edit_keeps_the_call_signature() -> None:
    body = _contents(
        ("user", [{"text": "q"}]),
        ("model", [{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "sig"}]),
    )
    annotated = _decode(body)
    messages = annotated.messages
    messages[1]["tool_calls"][0]["function"]["arguments"] = '{"a":2}'
    annotated.messages = messages
    out = CODEC.encode(annotated, LLMRequest({}, body)).content
    assert out["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "f", "args": {"a": 2}}, "thoughtSignature": "sig"}],
    }


def test_new_conversation_turns_are_built_fresh() -> None:
    out = _encode_edit(
        _contents(("user", [{"text": "q"}])),
        messages=[
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": "x",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "plain text"},
            {"role": "tool", "tool_call_id": "c2", "content": '{"ok":1}'},
        ],
    )
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": [{"text": "x"}, {"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"id": "c1", "name": "f", "response": {"output": "plain text"}}}],
        },
        {"role": "user", "parts": [{"functionResponse": {"id": "c2", "name": "c2", "response": {"ok": 1}}}]},
    ]


def test_system_instruction_edits() -> None:
    body = {
        "systemInstruction": {"role": "system", "parts": [{"text": "a", "x": 1}]},
        **_contents(("user", [{"text": "q"}])),
    }
    edited = _encode_edit(body, messages=[{"role": "system", "content": "Z"}, {"role": "user", "content": "q"}])
    assert edited["systemInstruction"] == {"role": "system", "parts": [{"text": "Z", "x": 1}]}
    assert "systemInstruction" not in _encode_edit(body, messages=[{"role": "user", "content": "q"}])
    assert "systemInstruction" not in _encode_edit(
        body, messages=[{"role": "system", "content": ""}, {"role": "user", "content": "q"}]
    )
    multi = {"systemInstruction": {"parts": [{"text": "a"}, {"text": "b"}]}, **_contents(("user", [{"text": "q"}]))}
    with pytest.raises(
        RuntimeError, match="systemInstruction with multiple text parts or non-text parts cannot be edited"
    ):
        _encode_edit(multi, messages=[{"role": "system", "content": "Z"}, {"role": "user", "content": "q"}])


def test_params_patch_generation_config_and_keep_other_keys() -> None:
    body = {**_contents(("user", [{"text": "q"}])), "generationConfig": {"temperature": 0.5, "topK": 3}}
    assert _encode_edit(body, params={"temperature": 1, "top_p": 0.5, "max_tokens": 9, "stop": ["END"]})[
        "generationConfig"
    ] == {
        "temperature": 1.0,
        "topK": 3,
        "topP": 0.5,
        "maxOutputTokens": 9,
        "stopSequences": ["END"],
    }
    assert _encode_edit({**body, "generationConfig": {"temperature": 0.5}}, params=None) == _contents(
        ("user", [{"text": "q"}])
    )


def test_foreign_provider_native_part_errors_before_the_provider_call() -> None:
    import asyncio

    from nemo_relay import intercepts, llm
    from nemo_relay._core.values import LLMRequestInterceptOutcome

    called: list[Any] = []

    async def provider(request: LLMRequest) -> Any:
        called.append(request)
        return {}

    def intercept(name: str, request: LLMRequest, annotated: AnnotatedLLMRequest) -> LLMRequestInterceptOutcome:
        part = {
            "type": "provider_native",
            "provider": "anthropic_messages",
            "kind": "thinking",
            "value": {"type": "thinking"},
        }
        annotated.messages = [*annotated.messages, {"role": "user", "content": [part]}]
        return LLMRequestInterceptOutcome(request, annotated)

    intercepts.register_llm_request("inject-native", 1, False, intercept)

    async def run() -> None:
        await llm.execute(
            "gemini", LLMRequest({}, _contents(("user", [{"text": "q"}]))), provider, codec=CODEC, response_codec=CODEC
        )

    with pytest.raises(RuntimeError) as info:
        asyncio.run(run())
    assert str(info.value) == (
        "invalid argument: Gemini encoder: provider_native content part for provider 'anthropic_messages' "
        "cannot be encoded by the Gemini generateContent codec"
    )
    assert called == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"instructions": "x"},
            _not_representable("instructions"),
        ),
        (
            {"metadata": {"a": 1}},
            _not_representable("metadata"),
        ),
        (
            {"messages": [{"role": "developer", "content": "x"}]},
            "Gemini encoder: role 'developer' has no Gemini equivalent (only 'user' and 'assistant' are supported)",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "name": "n"}]},
            "Gemini encoder: Message::User.name is not representable",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]},
            "Gemini encoder: normalized content part type 'image_url' cannot be encoded into Gemini content",
        ),
        (
            {"messages": [{"role": "tool", "tool_call_id": "", "content": "x"}]},
            "Gemini encoder: Message::Tool has an empty tool_call_id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "nope"}}],
                    }
                ]
            },
            "Gemini encoder: function call 'f' has arguments that are not valid JSON: nope",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "Gemini encoder: function call 'f' arguments must be a JSON object, not [1]",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "strict": True}}]},
            "Gemini encoder: FunctionDefinition.strict is not supported; "
            "remove it or use a provider-native extra field",
        ),
        (
            {"tools": [{"type": "provider_native", "provider": "openai_responses", "kind": "web_search", "value": {}}]},
            "Gemini encoder: ProviderNative tool 'web_search' (provider 'openai_responses') "
            "cannot be represented on the Gemini surface",
        ),
    ],
)
def test_unencodable_edits_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        _encode_edit(_contents(("user", [{"text": "q"}])), **changes)
    assert str(info.value) == f"invalid argument: {message}"


def test_multi_group_tool_edits_are_refused() -> None:
    body = {
        **_contents(("user", [{"text": "q"}])),
        "tools": [{"functionDeclarations": [{"name": "f"}]}, {"functionDeclarations": [{"name": "g"}]}],
    }
    with pytest.raises(RuntimeError, match="the original request has 2 functionDeclarations groups"):
        _encode_edit(body, tools=[{"type": "function", "function": {"name": "f"}}])


# --- malformed requests --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({}, "Gemini request is missing contents"),
        ({"contents": None}, "Gemini request contents must be an array"),
        ({"contents": ["x"]}, "Gemini contents item must be an object"),
        ({"contents": [{"role": "user"}]}, "Gemini contents item must have an array 'parts' field"),
        ({"contents": [{"role": 5, "parts": []}]}, "Gemini contents item 'role' must be a string"),
        (
            {"contents": [{"role": "assistant", "parts": []}]},
            "Gemini contents item has unsupported role 'assistant'; expected 'user' or 'model'",
        ),
        ({"contents": [{"role": "user", "parts": ["x"]}]}, "Gemini parts item must be an object"),
        ({"contents": [{"role": "user", "parts": [{"text": 5}]}]}, "Gemini parts item 'text' must be a string"),
        (
            _contents(("user", [{"functionCall": {"name": "f"}}])),
            "Gemini functionCall parts must be in a 'model' role content item, got 'user'",
        ),
        (_contents(("model", [{"functionCall": {"args": {}}}])), "Gemini functionCall is missing a non-empty 'name'"),
        (
            _contents(("model", [{"functionCall": {"name": "f", "args": "x"}}])),
            "Gemini functionCall.args must be an object",
        ),
        (
            _contents(("user", [{"functionResponse": {"name": "f"}}])),
            "Gemini functionResponse is missing required 'response'",
        ),
        (
            _contents(("user", [{"functionResponse": {"name": "f", "response": {}}}, {"text": "x"}])),
            "Gemini contents item must not mix functionResponse with visible/native parts",
        ),
        (
            _contents(("model", [{"functionCall": {"name": "g"}}, {"functionCall": {"name": "f", "id": "g"}}])),
            "Gemini functionCall parts have duplicate effective id 'g'; "
            "distinct ids are required to correlate function responses",
        ),
        ({"contents": [], "model": None}, "Gemini request 'model' must be a string"),
        ({"contents": [], "systemInstruction": "x"}, "Gemini systemInstruction must be an object"),
        ({"contents": [], "systemInstruction": {}}, "Gemini systemInstruction must have a 'parts' field"),
        (
            {"contents": [], "systemInstruction": {"parts": [{"inlineData": {}}]}},
            "Gemini systemInstruction.parts entries must be text parts",
        ),
        ({"contents": [], "generationConfig": None}, "Gemini generationConfig must be an object"),
        ({"contents": [], "generationConfig": {"temperature": "x"}}, "Gemini temperature must be a number"),
        (
            {"contents": [], "generationConfig": {"maxOutputTokens": -1}},
            "Gemini maxOutputTokens must be a non-negative integer",
        ),
        (
            {"contents": [], "generationConfig": {"stopSequences": "x"}},
            "Gemini stopSequences must be an array of strings",
        ),
        ({"contents": [], "tools": {}}, "Gemini tools must be an array"),
        (
            {"contents": [], "tools": [{"functionDeclarations": [{"name": ""}]}]},
            "Gemini functionDeclaration must have a non-empty 'name'",
        ),
    ],
)
def test_malformed_requests_name_the_field(content: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        _decode(content)
    assert str(info.value) == f"invalid argument: {message}"


# --- responses -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("response_") + _names("stream_"))
def test_response_fixture_matches_reference(name: str) -> None:
    fixture = _load(name)
    assert CODEC.decode_response(fixture["response"])._to_json() == fixture["annotated"]


def test_usage_prompt_tokens_already_include_cached_tokens() -> None:
    decoded = CODEC.decode_response(_load("response_text")["response"])
    assert decoded.usage == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 190,
        "cache_read_tokens": 100,
    }
    assert decoded.api_specific is not None
    assert decoded.api_specific["thoughts_tokens"] == 40


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"promptTokenCount": 4, "candidatesTokenCount": 3},
            {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
        ),
        (
            {"promptTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
            {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 9},
        ),
        ({"totalTokenCount": 4}, {"total_tokens": 4}),
        ({"cachedContentTokenCount": 4}, {"cache_read_tokens": 4}),
        ({"promptTokenCount": 4, "cost_usd": 1.0}, {"prompt_tokens": 4, "total_tokens": 4}),
        ({}, {}),
    ],
)
def test_usage_mapping(usage: dict[str, Any], expected: dict[str, Any]) -> None:
    assert CODEC.decode_response({"usageMetadata": usage}).usage == expected


@pytest.mark.parametrize(
    ("candidate", "feedback", "finish_json"),
    [
        ({"finishReason": "STOP"}, None, "complete"),
        ({"finishReason": "MAX_TOKENS"}, None, "length"),
        ({"finishReason": "SAFETY"}, None, "content_filter"),
        ({"finishReason": "RECITATION"}, None, "content_filter"),
        ({"finishReason": "PROHIBITED_CONTENT"}, None, "content_filter"),
        ({"finishReason": "SPII"}, None, "content_filter"),
        ({"finishReason": "IMAGE_SAFETY"}, None, "content_filter"),
        ({"finishReason": "OTHER"}, None, {"unknown": "OTHER"}),
        ({"finishReason": "MALFORMED_FUNCTION_CALL"}, None, {"unknown": "MALFORMED_FUNCTION_CALL"}),
        ({"finishReason": "FINISH_REASON_UNSPECIFIED"}, None, None),
        ({"finishReason": "STOP", "content": {"parts": [{"functionCall": {"name": "f"}}]}}, None, "tool_use"),
        ({"content": {"parts": [{"functionCall": {"name": "f"}}]}}, None, "tool_use"),
        ({"finishReason": "MAX_TOKENS", "content": {"parts": [{"functionCall": {"name": "f"}}]}}, None, "length"),
        (None, {"blockReason": "SAFETY"}, "content_filter"),
        (None, {"blockReason": "OTHER"}, {"unknown": "OTHER"}),
        (None, {"blockReason": "SPII"}, {"unknown": "SPII"}),
        ({}, {"blockReason": "PROHIBITED_CONTENT"}, "content_filter"),
        ({"finishReason": "STOP"}, {"blockReason": "SAFETY"}, "complete"),
    ],
)
def test_finish_reasons(candidate: dict[str, Any] | None, feedback: dict[str, Any] | None, finish_json: Any) -> None:
    response: dict[str, Any] = {}
    if candidate is not None:
        response["candidates"] = [candidate]
    if feedback is not None:
        response["promptFeedback"] = feedback
    assert CODEC.decode_response(response)._to_json().get("finish_reason") == finish_json


def test_response_message_shapes() -> None:
    plain = CODEC.decode_response({"candidates": [{"content": {"parts": [THOUGHT, {"text": "A"}, {"text": "B"}]}}]})
    assert plain.message == "A\nB"
    mixed = CODEC.decode_response({"candidates": [{"content": {"parts": [{"text": "A", "thoughtSignature": "s"}]}}]})
    assert mixed.message == [{"type": "text", "text": "A", "thoughtSignature": "s"}]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"candidates": "x"}, 'internal error: Gemini response decode: invalid type: string "x", expected a sequence'),
        (
            {"usageMetadata": {"promptTokenCount": 1.5}},
            "internal error: Gemini response decode: invalid type: floating point `1.5`, expected u64",
        ),
        ({"modelVersion": 5}, "internal error: Gemini response decode: invalid type: integer `5`, expected a string"),
        ({"promptFeedback": None}, "invalid argument: Gemini response promptFeedback must be an object"),
        (
            {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]},
            "invalid argument: Gemini response functionCall is missing 'name'",
        ),
        (
            {"candidates": [{"content": {"parts": [{"functionResponse": {}}]}}]},
            "invalid argument: Gemini response parts must not contain functionResponse",
        ),
        (
            {"candidates": [{"content": {"parts": [{"text": 5}]}}]},
            "invalid argument: Gemini generateContent response parts[].text must be a string",
        ),
    ],
)
def test_malformed_responses(response: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        CODEC.decode_response(response)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("response", "fragment"), [([], "sequence"), ("x", 'string "x"'), (None, "null"), (1.5, "floating point `1.5`")]
)
def test_non_object_responses(response: Any, fragment: str) -> None:
    with pytest.raises(RuntimeError) as info:
        CODEC.decode_response(response)
    assert str(info.value) == (
        "internal error: Gemini response decode: "
        f"invalid type: {fragment}, expected struct RawGeminiGenerateContentResponse"
    )


# --- streaming -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _names("stream_"))
def test_stream_aggregation_equals_non_streamed_response(name: str) -> None:
    fixture = _load(name)
    aggregator = CODEC.stream_aggregator()
    for chunk in fixture["events"]:
        aggregator.add(chunk)
    result = aggregator.result()
    assert result == fixture["response"]
    assert CODEC.decode_response(result)._to_json() == fixture["annotated"]


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ({"candidates": [{}, {}]}, "Gemini streaming chunks with multiple candidates are not supported"),
        ({"candidates": [{"index": 1}]}, "Gemini streaming only supports candidate index 0"),
        ({"candidates": [{"index": -1}]}, "Gemini streaming candidate index must be an unsigned integer"),
        ({"candidates": [{"finishReason": 5}]}, "Gemini streaming candidate finishReason must be a string"),
        ({"candidates": [{"content": {"parts": ["x"]}}]}, "Gemini streaming parts entry must be an object"),
        ({"candidates": [{"content": {"parts": [{"text": 1}]}}]}, "Gemini streaming parts[].text must be a string"),
        (
            {"candidates": [{"content": {"parts": [{"functionResponse": {}}]}}]},
            "Gemini streaming response parts must not contain functionResponse",
        ),
        ({"modelVersion": 1}, "Gemini streaming event modelVersion must be a string"),
    ],
)
def test_malformed_stream_chunks(chunk: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        CODEC.stream_aggregator().add(chunk)
    assert str(info.value) == f"invalid argument: {message}"


# --- property tests ------------------------------------------------------------------------------------------

_text = st.text(max_size=8)
_user_part = st.one_of(
    st.builds(lambda t: {"text": t}, _text),
    st.builds(lambda t: {"inlineData": {"mimeType": "image/png", "data": t}}, _text),
    st.builds(lambda u: {"fileData": {"mimeType": "application/pdf", "fileUri": u}}, _text),
)
_model_part = st.one_of(
    _user_part,
    st.builds(lambda t: {"text": t, "thought": True}, _text),
    st.builds(lambda t, s: {"text": t, "thoughtSignature": s}, _text, _text),
    st.builds(lambda t: {"executableCode": {"language": "PYTHON", "code": t}}, _text),
)


@st.composite
def _model_item(draw: st.DrawFn) -> dict[str, Any]:
    parts = draw(st.lists(_model_part, max_size=3))
    for index, name in enumerate(draw(st.lists(st.sampled_from(["f", "g"]), max_size=2, unique=True))):
        call: dict[str, Any] = {"functionCall": {"name": name, "args": {"n": index}}}
        if draw(st.booleans()):
            call["thoughtSignature"] = "sig"
        parts.append(call)
    return {"role": "model", "parts": parts}


@st.composite
def _tool_item(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(["f", "g", "h"]), min_size=1, max_size=2, unique=True))
    return {"role": "user", "parts": [{"functionResponse": {"name": n, "response": {"r": draw(_text)}}} for n in names]}


_items = st.lists(
    st.one_of(
        st.builds(lambda p: {"role": "user", "parts": p}, st.lists(_user_part, max_size=3)), _model_item(), _tool_item()
    ),
    max_size=5,
)
_optional_fields = st.fixed_dictionaries(
    {},
    optional={
        "model": _text,
        "systemInstruction": st.builds(lambda t: {"parts": [{"text": t}]}, _text),
        "generationConfig": st.fixed_dictionaries(
            {},
            optional={
                "temperature": st.floats(0, 2),
                "maxOutputTokens": st.integers(0, 100),
                "topK": st.integers(1, 40),
            },
        ),
        "tools": st.sampled_from(
            [
                [{"functionDeclarations": [{"name": "f"}]}, {"googleSearch": {}}],
                [{"codeExecution": {}}],
                [{"functionDeclarations": [{"name": "g", "description": "d"}], "googleSearch": {}}],
            ]
        ),
        "toolConfig": st.just({"functionCallingConfig": {"mode": "AUTO"}}),
        "safetySettings": st.just([]),
        "cachedContent": st.none(),
    },
)


@st.composite
def _requests(draw: st.DrawFn) -> dict[str, Any]:
    body = {"contents": draw(_items)}
    body.update(draw(_optional_fields))
    return body


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_requests())
def test_property_no_edit_round_trip(body: dict[str, Any]) -> None:
    original = LLMRequest({}, body)
    encoded = encode_unedited(CODEC, original)
    assert json.dumps(encoded.content) == json.dumps(body)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_requests(), _text.filter(bool))
def test_property_appended_turn_survives_a_re_decode(body: dict[str, Any], text: str) -> None:
    original = LLMRequest({}, body)
    annotated = CODEC.decode(original)
    annotated.messages = [*annotated.messages, {"role": "user", "content": text}]
    encoded = CODEC.encode(annotated, original)
    assert encoded.content["contents"][:-1] == body["contents"]
    assert CODEC.decode(encoded).messages == annotated.messages
