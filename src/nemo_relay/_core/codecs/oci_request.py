"""OCI Generative AI chat requests: dialects, envelope, request decoding and the patching encode.

See ``oci`` for the mapping; ``oci_response`` decodes responses and streamed events.
"""

from __future__ import annotations

from nemo_relay._core.codecs.common import (
    ANNOTATION_FIELDS,
    FieldReader,
    as_list,
    as_object,
    check_api,
    compact_json,
    patch_extra,
    provider_native,
    set_or_drop,
    strict_json_equal,
)
from nemo_relay._core.codecs.rustfmt import RustText, debug_str, float_debug
from nemo_relay._core.errors import InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.annotated import AnnotatedLLMRequest
    from nemo_relay._core.types import JsonObject, JsonValue

PROVIDER = "oci_genai"
LABEL = "OCI GenAI"
GENERIC = "GENERIC"
COHERE = "COHERE"
COHEREV2 = "COHEREV2"


def _float_text(value: float) -> str:
    return float_debug(value, decimal_at_minus_5=True)


# Error texts: Rust Debug string escapes; a blank tool-call type shows as the default, ``function``.
_TEXT = RustText(debug_str, _float_text, fill_blank_call_type=True)

# chatRequest keys each dialect reads; every other key is an unknown vendor field kept in ``extra``.
_REQUEST_KEYS = {
    GENERIC: frozenset(("apiFormat", "messages", "maxTokens", "temperature", "topP", "stop", "tools", "toolChoice")),
    COHERE: frozenset(
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
    COHEREV2: frozenset(
        ("apiFormat", "messages", "maxTokens", "temperature", "topP", "stopSequences", "tools", "toolChoice")
    ),
}
# The annotation fields OCI can carry; the others (instructions, store, ...) must stay unset.
_OCI_FIELDS = frozenset(("messages", "model", "params", "tools", "tool_choice", "api_specific"))
_FOREIGN_FIELDS = ANNOTATION_FIELDS - _OCI_FIELDS

# Normalised parameter name -> wire name (the stop key depends on the dialect); numbers are floats on the wire.
_PARAMS = (("temperature", "temperature"), ("max_tokens", "maxTokens"), ("top_p", "topP"), ("stop", None))
_FLOAT_PARAMS = frozenset(("temperature", "top_p"))

_CHAT_ROLES = {"SYSTEM": "system", "USER": "user", "ASSISTANT": "assistant", "TOOL": "tool"}
_COHERE_ROLES = {"SYSTEM": "system", "USER": "user", "CHATBOT": "assistant"}
_COHERE_WIRE_ROLES = {"system": "SYSTEM", "user": "USER", "assistant": "CHATBOT"}

_NOT_ENCODABLE = f"request contains fields that cannot be encoded for {LABEL}"
_MULTIMODAL = f"multimodal content cannot be encoded for the {LABEL} COHERE format"


def decode_request(content: JsonObject) -> tuple[JsonObject, JsonObject]:
    """``(named annotation fields, unknown chatRequest keys)`` of an OCI chat request."""
    body, envelope = _split_request(content)
    api_format = read_api_format(body)
    dialect = dialect_of(api_format)
    messages = _decode_cohere_messages(body) if dialect == COHERE else _decode_chat_messages(body)
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
    api_specific: JsonObject = {"api": PROVIDER, "api_format": api_format}
    if envelope is not None:
        model = _decode_envelope(envelope, api_specific)
        if model is not None:
            known["model"] = model
    known["api_specific"] = api_specific
    extra = {key: copy_json(value) for key, value in body.items() if key not in _REQUEST_KEYS[dialect]}
    return known, extra


# --- request envelope and dialect --------------------------------------------------------------------------


def _split_request(content: JsonObject) -> tuple[JsonObject, JsonObject | None]:
    """``(chatRequest body, envelope or None)``: without an object ``chatRequest`` the content is the body."""
    body = content.get("chatRequest")
    if type(body) is dict:
        return body, content
    return content, None


def read_api_format(body: JsonObject) -> str:
    value = body.get("apiFormat")
    return value.upper() if isinstance(value, str) else GENERIC


def dialect_of(api_format: str) -> str:
    # Unknown formats are read as GENERIC (the reference keeps the raw label in api_specific).
    return api_format if api_format in (COHERE, COHEREV2) else GENERIC


def _stop_key(dialect: str) -> str:
    return "stop" if dialect == GENERIC else "stopSequences"


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
        raise InvalidArgumentError(f"{LABEL} GENERIC messages must be an array")
    out: list[JsonValue] = []
    for message in raw:
        if type(message) is not dict:
            raise InvalidArgumentError(f"{LABEL} GENERIC message must be an object")
        out.append(_decode_chat_message(message))
    return out


def _decode_chat_message(message: JsonObject) -> JsonObject:
    raw_role = message.get("role")
    role = raw_role.upper() if isinstance(raw_role, str) else "USER"
    content = decode_content(message.get("content"))
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


def decode_content(content: JsonValue) -> JsonValue:
    """``None`` (absent/null), a string, ``[]`` (no parts), or normalised parts.

    Content made only of TEXT parts reads as one string (a null or missing ``text`` counts as empty, part
    extras are not kept); mixed content keeps one normalised part per OCI part.
    """
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidArgumentError(f"{LABEL} GENERIC message content must be a string, an array, or null")
    texts: list[str] | None = []
    for part in content:
        if type(part) is not dict:
            raise InvalidArgumentError(f"{LABEL} GENERIC content part must be an object")
        text = part.get("text")
        if texts is not None and part.get("type") == "TEXT" and (text is None or isinstance(text, str)):
            texts.append(text or "")
        else:
            texts = None
    if content and texts is not None:
        return "".join(texts)
    return [_decode_part(as_object(part)) for part in content]


def _decode_part(part: JsonObject) -> JsonObject:
    if part.get("type") == "TEXT" and isinstance(part.get("text", ""), str):
        out: JsonObject = {"type": "text", "text": part.get("text", "")}
        for key, value in part.items():
            if key != "type" and key != "text":
                out[key] = copy_json(value)
        return out
    kind = part.get("type")
    return provider_native(PROVIDER, kind, copy_json(part), "type")


def _decode_request_tool_calls(raw: JsonValue) -> list[JsonValue] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{LABEL} GENERIC toolCalls must be an array")
    out: list[JsonValue] = []
    for call in raw:
        if type(call) is not dict:
            raise InvalidArgumentError(f"{LABEL} toolCalls entry must be an object")
        source = call_source(call)
        call_id = call.get("id")
        name = source.get("name")
        function: JsonObject = {"name": name if isinstance(name, str) else "", "arguments": _arguments_text(source)}
        out.append({"id": call_id if isinstance(call_id, str) else "", "type": "function", "function": function})
    return out


def _arguments_text(source: JsonObject) -> str:
    if "arguments" not in source:
        return ""
    value = source["arguments"]
    return value if isinstance(value, str) else compact_json(value)


def _decode_cohere_messages(body: JsonObject) -> list[JsonValue]:
    """COHERE ``preambleOverride`` + ``chatHistory`` + ``message`` as one message list."""
    history = body.get("chatHistory", [])
    if not isinstance(history, list):
        raise InvalidArgumentError(f"{LABEL} COHERE chatHistory must be an array")
    out: list[JsonValue] = []
    preamble = body.get("preambleOverride")
    if isinstance(preamble, str) and preamble:
        out.append({"role": "system", "content": preamble})
    for turn in history:
        if type(turn) is not dict:
            raise InvalidArgumentError(f"{LABEL} COHERE chatHistory turn must be an object")
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
    return provider_native(PROVIDER, kind, copy_json(value), "role")


def _native_component(value: JsonValue) -> JsonObject:
    """Tool choices travel verbatim; ``kind`` is their ``type`` when they have one."""
    return provider_native(PROVIDER, value.get("type") if type(value) is dict else None, copy_json(value))


# --- request decoding: parameters and tools --------------------------------------------------------------------


def _decode_params(body: JsonObject, stop_key: str) -> JsonObject:
    params: JsonObject = {}
    fields = FieldReader(body, LABEL)
    temperature = fields.number("temperature")
    max_tokens = fields.uint("maxTokens")
    top_p = fields.number("topP")
    stop = body.get(stop_key)
    if stop is not None:
        _check_string_array(stop, stop_key)
    for key, value in (("temperature", temperature), ("max_tokens", max_tokens), ("top_p", top_p)):
        if value is not None:
            params[key] = value
    if stop is not None:
        params["stop"] = copy_json(stop)
    return params


def _check_string_array(value: JsonValue, key: str) -> None:
    """Raise with the reference's serde wording unless ``value`` is a list of strings."""
    prefix = f"{LABEL} {key} must be a string array: invalid type: "
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{prefix}{_TEXT.unexpected(value)}, expected a sequence")
    for item in value:
        if not isinstance(item, str):
            raise InvalidArgumentError(f"{prefix}{_TEXT.unexpected(item)}, expected a string")


def _decode_tools(raw: JsonValue) -> list[JsonValue] | None:
    """Every OCI tool definition travels verbatim as a provider-native tool (``kind`` = its ``type``)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{LABEL} tools must be an array")
    out: list[JsonValue] = []
    for tool in raw:
        component = _native_component(tool)
        component["type"] = "provider_native"
        out.append(component)
    return out


# --- request encoding -----------------------------------------------------------------------------------------


def annotation_parts(annotated: AnnotatedLLMRequest) -> tuple[JsonObject, JsonObject]:
    """``(fields, extra)`` of an annotation; the flat JSON form lets ``extra`` shadow same-named fields."""
    flat = annotated._to_json()
    extra = annotated.extra
    fields = {key: value for key, value in flat.items() if key not in extra}
    for key in extra.keys() & ANNOTATION_FIELDS:
        value = getattr(annotated, key)
        if value is not None:
            fields[key] = value
    return fields, extra


def split_flat(flat: JsonObject, baseline: JsonObject) -> tuple[JsonObject, JsonObject]:
    fields: JsonObject = {}
    extra: JsonObject = {}
    for key, value in flat.items():
        if key in _OCI_FIELDS or (key in ANNOTATION_FIELDS and key not in baseline):
            fields[key] = value
        else:
            extra[key] = value
    return fields, extra


def encode_request(
    fields: JsonObject, extra: JsonObject, before_fields: JsonObject, before_extra: JsonObject, content: JsonObject
) -> JsonObject:
    """``content`` (a private copy) patched where the annotation differs from the fresh decode of it."""
    body, envelope = _split_request(content)
    dialect = dialect_of(read_api_format(body))
    _check_representable(fields, before_fields)
    messages, before = fields.get("messages"), before_fields.get("messages")
    if not strict_json_equal(messages, before):
        if dialect == COHERE:
            _encode_cohere_messages(body, as_list(messages))
        else:
            _encode_chat_messages(body, as_list(messages), as_list(before), dialect)
    _patch_params(body, fields.get("params"), before_fields.get("params"), _stop_key(dialect))
    _patch_tools(body, fields.get("tools"), before_fields.get("tools"))
    _patch_tool_choice(body, fields.get("tool_choice"), before_fields.get("tool_choice"))
    _patch_api_specific(envelope, fields.get("api_specific"), before_fields.get("api_specific"))
    patch_extra(body, extra, before_extra, strict_json_equal)
    return content


def _check_representable(fields: JsonObject, before: JsonObject) -> None:
    """OCI has no place for instructions, store, ... and the model lives in ``servingMode``: none may change."""
    for key in _FOREIGN_FIELDS:
        if not strict_json_equal(fields.get(key), before.get(key)):
            raise InvalidArgumentError(_NOT_ENCODABLE)
    if not strict_json_equal(fields.get("model"), before.get("model")):
        raise InvalidArgumentError(_NOT_ENCODABLE)


def _encode_chat_messages(body: JsonObject, messages: list[JsonValue], baseline: list[JsonValue], dialect: str) -> None:
    """GENERIC/COHEREV2: keep each original message whose annotation is unchanged at that index."""
    originals = body.get("messages")
    if not isinstance(originals, list):
        originals = []
    kept = min(len(baseline), len(originals))
    out: list[JsonValue] = []
    for index, message in enumerate(messages):
        if index < kept and strict_json_equal(message, baseline[index]):
            out.append(originals[index])
        else:
            out.append(_encode_chat_message(as_object(message), dialect))
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
            out["toolCalls"] = [_encode_tool_call(as_object(call), dialect) for call in as_list(tool_calls)]
        return out
    if role == "tool":
        return {
            "role": "TOOL",
            "toolCallId": message.get("tool_call_id"),
            "content": _encode_parts(message.get("content")),
        }
    if role == "provider_native" and message.get("provider") == PROVIDER:
        return copy_json(message.get("value"))
    raise InvalidArgumentError(f"message {_TEXT.message(message)} cannot be encoded for {LABEL}")


def _encode_parts(content: JsonValue) -> list[JsonValue]:
    if isinstance(content, str):
        return [{"type": "TEXT", "text": content}]
    return [_encode_part(as_object(part)) for part in as_list(content)]


def _encode_part(part: JsonObject) -> JsonValue:
    kind = part.get("type")
    if kind == "text":
        out: JsonObject = {"type": "TEXT", "text": part.get("text")}
        for key, value in part.items():
            if key != "type" and key != "text":
                out[key] = copy_json(value)
        return out
    if kind == "provider_native" and part.get("provider") == PROVIDER:
        return copy_json(part.get("value"))
    raise InvalidArgumentError(f"content part {_TEXT.part(part)} cannot be encoded for {LABEL}")


def _encode_tool_call(call: JsonObject, dialect: str) -> JsonObject:
    function = call.get("function")
    if type(function) is not dict:
        function = {}
    name, arguments = function.get("name"), function.get("arguments")
    call_id = call.get("id")
    out: JsonObject = {"id": call_id} if call_id else {}  # an empty id is left out, as in the reference
    out["type"] = "FUNCTION"
    if dialect == COHEREV2:
        out["function"] = {"name": name, "arguments": arguments}
    else:
        out["name"] = name
        out["arguments"] = arguments
    return out


def _encode_cohere_messages(body: JsonObject, messages: list[JsonValue]) -> None:
    """COHERE: rebuild ``preambleOverride``, ``chatHistory`` and ``message`` from the whole list."""
    last = messages[-1] if messages else None
    if type(last) is not dict or last.get("role") != "user":
        raise InvalidArgumentError(f"{LABEL} COHERE requests require the last message to be a user message")
    text = _cohere_text(last)
    rest = [as_object(message) for message in messages[:-1]]
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
        raise InvalidArgumentError(f"{LABEL} COHERE tool results cannot be rebuilt from a normalized tool message")
    if role == "provider_native" and message.get("provider") == PROVIDER:
        return copy_json(message.get("value"))
    raise InvalidArgumentError(
        f"message {_TEXT.message(message)} cannot be encoded as an {LABEL} COHERE chatHistory turn"
    )


def _patch_params(body: JsonObject, params: JsonValue, baseline: JsonValue, stop_key: str) -> None:
    new = params if type(params) is dict else {}
    old = baseline if type(baseline) is dict else {}
    for name, wire in _PARAMS:
        value, before = new.get(name), old.get(name)
        if strict_json_equal(value, before):
            continue
        key = wire or stop_key
        if value is None:
            body.pop(key, None)
        elif name in _FLOAT_PARAMS and isinstance(value, (int, float)):
            body[key] = float(value)
        else:
            body[key] = copy_json(value)


def _patch_tools(body: JsonObject, tools: JsonValue, baseline: JsonValue) -> None:
    if strict_json_equal(tools, baseline):
        return
    if tools is None:
        body.pop("tools", None)
    else:
        body["tools"] = [_encode_tool(as_object(tool)) for tool in as_list(tools)]


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
    if tool.get("type") == "provider_native" and tool.get("provider") == PROVIDER:
        return copy_json(tool.get("value"))
    raise InvalidArgumentError(f"tool {_TEXT.native(tool)} cannot be encoded for {LABEL}")


def _patch_tool_choice(body: JsonObject, choice: JsonValue, baseline: JsonValue) -> None:
    if strict_json_equal(choice, baseline):
        return
    if choice is None:
        body.pop("toolChoice", None)
    elif type(choice) is dict and choice.get("provider") == PROVIDER:
        body["toolChoice"] = copy_json(choice.get("value"))
    else:
        raise InvalidArgumentError(f"tool choice {_TEXT.tool_choice(choice)} cannot be encoded for {LABEL}")


def _patch_api_specific(envelope: JsonObject | None, api_specific: JsonValue, baseline: JsonValue) -> None:
    """Edits to compartment and serving mode go to the envelope; the format and the provider are fixed."""
    api_specific = check_api(api_specific, PROVIDER, LABEL)
    if not api_specific:
        return  # clearing api_specific is not an edit
    old = as_object(baseline)
    if api_specific.get("api_format") != old.get("api_format"):
        raise InvalidArgumentError(f"the {LABEL} api_format cannot be edited")
    changes = [
        (wire, api_specific.get(name))
        for name, wire in (("compartment_id", "compartmentId"), ("serving_mode", "servingMode"))
        if not strict_json_equal(api_specific.get(name), old.get(name))
    ]
    if not changes:
        return
    if envelope is None:
        raise InvalidArgumentError("compartmentId and servingMode edits require a ChatDetails envelope")
    for wire, value in changes:
        set_or_drop(envelope, wire, copy_json(value))


def call_source(call: JsonObject) -> JsonObject:
    """Where a call keeps ``name``/``arguments``: COHEREV2 nests them under a ``function`` object, GENERIC not."""
    function = call.get("function")
    return function if isinstance(function, dict) else call
