"""The reference's data model for annotated requests and responses, built from ``annotated_serde`` readers."""

from __future__ import annotations

from nemo_relay._core.annotated_serde import (
    _DEF,
    _DEF_SKIP_EMPTY,
    _NUL,
    _OPT,
    _OPT_DEF,
    _de_any,
    _de_bool,
    _de_f64,
    _de_i64,
    _de_str,
    _de_u64,
    _DeError,
    _Field,
    _Struct,
    _Tagged,
    _unit_enum,
    _uuid,
    _vec,
)
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.annotated_serde import _De


# --- request schema ---------------------------------------------------------------------------------------


def _flat(expecting: str, fields: list[_Field]) -> _Struct:
    return _Struct(expecting, fields, flatten=True)


_PARTS = _Tagged(
    "ContentPart",
    "type",
    [
        ("text", _flat("struct variant ContentPart::Text", [_Field("text", _de_str)])),
        (
            "image_url",
            _flat(
                "struct variant ContentPart::ImageUrl",
                [
                    _Field(
                        "image_url",
                        _Struct("struct ImageUrl", [_Field("url", _de_str), _Field("detail", _de_str, _OPT)]),
                    )
                ],
            ),
        ),
        ("image", _flat("struct variant ContentPart::Image", [_Field("image", _de_any)])),
        ("audio", _flat("struct variant ContentPart::Audio", [_Field("audio", _de_any)])),
        ("file", _flat("struct variant ContentPart::File", [_Field("file", _de_any)])),
        ("refusal", _flat("struct variant ContentPart::Refusal", [_Field("refusal", _de_str)])),
        (
            "tool_use",
            _flat(
                "struct variant ContentPart::ToolUse",
                [_Field("id", _de_str), _Field("name", _de_str), _Field("input", _de_any)],
            ),
        ),
        (
            "tool_result",
            _flat(
                "struct variant ContentPart::ToolResult",
                [_Field("tool_use_id", _de_str), _Field("content", _de_any), _Field("is_error", _de_bool, _OPT)],
            ),
        ),
        (
            "provider_native",
            _Struct(
                "struct variant ContentPart::ProviderNative",
                [_Field("provider", _de_str), _Field("kind", _de_str), _Field("value", _de_any)],
            ),
        ),
    ],
)

_CONTENT_MISMATCH = "data did not match any variant of untagged enum MessageContent"


def _de_content(c: Any, js: bool) -> JsonValue:
    """``MessageContent``: a string or a list of content parts; any mismatch gives one generic message."""
    if type(c) is str:
        return c
    if type(c) is list:
        try:
            return [_PARTS(part, js) for part in c]
        except _DeError:
            pass
    elif type(c) is bytes:
        try:
            return c.decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise _DeError(_CONTENT_MISMATCH)


_TOOL_CALL = _Struct(
    "struct ToolCall",
    [
        _Field("id", _de_str),
        _Field("type", _de_str),
        _Field("function", _Struct("struct FunctionCall", [_Field("name", _de_str), _Field("arguments", _de_str)])),
    ],
)


def _text_message(variant: str) -> _Struct:
    return _Struct(
        f"struct variant Message::{variant}", [_Field("content", _de_content), _Field("name", _de_str, _OPT)]
    )


def _native(expecting: str) -> _Struct:
    return _Struct(expecting, [_Field("provider", _de_str), _Field("kind", _de_str), _Field("value", _de_any)])


_MESSAGE = _Tagged(
    "Message",
    "role",
    [
        ("system", _text_message("System")),
        ("user", _text_message("User")),
        ("developer", _text_message("Developer")),
        (
            "assistant",
            _Struct(
                "struct variant Message::Assistant",
                [
                    _Field("content", _de_content, _OPT),
                    _Field("tool_calls", _vec(_TOOL_CALL), _OPT),
                    _Field("name", _de_str, _OPT),
                ],
            ),
        ),
        (
            "tool",
            _Struct("struct variant Message::Tool", [_Field("content", _de_content), _Field("tool_call_id", _de_str)]),
        ),
        (
            "function",
            _Struct("struct variant Message::Function", [_Field("content", _de_str, _NUL), _Field("name", _de_str)]),
        ),
        (
            "tool_call",
            _flat(
                "struct variant Message::ToolCallItem",
                [
                    _Field("id", _de_str, _OPT),
                    _Field("call_id", _de_str),
                    _Field("name", _de_str),
                    _Field("arguments", _de_any),
                ],
            ),
        ),
        (
            "tool_result",
            _flat(
                "struct variant Message::ToolResultItem",
                [_Field("id", _de_str, _OPT), _Field("call_id", _de_str), _Field("output", _de_any)],
            ),
        ),
        ("provider_native", _native("struct variant Message::ProviderNative")),
    ],
)

_TOOL = _Tagged(
    "ToolDefinition",
    "type",
    [
        (
            "function",
            _flat(
                "struct variant ToolDefinition::Function",
                [
                    _Field(
                        "function",
                        _flat(
                            "struct FunctionDefinition",
                            [
                                _Field("name", _de_str),
                                _Field("description", _de_str, _OPT),
                                _Field("parameters", _de_any, _OPT),
                                _Field("strict", _de_bool, _OPT),
                            ],
                        ),
                    )
                ],
            ),
        ),
        ("provider_native", _native("struct variant ToolDefinition::ProviderNative")),
    ],
)

_TOOL_CHOICE_MODES = ("auto", "none", "required")
_TOOL_CHOICE_FUNCTION = _Struct(
    "struct ToolChoiceFunction",
    [_Field("type", _de_str), _Field("function", _Struct("struct ToolChoiceFunctionName", [_Field("name", _de_str)]))],
)
_TOOL_CHOICE_NATIVE = _native("struct ToolChoiceProviderNative")


def _de_tool_choice(c: Any, js: bool) -> JsonValue:
    """``ToolChoice``: a mode string, a named function, or a provider-native directive (tried in that order)."""
    if type(c) is str and c in _TOOL_CHOICE_MODES:
        return c
    if type(c) is dict and len(c) == 1:
        ((key, value),) = c.items()
        if key in _TOOL_CHOICE_MODES and value is None:
            return key  # type: ignore[no-any-return]
    for struct in (_TOOL_CHOICE_FUNCTION, _TOOL_CHOICE_NATIVE):
        try:
            return struct(c, js)
        except _DeError:
            pass
    raise _DeError("data did not match any variant of untagged enum ToolChoice")


def _options(variant: str, fields: list[tuple[str, _De]]) -> _Struct:
    return _Struct(f"struct variant {variant}", [_Field(name, de, _OPT) for name, de in fields])


_STRS = _vec(_de_str)
_ANYS = _vec(_de_any)

_API_SPECIFIC_REQUEST = _Tagged(
    "ApiSpecificRequest",
    "api",
    [
        (
            "anthropic_messages",
            _options(
                "ApiSpecificRequest::AnthropicMessages",
                [
                    ("cache_control", _de_any),
                    ("container", _de_str),
                    ("inference_geo", _de_str),
                    ("output_config", _de_any),
                    ("thinking", _de_any),
                    ("top_k", _de_u64),
                    ("user_profile_id", _de_str),
                ],
            ),
        ),
        (
            "openai_chat",
            _options(
                "ApiSpecificRequest::OpenAIChat",
                [
                    ("audio", _de_any),
                    ("frequency_penalty", _de_f64),
                    ("function_call", _de_any),
                    ("functions", _ANYS),
                    ("logit_bias", _de_any),
                    ("logprobs", _de_bool),
                    ("modalities", _STRS),
                    ("moderation", _de_any),
                    ("n", _de_u64),
                    ("prediction", _de_any),
                    ("presence_penalty", _de_f64),
                    ("prompt_cache_key", _de_str),
                    ("prompt_cache_options", _de_any),
                    ("prompt_cache_retention", _de_str),
                    ("reasoning_effort", _de_str),
                    ("response_format", _de_any),
                    ("safety_identifier", _de_str),
                    ("seed", _de_i64),
                    ("stream_options", _de_any),
                    ("verbosity", _de_str),
                    ("web_search_options", _de_any),
                ],
            ),
        ),
        (
            "openai_responses",
            _options(
                "ApiSpecificRequest::OpenAIResponses",
                [
                    ("background", _de_bool),
                    ("context_management", _de_any),
                    ("conversation", _de_any),
                    ("moderation", _de_any),
                    ("prompt", _de_any),
                    ("prompt_cache_key", _de_str),
                    ("prompt_cache_options", _de_any),
                    ("prompt_cache_retention", _de_str),
                    ("safety_identifier", _de_str),
                    ("stream_options", _de_any),
                    ("text", _de_any),
                ],
            ),
        ),
        (
            "oci_genai",
            _options(
                "ApiSpecificRequest::OCIGenAI",
                [("compartment_id", _de_str), ("serving_mode", _de_any), ("api_format", _de_str)],
            ),
        ),
        (
            "custom",
            _Struct(
                "struct variant ApiSpecificRequest::Custom", [_Field("api_name", _de_str), _Field("data", _de_any)]
            ),
        ),
    ],
)


# --- response schema --------------------------------------------------------------------------------------

_FINISH_REASONS = ("complete", "length", "tool_use", "content_filter")
_de_finish_reason = _unit_enum(_FINISH_REASONS, "unknown")

_COST = _Struct(
    "struct CostEstimate",
    [
        _Field("total", _de_f64, _OPT),
        _Field("currency", _de_str, _DEF, "USD"),
        _Field("input", _de_f64, _OPT),
        _Field("output", _de_f64, _OPT),
        _Field("cache_read", _de_f64, _OPT),
        _Field("cache_write", _de_f64, _OPT),
        _Field("source", _unit_enum(("model_pricing", "provider_reported"))),
        _Field("pricing_provider", _de_str, _OPT),
        _Field("pricing_model", _de_str, _OPT),
        _Field("pricing_as_of", _de_str, _OPT),
        _Field("pricing_source", _de_str, _OPT),
    ],
)

_USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens")
_USAGE = _Struct(
    "struct Usage", [_Field(name, _de_u64, _OPT) for name in _USAGE_COUNTS] + [_Field("cost", _COST, _OPT)]
)

_RESPONSE_TOOL_CALL = _Struct(
    "struct ResponseToolCall", [_Field("id", _de_str), _Field("name", _de_str), _Field("arguments", _de_any)]
)

_OPTIMIZATION_MODEL = _Struct(
    "struct LlmOptimizationModel", [_Field("model", _de_str), _Field("provider", _de_str, _OPT_DEF)]
)
_OPTIMIZATION_TOKENS = _Struct(
    "struct LlmOptimizationTokens",
    [
        _Field(name, _de_u64, _OPT)
        for name in ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens")
    ],
    default_all=True,
)
_OPTIMIZATION_CONTRIBUTION = _flat(
    "struct LlmOptimizationContribution",
    [
        _Field("producer", _de_str),
        _Field("kind", _de_str),
        _Field("applied", _de_bool, _DEF, False),
        _Field("id", _uuid, _OPT),
    ],
)
_OPTIMIZATION_SUMMARY = _Struct(
    "struct LlmOptimizationSummary",
    [
        _Field("schema_version", _de_str),
        _Field("calculation_version", _de_str),
        _Field("status", _unit_enum(("complete", "partial"))),
        _Field("limitations", _STRS, _DEF_SKIP_EMPTY, []),
        _Field("baseline_model", _OPTIMIZATION_MODEL, _OPT_DEF),
        _Field("effective_model", _OPTIMIZATION_MODEL, _OPT_DEF),
        _Field("effective_usage", _USAGE, _OPT_DEF),
        _Field("baseline_usage", _USAGE, _OPT_DEF),
        _Field("tokens_saved", _OPTIMIZATION_TOKENS),
        _Field("baseline_cost", _COST, _OPT_DEF),
        _Field("actual_cost", _COST, _OPT_DEF),
        _Field("estimated_cost_saved", _de_f64, _OPT_DEF),
        _Field("currency", _de_str, _OPT_DEF),
        _Field("contributions", _vec(_OPTIMIZATION_CONTRIBUTION)),
    ],
)


def _de_optimization_summary(c: Any, js: bool) -> JsonValue:
    out = _OPTIMIZATION_SUMMARY(c, js)
    if out.get("limitations") == []:  # an empty list is omitted from the JSON form
        del out["limitations"]
    return out


_API_SPECIFIC_RESPONSE = _Tagged(
    "ApiSpecificResponse",
    "api",
    [
        (
            "openai_chat",
            _options(
                "ApiSpecificResponse::OpenAIChat",
                [("logprobs", _de_any), ("system_fingerprint", _de_str), ("service_tier", _de_str)],
            ),
        ),
        (
            "openai_responses",
            _options(
                "ApiSpecificResponse::OpenAIResponses",
                [
                    ("output_items", _ANYS),
                    ("status", _de_str),
                    ("incomplete_details", _de_any),
                    ("previous_response_id", _de_str),
                    ("store", _de_bool),
                    ("service_tier", _de_str),
                    ("truncation", _de_any),
                    ("reasoning", _de_any),
                    ("input_tokens_details", _de_any),
                    ("output_tokens_details", _de_any),
                ],
            ),
        ),
        (
            "anthropic_messages",
            _options(
                "ApiSpecificResponse::AnthropicMessages",
                [
                    ("object_type", _de_str),
                    ("role", _de_str),
                    ("stop_reason", _de_str),
                    ("stop_sequence", _de_str),
                    ("service_tier", _de_str),
                    ("container", _de_any),
                    ("content_blocks", _ANYS),
                ],
            ),
        ),
        (
            "oci_genai",
            _options("ApiSpecificResponse::OCIGenAI", [("api_format", _de_str), ("model_version", _de_str)]),
        ),
        ("gemini_generate_content", _flat("struct variant ApiSpecificResponse::GeminiGenerateContent", [])),
        (
            "custom",
            _Struct(
                "struct variant ApiSpecificResponse::Custom", [_Field("api_name", _de_str), _Field("data", _de_any)]
            ),
        ),
    ],
)
