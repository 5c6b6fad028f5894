"""OCI Generative AI chat codec: the GENERIC, COHERE and COHEREV2 request formats.

A request is either a ``ChatDetails`` envelope (``compartmentId``, ``servingMode``, ``chatRequest``) or a
bare ``chatRequest`` body; the body's ``apiFormat`` picks the dialect (anything but ``COHERE`` and
``COHEREV2`` reads as ``GENERIC``). Decoding normalises what the annotation can say and wraps everything
else (images, odd roles, tool definitions, tool choices) as ``oci_genai`` provider-native components.
Encoding decodes the original again and rewrites only what the annotation changed, so untouched provider
fields, ``null`` values and content shapes survive byte for byte at JSON level.

Streaming: OCI sends one JSON event per server-sent event. ``stream_aggregator()`` folds them into the
shape of a non-streamed ``ChatResult`` (see ``OCIStreamAggregator``).
"""

from __future__ import annotations

import json

from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.errors import InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json
from nemo_relay._core.values import LLMRequest

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from nemo_relay._core.types import JsonObject, JsonValue

__all__ = ["OCIGenAIChatCodec", "OCIStreamAggregator"]

_PROVIDER = "oci_genai"
_LABEL = "OCI GenAI"
_GENERIC = "GENERIC"
_COHERE = "COHERE"
_COHEREV2 = "COHEREV2"
_MAX_U64 = 2**64 - 1

# chatRequest keys each dialect reads; every other key is an unknown vendor field kept in ``extra``.
_REQUEST_KEYS = {
    _GENERIC: frozenset(("apiFormat", "messages", "maxTokens", "temperature", "topP", "stop", "tools", "toolChoice")),
    _COHERE: frozenset(
        (
            "apiFormat",
            "message",
            "chatHistory",
            "preambleOverride",
            "maxTokens",
            "temperature",
            "topP",
            "stopSequences",
            "tools",
            "toolChoice",
        )
    ),
    _COHEREV2: frozenset(
        ("apiFormat", "messages", "maxTokens", "temperature", "topP", "stopSequences", "tools", "toolChoice")
    ),
}
_RESPONSE_KEYS = {
    _GENERIC: frozenset(("apiFormat", "choices", "usage")),
    _COHERE: frozenset(("apiFormat", "text", "finishReason", "toolCalls", "usage")),
    _COHEREV2: frozenset(("apiFormat", "id", "message", "finishReason", "usage")),
}
_ENVELOPE_RESPONSE_KEYS = frozenset(("modelId", "modelVersion", "chatResponse"))
_CHOICE_KEYS = frozenset(("index", "message", "finishReason"))
_MESSAGE_KEYS = frozenset(("role", "content", "toolCalls"))

# Every named field of the annotation JSON; any other top-level key is a flattened ``extra`` entry.
_ANNOTATION_FIELDS = frozenset(
    (
        "messages",
        "instructions",
        "model",
        "params",
        "tools",
        "tool_choice",
        "api_specific",
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
    )
)
# The annotation fields OCI can carry; the others (instructions, store, ...) must stay unset.
_OCI_FIELDS = frozenset(("messages", "model", "params", "tools", "tool_choice", "api_specific"))
_FOREIGN_FIELDS = _ANNOTATION_FIELDS - _OCI_FIELDS

# Normalised parameter name -> wire name (the stop key depends on the dialect); numbers are floats on the wire.
_PARAMS = (("temperature", "temperature"), ("max_tokens", "maxTokens"), ("top_p", "topP"), ("stop", None))
_FLOAT_PARAMS = frozenset(("temperature", "top_p"))

_FINISH_REASONS = {
    "stop": "complete",
    "COMPLETE": "complete",
    "length": "length",
    "MAX_TOKENS": "length",
    "max_tokens": "length",
    "tool_calls": "tool_use",
    "TOOL_CALL": "tool_use",
    "content_filter": "content_filter",
}

_CHAT_ROLES = {"SYSTEM": "system", "USER": "user", "ASSISTANT": "assistant", "TOOL": "tool"}
_COHERE_ROLES = {"SYSTEM": "system", "USER": "user", "CHATBOT": "assistant"}
_COHERE_WIRE_ROLES = {"system": "SYSTEM", "user": "USER", "assistant": "CHATBOT"}

_NOT_ENCODABLE = f"request contains fields that cannot be encoded for {_LABEL}"
_MULTIMODAL = f"multimodal content cannot be encoded for the {_LABEL} COHERE format"


class OCIGenAIChatCodec(BuiltinCodec):
    """Codec for OCI Generative AI chat requests and responses (``GENERIC``, ``COHERE``, ``COHEREV2``)."""

    __slots__ = ()

    _relay_builtin_id = "oci_genai"
    provider = _PROVIDER

    def decode(self, request: LLMRequest) -> AnnotatedLLMRequest:
        """Decode an OCI chat request; unknown vendor keys land in ``extra`` even when they share a field name."""
        content = request._content if isinstance(request, LLMRequest) else None
        if type(content) is not dict:
            return super().decode(request)  # raises the shared argument errors
        known, extra = _decode_request(content)
        # extra is set apart, so a vendor key named like a field does not fill that field
        annotated = AnnotatedLLMRequest._from_codec(known, extra)
        annotated._origin = (type(self), content)
        return annotated

    def decode_json(self, content: JsonObject, headers: JsonObject) -> JsonObject:
        """The annotation JSON of an OCI chat request (envelope or bare ``chatRequest``).

        ``extra`` is flattened in and wins name clashes, exactly as ``AnnotatedLLMRequest._to_json`` does, so
        this is the baseline that ``encode`` compares the edited annotation with.
        """
        known, extra = _decode_request(content)
        known.update(extra)
        return known

    def encode(self, annotated: AnnotatedLLMRequest, original: LLMRequest) -> LLMRequest:
        """Encode ``annotated`` into a request shaped like ``original``, patching only what changed.

        Reads fields and ``extra`` from the object separately, so a vendor key named like a field (a COHERE
        body with a ``messages`` key, a GENERIC ``metadata``) never hides an edit of that field.
        """
        content = original._content if isinstance(original, LLMRequest) else None
        if not isinstance(annotated, AnnotatedLLMRequest) or type(content) is not dict:
            return super().encode(annotated, original)  # raises the shared argument errors
        if self._pristine(annotated, original):
            return LLMRequest._trusted(_obj(copy_json(original._headers)), content)
        fields, extra = _annotation_parts(annotated)
        before_fields, before_extra = _decode_request(content)
        patched = _encode_request(fields, extra, before_fields, before_extra, _obj(copy_json(content)))
        return LLMRequest._trusted(_obj(copy_json(original._headers)), patched)

    def encode_json(self, annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonValue:
        """``content`` patched where ``annotation`` differs from ``baseline`` (the fresh decode of it).

        Both are flattened JSON forms; a top-level key counts as ``extra`` unless it names a field that OCI
        carries, or another field absent from the baseline (OCI decoding never fills those).
        """
        fields, extra = _split_flat(annotation, baseline)
        before_fields, before_extra = _split_flat(baseline, baseline)
        return _encode_request(fields, extra, before_fields, before_extra, content)

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode an OCI ``ChatResult``; a non-object is kept whole as ``extra["raw"]``, as the reference does."""
        if type(response) is not dict:
            return AnnotatedLLMResponse(extra={"raw": copy_json(response)})
        known, extra = _decode_response(response)
        return AnnotatedLLMResponse(**known, extra=extra)  # type: ignore[arg-type]  # JSON values, checked there

    def decode_response_json(self, response: JsonObject) -> JsonObject:
        """The annotated-response JSON of an OCI ``ChatResult`` (envelope or bare ``chatResponse``).

        Unlike the event form, the named fields win name clashes here (an unknown ``message.toolPlan`` would
        otherwise replace the message text), so the result always loads with ``AnnotatedLLMResponse._from_json``.
        """
        known, extra = _decode_response(response)
        extra.update(known)
        return extra

    def stream_aggregator(self) -> OCIStreamAggregator:
        """A fresh aggregator folding streamed OCI chat events into a final ``ChatResult``."""
        return OCIStreamAggregator()


def _decode_request(content: JsonObject) -> tuple[JsonObject, JsonObject]:
    """``(named annotation fields, unknown chatRequest keys)`` of an OCI chat request."""
    body, envelope = _split_request(content)
    api_format = _api_format(body)
    dialect = _dialect(api_format)
    messages = _decode_cohere_messages(body) if dialect == _COHERE else _decode_chat_messages(body)
    known: JsonObject = {"messages": messages}
    params = _decode_params(body, _stop_key(dialect))
    if params:
        known["params"] = params
    tools = _decode_tools(body.get("tools"))
    if tools is not None:
        known["tools"] = tools
    tool_choice = body.get("toolChoice")
    if tool_choice is not None:
        known["tool_choice"] = _native_component(tool_choice)
    api_specific: JsonObject = {"api": _PROVIDER, "api_format": api_format}
    if envelope is not None:
        model = _decode_envelope(envelope, api_specific)
        if model is not None:
            known["model"] = model
    known["api_specific"] = api_specific
    extra = {key: copy_json(value) for key, value in body.items() if key not in _REQUEST_KEYS[dialect]}
    return known, extra


def _decode_response(response: JsonObject) -> tuple[JsonObject, JsonObject]:
    """``(named annotated-response fields, unknown keys)`` of an OCI ``ChatResult``."""
    body = response.get("chatResponse")
    known: JsonObject = {}
    extra: JsonObject = {}
    if type(body) is not dict:
        body = response  # a bare chatResponse: modelId and friends are unknown keys here
    api_format = _api_format(body)
    api_specific: JsonObject = {"api": _PROVIDER, "api_format": api_format}
    if body is not response:
        _copy_unknown(response, _ENVELOPE_RESPONSE_KEYS, extra)
        _decode_response_envelope(response, known, api_specific)
    dialect = _dialect(api_format)
    _copy_unknown(body, _RESPONSE_KEYS[dialect], extra)
    if dialect == _COHERE:
        _decode_cohere_result(body, known)
    elif dialect == _COHEREV2:
        _decode_coherev2_result(body, known, extra)
    else:
        _decode_generic_result(body, known, extra)
    usage = _decode_usage(body.get("usage"))
    if usage is not None:
        known["usage"] = usage
    known["api_specific"] = api_specific
    return known, extra


# --- request envelope and dialect --------------------------------------------------------------------------


def _split_request(content: JsonObject) -> tuple[JsonObject, JsonObject | None]:
    """``(chatRequest body, envelope or None)``: without an object ``chatRequest`` the content is the body."""
    body = content.get("chatRequest")
    if type(body) is dict:
        return body, content
    return content, None


def _api_format(body: JsonObject) -> str:
    value = body.get("apiFormat")
    return value.upper() if isinstance(value, str) else _GENERIC


def _dialect(api_format: str) -> str:
    # Unknown formats are read as GENERIC (the reference keeps the raw label in api_specific).
    return api_format if api_format in (_COHERE, _COHEREV2) else _GENERIC


def _stop_key(dialect: str) -> str:
    return "stop" if dialect == _GENERIC else "stopSequences"


def _decode_envelope(envelope: JsonObject, api_specific: JsonObject) -> str | None:
    """Fill ``compartment_id``/``serving_mode`` from the envelope; return the model it names."""
    compartment = envelope.get("compartmentId")
    if isinstance(compartment, str):
        api_specific["compartment_id"] = compartment
    if "servingMode" not in envelope:
        return None
    serving = envelope["servingMode"]
    api_specific["serving_mode"] = copy_json(serving)
    if type(serving) is not dict:
        return None
    # modelId wins when present at all (even null); endpointId names dedicated endpoints.
    model = serving["modelId"] if "modelId" in serving else serving.get("endpointId")
    return model if isinstance(model, str) else None


# --- request decoding: messages ------------------------------------------------------------------------------


def _decode_chat_messages(body: JsonObject) -> list[JsonValue]:
    """GENERIC and COHEREV2 ``messages``."""
    raw = body.get("messages")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{_LABEL} GENERIC messages must be an array")
    out: list[JsonValue] = []
    for message in raw:
        if type(message) is not dict:
            raise InvalidArgumentError(f"{_LABEL} GENERIC message must be an object")
        out.append(_decode_chat_message(message))
    return out


def _decode_chat_message(message: JsonObject) -> JsonObject:
    raw_role = message.get("role")
    role = raw_role.upper() if isinstance(raw_role, str) else "USER"
    content = _decode_content(message.get("content"))
    tool_calls = _decode_request_tool_calls(message.get("toolCalls"))
    normal = _CHAT_ROLES.get(role)
    if normal == "assistant":
        out: JsonObject = {"role": "assistant"}
        if content is not None and content != []:
            out["content"] = content
        if tool_calls is not None:
            out["tool_calls"] = tool_calls
        return out
    if normal is not None and content is not None and content != []:
        tool_call_id = message.get("toolCallId")
        if normal != "tool":
            return {"role": normal, "content": content}
        if isinstance(tool_call_id, str):
            return {"role": "tool", "content": content, "tool_call_id": tool_call_id}
    # Roles, or shapes, the annotation cannot express travel verbatim (kind: the role as written, lowercased).
    return _native_message(raw_role.lower() if isinstance(raw_role, str) else "user", message)


def _decode_content(content: JsonValue) -> JsonValue:
    """``None`` (absent/null), a string, ``[]`` (no parts), or normalised parts.

    Content made only of TEXT parts reads as one string (a null or missing ``text`` counts as empty, part
    extras are not kept); mixed content keeps one normalised part per OCI part.
    """
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidArgumentError(f"{_LABEL} GENERIC message content must be a string, an array, or null")
    texts: list[str] | None = []
    for part in content:
        if type(part) is not dict:
            raise InvalidArgumentError(f"{_LABEL} GENERIC content part must be an object")
        text = part.get("text")
        if texts is not None and part.get("type") == "TEXT" and (text is None or isinstance(text, str)):
            texts.append(text or "")
        else:
            texts = None
    if content and texts is not None:
        return "".join(texts)
    return [_decode_part(_obj(part)) for part in content]


def _decode_part(part: JsonObject) -> JsonObject:
    if part.get("type") == "TEXT" and isinstance(part.get("text", ""), str):
        out: JsonObject = {"type": "text", "text": part.get("text", "")}
        for key, value in part.items():
            if key != "type" and key != "text":
                out[key] = copy_json(value)
        return out
    kind = part.get("type")
    return {
        "type": "provider_native",
        "provider": _PROVIDER,
        "kind": kind if isinstance(kind, str) else "unknown",
        "value": copy_json(part),
    }


def _decode_request_tool_calls(raw: JsonValue) -> list[JsonValue] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{_LABEL} GENERIC toolCalls must be an array")
    out: list[JsonValue] = []
    for call in raw:
        if type(call) is not dict:
            raise InvalidArgumentError(f"{_LABEL} toolCalls entry must be an object")
        source = _call_source(call)
        call_id = call.get("id")
        name = source.get("name")
        function: JsonObject = {"name": name if isinstance(name, str) else "", "arguments": _arguments_text(source)}
        out.append({"id": call_id if isinstance(call_id, str) else "", "type": "function", "function": function})
    return out


def _arguments_text(source: JsonObject) -> str:
    if "arguments" not in source:
        return ""
    value = source["arguments"]
    return value if isinstance(value, str) else _json_text(value)


def _decode_cohere_messages(body: JsonObject) -> list[JsonValue]:
    """COHERE ``preambleOverride`` + ``chatHistory`` + ``message`` as one message list."""
    history = body.get("chatHistory", [])
    if not isinstance(history, list):
        raise InvalidArgumentError(f"{_LABEL} COHERE chatHistory must be an array")
    out: list[JsonValue] = []
    preamble = body.get("preambleOverride")
    if isinstance(preamble, str) and preamble:
        out.append({"role": "system", "content": preamble})
    for turn in history:
        if type(turn) is not dict:
            raise InvalidArgumentError(f"{_LABEL} COHERE chatHistory turn must be an object")
        out.append(_decode_cohere_turn(turn))
    message = body.get("message")
    if isinstance(message, str):
        out.append({"role": "user", "content": message})
    return out


def _decode_cohere_turn(turn: JsonObject) -> JsonObject:
    raw_role = turn.get("role")
    role = raw_role.upper() if isinstance(raw_role, str) else "USER"
    normal = _COHERE_ROLES.get(role)
    text = turn.get("message")
    if normal is not None and isinstance(text, str):
        return {"role": normal, "content": text}  # CHATBOT toolCalls are dropped here, as in the reference
    return _native_message(role, turn)


def _native_message(kind: str, value: JsonObject) -> JsonObject:
    return {"role": "provider_native", "provider": _PROVIDER, "kind": kind, "value": copy_json(value)}


def _native_component(value: JsonValue) -> JsonObject:
    """Tool choices travel verbatim; ``kind`` is their ``type`` when they have one."""
    kind = value.get("type") if type(value) is dict else None
    return {"provider": _PROVIDER, "kind": kind if isinstance(kind, str) else "unknown", "value": copy_json(value)}


# --- request decoding: parameters and tools --------------------------------------------------------------------


def _decode_params(body: JsonObject, stop_key: str) -> JsonObject:
    params: JsonObject = {}
    temperature = _number_param(body, "temperature")
    max_tokens = body.get("maxTokens")
    if max_tokens is not None and not _is_count(max_tokens):
        raise InvalidArgumentError(f"{_LABEL} maxTokens must be a non-negative integer or null")
    top_p = _number_param(body, "topP")
    stop = body.get(stop_key)
    if stop is not None:
        _check_string_array(stop, stop_key)
    for key, value in (("temperature", temperature), ("max_tokens", max_tokens), ("top_p", top_p)):
        if value is not None:
            params[key] = value
    if stop is not None:
        params["stop"] = copy_json(stop)
    return params


def _number_param(body: JsonObject, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{_LABEL} {key} must be a number or null")
    return float(value)


def _is_count(value: JsonValue) -> bool:
    return type(value) is int and 0 <= value <= _MAX_U64


def _check_string_array(value: JsonValue, key: str) -> None:
    """Raise with the reference's serde wording unless ``value`` is a list of strings."""
    prefix = f"{_LABEL} {key} must be a string array: invalid type: "
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{prefix}{_serde_unexpected(value)}, expected a sequence")
    for item in value:
        if not isinstance(item, str):
            raise InvalidArgumentError(f"{prefix}{_serde_unexpected(item)}, expected a string")


def _decode_tools(raw: JsonValue) -> list[JsonValue] | None:
    """Every OCI tool definition travels verbatim as a provider-native tool (``kind`` = its ``type``)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{_LABEL} tools must be an array")
    out: list[JsonValue] = []
    for tool in raw:
        component = _native_component(tool)
        component["type"] = "provider_native"
        out.append(component)
    return out


# --- request encoding -----------------------------------------------------------------------------------------


def _annotation_parts(annotated: AnnotatedLLMRequest) -> tuple[JsonObject, JsonObject]:
    """``(fields, extra)`` of an annotation; the flat JSON form lets ``extra`` shadow same-named fields."""
    flat = annotated._to_json()
    extra = annotated.extra
    fields = {key: value for key, value in flat.items() if key not in extra}
    for key in extra.keys() & _ANNOTATION_FIELDS:
        value = getattr(annotated, key)
        if value is not None:
            fields[key] = value
    return fields, extra


def _split_flat(flat: JsonObject, baseline: JsonObject) -> tuple[JsonObject, JsonObject]:
    fields: JsonObject = {}
    extra: JsonObject = {}
    for key, value in flat.items():
        if key in _OCI_FIELDS or (key in _ANNOTATION_FIELDS and key not in baseline):
            fields[key] = value
        else:
            extra[key] = value
    return fields, extra


def _encode_request(
    fields: JsonObject, extra: JsonObject, before_fields: JsonObject, before_extra: JsonObject, content: JsonObject
) -> JsonObject:
    """``content`` (a private copy) patched where the annotation differs from the fresh decode of it."""
    body, envelope = _split_request(content)
    dialect = _dialect(_api_format(body))
    _check_representable(fields, before_fields)
    messages, before = fields.get("messages"), before_fields.get("messages")
    if not _same(messages, before):
        if dialect == _COHERE:
            _encode_cohere_messages(body, _arr(messages))
        else:
            _encode_chat_messages(body, _arr(messages), _arr(before), dialect)
    _patch_params(body, fields.get("params"), before_fields.get("params"), _stop_key(dialect))
    _patch_tools(body, fields.get("tools"), before_fields.get("tools"))
    _patch_tool_choice(body, fields.get("tool_choice"), before_fields.get("tool_choice"))
    _patch_api_specific(envelope, fields.get("api_specific"), before_fields.get("api_specific"))
    _patch_extra(body, extra, before_extra)
    return content


def _check_representable(fields: JsonObject, before: JsonObject) -> None:
    """OCI has no place for instructions, store, ... and the model lives in ``servingMode``: none may change."""
    for key in _FOREIGN_FIELDS:
        if not _same(fields.get(key), before.get(key)):
            raise InvalidArgumentError(_NOT_ENCODABLE)
    if not _same(fields.get("model"), before.get("model")):
        raise InvalidArgumentError(_NOT_ENCODABLE)


def _encode_chat_messages(body: JsonObject, messages: list[JsonValue], baseline: list[JsonValue], dialect: str) -> None:
    """GENERIC/COHEREV2: keep each original message whose annotation is unchanged at that index."""
    originals = body.get("messages")
    if not isinstance(originals, list):
        originals = []
    kept = min(len(baseline), len(originals))
    out: list[JsonValue] = []
    for index, message in enumerate(messages):
        if index < kept and _same(message, baseline[index]):
            out.append(originals[index])
        else:
            out.append(_encode_chat_message(_obj(message), dialect))
    body["messages"] = out


def _encode_chat_message(message: JsonObject, dialect: str) -> JsonValue:
    role = message.get("role")
    if role == "system" or role == "user":
        return {"role": role.upper(), "content": _encode_parts(message.get("content"))}
    if role == "assistant":
        content = message.get("content")
        out: JsonObject = {"role": "ASSISTANT", "content": [] if content is None else _encode_parts(content)}
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            out["toolCalls"] = [_encode_tool_call(_obj(call), dialect) for call in _arr(tool_calls)]
        return out
    if role == "tool":
        return {
            "role": "TOOL",
            "toolCallId": message.get("tool_call_id"),
            "content": _encode_parts(message.get("content")),
        }
    if role == "provider_native" and message.get("provider") == _PROVIDER:
        return copy_json(message.get("value"))
    raise InvalidArgumentError(f"message {_debug_message(message)} cannot be encoded for {_LABEL}")


def _encode_parts(content: JsonValue) -> list[JsonValue]:
    if isinstance(content, str):
        return [{"type": "TEXT", "text": content}]
    return [_encode_part(_obj(part)) for part in _arr(content)]


def _encode_part(part: JsonObject) -> JsonValue:
    kind = part.get("type")
    if kind == "text":
        out: JsonObject = {"type": "TEXT", "text": part.get("text")}
        for key, value in part.items():
            if key != "type" and key != "text":
                out[key] = copy_json(value)
        return out
    if kind == "provider_native" and part.get("provider") == _PROVIDER:
        return copy_json(part.get("value"))
    raise InvalidArgumentError(f"content part {_debug_part(part)} cannot be encoded for {_LABEL}")


def _encode_tool_call(call: JsonObject, dialect: str) -> JsonObject:
    function = call.get("function")
    if type(function) is not dict:
        function = {}
    name, arguments = function.get("name"), function.get("arguments")
    call_id = call.get("id")
    out: JsonObject = {"id": call_id} if call_id else {}  # an empty id is left out, as in the reference
    out["type"] = "FUNCTION"
    if dialect == _COHEREV2:
        out["function"] = {"name": name, "arguments": arguments}
    else:
        out["name"] = name
        out["arguments"] = arguments
    return out


def _encode_cohere_messages(body: JsonObject, messages: list[JsonValue]) -> None:
    """COHERE: rebuild ``preambleOverride``, ``chatHistory`` and ``message`` from the whole list."""
    last = messages[-1] if messages else None
    if type(last) is not dict or last.get("role") != "user":
        raise InvalidArgumentError(f"{_LABEL} COHERE requests require the last message to be a user message")
    text = _cohere_text(last)
    rest = [_obj(message) for message in messages[:-1]]
    preamble = None
    if rest and rest[0].get("role") == "system":
        preamble = _cohere_text(rest[0])
        rest = rest[1:]
    history = [_encode_cohere_turn(message) for message in rest]
    body["message"] = text
    if preamble is None:
        body.pop("preambleOverride", None)
    else:
        body["preambleOverride"] = preamble
    if history or "chatHistory" in body:
        body["chatHistory"] = history


def _cohere_text(message: JsonObject) -> str:
    content = message.get("content")
    if not isinstance(content, str):
        raise InvalidArgumentError(_MULTIMODAL)
    return content


def _encode_cohere_turn(message: JsonObject) -> JsonValue:
    role = message.get("role")
    wire_role = _COHERE_WIRE_ROLES.get(role) if isinstance(role, str) else None
    if wire_role is not None and (role != "assistant" or message.get("content") is not None):
        return {"role": wire_role, "message": _cohere_text(message)}  # assistant tool_calls have no COHERE form
    if role == "tool":
        raise InvalidArgumentError(f"{_LABEL} COHERE tool results cannot be rebuilt from a normalized tool message")
    if role == "provider_native" and message.get("provider") == _PROVIDER:
        return copy_json(message.get("value"))
    raise InvalidArgumentError(
        f"message {_debug_message(message)} cannot be encoded as an {_LABEL} COHERE chatHistory turn"
    )


def _patch_params(body: JsonObject, params: JsonValue, baseline: JsonValue, stop_key: str) -> None:
    new = params if type(params) is dict else {}
    old = baseline if type(baseline) is dict else {}
    for name, wire in _PARAMS:
        value, before = new.get(name), old.get(name)
        if _same(value, before):
            continue
        key = wire or stop_key
        if value is None:
            body.pop(key, None)
        elif name in _FLOAT_PARAMS and isinstance(value, (int, float)):
            body[key] = float(value)
        else:
            body[key] = copy_json(value)


def _patch_tools(body: JsonObject, tools: JsonValue, baseline: JsonValue) -> None:
    if _same(tools, baseline):
        return
    if tools is None:
        body.pop("tools", None)
    else:
        body["tools"] = [_encode_tool(_obj(tool)) for tool in _arr(tools)]


def _encode_tool(tool: JsonObject) -> JsonValue:
    if tool.get("type") == "function":
        function = tool.get("function")
        if type(function) is not dict:
            function = {}
        out: JsonObject = {"type": "FUNCTION", "name": function.get("name")}
        for key in ("description", "parameters"):  # `strict` has no OCI form and is dropped, as in the reference
            if function.get(key) is not None:
                out[key] = copy_json(function[key])
        return out
    if tool.get("type") == "provider_native" and tool.get("provider") == _PROVIDER:
        return copy_json(tool.get("value"))
    raise InvalidArgumentError(f"tool {_debug_native(tool)} cannot be encoded for {_LABEL}")


def _patch_tool_choice(body: JsonObject, choice: JsonValue, baseline: JsonValue) -> None:
    if _same(choice, baseline):
        return
    if choice is None:
        body.pop("toolChoice", None)
    elif type(choice) is dict and choice.get("provider") == _PROVIDER:
        body["toolChoice"] = copy_json(choice.get("value"))
    else:
        raise InvalidArgumentError(f"tool choice {_debug_tool_choice(choice)} cannot be encoded for {_LABEL}")


def _patch_api_specific(envelope: JsonObject | None, api_specific: JsonValue, baseline: JsonValue) -> None:
    """Edits to compartment and serving mode go to the envelope; the format and the provider are fixed."""
    if api_specific is None:
        return  # clearing api_specific is not an edit
    old: JsonObject = baseline if type(baseline) is dict else {}
    if type(api_specific) is not dict or api_specific.get("api") != _PROVIDER:
        raise InvalidArgumentError(f"api_specific provider does not match {_LABEL}")
    if api_specific.get("api_format") != old.get("api_format"):
        raise InvalidArgumentError(f"the {_LABEL} api_format cannot be edited")
    changes = [
        (wire, api_specific.get(name))
        for name, wire in (("compartment_id", "compartmentId"), ("serving_mode", "servingMode"))
        if not _same(api_specific.get(name), old.get(name))
    ]
    if not changes:
        return
    if envelope is None:
        raise InvalidArgumentError("compartmentId and servingMode edits require a ChatDetails envelope")
    for wire, value in changes:
        if value is None:
            envelope.pop(wire, None)
        else:
            envelope[wire] = copy_json(value)


def _patch_extra(body: JsonObject, extra: JsonObject, before: JsonObject) -> None:
    """Unknown chatRequest keys: drop the removed ones, write the added or changed ones (last, so they win)."""
    for key in before:
        if key not in extra:
            body.pop(key, None)
    for key, value in extra.items():
        if key not in before or not _same(value, before[key]):
            body[key] = copy_json(value)


# --- response decoding -----------------------------------------------------------------------------------------


def _copy_unknown(source: JsonObject, known: frozenset[str], into: JsonObject) -> None:
    for key, value in source.items():
        if key not in known:
            into[key] = copy_json(value)


def _decode_response_envelope(response: JsonObject, known: JsonObject, api_specific: JsonObject) -> None:
    model = response.get("modelId")
    if isinstance(model, str):
        known["model"] = model
    version = response.get("modelVersion")
    if isinstance(version, str):
        api_specific["model_version"] = version


def _decode_generic_result(body: JsonObject, known: JsonObject, extra: JsonObject) -> None:
    """GENERIC: the first of ``choices`` carries the message, tool calls and finish reason."""
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if type(choice) is not dict:
        return
    unknown: JsonObject = {}
    _copy_unknown(choice, _CHOICE_KEYS, unknown)
    if unknown:
        extra["choice"] = unknown
    message = choice.get("message")
    if type(message) is dict:
        _decode_result_message(message, known, extra)
    _set_finish_reason(choice.get("finishReason"), known)


def _decode_coherev2_result(body: JsonObject, known: JsonObject, extra: JsonObject) -> None:
    response_id = body.get("id")
    if isinstance(response_id, str):
        known["id"] = response_id
    message = body.get("message")
    if type(message) is dict:
        _decode_result_message(message, known, extra)
    _set_finish_reason(body.get("finishReason"), known)


def _decode_result_message(message: JsonObject, known: JsonObject, extra: JsonObject) -> None:
    """The assistant message of GENERIC/COHEREV2 results: text, tool calls, and its unknown keys."""
    unknown: JsonObject = {}
    _copy_unknown(message, _MESSAGE_KEYS, unknown)
    if unknown:
        extra["message"] = unknown
    content = _decode_content(message.get("content"))
    if content is not None and content != []:
        known["message"] = content
    calls = _decode_result_tool_calls(message.get("toolCalls"), _generic_call_parts)
    if calls:
        known["tool_calls"] = calls


def _decode_cohere_result(body: JsonObject, known: JsonObject) -> None:
    text = body.get("text")
    if isinstance(text, str):
        known["message"] = text
    calls = _decode_result_tool_calls(body.get("toolCalls"), _cohere_call_parts)
    if calls:
        known["tool_calls"] = calls
    _set_finish_reason(body.get("finishReason"), known)


def _call_source(call: JsonObject) -> JsonObject:
    """Where a call keeps ``name``/``arguments``: COHEREV2 nests them under a ``function`` object, GENERIC not."""
    function = call.get("function")
    return function if isinstance(function, dict) else call


def _generic_call_parts(call: JsonObject) -> tuple[JsonValue, JsonValue]:
    """``(name, arguments)`` of a GENERIC/COHEREV2 call; string arguments are parsed when they are JSON."""
    source = _call_source(call)
    arguments = source.get("arguments")
    if isinstance(arguments, str):
        return source.get("name"), _parse_json_or_text(arguments)
    return source.get("name"), copy_json(arguments)


def _cohere_call_parts(call: JsonObject) -> tuple[JsonValue, JsonValue]:
    return call.get("name"), copy_json(call.get("parameters"))


def _decode_result_tool_calls(
    raw: JsonValue, parts: Callable[[JsonObject], tuple[JsonValue, JsonValue]]
) -> list[JsonValue]:
    """``[{id, name, arguments}]``; entries without a string name are skipped, missing ids become ``call_<i>``."""
    if not isinstance(raw, list):
        return []
    out: list[JsonValue] = []
    for index, call in enumerate(raw):
        if type(call) is not dict:
            continue
        name, arguments = parts(call)
        if not isinstance(name, str):
            continue
        call_id = call.get("id")
        out.append(
            {"id": call_id if isinstance(call_id, str) else f"call_{index}", "name": name, "arguments": arguments}
        )
    return out


def _set_finish_reason(raw: JsonValue, known: JsonObject) -> None:
    if isinstance(raw, str):
        known["finish_reason"] = _FINISH_REASONS.get(raw) or {"unknown": raw}


def _decode_usage(raw: JsonValue) -> JsonObject | None:
    """OCI ``promptTokens`` already include cached tokens; ``promptTokensDetails.cachedTokens`` is the cache read."""
    if type(raw) is not dict:
        return None
    usage: JsonObject = {}
    for wire, name in (
        ("promptTokens", "prompt_tokens"),
        ("completionTokens", "completion_tokens"),
        ("totalTokens", "total_tokens"),
    ):
        if _is_count(raw.get(wire)):
            usage[name] = raw[wire]
    details = raw.get("promptTokensDetails")
    if type(details) is dict and _is_count(details.get("cachedTokens")):
        usage["cache_read_tokens"] = details["cachedTokens"]
    return usage


# --- streaming ---------------------------------------------------------------------------------------------------


class OCIStreamAggregator:
    """Folds streamed OCI chat events into the ``ChatResult`` a non-streamed call would have returned.

    Chunks are the parsed JSON of each server-sent event (a dict), or the raw event text (``"data: {...}"``,
    ``"[DONE]"`` and blank keep-alives are skipped). Assumed shapes, per format:

    * GENERIC: ``{"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": delta}],
      "toolCalls": [fragment, ...], "reasoningContent": delta}}``; a later event carries ``finishReason``, and
      with ``streamOptions.isIncludeUsage`` a last usage-only event ``{"usage": {...}}`` follows. Tool-call
      fragments with an ``id`` open (or re-open) a call; id-less fragments extend the call last opened at the
      same position; ``arguments`` strings concatenate.
    * COHERE: ``{"apiFormat": "COHERE", "text": delta}``; the final event (with ``finishReason``) repeats the
      full ``text`` and may carry ``toolCalls``, ``chatHistory``, ``citations``, ``usage``...
    * COHEREV2: ``{"apiFormat": "COHEREV2", "message": {"content": [{"type": "TEXT", "text": delta}],
      "toolCalls": [...]}}``, tool calls merged like GENERIC ones but nested under ``function``; the final event
      carries ``finishReason`` and ``usage``, and its message restates what came before (not a delta).

    An event that already is a whole ``ChatResult`` (has a ``chatResponse`` object) replaces the aggregate.
    """

    __slots__ = (
        "_active",
        "_api_format",
        "_by_id",
        "_calls",
        "_cohere_calls",
        "_extra",
        "_finish",
        "_final_text",
        "_model",
        "_model_version",
        "_reasoning",
        "_text",
        "_usage",
        "_whole",
    )

    def __init__(self) -> None:
        self._api_format: str | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._final_text: str | None = None
        self._calls: list[JsonObject] = []
        self._by_id: dict[str, JsonObject] = {}
        self._active: dict[int, JsonObject] = {}
        self._cohere_calls: JsonValue = None
        self._finish: JsonValue = None
        self._usage: JsonValue = None
        self._model: JsonValue = None
        self._model_version: JsonValue = None
        self._extra: JsonObject = {}
        self._whole: JsonObject | None = None

    def add(self, chunk: JsonValue | bytes) -> None:
        """Fold one streamed event into the aggregate."""
        event = _stream_event(chunk)
        if event is None:
            return
        if type(event.get("chatResponse")) is dict:
            self._whole = _obj(copy_json(event))
            return
        self._note_common(event)
        dialect = _dialect(self._format(event))
        if dialect == _COHERE:
            self._add_cohere(event)
        else:
            self._add_chat(event, coherev2=dialect == _COHEREV2)

    def result(self) -> JsonObject:
        """The aggregated response, shaped like a non-streamed OCI ``ChatResult``."""
        if self._whole is not None:
            return _obj(copy_json(self._whole))
        api_format = self._api_format or _GENERIC
        dialect = _dialect(api_format)
        if dialect == _COHERE:
            body = self._cohere_body(api_format)
        elif dialect == _COHEREV2:
            body = self._coherev2_body(api_format)
        else:
            body = self._generic_body(api_format)
        if self._usage is not None:
            body["usage"] = copy_json(self._usage)
        out: JsonObject = {"chatResponse": body}
        if self._model is not None:
            out["modelId"] = self._model
        if self._model_version is not None:
            out["modelVersion"] = self._model_version
        return out

    # -- folding ----------------------------------------------------------------------------------------------

    def _format(self, event: JsonObject) -> str:
        if self._api_format is None:
            declared = event.get("apiFormat")
            if isinstance(declared, str):
                self._api_format = declared.upper()
            elif isinstance(event.get("text"), str):
                self._api_format = _COHERE  # only COHERE events carry top-level text
        return self._api_format or _GENERIC

    def _note_common(self, event: JsonObject) -> None:
        if type(event.get("usage")) is dict:
            self._usage = copy_json(event["usage"])
        if isinstance(event.get("finishReason"), str):
            self._finish = event["finishReason"]
        if isinstance(event.get("modelId"), str):
            self._model = event["modelId"]
        if isinstance(event.get("modelVersion"), str):
            self._model_version = event["modelVersion"]

    def _add_chat(self, event: JsonObject, *, coherev2: bool) -> None:
        message = event.get("message")
        if type(message) is not dict:
            return
        repeat = coherev2 and "finishReason" in event  # COHEREV2's final event restates the message
        if not repeat:
            self._text.extend(_delta_texts(message.get("content")))
        reasoning = message.get("reasoningContent")
        if isinstance(reasoning, str):
            self._reasoning.append(reasoning)
        calls = message.get("toolCalls")
        if isinstance(calls, list) and not (repeat and self._calls):  # a repeat of calls already folded
            for position, fragment in enumerate(calls):
                if type(fragment) is dict:
                    self._merge_call(position, fragment)

    def _merge_call(self, position: int, fragment: JsonObject) -> None:
        source = _call_source(fragment)
        call_id = fragment.get("id")
        if isinstance(call_id, str) and call_id:
            call = self._by_id.get(call_id)
            if call is None:
                call = self._open_call(call_id)
                self._by_id[call_id] = call
        else:
            call = self._active.get(position) or self._open_call(None)
        self._active[position] = call
        name, arguments = source.get("name"), source.get("arguments")
        if isinstance(name, str) and name and not call["name"]:
            call["name"] = name
        if isinstance(arguments, str):
            call["arguments"] = f"{call['arguments']}{arguments}"
        elif arguments is not None:
            call["arguments"] = copy_json(arguments)  # a complete, already-structured value

    def _open_call(self, call_id: str | None) -> JsonObject:
        call: JsonObject = {"id": call_id, "name": "", "arguments": ""}
        self._calls.append(call)
        return call

    def _add_cohere(self, event: JsonObject) -> None:
        text = event.get("text")
        if "finishReason" in event:
            if isinstance(text, str):
                self._final_text = text  # the final event repeats the whole text
            for key, value in event.items():
                if key not in _RESPONSE_KEYS[_COHERE] and key not in ("pad", "index", "modelId", "modelVersion"):
                    self._extra[key] = copy_json(value)
        elif isinstance(text, str):
            self._text.append(text)
        if isinstance(event.get("toolCalls"), list):
            self._cohere_calls = copy_json(event["toolCalls"])  # COHERE sends whole calls, never fragments

    # -- building -----------------------------------------------------------------------------------------------

    def _chat_message(self, *, nested: bool) -> JsonObject:
        message: JsonObject = {"role": "ASSISTANT"}
        if self._text:
            message["content"] = [{"type": "TEXT", "text": "".join(self._text)}]
        if self._reasoning:
            message["reasoningContent"] = "".join(self._reasoning)
        if self._calls:
            message["toolCalls"] = [_stream_call(call, nested=nested) for call in self._calls]
        return message

    def _generic_body(self, api_format: str) -> JsonObject:
        choice: JsonObject = {"index": 0, "message": self._chat_message(nested=False)}
        if self._finish is not None:
            choice["finishReason"] = self._finish
        return {"apiFormat": api_format, "choices": [choice]}

    def _coherev2_body(self, api_format: str) -> JsonObject:
        body: JsonObject = {"apiFormat": api_format, "message": self._chat_message(nested=True)}
        if self._finish is not None:
            body["finishReason"] = self._finish
        return body

    def _cohere_body(self, api_format: str) -> JsonObject:
        text = self._final_text if self._final_text is not None else "".join(self._text)
        body = _obj(copy_json(self._extra))
        body["apiFormat"] = api_format
        body["text"] = text
        if self._cohere_calls is not None:
            body["toolCalls"] = copy_json(self._cohere_calls)
        if self._finish is not None:
            body["finishReason"] = self._finish
        return body


def _stream_event(chunk: JsonValue | bytes) -> JsonObject | None:
    """A chunk as an event object, or None for SSE sentinels and keep-alives."""
    if isinstance(chunk, (bytes, bytearray)):
        chunk = bytes(chunk).decode("utf-8")
    if isinstance(chunk, str):
        text = chunk.strip()
        if text.startswith("data:"):
            text = text[5:].strip()
        if not text or text == "[DONE]":
            return None
        try:
            chunk = json.loads(text)
        except ValueError:
            raise InvalidArgumentError(f"{_LABEL} stream event is not JSON: {text[:80]!r}") from None
    if type(chunk) is not dict:
        raise InvalidArgumentError(f"{_LABEL} stream event must be a JSON object, got {type(chunk).__name__}")
    return chunk


def _delta_texts(content: JsonValue) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    texts: list[str] = []
    for part in content:
        text = part.get("text") if type(part) is dict and part.get("type") == "TEXT" else None
        if isinstance(text, str):
            texts.append(text)
    return texts


def _stream_call(call: JsonObject, *, nested: bool) -> JsonObject:
    out: JsonObject = {} if call["id"] is None else {"id": call["id"]}
    out["type"] = "FUNCTION"
    if nested:
        out["function"] = {"name": call["name"], "arguments": call["arguments"]}
    else:
        out["name"] = call["name"]
        out["arguments"] = call["arguments"]
    return out


# --- JSON helpers ------------------------------------------------------------------------------------------------


def _obj(value: JsonValue) -> JsonObject:
    """``value`` if it is an object, else an empty one (annotation JSON is validated upstream)."""
    return value if isinstance(value, dict) else {}


def _arr(value: JsonValue) -> list[JsonValue]:
    return value if isinstance(value, list) else []


def _same(a: JsonValue, b: JsonValue) -> bool:
    """JSON equality that, like serde's, tells ``1`` from ``1.0`` and ``true``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(value, b[key]) for key, value in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _json_text(value: JsonValue) -> str:
    """Compact JSON with sorted keys, as serde_json writes the reference's (ordered) maps."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _parse_json_or_text(text: str) -> JsonValue:
    try:
        parsed: JsonValue = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text
    return parsed


def _reject_constant(name: str) -> JsonValue:
    raise ValueError(name)  # NaN and Infinity are not JSON


# --- error texts in the reference's (Rust Debug / serde) notation ----------------------------------------------


def _serde_unexpected(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{_rs_float(value)}`"
    if isinstance(value, str):
        return f"string {_rs_str(value)}"
    return "sequence" if isinstance(value, list) else "map"


def _rs_float(value: float) -> str:
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = int(exponent)
    if power == -5:  # Python switches to exponent notation one step earlier than the reference
        return format(value, ".20f").rstrip("0")
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def _rs_str(text: str) -> str:
    import unicodedata  # error path only

    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif not char.isprintable() or unicodedata.category(char) in ("Mn", "Me"):
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return f'"{"".join(out)}"'


def _rs_value(value: JsonValue) -> str:
    """``serde_json::Value`` Debug notation."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return f"Bool({'true' if value else 'false'})"
    if isinstance(value, int):
        return f"Number({value})"
    if isinstance(value, float):
        return f"Number({_rs_float(value)})"
    if isinstance(value, str):
        return f"String({_rs_str(value)})"
    if isinstance(value, list):
        return f"Array [{', '.join(_rs_value(item) for item in value)}]"
    return f"Object {_rs_map(value)}"


def _rs_map(value: JsonValue) -> str:
    if type(value) is not dict or not value:
        return "{}"
    return "{" + ", ".join(f"{_rs_str(key)}: {_rs_value(value[key])}" for key in sorted(value)) + "}"


def _rs_opt(value: JsonValue, render: Callable[[JsonValue], str]) -> str:
    return "None" if value is None else f"Some({render(value)})"


def _rs_text(value: JsonValue) -> str:
    return _rs_str(value if isinstance(value, str) else "")


def _rest(obj: JsonObject, *known: str) -> JsonObject:
    return {key: value for key, value in obj.items() if key not in known}


def _debug_content(content: JsonValue) -> str:
    if isinstance(content, list):
        return f"Parts([{', '.join(_debug_part(_obj(part)) for part in content)}])"
    return f"Text({_rs_text(content)})"


def _debug_part(part: JsonObject) -> str:
    kind = part.get("type")
    extra = _rs_map(_rest(part, "type", *_PART_FIELDS.get(kind if isinstance(kind, str) else "", ())))
    if kind == "text":
        return f"Text {{ text: {_rs_text(part.get('text'))}, extra: {extra} }}"
    if kind == "image_url":
        image = part.get("image_url")
        image = image if type(image) is dict else {}
        detail = _rs_opt(image.get("detail"), _rs_text)
        return (
            f"ImageUrl {{ image_url: OpenAiImageUrl {{ url: {_rs_text(image.get('url'))}, detail: {detail} }}, "
            f"extra: {extra} }}"
        )
    if kind in ("image", "audio", "file"):
        return f"{kind.capitalize()} {{ {kind}: {_rs_value(part.get(kind))}, extra: {extra} }}"
    if kind == "refusal":
        return f"Refusal {{ refusal: {_rs_text(part.get('refusal'))}, extra: {extra} }}"
    if kind == "tool_use":
        return (
            f"ToolUse {{ id: {_rs_text(part.get('id'))}, name: {_rs_text(part.get('name'))}, "
            f"input: {_rs_value(part.get('input'))}, extra: {extra} }}"
        )
    if kind == "tool_result":
        is_error = _rs_opt(part.get("is_error"), lambda v: "true" if v else "false")
        return (
            f"ToolResult {{ tool_use_id: {_rs_text(part.get('tool_use_id'))}, content: "
            f"{_rs_value(part.get('content'))}, is_error: {is_error}, extra: {extra} }}"
        )
    return _debug_native(part)


_PART_FIELDS = {
    "text": ("text",),
    "image_url": ("image_url",),
    "image": ("image",),
    "audio": ("audio",),
    "file": ("file",),
    "refusal": ("refusal",),
    "tool_use": ("id", "name", "input"),
    "tool_result": ("tool_use_id", "content", "is_error"),
}


def _debug_native(component: JsonObject) -> str:
    return (
        f"ProviderNative {{ provider: {_rs_text(component.get('provider'))}, "
        f"kind: {_rs_text(component.get('kind'))}, value: {_rs_value(component.get('value'))} }}"
    )


def _debug_tool_call(call: JsonValue) -> str:
    call = call if type(call) is dict else {}
    function = call.get("function")
    function = function if type(function) is dict else {}
    return (
        f"ToolCall {{ id: {_rs_text(call.get('id'))}, call_type: {_rs_text(call.get('type') or 'function')}, "
        f"function: FunctionCall {{ name: {_rs_text(function.get('name'))}, "
        f"arguments: {_rs_text(function.get('arguments'))} }} }}"
    )


def _debug_message(message: JsonObject) -> str:
    role = message.get("role")
    name = _rs_opt(message.get("name"), _rs_text)
    if role in ("system", "user", "developer"):
        return f"{role.capitalize()} {{ content: {_debug_content(message.get('content'))}, name: {name} }}"
    if role == "assistant":
        content = _rs_opt(message.get("content"), _debug_content)
        calls = _rs_opt(
            message.get("tool_calls"),
            lambda calls: f"[{', '.join(_debug_tool_call(call) for call in _arr(calls))}]",
        )
        return f"Assistant {{ content: {content}, tool_calls: {calls}, name: {name} }}"
    if role == "tool":
        return (
            f"Tool {{ content: {_debug_content(message.get('content'))}, "
            f"tool_call_id: {_rs_text(message.get('tool_call_id'))} }}"
        )
    if role == "function":
        content = _rs_opt(message.get("content"), _rs_text)
        return f"Function {{ content: {content}, name: {_rs_text(message.get('name'))} }}"
    if role == "tool_call" or role == "tool_result":
        return _debug_item(message)
    return _debug_native(message)


def _debug_item(message: JsonObject) -> str:
    """``ToolCallItem`` / ``ToolResultItem`` (Responses-style items) in Debug notation."""
    head = f"id: {_rs_opt(message.get('id'), _rs_text)}, call_id: {_rs_text(message.get('call_id'))}"
    if message.get("role") == "tool_call":
        extra = _rs_map(_rest(message, "role", "id", "call_id", "name", "arguments"))
        body = f"name: {_rs_text(message.get('name'))}, arguments: {_rs_value(message.get('arguments'))}"
        return f"ToolCallItem {{ {head}, {body}, extra: {extra} }}"
    extra = _rs_map(_rest(message, "role", "id", "call_id", "output"))
    return f"ToolResultItem {{ {head}, output: {_rs_value(message.get('output'))}, extra: {extra} }}"


def _debug_tool_choice(choice: JsonValue) -> str:
    if isinstance(choice, str):
        return {"auto": "Auto", "none": "None", "required": "Required"}.get(choice, _rs_str(choice))
    if type(choice) is dict and "provider" in choice:
        return (
            f"ProviderNative(ProviderNativeComponent {{ provider: {_rs_text(choice.get('provider'))}, "
            f"kind: {_rs_text(choice.get('kind'))}, value: {_rs_value(choice.get('value'))} }})"
        )
    choice = choice if type(choice) is dict else {}
    function = choice.get("function")
    function = function if type(function) is dict else {}
    return (
        f"Specific(ToolChoiceFunction {{ choice_type: {_rs_text(choice.get('type') or 'function')}, "
        f"function: ToolChoiceFunctionName {{ name: {_rs_text(function.get('name'))} }} }})"
    )
