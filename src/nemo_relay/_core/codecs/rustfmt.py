"""Error-text notation of the reference: Rust ``Debug`` output and serde's ``invalid type`` fragments.

The reference is written in Rust, and several of its error texts embed a value the way Rust prints it:
``Debug`` for annotation components (``message Tool { content: Text("x"), ... } cannot be encoded``) and
serde's wording for type mismatches (``invalid type: string "x", expected u64``). This module renders both.

The codecs were written separately and do not agree on the leaves of that notation: how a string is
quoted (which characters become ``\\u{..}`` escapes) and how a float is written (exponent form). Their
error texts must not change, so each leaf variant is kept as a function and each codec picks its pair in
a ``RustText``; the structure around the leaves (values, maps, parts, messages) exists once. The annotated
view uses ``printable_str`` and ``float_display`` for its own serde messages, so this module stays light
(no ``json`` import at load time).
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from nemo_relay._core.types import JsonObject, JsonValue

__all__ = [
    "RustText",
    "control_str",
    "debug_str",
    "float_debug",
    "float_display",
    "float_repr",
    "json_str",
    "printable_str",
]

# --- strings ---------------------------------------------------------------------------------------------------

# The escapes every variant shares; they differ only in which other characters become ``\u{..}``.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}


def _quoted(text: str, escaped: Callable[[str], bool]) -> str:
    out = ['"']
    for ch in text:
        plain = _ESCAPES.get(ch)
        if plain is not None:
            out.append(plain)
        elif escaped(ch):
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _not_printable(ch: str) -> bool:
    return not ch.isprintable()


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or code == 0x7F


def printable_str(text: str) -> str:
    """A Rust ``Debug`` string literal; characters Python deems unprintable become ``\\u{..}``."""
    return _quoted(text, _not_printable)


def debug_str(text: str) -> str:
    """A Rust ``Debug`` string literal that also escapes combining marks (Rust escapes grapheme extenders)."""
    import unicodedata  # error path only

    category = unicodedata.category
    return _quoted(text, lambda ch: not ch.isprintable() or category(ch) in ("Mn", "Me"))


def control_str(text: str) -> str:
    """A Rust ``Debug`` string literal that escapes only control characters (C0 and DEL)."""
    return _quoted(text, _is_control)


def json_str(text: str) -> str:
    """A string quoted as JSON (raw non-ASCII text), the OpenAI codecs' rendering of a Rust string."""
    import json  # error path only; the annotated view imports this module and must stay light

    return json.dumps(text, ensure_ascii=False)


# --- floats ----------------------------------------------------------------------------------------------------


def float_display(value: float) -> str:
    """A float as Rust ``Display`` prints it (never exponent form), with a decimal point as serde adds one."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" in text:
        sign = "-" if text.startswith("-") else ""
        mantissa, _, exponent = text.lstrip("-").partition("e")
        whole, _, fraction = mantissa.partition(".")
        digits = whole + fraction
        point = len(whole) + int(exponent)
        if point <= 0:
            text = f"{sign}0.{'0' * -point}{digits}"
        elif point >= len(digits):
            text = f"{sign}{digits}{'0' * (point - len(digits))}"
        else:
            text = f"{sign}{digits[:point]}.{digits[point:]}"
    if "." not in text:
        text += ".0"
    return text


def float_debug(value: float, *, decimal_at_minus_5: bool = False) -> str:
    """A float in exponent form where Python uses one, exponent written Rust's way (``1.5e-7``, ``1e+20``).

    ``decimal_at_minus_5`` writes ``1e-05`` as ``0.00001``: Python switches to exponent form one step earlier
    than the reference's float printer (the OCI codec's rendering).
    """
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = int(exponent)
    if power == -5 and decimal_at_minus_5:
        return format(value, ".20f").rstrip("0")
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def float_repr(value: float) -> str:
    """Python's ``repr`` with ``e+`` shortened to ``e`` (``1e20``, ``1.5e-07``): the OpenAI codecs' rendering."""
    return repr(value).replace("e+", "e")


# --- one notation ----------------------------------------------------------------------------------------------


# The fields each content part and Responses-style item owns; the rest of one is its flattened ``extra``.
PART_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("type", "text"),
    "refusal": ("type", "refusal"),
    "image_url": ("type", "image_url"),
    "image": ("type", "image"),
    "audio": ("type", "audio"),
    "file": ("type", "file"),
    "tool_use": ("type", "id", "name", "input"),
    "tool_result": ("type", "tool_use_id", "content", "is_error"),
}
ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "tool_call": ("role", "id", "call_id", "name", "arguments"),
    "tool_result": ("role", "id", "call_id", "output"),
}


class RustText:
    """Renders values in the reference's notation, with one codec's string quoting and float writing.

    ``quote`` renders a string literal, ``number`` a float. With ``fill_blank_call_type`` a tool call whose
    ``type`` is empty shows the default, ``function`` (the OCI codec's rendering). Annotation components are
    rendered as validated annotation JSON holds them.
    """

    __slots__ = ("_fill_blank_call_type", "_number", "_quote")

    def __init__(
        self, quote: Callable[[str], str], number: Callable[[float], str], *, fill_blank_call_type: bool = False
    ) -> None:
        self._quote = quote
        self._number = number
        self._fill_blank_call_type = fill_blank_call_type

    # --- serde ----------------------------------------------------------------------------------------------

    def unexpected(self, value: object) -> str:
        """How serde names an unexpected JSON value (``string "x"``, ``integer `1```, ``map`` ...)."""
        if value is None:
            return "null"
        if isinstance(value, bool):
            return f"boolean `{'true' if value else 'false'}`"
        if isinstance(value, int):
            return f"integer `{value}`"
        if isinstance(value, float):
            return f"floating point `{self._number(value)}`"
        if isinstance(value, str):
            return f"string {self._quote(value)}"
        return "sequence" if isinstance(value, list) else "map"

    def invalid_type(self, value: object, expected: str) -> str:
        """``invalid type: <value>, expected <expected>``."""
        return f"invalid type: {self.unexpected(value)}, expected {expected}"

    def error(self, value: object, expected: str) -> str:
        """serde's message for ``value`` read as ``expected`` (``invalid value`` for a negative u64)."""
        if type(value) is int and value < 0 and expected == "u64":
            return f"invalid value: integer `{value}`, expected u64"
        return self.invalid_type(value, expected)

    # --- Debug ----------------------------------------------------------------------------------------------

    def string(self, value: JsonValue) -> str:
        """A ``String`` field: ``"text"``."""
        return self._quote(str(value))

    def opt_string(self, value: JsonValue) -> str:
        """An ``Option<String>`` field: ``None`` or ``Some("text")``."""
        return "None" if value is None else f"Some({self._quote(str(value))})"

    def value(self, value: JsonValue) -> str:
        """A ``serde_json::Value``: ``Null``, ``Bool(..)``, ``Number(..)``, ``String(..)``, ``Array``, ``Object``."""
        if value is None:
            return "Null"
        if isinstance(value, bool):
            return f"Bool({'true' if value else 'false'})"
        if isinstance(value, int):
            return f"Number({value})"
        if isinstance(value, float):
            return f"Number({self._number(value)})"
        if isinstance(value, str):
            return f"String({self._quote(value)})"
        if isinstance(value, list):
            return "Array [" + ", ".join(self.value(item) for item in value) + "]"
        return "Object " + self.map(value)

    def map(self, value: JsonObject) -> str:
        """A ``serde_json::Map``, keys sorted like the reference's ordered map."""
        return "{" + ", ".join(f"{self._quote(key)}: {self.value(value[key])}" for key in sorted(value)) + "}"

    def _extra(self, component: JsonObject, owned: tuple[str, ...]) -> str:
        return self.map({key: value for key, value in component.items() if key not in owned})

    def native(self, component: JsonObject) -> str:
        """A provider-native component: ``ProviderNative { provider, kind, value }``."""
        return (
            f"ProviderNative {{ provider: {self.string(component.get('provider'))}, "
            f"kind: {self.string(component.get('kind'))}, value: {self.value(component.get('value'))} }}"
        )

    def part(self, part: JsonObject) -> str:
        """An annotation content part as the reference's ``ContentPart`` (``ProviderNative`` for any other)."""
        kind = part.get("type")
        owned = PART_FIELDS.get(kind) if isinstance(kind, str) else None
        if not isinstance(kind, str) or owned is None:
            return self.native(part)
        extra = self._extra(part, owned)
        if kind == "text" or kind == "refusal":
            return f"{kind.capitalize()} {{ {kind}: {self.string(part.get(kind))}, extra: {extra} }}"
        if kind == "image_url":
            image = part.get("image_url")
            image = image if isinstance(image, dict) else {}
            url = f"url: {self.string(image.get('url'))}, detail: {self.opt_string(image.get('detail'))}"
            return f"ImageUrl {{ image_url: OpenAiImageUrl {{ {url} }}, extra: {extra} }}"
        if kind == "tool_use":
            fields = f"id: {self.string(part.get('id'))}, name: {self.string(part.get('name'))}"
            return f"ToolUse {{ {fields}, input: {self.value(part.get('input'))}, extra: {extra} }}"
        if kind == "tool_result":
            flag = part.get("is_error")
            is_error = "None" if flag is None else f"Some({'true' if flag else 'false'})"
            fields = f"tool_use_id: {self.string(part.get('tool_use_id'))}, content: {self.value(part.get('content'))}"
            return f"ToolResult {{ {fields}, is_error: {is_error}, extra: {extra} }}"
        # image, audio, file: one free-form payload under the kind's own key.
        return f"{kind.capitalize()} {{ {kind}: {self.value(part.get(kind))}, extra: {extra} }}"

    def content(self, content: JsonValue) -> str:
        """``MessageContent``: ``Text("...")`` or ``Parts([...])``."""
        if isinstance(content, list):
            return "Parts([" + ", ".join(self.part(p) for p in content if isinstance(p, dict)) + "])"
        return f"Text({self.string(content)})"

    def tool_calls(self, calls: JsonValue) -> str:
        """An assistant's ``Option<Vec<ToolCall>>``: ``None`` or ``Some([ToolCall { .. }, ..])``."""
        if not isinstance(calls, list):
            return "None"
        shown = []
        for call in calls:
            call = call if isinstance(call, dict) else {}
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            call_type = call.get("type", "function")
            if not call_type and self._fill_blank_call_type:
                call_type = "function"
            shown.append(
                f"ToolCall {{ id: {self.string(call.get('id'))}, call_type: {self.string(call_type)}, "
                f"function: FunctionCall {{ name: {self.string(function.get('name'))}, "
                f"arguments: {self.string(function.get('arguments'))} }} }}"
            )
        return "Some([" + ", ".join(shown) + "])"

    def message(self, message: JsonObject) -> str:
        """An annotation message as the reference's ``Message`` (``ProviderNative`` for any other role)."""
        role = message.get("role")
        text = message.get("content")
        if role == "system" or role == "user" or role == "developer":
            name = self.opt_string(message.get("name"))
            return f"{role.capitalize()} {{ content: {self.content(text)}, name: {name} }}"
        if role == "assistant":
            shown = "None" if text is None else f"Some({self.content(text)})"
            calls, name = self.tool_calls(message.get("tool_calls")), self.opt_string(message.get("name"))
            return f"Assistant {{ content: {shown}, tool_calls: {calls}, name: {name} }}"
        if role == "tool":
            call_id = self.string(message.get("tool_call_id"))
            return f"Tool {{ content: {self.content(text)}, tool_call_id: {call_id} }}"
        if role == "function":
            return f"Function {{ content: {self.opt_string(text)}, name: {self.string(message.get('name'))} }}"
        if role == "tool_call" or role == "tool_result":
            extra = self._extra(message, ITEM_FIELDS[role])
            head = f"id: {self.opt_string(message.get('id'))}, call_id: {self.string(message.get('call_id'))}"
            if role == "tool_call":
                body = f"name: {self.string(message.get('name'))}, arguments: {self.value(message.get('arguments'))}"
                return f"ToolCallItem {{ {head}, {body}, extra: {extra} }}"
            return f"ToolResultItem {{ {head}, output: {self.value(message.get('output'))}, extra: {extra} }}"
        return self.native(message)

    def tool_choice(self, choice: JsonValue) -> str:
        """A ``ToolChoice``: ``Auto``/``None``/``Required``, ``Specific(..)`` or ``ProviderNative(..)``."""
        if isinstance(choice, str):
            return {"auto": "Auto", "none": "None", "required": "Required"}.get(choice) or self._quote(choice)
        if isinstance(choice, dict) and "provider" in choice:
            return (
                f"ProviderNative(ProviderNativeComponent {{ provider: {self.string(choice.get('provider'))}, "
                f"kind: {self.string(choice.get('kind'))}, value: {self.value(choice.get('value'))} }})"
            )
        choice = choice if isinstance(choice, dict) else {}
        function = choice.get("function")
        function = function if isinstance(function, dict) else {}
        return (
            f"Specific(ToolChoiceFunction {{ choice_type: {self.string(choice.get('type') or 'function')}, "
            f"function: ToolChoiceFunctionName {{ name: {self.string(function.get('name'))} }} }})"
        )
