"""Gemini ``generateContent`` requests: the codec's constants and shared helpers, and request decoding.

See ``gemini`` for the mapping; ``gemini_encode`` patches edited annotations back, ``gemini_response``
decodes responses and streams.
"""

from __future__ import annotations

from nemo_relay._core.codecs.common import as_float, as_object, compact_json, is_number, provider_native
from nemo_relay._core.errors import InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Iterator

    from nemo_relay._core.types import JsonObject, JsonValue

API = "gemini_generate_content"
PROVIDER = "gemini"  # the provider tag of Gemini provider-native components
LABEL = "Gemini generateContent"

# Annotation fields the generateContent surface has no place for (checked in this order).
FOREIGN_FIELDS = (
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
PARAM_KEYS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("max_tokens", "maxOutputTokens"),
    ("stop", "stopSequences"),
)


def invalid(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Gemini {detail}")


def encoder_error(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Gemini encoder: {detail}")


def _each_object(value: JsonValue, not_array: str, not_object: str) -> Iterator[JsonObject]:
    """The entries of a request array, each checked as it is read (so errors come in input order)."""
    if type(value) is not list:
        raise invalid(not_array)
    for entry in value:
        if type(entry) is not dict:
            raise invalid(not_object)
        yield entry


def check_id(obj: JsonObject, what: str) -> None:
    """An explicit ``id`` (calls and responses correlate by it) must be a string."""
    if "id" in obj and type(obj["id"]) is not str:
        raise InvalidArgumentError(f"{LABEL} {what}.id must be a string")


def is_thought(part: JsonObject) -> bool:
    return part.get("thought") is True


def part_kind(part: JsonObject, with_text: bool = False) -> str:
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


def decode_request(content: JsonObject) -> tuple[JsonObject, JsonObject]:
    """The annotation fields and ``extra`` (the unmapped body keys) of a generateContent request body."""
    if "contents" not in content:
        raise invalid("request is missing contents")
    contents = content["contents"]
    if type(contents) is not list:
        raise invalid("request contents must be an array")
    messages: list[JsonValue] = []
    system = _decode_system(content)
    if system is not None:
        messages.append({"role": "system", "content": system})
    for item in contents:
        messages.extend(_decode_item(item))
    out: JsonObject = {"messages": messages}
    if "model" in content:
        if type(content["model"]) is not str:
            raise invalid("request 'model' must be a string")
        out["model"] = content["model"]
    if "generationConfig" in content:
        params = _decode_generation_config(content["generationConfig"])
        if params:
            out["params"] = params
    if "tools" in content:
        tools = _decode_tools(content["tools"])
        if tools:
            out["tools"] = tools
    # Unknown body keys ride along as `extra`, also when named like an annotation field.
    extra = {key: copy_json(value) for key, value in content.items() if key not in _KNOWN_BODY_KEYS}
    return out, extra


def _decode_system(content: JsonObject) -> str | None:
    if "systemInstruction" not in content:
        return None
    texts = _system_texts(content["systemInstruction"])
    return "\n".join(texts) if texts else None


def _system_texts(instruction: JsonValue) -> list[str]:
    if type(instruction) is not dict:
        raise invalid("systemInstruction must be an object")
    if "role" in instruction and type(instruction["role"]) is not str:
        raise invalid("systemInstruction.role must be a string")
    if "parts" not in instruction:
        raise invalid("systemInstruction must have a 'parts' field")
    texts: list[str] = []
    parts = instruction["parts"]
    for part in _each_object(
        parts, "systemInstruction.parts must be an array", "systemInstruction.parts entry must be an object"
    ):
        if "text" not in part:
            raise invalid("systemInstruction.parts entries must be text parts")
        if type(part["text"]) is not str:
            raise invalid("systemInstruction.parts[].text must be a string")
        texts.append(part["text"])
    return texts


def _decode_generation_config(config: JsonValue) -> JsonObject:
    if type(config) is not dict:
        raise invalid("generationConfig must be an object")
    params: JsonObject = {}
    if "maxOutputTokens" in config:
        value = config["maxOutputTokens"]
        if type(value) is not int or value < 0:
            raise invalid("maxOutputTokens must be a non-negative integer")
        params["max_tokens"] = value
    for key, body_key in (("temperature", "temperature"), ("top_p", "topP")):
        if body_key in config:
            if not is_number(config[body_key]):
                raise invalid(f"{body_key} must be a number")
            params[key] = as_float(config[body_key])
    if "stopSequences" in config:
        stops = config["stopSequences"]
        if type(stops) is not list or any(type(s) is not str for s in stops):
            raise invalid("stopSequences must be an array of strings")
        params["stop"] = list(stops)
    return params


def _decode_tools(tools: JsonValue) -> list[JsonValue]:
    out: list[JsonValue] = []
    for entry in _each_object(tools, "tools must be an array", "tools[] entry must be an object"):
        if "functionDeclarations" in entry:
            out.extend(_decode_declarations(entry["functionDeclarations"]))
        rest = {k: copy_json(v) for k, v in entry.items() if k != "functionDeclarations"}
        if rest or "functionDeclarations" not in entry:
            out.append(provider_native(PROVIDER, min(rest) if rest else "unknown", rest, "type"))
    return out


def _decode_declarations(declarations: JsonValue) -> list[JsonValue]:
    out: list[JsonValue] = []
    not_object = "functionDeclaration entry must be an object"
    for declaration in _each_object(declarations, "functionDeclarations must be an array", not_object):
        name = declaration.get("name")
        if type(name) is not str or not name:
            raise invalid("functionDeclaration must have a non-empty 'name'")
        if "description" in declaration and type(declaration["description"]) is not str:
            raise invalid("functionDeclaration.description must be a string")
        out.append({"type": "function", "function": copy_json(declaration)})
    return out


def _item_role(item: JsonObject) -> str:
    if "role" not in item:
        return "user"
    role = item["role"]
    if type(role) is not str:
        raise invalid("contents item 'role' must be a string")
    if role not in ("user", "model"):
        raise invalid(f"contents item has unsupported role '{role}'; expected 'user' or 'model'")
    return role


def _item_parts(item: JsonValue) -> tuple[str, list[JsonObject]]:
    if type(item) is not dict:
        raise invalid("contents item must be an object")
    role = _item_role(item)
    parts = item.get("parts")
    return role, list(
        _each_object(parts, "contents item must have an array 'parts' field", "parts item must be an object")
    )


def _decode_item(item: JsonValue) -> list[JsonValue]:
    """The messages one ``contents`` item decodes to (several for a batch of function responses)."""
    role, parts = _item_parts(item)
    if any("functionResponse" in p for p in parts) and any("functionCall" in p for p in parts):
        raise invalid("contents item must not contain both functionResponse and functionCall parts")
    visible: list[JsonValue] = []
    calls: list[JsonValue] = []
    responses: list[JsonValue] = []
    for part in parts:
        if "functionCall" in part:
            if role != "model":
                raise invalid(f"functionCall parts must be in a 'model' role content item, got '{role}'")
            calls.append(_decode_call(part["functionCall"]))
        elif "functionResponse" in part:
            if role != "user":
                raise invalid(f"functionResponse parts must be in a 'user' role content item, got '{role}'")
            responses.append(_decode_function_response(part["functionResponse"]))
        elif "text" in part:
            if type(part["text"]) is not str:
                raise invalid("parts item 'text' must be a string")
            if not is_thought(part):
                visible.append(text_part(part))
        else:
            visible.append(provider_native(PROVIDER, part_kind(part), copy_json(part), "type"))
    _check_unique(calls, "functionCall")
    _check_unique(responses, "functionResponse")
    if responses:
        if visible:
            raise invalid("contents item must not mix functionResponse with visible/native parts")
        return responses
    message: JsonObject = {"role": "user" if role == "user" else "assistant"}
    if visible or not calls:
        message["content"] = visible_content(visible)
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
            raise invalid(
                f"{kind} parts have duplicate effective id '{call_id}'; "
                "distinct ids are required to correlate function responses"
            )
        seen.add(call_id)


def text_part(part: JsonObject) -> JsonObject:
    """A text part in annotation form, its other keys kept; one with a ``type`` key (which the annotation uses
    as the part's tag) travels as a provider-native part instead, so the view stays valid and lossless."""
    if "type" in part:
        return provider_native(PROVIDER, "text", copy_json(part), "type")
    return {"type": "text", **{k: copy_json(v) for k, v in part.items()}}


def visible_content(visible: list[JsonValue]) -> JsonValue:
    # Plain text parts collapse to one string; any extra key or native part keeps the list form.
    if all(type(p) is dict and p.keys() == {"type", "text"} for p in visible):
        return "\n".join(str(as_object(p).get("text")) for p in visible)
    return visible


def _decode_call(call: JsonValue) -> JsonObject:
    if type(call) is not dict:
        raise invalid("functionCall must be an object")
    name = call.get("name")
    if type(name) is not str or not name:
        raise invalid("functionCall is missing a non-empty 'name'")
    if "args" in call and type(call["args"]) is not dict:
        raise invalid("functionCall.args must be an object")
    check_id(call, "functionCall")
    args = call.get("args", {})
    return {
        "id": call.get("id", name),
        "type": "function",
        "function": {"name": name, "arguments": compact_json(args)},
    }


def _decode_function_response(response: JsonValue) -> JsonObject:
    if type(response) is not dict:
        raise invalid("functionResponse must be an object")
    name = response.get("name")
    if type(name) is not str or not name:
        raise invalid("functionResponse is missing a non-empty 'name'")
    if "response" not in response:
        raise invalid("functionResponse is missing required 'response'")
    if type(response["response"]) is not dict:
        raise invalid("functionResponse.response must be an object")
    check_id(response, "functionResponse")
    text = compact_json(response["response"])
    message: JsonObject = {"role": "tool", "tool_call_id": response.get("id", name)}
    if "parts" not in response:
        message["content"] = text
        return message
    message["content"] = [{"type": "text", "text": text}, *_decode_response_parts(response["parts"])]
    return message


def _decode_response_parts(parts: JsonValue) -> list[JsonValue]:
    out: list[JsonValue] = []
    not_object = "functionResponse.parts entry must be an object"
    for part in _each_object(parts, "functionResponse.parts must be an array", not_object):
        if "functionCall" in part or "functionResponse" in part:
            raise invalid("functionResponse.parts must not contain nested functionCall/functionResponse")
        if "text" in part and type(part["text"]) is not str:
            raise invalid("functionResponse.parts[].text must be a string")
        out.append(provider_native(PROVIDER, part_kind(part, with_text=True), copy_json(part), "type"))
    return out


def message_origins(contents: list[JsonValue]) -> list[int]:
    """For each non-system message of the decode, the index of the ``contents`` item it came from."""
    origins: list[int] = []
    for index, item in enumerate(contents):
        _, parts = _item_parts(item)
        responses = sum(1 for p in parts if "functionResponse" in p)
        origins.extend([index] * (responses or 1))
    return origins
