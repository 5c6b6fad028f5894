"""Gemini ``generateContent`` request encoding: an edited annotation patched into the original body.

Edited messages are lined up with the original ``contents`` items and laid over them (see ``gemini``).
"""

from __future__ import annotations

from nemo_relay._core.codecs.common import (
    as_object,
    compact_json,
    copy_object,
    loads,
    objects,
    param_value,
    patch_extra,
    same_json,
    set_or_drop,
)
from nemo_relay._core.codecs.gemini_request import (
    FOREIGN_FIELDS,
    PARAM_KEYS,
    PROVIDER,
    encoder_error,
    is_thought,
    message_origins,
)
from nemo_relay._core.errors import InternalError, InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.types import JsonObject, JsonValue


# ======================================================================================================
# Request encoding
# ======================================================================================================


def encode_request(
    annotation: JsonObject, extra: JsonObject, baseline: JsonObject, before_extra: JsonObject, content: JsonObject
) -> JsonObject:
    """``content`` patched wherever the annotation's fields and ``extra`` differ from ``baseline`` and
    ``before_extra`` (the decode of ``content``)."""
    for name in FOREIGN_FIELDS:
        if annotation.get(name) is not None:
            raise encoder_error(
                f"field '{name}' is not representable in the Gemini generateContent API; "
                "use a provider-native extra field instead"
            )
    if not same_json(annotation.get("model"), baseline.get("model")):
        set_or_drop(content, "model", annotation.get("model"))
    _patch_generation_config(annotation.get("params"), baseline.get("params"), content)
    if not same_json(annotation.get("tools"), baseline.get("tools")):
        _patch_tools(annotation, baseline, content)
    if not same_json(annotation.get("messages"), baseline.get("messages")):
        _patch_messages(annotation, baseline, content)
    patch_extra(content, extra, before_extra, same_json)
    return content


def _patch_generation_config(new: JsonValue, old: JsonValue, content: JsonObject) -> None:
    new_params: JsonObject = new if type(new) is dict else {}
    old_params: JsonObject = old if type(old) is dict else {}
    changed = [(k, b) for k, b in PARAM_KEYS if not same_json(new_params.get(k), old_params.get(k))]
    if not changed:
        return
    raw = content.get("generationConfig")
    config: JsonObject = raw if type(raw) is dict else {}
    for key, body_key in changed:
        set_or_drop(config, body_key, param_value(key, new_params.get(key)))
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
        raise encoder_error(
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
        raise encoder_error(
            "FunctionDefinition.strict is not supported; remove it or use a provider-native extra field"
        )
    if not function.get("name"):
        raise encoder_error("FunctionDefinition.name must be non-empty")
    return {k: copy_json(v) for k, v in function.items() if k != "strict"}


def _encode_native_tool(tool: JsonObject) -> JsonObject:
    if tool.get("provider") != PROVIDER:
        raise encoder_error(
            f"ProviderNative tool '{tool.get('kind')}' (provider '{tool.get('provider')}') "
            "cannot be represented on the Gemini surface"
        )
    value = tool.get("value")
    if type(value) is not dict:
        raise encoder_error("ProviderNative tool value must be an object")
    if "functionDeclarations" in value:
        raise encoder_error(
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
        raise encoder_error("Message::System.name is not representable")
    body = message.get("content")
    if type(body) is not list:
        return "" if body is None else str(body)
    texts = []
    for part in objects(body):
        if part.get("type") != "text":
            raise encoder_error(
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
    origins = message_origins(raw)
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
        raise encoder_error(f"role '{role}' has no Gemini equivalent (only 'user' and 'assistant' are supported)")
    if message.get("name") is not None:
        variant = "User" if role == "user" else "Assistant"
        raise encoder_error(f"Message::{variant}.name is not representable")
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
        raise encoder_error(f"content part 'type' must be a string, got: {compact_json(kind)}")
    raise encoder_error(f"normalized content part type '{kind}' cannot be encoded into Gemini content")


def _native_part_value(part: JsonObject) -> JsonObject:
    provider = part.get("provider")
    if provider != PROVIDER:
        raise encoder_error(
            f"provider_native content part for provider '{provider}' cannot be encoded by the Gemini "
            "generateContent codec"
        )
    value = part.get("value")
    if type(value) is not dict:
        raise encoder_error("provider_native value must be an object")
    if "functionCall" in value or "functionResponse" in value:
        raise encoder_error(
            "provider_native content parts must not encode functionCall or functionResponse; "
            "use tool_calls or tool messages"
        )
    return copy_object(value)


def _call_args(call: JsonObject) -> tuple[str, str, JsonObject]:
    function = as_object(call.get("function"))
    name = function.get("name")
    if type(name) is not str or not name:
        raise encoder_error("tool call is missing a non-empty function name")
    arguments = function.get("arguments")
    if type(arguments) is str:
        try:
            parsed = loads(arguments)
        except ValueError:
            raise encoder_error(f"function call '{name}' has arguments that are not valid JSON: {arguments}") from None
    else:
        parsed = arguments
    if type(parsed) is not dict:
        raise encoder_error(f"function call '{name}' arguments must be a JSON object, not {compact_json(parsed)}")
    return str(call.get("id")), name, parsed


def _fresh_call(call: JsonObject) -> JsonObject:
    call_id, name, args = _call_args(call)
    return {"functionCall": {"name": name, "args": args, "id": call_id}}


def _tool_call_id(message: JsonObject) -> str:
    call_id = message.get("tool_call_id")
    if type(call_id) is not str:
        raise encoder_error("Message::Tool tool_call_id must be a string")
    if not call_id:
        raise encoder_error("Message::Tool has an empty tool_call_id")
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
                raise encoder_error(
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
        parsed = loads(text)
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
                raise encoder_error(f"duplicate Message::Tool tool_call_id '{call_id}'")
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
        elif is_thought(part) or "functionResponse" in part:
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
