"""OpenAI Chat Completions codec: ``/v1/chat/completions`` bodies to the annotated view and back.

The annotation keeps OpenAI's own message shapes (roles ``system``/``developer``/``user``/``assistant``/
``tool``/``function``, ``tool_calls``, typed content parts). Anything the view cannot hold exactly
becomes a ``provider_native`` component tagged ``openai_chat`` so that nothing is lost.

Encoding never rebuilds a body: it re-decodes the original (the baseline), compares, and patches only
what the annotation changed. The machinery for that is shared with the Responses codec (``common``,
``openai_common``).
"""

from __future__ import annotations

from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.codecs.common import (
    FieldReader,
    ResponseShape,
    as_list,
    as_object,
    check_api,
    json_equal,
    patch_extra,
    provider_native,
    set_or_drop,
    usage_json,
)
from nemo_relay._core.codecs.openai_common import (
    TEXT,
    cannot_encode,
    changed,
    decode_tool,
    decode_tool_choice,
    decoded_tool_call,
    dump_arguments,
    encode_tool,
    patch_array,
    patch_exact,
    patch_sampling,
    patch_tool_choice,
    patch_tools,
    read_tools,
    reported_cost,
    unknown_reason,
)
from nemo_relay._core.codecs.rustfmt import PART_FIELDS
from nemo_relay._core.errors import InvalidArgumentError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from nemo_relay._core.types import JsonObject, JsonValue

API = "OpenAI Chat"
PROVIDER = "openai_chat"
_SHAPE = ResponseShape(API, TEXT)


# Validated in the reference's order; each maps a body field to (reader kind, destination).
_TOP_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("model", "string", "model"),
    ("temperature", "number", "params"),
    ("top_p", "number", "params"),
    ("stop", "stop", "params"),
    ("max_completion_tokens", "uint", "params"),
    ("max_tokens", "uint", "params"),
    ("tools", "tools", "tools"),
    ("store", "boolean", "top"),
    ("user", "string", "top"),
    ("service_tier", "string", "top"),
    ("parallel_tool_calls", "boolean", "top"),
    ("top_logprobs", "uint", "top"),
    ("stream", "boolean", "top"),
    ("frequency_penalty", "number", "api"),
    ("functions", "array", "api"),
    ("logprobs", "boolean", "api"),
    ("modalities", "modalities", "api"),
    ("n", "uint", "api"),
    ("presence_penalty", "number", "api"),
    ("prompt_cache_key", "string", "api"),
    ("prompt_cache_retention", "string", "api"),
    ("reasoning_effort", "string", "api"),
    ("safety_identifier", "string", "api"),
    ("seed", "integer", "api"),
    ("verbosity", "string", "api"),
    ("metadata", "object", "top"),
    ("audio", "object", "api"),
    ("logit_bias", "object", "api"),
    ("moderation", "object", "api"),
    ("prediction", "object", "api"),
    ("prompt_cache_options", "object", "api"),
    ("response_format", "object", "api"),
    ("stream_options", "object", "api"),
    ("web_search_options", "object", "api"),
    ("function_call", "raw", "api"),
)
_API_KEYS = tuple(key for key, _, dest in _TOP_FIELDS if dest == "api")
_FIELD_ORDER = {key: index for index, (key, _, _) in enumerate(_TOP_FIELDS)}
_FIELD_KIND = {key: kind for key, kind, _ in _TOP_FIELDS}
_FIELD_DESTINATION = {key: destination for key, _, destination in _TOP_FIELDS}
# {"role", "content": str} maps 1:1. A tuple, not a set: a role may be any JSON value (lists do not hash).
_PLAIN_ROLES = ("system", "user", "developer", "assistant")
_FIRST_CLASS = ("user", "metadata", "store", "service_tier", "parallel_tool_calls", "top_logprobs", "stream")
# Responses-only annotation fields: Chat has nowhere to put them.
_FOREIGN_FIELDS = (
    "instructions",
    "reasoning",
    "include",
    "truncation",
    "previous_response_id",
    "max_output_tokens",
    "max_tool_calls",
)
_KNOWN_KEYS = frozenset(("messages", "tool_choice", *(key for key, _, _ in _TOP_FIELDS)))
_MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset(("role", "content", "name")),
    "developer": frozenset(("role", "content", "name")),
    "user": frozenset(("role", "content", "name")),
    "assistant": frozenset(("role", "content", "name", "tool_calls")),
    "tool": frozenset(("role", "content", "tool_call_id")),
    "function": frozenset(("role", "content", "name")),
}
_FINISH_REASONS: dict[str, str] = {
    "stop": "complete",
    "length": "length",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}


class OpenAIChatCodec(BuiltinCodec):
    """Codec for OpenAI Chat Completions requests, responses and ``chat.completion.chunk`` streams."""

    __slots__ = ()

    _relay_builtin_id = "openai_chat"
    provider = "openai"
    _response_shape = _SHAPE
    _response_type = "struct RawChatCompletion"

    def decode_parts(self, content: JsonObject, headers: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotation fields and ``extra`` (the unmapped body keys) of a Chat Completions request body."""
        if "messages" not in content:
            raise InvalidArgumentError(f"{API} request is missing messages")
        raw_messages = content["messages"]
        if not isinstance(raw_messages, list):
            raise InvalidArgumentError(f"{API} messages must be an array")
        plain = _PLAIN_ROLES
        messages: list[JsonValue] = [
            # The common shape is already in normal form: shared as is (neither the request body nor the
            # view ever changes a value in place), and checked inline, one call less per message.
            message
            if type(message) is dict
            and len(message) == 2
            and type(message.get("content")) is str
            and message.get("role") in plain
            else _decode_message(message)
            for message in raw_messages
        ]
        return _assemble_request(content, messages, _read_fields(content))

    def encode_parts(
        self,
        annotation: JsonObject,
        extra: JsonObject,
        baseline: JsonObject,
        before_extra: JsonObject,
        content: JsonObject,
    ) -> JsonValue:
        """``content`` patched where the annotation's fields and ``extra`` differ from ``baseline``/``before_extra``."""
        new_api = check_api(annotation.get("api_specific"), PROVIDER, API)
        _check_foreign_fields(annotation)
        _patch_messages(content, annotation, baseline)
        if changed(annotation, baseline, "model"):
            set_or_drop(content, "model", annotation.get("model"))
        _patch_params(content, as_object(annotation.get("params")), as_object(baseline.get("params")))
        patch_tools(content, annotation, baseline, _encode_tool)
        patch_tool_choice(content, annotation, baseline, PROVIDER, API, flat_function=False)
        for key in _FIRST_CLASS:
            if changed(annotation, baseline, key):
                set_or_drop(content, key, annotation.get(key))
        patch_exact(content, new_api, check_api(baseline.get("api_specific"), PROVIDER, API), _API_KEYS)
        patch_extra(content, extra, before_extra, json_equal)
        return content

    def decode_response_parts(self, response: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotated fields and the unknown top-level keys of a ``chat.completion`` object."""
        return _decode_response(response)

    def stream_aggregator(self) -> ChatStreamAggregator:
        """A fresh aggregator folding ``chat.completion.chunk`` objects into a ``chat.completion``."""
        return ChatStreamAggregator()


# --- request decode -------------------------------------------------------------------------------------


def _read_fields(content: JsonObject) -> dict[str, JsonValue]:
    reader = FieldReader(content, API)
    values: dict[str, JsonValue] = {}  # the fields the body has, in field order (absent ones read as None)
    # Only the fields the body has (a handful of ~35), checked in the reference's field order, which
    # decides which error wins when several are wrong.
    for key in sorted([key for key in content if key in _FIELD_ORDER], key=_FIELD_ORDER.__getitem__):
        kind = _FIELD_KIND[key]
        if kind == "stop":
            values[key] = _read_stop(content.get(key))
        elif kind == "modalities":
            values[key] = _read_modalities(content.get(key))
        elif kind == "tools":
            values[key] = read_tools(content, API, _decode_tool)
        else:
            values[key] = reader.read(key, kind)
    return values


def _read_stop(stop: JsonValue) -> list[JsonValue] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if not isinstance(stop, list):
        raise InvalidArgumentError(f"{API} stop must be a string, array, or null")
    for item in stop:
        if not isinstance(item, str):
            raise InvalidArgumentError(f"invalid {API} stop value: {TEXT.invalid_type(item, 'a string')}")
    return list(stop)


def _read_modalities(modalities: JsonValue) -> list[JsonValue] | None:
    if modalities is None:
        return None
    if not isinstance(modalities, list):
        raise InvalidArgumentError(f"invalid {API} modalities: {TEXT.invalid_type(modalities, 'a sequence')}")
    for item in modalities:
        if not isinstance(item, str):
            raise InvalidArgumentError(f"invalid {API} modalities: {TEXT.invalid_type(item, 'a string')}")
    return list(modalities)


def _decode_tool(tool: JsonValue) -> JsonValue:
    return decode_tool(tool, PROVIDER, API, flat_function=False)


def _assemble_request(
    content: JsonObject, messages: list[JsonValue], values: dict[str, JsonValue]
) -> tuple[JsonObject, JsonObject]:
    # (fields, extra): every unmapped body key is extra, also when named like an annotation field.
    out: JsonObject = {"messages": messages}
    get = values.get
    if get("model") is not None:
        out["model"] = values["model"]
    params = _decoded_params(get)
    if params:
        out["params"] = params
    if get("tools") is not None:
        out["tools"] = values["tools"]
    if "tool_choice" in content:
        out["tool_choice"] = decode_tool_choice(content["tool_choice"], PROVIDER, flat_function=False)
    api_specific: JsonObject = {"api": PROVIDER}
    for key, value in values.items():  # present fields only, in field order
        destination = _FIELD_DESTINATION[key]
        if destination == "top":
            if value is not None:
                out[key] = value
        elif destination == "api" and (value is not None or key == "function_call"):
            # ``function_call`` is stored untyped, so an explicit null survives; the typed ones drop it.
            api_specific[key] = value
    out["api_specific"] = api_specific
    return out, {key: value for key, value in content.items() if key not in _KNOWN_KEYS}


def _decoded_params(get: Callable[[str], JsonValue]) -> JsonObject:
    # ``max_completion_tokens`` supersedes the deprecated ``max_tokens`` when both are sent.
    max_tokens = get("max_completion_tokens")
    candidates = {
        "temperature": get("temperature"),
        "max_tokens": max_tokens if max_tokens is not None else get("max_tokens"),
        "top_p": get("top_p"),
        "stop": get("stop"),
    }
    return {key: value for key, value in candidates.items() if value is not None}


def _decode_message(raw: JsonValue) -> JsonValue:
    if type(raw) is dict and len(raw) == 2 and type(raw.get("content")) is str and raw.get("role") in _PLAIN_ROLES:
        return {"role": raw["role"], "content": raw["content"]}  # the common shape, already in normal form
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{API} message must be an object")
    role = raw.get("role")
    if not isinstance(role, str):
        raise InvalidArgumentError(f"{API} message is missing role")
    allowed = _MESSAGE_KEYS.get(role)
    if allowed is None or not allowed.issuperset(raw):
        return provider_native(PROVIDER, role, raw, "role")  # unknown fields: keep the message whole
    if role == "assistant":
        return _decode_assistant(raw)
    if role == "tool":
        return _decode_tool_message(raw)
    if role == "function":
        return _decode_function_message(raw)
    if "content" not in raw:
        raise InvalidArgumentError(f"{API} message is missing content")
    out: JsonObject = {"role": role, "content": _decode_content(raw["content"])}
    _copy_name(raw, out, f"{API} message name must be a string or null")
    return out


def _copy_name(raw: JsonObject, out: JsonObject, error: str) -> None:
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError(error)
    if name is not None:
        out["name"] = name


def _decode_assistant(raw: JsonObject) -> JsonValue:
    out: JsonObject = {"role": "assistant"}
    if raw.get("content") is not None:
        out["content"] = _decode_content(raw["content"])
    calls, representable = _decode_tool_calls(raw.get("tool_calls"))
    if not representable:
        return provider_native(PROVIDER, "assistant", raw, "role")
    if calls is not None:
        out["tool_calls"] = calls
    _copy_name(raw, out, f"{API} assistant message name must be a string or null")
    return out


def _decode_tool_calls(raw: JsonValue) -> tuple[list[JsonValue] | None, bool]:
    """The assistant's tool calls, and whether all of them fit the annotation (plain function calls)."""
    if raw is None:
        return None, True
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{API} assistant tool_calls must be an array or null")
    calls: list[JsonValue] = []
    representable = True
    for call in raw:
        if not isinstance(call, dict):
            raise InvalidArgumentError(f"{API} tool call must be an object")
        if _is_plain_function_call(call):
            calls.append(_decode_tool_call(call))
        else:
            representable = False  # keep validating the rest: their errors come first in the reference
    return calls, representable


def _is_plain_function_call(call: JsonObject) -> bool:
    if call.get("type") != "function" or not {"id", "type", "function"}.issuperset(call):
        return False
    function = call.get("function")
    return not isinstance(function, dict) or {"name", "arguments"}.issuperset(function)


def _decode_tool_call(call: JsonObject) -> JsonObject:
    function = call.get("function")
    if not isinstance(function, dict):
        raise InvalidArgumentError(f"{API} function tool call is missing function")
    for key, value in (
        ("id", call.get("id")),
        ("name", function.get("name")),
        ("arguments", function.get("arguments")),
    ):
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{API} function tool call is missing {key}")
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": function["arguments"]},
    }


def _decode_tool_message(raw: JsonObject) -> JsonObject:
    tool_call_id = raw.get("tool_call_id")
    if not isinstance(tool_call_id, str):
        raise InvalidArgumentError(f"{API} tool message is missing tool_call_id")
    if "content" not in raw:
        raise InvalidArgumentError(f"{API} tool message is missing content")
    return {"role": "tool", "content": _decode_content(raw["content"]), "tool_call_id": tool_call_id}


def _decode_function_message(raw: JsonObject) -> JsonObject:
    name = raw.get("name")
    if not isinstance(name, str):
        raise InvalidArgumentError(f"{API} function message is missing name")
    content = raw.get("content")
    if content is not None and not isinstance(content, str):
        raise InvalidArgumentError(f"{API} function message content must be a string or null")
    return {"role": "function", "content": content, "name": name}


def _decode_content(content: JsonValue) -> JsonValue:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidArgumentError(f"{API} message content must be a string or array")
    return [_decode_part(part) for part in content]


def _decode_part(part: JsonValue) -> JsonValue:
    if not isinstance(part, dict):
        raise InvalidArgumentError(f"{API} content part must be an object")
    kind = part.get("type")
    if kind == "text" or kind == "refusal":
        if not isinstance(part.get(kind), str):
            raise InvalidArgumentError(f"{API} {kind} part is missing {kind}")
        return part.copy()
    if kind == "image_url":
        return _decode_image_part(part)
    if kind == "input_audio":
        return _renamed_part(part, "input_audio", "audio", "audio part is missing input_audio")
    if kind == "file":
        return _renamed_part(part, "file", "file", "file part is missing file")
    return provider_native(PROVIDER, kind, part, "type")


def _renamed_part(part: JsonObject, key: str, new_type: str, missing: str) -> JsonObject:
    if key not in part:
        raise InvalidArgumentError(f"{API} {missing}")
    rest = {k: v for k, v in part.items() if k not in ("type", key)}
    return {"type": new_type, new_type: part[key], **rest}


def _decode_image_part(part: JsonObject) -> JsonObject:
    if "image_url" not in part:
        raise InvalidArgumentError(f"{API} image part is missing image_url")
    image = part["image_url"]
    if not isinstance(image, dict):
        _image_url_error(TEXT.invalid_type(image, "struct OpenAiImageUrl"))
    if "url" not in image:
        _image_url_error("missing field `url`")
    kept: JsonObject = {}
    for key in ("url", "detail"):
        value = image.get(key)
        if isinstance(value, str):
            kept[key] = value  # other image_url fields are not in the view; encoding keeps them
        elif value is not None or key == "url":
            _image_url_error(TEXT.invalid_type(value, "a string"))
    rest = {k: v for k, v in part.items() if k not in ("type", "image_url")}
    return {"type": "image_url", "image_url": kept, **rest}


def _image_url_error(detail: str) -> NoReturn:
    raise InvalidArgumentError(f"invalid {API} image_url: {detail}")


# --- request encode -------------------------------------------------------------------------------------


def _check_foreign_fields(annotation: JsonObject) -> None:
    # Chat has nowhere to put them (decoding never sets them: a body key of that name is ``extra``).
    if any(annotation.get(key) is not None for key in _FOREIGN_FIELDS):
        raise InvalidArgumentError(f"request contains fields that cannot be encoded for {API}")


def _patch_messages(content: JsonObject, annotation: JsonObject, baseline: JsonObject) -> None:
    new, base = as_list(annotation.get("messages")), as_list(baseline.get("messages"))
    if json_equal(new, base):
        return
    original = content.get("messages")
    content["messages"] = patch_array(original if isinstance(original, list) else [], base, new, _encode_message)


def _encode_message(message: JsonValue, original: JsonValue) -> JsonValue:
    if not isinstance(message, dict):
        return message
    role = message.get("role")
    if role in ("system", "developer", "user"):
        out: JsonObject = {"role": role, "content": _encode_content(message.get("content"))}
        if message.get("name") is not None:
            out["name"] = message["name"]
        return out
    if role == "assistant":
        return _encode_assistant(message)
    if role == "tool":
        return {
            "role": "tool",
            "content": _encode_content(message.get("content")),
            "tool_call_id": message.get("tool_call_id"),
        }
    if role == "function":
        return {"role": "function", "content": message.get("content"), "name": message.get("name")}
    if role == "provider_native" and message.get("provider") == PROVIDER:
        return message.get("value")
    raise cannot_encode("message", TEXT.message(message), API)


def _encode_assistant(message: JsonObject) -> JsonObject:
    out: JsonObject = {"role": "assistant"}
    if message.get("content") is not None:
        out["content"] = _encode_content(message["content"])
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [_encode_tool_call(call) for call in calls]
    if message.get("name") is not None:
        out["name"] = message["name"]
    return out


def _encode_tool_call(call: JsonValue) -> JsonValue:
    if not isinstance(call, dict):
        return call
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    arguments = function.get("arguments")
    return {
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": function.get("name"), "arguments": dump_arguments(arguments)},
    }


def _encode_content(content: JsonValue) -> JsonValue:
    if isinstance(content, list):
        return [_encode_part(part) for part in content]
    return content


def _encode_part(part: JsonValue) -> JsonValue:
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    rest = {key: value for key, value in part.items() if key not in PART_FIELDS.get(str(kind), ("type",))}
    if kind in ("text", "refusal", "file"):
        return {"type": kind, kind: part.get(str(kind)), **rest}
    if kind == "image_url":
        image = part.get("image_url")
        image = image if isinstance(image, dict) else {}
        kept = {key: image[key] for key in ("url", "detail") if image.get(key) is not None}
        return {"type": "image_url", "image_url": kept, **rest}
    if kind == "audio":
        return {"type": "input_audio", "input_audio": part.get("audio"), **rest}
    if kind == "provider_native" and part.get("provider") == PROVIDER:
        return part.get("value")
    raise cannot_encode("content part", TEXT.part(part), API)


def _patch_params(content: JsonObject, new: JsonObject, base: JsonObject) -> None:
    patch_sampling(content, new, base)
    if changed(new, base, "max_tokens"):
        _patch_max_tokens(content, new.get("max_tokens"))
    if changed(new, base, "stop"):
        _patch_stop(content, new.get("stop"))


def _patch_max_tokens(content: JsonObject, value: JsonValue) -> None:
    if value is None:  # cleared: neither spelling may linger
        content.pop("max_completion_tokens", None)
        content.pop("max_tokens", None)
        return
    # Write where the caller put it; new requests get the current spelling.
    key = (
        "max_tokens" if "max_tokens" in content and "max_completion_tokens" not in content else "max_completion_tokens"
    )
    content[key] = value


def _patch_stop(content: JsonObject, stop: JsonValue) -> None:
    if isinstance(stop, str):
        stop = [stop]
    if stop is None:
        content.pop("stop", None)
    elif isinstance(content.get("stop"), str) and isinstance(stop, list) and len(stop) == 1:
        content["stop"] = stop[0]  # the caller sent one string: keep that shape
    else:
        content["stop"] = stop


def _encode_tool(tool: JsonValue, original: JsonValue) -> JsonValue:
    return encode_tool(tool, PROVIDER, API, nested=True)


# --- response decode ------------------------------------------------------------------------------------

_RESPONSE_FIELDS = frozenset(("id", "model", "choices", "usage", "system_fingerprint", "service_tier"))


def _decode_response(response: JsonObject) -> tuple[JsonObject, JsonObject]:
    shape = _SHAPE
    out: JsonObject = {}
    shape.copy_strings(response, ("id", "model"), out)
    api_specific: JsonObject = {"api": PROVIDER}
    shape.copy_strings(response, ("system_fingerprint", "service_tier"), api_specific)
    choices = [_check_choice(choice, shape) for choice in shape.sequence(response.get("choices")) or []]
    if choices:
        _first_choice(choices[0], out, api_specific)
    usage = shape.struct(response.get("usage"), "RawChatUsage")
    if usage is not None:
        out["usage"] = _decode_usage(usage, shape)
    out["api_specific"] = api_specific
    return out, {key: value for key, value in response.items() if key not in _RESPONSE_FIELDS}


def _check_choice(choice: JsonValue, shape: ResponseShape) -> JsonObject:
    checked = shape.struct(choice, "RawChoice")
    if checked is None:
        shape.mismatch(choice, "struct RawChoice")
    shape.string(checked.get("finish_reason"))
    message = shape.struct(checked.get("message"), "RawMessage")
    if message is not None:
        shape.string(message.get("content"))
        for call in shape.sequence(message.get("tool_calls")) or []:
            _check_tool_call(call, shape)
    return checked


def _check_tool_call(call: JsonValue, shape: ResponseShape) -> None:
    checked = shape.struct(call, "RawToolCall")
    if checked is None:
        shape.mismatch(call, "struct RawToolCall")
    shape.string(checked.get("id"))
    function = shape.struct(checked.get("function"), "RawFunction")
    if function is not None:
        shape.string(function.get("name"))
        shape.string(function.get("arguments"))


def _first_choice(choice: JsonObject, out: JsonObject, api_specific: JsonObject) -> None:
    message = choice.get("message")
    if isinstance(message, dict):
        if isinstance(message.get("content"), str):
            out["message"] = message["content"]
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            out["tool_calls"] = [_response_tool_call(call) for call in calls if _has_function_name(call)]
    reason = choice.get("finish_reason")
    if isinstance(reason, str):
        out["finish_reason"] = _FINISH_REASONS.get(reason) or unknown_reason(reason)
    if choice.get("logprobs") is not None:
        api_specific["logprobs"] = choice["logprobs"]


def _has_function_name(call: JsonValue) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return isinstance(function, dict) and isinstance(function.get("name"), str)


def _response_tool_call(call: JsonValue) -> JsonValue:
    assert isinstance(call, dict)  # filtered by _has_function_name
    function = call["function"]
    assert isinstance(function, dict)
    return decoded_tool_call(call.get("id"), function["name"], function.get("arguments"))


def _decode_usage(usage: JsonObject, shape: ResponseShape) -> JsonObject:
    prompt, completion, total = (
        shape.u64(usage.get(key)) for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    )
    details = shape.struct(usage.get("prompt_tokens_details"), "RawPromptTokensDetails")
    cached = shape.u64(details.get("cached_tokens")) if details is not None else None
    cost = reported_cost(usage, shape, allow_number=True)
    return usage_json(prompt, completion, total, cache_read=cached, cost=cost)


# --- streaming ------------------------------------------------------------------------------------------

# Streamed strings arrive in fragments and are concatenated, except these, which are sent whole.
_IDENTITY_KEYS = frozenset(("id", "type", "role", "name", "index"))


class ChatStreamAggregator:
    """Folds ``chat.completion.chunk`` objects into the ``chat.completion`` they stream.

    Deltas are concatenated per choice (content, refusal, reasoning text, tool-call argument fragments
    keyed by their ``index``); the final usage-only chunk supplies ``usage``. Non-object chunks are ignored.
    """

    __slots__ = ("_choices", "_top")

    def __init__(self) -> None:
        self._top: JsonObject = {}
        self._choices: dict[int, _ChoiceFold] = {}

    def add(self, chunk: JsonValue) -> None:
        """Fold one streamed chunk."""
        if not isinstance(chunk, dict):
            return
        for key, value in chunk.items():
            if key == "choices":
                self._top.setdefault("choices", None)  # keeps the key's place in the result
                self._add_choices(value)
            elif key == "object":
                self._top["object"] = "chat.completion" if value == "chat.completion.chunk" else value
            elif value is not None or key not in self._top:
                self._top[key] = value

    def _add_choices(self, choices: JsonValue) -> None:
        for position, choice in enumerate(choices if isinstance(choices, list) else []):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index")
            index = index if isinstance(index, int) else position
            self._choices.setdefault(index, _ChoiceFold(index)).add(choice)

    def result(self) -> JsonObject:
        """The aggregated response, shaped like the non-streamed ``chat.completion``."""
        out: JsonObject = {}
        for key, value in self._top.items():
            if key == "choices":
                out[key] = [self._choices[i].result() for i in sorted(self._choices)]
            else:
                out[key] = value
        if self._choices and "choices" not in out:
            out["choices"] = [self._choices[i].result() for i in sorted(self._choices)]
        return out


class _ChoiceFold:
    """One choice being assembled from its deltas."""

    __slots__ = ("_extra", "_finish_reason", "_index", "_logprobs", "_message", "_tool_calls")

    def __init__(self, index: int) -> None:
        self._index = index
        self._message: JsonObject = {}
        self._tool_calls: dict[int, JsonObject] = {}
        self._logprobs: JsonValue = None
        self._finish_reason: JsonValue = None
        self._extra: JsonObject = {}

    def add(self, choice: JsonObject) -> None:
        """Fold one streamed choice (its delta, finish reason and logprobs)."""
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._add_delta(delta)
        if choice.get("finish_reason") is not None:
            self._finish_reason = choice["finish_reason"]
        self._logprobs = _fold_logprobs(self._logprobs, choice.get("logprobs"))
        for key, value in choice.items():
            if key not in ("index", "delta", "finish_reason", "logprobs") and (
                value is not None or key not in self._extra
            ):
                self._extra[key] = value

    def _add_delta(self, delta: JsonObject) -> None:
        for key, value in delta.items():
            if key == "tool_calls":
                self._message.setdefault("tool_calls", None)
                self._add_tool_calls(value)
            else:
                _fold_field(self._message, key, value)

    def _add_tool_calls(self, calls: JsonValue) -> None:
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            index = index if isinstance(index, int) else position
            target = self._tool_calls.setdefault(index, {})
            for key, value in call.items():
                if key != "index":
                    _fold_field(target, key, value)

    def result(self) -> JsonObject:
        """The assembled choice, shaped like a non-streamed one."""
        message = dict(self._message)
        if "tool_calls" in message:
            message["tool_calls"] = [self._tool_calls[i] for i in sorted(self._tool_calls)] or None
        message.setdefault("content", None)
        return {
            "index": self._index,
            "message": message,
            "logprobs": self._logprobs,
            "finish_reason": self._finish_reason,
            **self._extra,
        }


def _fold_field(target: JsonObject, key: str, value: JsonValue) -> None:
    current = target.get(key)
    if isinstance(value, dict):
        merged = dict(current) if isinstance(current, dict) else {}
        for inner_key, inner in value.items():
            _fold_field(merged, inner_key, inner)
        target[key] = merged
    elif isinstance(value, str) and isinstance(current, str) and key not in _IDENTITY_KEYS:
        target[key] = current + value  # a text fragment (content, refusal, arguments ...)
    elif value is not None or key not in target:
        target[key] = value


def _fold_logprobs(current: JsonValue, update: JsonValue) -> JsonValue:
    if not isinstance(update, dict):
        return current
    merged = dict(current) if isinstance(current, dict) else {}
    for key, value in update.items():
        existing = merged.get(key)
        merged[key] = existing + value if isinstance(existing, list) and isinstance(value, list) else value
    return merged
