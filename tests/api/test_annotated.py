"""``AnnotatedLLMRequest`` / ``AnnotatedLLMResponse``: construction, validation messages, copies, helpers, reprs
and the JSON form recorded on events (``_to_json`` / ``_from_json``).

Every expected value and message below was confirmed against the reference wheel (nemo-relay 0.8.4). The JSON
forms were read from ``event.category_profile["annotated_request"|"annotated_response"]`` and the
``_from_json`` error texts from ``llm.call_end(..., annotated_response=<dict>)``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nemo_relay._core.annotated import (
    AnnotatedLLMRequest,
    AnnotatedLLMResponse,
    is_annotated_request,
    is_annotated_response,
)

MSG = "invalid messages: each dict must include a 'role' key (user/system/assistant/tool): "
ROLES = (
    "expected one of `system`, `user`, `developer`, `assistant`, `tool`, `function`, `tool_call`, `tool_result`, "
    "`provider_native`"
)
UNTAGGED = "data did not match any variant of untagged enum MessageContent"


def messages_of(*messages: Any) -> list[Any]:
    return AnnotatedLLMRequest(list(messages)).messages


def ordered(value: Any) -> str:
    """JSON text with key order preserved: the reference sorts every object's keys."""
    return json.dumps(value)


# --- request: construction and messages --------------------------------------------------------------------


def test_request_defaults() -> None:
    request = AnnotatedLLMRequest([])
    assert request.messages == []
    assert request.instructions is None
    assert request.model is None
    assert request.params is None
    assert request.tools is None
    assert request.tool_choice is None
    assert request.api_specific is None
    assert request.extra == {}
    for name in (
        "store",
        "previous_response_id",
        "truncation",
        "reasoning",
        "include",
        "user",
        "metadata",
        "service_tier",
        "parallel_tool_calls",
        "max_output_tokens",
        "max_tool_calls",
        "top_logprobs",
        "stream",
    ):
        assert getattr(request, name) is None
    assert request._to_json() == {"messages": []}


def test_request_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        AnnotatedLLMRequest([], None)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'messages'"):
        AnnotatedLLMRequest()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        AnnotatedLLMRequest([], bogus=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"role": "user", "content": "hi"}, {"content": "hi", "role": "user"}),
        ({"role": "user", "content": "hi", "name": "n", "x": 1}, {"content": "hi", "name": "n", "role": "user"}),
        ({"role": "system", "content": "s", "name": None}, {"content": "s", "role": "system"}),
        ({"role": "developer", "content": "d"}, {"content": "d", "role": "developer"}),
        ({"role": "assistant"}, {"role": "assistant"}),
        ({"role": "assistant", "content": None, "x": 2}, {"role": "assistant"}),
        ({"role": "assistant", "tool_calls": []}, {"role": "assistant", "tool_calls": []}),
        ({"role": "assistant", "tool_calls": None}, {"role": "assistant"}),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}", "z": 1}}],
            },
            {
                "role": "assistant",
                "tool_calls": [{"function": {"arguments": "{}", "name": "f"}, "id": "a", "type": "function"}],
            },
        ),
        (
            {"role": "tool", "content": "x", "tool_call_id": "c", "name": "q"},
            {"content": "x", "role": "tool", "tool_call_id": "c"},
        ),
        ({"role": "function", "content": "x", "name": "f"}, {"content": "x", "name": "f", "role": "function"}),
        ({"role": "function", "name": "f"}, {"content": None, "name": "f", "role": "function"}),
        (
            {"role": "tool_call", "call_id": "c", "name": "n", "arguments": {"b": 1, "a": 2}, "id": "i", "z": 1},
            {"arguments": {"a": 2, "b": 1}, "call_id": "c", "id": "i", "name": "n", "role": "tool_call", "z": 1},
        ),
        (
            {"role": "tool_result", "call_id": "c", "output": {"a": 1}, "id": None, "z": None},
            {"call_id": "c", "output": {"a": 1}, "role": "tool_result", "z": None},
        ),
        (
            {"role": "provider_native", "provider": "p", "kind": "k", "value": None, "z": 1},
            {"kind": "k", "provider": "p", "role": "provider_native", "value": None},
        ),
        # Non-finite numbers in free-form values become null.
        (
            {"role": "tool_call", "call_id": "c", "name": "n", "arguments": float("nan")},
            {"arguments": None, "call_id": "c", "name": "n", "role": "tool_call"},
        ),
        # Sequences fill a variant's fields in order; integer keys address fields by position.
        (["user", "hi", "n"], {"content": "hi", "name": "n", "role": "user"}),
        ({"role": "user", "content": "x", 1: "s"}, {"content": "x", "name": "s", "role": "user"}),
        ({"role": "user", "content": "x", "name": b"a"}, {"content": "x", "name": "a", "role": "user"}),
    ],
)
def test_message_variants_normalise(message: Any, expected: dict[str, Any]) -> None:
    (result,) = messages_of(message)
    assert result == expected
    assert ordered(result) == ordered(expected)


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ({"role": "bogus"}, f"unknown variant `bogus`, {ROLES}"),
        ({}, "missing field `role`"),
        ([], "missing field `role`"),
        ({"role": "user"}, "missing field `content`"),
        ({"role": "tool", "content": "x"}, "missing field `tool_call_id`"),
        ({"role": "function", "content": "x"}, "missing field `name`"),
        ({"role": "tool_call"}, "missing field `call_id`"),
        ({"role": "tool_call", "call_id": "c", "arguments": 1}, "missing field `name`"),
        ({"role": "tool_result", "call_id": "c"}, "missing field `output`"),
        ({"role": "provider_native", "provider": "p", "kind": "k"}, "missing field `value`"),
        ({"role": "assistant", "tool_calls": [{"id": "a"}]}, "missing field `type`"),
        ({"role": "assistant", "tool_calls": [{}]}, "missing field `id`"),
        ({"role": 1}, "dict keys must have type str"),
        ({"role": None}, "dict keys must have type str"),
        ("x", 'invalid type: string "x", expected internally tagged enum Message'),
        (None, "invalid type: unit value, expected internally tagged enum Message"),
        (1.5, "invalid type: floating point `1.5`, expected internally tagged enum Message"),
        ({"role": "user", "content": "x", "name": 1}, "invalid type: integer `1`, expected a string"),
        ({"role": "user", "content": "x", "name": 1.0}, "invalid type: floating point `1.0`, expected a string"),
        ({"role": "user", "content": "x", "name": True}, "invalid type: boolean `true`, expected a string"),
        ({"role": "user", "content": "x", "name": [1]}, "invalid type: sequence, expected a string"),
        ({"role": "user", "content": "x", "name": {"a": 1}}, "invalid type: map, expected a string"),
        (
            {"role": "user", "content": "x", "name": float("nan")},
            "invalid type: floating point `NaN`, expected a string",
        ),
        (
            {"role": "user", "content": "x", "name": 1e20},
            "invalid type: floating point `100000000000000000000.0`, expected a string",
        ),
        (
            {"role": "assistant", "tool_calls": 'a"b\n\x01'},
            'invalid type: string "a\\"b\\n\\u{1}", expected a sequence',
        ),
        ({"role": "tool", "content": "x", "tool_call_id": None}, "invalid type: unit value, expected a string"),
        (
            {"role": "user", "content": "x", "name": 2**64},
            "invalid type: integer `18446744073709551616` as u128, expected any value",
        ),
        (
            {"role": "user", "content": "x", "name": -(2**63) - 1},
            "invalid type: integer `-9223372036854775809` as i128, expected any value",
        ),
        ({"role": "user", "content": "x", "zz": object()}, "unsupported type object"),
        ({"role": "assistant", "tool_calls": 1}, "invalid type: integer `1`, expected a sequence"),
        ({"role": "assistant", "tool_calls": [1]}, "invalid type: integer `1`, expected struct ToolCall"),
        (
            {"role": "assistant", "tool_calls": [{"id": "i", "type": "function", "function": None}]},
            "invalid type: unit value, expected struct FunctionCall",
        ),
        ({"role": "user", "content": 1}, UNTAGGED),
        ({"role": "user", "content": None}, UNTAGGED),
        ({"role": "user", "content": {"a": 1}}, UNTAGGED),
        # Free-form values: the first key of an object is "a string key", later ones "a string".
        (
            {"role": "tool_call", "call_id": "c", "name": "n", "arguments": {1: 2}},
            "invalid type: integer `1`, expected a string key",
        ),
        (
            {"role": "tool_call", "call_id": "c", "name": "n", "arguments": {"a": 1, None: 2}},
            "invalid type: unit value, expected a string",
        ),
        (
            {"role": "tool_call", "call_id": "c", "name": "n", "arguments": b"x"},
            "invalid type: byte array, expected any valid JSON value",
        ),
        (
            {"role": "tool_call", "call_id": "c", "name": "n", "arguments": 1, 0: "x"},
            "invalid type: integer `0`, expected a string",
        ),
        ({1: 2, "role": "user"}, "invalid type: integer `2`, expected a string"),
        ({None: 1, "role": "user"}, "invalid type: unit value, expected field identifier"),
        ({"role": "user", "content": "x", 0: "y"}, "duplicate field `content`"),
        (["user"], "invalid length 0, expected struct variant Message::User with 2 elements"),
        (["assistant"], "invalid length 0, expected struct variant Message::Assistant with 3 elements"),
        (["user", "hi", "n", "x"], "invalid length 3, expected 2 elements in sequence"),
        (["tool_call", "c", "n", "a"], "invalid type: sequence, expected struct variant Message::ToolCallItem"),
    ],
)
def test_message_validation_messages(message: Any, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([message])
    assert str(info.value) == MSG + detail


def test_message_errors_follow_input_order() -> None:
    # The role is checked where it appears; other entries are read in order.
    opaque: Any = object()
    with pytest.raises(ValueError, match="unsupported type object"):
        AnnotatedLLMRequest([{"zz": opaque, "role": "bogus"}])
    with pytest.raises(ValueError, match="unknown variant `bogus`"):
        AnnotatedLLMRequest([{"role": "bogus", "zz": opaque}])
    with pytest.raises(ValueError, match=UNTAGGED):
        AnnotatedLLMRequest([{"content": 1, "role": "user", "name": 1}])
    with pytest.raises(ValueError, match=r"expected a string$"):
        AnnotatedLLMRequest([{"name": 1, "role": "user", "content": 1}])
    # Type errors come before missing fields.
    with pytest.raises(ValueError, match=r"expected a string$"):
        AnnotatedLLMRequest([{"name": 1, "role": "user"}])


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (None, "unexpected type: 'None' is not an instance of 'Sequence'"),
        (1, "unexpected type: 'int' object is not an instance of 'Sequence'"),
        ({"role": "user", "content": "x"}, "unexpected type: 'dict' object is not an instance of 'Sequence'"),
        ("abc", 'invalid type: string "a", expected internally tagged enum Message'),
    ],
)
def test_messages_must_be_a_sequence(value: Any, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest(value)
    assert str(info.value) == MSG + detail


def test_messages_accept_any_sequence() -> None:
    assert AnnotatedLLMRequest(({"role": "user", "content": "x"},)).messages == [{"content": "x", "role": "user"}]
    assert AnnotatedLLMRequest("").messages == []  # type: ignore[arg-type]


# --- content parts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"type": "text", "text": "a", "cache_control": None}, {"cache_control": None, "text": "a", "type": "text"}),
        (
            {"type": "image_url", "image_url": {"url": "u", "detail": "high", "z": 1}, "z": 1},
            {"image_url": {"detail": "high", "url": "u"}, "type": "image_url", "z": 1},
        ),
        (
            {"type": "image_url", "image_url": {"url": "u", "detail": None}},
            {"image_url": {"url": "u"}, "type": "image_url"},
        ),
        ({"type": "image", "image": None, "z": 1}, {"image": None, "type": "image", "z": 1}),
        ({"type": "audio", "audio": {"b": 1, "a": 2}}, {"audio": {"a": 2, "b": 1}, "type": "audio"}),
        ({"type": "file", "file": 1}, {"file": 1, "type": "file"}),
        ({"type": "refusal", "refusal": "no", "z": 1}, {"refusal": "no", "type": "refusal", "z": 1}),
        (
            {"type": "tool_use", "id": "i", "name": "n", "input": "s"},
            {"id": "i", "input": "s", "name": "n", "type": "tool_use"},
        ),
        (
            {"type": "tool_result", "tool_use_id": "i", "content": None, "is_error": None},
            {"content": None, "tool_use_id": "i", "type": "tool_result"},
        ),
        (
            {"type": "provider_native", "provider": "p", "kind": "k", "value": 1, "z": 1},
            {"kind": "k", "provider": "p", "type": "provider_native", "value": 1},
        ),
        (["provider_native", "p", "k", 1], {"kind": "k", "provider": "p", "type": "provider_native", "value": 1}),
    ],
)
def test_content_parts_normalise(part: Any, expected: dict[str, Any]) -> None:
    (message,) = messages_of({"role": "user", "content": [part]})
    assert message["content"] == [expected]
    assert ordered(message["content"][0]) == ordered(expected)


@pytest.mark.parametrize(
    "part",
    [
        {},
        {"type": "bogus"},
        {"type": "text"},
        {"type": "text", "text": 1},
        {"type": "text", "text": "a", 0: "x"},
        {"type": "image_url", "image_url": "u"},
        {"type": "image_url", "image_url": {"detail": "high"}},
        {"type": "image_url", "image_url": {"url": "u", "detail": 1}},
        {"type": "image"},
        {"type": "audio"},
        {"type": "file"},
        {"type": "refusal", "refusal": None},
        {"type": "tool_use", "id": "i", "name": "n"},
        {"type": "tool_result", "tool_use_id": "i"},
        {"type": "tool_result", "tool_use_id": "i", "content": "c", "is_error": "x"},
        {"type": "provider_native", "provider": "p", "kind": "k"},
        ["text", "hi"],
        "x",
    ],
)
def test_invalid_content_parts_give_one_generic_message(part: Any) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([{"role": "user", "content": [part]}])
    assert str(info.value) == MSG + UNTAGGED


# --- other request arguments ---------------------------------------------------------------------------------


def test_request_arguments_round_trip() -> None:
    request = AnnotatedLLMRequest(
        [{"role": "user", "content": "u"}],
        instructions=[{"type": "text", "text": "sys"}],
        model="gpt",
        params={"top_p": 1, "temperature": 0.5, "max_tokens": 10, "stop": ["a"], "seed": 3},
        tools=[{"type": "function", "function": {"name": "f", "description": None, "strict": True}, "zz": 1}],
        tool_choice={"type": "function", "function": {"name": "f", "zz": 1}, "zz": 1},
        api_specific={"api": "openai_chat", "seed": -5, "n": 2, "frequency_penalty": 1, "x": 1},
        extra={"z": 1, "a": {"y": 1, "b": 2}},
    )
    assert request.instructions == [{"text": "sys", "type": "text"}]
    assert request.model == "gpt"
    assert ordered(request.params) == ordered({"max_tokens": 10, "stop": ["a"], "temperature": 0.5, "top_p": 1.0})
    assert request.tools == [{"function": {"name": "f", "strict": True}, "type": "function", "zz": 1}]
    assert request.tool_choice == {"function": {"name": "f"}, "type": "function"}
    assert ordered(request.api_specific) == ordered(
        {"api": "openai_chat", "frequency_penalty": 1.0, "n": 2, "seed": -5}
    )
    assert ordered(request.extra) == ordered({"a": {"b": 2, "y": 1}, "z": 1})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {}),
        ({"temperature": 1}, {"temperature": 1.0}),
        ({"temperature": True}, {"temperature": 1.0}),
        ({"temperature": float("nan")}, {"temperature": None}),
        ({"temperature": None, "stop": None}, {}),
        ({"max_tokens": True}, {"max_tokens": 1}),
        ({"max_tokens": 2**64 - 1}, {"max_tokens": 2**64 - 1}),
        ({"stop": "ab"}, {"stop": ["a", "b"]}),  # any sequence is read item by item
        ({"stop": ("a", "b")}, {"stop": ["a", "b"]}),
        ({"stop": b""}, {"stop": []}),
        ({"frequency_penalty": 0.1, "zz": object()}, {}),  # unknown keys are dropped unread
    ],
)
def test_params_normalise(params: dict[Any, Any], expected: dict[str, Any]) -> None:
    assert AnnotatedLLMRequest([], params=params).params == expected


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (1, "unexpected type: 'int' object is not an instance of 'Mapping'"),
        ([], "unexpected type: 'list' object is not an instance of 'Mapping'"),
        ({"temperature": "x"}, "TypeError: must be real number, not str"),
        ({"temperature": [1]}, "TypeError: must be real number, not list"),
        ({"temperature": 10**400}, "OverflowError: int too large to convert to float"),
        ({"max_tokens": -1}, "OverflowError: can't convert negative int to unsigned"),
        ({"max_tokens": 2**64}, "OverflowError: int too big to convert"),
        ({"max_tokens": 1.5}, "TypeError: 'float' object cannot be interpreted as an integer"),
        ({"stop": 1}, "unexpected type: 'int' object is not an instance of 'Sequence'"),
        ({"stop": {"a": 1}}, "unexpected type: 'dict' object is not an instance of 'Sequence'"),
        ({"stop": [1]}, "unexpected type: 'int' object is not an instance of 'str'"),
        ({"stop": ["a", None]}, "unexpected type: 'None' is not an instance of 'str'"),
        ({1: 2}, "dict keys must have type str"),
        # Errors are reported in the order of the keys.
        ({"max_tokens": "y", "temperature": "x"}, "TypeError: 'str' object cannot be interpreted as an integer"),
        ({"temperature": "x", "max_tokens": "y"}, "TypeError: must be real number, not str"),
    ],
)
def test_params_validation_messages(params: Any, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([], params=params)
    assert str(info.value) == f"invalid params: {detail}"


@pytest.mark.parametrize(
    ("instructions", "expected"),
    [("sys", "sys"), ([], []), ([{"type": "text", "text": "a"}], [{"text": "a", "type": "text"}]), (None, None)],
)
def test_instructions(instructions: Any, expected: Any) -> None:
    assert AnnotatedLLMRequest([], instructions=instructions).instructions == expected


@pytest.mark.parametrize("instructions", [1, {"a": 1}, [{"type": "bogus"}]])
def test_instructions_validation(instructions: Any) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([], instructions=instructions)
    assert str(info.value) == f"invalid instructions: expected a string or content-part list: {UNTAGGED}"


@pytest.mark.parametrize(
    ("tools", "detail"),
    [
        ({}, "unexpected type: 'dict' object is not an instance of 'Sequence'"),
        ([{"a": 1}], "missing field `type`"),
        ([{"type": "bogus"}], "unknown variant `bogus`, expected `function` or `provider_native`"),
        ([{"type": "function"}], "missing field `function`"),
        ([{"type": "function", "function": {}}], "missing field `name`"),
        (
            [{"type": "function", "function": {"name": "f", "strict": 1}}],
            "invalid type: integer `1`, expected a boolean",
        ),
        ([{"type": "function", "function": "s"}], 'invalid type: string "s", expected struct FunctionDefinition'),
        ([{"type": "provider_native", "provider": "p", "kind": "k"}], "missing field `value`"),
        ([1], "invalid type: integer `1`, expected internally tagged enum ToolDefinition"),
        (["function"], 'invalid type: string "function", expected internally tagged enum ToolDefinition'),
        ([["function", {"name": "f"}]], "invalid type: sequence, expected struct variant ToolDefinition::Function"),
        ([{"type": 1}], "dict keys must have type str"),
    ],
)
def test_tools_validation(tools: Any, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([], tools=tools)
    assert str(info.value) == f"invalid tools: {detail}"


def test_tools_keep_extra_fields_of_functions() -> None:
    tools = AnnotatedLLMRequest(
        [],
        tools=[
            {"type": "function", "function": {"name": "f", "zz": None, "parameters": None}},
            {"type": "provider_native", "provider": "p", "kind": "k", "value": 1, "zz": 1},
        ],
    ).tools
    assert tools == [
        {"function": {"name": "f", "zz": None}, "type": "function"},
        {"kind": "k", "provider": "p", "type": "provider_native", "value": 1},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"auto": None}, "auto"),
        ({"type": "x", "function": {"name": "f"}}, {"function": {"name": "f"}, "type": "x"}),
        (["function", ["f"]], {"function": {"name": "f"}, "type": "function"}),
        # The provider-native variant has no `type` key of its own.
        (
            {"type": "provider_native", "provider": "p", "kind": "k", "value": 1},
            {"kind": "k", "provider": "p", "value": 1},
        ),
    ],
)
def test_tool_choice_variants(choice: Any, expected: Any) -> None:
    assert AnnotatedLLMRequest([], tool_choice=choice).tool_choice == expected


@pytest.mark.parametrize("choice", ["any", "Auto", b"auto", {}, {"type": "function"}, {"type": "any"}, 1, []])
def test_tool_choice_validation(choice: Any) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([], tool_choice=choice)
    assert str(info.value) == "invalid tool_choice: data did not match any variant of untagged enum ToolChoice"


API_VARIANTS = "expected one of `anthropic_messages`, `openai_chat`, `openai_responses`, `oci_genai`, `custom`"


@pytest.mark.parametrize(
    ("api_specific", "expected"),
    [
        ({"api": "openai_chat", "x": 1, "audio": None}, {"api": "openai_chat"}),
        ({"api": "openai_chat", "frequency_penalty": float("nan")}, {"api": "openai_chat", "frequency_penalty": None}),
        (
            {"api": "openai_chat", "functions": [1], "modalities": ["text"]},
            {"api": "openai_chat", "functions": [1], "modalities": ["text"]},
        ),
        ({"api": "openai_responses", "background": True}, {"api": "openai_responses", "background": True}),
        ({"api": "anthropic_messages", "top_k": 4}, {"api": "anthropic_messages", "top_k": 4}),
        ({"api": "oci_genai", "compartment_id": "c"}, {"api": "oci_genai", "compartment_id": "c"}),
        ({"api": "custom", "api_name": "x", "data": None, "zz": 2}, {"api": "custom", "api_name": "x", "data": None}),
        (["custom", "n", 1], {"api": "custom", "api_name": "n", "data": 1}),
    ],
)
def test_api_specific_variants(api_specific: Any, expected: Any) -> None:
    assert AnnotatedLLMRequest([], api_specific=api_specific).api_specific == expected


@pytest.mark.parametrize(
    ("api_specific", "detail"),
    [
        ({"api": "bogus"}, f"unknown variant `bogus`, {API_VARIANTS}"),
        ({}, "missing field `api`"),
        ({"api": "custom"}, "missing field `api_name`"),
        ({"api": "custom", "api_name": None, "data": 1}, "invalid type: unit value, expected a string"),
        (1, "invalid type: integer `1`, expected internally tagged enum ApiSpecificRequest"),
        ({"api": "openai_chat", "n": -1}, "invalid value: integer `-1`, expected u64"),
        ({"api": "openai_chat", "n": 1.0}, "invalid type: floating point `1.0`, expected u64"),
        ({"api": "openai_chat", "n": True}, "invalid type: boolean `true`, expected u64"),
        ({"api": "openai_chat", "seed": 2**63}, "invalid value: integer `9223372036854775808`, expected i64"),
        ({"api": "openai_chat", "logprobs": 1}, "invalid type: integer `1`, expected a boolean"),
        ({"api": "openai_chat", "frequency_penalty": True}, "invalid type: boolean `true`, expected f64"),
        ({"api": "openai_chat", "modalities": "s"}, 'invalid type: string "s", expected a sequence'),
        (["openai_chat"], "invalid length 0, expected struct variant ApiSpecificRequest::OpenAIChat with 21 elements"),
    ],
)
def test_api_specific_validation(api_specific: Any, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([], api_specific=api_specific)
    # The constructor adds a hint that the setter does not.
    assert str(info.value) == f"invalid api_specific: expected a tagged request object: {detail}"
    request = AnnotatedLLMRequest([])
    with pytest.raises(ValueError) as info:
        request.api_specific = api_specific
    assert str(info.value) == f"invalid api_specific: {detail}"


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        (1, "unexpected type: 'int' object is not an instance of 'Mapping'"),
        ({1: 2}, "unexpected type: 'int' object is not an instance of 'str'"),
        ({"a": b"x"}, "invalid type: byte array, expected any valid JSON value"),
        ({"a": object()}, "unsupported type object"),
        ({"a": 2**64}, "JSON number out of range"),
    ],
)
def test_extra_validation(extra: Any, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest([], extra=extra)
    assert str(info.value) == f"invalid extra: {detail}"


def test_model_type_error_comes_first() -> None:
    with pytest.raises(TypeError) as info:
        AnnotatedLLMRequest(1, model=1)  # type: ignore[arg-type]
    assert str(info.value) == "'int' object is not an instance of 'str'"
    assert info.value.__notes__ == ["while processing 'model'"]


@pytest.mark.parametrize(
    ("kwargs", "prefix"),
    [
        ({"params": 1, "instructions": 1}, "invalid params"),
        ({"instructions": 1, "tools": 1}, "invalid instructions"),
        ({"tools": 1, "tool_choice": 1}, "invalid tools"),
        ({"tool_choice": 1, "api_specific": 1}, "invalid tool_choice"),
        ({"api_specific": 1, "extra": 1}, "invalid api_specific"),
    ],
)
def test_argument_check_order(kwargs: dict[str, Any], prefix: str) -> None:
    with pytest.raises(ValueError, match=f"^{prefix}"):
        AnnotatedLLMRequest([], **kwargs)
    with pytest.raises(ValueError, match=r"^invalid messages"):
        AnnotatedLLMRequest(1, **kwargs)  # type: ignore[arg-type]


# --- request: getters, setters ---------------------------------------------------------------------------------


def test_request_getters_return_copies() -> None:
    request = AnnotatedLLMRequest(
        [{"role": "user", "content": "a"}],
        params={"temperature": 1},
        tools=[],
        api_specific={"api": "openai_chat"},
        extra={"a": 1},
    )
    request.messages.append({"role": "user", "content": "b"})
    request.messages[0]["role"] = "system"
    request.params["temperature"] = 2  # type: ignore[index]
    request.tools.append({})  # type: ignore[union-attr]
    request.api_specific["x"] = 1  # type: ignore[index]
    request.extra["a"] = 2
    assert request.messages == [{"content": "a", "role": "user"}]
    assert request.params == {"temperature": 1.0}
    assert request.tools == []
    assert request.api_specific == {"api": "openai_chat"}
    assert request.extra == {"a": 1}


def test_request_does_not_keep_caller_objects() -> None:
    message: dict[str, Any] = {"role": "user", "content": [{"type": "text", "text": "a"}]}
    request = AnnotatedLLMRequest([message])
    message["content"][0]["text"] = "changed"
    assert request.messages == [{"content": [{"text": "a", "type": "text"}], "role": "user"}]


def test_request_setters_validate_and_clear() -> None:
    request = AnnotatedLLMRequest([], model="m", params={}, tools=[], tool_choice="auto", instructions="i")
    request.messages = [{"role": "user", "content": "a"}]
    assert request.messages == [{"content": "a", "role": "user"}]
    for name in ("model", "params", "tools", "tool_choice", "instructions", "api_specific"):
        setattr(request, name, None)
        assert getattr(request, name) is None
    request.extra = {"b": 1}
    assert request.extra == {"b": 1}
    with pytest.raises(ValueError, match=r"^invalid extra: unexpected type: 'None' is not an instance of 'Mapping'$"):
        request.extra = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"'None' is not an instance of 'Sequence'$"):
        request.messages = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"^invalid params: "):
        request.params = {"temperature": "x"}
    with pytest.raises(TypeError) as info:
        request.model = 1  # type: ignore[assignment]
    assert str(info.value) == "'int' object is not an instance of 'str'"
    assert info.value.__notes__ == ["while processing 'value'"]
    assert request.messages == [{"content": "a", "role": "user"}]
    with pytest.raises(AttributeError):
        del request.model
    with pytest.raises(AttributeError):
        request.foo = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("store", True, True),
        ("stream", False, False),
        ("parallel_tool_calls", None, None),
        ("previous_response_id", "p", "p"),
        ("user", "u", "u"),
        ("service_tier", "auto", "auto"),
        ("max_output_tokens", True, 1),
        ("max_tool_calls", 2**64 - 1, 2**64 - 1),
        ("top_logprobs", 0, 0),
        ("truncation", "auto", "auto"),
        ("reasoning", {"b": 1, "a": 2}, {"a": 2, "b": 1}),
        ("include", (1, 2), [1, 2]),
        ("metadata", float("nan"), None),
    ],
)
def test_typed_request_properties(name: str, value: Any, expected: Any) -> None:
    request = AnnotatedLLMRequest([])
    setattr(request, name, value)
    assert getattr(request, name) == expected


@pytest.mark.parametrize(
    ("name", "value", "error", "message"),
    [
        ("store", 1, TypeError, "'int' object is not an instance of 'bool'"),
        ("stream", "s", TypeError, "'str' object is not an instance of 'bool'"),
        ("user", True, TypeError, "'bool' object is not an instance of 'str'"),
        ("service_tier", [1], TypeError, "'list' object is not an instance of 'str'"),
        ("max_output_tokens", 1.5, TypeError, "'float' object cannot be interpreted as an integer"),
        ("max_tool_calls", -1, OverflowError, "can't convert negative int to unsigned"),
        ("top_logprobs", 2**64, OverflowError, "int too big to convert"),
        ("truncation", 2**64, ValueError, "invalid truncation: JSON number out of range"),
        ("metadata", {1: 2}, ValueError, "invalid metadata: unexpected type: 'int' object is not an instance of 'str'"),
        ("include", object(), ValueError, "invalid include: unsupported type object"),
    ],
)
def test_typed_request_property_errors(name: str, value: Any, error: type[Exception], message: str) -> None:
    request = AnnotatedLLMRequest([])
    with pytest.raises(error) as info:
        setattr(request, name, value)
    assert str(info.value) == message
    if error is not ValueError:
        assert info.value.__notes__ == ["while processing 'value'"]


# --- request: helpers and repr --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "kwargs", "expected"),
    [
        ([], {}, (None, None, False)),
        ([], {"instructions": ""}, ("", None, False)),
        ([{"role": "system", "content": "S"}], {"instructions": [{"type": "image", "image": 1}]}, ("S", None, False)),
        (
            [],
            {
                "instructions": [
                    {"type": "image", "image": 1},
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": "b"},
                ]
            },
            ("a", None, False),
        ),
        ([{"role": "developer", "content": "D"}, {"role": "system", "content": "S"}], {}, ("D", None, False)),
        ([{"role": "system", "content": []}, {"role": "developer", "content": "S2"}], {}, ("S2", None, False)),
        (
            [
                {"role": "user", "content": "u1"},
                {"role": "user", "content": "u2"},
                {"role": "assistant", "content": "a"},
            ],
            {},
            (None, "u2", False),
        ),
        (
            [{"role": "user", "content": "u1"}, {"role": "user", "content": [{"type": "image", "image": 1}]}],
            {},
            (None, "u1", False),
        ),
        ([{"role": "user", "content": "u1"}, {"role": "user", "content": ""}], {}, (None, "", False)),
        ([{"role": "assistant", "tool_calls": []}], {}, (None, None, False)),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "i", "type": "function", "function": {"name": "f", "arguments": ""}}],
                }
            ],
            {},
            (None, None, True),
        ),
        ([{"role": "tool_call", "call_id": "c", "name": "n", "arguments": "{}"}], {}, (None, None, True)),
        (
            [{"role": "assistant", "content": [{"type": "tool_use", "id": "i", "name": "n", "input": {}}]}],
            {},
            (None, None, True),
        ),
        (
            [{"role": "user", "content": [{"type": "tool_use", "id": "i", "name": "n", "input": {}}]}],
            {},
            (None, None, False),
        ),
        ([], {"tools": [{"type": "function", "function": {"name": "f"}}]}, (None, None, False)),
    ],
)
def test_request_helpers(messages: list[Any], kwargs: dict[str, Any], expected: tuple[Any, ...]) -> None:
    request = AnnotatedLLMRequest(messages, **kwargs)
    assert (request.system_prompt(), request.last_user_message(), request.has_tool_calls()) == expected


def test_request_repr() -> None:
    assert repr(AnnotatedLLMRequest([])) == "<AnnotatedLLMRequest messages=0 model=None>"
    request = AnnotatedLLMRequest([{"role": "user", "content": "a"}], model='a"b\né\x01')
    assert repr(request) == '<AnnotatedLLMRequest messages=1 model=Some("a\\"b\\né\\u{1}")>'


# --- request: JSON form ---------------------------------------------------------------------------------------


def test_request_json_form() -> None:
    request = AnnotatedLLMRequest(
        [{"role": "user", "content": "u"}],
        model="m",
        params={"temperature": float("nan"), "stop": "x"},
        extra={"zz": {"b": 1, "a": 2}, "unknownz": None},
    )
    request.store = True
    request.truncation = float("nan")  # kept as an explicit null
    expected = {
        "messages": [{"content": "u", "role": "user"}],
        "model": "m",
        "params": {"stop": ["x"], "temperature": None},
        "store": True,
        "truncation": None,
        "unknownz": None,
        "zz": {"a": 2, "b": 1},
    }
    assert ordered(request._to_json()) == ordered(expected)


def test_request_json_extra_wins_over_fields() -> None:
    request = AnnotatedLLMRequest([], model="m", tools=[], extra={"model": "x", "params": 5})
    assert request._to_json() == {"messages": [], "model": "x", "params": 5, "tools": []}


def test_request_json_is_a_fresh_copy() -> None:
    request = AnnotatedLLMRequest([{"role": "user", "content": "u"}], extra={"a": {"b": 1}})
    data: Any = request._to_json()
    data["messages"][0]["role"] = "x"
    data["a"]["b"] = 2
    assert request._to_json() == {"a": {"b": 1}, "messages": [{"content": "u", "role": "user"}]}


def test_request_from_json_round_trip() -> None:
    data: dict[str, Any] = {
        "api_specific": {"api": "openai_responses", "background": True, "text": {"format": {"type": "text"}}},
        "include": ["x"],
        "instructions": "ins",
        "max_output_tokens": 5,
        "messages": [
            {
                "content": [{"text": "hi", "type": "text"}, {"image": {"image_url": "u"}, "type": "image"}],
                "role": "user",
            },
            {"arguments": {}, "call_id": "c", "id": "fc", "name": "f", "role": "tool_call"},
            {"call_id": "c", "output": "o", "role": "tool_result"},
        ],
        "model": "m",
        "params": {"max_tokens": 5, "temperature": 0.2},
        "previous_response_id": "p",
        "reasoning": {"effort": "low"},
        "store": False,
        "tool_choice": "required",
        "tools": [{"function": {"name": "f", "parameters": {}}, "type": "function"}],
        "truncation": "auto",
        "unknownz": 1,
    }
    request = AnnotatedLLMRequest._from_json(data)
    assert request.extra == {"unknownz": 1}
    assert request.store is False
    assert request.max_output_tokens == 5
    assert ordered(request._to_json()) == ordered(data)
    assert ordered(AnnotatedLLMRequest._from_json(request._to_json())._to_json()) == ordered(data)


def test_request_from_json_validates_like_the_constructor() -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMRequest._from_json({"messages": [{"role": "bogus"}]})
    assert str(info.value) == MSG + f"unknown variant `bogus`, {ROLES}"
    with pytest.raises(ValueError, match=r"^invalid params: TypeError: must be real number, not str$"):
        AnnotatedLLMRequest._from_json({"messages": [], "params": {"temperature": "x"}})
    with pytest.raises(ValueError, match=r"^invalid store: 'int' object is not an instance of 'bool'$"):
        AnnotatedLLMRequest._from_json({"messages": [], "store": 1})
    with pytest.raises(ValueError, match="missing field `messages`"):
        AnnotatedLLMRequest._from_json({})
    # None means absent, except for messages.
    assert AnnotatedLLMRequest._from_json({"messages": [], "model": None})._to_json() == {"messages": []}


# --- response ------------------------------------------------------------------------------------------------


def response_view(response: AnnotatedLLMResponse) -> list[Any]:
    return [
        response.id,
        response.model,
        response.message,
        response.tool_calls,
        response.finish_reason,
        response.usage,
        response.optimization_summary,
        response.api_specific,
        response.extra,
    ]


def test_response_defaults_and_repr() -> None:
    response = AnnotatedLLMResponse()
    assert response_view(response) == [None, None, None, None, None, None, None, None, {}]
    assert response._to_json() == {}
    assert repr(response) == "<AnnotatedLLMResponse id=None model=None>"
    assert repr(AnnotatedLLMResponse(id="c1", model="gpt")) == '<AnnotatedLLMResponse id=Some("c1") model=Some("gpt")>'


def test_response_fields() -> None:
    response = AnnotatedLLMResponse(
        "i",
        "m",
        [{"type": "text", "text": "hi"}],
        [{"id": "t", "name": "f", "arguments": {"b": 1, "a": 2}, "zz": 1}],
        "tool_use",
        {
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "cache_read_tokens": 4,
            "cache_write_tokens": 5,
            "zz": 1,
        },
        {"api": "openai_chat", "system_fingerprint": "fp", "logprobs": None, "zz": 1},
        {"b": None, "a": 1},
    )
    assert response_view(response) == [
        "i",
        "m",
        [{"text": "hi", "type": "text"}],
        [{"arguments": {"a": 2, "b": 1}, "id": "t", "name": "f"}],
        "tool_use",
        {
            "cache_read_tokens": 4,
            "cache_write_tokens": 5,
            "completion_tokens": 2,
            "prompt_tokens": 1,
            "total_tokens": 3,
        },
        None,
        {"api": "openai_chat", "system_fingerprint": "fp"},
        {"a": 1, "b": None},
    ]
    assert response.response_text() == "hi"
    assert response.has_tool_calls() is True


@pytest.mark.parametrize(
    ("reason", "getter", "json_form"),
    [
        ("complete", "complete", "complete"),
        ("length", "length", "length"),
        ("tool_use", "tool_use", "tool_use"),
        ("content_filter", "content_filter", "content_filter"),
        ("stop", "stop", {"unknown": "stop"}),
        ("unknown", "unknown", {"unknown": "unknown"}),
        ("", "", {"unknown": ""}),
        ({"unknown": "x"}, "x", {"unknown": "x"}),
        ({"unknown": "complete"}, "complete", {"unknown": "complete"}),  # not re-normalised
        ({"complete": None}, "complete", "complete"),
    ],
)
def test_finish_reason_normalisation(reason: Any, getter: str, json_form: Any) -> None:
    response = AnnotatedLLMResponse(finish_reason=reason)
    assert response.finish_reason == getter
    assert response._to_json() == {"finish_reason": json_form}
    assert AnnotatedLLMResponse._from_json(response._to_json()).finish_reason == getter


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"message": {"role": "assistant", "content": "hello"}}, f"invalid message: {UNTAGGED}"),
        ({"message": 1}, f"invalid message: {UNTAGGED}"),
        ({"message": object()}, "invalid message: ValueError: Failed to convert to JSON: unsupported type object"),
        (
            {"message": {1: 2}},
            "invalid message: ValueError: Failed to convert to JSON: "
            "unexpected type: 'int' object is not an instance of 'str'",
        ),
        ({"tool_calls": 1}, "invalid tool_calls: invalid type: integer `1`, expected a sequence"),
        ({"tool_calls": [1]}, "invalid tool_calls: invalid type: integer `1`, expected struct ResponseToolCall"),
        ({"tool_calls": [{"id": "i", "name": "n"}]}, "invalid tool_calls: missing field `arguments`"),
        ({"tool_calls": float("nan")}, "invalid tool_calls: invalid type: null, expected a sequence"),
        ({"tool_calls": [["i", "n", 1, 2]]}, "invalid tool_calls: invalid length 4, expected fewer elements in array"),
        ({"finish_reason": 1}, "invalid finish_reason: invalid type: integer `1`, expected string or map"),
        ({"finish_reason": ["stop"]}, "invalid finish_reason: invalid type: sequence, expected string or map"),
        (
            {"finish_reason": {"other": "x"}},
            "invalid finish_reason: unknown variant `other`, expected one of `complete`, `length`, `tool_use`, "
            "`content_filter`, `unknown`",
        ),
        ({"finish_reason": {"unknown": 1}}, "invalid finish_reason: invalid type: integer `1`, expected a string"),
        (
            {"finish_reason": {"unknown": "x", "zz": 1}},
            "invalid finish_reason: invalid value: map, expected map with a single key",
        ),
        ({"finish_reason": {"complete": 1}}, "invalid finish_reason: invalid type: integer `1`, expected unit"),
        ({"usage": 1}, "invalid usage: invalid type: integer `1`, expected struct Usage"),
        ({"usage": {"prompt_tokens": -1}}, "invalid usage: invalid value: integer `-1`, expected u64"),
        ({"usage": {"prompt_tokens": 1.5}}, "invalid usage: invalid type: floating point `1.5`, expected u64"),
        ({"usage": {"prompt_tokens": True}}, "invalid usage: invalid type: boolean `true`, expected u64"),
        ({"usage": {"cost": {}}}, "invalid usage: missing field `source`"),
        (
            {"usage": {"cost": {"source": "x"}}},
            "invalid usage: unknown variant `x`, expected `model_pricing` or `provider_reported`",
        ),
        (
            {"usage": {"cost": {"source": "model_pricing", "currency": None}}},
            "invalid usage: invalid type: null, expected a string",
        ),
        ({"usage": (1,)}, "invalid usage: invalid length 1, expected struct Usage with 6 elements"),
        ({"api_specific": {}}, "invalid api_specific: missing field `api`"),
        (
            {"api_specific": {"api": "gemini"}},
            "invalid api_specific: unknown variant `gemini`, expected one of `openai_chat`, `openai_responses`, "
            "`anthropic_messages`, `oci_genai`, `gemini_generate_content`, `custom`",
        ),
        ({"api_specific": {"api": "custom", "api_name": "n"}}, "invalid api_specific: missing field `data`"),
        (
            {"api_specific": {"api": "openai_responses", "store": "x"}},
            'invalid api_specific: invalid type: string "x", expected a boolean',
        ),
        ({"api_specific": (1,)}, "invalid api_specific: invalid type: integer `1`, expected variant identifier"),
        ({"extra": 1}, "invalid extra: invalid type: integer `1`, expected a map"),
        ({"extra": (1,)}, "invalid extra: invalid type: sequence, expected a map"),
    ],
)
def test_response_validation_messages(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMResponse(**kwargs)
    assert str(info.value) == message


def test_response_id_and_model_type_errors_come_first() -> None:
    with pytest.raises(TypeError) as info:
        AnnotatedLLMResponse(id=1, message=1)  # type: ignore[arg-type]
    assert (str(info.value), info.value.__notes__) == (
        "'int' object is not an instance of 'str'",
        ["while processing 'id'"],
    )
    with pytest.raises(TypeError) as info:
        AnnotatedLLMResponse(model=b"m")  # type: ignore[arg-type]
    assert (str(info.value), info.value.__notes__) == (
        "'bytes' object is not an instance of 'str'",
        ["while processing 'model'"],
    )
    # Then message, tool_calls, finish_reason, usage, api_specific, extra.
    with pytest.raises(ValueError, match=r"^invalid tool_calls"):
        AnnotatedLLMResponse(usage=1, extra=1, tool_calls=1, finish_reason=1, api_specific=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^invalid finish_reason"):
        AnnotatedLLMResponse(usage=1, finish_reason=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^invalid api_specific"):
        AnnotatedLLMResponse(extra=1, api_specific=1)  # type: ignore[arg-type]


def test_response_usage_and_cost() -> None:
    usage = AnnotatedLLMResponse(
        usage={
            "prompt_tokens": None,
            "cost": {"total": 1, "source": {"model_pricing": None}, "input": 0, "pricing_model": "m", "zz": 1},
        }
    ).usage
    assert ordered(usage) == ordered(
        {"cost": {"currency": "USD", "input": 0.0, "pricing_model": "m", "source": "model_pricing", "total": 1.0}}
    )
    cost = AnnotatedLLMResponse(usage={"cost": {"total": float("nan"), "source": "provider_reported"}}).usage
    assert cost == {"cost": {"currency": "USD", "source": "provider_reported"}}


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (None, None),
        ("hi", "hi"),
        ("", ""),
        ([], None),
        ([{"type": "image", "image": 1}, {"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "a"),
        ([{"type": "refusal", "refusal": "r"}], None),
    ],
)
def test_response_text(message: Any, text: str | None) -> None:
    assert AnnotatedLLMResponse(message=message).response_text() == text


def test_response_has_tool_calls() -> None:
    assert AnnotatedLLMResponse().has_tool_calls() is False
    assert AnnotatedLLMResponse(tool_calls=[]).has_tool_calls() is False
    assert AnnotatedLLMResponse(tool_calls=[{"id": "i", "name": "n", "arguments": None}]).has_tool_calls() is True
    assert (
        AnnotatedLLMResponse(message=[{"type": "tool_use", "id": "i", "name": "n", "input": {}}]).has_tool_calls()
        is False
    )


def test_response_is_read_only_and_getters_copy() -> None:
    response = AnnotatedLLMResponse(
        message=[{"type": "text", "text": "a"}],
        tool_calls=[{"id": "i", "name": "n", "arguments": {}}],
        usage={"prompt_tokens": 1},
        extra={"a": 1},
    )
    message: Any = response.message
    message[0]["text"] = "b"
    response.tool_calls.append({})  # type: ignore[union-attr]
    response.usage["prompt_tokens"] = 2  # type: ignore[index]
    response.extra["a"] = 2
    assert response.message == [{"text": "a", "type": "text"}]
    assert response.tool_calls == [{"arguments": {}, "id": "i", "name": "n"}]
    assert response.usage == {"prompt_tokens": 1}
    assert response.extra == {"a": 1}
    with pytest.raises(AttributeError):
        response.id = "x"  # type: ignore[misc]


def test_response_json_form() -> None:
    response = AnnotatedLLMResponse(id="i", finish_reason="stop", extra={"zz": 1, "b": None, "id": "x"})
    # None fields are omitted, extra is flattened in (and wins over a field of the same name).
    assert ordered(response._to_json()) == ordered(
        {"b": None, "finish_reason": {"unknown": "stop"}, "id": "x", "zz": 1}
    )


def test_response_from_json_round_trip() -> None:
    data: dict[str, Any] = {
        "api_specific": {
            "api": "anthropic_messages",
            "content_blocks": [{"text": "hello", "type": "text"}],
            "object_type": "message",
            "role": "assistant",
            "stop_reason": "tool_use",
        },
        "created": 1,
        "finish_reason": "tool_use",
        "id": "m1",
        "message": "hello",
        "model": "claude",
        "tool_calls": [{"arguments": {"a": 1}, "id": "tu", "name": "f"}],
        "usage": {"cache_read_tokens": 2, "completion_tokens": 6, "prompt_tokens": 5, "total_tokens": 11},
    }
    response = AnnotatedLLMResponse._from_json(data)
    assert response.extra == {"created": 1}
    assert response.finish_reason == "tool_use"
    assert ordered(response._to_json()) == ordered(data)
    # A key literally named "extra" is just another unknown field.
    assert AnnotatedLLMResponse._from_json({"extra": {"a": 1}}).extra == {"extra": {"a": 1}}
    assert AnnotatedLLMResponse._from_json({"id": None, "usage": None})._to_json() == {}


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            {"finish_reason": "stop"},
            "unknown variant `stop`, expected one of `complete`, `length`, `tool_use`, `content_filter`, `unknown`",
        ),
        ({"finish_reason": "unknown"}, "invalid type: unit variant, expected newtype variant"),
        ({"id": 1}, "invalid type: integer `1`, expected a string"),
        ({"message": {"a": 1}}, UNTAGGED),
        # Entries are read in key order, whatever order the dict has.
        ({"model": 1, "id": 2}, "invalid type: integer `2`, expected a string"),
        (
            {"usage": 1, "api_specific": 1},
            "invalid type: integer `1`, expected internally tagged enum ApiSpecificResponse",
        ),
        ({"usage": {"total_tokens": "x", "cache_read_tokens": "y"}}, 'invalid type: string "y", expected u64'),
        ({"usage": [1, 2, 3, 4, 5, None, 7]}, "invalid length 7, expected fewer elements in array"),
        ({"optimization_summary": {}}, "missing field `schema_version`"),
        ({"optimization_summary": 1}, "invalid type: integer `1`, expected struct LlmOptimizationSummary"),
        ({"optimization_summary": []}, "invalid length 0, expected struct LlmOptimizationSummary with 14 elements"),
    ],
)
def test_response_from_json_messages(data: dict[str, Any], detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMResponse._from_json(data)
    assert str(info.value) == f"invalid annotated_response: {detail}"


SUMMARY: dict[str, Any] = {
    "schema_version": "1",
    "calculation_version": "1",
    "status": "partial",
    "tokens_saved": {},
    "contributions": [],
}


def test_optimization_summary() -> None:
    data: dict[str, Any] = {
        "optimization_summary": {
            **SUMMARY,
            "tokens_saved": {"prompt_tokens": 5, "zz": 1},
            "contributions": [{"producer": "p", "kind": "k", "zz": 1, "id": "123E4567E89B12D3A456426614174000"}],
            "limitations": [],
            "estimated_cost_saved": 1,
            "baseline_model": {"model": "m", "provider": None, "z": 1},
            "zz": 1,
        }
    }
    summary = AnnotatedLLMResponse._from_json(data).optimization_summary
    assert ordered(summary) == ordered(
        {
            "baseline_model": {"model": "m"},
            "calculation_version": "1",
            "contributions": [
                {"applied": False, "id": "123e4567-e89b-12d3-a456-426614174000", "kind": "k", "producer": "p", "zz": 1}
            ],
            "estimated_cost_saved": 1.0,
            "schema_version": "1",
            "status": "partial",
            "tokens_saved": {"prompt_tokens": 5},
        }
    )


@pytest.mark.parametrize(
    ("patch", "detail"),
    [
        ({"status": "bogus"}, "unknown variant `bogus`, expected `complete` or `partial`"),
        ({"tokens_saved": None}, "invalid type: null, expected struct LlmOptimizationTokens"),
        ({"contributions": [{}]}, "missing field `producer`"),
        (
            {"contributions": [{"producer": "p", "kind": "k", "applied": None}]},
            "invalid type: null, expected a boolean",
        ),
        ({"limitations": None}, "invalid type: null, expected a sequence"),
        ({"baseline_model": {"provider": "m"}}, "missing field `model`"),
        (
            {"contributions": [{"producer": "p", "kind": "k", "id": "xyz"}]},
            "UUID parsing failed: invalid character: expected an optional prefix of `urn:uuid:` followed by "
            "[0-9a-fA-F-], found `x` at 1",
        ),
        (
            {"contributions": [{"producer": "p", "kind": "k", "id": ""}]},
            "UUID parsing failed: invalid length: expected length 32 for simple format, found 0",
        ),
    ],
)
def test_optimization_summary_validation(patch: dict[str, Any], detail: str) -> None:
    with pytest.raises(ValueError) as info:
        AnnotatedLLMResponse._from_json({"optimization_summary": {**SUMMARY, **patch}})
    assert str(info.value) == f"invalid annotated_response: {detail}"


# --- type checks ---------------------------------------------------------------------------------------------


def test_type_predicates() -> None:
    assert is_annotated_request(AnnotatedLLMRequest([])) is True
    assert is_annotated_request(AnnotatedLLMResponse()) is False
    assert is_annotated_request({"messages": []}) is False
    assert is_annotated_response(AnnotatedLLMResponse()) is True
    assert is_annotated_response(AnnotatedLLMRequest([])) is False
    assert is_annotated_response(None) is False
