"""OpenAI Chat Completions codec: ``/v1/chat/completions`` bodies to the annotated view and back.

The annotation keeps OpenAI's own message shapes (roles ``system``/``developer``/``user``/``assistant``/
``tool``/``function``, ``tool_calls``, typed content parts). Anything the view cannot hold exactly
becomes a ``provider_native`` component tagged ``openai_chat`` so that nothing is lost.

Encoding never rebuilds a body: it re-decodes the original (the baseline), compares, and patches only
what the annotation changed. The first half of this module holds the machinery both OpenAI codecs
share for that (typed field readers, the three-way patch, usage and cost mapping, error texts in the
reference's wording); ``openai_responses`` imports it from here.
"""

from __future__ import annotations

import json

from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.errors import InternalError, InvalidArgumentError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn

    from nemo_relay._core.annotated import AnnotatedLLMResponse
    from nemo_relay._core.types import JsonObject, JsonValue

    # Encodes one annotation item (message, tool) into its provider form; the second argument is the
    # original provider item it replaces, when there is one, so its shape can be followed.
    ItemEncoder = Callable[[JsonValue, JsonValue], JsonValue]

API = "OpenAI Chat"
PROVIDER = "openai_chat"
_U64_MAX = 2**64 - 1

# ======================================================================================================
# Shared by both OpenAI codecs
# ======================================================================================================

# --- JSON helpers ---------------------------------------------------------------------------------------


def json_equal(a: object, b: object) -> bool:
    """Structural JSON equality, with two differences from ``==``.

    ``true`` is kept apart from ``1``, and an object member holding ``null`` equals a missing one: the
    annotation view drops some nulls, and a null member tells a provider nothing a missing one does not.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and all(json_equal(a.get(key), b.get(key)) for key in a.keys() | b.keys())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(b, (dict, list)):
        return False
    return a == b


def parse_arguments(text: str) -> JsonValue:
    """Tool-call arguments as JSON when they parse, else the raw string (the reference does the same)."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)  # type: ignore[no-any-return]
    except ValueError:
        return text


def dump_arguments(arguments: JsonValue) -> str:
    """Tool-call arguments back to the string OpenAI expects: strings verbatim, values as compact JSON."""
    if isinstance(arguments, str):
        return arguments
    # Sorted keys: the reference serialises through an ordered map.
    return json.dumps(arguments, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(name)  # NaN / Infinity are not JSON


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:
        raise ValueError(text)
    return value


# --- reference-compatible error texts ---------------------------------------------------------------------


def serde_unexpected(value: object) -> str:
    """How the reference (serde) names an unexpected JSON value in its error texts."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{_float_text(value)}`"
    if isinstance(value, str):
        return f"string {_quoted(value)}"
    return "sequence" if isinstance(value, list) else "map"


def rust_debug(value: JsonValue) -> str:
    """A JSON value in the reference's debug notation (``Object {"a": Number(1)}``), used in error texts."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return f"Bool({'true' if value else 'false'})"
    if isinstance(value, (int, float)):
        return f"Number({_float_text(value) if isinstance(value, float) else value})"
    if isinstance(value, str):
        return f"String({_quoted(value)})"
    if isinstance(value, list):
        return "Array [" + ", ".join(rust_debug(item) for item in value) + "]"
    return "Object " + debug_map(value)


def debug_map(value: JsonObject) -> str:
    """A JSON object in debug notation, keys sorted like the reference's ordered map."""
    return "{" + ", ".join(f"{_quoted(key)}: {rust_debug(value[key])}" for key in sorted(value)) + "}"


def debug_opt_str(value: JsonValue) -> str:
    """An optional string field in debug notation: ``None`` or ``Some("x")``."""
    return "None" if value is None else f"Some({_quoted(str(value))})"


def debug_component(value: JsonObject) -> str:
    """A provider-native component in debug notation."""
    provider, kind = _quoted(str(value.get("provider"))), _quoted(str(value.get("kind")))
    return f"ProviderNative {{ provider: {provider}, kind: {kind}, value: {rust_debug(value.get('value'))} }}"


def debug_part(part: JsonObject) -> str:
    """A content part in debug notation, for "cannot be encoded" errors."""
    kind = part.get("type")
    if kind == "provider_native":
        return debug_component(part)
    extra = debug_map({k: v for k, v in part.items() if k not in _PART_FIELDS.get(str(kind), ("type",))})
    if kind == "text":
        return f"Text {{ text: {_quoted(str(part.get('text')))}, extra: {extra} }}"
    if kind == "refusal":
        return f"Refusal {{ refusal: {_quoted(str(part.get('refusal')))}, extra: {extra} }}"
    if kind == "tool_use":
        fields = f"id: {_quoted(str(part.get('id')))}, name: {_quoted(str(part.get('name')))}"
        return f"ToolUse {{ {fields}, input: {rust_debug(part.get('input'))}, extra: {extra} }}"
    if kind == "tool_result":
        is_error = part.get("is_error")
        flag = "None" if is_error is None else f"Some({'true' if is_error else 'false'})"
        fields = f"tool_use_id: {_quoted(str(part.get('tool_use_id')))}, content: {rust_debug(part.get('content'))}"
        return f"ToolResult {{ {fields}, is_error: {flag}, extra: {extra} }}"
    if kind in ("image", "audio", "file"):
        return f"{str(kind).capitalize()} {{ {kind}: {rust_debug(part.get(str(kind)))}, extra: {extra} }}"
    if kind == "image_url":
        image = part.get("image_url")
        image = image if isinstance(image, dict) else {}
        url = f"url: {_quoted(str(image.get('url')))}, detail: {debug_opt_str(image.get('detail'))}"
        return f"ImageUrl {{ image_url: OpenAiImageUrl {{ {url} }}, extra: {extra} }}"
    return rust_debug(part)


def debug_content(content: JsonValue) -> str:
    """Message content in debug notation: ``Text("...")`` or ``Parts([...])``."""
    if isinstance(content, list):
        return "Parts([" + ", ".join(debug_part(p) if isinstance(p, dict) else rust_debug(p) for p in content) + "])"
    return f"Text({_quoted(str(content))})"


def debug_message(message: JsonObject) -> str:
    """An annotation message in debug notation, for "cannot be encoded" errors."""
    role = message.get("role")
    if role == "provider_native":
        return debug_component(message)
    if role in ("tool_call", "tool_result"):
        return _debug_item(message, str(role))
    name, text = debug_opt_str(message.get("name")), message.get("content")
    if role == "tool":
        call_id = _quoted(str(message.get("tool_call_id")))
        return f"Tool {{ content: {debug_content(text)}, tool_call_id: {call_id} }}"
    if role == "function":
        return f"Function {{ content: {debug_opt_str(text)}, name: {_quoted(str(message.get('name')))} }}"
    if role == "assistant":
        shown = "None" if text is None else f"Some({debug_content(text)})"
        calls = _debug_tool_calls(message.get("tool_calls"))
        return f"Assistant {{ content: {shown}, tool_calls: {calls}, name: {name} }}"
    return f"{str(role).capitalize()} {{ content: {debug_content(text)}, name: {name} }}"


def _debug_item(message: JsonObject, role: str) -> str:
    extra = debug_map({k: v for k, v in message.items() if k not in _ITEM_FIELDS[role]})
    head = f"id: {debug_opt_str(message.get('id'))}, call_id: {_quoted(str(message.get('call_id')))}"
    if role == "tool_call":
        body = f"name: {_quoted(str(message.get('name')))}, arguments: {rust_debug(message.get('arguments'))}"
        return f"ToolCallItem {{ {head}, {body}, extra: {extra} }}"
    return f"ToolResultItem {{ {head}, output: {rust_debug(message.get('output'))}, extra: {extra} }}"


def _debug_tool_calls(calls: JsonValue) -> str:
    if not isinstance(calls, list):
        return "None"
    shown = []
    for call in calls:
        call = call if isinstance(call, dict) else {}
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name, arguments = _quoted(str(function.get("name"))), _quoted(str(function.get("arguments")))
        shown.append(
            f"ToolCall {{ id: {_quoted(str(call.get('id')))}, call_type: {_quoted(str(call.get('type', 'function')))}, "
            f"function: FunctionCall {{ name: {name}, arguments: {arguments} }} }}"
        )
    return "Some([" + ", ".join(shown) + "])"


# The fields each annotation item owns; the rest of an item is its flattened ``extra``.
_ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "tool_call": ("role", "id", "call_id", "name", "arguments"),
    "tool_result": ("role", "id", "call_id", "output"),
}
_PART_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("type", "text"),
    "refusal": ("type", "refusal"),
    "image_url": ("type", "image_url"),
    "image": ("type", "image"),
    "audio": ("type", "audio"),
    "file": ("type", "file"),
    "tool_use": ("type", "id", "name", "input"),
    "tool_result": ("type", "tool_use_id", "content", "is_error"),
}


def cannot_encode(what: str, debug: str, api: str) -> InvalidArgumentError:
    """The error for an annotation component the target API has no place for."""
    return InvalidArgumentError(f"{what} {debug} cannot be encoded for {api}")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _float_text(value: float) -> str:
    return repr(value).replace("e+", "e")


# --- typed optional fields of a request body -------------------------------------------------------------


class FieldReader:
    """Reads optional typed fields of one request body; a wrong type fails as ``<api> <field> must be ...``.

    ``null`` and a missing key both read as ``None``, matching how the reference treats them.
    """

    __slots__ = ("_api", "_body")

    def __init__(self, body: JsonObject, api: str) -> None:
        self._body = body
        self._api = api

    def fail(self, key: str, expected: str) -> NoReturn:
        """Raise the reference's error for ``key`` holding something other than ``expected``."""
        raise InvalidArgumentError(f"{self._api} {key} must be {expected} or null")

    def read(self, key: str, kind: str) -> JsonValue:
        """The value of ``key`` checked as ``kind`` (``string``, ``boolean``, ``number`` ...)."""
        return getattr(self, kind)(key)  # type: ignore[no-any-return]

    def string(self, key: str) -> str | None:
        """A string or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, str):
            return value
        self.fail(key, "a string")

    def boolean(self, key: str) -> bool | None:
        """A boolean or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.fail(key, "a boolean")

    def number(self, key: str) -> float | None:
        """A number (as a float, like the reference's f64) or ``None``."""
        value = self._body.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        self.fail(key, "a number")

    def uint(self, key: str) -> int | None:
        """A non-negative integer or ``None``."""
        value = self._body.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX:
            return value
        self.fail(key, "a non-negative integer")

    def integer(self, key: str) -> int | None:
        """An integer or ``None``."""
        value = self._body.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.fail(key, "an integer")

    def object(self, key: str) -> JsonObject | None:
        """An object or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.fail(key, "an object")

    def array(self, key: str) -> list[JsonValue] | None:
        """An array or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, list):
            return value
        self.fail(key, "an array")

    def raw(self, key: str) -> JsonValue:
        """Any value, ``null`` kept (fields the reference stores untyped)."""
        return self._body.get(key)


def provider_native(provider: str, kind: JsonValue, value: JsonValue, *, tag: str) -> JsonObject:
    """A provider-native component; ``tag`` is ``role`` for messages and ``type`` for parts and tools."""
    return {
        tag: "provider_native",
        "provider": provider,
        "kind": kind if isinstance(kind, str) else "unknown",
        "value": value,
    }


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


def function_definition(tool: JsonObject) -> tuple[JsonObject, JsonObject]:
    """Split an annotation function tool into its definition and the fields beside it."""
    definition = tool.get("function")
    beside = {key: value for key, value in tool.items() if key not in ("type", "function")}
    return (dict(definition) if isinstance(definition, dict) else {}), beside


def encode_native_tool(tool: JsonObject, provider: str, api: str) -> JsonValue:
    """A provider-native tool back in provider form; another provider's is an error."""
    if tool.get("provider") != provider:
        raise cannot_encode("tool", debug_component(tool), api)
    return tool.get("value")


# --- patching the original body ---------------------------------------------------------------------------

_SAME_SLOT_LIMIT = 1  # in-place edits we can line up with their originals without an identity


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
        changed = [i for i, (b, n) in enumerate(zip(base, new, strict=True)) if not json_equal(b, n)]
        if len(changed) <= _SAME_SLOT_LIMIT:
            out = list(orig)
            for i in changed:
                out[i] = patch_value(orig[i], encode(base[i], orig[i]), encode(new[i], orig[i]))
            return out
    return _rematch(orig, base, new, encode)


def _rematch(
    orig: Sequence[JsonValue], base: Sequence[JsonValue], new: Sequence[JsonValue], encode: ItemEncoder
) -> list[JsonValue]:
    used = [False] * len(base)
    out: list[JsonValue] = []
    unmatched = 0
    for item in new:
        index = next((j for j, b in enumerate(base) if not used[j] and json_equal(b, item)), None)
        if index is None:
            unmatched += 1
            out.append(encode(item, None))
        else:
            used[index] = True
            out.append(orig[index])
    if unmatched > _SAME_SLOT_LIMIT and used.count(False) > _SAME_SLOT_LIMIT:
        raise InvalidArgumentError(
            "cannot safely preserve provider fields for multiple edited array items without stable identities"
        )
    return out


def changed(annotation: JsonObject, baseline: JsonObject, key: str) -> bool:
    """Whether a first-class annotation field differs from the baseline (``None`` and absent are alike)."""
    return not json_equal(annotation.get(key), baseline.get(key))


def set_or_drop(body: JsonObject, key: str, value: JsonValue) -> None:
    """Write ``value`` under ``key``, or remove the key when the annotation cleared it."""
    if value is None:
        body.pop(key, None)
    else:
        body[key] = value


def patch_exact(body: JsonObject, new: JsonObject, base: JsonObject, keys: Sequence[str], *, nulls: bool) -> None:
    """Copy changed ``keys`` from ``new`` into ``body``; a key ``new`` lacks is removed.

    With ``nulls`` a ``null`` value counts as present (``extra`` keeps them, so removing one is an
    edit); without, a baseline ``null`` the annotation no longer carries is left alone, as the view
    may drop such nulls and removing one changes nothing the provider sees.
    """
    for key in keys:
        if key in new:
            if key not in base or not json_equal(new[key], base[key]):
                body[key] = new[key]
        elif key in base and (nulls or base[key] is not None):
            body.pop(key, None)


def extra_keys(annotation: JsonObject) -> list[str]:
    """The top-level keys of an annotation JSON that are its flattened ``extra``."""
    return [key for key in annotation if key not in ANNOTATION_FIELDS]


# The first-class fields of the annotation's JSON form; everything else at the top level is ``extra``.
ANNOTATION_FIELDS = frozenset(
    (
        "messages", "instructions", "model", "params", "tools", "tool_choice", "api_specific", "store",
        "previous_response_id", "truncation", "reasoning", "include", "user", "metadata", "service_tier",
        "parallel_tool_calls", "max_output_tokens", "max_tool_calls", "top_logprobs", "stream",
    )
)  # fmt: skip


def patch_extra(body: JsonObject, annotation: JsonObject, baseline: JsonObject) -> None:
    """Apply edits of the annotation's ``extra`` (unknown top-level provider fields)."""
    keys = dict.fromkeys(extra_keys(baseline) + extra_keys(annotation))
    patch_exact(body, annotation, baseline, list(keys), nulls=True)


def check_api(annotation: JsonObject, tag: str, api: str) -> JsonObject:
    """The annotation's ``api_specific`` object, refusing one that belongs to another API."""
    api_specific = annotation.get("api_specific")
    if api_specific is None:
        return {}
    if not isinstance(api_specific, dict) or api_specific.get("api") != tag:
        raise InvalidArgumentError(f"api_specific provider does not match {api}")
    return api_specific


# --- responses: usage, cost, finish reasons ----------------------------------------------------------------


class ResponseShape:
    """Checks a provider response the way the reference's typed decode does, with its error texts."""

    __slots__ = ("_api",)

    def __init__(self, api: str) -> None:
        self._api = api

    def fail(self, detail: str) -> NoReturn:
        """Raise the reference's response-decode error."""
        raise InternalError(f"{self._api} response decode: {detail}")

    def mismatch(self, value: JsonValue, expected: str) -> NoReturn:
        """Raise "invalid type: <value>, expected <expected>"."""
        self.fail(f"invalid type: {serde_unexpected(value)}, expected {expected}")

    def string(self, value: JsonValue) -> str | None:
        """A string or ``None``."""
        if value is None or isinstance(value, str):
            return value
        self.mismatch(value, "a string")

    def boolean(self, value: JsonValue) -> bool | None:
        """A boolean or ``None``."""
        if value is None or isinstance(value, bool):
            return value
        self.mismatch(value, "a boolean")

    def u64(self, value: JsonValue) -> int | None:
        """A token count: a non-negative integer or ``None``."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= _U64_MAX:
                return value
            self.fail(f"invalid value: integer `{value}`, expected u64")
        self.mismatch(value, "u64")

    def f64(self, value: JsonValue) -> float | None:
        """An amount: a number or ``None``."""
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        self.mismatch(value, "f64")

    def struct(self, value: JsonValue, name: str) -> JsonObject | None:
        """An object or ``None``."""
        if value is None or isinstance(value, dict):
            return value
        self.mismatch(value, f"struct {name}")

    def sequence(self, value: JsonValue) -> list[JsonValue] | None:
        """An array or ``None``."""
        if value is None or isinstance(value, list):
            return value
        self.mismatch(value, "a sequence")


_COST_AMOUNTS = ("input", "output", "cache_read", "cache_write")
_COST_LABELS = ("pricing_provider", "pricing_model", "pricing_as_of", "pricing_source")


def reported_cost(usage: JsonObject, shape: ResponseShape, *, allow_number: bool) -> JsonObject | None:
    """The provider-reported cost of a usage object: ``cost_usd`` first, then ``cost`` (number or object)."""
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
    amounts = {key: shape.f64(cost.get(key)) for key in ("total", *_COST_AMOUNTS)}
    labels = {key: shape.string(cost.get(key)) for key in ("currency", *_COST_LABELS)}
    total = amounts["total"]
    parts = [amounts[key] for key in _COST_AMOUNTS if amounts[key] is not None]
    if total is None and parts:
        total = sum(parts)  # type: ignore[arg-type]  # no total given: the parts add up to it
    if total is None:
        return None
    out = _cost(total, labels["currency"] or "USD")
    out.update({key: amounts[key] for key in _COST_AMOUNTS if amounts[key] is not None})
    out.update({key: labels[key] for key in _COST_LABELS if labels[key] is not None})
    return out


def _cost(total: float, currency: str = "USD") -> JsonObject:
    return {"total": total, "currency": currency, "source": "provider_reported"}


def usage_json(
    prompt: int | None, completion: int | None, total: int | None, cached: int | None, cost: JsonObject | None
) -> JsonObject:
    """The annotated usage object; OpenAI's prompt count already includes cached tokens, and it has no cache writes."""
    usage: JsonObject = {}
    for key, value in (("prompt_tokens", prompt), ("completion_tokens", completion), ("total_tokens", total)):
        if value is not None:
            usage[key] = value
    if cached is not None:
        usage["cache_read_tokens"] = cached
    if cost is not None:
        usage["cost"] = cost
    return usage


def unknown_reason(raw: str) -> JsonObject:
    """A finish reason outside the normalised set, in the annotation's JSON form."""
    return {"unknown": raw}


def decoded_tool_call(call_id: JsonValue, name: JsonValue, arguments: JsonValue) -> JsonObject:
    """One response tool call: ``{id, name, arguments}``, arguments parsed when they are JSON."""
    text = arguments if isinstance(arguments, str) else "{}"
    return {"id": call_id if isinstance(call_id, str) else "", "name": name, "arguments": parse_arguments(text)}


# ======================================================================================================
# OpenAI Chat Completions
# ======================================================================================================

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
_PLAIN_ROLES = frozenset(("system", "user", "developer", "assistant"))  # {"role", "content": str} maps 1:1
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

    def decode_json(self, content: JsonObject, headers: JsonObject) -> JsonObject:
        """The annotation JSON for a Chat Completions request body."""
        if "messages" not in content:
            raise InvalidArgumentError(f"{API} request is missing messages")
        raw_messages = content["messages"]
        if not isinstance(raw_messages, list):
            raise InvalidArgumentError(f"{API} messages must be an array")
        messages: list[JsonValue] = [_decode_message(message) for message in raw_messages]
        return _assemble_request(content, messages, _read_fields(content))

    def encode_json(self, annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonValue:
        """``content`` patched with the fields where ``annotation`` differs from ``baseline``."""
        new_api = check_api(annotation, PROVIDER, API)
        _check_foreign_fields(annotation, baseline, content)
        _patch_messages(content, annotation, baseline)
        if changed(annotation, baseline, "model"):
            set_or_drop(content, "model", annotation.get("model"))
        _patch_params(content, _params(annotation), _params(baseline))
        _patch_tools(content, annotation, baseline)
        _patch_tool_choice(content, annotation, baseline)
        for key in _FIRST_CLASS:
            if changed(annotation, baseline, key):
                set_or_drop(content, key, annotation.get(key))
        patch_exact(content, new_api, check_api(baseline, PROVIDER, API), _API_KEYS, nulls=False)
        patch_extra(content, annotation, baseline)
        return content

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode a ``chat.completion`` object into an ``AnnotatedLLMResponse``."""
        if not isinstance(response, dict):
            ResponseShape(API).mismatch(response, "struct RawChatCompletion")  # the reference's wording
        return super().decode_response(response)

    def decode_response_json(self, response: JsonObject) -> JsonObject:
        """The annotated-response JSON for a ``chat.completion`` object."""
        return _decode_response(response)

    def stream_aggregator(self) -> ChatStreamAggregator:
        """A fresh aggregator folding ``chat.completion.chunk`` objects into a ``chat.completion``."""
        return ChatStreamAggregator()


# --- request decode -------------------------------------------------------------------------------------


def _read_fields(content: JsonObject) -> dict[str, JsonValue]:
    reader = FieldReader(content, API)
    values: dict[str, JsonValue] = {}
    for key, kind, _ in _TOP_FIELDS:
        if key not in content:
            values[key] = None  # absent: nothing to check (most of the ~35 fields, most of the time)
        elif kind == "stop":
            values[key] = _read_stop(content.get(key))
        elif kind == "modalities":
            values[key] = _read_modalities(content.get(key))
        elif kind == "tools":
            values[key] = _read_tools(content)
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
            raise InvalidArgumentError(
                f"invalid {API} stop value: invalid type: {serde_unexpected(item)}, expected a string"
            )
    return list(stop)


def _read_modalities(modalities: JsonValue) -> list[JsonValue] | None:
    if modalities is None:
        return None
    if not isinstance(modalities, list):
        raise InvalidArgumentError(
            f"invalid {API} modalities: invalid type: {serde_unexpected(modalities)}, expected a sequence"
        )
    for item in modalities:
        if not isinstance(item, str):
            raise InvalidArgumentError(
                f"invalid {API} modalities: invalid type: {serde_unexpected(item)}, expected a string"
            )
    return list(modalities)


def _read_tools(content: JsonObject) -> list[JsonValue] | None:
    if "tools" not in content:
        return None
    tools = content["tools"]
    if not isinstance(tools, list):
        raise InvalidArgumentError(f"{API} tools must be an array")
    return [_decode_tool(tool) for tool in tools]


def _decode_tool(tool: JsonValue) -> JsonValue:
    if not isinstance(tool, dict):
        raise InvalidArgumentError(f"{API} tool must be an object")
    if tool.get("type") != "function":
        return provider_native(PROVIDER, tool.get("type"), tool, tag="type")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise InvalidArgumentError(f"{API} function tool is missing function")
    beside = {key: value for key, value in tool.items() if key not in ("type", "function")}
    return decode_function_tool(function, beside, API)


def _assemble_request(content: JsonObject, messages: list[JsonValue], values: dict[str, JsonValue]) -> JsonObject:
    out: JsonObject = {"messages": messages}
    if values["model"] is not None:
        out["model"] = values["model"]
    params = _decoded_params(values)
    if params:
        out["params"] = params
    if values["tools"] is not None:
        out["tools"] = values["tools"]
    if "tool_choice" in content:
        out["tool_choice"] = decode_tool_choice(content["tool_choice"], PROVIDER, flat_function=False)
    for key in _FIRST_CLASS:
        if values[key] is not None:
            out[key] = values[key]
    api_specific: JsonObject = {"api": PROVIDER}
    for key in _API_KEYS:
        # ``function_call`` is stored untyped, so an explicit null survives; the typed ones drop it.
        if values[key] is not None or (key == "function_call" and key in content):
            api_specific[key] = values[key]
    out["api_specific"] = api_specific
    out.update({key: value for key, value in content.items() if key not in _KNOWN_KEYS})
    return out


def _decoded_params(values: dict[str, JsonValue]) -> JsonObject:
    # ``max_completion_tokens`` supersedes the deprecated ``max_tokens`` when both are sent.
    max_tokens = values["max_completion_tokens"]
    candidates = {
        "temperature": values["temperature"],
        "max_tokens": max_tokens if max_tokens is not None else values["max_tokens"],
        "top_p": values["top_p"],
        "stop": values["stop"],
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
        return provider_native(PROVIDER, role, raw, tag="role")  # unknown fields: keep the message whole
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
        return provider_native(PROVIDER, "assistant", raw, tag="role")
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
    return provider_native(PROVIDER, kind, part, tag="type")


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
        _image_url_error(f"invalid type: {serde_unexpected(image)}, expected struct OpenAiImageUrl")
    if "url" not in image:
        _image_url_error("missing field `url`")
    kept: JsonObject = {}
    for key in ("url", "detail"):
        value = image.get(key)
        if isinstance(value, str):
            kept[key] = value  # other image_url fields are not in the view; encoding keeps them
        elif value is not None or key == "url":
            _image_url_error(f"invalid type: {serde_unexpected(value)}, expected a string")
    rest = {k: v for k, v in part.items() if k not in ("type", "image_url")}
    return {"type": "image_url", "image_url": kept, **rest}


def _image_url_error(detail: str) -> NoReturn:
    raise InvalidArgumentError(f"invalid {API} image_url: {detail}")


# --- request encode -------------------------------------------------------------------------------------


def _check_foreign_fields(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    for key in _FOREIGN_FIELDS:
        if not changed(annotation, baseline, key):
            continue
        if annotation.get(key) is not None:
            raise InvalidArgumentError(f"request contains fields that cannot be encoded for {API}")
        content.pop(key, None)  # it was an unknown body field carried in ``extra``; removing it drops it


def _patch_messages(content: JsonObject, annotation: JsonObject, baseline: JsonObject) -> None:
    new, base = _items(annotation, "messages"), _items(baseline, "messages")
    if json_equal(new, base):
        return
    original = content.get("messages")
    content["messages"] = patch_array(original if isinstance(original, list) else [], base, new, _encode_message)


def _items(annotation: JsonObject, key: str) -> list[JsonValue]:
    items = annotation.get(key)
    return items if isinstance(items, list) else []


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
    raise cannot_encode("message", debug_message(message), API)


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
    rest = {key: value for key, value in part.items() if key not in _PART_FIELDS.get(str(kind), ("type",))}
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
    raise cannot_encode("content part", debug_part(part), API)


def _params(annotation: JsonObject) -> JsonObject:
    params = annotation.get("params")
    return params if isinstance(params, dict) else {}


def _patch_params(content: JsonObject, new: JsonObject, base: JsonObject) -> None:
    for key in ("temperature", "top_p"):
        if changed(new, base, key):
            value = new.get(key)
            set_or_drop(content, key, float(value) if isinstance(value, int) and not isinstance(value, bool) else value)
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


def _patch_tools(content: JsonObject, annotation: JsonObject, baseline: JsonObject) -> None:
    if not changed(annotation, baseline, "tools"):
        return
    new, base = annotation.get("tools"), baseline.get("tools")
    if not isinstance(new, list):
        content.pop("tools", None)
        return
    original = content.get("tools")
    if isinstance(original, list) and isinstance(base, list):
        content["tools"] = patch_array(original, base, new, _encode_tool)
    else:
        content["tools"] = [_encode_tool(tool, None) for tool in new]


def _encode_tool(tool: JsonValue, original: JsonValue) -> JsonValue:
    if not isinstance(tool, dict):
        return tool
    if tool.get("type") == "provider_native":
        return encode_native_tool(tool, PROVIDER, API)
    definition, beside = function_definition(tool)
    return {"type": "function", "function": definition, **beside}


def _patch_tool_choice(content: JsonObject, annotation: JsonObject, baseline: JsonObject) -> None:
    if not changed(annotation, baseline, "tool_choice"):
        return
    new = annotation.get("tool_choice")
    if new is None:
        content.pop("tool_choice", None)
        return
    encoded = encode_tool_choice(new, PROVIDER, API, flat_function=False)
    base = baseline.get("tool_choice")
    if "tool_choice" in content and base is not None:
        base_encoded = encode_tool_choice(base, PROVIDER, API, flat_function=False)
        encoded = patch_value(content["tool_choice"], base_encoded, encoded)
    content["tool_choice"] = encoded


# --- response decode ------------------------------------------------------------------------------------

_RESPONSE_FIELDS = frozenset(("id", "model", "choices", "usage", "system_fingerprint", "service_tier"))


def _decode_response(response: JsonObject) -> JsonObject:
    shape = ResponseShape(API)
    out: JsonObject = {}
    for key in ("id", "model"):
        value = shape.string(response.get(key))
        if value is not None:
            out[key] = value
    api_specific: JsonObject = {"api": PROVIDER}
    for key in ("system_fingerprint", "service_tier"):
        value = shape.string(response.get(key))
        if value is not None:
            api_specific[key] = value
    choices = [_check_choice(choice, shape) for choice in shape.sequence(response.get("choices")) or []]
    if choices:
        _first_choice(choices[0], out, api_specific)
    usage = shape.struct(response.get("usage"), "RawChatUsage")
    if usage is not None:
        out["usage"] = _decode_usage(usage, shape)
    out["api_specific"] = api_specific
    out.update({key: value for key, value in response.items() if key not in _RESPONSE_FIELDS})
    return out


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
    return usage_json(prompt, completion, total, cached, cost)


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
