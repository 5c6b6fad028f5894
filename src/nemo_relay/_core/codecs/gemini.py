"""The built-in Gemini ``generateContent`` codec (Google AI / Vertex AI, camelCase REST bodies).

Request side: ``systemInstruction`` becomes a leading ``system`` message, ``contents`` become
``user``/``assistant`` messages (``functionCall`` parts become ``tool_calls``, each ``functionResponse`` a
``tool`` message whose content is the compact JSON ``response``), ``generationConfig`` feeds ``params``, and
``functionDeclarations`` become function tools. Whatever has no annotation slot (inline data, code execution,
search tools, ...) travels as a ``provider_native`` component tagged ``gemini``; thought parts are hidden.

Encoding patches the original body. Edited messages are lined up with the original ``contents`` items
(common prefix and suffix, then one to one when the edited stretch keeps its length) and laid over them,
so provider-only data on an edited item survives: thought parts, ``thoughtSignature`` on text and
``functionCall`` parts, native parts under a plain-text edit, and the ``name`` of ``functionResponse``
parts. Unmatched messages become fresh items. These rules, quirks included, follow the reference.

Response side: the first candidate gives ``message``/``tool_calls``/``finish_reason``; ``usageMetadata`` gives
``usage`` (``promptTokenCount`` already includes cached tokens; ``cachedContentTokenCount`` is the cache read).
"""

from __future__ import annotations

import json

from nemo_relay._core.codecs.anthropic import (
    as_float,
    as_object,
    compact_json,
    copy_object,
    edited_foreign_fields,
    is_number,
    native,
    objects,
    patch_extra,
    patch_key,
    reject_non_object_response,
    same_json,
    serde_error,
    token_count,
)
from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.errors import InternalError, InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.annotated import AnnotatedLLMResponse
    from nemo_relay._core.types import JsonObject, JsonValue

__all__ = ["GeminiGenerateContentCodec", "GeminiStreamAggregator"]

API = "gemini_generate_content"
PROVIDER = "gemini"  # the provider tag of Gemini provider-native components
_LABEL = "Gemini generateContent"

# Annotation fields the generateContent surface has no place for (checked in this order).
_FOREIGN_FIELDS = (
    "instructions",
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
_KNOWN_BODY_KEYS = frozenset(("contents", "model", "systemInstruction", "generationConfig", "tools"))
_NATIVE_PART_KINDS = ("inlineData", "fileData", "executableCode", "codeExecutionResult")
# params key -> generationConfig key
_PARAM_KEYS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("max_tokens", "maxOutputTokens"),
    ("stop", "stopSequences"),
)
_FILTERED = frozenset(
    (
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    )
)
_BLOCKED = frozenset(("SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"))


class GeminiGenerateContentCodec(BuiltinCodec):
    """Request and response codec for the Gemini ``generateContent`` API."""

    __slots__ = ()

    _relay_builtin_id = "gemini_generate_content"
    provider = PROVIDER

    def decode_json(self, content: JsonObject, headers: JsonObject) -> JsonObject:
        """The annotation JSON for a generateContent request body (``headers`` are not consulted)."""
        return decode_request(content)

    def encode_json(self, annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonValue:
        """``content`` patched wherever ``annotation`` differs from ``baseline``."""
        return encode_request(annotation, baseline, content)

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode a generateContent response body into an ``AnnotatedLLMResponse``."""
        reject_non_object_response(response, "Gemini response decode", "struct RawGeminiGenerateContentResponse")
        return super().decode_response(response)

    def decode_response_json(self, response: JsonObject) -> JsonObject:
        """The annotated-response JSON for a generateContent response body."""
        return decode_response(response)

    def stream_aggregator(self) -> GeminiStreamAggregator:
        """A fresh aggregator folding streamGenerateContent chunks into one response body."""
        return GeminiStreamAggregator()


def _invalid(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Gemini {detail}")


def _encoder_error(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Gemini encoder: {detail}")


def _is_thought(part: JsonObject) -> bool:
    return part.get("thought") is True


def _part_kind(part: JsonObject, with_text: bool = False) -> str:
    """The provider-native kind of a non-text part (the first known payload key)."""
    if with_text and "text" in part:
        return "text"
    for key in _NATIVE_PART_KINDS:
        if key in part:
            return key
    return "unknown"


# ======================================================================================================
# Request decoding
# ======================================================================================================


def decode_request(content: JsonObject) -> JsonObject:
    """The annotation JSON for a generateContent request body."""
    if "contents" not in content:
        raise _invalid("request is missing contents")
    contents = content["contents"]
    if type(contents) is not list:
        raise _invalid("request contents must be an array")
    messages: list[JsonValue] = []
    system = _decode_system(content)
    if system is not None:
        messages.append({"role": "system", "content": system})
    for item in contents:
        messages.extend(_decode_item(item))
    out: JsonObject = {"messages": messages}
    if "model" in content:
        if type(content["model"]) is not str:
            raise _invalid("request 'model' must be a string")
        out["model"] = content["model"]
    if "generationConfig" in content:
        params = _decode_generation_config(content["generationConfig"])
        if params:
            out["params"] = params
    if "tools" in content:
        tools = _decode_tools(content["tools"])
        if tools:
            out["tools"] = tools
    for key, value in content.items():
        if key not in _KNOWN_BODY_KEYS and key not in out:
            out[key] = copy_json(value)
    return out


def _decode_system(content: JsonObject) -> str | None:
    if "systemInstruction" not in content:
        return None
    texts = _system_texts(content["systemInstruction"])
    return "\n".join(texts) if texts else None


def _system_texts(instruction: JsonValue) -> list[str]:
    if type(instruction) is not dict:
        raise _invalid("systemInstruction must be an object")
    if "role" in instruction and type(instruction["role"]) is not str:
        raise _invalid("systemInstruction.role must be a string")
    if "parts" not in instruction:
        raise _invalid("systemInstruction must have a 'parts' field")
    parts = instruction["parts"]
    if type(parts) is not list:
        raise _invalid("systemInstruction.parts must be an array")
    texts: list[str] = []
    for part in parts:
        if type(part) is not dict:
            raise _invalid("systemInstruction.parts entry must be an object")
        if "text" not in part:
            raise _invalid("systemInstruction.parts entries must be text parts")
        if type(part["text"]) is not str:
            raise _invalid("systemInstruction.parts[].text must be a string")
        texts.append(part["text"])
    return texts


def _decode_generation_config(config: JsonValue) -> JsonObject:
    if type(config) is not dict:
        raise _invalid("generationConfig must be an object")
    params: JsonObject = {}
    if "maxOutputTokens" in config:
        value = config["maxOutputTokens"]
        if type(value) is not int or value < 0:
            raise _invalid("maxOutputTokens must be a non-negative integer")
        params["max_tokens"] = value
    for key, body_key in (("temperature", "temperature"), ("top_p", "topP")):
        if body_key in config:
            if not is_number(config[body_key]):
                raise _invalid(f"{body_key} must be a number")
            params[key] = as_float(config[body_key])
    if "stopSequences" in config:
        stops = config["stopSequences"]
        if type(stops) is not list or any(type(s) is not str for s in stops):
            raise _invalid("stopSequences must be an array of strings")
        params["stop"] = list(stops)
    return params


def _decode_tools(tools: JsonValue) -> list[JsonValue]:
    if type(tools) is not list:
        raise _invalid("tools must be an array")
    out: list[JsonValue] = []
    for entry in tools:
        if type(entry) is not dict:
            raise _invalid("tools[] entry must be an object")
        if "functionDeclarations" in entry:
            out.extend(_decode_declarations(entry["functionDeclarations"]))
        rest = {k: copy_json(v) for k, v in entry.items() if k != "functionDeclarations"}
        if rest or "functionDeclarations" not in entry:
            out.append(native(PROVIDER, min(rest) if rest else "unknown", rest))
    return out


def _decode_declarations(declarations: JsonValue) -> list[JsonValue]:
    if type(declarations) is not list:
        raise _invalid("functionDeclarations must be an array")
    out: list[JsonValue] = []
    for declaration in declarations:
        if type(declaration) is not dict:
            raise _invalid("functionDeclaration entry must be an object")
        name = declaration.get("name")
        if type(name) is not str or not name:
            raise _invalid("functionDeclaration must have a non-empty 'name'")
        if "description" in declaration and type(declaration["description"]) is not str:
            raise _invalid("functionDeclaration.description must be a string")
        out.append({"type": "function", "function": copy_json(declaration)})
    return out


def _item_role(item: JsonObject) -> str:
    if "role" not in item:
        return "user"
    role = item["role"]
    if type(role) is not str:
        raise _invalid("contents item 'role' must be a string")
    if role not in ("user", "model"):
        raise _invalid(f"contents item has unsupported role '{role}'; expected 'user' or 'model'")
    return role


def _item_parts(item: JsonValue) -> tuple[str, list[JsonObject]]:
    if type(item) is not dict:
        raise _invalid("contents item must be an object")
    role = _item_role(item)
    parts = item.get("parts")
    if type(parts) is not list:
        raise _invalid("contents item must have an array 'parts' field")
    for part in parts:
        if type(part) is not dict:
            raise _invalid("parts item must be an object")
    return role, objects(parts)


def _decode_item(item: JsonValue) -> list[JsonValue]:
    """The messages one ``contents`` item decodes to (several for a batch of function responses)."""
    role, parts = _item_parts(item)
    if any("functionResponse" in p for p in parts) and any("functionCall" in p for p in parts):
        raise _invalid("contents item must not contain both functionResponse and functionCall parts")
    visible: list[JsonValue] = []
    calls: list[JsonValue] = []
    responses: list[JsonValue] = []
    for part in parts:
        if "functionCall" in part:
            if role != "model":
                raise _invalid(f"functionCall parts must be in a 'model' role content item, got '{role}'")
            calls.append(_decode_call(part["functionCall"]))
        elif "functionResponse" in part:
            if role != "user":
                raise _invalid(f"functionResponse parts must be in a 'user' role content item, got '{role}'")
            responses.append(_decode_function_response(part["functionResponse"]))
        elif "text" in part:
            if type(part["text"]) is not str:
                raise _invalid("parts item 'text' must be a string")
            if not _is_thought(part):
                visible.append(_text_part(part))
        else:
            visible.append(native(PROVIDER, _part_kind(part), copy_json(part)))
    _check_unique(calls, "functionCall")
    _check_unique(responses, "functionResponse")
    if responses:
        if visible:
            raise _invalid("contents item must not mix functionResponse with visible/native parts")
        return responses
    message: JsonObject = {"role": "user" if role == "user" else "assistant"}
    if visible or not calls:
        message["content"] = _visible_content(visible)
    if calls:
        message["tool_calls"] = calls
    return [message]


def _check_unique(messages: list[JsonValue], kind: str) -> None:
    """Calls and responses of one item correlate by id (the name when there is none): ids must differ."""
    seen: set[str] = set()
    for entry in messages:
        fields = as_object(entry)
        call_id = str(fields.get("id", fields.get("tool_call_id")))
        if call_id in seen:
            raise _invalid(
                f"{kind} parts have duplicate effective id '{call_id}'; "
                "distinct ids are required to correlate function responses"
            )
        seen.add(call_id)


def _text_part(part: JsonObject) -> JsonObject:
    return {"type": "text", **{k: copy_json(v) for k, v in part.items()}}


def _visible_content(visible: list[JsonValue]) -> JsonValue:
    # Plain text parts collapse to one string; any extra key or native part keeps the list form.
    if all(type(p) is dict and p.keys() == {"type", "text"} for p in visible):
        return "\n".join(str(as_object(p).get("text")) for p in visible)
    return visible


def _decode_call(call: JsonValue) -> JsonObject:
    if type(call) is not dict:
        raise _invalid("functionCall must be an object")
    name = call.get("name")
    if type(name) is not str or not name:
        raise _invalid("functionCall is missing a non-empty 'name'")
    if "args" in call and type(call["args"]) is not dict:
        raise _invalid("functionCall.args must be an object")
    if "id" in call and type(call["id"]) is not str:
        raise InvalidArgumentError(f"{_LABEL} functionCall.id must be a string")
    args = call.get("args", {})
    return {
        "id": call.get("id", name),
        "type": "function",
        "function": {"name": name, "arguments": compact_json(args)},
    }


def _decode_function_response(response: JsonValue) -> JsonObject:
    if type(response) is not dict:
        raise _invalid("functionResponse must be an object")
    name = response.get("name")
    if type(name) is not str or not name:
        raise _invalid("functionResponse is missing a non-empty 'name'")
    if "response" not in response:
        raise _invalid("functionResponse is missing required 'response'")
    if type(response["response"]) is not dict:
        raise _invalid("functionResponse.response must be an object")
    if "id" in response and type(response["id"]) is not str:
        raise InvalidArgumentError(f"{_LABEL} functionResponse.id must be a string")
    text = compact_json(response["response"])
    message: JsonObject = {"role": "tool", "tool_call_id": response.get("id", name)}
    if "parts" not in response:
        message["content"] = text
        return message
    message["content"] = [{"type": "text", "text": text}, *_decode_response_parts(response["parts"])]
    return message


def _decode_response_parts(parts: JsonValue) -> list[JsonValue]:
    if type(parts) is not list:
        raise _invalid("functionResponse.parts must be an array")
    out: list[JsonValue] = []
    for part in parts:
        if type(part) is not dict:
            raise _invalid("functionResponse.parts entry must be an object")
        if "functionCall" in part or "functionResponse" in part:
            raise _invalid("functionResponse.parts must not contain nested functionCall/functionResponse")
        if "text" in part and type(part["text"]) is not str:
            raise _invalid("functionResponse.parts[].text must be a string")
        out.append(native(PROVIDER, _part_kind(part, with_text=True), copy_json(part)))
    return out


def _message_origins(contents: list[JsonValue]) -> list[int]:
    """For each non-system message of the decode, the index of the ``contents`` item it came from."""
    origins: list[int] = []
    for index, item in enumerate(contents):
        _, parts = _item_parts(item)
        responses = sum(1 for p in parts if "functionResponse" in p)
        origins.extend([index] * (responses or 1))
    return origins


# ======================================================================================================
# Request encoding
# ======================================================================================================


def encode_request(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonObject:
    """``content`` patched wherever ``annotation`` differs from ``baseline`` (the decode of ``content``)."""
    foreign = edited_foreign_fields(annotation, baseline, _FOREIGN_FIELDS)
    for name in foreign:
        if name not in baseline:
            raise _encoder_error(
                f"field '{name}' is not representable in the Gemini generateContent API; "
                "use a provider-native extra field instead"
            )
    if not same_json(annotation.get("model"), baseline.get("model")):
        patch_key(content, "model", annotation.get("model"))
    _patch_generation_config(annotation.get("params"), baseline.get("params"), content)
    if not same_json(annotation.get("tools"), baseline.get("tools")):
        _patch_tools(annotation, baseline, content)
    if not same_json(annotation.get("messages"), baseline.get("messages")):
        _patch_messages(annotation, baseline, content)
    for name in foreign:
        patch_key(content, name, copy_json(annotation.get(name)))
    patch_extra(annotation, baseline, content)
    return content


def _patch_generation_config(new: JsonValue, old: JsonValue, content: JsonObject) -> None:
    new_params: JsonObject = new if type(new) is dict else {}
    old_params: JsonObject = old if type(old) is dict else {}
    changed = [(k, b) for k, b in _PARAM_KEYS if not same_json(new_params.get(k), old_params.get(k))]
    if not changed:
        return
    raw = content.get("generationConfig")
    config: JsonObject = raw if type(raw) is dict else {}
    for key, body_key in changed:
        value = new_params.get(key)
        if key in ("temperature", "top_p"):
            value = as_float(value)
        elif type(value) is str and key == "stop":
            value = [value]
        patch_key(config, body_key, copy_json(value))
    if config:
        content["generationConfig"] = config
    else:
        content.pop("generationConfig", None)


# --- tools ----------------------------------------------------------------------------------------------------


def _patch_tools(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    raw = content.get("tools")
    entries: list[JsonValue] = raw if type(raw) is list else []
    groups = sum(1 for e in entries if type(e) is dict and "functionDeclarations" in e)
    if groups > 1:
        raise _encoder_error(
            f"the original request has {groups} functionDeclarations groups; editing tools with multiple groups is "
            "not supported because the decode path flattens them and grouping cannot be recovered. Use "
            "provider-native extra fields to manage multi-group tools."
        )
    new = objects(annotation.get("tools"))
    functions = [t for t in new if t.get("type") != "provider_native"]
    natives = [_encode_native_tool(t) for t in new if t.get("type") == "provider_native"]
    declarations: list[JsonValue] = [_encode_declaration(t) for t in functions]
    old = objects(baseline.get("tools"))
    same_functions = same_json(functions, [t for t in old if t.get("type") != "provider_native"])
    out: list[JsonValue] = []
    placed = False
    for entry in entries:
        if type(entry) is not dict:
            continue
        kept = _rebuild_entry(entry, natives)
        if "functionDeclarations" in entry:
            placed = True
            if declarations:
                kept["functionDeclarations"] = entry["functionDeclarations"] if same_functions else declarations
        if kept:
            out.append(kept)
    if declarations and not placed:
        out.append({"functionDeclarations": declarations})
    out.extend(natives)
    if out:
        content["tools"] = out
    else:
        content.pop("tools", None)


def _rebuild_entry(entry: JsonObject, natives: list[JsonObject]) -> JsonObject:
    """The original entry minus its declarations, keeping its non-function part only if still requested."""
    rest = {k: v for k, v in entry.items() if k != "functionDeclarations"}
    kept: JsonObject = {}
    if rest:
        for index, value in enumerate(natives):
            if same_json(value, rest):
                del natives[index]
                kept = copy_object(rest)
                break
    return kept


def _encode_declaration(tool: JsonObject) -> JsonObject:
    function = as_object(tool.get("function"))
    if function.get("strict") is not None:
        raise _encoder_error(
            "FunctionDefinition.strict is not supported; remove it or use a provider-native extra field"
        )
    if not function.get("name"):
        raise _encoder_error("FunctionDefinition.name must be non-empty")
    return {k: copy_json(v) for k, v in function.items() if k != "strict"}


def _encode_native_tool(tool: JsonObject) -> JsonObject:
    if tool.get("provider") != PROVIDER:
        raise _encoder_error(
            f"ProviderNative tool '{tool.get('kind')}' (provider '{tool.get('provider')}') "
            "cannot be represented on the Gemini surface"
        )
    value = tool.get("value")
    if type(value) is not dict:
        raise _encoder_error("ProviderNative tool value must be an object")
    if "functionDeclarations" in value:
        raise _encoder_error(
            "ProviderNative tool value must not contain functionDeclarations; use ToolDefinition::Function instead"
        )
    return copy_object(value)


# --- messages -------------------------------------------------------------------------------------------------


def _split_system(messages: list[JsonObject]) -> tuple[list[JsonObject], list[JsonObject]]:
    system = [m for m in messages if m.get("role") == "system"]
    return system, [m for m in messages if m.get("role") != "system"]


def _patch_messages(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    new_system, new_rest = _split_system(objects(annotation.get("messages")))
    old_system, old_rest = _split_system(objects(baseline.get("messages")))
    if not same_json(new_system, old_system):
        _patch_system(new_system, content)
    if not same_json(new_rest, old_rest):
        raw = content.get("contents")
        content["contents"] = _encode_contents(new_rest, old_rest, raw if type(raw) is list else [])


def _patch_system(messages: list[JsonObject], content: JsonObject) -> None:
    text = "\n".join(_system_text(m) for m in messages)
    if not text:
        # No system text at all (no system message, or only empty ones): no instruction.
        content.pop("systemInstruction", None)
        return
    raw = content.get("systemInstruction")
    if type(raw) is not dict:
        content["systemInstruction"] = {"parts": [{"text": text}]}
        return
    parts = raw.get("parts")
    part_list: list[JsonValue] = parts if type(parts) is list else []
    if len(part_list) > 1 or any(type(p) is not dict or "text" not in p for p in part_list):
        raise InvalidArgumentError(
            "Gemini systemInstruction with multiple text parts or non-text parts cannot be edited via the "
            "normalized layer; edit the raw provider payload directly"
        )
    first = copy_object(as_object(part_list[0])) if part_list else {}
    first["text"] = text
    raw["parts"] = [first]


def _system_text(message: JsonObject) -> str:
    if message.get("name") is not None:
        raise _encoder_error("Message::System.name is not representable")
    body = message.get("content")
    if type(body) is not list:
        return "" if body is None else str(body)
    texts = []
    for part in objects(body):
        if part.get("type") != "text":
            raise _encoder_error(
                f"normalized content part type '{part.get('type')}' cannot be encoded into a Gemini text part; "
                "use a provider-native extra field for non-text content"
            )
        texts.append(str(part.get("text")))
    return "\n".join(texts)


def _diff_slots(new: list[JsonObject], old: list[JsonObject]) -> list[int | None]:
    """For each new message, the baseline message it replaces or keeps (None for a brand-new one).

    A common prefix and suffix keep their partners; the edited stretch between them pairs up one to one only
    when it kept its length (without stable identities, anything else is rebuilt from scratch).
    """
    limit = min(len(new), len(old))
    prefix = 0
    while prefix < limit and same_json(new[prefix], old[prefix]):
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and same_json(new[-1 - suffix], old[-1 - suffix]):
        suffix += 1
    slots: list[int | None] = list(range(prefix))
    middle_new, middle_old = len(new) - prefix - suffix, len(old) - prefix - suffix
    if middle_new == middle_old:
        slots.extend(range(prefix, prefix + middle_new))
    else:
        slots.extend([None] * middle_new)
    slots.extend(range(len(old) - suffix, len(old)))
    return slots


def _encode_contents(new: list[JsonObject], old: list[JsonObject], raw: list[JsonValue]) -> list[JsonValue]:
    origins = _message_origins(raw)
    slots = _diff_slots(new, old)
    names = _call_names(new)
    out: list[JsonValue] = []
    used: set[int] = set()
    index = 0
    while index < len(new):
        slot = slots[index]
        if slot is None or slot >= len(origins):
            out.append(_fresh_item(new[index], names))
            index += 1
            continue
        item = origins[slot]
        end = index + 1
        while end < len(new) and _origin(slots[end], origins) == item:
            end += 1
        members = [slots[i] for i in range(index, end)]
        untouched = all(same_json(new[i], old[slots[i] or 0]) for i in range(index, end))
        group = new[index:end]
        if item in used:
            # An original item hosts one stretch of messages; a later stretch mapped to it is rebuilt.
            out.extend(_fresh_item(m, names) for m in group)
        elif untouched and members == [i for i, o in enumerate(origins) if o == item]:
            out.append(raw[item])
        else:
            out.append(_merge_item(as_object(raw[item]), group, names))
        used.add(item)
        index = end
    return out


def _origin(slot: int | None, origins: list[int]) -> int | None:
    return None if slot is None or slot >= len(origins) else origins[slot]


def _call_names(messages: list[JsonObject]) -> dict[str, str]:
    """Tool call id -> function name, from the assistant messages (names a functionResponse needs)."""
    names: dict[str, str] = {}
    for message in messages:
        for call in objects(message.get("tool_calls")):
            function = call.get("function")
            if type(function) is dict:
                names[str(call.get("id"))] = str(function.get("name"))  # the last call with an id wins
    return names


def _fresh_item(message: JsonObject, names: dict[str, str]) -> JsonObject:
    """A brand-new ``contents`` item for ``message`` (each tool result gets an item of its own)."""
    if message.get("role") == "tool":
        return {"role": "user", "parts": [_function_response_part(message, names)]}
    role = _check_role(message)
    parts: list[JsonValue] = []
    body = message.get("content")
    if type(body) is list:
        parts.extend(_encode_part(p) for p in objects(body))
    elif type(body) is str and body:
        parts.append({"text": body})
    parts.extend(_fresh_call(c) for c in _tool_calls(message))
    return {"role": role, "parts": parts or [{"text": ""}]}


def _check_role(message: JsonObject) -> str:
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise _encoder_error(f"role '{role}' has no Gemini equivalent (only 'user' and 'assistant' are supported)")
    if message.get("name") is not None:
        variant = "User" if role == "user" else "Assistant"
        raise _encoder_error(f"Message::{variant}.name is not representable")
    return "user" if role == "user" else "model"


def _tool_calls(message: JsonObject) -> list[JsonObject]:
    return objects(message.get("tool_calls"))


def _encode_part(part: JsonObject) -> JsonObject:
    kind = part.get("type")
    if kind == "text":
        return {k: copy_json(v) for k, v in part.items() if k != "type"}
    if kind == "provider_native":
        return _native_part_value(part)
    if type(kind) is not str:
        raise _encoder_error(f"content part 'type' must be a string, got: {compact_json(kind)}")
    raise _encoder_error(f"normalized content part type '{kind}' cannot be encoded into Gemini content")


def _native_part_value(part: JsonObject) -> JsonObject:
    provider = part.get("provider")
    if provider != PROVIDER:
        raise _encoder_error(
            f"provider_native content part for provider '{provider}' cannot be encoded by the Gemini "
            "generateContent codec"
        )
    value = part.get("value")
    if type(value) is not dict:
        raise _encoder_error("provider_native value must be an object")
    if "functionCall" in value or "functionResponse" in value:
        raise _encoder_error(
            "provider_native content parts must not encode functionCall or functionResponse; "
            "use tool_calls or tool messages"
        )
    return copy_object(value)


def _call_args(call: JsonObject) -> tuple[str, str, JsonObject]:
    function = as_object(call.get("function"))
    name = function.get("name")
    if type(name) is not str or not name:
        raise _encoder_error("tool call is missing a non-empty function name")
    arguments = function.get("arguments")
    if type(arguments) is str:
        try:
            parsed = json.loads(arguments)
        except ValueError:
            raise _encoder_error(f"function call '{name}' has arguments that are not valid JSON: {arguments}") from None
    else:
        parsed = arguments
    if type(parsed) is not dict:
        raise _encoder_error(f"function call '{name}' arguments must be a JSON object, not {compact_json(parsed)}")
    return str(call.get("id")), name, parsed


def _fresh_call(call: JsonObject) -> JsonObject:
    call_id, name, args = _call_args(call)
    return {"functionCall": {"name": name, "args": args, "id": call_id}}


def _tool_call_id(message: JsonObject) -> str:
    call_id = message.get("tool_call_id")
    if type(call_id) is not str:
        raise _encoder_error("Message::Tool tool_call_id must be a string")
    if not call_id:
        raise _encoder_error("Message::Tool has an empty tool_call_id")
    return call_id


def _function_response_part(message: JsonObject, names: dict[str, str]) -> JsonObject:
    call_id = _tool_call_id(message)
    body = message.get("content")
    response: JsonObject = {"id": call_id, "name": names.get(call_id, call_id)}
    if type(body) is list:
        texts: list[str] = []
        extra_parts: list[JsonValue] = []
        for part in objects(body):
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("text")))
            elif kind == "provider_native":
                extra_parts.append(_native_part_value(part))
            else:
                raise _encoder_error(
                    f"normalized tool content part type '{kind}' cannot be encoded into functionResponse.parts"
                )
        response["response"] = _response_object("\n".join(texts))
        response["parts"] = extra_parts
    else:
        response["response"] = _response_object("" if body is None else str(body))
    return {"functionResponse": response}


def _response_object(text: str) -> JsonObject:
    """A tool result as a functionResponse ``response``: a JSON object as-is, anything else under ``output``."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"output": text}
    return parsed if type(parsed) is dict else {"output": parsed}


# --- merging an edited message into its original item -----------------------------------------------------------


def _merge_item(raw: JsonObject, messages: list[JsonObject], names: dict[str, str]) -> JsonValue:
    """An original item rebuilt for the edited messages now mapped onto it.

    A stretch led by tool results must hold only tool results (their responses replace the item's own). A
    stretch led by a user/assistant message is rebuilt from that message alone.
    """
    parts_value = raw.get("parts") if type(raw) is dict else None
    parts: list[JsonObject] = [p for p in parts_value if type(p) is dict] if type(parts_value) is list else []
    lead = messages[0]
    if lead.get("role") == "tool":
        seen: set[str] = set()
        for message in messages:
            if message.get("role") != "tool":
                raise InternalError("Message::Tool has no tool_call_id")
            call_id = _tool_call_id(message)
            if call_id in seen:
                raise _encoder_error(f"duplicate Message::Tool tool_call_id '{call_id}'")
            seen.add(call_id)
        return {"role": "user", "parts": _merge_responses(parts, messages, names)}
    role = _check_role(lead)
    # Only the lead message is laid over the item; whatever trails it leaves the item's other parts alone.
    merged = _merge_visible(parts, lead)
    return {"role": role, "parts": merged or [{"text": ""}]}


def _merge_responses(parts: list[JsonObject], messages: list[JsonObject], names: dict[str, str]) -> list[JsonValue]:
    """``parts`` with each functionResponse answered by one of ``messages`` rebuilt (original name kept)."""
    fresh = [_function_response_part(m, names) for m in messages]
    out: list[JsonValue] = []
    for part in parts:
        if "functionResponse" not in part:
            out.append(copy_json(part))
            continue
        original: JsonObject = part["functionResponse"] if type(part["functionResponse"]) is dict else {}
        key = original.get("id", original.get("name"))
        match = next((f for f in fresh if as_object(f["functionResponse"]).get("id") == key), None)
        if match is None:
            continue
        fresh.remove(match)
        response: JsonObject = {k: copy_json(v) for k, v in original.items() if k not in ("id", "response", "parts")}
        response.update(as_object(match["functionResponse"]))
        response["name"] = copy_json(original.get("name", response["name"]))
        out.append(
            {**{k: copy_json(v) for k, v in part.items() if k != "functionResponse"}, "functionResponse": response}
        )
    out.extend(fresh)
    return out


def _merge_visible(parts: list[JsonObject], message: JsonObject) -> list[JsonValue]:
    """The parts of an edited user/model item: new text and calls laid over the original parts in place.

    Thought parts and function responses stay where they were. Original ``functionCall`` parts are slots the
    new calls fill in order (extra calls go last); each call renders from the original it took over (see
    ``_match_calls``), so signatures follow their calls wherever they land.

    Visible parts are slots: an explicit part list fills them in order (surplus slots are dropped, surplus
    parts go last); a plain-text edit lands on the first slot, keeping a text part's extras, while later text
    parts survive only when they carry a thought signature and native parts always do. With no slot at all
    the new content goes first.
    """
    body = message.get("content")
    calls = [_call_args(c) for c in _tool_calls(message)]
    matched = _match_calls(parts, calls)
    pending = list(range(len(calls)))  # calls not yet placed, in order
    out: list[JsonValue] = []
    new_parts: list[JsonValue] = [_encode_part(p) for p in objects(body)]
    segments = [body] if type(body) is str and body else []
    slots = 0
    for part in parts:
        if "functionCall" in part:
            # Original call parts are slots the new calls fill in order; a call reuses its own original part.
            if pending:
                out.append(_call_part(pending.pop(0), calls, parts, matched))
        elif _is_thought(part) or "functionResponse" in part:
            out.append(copy_json(part))
        elif type(body) is list:
            if slots < len(new_parts):
                out.append(new_parts[slots])
            slots += 1
        else:
            slots += 1
            if slots == 1 and segments:
                text = segments.pop(0)
                out.append({**copy_object(part), "text": text} if "text" in part else {"text": text})
            elif "text" not in part or "thoughtSignature" in part:
                out.append(copy_json(part))
    leftovers: list[JsonValue] = new_parts[slots:] if type(body) is list else [{"text": s} for s in segments]
    tail = [_call_part(j, calls, parts, matched) for j in pending]
    if slots:
        return out + leftovers + tail
    return leftovers + out + tail


def _match_calls(parts: list[JsonObject], calls: list[tuple[str, str, JsonObject]]) -> dict[int, int]:
    """Original functionCall part index -> index of the new call that takes it over (signature included).

    Originals with an explicit id go first, each to the first unclaimed call with that id; id-less
    originals then go to the first unclaimed call of the same function.
    """
    matched: dict[int, int] = {}
    claimed: set[int] = set()
    originals = [(i, as_object(p["functionCall"])) for i, p in enumerate(parts) if "functionCall" in p]
    for by_id in (True, False):
        for index, original in originals:
            if ("id" in original) != by_id:
                continue
            key = original.get("id") if by_id else original.get("name")
            for j, (call_id, name, _) in enumerate(calls):
                if j not in claimed and (call_id if by_id else name) == key:
                    matched[index] = j
                    claimed.add(j)
                    break
    return matched


def _call_part(
    index: int, calls: list[tuple[str, str, JsonObject]], parts: list[JsonObject], matched: dict[int, int]
) -> JsonObject:
    """The functionCall part for new call ``index``.

    The original part it took over keeps its shape (an id-less call stays id-less) when name and effective
    id are unchanged; otherwise the call is rewritten but keeps the original's extras (its thought signature).
    """
    call_id, name, args = calls[index]
    fresh: JsonObject = {"functionCall": {"name": name, "args": copy_json(args), "id": call_id}}
    for part_index, claim in matched.items():
        if claim != index:
            continue
        original = parts[part_index]
        function = as_object(original["functionCall"])
        if function.get("name") == name and function.get("id", name) == call_id:
            merged = {k: copy_json(v) for k, v in original.items()}
            merged["functionCall"] = {**{k: copy_json(v) for k, v in function.items()}, "args": copy_json(args)}
            return merged
        return {**{k: copy_json(v) for k, v in original.items() if k != "functionCall"}, **fresh}
    return fresh


# ======================================================================================================
# Response decoding
# ======================================================================================================


def _response_error(detail: str) -> InternalError:
    return InternalError(f"Gemini response decode: {detail}")


def _optional_str(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not str:
        raise _response_error(serde_error(value, "a string"))
    return value


def decode_response(response: JsonObject) -> JsonObject:
    """The annotated-response JSON for a generateContent response body."""
    out: JsonObject = {}
    api: JsonObject = {"api": API}
    model, version = _optional_str(response, "model"), _optional_str(response, "modelVersion")
    response_id, legacy_id = _optional_str(response, "id"), _optional_str(response, "responseId")
    if (model or version) is not None:
        out["model"] = model if model is not None else version
    if (response_id or legacy_id) is not None:
        out["id"] = response_id if response_id is not None else legacy_id
    blocked = _block_reason(response)
    candidate = _first_candidate(response.get("candidates"))
    finish: str | None = None
    if candidate is not None:
        finish = _decode_candidate(candidate, out, api)
    usage = response.get("usageMetadata")
    if usage is not None:
        out["usage"] = _decode_usage(usage, api)
    reason = _finish_reason(finish, blocked, "tool_calls" in out)
    if reason is not None:
        out["finish_reason"] = reason
    if len(api) > 1:
        out["api_specific"] = api
    known = ("model", "modelVersion", "id", "responseId", "candidates", "usageMetadata")
    for key, value in response.items():
        if key not in known and key not in out:
            out[key] = copy_json(value)
    return out


def _block_reason(response: JsonObject) -> str | None:
    if "promptFeedback" not in response:
        return None
    feedback = response["promptFeedback"]
    if type(feedback) is not dict:
        raise _invalid("response promptFeedback must be an object")
    reason = feedback.get("blockReason")
    if reason is not None and type(reason) is not str:
        raise _invalid("response promptFeedback.blockReason must be a string")
    return reason


def _first_candidate(candidates: JsonValue) -> JsonObject | None:
    if candidates is None:
        return None
    if type(candidates) is not list:
        raise _response_error(serde_error(candidates, "a sequence"))
    for candidate in candidates:
        if type(candidate) is not dict:
            raise _response_error(serde_error(candidate, "struct RawCandidate"))
    return as_object(candidates[0]) if candidates else None


def _decode_candidate(candidate: JsonObject, out: JsonObject, api: JsonObject) -> str | None:
    finish = _optional_str(candidate, "finishReason")
    body = candidate.get("content")
    if body is not None:
        if type(body) is not dict:
            raise _response_error(serde_error(body, "struct RawContent"))
        parts = body.get("parts")
        if parts is not None:
            if type(parts) is not list:
                raise _response_error(serde_error(parts, "a sequence"))
            _decode_response_parts_into(parts, out)
    renamed = {
        "safetyRatings": "safety_ratings",
        "groundingMetadata": "grounding_metadata",
        "citationMetadata": "citation_metadata",
    }
    for key, value in candidate.items():
        if key not in ("content", "finishReason") and value is not None:
            api[renamed.get(key, key)] = copy_json(value)
    return finish


def _decode_response_parts_into(parts: list[JsonValue], out: JsonObject) -> None:
    visible: list[JsonValue] = []
    calls: list[JsonValue] = []
    for part in parts:
        if type(part) is not dict:
            raise InvalidArgumentError(f"{_LABEL} response parts entry must be an object")
        if "functionResponse" in part:
            raise _invalid("response parts must not contain functionResponse")
        if "functionCall" in part:
            calls.append(_response_call(part["functionCall"]))
        elif "text" in part:
            if type(part["text"]) is not str:
                raise InvalidArgumentError(f"{_LABEL} response parts[].text must be a string")
            if not _is_thought(part):
                visible.append(_text_part(part))
        else:
            visible.append(native(PROVIDER, _part_kind(part), copy_json(part)))
    if visible:
        out["message"] = _visible_content(visible)
    if calls:
        out["tool_calls"] = calls


def _response_call(call: JsonValue) -> JsonObject:
    if type(call) is not dict:
        raise _invalid("response functionCall must be an object")
    if "name" not in call:
        raise _invalid("response functionCall is missing 'name'")
    name = call["name"]
    if type(name) is not str:
        raise _invalid("response functionCall.name must be a string")
    if not name:
        raise _invalid("response functionCall.name must be a non-empty string")
    if "args" in call and type(call["args"]) is not dict:
        raise _invalid("response functionCall.args must be an object")
    if "id" in call and type(call["id"]) is not str:
        raise InvalidArgumentError(f"{_LABEL} response functionCall.id must be a string")
    return {"id": call.get("id", name), "name": name, "arguments": copy_json(call.get("args", {}))}


def _decode_usage(usage: JsonValue, api: JsonObject) -> JsonObject:
    if type(usage) is not dict:
        raise _response_error(serde_error(usage, "struct RawUsageMetadata"))
    label = "Gemini"
    prompt = token_count(usage, "promptTokenCount", label)
    completion = token_count(usage, "candidatesTokenCount", label)
    total = token_count(usage, "totalTokenCount", label)
    cached = token_count(usage, "cachedContentTokenCount", label)
    thoughts = token_count(usage, "thoughtsTokenCount", label)
    out: JsonObject = {}
    if prompt is not None:
        out["prompt_tokens"] = prompt
    if completion is not None:
        out["completion_tokens"] = completion
    counted = [n for n in (prompt, completion, thoughts) if n is not None]
    if total is not None:
        out["total_tokens"] = total
    elif counted:
        # No reported total: thinking tokens are billed as output, so they count towards it.
        out["total_tokens"] = sum(counted)
    if cached is not None:
        out["cache_read_tokens"] = cached
    if thoughts is not None:
        api["thoughts_tokens"] = thoughts
    return out


def _finish_reason(finish: str | None, blocked: str | None, has_calls: bool) -> JsonValue:
    if finish is None or finish == "FINISH_REASON_UNSPECIFIED":
        if blocked is not None and blocked != "BLOCK_REASON_UNSPECIFIED":
            return "content_filter" if blocked in _BLOCKED else {"unknown": blocked}
        return "tool_use" if has_calls else None
    if finish == "STOP":
        return "tool_use" if has_calls else "complete"
    if finish == "MAX_TOKENS":
        return "length"
    if finish in _FILTERED:
        return "content_filter"
    return {"unknown": finish}


# ======================================================================================================
# Streaming
# ======================================================================================================


def _stream_error(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Gemini streaming {detail}")


class GeminiStreamAggregator:
    """Folds ``streamGenerateContent`` chunks into the body a ``generateContent`` call would have returned.

    Text fragments of the single candidate are concatenated (thought text separately from answer text, a
    ``thoughtSignature`` kept on the part it arrived with), other parts are appended, and the last
    ``finishReason``, ``usageMetadata``, ``modelVersion`` and ``responseId`` win.
    """

    __slots__ = ("_parts", "_candidate", "_top", "_index", "_seen_candidate")

    def __init__(self) -> None:
        self._parts: list[JsonObject] = []
        self._candidate: JsonObject = {}
        self._top: JsonObject = {}
        self._index: int | None = None
        self._seen_candidate = False

    def add(self, chunk: JsonValue) -> None:
        """Fold one streamed chunk into the response."""
        if type(chunk) is not dict:
            raise _stream_error("chunk must be an object")
        for key in ("modelVersion", "responseId"):
            if key in chunk and type(chunk[key]) is not str:
                raise InvalidArgumentError(f"Gemini streaming event {key} must be a string")
        candidates = chunk.get("candidates")
        if candidates is not None:
            if type(candidates) is not list:
                raise _stream_error("candidates must be an array")
            if len(candidates) > 1:
                raise InvalidArgumentError("Gemini streaming chunks with multiple candidates are not supported")
            for candidate in candidates:
                self._add_candidate(candidate)
        for key, value in chunk.items():
            if key != "candidates":
                self._top[key] = copy_json(value)

    def result(self) -> JsonObject:
        """The aggregated response body."""
        out: JsonObject = {}
        if self._seen_candidate:
            candidate = {k: copy_json(v) for k, v in self._candidate.items()}
            parts: list[JsonValue] = [copy_json(p) for p in self._parts]
            candidate["content"] = {"role": "model", "parts": parts}
            out["candidates"] = [candidate]
        out.update(copy_object(self._top))
        return out

    def _add_candidate(self, candidate: JsonValue) -> None:
        if type(candidate) is not dict:
            raise _stream_error("candidate must be an object")
        self._check_index(candidate)
        self._seen_candidate = True
        finish = candidate.get("finishReason")
        if finish is not None and type(finish) is not str:
            raise _stream_error("candidate finishReason must be a string")
        body = candidate.get("content")
        if type(body) is dict:
            parts = body.get("parts")
            for part in parts if type(parts) is list else []:
                self._add_part(part)
        for key, value in candidate.items():
            if key != "content" and value is not None:
                self._candidate[key] = copy_json(value)

    def _check_index(self, candidate: JsonObject) -> None:
        if "index" not in candidate:
            return
        index = candidate["index"]
        if type(index) is not int or index < 0:
            raise _stream_error("candidate index must be an unsigned integer")
        if self._index is not None and index != self._index:
            raise _stream_error("candidate index changed across chunks")
        if index != 0:
            raise _stream_error("only supports candidate index 0")
        self._index = index

    def _add_part(self, part: JsonValue) -> None:
        if type(part) is not dict:
            raise _stream_error("parts entry must be an object")
        if "functionResponse" in part:
            raise _stream_error("response parts must not contain functionResponse")
        if "text" in part and type(part["text"]) is not str:
            raise _stream_error("parts[].text must be a string")
        last = self._parts[-1] if self._parts else None
        if last is not None and _joins(last, part):
            last["text"] = str(last["text"]) + str(part["text"])
            if "thoughtSignature" in part:
                last["thoughtSignature"] = copy_json(part["thoughtSignature"])
            return
        self._parts.append(copy_object(part))


def _joins(last: JsonObject, part: JsonObject) -> bool:
    """Whether a streamed text fragment continues the previous text part."""
    if "text" not in last or "text" not in part:
        return False
    if set(part) - {"text", "thought", "thoughtSignature"} or set(last) - {"text", "thought", "thoughtSignature"}:
        return False
    if _is_thought(last) != _is_thought(part):
        return False
    # A thought signature may ride on any fragment (often a trailing empty one); two different ones don't mix.
    return "thoughtSignature" not in last or "thoughtSignature" not in part
