"""What the two OpenAI codecs (Chat Completions and Responses) share beyond ``common``.

Tool-call arguments, tool and tool-choice mapping, the three-way patch of request items, the patching of
tools, tool choice and sampling parameters, and provider-reported cost. Error texts name values in the
OpenAI codecs' notation (``TEXT``).
"""

from __future__ import annotations

from nemo_relay._core.codecs.common import (
    ResponseShape,
    as_float,
    compact_json,
    cost_breakdown,
    json_equal,
    match_by_value,
    multiple_edits_error,
    parse_json_or_text,
    provider_native,
    set_or_drop,
)
from nemo_relay._core.codecs.rustfmt import RustText, float_repr, json_str
from nemo_relay._core.errors import InternalError, InvalidArgumentError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from nemo_relay._core.types import JsonObject, JsonValue

    # Encodes one annotation item (message, tool) into its provider form; the second argument is the
    # original provider item it replaces, when there is one, so its shape can be followed.
    ItemEncoder = Callable[[JsonValue, JsonValue], JsonValue]

# Strings quoted as JSON, floats as Python's repr without ``e+``.
TEXT = RustText(json_str, float_repr)


def cannot_encode(what: str, debug: str, api: str) -> InvalidArgumentError:
    """The error for an annotation component the target API has no place for."""
    return InvalidArgumentError(f"{what} {debug} cannot be encoded for {api}")


# --- tool calls, tools, tool choice ---------------------------------------------------------------------------


def parse_arguments(text: str) -> JsonValue:
    """Tool-call arguments as JSON when they parse, else the raw string (the reference does the same)."""
    return parse_json_or_text(text, finite=True)


def dump_arguments(arguments: JsonValue) -> str:
    """Tool-call arguments back to the string OpenAI expects: strings verbatim, values as compact JSON."""
    return arguments if isinstance(arguments, str) else compact_json(arguments)


def decoded_tool_call(call_id: JsonValue, name: JsonValue, arguments: JsonValue) -> JsonObject:
    """One response tool call: ``{id, name, arguments}``, arguments parsed when they are JSON."""
    text = arguments if isinstance(arguments, str) else "{}"
    return {"id": call_id if isinstance(call_id, str) else "", "name": name, "arguments": parse_arguments(text)}


def read_tools(content: JsonObject, api: str, decode: Callable[[JsonValue], JsonValue]) -> list[JsonValue] | None:
    """The body's ``tools`` decoded one by one (None when absent)."""
    if "tools" not in content:
        return None
    tools = content["tools"]
    if not isinstance(tools, list):
        raise InvalidArgumentError(f"{api} tools must be an array")
    return [decode(tool) for tool in tools]


def decode_tool(tool: JsonValue, provider: str, api: str, *, flat_function: bool) -> JsonValue:
    """One tool: a function tool in the annotation's form, any other kept provider-native.

    The function definition sits under ``function``; with ``flat_function`` (Responses) it may instead
    be the tool object itself.
    """
    if not isinstance(tool, dict):
        raise InvalidArgumentError(f"{api} tool must be an object")
    if tool.get("type") != "function":
        return provider_native(provider, tool.get("type"), tool, "type")
    function = tool.get("function")
    if isinstance(function, dict):
        beside = {key: value for key, value in tool.items() if key not in ("type", "function")}
        return decode_function_tool(function, beside, api)
    if not flat_function:
        raise InvalidArgumentError(f"{api} function tool is missing function")
    return decode_function_tool({key: value for key, value in tool.items() if key != "type"}, {}, api)


def decode_function_tool(function: JsonObject, tool_extra: JsonObject, api: str) -> JsonObject:
    """An OpenAI function definition in the annotation's tool form; ``tool_extra`` is what sits beside it."""
    name = function.get("name")
    if not isinstance(name, str):
        raise InvalidArgumentError(f"{api} function tool is missing name")
    definition: JsonObject = {"name": name}
    for key, kind, expected in (("description", str, "a string"), ("strict", bool, "a boolean")):
        value = function.get(key)
        if value is not None and not isinstance(value, kind):
            raise InvalidArgumentError(f"{api} function tool {key} must be {expected} or null")
    for key, value in function.items():
        # ``parameters`` is kept even when null, as the reference does; the other known fields drop nulls.
        if key != "name" and (value is not None or key not in ("description", "strict")):
            definition[key] = value
    return {"type": "function", "function": definition, **tool_extra}


def encode_tool(tool: JsonValue, provider: str, api: str, *, nested: bool) -> JsonValue:
    """An annotation tool in provider form: a function tool with its definition under ``function`` when
    ``nested``, else flat beside ``type``; a provider-native tool as its value (another provider's is an error).
    """
    if not isinstance(tool, dict):
        return tool
    if tool.get("type") == "provider_native":
        if tool.get("provider") != provider:
            raise cannot_encode("tool", TEXT.native(tool), api)
        return tool.get("value")
    definition = tool.get("function")
    definition = dict(definition) if isinstance(definition, dict) else {}
    beside = {key: value for key, value in tool.items() if key not in ("type", "function")}
    if nested:
        return {"type": "function", "function": definition, **beside}
    return {"type": "function", **definition, **beside}


def decode_tool_choice(raw: JsonValue, provider: str, *, flat_function: bool) -> JsonValue:
    """The annotation's tool choice: a mode string, a named function, or the raw value kept provider-native."""
    if raw in ("auto", "none", "required"):
        return raw
    if isinstance(raw, dict):
        kind = raw.get("type")
        if flat_function and kind in ("auto", "none"):
            return kind  # the Responses object spelling of a mode (the reference reads no ``required`` here)
        if kind == "function":
            name = _function_name(raw, flat_function)
            if name is not None:
                return {"type": "function", "function": {"name": name}}
    return {"kind": "tool_choice", "provider": provider, "value": raw}


def _function_name(choice: JsonObject, flat_function: bool) -> str | None:
    function = choice.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return function["name"]  # type: ignore[return-value]
    name = choice.get("name")
    return name if flat_function and isinstance(name, str) else None


def encode_tool_choice(choice: JsonValue, provider: str, api: str, *, flat_function: bool) -> JsonValue:
    """A tool choice from the annotation in provider form."""
    if isinstance(choice, dict):
        if choice.get("type") == "function" and isinstance(choice.get("function"), dict):
            name = choice["function"].get("name")  # type: ignore[union-attr]
            return (
                {"type": "function", "name": name}
                if flat_function
                else {"type": "function", "function": {"name": name}}
            )
        if "kind" in choice and "provider" in choice:
            if choice.get("provider") != provider:
                raise InvalidArgumentError(f"tool choice for {choice.get('provider')} cannot be encoded for {api}")
            return choice.get("value")
    return choice


# --- patching the original body ----------------------------------------------------------------------------------

_SAME_SLOT_LIMIT = 1  # in-place edits we can line up with their originals without an identity


def changed(annotation: JsonObject, baseline: JsonObject, key: str) -> bool:
    """Whether a first-class annotation field differs from the baseline (``None`` and absent are alike)."""
    return not json_equal(annotation.get(key), baseline.get(key))


def patch_value(orig: JsonValue, base: JsonValue, new: JsonValue) -> JsonValue:
    """Three-way merge: apply the change ``base -> new`` to ``orig``, keeping what only ``orig`` has.

    ``base`` and ``new`` are fresh provider encodings of the baseline and the edited annotation, so
    keys present only in ``orig`` are fields the annotation cannot represent; they survive. A change
    of ``role`` or ``type`` means a different kind of item, so it is replaced wholesale.
    """
    if json_equal(base, new):
        return orig
    if isinstance(orig, dict) and isinstance(base, dict) and isinstance(new, dict):
        if not _same_kind(base, new):
            return new
        return _patch_object(orig, base, new)
    if isinstance(orig, list) and isinstance(base, list) and isinstance(new, list):
        return patch_array(orig, base, new, _as_is)
    return new


def _same_kind(base: JsonObject, new: JsonObject) -> bool:
    return all(json_equal(base.get(key), new.get(key)) for key in ("role", "type"))


def _patch_object(orig: JsonObject, base: JsonObject, new: JsonObject) -> JsonObject:
    out = dict(orig)
    for key, value in new.items():
        if key not in base:
            out[key] = value
        elif not json_equal(base[key], value):
            out[key] = patch_value(orig[key], base[key], value) if key in orig else value
    for key in base:
        if key not in new:
            out.pop(key, None)
    return out


def _as_is(item: JsonValue, original: JsonValue) -> JsonValue:
    return item


def patch_array(
    orig: Sequence[JsonValue], base: Sequence[JsonValue], new: Sequence[JsonValue], encode: ItemEncoder
) -> list[JsonValue]:
    """Patch an array: unchanged items keep their original form, edited and new ones are encoded.

    ``base``/``new`` are annotation items (provider items for nested arrays) and ``encode`` turns one
    into provider form. A single in-place edit is merged into its original; otherwise items are
    matched by value and the rest encoded fresh. Several edits at once cannot be lined up with the
    originals they replace, so, like the reference, that is refused rather than guessed.
    """
    if len(orig) != len(base):  # the original no longer lines up with its decode: keep nothing positional
        orig = [encode(item, None) for item in base]
    if len(base) == len(new):
        edited = [i for i, (b, n) in enumerate(zip(base, new, strict=True)) if not json_equal(b, n)]
        if len(edited) <= _SAME_SLOT_LIMIT:
            out = list(orig)
            for i in edited:
                out[i] = patch_value(orig[i], encode(base[i], orig[i]), encode(new[i], orig[i]))
            return out
    matches, unused = match_by_value(new, base, json_equal)
    # Fresh items are encoded in order before the refusal below, so an item's own error comes first.
    out = [encode(item, None) if index is None else orig[index] for item, index in zip(new, matches, strict=True)]
    if matches.count(None) > _SAME_SLOT_LIMIT and len(unused) > _SAME_SLOT_LIMIT:
        raise multiple_edits_error()
    return out


def patch_exact(body: JsonObject, new: JsonObject, base: JsonObject, keys: Sequence[str]) -> None:
    """Copy changed ``keys`` from ``new`` into ``body``; a key ``new`` lacks is removed.

    A baseline ``null`` the annotation no longer carries is left alone: the view may drop such nulls, and
    removing one changes nothing the provider sees.
    """
    for key in keys:
        if key in new:
            if key not in base or not json_equal(new[key], base[key]):
                body[key] = new[key]
        elif key in base and base[key] is not None:
            body.pop(key, None)


def patch_sampling(content: JsonObject, new: JsonObject, base: JsonObject) -> None:
    """Write edited ``temperature``/``top_p`` params (always floats on the wire)."""
    for key in ("temperature", "top_p"):
        if changed(new, base, key):
            set_or_drop(content, key, as_float(new.get(key)))


def patch_tools(content: JsonObject, annotation: JsonObject, baseline: JsonObject, encode: ItemEncoder) -> None:
    """Write edited ``tools``: item by item against the original array when there is one."""
    if not changed(annotation, baseline, "tools"):
        return
    new, base = annotation.get("tools"), baseline.get("tools")
    if not isinstance(new, list):
        content.pop("tools", None)
        return
    original = content.get("tools")
    if isinstance(original, list) and isinstance(base, list):
        content["tools"] = patch_array(original, base, new, encode)
    else:
        content["tools"] = [encode(tool, None) for tool in new]


def patch_tool_choice(
    content: JsonObject, annotation: JsonObject, baseline: JsonObject, provider: str, api: str, *, flat_function: bool
) -> None:
    """Write an edited ``tool_choice``, merged into the original directive so its unknown fields survive."""
    if not changed(annotation, baseline, "tool_choice"):
        return
    new = annotation.get("tool_choice")
    if new is None:
        content.pop("tool_choice", None)
        return
    encoded = encode_tool_choice(new, provider, api, flat_function=flat_function)
    base = baseline.get("tool_choice")
    if "tool_choice" in content and base is not None:
        base_encoded = encode_tool_choice(base, provider, api, flat_function=flat_function)
        encoded = patch_value(content["tool_choice"], base_encoded, encoded)
    content["tool_choice"] = encoded


# --- responses -----------------------------------------------------------------------------------------------------


def unknown_reason(raw: str) -> JsonObject:
    """A finish reason outside the normalised set, in the annotation's JSON form."""
    return {"unknown": raw}


def reported_cost(usage: JsonObject, shape: ResponseShape, *, allow_number: bool) -> JsonObject | None:
    """The provider-reported cost of a usage object: ``cost_usd`` alone when set, else ``cost``.

    ``cost`` is an object (amounts and pricing labels); with ``allow_number`` (Chat) also a bare total.
    """
    cost_usd = shape.f64(usage.get("cost_usd"))
    cost = usage.get("cost")
    if allow_number:
        cost = _chat_cost(cost, shape)
    elif cost is not None and not isinstance(cost, dict):
        shape.mismatch(cost, "struct RawUsageCost")
    elif cost is not None:
        cost = _cost_object(cost, shape)
    if cost_usd is not None:
        return _cost(cost_usd)
    return cost if isinstance(cost, dict) else None


def _chat_cost(cost: JsonValue, shape: ResponseShape) -> JsonValue:
    # Chat accepts a bare number or an object; anything else matches neither form.
    if cost is None:
        return None
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        return _cost(float(cost))
    try:
        if isinstance(cost, dict):
            return _cost_object(cost, shape)
    except InternalError:
        pass
    shape.fail("data did not match any variant of untagged enum RawChatUsageCost")


def _cost_object(cost: JsonObject, shape: ResponseShape) -> JsonObject | None:
    total, amounts, labels = cost_breakdown(cost, shape)
    if total is None:
        return None
    out = _cost(total, labels.pop("currency", None) or "USD")  # type: ignore[arg-type]  # checked: a string
    out.update(amounts)
    out.update(labels)
    return out


def _cost(total: float, currency: str = "USD") -> JsonObject:
    return {"total": total, "currency": currency, "source": "provider_reported"}
