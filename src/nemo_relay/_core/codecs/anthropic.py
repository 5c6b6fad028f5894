"""The built-in Anthropic Messages codec (``POST /v1/messages``).

Request side: ``system`` becomes ``instructions``; ``max_tokens``/``temperature``/``top_p``/``stop_sequences``
become ``params``; ``top_k``, ``thinking`` and the other Anthropic-only knobs go to ``api_specific``; content
blocks map to annotation parts (``image``/``document`` keep their payload under ``image``/``file``), and every
block, tool or message the annotation cannot express travels as a ``provider_native`` component tagged
``anthropic_messages``. Encoding patches the original body field by field, so untouched bytes stay put;
message, tool and block arrays are patched by value identity (see ``patch_array``).

Response side: text blocks join into ``message``, ``tool_use`` blocks become ``tool_calls``, and ``usage``
follows the package's one usage convention (see ``nemo_relay.codecs``): ``prompt_tokens`` counts every input
token, cached included. Anthropic's ``input_tokens`` excludes cache reads and writes, so they are added back
(``input + cache_read + cache_write``) and also reported on their own as ``cache_read_tokens`` and
``cache_write_tokens``. The reference keeps Anthropic's raw ``input_tokens`` here instead.

Helpers that the Gemini codec shares (strict JSON equality, serde-style error fragments, Rust ``Debug``
rendering, compact JSON) live here too.
"""

from __future__ import annotations

import json

from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.errors import InternalError, InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from nemo_relay._core.annotated import AnnotatedLLMResponse
    from nemo_relay._core.types import JsonObject, JsonValue

__all__ = ["AnthropicMessagesCodec", "AnthropicStreamAggregator"]

API = "anthropic_messages"
_LABEL = "Anthropic Messages"

# Annotation fields an Anthropic body has no place for: they must stay absent (or come from body `extra`).
_FOREIGN_FIELDS = (
    "store",
    "previous_response_id",
    "truncation",
    "reasoning",
    "include",
    "user",
    "max_output_tokens",
    "max_tool_calls",
    "top_logprobs",
)
# Every top-level key the annotation JSON gives a meaning to; other keys are flattened `extra`.
ANNOTATION_FIELDS = frozenset(
    (
        "messages",
        "instructions",
        "model",
        "params",
        "tools",
        "tool_choice",
        "api_specific",
        "metadata",
        "service_tier",
        "parallel_tool_calls",
        "stream",
        *_FOREIGN_FIELDS,
    )
)
# Body keys the codec maps; the rest of the body is `extra`.
_KNOWN_BODY_KEYS = frozenset(
    (
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "service_tier",
        "thinking",
        "cache_control",
        "container",
        "inference_geo",
        "output_config",
        "anthropic-user-profile-id",
        "tools",
        "tool_choice",
    )
)
# api_specific key -> body key.
_API_KEYS = {
    "cache_control": "cache_control",
    "container": "container",
    "inference_geo": "inference_geo",
    "output_config": "output_config",
    "thinking": "thinking",
    "top_k": "top_k",
    "user_profile_id": "anthropic-user-profile-id",
}
_MESSAGE_ROLES = ("user", "assistant", "system")
_FINISH_REASONS = {"end_turn": "complete", "max_tokens": "length", "tool_use": "tool_use"}


class AnthropicMessagesCodec(BuiltinCodec):
    """Request and response codec for the Anthropic Messages API."""

    __slots__ = ()

    _relay_builtin_id = "anthropic_messages"
    provider = API

    def decode_json(self, content: JsonObject, headers: JsonObject) -> JsonObject:
        """The annotation JSON for an Anthropic Messages request body (``headers`` are not consulted)."""
        return decode_request(content)

    def encode_json(self, annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonValue:
        """``content`` patched wherever ``annotation`` differs from ``baseline``."""
        return encode_request(annotation, baseline, content)

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode an Anthropic Messages response body into an ``AnnotatedLLMResponse``."""
        reject_non_object_response(response, f"{_LABEL} response decode", "struct RawAnthropicResponse")
        return super().decode_response(response)

    def decode_response_json(self, response: JsonObject) -> JsonObject:
        """The annotated-response JSON for an Anthropic Messages response body."""
        return decode_response(response)

    def stream_aggregator(self) -> AnthropicStreamAggregator:
        """A fresh aggregator folding Messages streaming events into the final message body."""
        return AnthropicStreamAggregator()


# ======================================================================================================
# Shared helpers (also used by the Gemini codec)
# ======================================================================================================


def same_json(a: object, b: object) -> bool:
    """JSON equality that tells ``true`` from ``1`` (plain ``==`` does not) but lets ``1 == 1.0``."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same_json, a, b))
    return a == b


def compact_json(value: JsonValue) -> str:
    """Compact JSON with sorted keys and raw non-ASCII text, as the reference serializes arguments."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def is_int(value: object) -> bool:
    """A JSON integer (``bool`` excluded)."""
    return type(value) is int


def is_number(value: object) -> bool:
    """A JSON number (``bool`` excluded)."""
    return type(value) is int or type(value) is float


def as_float(value: JsonValue) -> JsonValue:
    """A JSON number as a float (the annotation stores sampling params as floats); anything else unchanged."""
    return float(value) if isinstance(value, (int, float)) and type(value) is not bool else value


def float_text(value: float) -> str:
    """A float the way Rust prints it in error texts and ``Debug`` output (``1.5e-7``, ``1e+20``, ``2.0``)."""
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return text


def serde_unexpected(value: object) -> str:
    """The ``invalid type: …`` fragment serde writes for ``value``."""
    if value is None:
        return "null"
    if type(value) is bool:
        return f"boolean `{'true' if value else 'false'}`"
    if type(value) is int:
        return f"integer `{value}`"
    if type(value) is float:
        return f"floating point `{float_text(value)}`"
    if type(value) is str:
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if type(value) is list:
        return "sequence"
    return "map"


def serde_error(value: object, expected: str) -> str:
    """``invalid type: <value>, expected <expected>`` (``invalid value`` for negative integers)."""
    if type(value) is int and value < 0 and expected == "u64":
        return f"invalid value: integer `{value}`, expected u64"
    return f"invalid type: {serde_unexpected(value)}, expected {expected}"


def rust_str(text: str) -> str:
    """A Rust ``Debug`` string literal."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def rust_value(value: JsonValue) -> str:
    """A ``serde_json::Value`` rendered with Rust ``Debug`` (maps with sorted keys)."""
    if value is None:
        return "Null"
    if type(value) is bool:
        return f"Bool({'true' if value else 'false'})"
    if type(value) is int:
        return f"Number({value})"
    if type(value) is float:
        return f"Number({float_text(value)})"
    if type(value) is str:
        return f"String({rust_str(value)})"
    if type(value) is list:
        return "Array [" + ", ".join(rust_value(v) for v in value) + "]"
    return "Object " + rust_map(as_object(value))


def rust_map(value: JsonObject) -> str:
    """A ``serde_json::Map`` rendered with Rust ``Debug``."""
    return "{" + ", ".join(f"{rust_str(k)}: {rust_value(value[k])}" for k in sorted(value)) + "}"


def rust_option_str(value: JsonValue) -> str:
    """``Some("x")`` / ``None``."""
    return "None" if value is None else f"Some({rust_str(str(value))})"


def _extras(obj: JsonObject, known: tuple[str, ...]) -> JsonObject:
    return {k: v for k, v in obj.items() if k not in known}


def rust_part(part: JsonObject) -> str:
    """An annotation content part rendered as the reference's ``ContentPart`` ``Debug`` output."""
    kind = part.get("type")
    if kind == "text":
        return f"Text {{ text: {rust_str(str(part.get('text')))}, extra: {rust_map(_extras(part, ('type', 'text')))} }}"
    if kind == "image_url":
        url = as_object(part.get("image_url"))
        inner = (
            f"OpenAiImageUrl {{ url: {rust_str(str(url.get('url')))}, detail: {rust_option_str(url.get('detail'))} }}"
        )
        return f"ImageUrl {{ image_url: {inner}, extra: {rust_map(_extras(part, ('type', 'image_url')))} }}"
    if kind in ("image", "audio", "file"):
        name = str(kind)
        extra = rust_map(_extras(part, ("type", name)))
        return f"{name.capitalize()} {{ {name}: {rust_value(part.get(name))}, extra: {extra} }}"
    if kind == "refusal":
        extra = rust_map(_extras(part, ("type", "refusal")))
        return f"Refusal {{ refusal: {rust_str(str(part.get('refusal')))}, extra: {extra} }}"
    if kind == "tool_use":
        extra = rust_map(_extras(part, ("type", "id", "name", "input")))
        return (
            f"ToolUse {{ id: {rust_str(str(part.get('id')))}, name: {rust_str(str(part.get('name')))}, "
            f"input: {rust_value(part.get('input'))}, extra: {extra} }}"
        )
    if kind == "tool_result":
        err = part.get("is_error")
        is_error = "None" if err is None else f"Some({'true' if err else 'false'})"
        extra = rust_map(_extras(part, ("type", "tool_use_id", "content", "is_error")))
        return (
            f"ToolResult {{ tool_use_id: {rust_str(str(part.get('tool_use_id')))}, content: "
            f"{rust_value(part.get('content'))}, is_error: {is_error}, extra: {extra} }}"
        )
    return rust_native(part)


def rust_native(obj: JsonObject) -> str:
    """A provider-native component rendered as ``ProviderNative { provider, kind, value }``."""
    return (
        f"ProviderNative {{ provider: {rust_str(str(obj.get('provider')))}, kind: {rust_str(str(obj.get('kind')))}, "
        f"value: {rust_value(obj.get('value'))} }}"
    )


def rust_content(content: JsonValue) -> str:
    """``MessageContent`` rendered with ``Debug``: ``Text("…")`` or ``Parts([…])``."""
    if type(content) is list:
        return "Parts([" + ", ".join(rust_part(p) for p in content if type(p) is dict) + "])"
    return f"Text({rust_str(str(content))})"


def rust_message(msg: JsonObject) -> str:
    """An annotation message rendered as the reference's ``Message`` ``Debug`` output."""
    role = msg.get("role")
    name = rust_option_str(msg.get("name"))
    if role in ("system", "user", "developer"):
        return f"{str(role).capitalize()} {{ content: {rust_content(msg.get('content'))}, name: {name} }}"
    if role == "assistant":
        content = msg.get("content")
        body = "None" if content is None else f"Some({rust_content(content)})"
        calls = "None" if msg.get("tool_calls") is None else f"Some({rust_value(msg.get('tool_calls'))})"
        return f"Assistant {{ content: {body}, tool_calls: {calls}, name: {name} }}"
    if role == "tool":
        return (
            f"Tool {{ content: {rust_content(msg.get('content'))}, "
            f"tool_call_id: {rust_str(str(msg.get('tool_call_id')))} }}"
        )
    if role == "function":
        return f"Function {{ content: {rust_option_str(msg.get('content'))}, name: {rust_str(str(msg.get('name')))} }}"
    if role == "tool_call":
        extra = rust_map(_extras(msg, ("role", "id", "call_id", "name", "arguments")))
        return (
            f"ToolCallItem {{ id: {rust_option_str(msg.get('id'))}, call_id: {rust_str(str(msg.get('call_id')))}, "
            f"name: {rust_str(str(msg.get('name')))}, arguments: {rust_value(msg.get('arguments'))}, extra: {extra} }}"
        )
    if role == "tool_result":
        extra = rust_map(_extras(msg, ("role", "id", "call_id", "output")))
        return (
            f"ToolResultItem {{ id: {rust_option_str(msg.get('id'))}, call_id: {rust_str(str(msg.get('call_id')))}, "
            f"output: {rust_value(msg.get('output'))}, extra: {extra} }}"
        )
    return rust_native(msg)


def native(provider: str, kind: str, value: JsonValue, tag: str = "type") -> JsonObject:
    """A provider-native component; ``tag`` is ``type`` for parts/tools, ``role`` for messages, '' for choices."""
    out: JsonObject = {"kind": kind, "provider": provider, "value": value}
    if tag:
        out[tag] = "provider_native"
    return out


def reject_non_object_response(response: object, prefix: str, expected: str) -> None:
    """A JSON response that is not an object fails like the reference's typed decode (serde wording)."""
    if response is None or type(response) in (bool, int, float, str, list):
        raise InternalError(f"{prefix}: {serde_error(response, expected)}")


def as_object(value: JsonValue) -> JsonObject:
    """``value`` when it is a JSON object, else an empty one."""
    return value if type(value) is dict else {}


def objects(value: JsonValue) -> list[JsonObject]:
    """The JSON objects of an array (anything else gives an empty list)."""
    return [item for item in value if type(item) is dict] if type(value) is list else []


def copy_object(value: JsonObject) -> JsonObject:
    """A deep copy of a JSON object."""
    return {key: copy_json(item) for key, item in value.items()}


def split_extra(annotation: JsonObject) -> JsonObject:
    """The flattened ``extra`` keys of an annotation JSON object."""
    return {k: v for k, v in annotation.items() if k not in ANNOTATION_FIELDS}


def patch_key(content: JsonObject, key: str, value: JsonValue) -> None:
    """Set ``content[key]``, or remove it when ``value`` is None (absent in the annotation)."""
    if value is None:
        content.pop(key, None)
    else:
        content[key] = value


def patch_extra(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    """Apply ``extra`` edits: changed keys are written, keys dropped from ``extra`` are removed from the body."""
    new, old = split_extra(annotation), split_extra(baseline)
    for key in old:
        if key not in new:
            content.pop(key, None)
    for key, value in new.items():
        if key not in old or not same_json(value, old[key]):
            content[key] = copy_json(value)


def edited_foreign_fields(annotation: JsonObject, baseline: JsonObject, names: tuple[str, ...]) -> list[str]:
    """Fields the provider cannot carry that the annotation sets (a baseline value came from the body's extra)."""
    edited = []
    for name in names:
        value = annotation.get(name)
        if name in baseline:
            if not same_json(value, baseline[name]):
                edited.append(name)
        elif value is not None:
            edited.append(name)
    return edited


_COST_AMOUNTS = ("input", "output", "cache_read", "cache_write")
_COST_LABELS = ("pricing_provider", "pricing_model", "pricing_as_of", "pricing_source")


def optional_float(obj: JsonObject, key: str, label: str) -> float | None:
    """An optional number field as a float; anything else is a decode error (serde's wording)."""
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int and type(value) is not float:
        raise InternalError(f"{label} response decode: {serde_error(value, 'f64')}")
    return float(value)


def usage_cost(cost_usd: JsonValue, cost: JsonValue, label: str) -> JsonObject | None:
    """Provider-reported cost: ``cost_usd`` (a number, USD) wins for the total; ``cost`` may break it down.

    Without a reported total the components add up to it (in a fixed order, so float sums are stable).
    """
    total = optional_float({"cost_usd": cost_usd}, "cost_usd", label)
    if cost is None:
        return None if total is None else {"total": total, "currency": "USD", "source": "provider_reported"}
    if type(cost) is not dict:
        raise InternalError(f"{label} response decode: {serde_error(cost, 'struct RawUsageCost')}")
    reported = optional_float(cost, "total", label)
    amounts = {key: optional_float(cost, key, label) for key in _COST_AMOUNTS}
    labels: JsonObject = {}
    for key in ("currency", *_COST_LABELS):
        item = cost.get(key)
        if item is not None and type(item) is not str:
            raise InternalError(f"{label} response decode: {serde_error(item, 'a string')}")
        if item is not None:
            labels[key] = item
    parts: JsonObject = {key: amount for key, amount in amounts.items() if amount is not None}
    if total is None:
        total = reported
    if total is None and parts:
        total = 0.0
        for amount in amounts.values():
            total += amount or 0.0
    if total is None:
        return None
    currency = labels.pop("currency", "USD")
    return {"total": total, "currency": currency, **parts, **labels, "source": "provider_reported"}


def token_count(usage: JsonObject, key: str, label: str) -> int | None:
    """A non-negative integer usage counter (absent/null gives None); anything else is a decode error."""
    value = usage.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise InternalError(f"{label} response decode: {serde_error(value, 'u64')}")
    return value


# ======================================================================================================
# Request decoding
# ======================================================================================================


def _invalid(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{_LABEL} {detail}")


def decode_request(content: JsonObject) -> JsonObject:
    """The annotation JSON for an Anthropic Messages request body."""
    if "messages" not in content:
        raise _invalid("request is missing messages")
    raw_messages = content["messages"]
    if type(raw_messages) is not list:
        raise _invalid("messages must be an array")
    out: JsonObject = {"messages": [_decode_message(m) for m in raw_messages]}
    if "system" in content:
        out["instructions"] = _decode_content(content["system"])
    _decode_scalars(content, out)
    if "tools" in content:
        tools = content["tools"]
        if type(tools) is not list:
            raise _invalid("tools must be an array")
        out["tools"] = [_decode_tool(t) for t in tools]
    if "tool_choice" in content:
        _decode_tool_choice(content["tool_choice"], out)
    for key, value in content.items():
        # Unknown body keys ride along as `extra`; a clash with a mapped field keeps the mapped value.
        if key not in _KNOWN_BODY_KEYS and key not in out:
            out[key] = copy_json(value)
    return out


def _optional(content: JsonObject, key: str, check: str) -> JsonValue:
    """Validate an optional scalar body field; null and absent both give None."""
    value = content.get(key)
    if value is None:
        return None
    ok = {
        "string": type(value) is str,
        "object": type(value) is dict,
        "boolean": type(value) is bool,
        "number": is_number(value),
        "uint": type(value) is int and value >= 0,
    }[check]
    if not ok:
        wording = {
            "string": "a string",
            "object": "an object",
            "boolean": "a boolean",
            "number": "a number",
            "uint": "a non-negative integer",
        }[check]
        raise _invalid(f"{key} must be {wording} or null")
    return value


def _decode_scalars(content: JsonObject, out: JsonObject) -> None:
    model = _optional(content, "model", "string")
    if model is not None:
        out["model"] = model
    params: JsonObject = {}
    max_tokens = _optional(content, "max_tokens", "uint")
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        number = _optional(content, key, "number")
        if number is not None:
            params[key] = as_float(number)
    stop = _decode_stop_sequences(content.get("stop_sequences"))
    if stop is not None:
        params["stop"] = stop
    if params:
        out["params"] = params
    api: JsonObject = {"api": API}
    top_k = _optional(content, "top_k", "uint")
    stream = _optional(content, "stream", "boolean")
    metadata = _optional(content, "metadata", "object")
    service_tier = _optional(content, "service_tier", "string")
    for key, check in (
        ("thinking", "object"),
        ("cache_control", "object"),
        ("container", "string"),
        ("inference_geo", "string"),
        ("output_config", "object"),
        ("anthropic-user-profile-id", "string"),
    ):
        value = _optional(content, key, check)
        if value is not None:
            api["user_profile_id" if key == "anthropic-user-profile-id" else key] = copy_json(value)
    if top_k is not None:
        api["top_k"] = top_k
    out["api_specific"] = api
    for key, value in (("stream", stream), ("metadata", metadata), ("service_tier", service_tier)):
        if value is not None:
            out[key] = copy_json(value)


def _decode_stop_sequences(value: JsonValue) -> JsonValue:
    if value is None:
        return None
    prefix = "invalid Anthropic stop_sequences value: "
    if type(value) is not list:
        raise InvalidArgumentError(prefix + serde_error(value, "a sequence"))
    for item in value:
        if type(item) is not str:
            raise InvalidArgumentError(prefix + serde_error(item, "a string"))
    return list(value)


def _decode_message(message: JsonValue) -> JsonObject:
    if type(message) is not dict:
        raise _invalid("message must be an object")
    role = message.get("role")
    if type(role) is not str:
        raise _invalid("message is missing role")
    if "content" not in message:
        raise _invalid("message is missing content")
    if len(message) != 2:
        # Keys beside role and content have no annotation slot: the whole message travels natively.
        return native(API, role, copy_json(message), tag="role")
    content = _decode_content(message["content"])
    if role not in _MESSAGE_ROLES:
        return native(API, role, copy_json(message), tag="role")
    return {"role": role, "content": content}


def _decode_content(content: JsonValue) -> JsonValue:
    if type(content) is str:
        return content
    if type(content) is not list:
        raise _invalid("content must be a string or an array")
    return [_decode_block(block) for block in content]


def _decode_block(block: JsonValue) -> JsonObject:
    if type(block) is not dict:
        raise _invalid("content block must be an object")
    kind = block.get("type")
    if kind == "text":
        if type(block.get("text")) is not str:
            raise InvalidArgumentError("Anthropic text block is missing text")
        return copy_object(block)
    if kind in ("image", "document"):
        payload = {k: copy_json(v) for k, v in block.items() if k != "type"}
        slot = "image" if kind == "image" else "file"
        return {"type": slot, slot: payload}
    if kind == "tool_use":
        _check_tool_use(block)
        return copy_object(block)
    if kind == "tool_result":
        _check_tool_result(block)
        part = copy_object(block)
        if part.get("is_error", False) is None:
            del part["is_error"]  # a null flag is the same as none in the annotation
        return part
    return native(API, kind if type(kind) is str else "unknown", copy_json(block))


def _check_tool_use(block: JsonObject) -> None:
    for key in ("id", "name"):
        if type(block.get(key)) is not str:
            raise InvalidArgumentError(f"Anthropic tool_use block is missing {key}")
    if "input" not in block:
        raise InvalidArgumentError("Anthropic tool_use block is missing input")


def _check_tool_result(block: JsonObject) -> None:
    if type(block.get("tool_use_id")) is not str:
        raise InvalidArgumentError("Anthropic tool_result block is missing tool_use_id")
    if "content" not in block:
        raise InvalidArgumentError("Anthropic tool_result block is missing content")
    if block.get("is_error") is not None and type(block["is_error"]) is not bool:
        raise InvalidArgumentError("Anthropic tool_result is_error must be a boolean")


def _decode_tool(tool: JsonValue) -> JsonObject:
    if type(tool) is not dict:
        raise _invalid("tool must be an object")
    if "type" in tool:
        kind = tool["type"]
        return native(API, kind if type(kind) is str else "unknown", copy_json(tool))
    for key, wording in (("name", "a string"), ("description", "a string"), ("strict", "a boolean")):
        value = tool.get(key)
        ok = value is None or (type(value) is bool if key == "strict" else type(value) is str)
        if not ok:
            raise _invalid(f"tool {key} must be {wording} or null")
    if type(tool.get("name")) is not str or "input_schema" not in tool:
        return native(API, "unknown", copy_json(tool))
    function: JsonObject = {"name": tool["name"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = copy_json(tool["input_schema"])
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    extra = {k: copy_json(v) for k, v in tool.items() if k not in ("name", "description", "input_schema", "strict")}
    return {"type": "function", "function": function, **extra}


def _decode_tool_choice(choice: JsonValue, out: JsonObject) -> None:
    if type(choice) is not dict or type(choice.get("type")) is not str:
        out["tool_choice"] = native(API, "unknown", copy_json(choice), tag="")
        return
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None:
        if type(disable) is not bool:
            raise _invalid("tool_choice disable_parallel_tool_use must be a boolean or null")
        out["parallel_tool_calls"] = not disable
    kind = str(choice["type"])
    modes = {"auto": "auto", "any": "required", "none": "none"}
    if kind in modes:
        out["tool_choice"] = modes[kind]
    elif kind == "tool" and type(choice.get("name")) is str:
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        out["tool_choice"] = native(API, kind, copy_json(choice), tag="")


# ======================================================================================================
# Request encoding
# ======================================================================================================


def encode_request(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonObject:
    """``content`` patched wherever ``annotation`` differs from ``baseline`` (the decode of ``content``)."""
    api = annotation.get("api_specific")
    if api is not None and (type(api) is not dict or api.get("api") != API):
        raise InvalidArgumentError(f"api_specific provider does not match {_LABEL}")
    foreign = edited_foreign_fields(annotation, baseline, _FOREIGN_FIELDS)
    if any(name not in baseline for name in foreign):
        raise InvalidArgumentError(f"request contains fields that cannot be encoded for {_LABEL}")
    if _changed(annotation, baseline, "model"):
        patch_key(content, "model", annotation.get("model"))
    _patch_params(annotation.get("params"), baseline.get("params"), content)
    if _changed(annotation, baseline, "instructions"):
        system = annotation.get("instructions")
        patch_key(content, "system", None if system is None else _encode_content(system))
    if _changed(annotation, baseline, "messages"):
        content["messages"] = _encode_messages(annotation, baseline, content)
    if _changed(annotation, baseline, "tools"):
        _patch_tools(annotation, baseline, content)
    _patch_tool_choice(annotation, baseline, content)
    for key in ("metadata", "stream", "service_tier"):
        if _changed(annotation, baseline, key):
            patch_key(content, key, copy_json(annotation.get(key)))
    _patch_api_specific(api, baseline.get("api_specific"), content)
    for name in foreign:
        # These came from unknown body keys (the annotation JSON flattens extra): edit them in place.
        patch_key(content, name, copy_json(annotation.get(name)))
    patch_extra(annotation, baseline, content)
    return content


def _changed(annotation: JsonObject, baseline: JsonObject, key: str) -> bool:
    return not same_json(annotation.get(key), baseline.get(key))


def _patch_params(new: JsonValue, old: JsonValue, content: JsonObject) -> None:
    new_params: JsonObject = new if type(new) is dict else {}
    old_params: JsonObject = old if type(old) is dict else {}
    for key, body_key in (
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop", "stop_sequences"),
    ):
        value = new_params.get(key)
        if same_json(value, old_params.get(key)):
            continue
        if key in ("temperature", "top_p"):
            value = as_float(value)
        elif type(value) is str and key == "stop":
            value = [value]
        patch_key(content, body_key, copy_json(value))


def patch_array(
    new: list[JsonObject],
    old: list[JsonObject],
    raw: list[JsonValue],
    encode: Callable[[JsonObject], JsonValue],
    paired: Callable[[JsonObject, JsonObject], None] | None = None,
) -> list[JsonValue]:
    """An edited array: items equal to a baseline item keep that item's original bytes, the rest are encoded.

    Equality is the only identity array items have, so an edit that leaves two or more new items *and* two
    or more baseline items unmatched cannot tell which original each replaces: that is refused. A lone
    replacement (one unmatched on each side) is handed to ``paired`` for nested checks.
    """
    used: set[int] = set()
    matches: list[int | None] = []
    for item in new:
        found = next((i for i, o in enumerate(old) if i not in used and same_json(item, o)), None)
        if found is not None:
            used.add(found)
        matches.append(found)
    added = [k for k, found in enumerate(matches) if found is None]
    removed = [i for i in range(len(old)) if i not in used]
    if len(added) > 1 and len(removed) > 1:
        raise InvalidArgumentError(
            "cannot safely preserve provider fields for multiple edited array items without stable identities"
        )
    if paired is not None and len(added) == 1 and len(removed) == 1:
        paired(new[added[0]], old[removed[0]])
    return [raw[m] if m is not None and m < len(raw) else encode(item) for item, m in zip(new, matches, strict=True)]


def _encode_messages(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> list[JsonValue]:
    raw = content.get("messages")
    return patch_array(
        objects(annotation.get("messages")),
        objects(baseline.get("messages")),
        raw if type(raw) is list else [],
        _encode_message,
        _check_paired_message,
    )


def _check_paired_message(new: JsonObject, old: JsonObject) -> None:
    # A message edited in place has its block list patched the same way (blocks have no identity either).
    new_content, old_content = new.get("content"), old.get("content")
    if type(new_content) is list and type(old_content) is list:
        patch_array(objects(new_content), objects(old_content), [], lambda part: None)


def _encode_message(message: JsonObject) -> JsonValue:
    role = message.get("role")
    if role == "provider_native" and message.get("provider") == API:
        return copy_json(message.get("value"))
    if role not in _MESSAGE_ROLES:
        raise InvalidArgumentError(f"message {rust_message(message)} cannot be encoded for {_LABEL}")
    content = message.get("content")
    # Anthropic has no `name` and carries tool calls as blocks; an absent body becomes an empty block list.
    return {"role": role, "content": [] if content is None else _encode_content(content)}


def _encode_content(content: JsonValue) -> JsonValue:
    if type(content) is list:
        return [_encode_part(part) for part in objects(content)]
    return copy_json(content)


def _encode_part(part: JsonObject) -> JsonValue:
    kind = part.get("type")
    if kind in ("text", "tool_use", "tool_result"):
        return copy_json(part)
    if kind in ("image", "file"):
        slot = str(kind)
        payload = part.get(slot)
        if type(payload) is not dict:
            noun = "image" if slot == "image" else "document"
            raise InvalidArgumentError(f"Anthropic {noun} payload must be an object")
        block: JsonObject = {"type": "image" if slot == "image" else "document"}
        block.update(copy_object(payload))
        block.update({k: copy_json(v) for k, v in part.items() if k not in ("type", slot)})
        return block
    if kind == "provider_native" and part.get("provider") == API:
        return copy_json(part.get("value"))
    raise InvalidArgumentError(f"content part {rust_part(part)} cannot be encoded for {_LABEL}")


def _patch_tools(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    new = annotation.get("tools")
    if new is None:
        content.pop("tools", None)
        return
    raw = content.get("tools")
    content["tools"] = patch_array(
        objects(new), objects(baseline.get("tools")), raw if type(raw) is list else [], _encode_tool
    )


def _encode_tool(tool: JsonObject) -> JsonValue:
    if tool.get("type") == "provider_native":
        if tool.get("provider") == API:
            return copy_json(tool.get("value"))
        raise InvalidArgumentError(f"tool {rust_native(tool)} cannot be encoded for {_LABEL}")
    function = as_object(tool.get("function"))
    out: JsonObject = {"name": copy_json(function.get("name"))}
    if function.get("description") is not None:
        out["description"] = function["description"]
    if "parameters" in function:
        out["input_schema"] = copy_json(function["parameters"])
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    known = ("name", "description", "parameters", "strict")
    out.update({k: copy_json(v) for k, v in function.items() if k not in known})
    out.update({k: copy_json(v) for k, v in tool.items() if k not in ("type", "function")})
    return out


def _patch_tool_choice(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    choice = annotation.get("tool_choice")
    parallel = annotation.get("parallel_tool_calls")
    if not _changed(annotation, baseline, "tool_choice"):
        if not _changed(annotation, baseline, "parallel_tool_calls"):
            return
        raw = content.get("tool_choice")
        if type(raw) is dict:
            # Only the parallelism flag moved: touch just that key of the original directive.
            patch_key(raw, "disable_parallel_tool_use", None if parallel is None else not parallel)
            return
        if "tool_choice" in content:
            return
    if choice is None and parallel is None:
        content.pop("tool_choice", None)
        return
    encoded = _encode_tool_choice(choice)
    if parallel is not None and type(encoded) is dict:
        encoded["disable_parallel_tool_use"] = not parallel
    content["tool_choice"] = encoded


def _encode_tool_choice(choice: JsonValue) -> JsonValue:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if type(choice) is dict and "function" in choice:
        function = as_object(choice["function"])
        return {"type": "tool", "name": copy_json(function.get("name"))}
    if type(choice) is dict and choice.get("provider") == API:
        return copy_json(choice.get("value"))
    provider = choice.get("provider") if type(choice) is dict else choice
    raise InvalidArgumentError(f"tool choice for {provider} cannot be encoded for {_LABEL}")


def _patch_api_specific(new: JsonValue, old: JsonValue, content: JsonObject) -> None:
    new_api: JsonObject = new if type(new) is dict else {}
    old_api: JsonObject = old if type(old) is dict else {}
    for key, body_key in _API_KEYS.items():
        value = new_api.get(key)
        if not same_json(value, old_api.get(key)):
            patch_key(content, body_key, copy_json(value))


# ======================================================================================================
# Response decoding
# ======================================================================================================


def _response_error(detail: str) -> InternalError:
    return InternalError(f"{_LABEL} response decode: {detail}")


def _optional_str(response: JsonObject, key: str) -> str | None:
    value = response.get(key)
    if value is None:
        return None
    if type(value) is not str:
        raise _response_error(serde_error(value, "a string"))
    return value


def decode_response(response: JsonObject) -> JsonObject:
    """The annotated-response JSON for an Anthropic Messages response body."""
    out: JsonObject = {}
    api: JsonObject = {"api": API}
    for key in ("id", "model"):
        value = _optional_str(response, key)
        if value is not None:
            out[key] = value
    for body_key, api_key in (
        ("type", "object_type"),
        ("role", "role"),
        ("stop_reason", "stop_reason"),
        ("stop_sequence", "stop_sequence"),
        ("service_tier", "service_tier"),
    ):
        value = _optional_str(response, body_key)
        if value is not None:
            api[api_key] = value
    if response.get("container") is not None:
        api["container"] = copy_json(response["container"])
    blocks = response.get("content")
    if blocks is not None:
        if type(blocks) is not list:
            raise _response_error(serde_error(blocks, "a sequence"))
        api["content_blocks"] = copy_json(blocks)
        _decode_response_blocks(blocks, out)
    stop_reason = api.get("stop_reason")
    if stop_reason is not None:
        out["finish_reason"] = _FINISH_REASONS.get(str(stop_reason)) or {"unknown": stop_reason}
    usage = response.get("usage")
    if usage is not None:
        out["usage"] = _decode_usage(usage)
    out["api_specific"] = api
    known = ("id", "model", "type", "role", "stop_reason", "stop_sequence", "service_tier", "container", "content")
    for key, item in response.items():
        if key not in known and key != "usage" and key not in out:
            out[key] = copy_json(item)
    return out


def _decode_response_blocks(blocks: list[JsonValue], out: JsonObject) -> None:
    texts: list[str] = []
    calls: list[JsonValue] = []
    for block in blocks:
        if type(block) is not dict:
            continue
        if block.get("type") == "text" and type(block.get("text")) is str:
            texts.append(str(block["text"]))
        elif (
            block.get("type") == "tool_use"
            and type(block.get("id")) is str
            and type(block.get("name")) is str
            and "input" in block
        ):
            calls.append({"id": block["id"], "name": block["name"], "arguments": copy_json(block["input"])})
    if texts:
        out["message"] = "\n".join(texts)
    if calls:
        out["tool_calls"] = calls


def _decode_usage(usage: JsonValue) -> JsonObject:
    if type(usage) is not dict:
        raise _response_error(serde_error(usage, "struct RawAnthropicUsage"))
    out: JsonObject = {}
    prompt = token_count(usage, "input_tokens", _LABEL)
    completion = token_count(usage, "output_tokens", _LABEL)
    cache_read = token_count(usage, "cache_read_input_tokens", _LABEL)
    cache_write = token_count(usage, "cache_creation_input_tokens", _LABEL)
    if prompt is not None:
        # One convention for every provider: prompt tokens include cached ones (Anthropic reports them apart).
        prompt += (cache_read or 0) + (cache_write or 0)
        out["prompt_tokens"] = prompt
    if completion is not None:
        out["completion_tokens"] = completion
    if prompt is not None and completion is not None:
        out["total_tokens"] = prompt + completion
    if cache_read is not None:
        out["cache_read_tokens"] = cache_read
    if cache_write is not None:
        out["cache_write_tokens"] = cache_write
    cost = usage_cost(usage.get("cost_usd"), usage.get("cost"), _LABEL)
    if cost is not None:
        out["cost"] = cost
    return out


# ======================================================================================================
# Streaming
# ======================================================================================================


class AnthropicStreamAggregator:
    """Folds Messages streaming events into the body a non-streamed call would have returned.

    ``message_start`` seeds the message, ``content_block_*`` events build the blocks (text, thinking and
    signature deltas append; ``input_json_delta`` fragments are parsed into ``input`` when the block stops),
    and ``message_delta`` sets the stop reason and updates ``usage``. An ``error`` event becomes the result.
    """

    __slots__ = ("_message", "_blocks", "_partial", "_error")

    def __init__(self) -> None:
        self._message: JsonObject = {}
        self._blocks: dict[int, JsonObject] = {}
        self._partial: dict[int, list[str]] = {}
        self._error: JsonObject | None = None

    def add(self, chunk: JsonValue) -> None:
        """Fold one streamed event into the message."""
        if type(chunk) is not dict:
            raise InvalidArgumentError(f"{_LABEL} stream event must be a JSON object")
        kind = chunk.get("type")
        if kind == "message_start":
            self._start(chunk.get("message"))
        elif kind == "content_block_start":
            block = chunk.get("content_block")
            self._blocks[self._index(chunk)] = copy_object(as_object(block))
        elif kind == "content_block_delta":
            self._delta(self._index(chunk), chunk.get("delta"))
        elif kind == "content_block_stop":
            self._finish_block(self._index(chunk))
        elif kind == "message_delta":
            self._message_delta(chunk)
        elif kind == "error":
            self._error = copy_object(chunk)

    def result(self) -> JsonObject:
        """The aggregated message body (or the error event, when the stream reported one)."""
        if self._error is not None:
            return copy_object(self._error)
        for index in list(self._partial):
            self._finish_block(index)
        message: JsonObject = {k: copy_json(v) for k, v in self._message.items()}
        message["content"] = [copy_json(self._blocks[i]) for i in sorted(self._blocks)]
        return message

    @staticmethod
    def _index(chunk: JsonObject) -> int:
        index = chunk.get("index")
        if type(index) is not int or index < 0:
            raise InvalidArgumentError(f"{_LABEL} stream event index must be a non-negative integer")
        return index

    def _start(self, message: JsonValue) -> None:
        if type(message) is not dict:
            raise InvalidArgumentError(f"{_LABEL} message_start event is missing message")
        self._message = copy_object(message)
        for index, block in enumerate(objects(message.get("content"))):
            self._blocks[index] = copy_object(block)

    def _delta(self, index: int, delta: JsonValue) -> None:
        if type(delta) is not dict:
            return
        block = self._blocks.setdefault(index, {})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
        elif kind == "input_json_delta":
            self._partial.setdefault(index, []).append(str(delta.get("partial_json") or ""))
        elif kind == "thinking_delta":
            block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
        elif kind == "signature_delta":
            block["signature"] = str(block.get("signature") or "") + str(delta.get("signature") or "")
        elif kind == "citations_delta":
            citations = block.get("citations")
            block["citations"] = [*(citations if type(citations) is list else []), copy_json(delta.get("citation"))]

    def _finish_block(self, index: int) -> None:
        fragments = self._partial.pop(index, None)
        if fragments is None:
            return
        text = "".join(fragments)
        block = self._blocks.setdefault(index, {})
        try:
            block["input"] = json.loads(text) if text.strip() else {}
        except ValueError:
            raise InvalidArgumentError(
                f"{_LABEL} stream block {index} has tool input that is not valid JSON: {text}"
            ) from None

    def _message_delta(self, chunk: JsonObject) -> None:
        delta = chunk.get("delta")
        if type(delta) is dict:
            self._message.update(copy_object(delta))
        usage = chunk.get("usage")
        if type(usage) is dict:
            # message_delta usage counters are cumulative: they replace what message_start reported.
            merged = self._message.get("usage")
            merged_usage = copy_object(as_object(merged))
            merged_usage.update({k: copy_json(v) for k, v in usage.items() if v is not None})
            self._message["usage"] = merged_usage
