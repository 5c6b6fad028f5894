"""Provider-neutral views of an LLM request and response: ``AnnotatedLLMRequest`` / ``AnnotatedLLMResponse``.

Codecs decode provider payloads into these views; request intercepts edit them; events record their JSON
form (``category_profile.annotated_request`` / ``annotated_response``). Each object stores its validated JSON
form and hands out copies, so mutating what a getter returned never changes the annotation.

Validation follows the reference's data model, which is a set of serde types. A few consequences that are
observable and therefore reproduced here:

* every JSON object produced has its keys sorted (the reference stores objects in ordered maps);
* errors are reported for the first offending entry in input order, then for missing fields in declaration
  order, with serde's wording (``missing field `x```, ``invalid type: integer `1`, expected a string`` ...);
* request inputs are read the way the reference reads Python objects (integer keys address fields by
  position, sequences fill structs positionally, ``None`` is a "unit value"); response inputs are first
  converted to JSON and then read as JSON (``None`` is "null").
"""

from __future__ import annotations

from _collections_abc import Mapping, Sequence
from operator import index as _index

from nemo_relay._core.errors import JsonConversionError
from nemo_relay._core.jsonconv import copy_json, to_json
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    # A deserialiser: (input already in content form, JSON mode?) -> normalised JSON value.
    _De: TypeAlias = Callable[[Any, bool], JsonValue]

__all__ = [
    "AnnotatedLLMRequest",
    "AnnotatedLLMResponse",
    "is_annotated_request",
    "is_annotated_response",
]

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
_MAX_DEPTH = 256
_MESSAGES_PREFIX = "invalid messages: each dict must include a 'role' key (user/system/assistant/tool): "
_INSTRUCTIONS_PREFIX = "invalid instructions: expected a string or content-part list: "
_API_SPECIFIC_CTOR_PREFIX = "invalid api_specific: expected a tagged request object: "


class _DeError(Exception):
    """A validation failure whose text is the serde-style message (without the field prefix)."""


# --- message formatting --------------------------------------------------------------------------------


def _rust_str(text: str) -> str:
    """``text`` as Rust's ``{:?}`` renders a string (used by serde messages and the reprs)."""
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
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    out.append('"')
    return "".join(out)


def _rust_float(value: float) -> str:
    """A float as serde prints it in messages: Rust ``Display`` (never exponent form) with a decimal point."""
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


def _unexpected(value: object, js: bool) -> str:
    """serde's description of an input value in ``invalid type`` messages."""
    kind = type(value)
    if kind is bool:
        return "boolean `true`" if value else "boolean `false`"
    if kind is int:
        return f"integer `{value}`"
    if kind is float:
        return f"floating point `{_rust_float(value)}`"  # type: ignore[arg-type]
    if kind is str:
        return f"string {_rust_str(value)}"  # type: ignore[arg-type]
    if kind is bytes:
        return "byte array"
    if value is None:
        return "null" if js else "unit value"
    if kind is dict:
        return "map"
    return "sequence"


def _invalid_type(value: object, expected: str, js: bool) -> _DeError:
    return _DeError(f"invalid type: {_unexpected(value, js)}, expected {expected}")


def _one_of(names: Sequence[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} or {quoted[1]}"
    return "one of " + ", ".join(quoted)


def _unknown_variant(name: str, names: Sequence[str]) -> _DeError:
    return _DeError(f"unknown variant `{name}`, expected {_one_of(names)}")


def _elements(count: int) -> str:
    return f"{count} element" if count == 1 else f"{count} elements"


def _describe(value: object) -> str:
    # Python-side type errors name None without "object", like the reference does.
    return "'None'" if value is None else f"'{type(value).__name__}' object"


# --- content: Python input as the reference buffers it --------------------------------------------------


def _buffer(value: Any, depth: int = 0) -> Any:
    """Copy a Python input into "content" form: plain dict/list/scalars, bytes kept, keys of any type kept.

    Raises the reference's conversion messages (unsupported types, integers outside 64 bits).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None or kind is float:
        return value
    if kind is int:
        if _MIN_INT <= value <= _MAX_INT:
            return value
        width = "u128" if value > 0 else "i128"
        raise _DeError(f"invalid type: integer `{value}` as {width}, expected any value")
    if depth >= _MAX_DEPTH:
        raise _DeError(f"payload nests deeper than {_MAX_DEPTH} levels; flatten it or pass a string")
    if kind is dict:
        return {_buffer_key(k, depth): _buffer(v, depth + 1) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_buffer(v, depth + 1) for v in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _buffer(int(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, bytearray):
        raise _DeError("unexpected type: 'bytearray' object is not an instance of 'bytes'")
    if isinstance(value, Mapping):
        return {_buffer_key(k, depth): _buffer(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (Sequence, set, frozenset)):
        return [_buffer(v, depth + 1) for v in value]
    raise _DeError(f"unsupported type {kind.__name__}")


def _buffer_key(key: Any, depth: int) -> Any:
    # A tuple key stays a tuple (hashable); it only ever shows up in messages, as a "sequence".
    return key if type(key) is tuple else _buffer(key, depth + 1)


def _is_sequence(value: object) -> bool:
    return isinstance(value, (Sequence, set, frozenset))


# --- leaf deserialisers ----------------------------------------------------------------------------------


def _de_str(c: Any, js: bool) -> JsonValue:
    if type(c) is str:
        return c
    if type(c) is bytes:
        try:
            return c.decode("utf-8")
        except UnicodeDecodeError:
            raise _DeError("invalid value: byte array, expected a string") from None
    raise _invalid_type(c, "a string", js)


def _de_bool(c: Any, js: bool) -> JsonValue:
    if type(c) is bool:
        return c
    raise _invalid_type(c, "a boolean", js)


def _de_u64(c: Any, js: bool) -> JsonValue:
    if type(c) is int:
        if c < 0:
            raise _DeError(f"invalid value: integer `{c}`, expected u64")
        return c
    raise _invalid_type(c, "u64", js)


def _de_i64(c: Any, js: bool) -> JsonValue:
    if type(c) is int:
        if c > 2**63 - 1:
            raise _DeError(f"invalid value: integer `{c}`, expected i64")
        return c
    raise _invalid_type(c, "i64", js)


def _de_f64(c: Any, js: bool) -> JsonValue:
    if type(c) is float:
        return c if c - c == 0.0 else None  # non-finite numbers serialise as null
    if type(c) is int:
        return float(c)
    raise _invalid_type(c, "f64", js)


def _de_any(c: Any, js: bool) -> JsonValue:
    """Any JSON value: a sorted-key deep copy; non-finite floats become null."""
    kind = type(c)
    if kind is str or kind is bool or kind is int or c is None:
        return c  # type: ignore[no-any-return]
    if kind is float:
        return c if c - c == 0.0 else None
    if kind is dict:
        out: dict[str, JsonValue] = {}
        for key, item in c.items():
            if type(key) is not str:
                # The first key is classified ("a string key"); later ones are read as plain strings.
                raise _invalid_type(key, "a string" if out else "a string key", js)
            out[key] = _de_any(item, js)
        return dict(sorted(out.items())) if len(out) > 1 else out
    if kind is list:
        return [_de_any(item, js) for item in c]
    if kind is bytes:
        raise _DeError("invalid type: byte array, expected any valid JSON value")
    raise _invalid_type(c, "any valid JSON value", js)


def _vec(inner: _De) -> _De:
    def de(c: Any, js: bool) -> JsonValue:
        if type(c) is not list:
            raise _invalid_type(c, "a sequence", js)
        return [inner(item, js) for item in c]

    return de


def _uuid(c: Any, js: bool) -> JsonValue:
    if type(c) is not str:
        raise _invalid_type(c, "a UUID string", js)
    text: str = c
    body = text
    if len(text) == 38 and text[0] == "{" and text[-1] == "}":
        body = text[1:-1]
    elif len(text) == 45 and text.startswith("urn:uuid:"):
        body = text[9:]
    hexdigits = "0123456789abcdefABCDEF"
    if len(body) == 32 and all(ch in hexdigits for ch in body):
        flat = body.lower()
    elif (
        len(body) == 36
        and [i for i, ch in enumerate(body) if ch == "-"] == [8, 13, 18, 23]
        and all(ch in hexdigits for ch in body.replace("-", ""))
    ):
        flat = body.replace("-", "").lower()
    else:
        raise _DeError(f"UUID parsing failed: {_uuid_error(text)}")
    return f"{flat[:8]}-{flat[8:12]}-{flat[12:16]}-{flat[16:20]}-{flat[20:]}"


def _uuid_error(text: str) -> str:
    # Mirrors the diagnosis the reference's UUID parser gives for a malformed string.
    full_length = len(text.encode("utf-8"))
    offset, simple = 0, True
    if len(text) >= 2 and text[0] == "{" and text[-1] == "}":
        text, offset, simple = text[1:-1], 1, False
    elif text.startswith("urn:uuid:"):
        text, offset, simple = text[9:], 9, False
    hyphens: list[int] = []
    position = 0
    for ch in text:
        if ch == "-":
            hyphens.append(position)
        elif not (ch.isascii() and ch in "0123456789abcdefABCDEF"):
            return (
                "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], "
                f"found `{ch}` at {position + offset + 1}"
            )
        position += len(ch.encode("utf-8"))
    if not hyphens and simple:
        return f"invalid length: expected length 32 for simple format, found {len(text.encode('utf-8'))}"
    if len(hyphens) != 4:
        return f"invalid group count: expected 5, found {len(hyphens) + 1}"
    starts, lengths = (0, 9, 14, 19, 24), (8, 4, 4, 4, 12)
    for group in range(4):
        if hyphens[group] != starts[group + 1] - 1:
            found = hyphens[group] - starts[group]
            return f"invalid group length in group {group}: expected {lengths[group]}, found {found}"
    # The reference measures the last group against the whole input, prefix and braces included.
    return f"invalid group length in group 4: expected 12, found {full_length - starts[4]}"


# --- structs and enums -----------------------------------------------------------------------------------

_REQ = 0  # required
_OPT = 1  # optional, omitted when absent
_NUL = 2  # optional, serialised as null when absent
_DEF = 3  # defaulted, always serialised
_DEF_SKIP_EMPTY = 4  # defaulted list, omitted when empty
_OPT_DEF = 5  # optional and defaulted: like _OPT, but may also be missing from a positional sequence


class _Field:
    __slots__ = ("name", "de", "kind", "default")

    def __init__(self, name: str, de: _De, kind: int = _REQ, default: JsonValue = None) -> None:
        self.name = name
        self.de = de
        self.kind = kind
        self.default = default


class _Struct:
    """A named record: fields by name (or by position), unknown keys ignored or, if ``flatten``, kept."""

    __slots__ = ("expecting", "fields", "by_name", "flatten", "default_all")

    def __init__(self, expecting: str, fields: list[_Field], flatten: bool = False, default_all: bool = False) -> None:
        self.expecting = expecting
        self.fields = fields
        self.by_name = {f.name: f for f in fields}
        self.flatten = flatten
        self.default_all = default_all

    def __call__(self, c: Any, js: bool, tag: tuple[str, str] | None = None) -> dict[str, JsonValue]:
        kind = type(c)
        if kind is dict:
            out = self._map(c, js)
        elif kind is list and not self.flatten:
            out = self._seq(c, js)
        else:
            raise _invalid_type(c, self.expecting, js)
        if tag is not None:
            out[tag[0]] = tag[1]
        return dict(sorted(out.items()))

    def _map(self, c: dict[Any, Any], js: bool) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        seen: set[str] = set()
        collected: list[tuple[Any, Any]] = []
        fields, by_name, flatten = self.fields, self.by_name, self.flatten
        # JSON input is read from an ordered map, so its entries are visited in key order.
        for key, value in sorted(c.items()) if js else c.items():
            kind = type(key)
            if kind is str:
                field = by_name.get(key)
            elif flatten:
                field = None
            elif kind is int:
                # Field identifiers also accept a position, as the reference does.
                field = fields[key] if 0 <= key < len(fields) else None
            elif kind is bytes:
                field = by_name.get(key.decode("utf-8", "replace"))
            else:
                raise _invalid_type(key, "field identifier", js)
            if field is None:
                if flatten:
                    collected.append((key, value))
                continue
            name = field.name
            if name in seen:
                raise _DeError(f"duplicate field `{name}`")
            seen.add(name)
            if value is None and (field.kind == _OPT or field.kind == _NUL or field.kind == _OPT_DEF):
                if field.kind == _NUL:
                    out[name] = None
                continue
            out[name] = field.de(value, js)
        if len(seen) < len(fields):
            for field in fields:
                if field.name in seen:
                    continue
                if field.kind == _REQ and not self.default_all:
                    raise _DeError(f"missing field `{field.name}`")
                self._absent(field, out)
        for key, value in collected:
            if type(key) is not str:
                raise _invalid_type(key, "a string", js)
            out[key] = _de_any(value, js)
        return out

    def _seq(self, c: list[Any], js: bool) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        count = len(self.fields)
        for index, field in enumerate(self.fields):
            if index >= len(c):
                if self.default_all or field.kind >= _DEF:
                    self._absent(field, out)
                    continue
                raise _DeError(f"invalid length {index}, expected {self.expecting} with {_elements(count)}")
            value = c[index]
            if value is None and (field.kind == _OPT or field.kind == _NUL or field.kind == _OPT_DEF):
                if field.kind == _NUL:
                    out[field.name] = None
                continue
            out[field.name] = field.de(value, js)
        if len(c) > count:
            if js:
                raise _DeError(f"invalid length {len(c)}, expected fewer elements in array")
            raise _DeError(f"invalid length {len(c)}, expected {_elements(count)} in sequence")
        return out

    @staticmethod
    def _absent(field: _Field, out: dict[str, JsonValue]) -> None:
        if field.kind == _NUL:
            out[field.name] = None
        elif field.kind == _DEF:
            out[field.name] = copy_json(field.default)


class _Tagged:
    """An internally tagged enum: the variant is named by the ``tag`` key (or the first sequence item)."""

    __slots__ = ("name", "tag", "variants", "names")

    def __init__(self, name: str, tag: str, variants: list[tuple[str, _Struct]]) -> None:
        self.name = name
        self.tag = tag
        self.variants = dict(variants)
        self.names = [n for n, _ in variants]

    def _variant(self, value: Any, js: bool) -> tuple[str, _Struct]:
        if type(value) is str:
            variant = self.variants.get(value)
            if variant is None:
                raise _unknown_variant(value, self.names)
            return value, variant
        if js:
            raise _invalid_type(value, "variant identifier", js)
        raise _DeError("dict keys must have type str")

    def __call__(self, c: Any, js: bool) -> JsonValue:
        kind = type(c)
        if kind is dict:
            variant = None
            rest: dict[Any, Any] = {}
            for key, value in c.items():
                if key == self.tag and type(key) is str:
                    variant = self._variant(value, js)
                else:
                    rest[key] = value
            if variant is None:
                raise _DeError(f"missing field `{self.tag}`")
            return variant[1](rest, js, (self.tag, variant[0]))
        if kind is list:
            if not c:
                raise _DeError(f"missing field `{self.tag}`")
            name, struct = self._variant(c[0], js)
            if struct.flatten:
                raise _invalid_type(c, struct.expecting, js)
            out = struct._seq(c[1:], js)
            out[self.tag] = name
            return dict(sorted(out.items()))
        raise _invalid_type(c, f"internally tagged enum {self.name}", js)

    def raw(self, value: Any) -> JsonValue:
        """Read a Python object: the tag is checked where it appears, other entries are buffered."""
        if isinstance(value, Mapping):
            variant = None
            rest: dict[Any, Any] = {}
            for key, item in value.items():
                if key == self.tag and isinstance(key, str):
                    variant = self._variant(str.__str__(item) if isinstance(item, str) else item, False)
                else:
                    rest[_buffer_key(key, 0)] = _buffer(item, 1)
            if variant is None:
                raise _DeError(f"missing field `{self.tag}`")
            return variant[1](rest, False, (self.tag, variant[0]))
        return self(_buffer(value), False)


def _unit_enum(expected: Sequence[str], newtype: str | None = None) -> _De:
    """A JSON-mode enum of unit variants (plus an optional string-carrying variant): ``"a"`` or ``{"a": null}``."""
    names = list(expected) + ([newtype] if newtype else [])

    def de(c: Any, js: bool) -> JsonValue:
        if type(c) is str:
            if c in expected:
                return c
            if c == newtype:
                raise _DeError("invalid type: unit variant, expected newtype variant")
            raise _unknown_variant(c, names)
        if type(c) is dict:
            if len(c) != 1:
                raise _DeError("invalid value: map, expected map with a single key")
            ((key, value),) = c.items()
            if key in expected:
                if value is not None:
                    raise _invalid_type(value, "unit", js)
                return key  # type: ignore[no-any-return]
            if key == newtype:
                return {key: _de_str(value, js)}
            raise _unknown_variant(key, names)
        raise _invalid_type(c, "string or map", js)

    return de


# --- request schema ---------------------------------------------------------------------------------------


def _flat(expecting: str, fields: list[_Field]) -> _Struct:
    return _Struct(expecting, fields, flatten=True)


_PARTS = _Tagged(
    "ContentPart",
    "type",
    [
        ("text", _flat("struct variant ContentPart::Text", [_Field("text", _de_str)])),
        (
            "image_url",
            _flat(
                "struct variant ContentPart::ImageUrl",
                [
                    _Field(
                        "image_url",
                        _Struct("struct ImageUrl", [_Field("url", _de_str), _Field("detail", _de_str, _OPT)]),
                    )
                ],
            ),
        ),
        ("image", _flat("struct variant ContentPart::Image", [_Field("image", _de_any)])),
        ("audio", _flat("struct variant ContentPart::Audio", [_Field("audio", _de_any)])),
        ("file", _flat("struct variant ContentPart::File", [_Field("file", _de_any)])),
        ("refusal", _flat("struct variant ContentPart::Refusal", [_Field("refusal", _de_str)])),
        (
            "tool_use",
            _flat(
                "struct variant ContentPart::ToolUse",
                [_Field("id", _de_str), _Field("name", _de_str), _Field("input", _de_any)],
            ),
        ),
        (
            "tool_result",
            _flat(
                "struct variant ContentPart::ToolResult",
                [_Field("tool_use_id", _de_str), _Field("content", _de_any), _Field("is_error", _de_bool, _OPT)],
            ),
        ),
        (
            "provider_native",
            _Struct(
                "struct variant ContentPart::ProviderNative",
                [_Field("provider", _de_str), _Field("kind", _de_str), _Field("value", _de_any)],
            ),
        ),
    ],
)

_CONTENT_MISMATCH = "data did not match any variant of untagged enum MessageContent"


def _de_content(c: Any, js: bool) -> JsonValue:
    """``MessageContent``: a string or a list of content parts; any mismatch gives one generic message."""
    if type(c) is str:
        return c
    if type(c) is list:
        try:
            return [_PARTS(part, js) for part in c]
        except _DeError:
            pass
    elif type(c) is bytes:
        try:
            return c.decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise _DeError(_CONTENT_MISMATCH)


_TOOL_CALL = _Struct(
    "struct ToolCall",
    [
        _Field("id", _de_str),
        _Field("type", _de_str),
        _Field("function", _Struct("struct FunctionCall", [_Field("name", _de_str), _Field("arguments", _de_str)])),
    ],
)


def _text_message(variant: str) -> _Struct:
    return _Struct(
        f"struct variant Message::{variant}", [_Field("content", _de_content), _Field("name", _de_str, _OPT)]
    )


def _native(expecting: str) -> _Struct:
    return _Struct(expecting, [_Field("provider", _de_str), _Field("kind", _de_str), _Field("value", _de_any)])


_MESSAGE = _Tagged(
    "Message",
    "role",
    [
        ("system", _text_message("System")),
        ("user", _text_message("User")),
        ("developer", _text_message("Developer")),
        (
            "assistant",
            _Struct(
                "struct variant Message::Assistant",
                [
                    _Field("content", _de_content, _OPT),
                    _Field("tool_calls", _vec(_TOOL_CALL), _OPT),
                    _Field("name", _de_str, _OPT),
                ],
            ),
        ),
        (
            "tool",
            _Struct("struct variant Message::Tool", [_Field("content", _de_content), _Field("tool_call_id", _de_str)]),
        ),
        (
            "function",
            _Struct("struct variant Message::Function", [_Field("content", _de_str, _NUL), _Field("name", _de_str)]),
        ),
        (
            "tool_call",
            _flat(
                "struct variant Message::ToolCallItem",
                [
                    _Field("id", _de_str, _OPT),
                    _Field("call_id", _de_str),
                    _Field("name", _de_str),
                    _Field("arguments", _de_any),
                ],
            ),
        ),
        (
            "tool_result",
            _flat(
                "struct variant Message::ToolResultItem",
                [_Field("id", _de_str, _OPT), _Field("call_id", _de_str), _Field("output", _de_any)],
            ),
        ),
        ("provider_native", _native("struct variant Message::ProviderNative")),
    ],
)

_TOOL = _Tagged(
    "ToolDefinition",
    "type",
    [
        (
            "function",
            _flat(
                "struct variant ToolDefinition::Function",
                [
                    _Field(
                        "function",
                        _flat(
                            "struct FunctionDefinition",
                            [
                                _Field("name", _de_str),
                                _Field("description", _de_str, _OPT),
                                _Field("parameters", _de_any, _OPT),
                                _Field("strict", _de_bool, _OPT),
                            ],
                        ),
                    )
                ],
            ),
        ),
        ("provider_native", _native("struct variant ToolDefinition::ProviderNative")),
    ],
)

_TOOL_CHOICE_MODES = ("auto", "none", "required")
_TOOL_CHOICE_FUNCTION = _Struct(
    "struct ToolChoiceFunction",
    [_Field("type", _de_str), _Field("function", _Struct("struct ToolChoiceFunctionName", [_Field("name", _de_str)]))],
)
_TOOL_CHOICE_NATIVE = _native("struct ToolChoiceProviderNative")


def _de_tool_choice(c: Any, js: bool) -> JsonValue:
    """``ToolChoice``: a mode string, a named function, or a provider-native directive (tried in that order)."""
    if type(c) is str and c in _TOOL_CHOICE_MODES:
        return c
    if type(c) is dict and len(c) == 1:
        ((key, value),) = c.items()
        if key in _TOOL_CHOICE_MODES and value is None:
            return key  # type: ignore[no-any-return]
    for struct in (_TOOL_CHOICE_FUNCTION, _TOOL_CHOICE_NATIVE):
        try:
            return struct(c, js)
        except _DeError:
            pass
    raise _DeError("data did not match any variant of untagged enum ToolChoice")


def _options(variant: str, fields: list[tuple[str, _De]]) -> _Struct:
    return _Struct(f"struct variant {variant}", [_Field(name, de, _OPT) for name, de in fields])


_STRS = _vec(_de_str)
_ANYS = _vec(_de_any)

_API_SPECIFIC_REQUEST = _Tagged(
    "ApiSpecificRequest",
    "api",
    [
        (
            "anthropic_messages",
            _options(
                "ApiSpecificRequest::AnthropicMessages",
                [
                    ("cache_control", _de_any),
                    ("container", _de_str),
                    ("inference_geo", _de_str),
                    ("output_config", _de_any),
                    ("thinking", _de_any),
                    ("top_k", _de_u64),
                    ("user_profile_id", _de_str),
                ],
            ),
        ),
        (
            "openai_chat",
            _options(
                "ApiSpecificRequest::OpenAIChat",
                [
                    ("audio", _de_any),
                    ("frequency_penalty", _de_f64),
                    ("function_call", _de_any),
                    ("functions", _ANYS),
                    ("logit_bias", _de_any),
                    ("logprobs", _de_bool),
                    ("modalities", _STRS),
                    ("moderation", _de_any),
                    ("n", _de_u64),
                    ("prediction", _de_any),
                    ("presence_penalty", _de_f64),
                    ("prompt_cache_key", _de_str),
                    ("prompt_cache_options", _de_any),
                    ("prompt_cache_retention", _de_str),
                    ("reasoning_effort", _de_str),
                    ("response_format", _de_any),
                    ("safety_identifier", _de_str),
                    ("seed", _de_i64),
                    ("stream_options", _de_any),
                    ("verbosity", _de_str),
                    ("web_search_options", _de_any),
                ],
            ),
        ),
        (
            "openai_responses",
            _options(
                "ApiSpecificRequest::OpenAIResponses",
                [
                    ("background", _de_bool),
                    ("context_management", _de_any),
                    ("conversation", _de_any),
                    ("moderation", _de_any),
                    ("prompt", _de_any),
                    ("prompt_cache_key", _de_str),
                    ("prompt_cache_options", _de_any),
                    ("prompt_cache_retention", _de_str),
                    ("safety_identifier", _de_str),
                    ("stream_options", _de_any),
                    ("text", _de_any),
                ],
            ),
        ),
        (
            "oci_genai",
            _options(
                "ApiSpecificRequest::OCIGenAI",
                [("compartment_id", _de_str), ("serving_mode", _de_any), ("api_format", _de_str)],
            ),
        ),
        (
            "custom",
            _Struct(
                "struct variant ApiSpecificRequest::Custom", [_Field("api_name", _de_str), _Field("data", _de_any)]
            ),
        ),
    ],
)


# --- response schema --------------------------------------------------------------------------------------

_FINISH_REASONS = ("complete", "length", "tool_use", "content_filter")
_de_finish_reason = _unit_enum(_FINISH_REASONS, "unknown")

_COST = _Struct(
    "struct CostEstimate",
    [
        _Field("total", _de_f64, _OPT),
        _Field("currency", _de_str, _DEF, "USD"),
        _Field("input", _de_f64, _OPT),
        _Field("output", _de_f64, _OPT),
        _Field("cache_read", _de_f64, _OPT),
        _Field("cache_write", _de_f64, _OPT),
        _Field("source", _unit_enum(("model_pricing", "provider_reported"))),
        _Field("pricing_provider", _de_str, _OPT),
        _Field("pricing_model", _de_str, _OPT),
        _Field("pricing_as_of", _de_str, _OPT),
        _Field("pricing_source", _de_str, _OPT),
    ],
)

_USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens")
_USAGE = _Struct(
    "struct Usage", [_Field(name, _de_u64, _OPT) for name in _USAGE_COUNTS] + [_Field("cost", _COST, _OPT)]
)

_RESPONSE_TOOL_CALL = _Struct(
    "struct ResponseToolCall", [_Field("id", _de_str), _Field("name", _de_str), _Field("arguments", _de_any)]
)

_OPTIMIZATION_MODEL = _Struct(
    "struct LlmOptimizationModel", [_Field("model", _de_str), _Field("provider", _de_str, _OPT_DEF)]
)
_OPTIMIZATION_TOKENS = _Struct(
    "struct LlmOptimizationTokens",
    [
        _Field(name, _de_u64, _OPT)
        for name in ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens")
    ],
    default_all=True,
)
_OPTIMIZATION_CONTRIBUTION = _flat(
    "struct LlmOptimizationContribution",
    [
        _Field("producer", _de_str),
        _Field("kind", _de_str),
        _Field("applied", _de_bool, _DEF, False),
        _Field("id", _uuid, _OPT),
    ],
)
_OPTIMIZATION_SUMMARY = _Struct(
    "struct LlmOptimizationSummary",
    [
        _Field("schema_version", _de_str),
        _Field("calculation_version", _de_str),
        _Field("status", _unit_enum(("complete", "partial"))),
        _Field("limitations", _STRS, _DEF_SKIP_EMPTY, []),
        _Field("baseline_model", _OPTIMIZATION_MODEL, _OPT_DEF),
        _Field("effective_model", _OPTIMIZATION_MODEL, _OPT_DEF),
        _Field("effective_usage", _USAGE, _OPT_DEF),
        _Field("baseline_usage", _USAGE, _OPT_DEF),
        _Field("tokens_saved", _OPTIMIZATION_TOKENS),
        _Field("baseline_cost", _COST, _OPT_DEF),
        _Field("actual_cost", _COST, _OPT_DEF),
        _Field("estimated_cost_saved", _de_f64, _OPT_DEF),
        _Field("currency", _de_str, _OPT_DEF),
        _Field("contributions", _vec(_OPTIMIZATION_CONTRIBUTION)),
    ],
)


def _de_optimization_summary(c: Any, js: bool) -> JsonValue:
    out = _OPTIMIZATION_SUMMARY(c, js)
    if out.get("limitations") == []:  # an empty list is omitted from the JSON form
        del out["limitations"]
    return out


_API_SPECIFIC_RESPONSE = _Tagged(
    "ApiSpecificResponse",
    "api",
    [
        (
            "openai_chat",
            _options(
                "ApiSpecificResponse::OpenAIChat",
                [("logprobs", _de_any), ("system_fingerprint", _de_str), ("service_tier", _de_str)],
            ),
        ),
        (
            "openai_responses",
            _options(
                "ApiSpecificResponse::OpenAIResponses",
                [
                    ("output_items", _ANYS),
                    ("status", _de_str),
                    ("incomplete_details", _de_any),
                    ("previous_response_id", _de_str),
                    ("store", _de_bool),
                    ("service_tier", _de_str),
                    ("truncation", _de_any),
                    ("reasoning", _de_any),
                    ("input_tokens_details", _de_any),
                    ("output_tokens_details", _de_any),
                ],
            ),
        ),
        (
            "anthropic_messages",
            _options(
                "ApiSpecificResponse::AnthropicMessages",
                [
                    ("object_type", _de_str),
                    ("role", _de_str),
                    ("stop_reason", _de_str),
                    ("stop_sequence", _de_str),
                    ("service_tier", _de_str),
                    ("container", _de_any),
                    ("content_blocks", _ANYS),
                ],
            ),
        ),
        (
            "oci_genai",
            _options("ApiSpecificResponse::OCIGenAI", [("api_format", _de_str), ("model_version", _de_str)]),
        ),
        ("gemini_generate_content", _flat("struct variant ApiSpecificResponse::GeminiGenerateContent", [])),
        (
            "custom",
            _Struct(
                "struct variant ApiSpecificResponse::Custom", [_Field("api_name", _de_str), _Field("data", _de_any)]
            ),
        ),
    ],
)


# --- Python-side scalar extraction (TypeError/OverflowError, as the reference's argument parsing) ------------


def _noted(error: Exception, argument: str) -> Exception:
    # The reference's argument parsing names the offending argument in a note (``value`` for setters).
    error.add_note(f"while processing '{argument}'")
    return error


def _py_str(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(f"{_describe(value)} is not an instance of 'str'")


def _py_bool(value: object) -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise TypeError(f"{_describe(value)} is not an instance of 'bool'")


def _py_u64(value: object) -> int | None:
    if value is None:
        return None
    number = _index(value)  # type: ignore[arg-type]  # TypeError "... cannot be interpreted as an integer"
    if number < 0:
        raise OverflowError("can't convert negative int to unsigned")
    if number > _MAX_INT:
        raise OverflowError("int too big to convert")
    return number


def _py_f64(value: object) -> float:
    # The reference reads floats as Python's float protocol does (ints and __float__/__index__ objects).
    if isinstance(value, (int, float)) or hasattr(type(value), "__float__") or hasattr(type(value), "__index__"):
        return float(value)  # type: ignore[arg-type]
    raise TypeError(f"must be real number, not {type(value).__name__}")


# --- request field readers (constructor, setters and _from_json share them) --------------------------------


def _read_messages(value: object, trusted: bool = False) -> list[JsonValue]:
    try:
        if trusted and type(value) is list:
            # Plain JSON needs no buffering: reading it directly reports the same errors.
            return [_MESSAGE(item, False) for item in value]
        if not _is_sequence(value):
            raise _DeError(f"unexpected type: {_describe(value)} is not an instance of 'Sequence'")
        return [_MESSAGE.raw(item) for item in value]  # type: ignore[attr-defined]
    except _DeError as exc:
        raise ValueError(f"{_MESSAGES_PREFIX}{exc}") from None


def _read_instructions(value: object) -> JsonValue:
    try:
        return _de_content(_buffer(value), False)
    except _DeError as exc:
        raise ValueError(f"{_INSTRUCTIONS_PREFIX}{exc}") from None


def _read_params(value: object) -> dict[str, JsonValue]:
    """``params`` (temperature, max_tokens, top_p, stop); unknown keys are dropped without inspection."""
    try:
        if not isinstance(value, Mapping):
            raise _DeError(f"unexpected type: {_describe(value)} is not an instance of 'Mapping'")
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _DeError("dict keys must have type str")
            if key not in ("temperature", "max_tokens", "top_p", "stop") or item is None:
                continue
            if key == "max_tokens":
                try:
                    out[key] = _py_u64(item)
                except (TypeError, OverflowError) as exc:
                    raise _DeError(f"{type(exc).__name__}: {exc}") from None
            elif key == "stop":
                # Any sequence is read item by item, so a bare string becomes its characters.
                if not _is_sequence(item):
                    raise _DeError(f"unexpected type: {_describe(item)} is not an instance of 'Sequence'")
                stops: list[JsonValue] = []
                for stop in item:
                    if not isinstance(stop, str):
                        raise _DeError(f"unexpected type: {_describe(stop)} is not an instance of 'str'")
                    stops.append(str.__str__(stop))
                out[key] = stops
            else:
                try:
                    number = _py_f64(item)
                except (TypeError, OverflowError) as exc:
                    raise _DeError(f"{type(exc).__name__}: {exc}") from None
                out[key] = number if number - number == 0.0 else None
        return dict(sorted(out.items()))
    except _DeError as exc:
        raise ValueError(f"invalid params: {exc}") from None


def _read_tools(value: object, trusted: bool = False) -> list[JsonValue]:
    try:
        if trusted and type(value) is list:
            return [_TOOL(item, False) for item in value]
        if not _is_sequence(value):
            raise _DeError(f"unexpected type: {_describe(value)} is not an instance of 'Sequence'")
        return [_TOOL.raw(item) for item in value]  # type: ignore[attr-defined]
    except _DeError as exc:
        raise ValueError(f"invalid tools: {exc}") from None


def _read_tool_choice(value: object) -> JsonValue:
    try:
        return _de_tool_choice(_buffer(value), False)
    except _DeError as exc:
        raise ValueError(f"invalid tool_choice: {exc}") from None


def _read_api_specific(value: object, prefix: str = "invalid api_specific: ") -> JsonValue:
    try:
        return _API_SPECIFIC_REQUEST.raw(value)
    except _DeError as exc:
        raise ValueError(f"{prefix}{exc}") from None


def _read_object(value: object, name: str) -> dict[str, JsonValue]:
    """A free-form JSON object (``extra``): sorted keys, conversion errors as the reference words them."""
    if not isinstance(value, Mapping):
        raise ValueError(f"invalid {name}: unexpected type: {_describe(value)} is not an instance of 'Mapping'")
    return _sorted_json(_to_json_or_raise(value, f"invalid {name}: "))  # type: ignore[return-value]


def _read_value(value: object, name: str) -> JsonValue:
    return _sorted_json(_to_json_or_raise(value, f"invalid {name}: "))


def _to_json_or_raise(value: object, prefix: str) -> JsonValue:
    try:
        return to_json(value)
    except JsonConversionError as exc:
        raise ValueError(f"{prefix}{exc.detail}") from None


def _sorted_json(value: JsonValue) -> JsonValue:
    """A copy of converted JSON with every object's keys sorted (the reference's canonical order)."""
    if type(value) is dict:
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if type(value) is list:
        return [_sorted_json(item) for item in value]
    return value


# Top-level request fields that the constructor does not take but properties and the JSON form carry.
_REQUEST_STR_FIELDS = ("previous_response_id", "user", "service_tier")
_REQUEST_BOOL_FIELDS = ("store", "parallel_tool_calls", "stream")
_REQUEST_U64_FIELDS = ("max_output_tokens", "max_tool_calls", "top_logprobs")
_REQUEST_VALUE_FIELDS = ("truncation", "reasoning", "include", "metadata")


def _read_request_field(name: str, value: object, trusted: bool = False) -> JsonValue:
    """Validate one top-level request field as its setter does (``value`` is not None).

    ``trusted`` marks plain JSON input (``_from_json``), which can skip the buffering copy.
    """
    if name == "messages":
        return _read_messages(value, trusted)
    if name == "instructions":
        return _read_instructions(value)
    if name == "model" or name in _REQUEST_STR_FIELDS:
        return _py_str(value)
    if name == "params":
        return _read_params(value)
    if name == "tools":
        return _read_tools(value, trusted)
    if name == "tool_choice":
        return _read_tool_choice(value)
    if name == "api_specific":
        return _read_api_specific(value)
    if name in _REQUEST_BOOL_FIELDS:
        return _py_bool(value)
    if name in _REQUEST_U64_FIELDS:
        return _py_u64(value)
    return _read_value(value, name)


_REQUEST_FIELDS = frozenset(
    (
        "messages",
        "instructions",
        "model",
        "params",
        "tools",
        "tool_choice",
        "api_specific",
        *_REQUEST_STR_FIELDS,
        *_REQUEST_BOOL_FIELDS,
        *_REQUEST_U64_FIELDS,
        *_REQUEST_VALUE_FIELDS,
    )
)


# --- text helpers ------------------------------------------------------------------------------------------


def _first_text(content: JsonValue) -> str | None:
    """The text of a string content, else of its first text part."""
    if type(content) is str:
        return content
    if type(content) is list:
        for part in content:
            if type(part) is dict and part.get("type") == "text":
                return part["text"]  # type: ignore[return-value]
    return None


def _rust_option(value: str | None) -> str:
    return "None" if value is None else f"Some({_rust_str(value)})"


# --- public classes ----------------------------------------------------------------------------------------


class AnnotatedLLMRequest:
    """Provider-neutral view of an LLM request, as produced by a codec and seen by request intercepts.

    Holds normalised ``messages`` plus optional ``instructions``, ``model``, ``params``, ``tools``,
    ``tool_choice``, tagged ``api_specific`` fields and unknown top-level ``extra`` fields. Getters return
    copies; assign a new value to change a field (assignments are validated like the constructor's arguments).
    """

    __slots__ = ("_data", "_extra", "_origin")

    _data: dict[str, JsonValue]
    _extra: dict[str, JsonValue]
    # (codec class, request content) when a built-in codec decoded this view and nothing was assigned since:
    # encoding it back into that same content is then the identity, which the codec can skip.
    _origin: tuple[type, JsonValue] | None

    def __new__(
        cls,
        messages: Sequence[Mapping[str, JsonValue]],
        *,
        instructions: str | Sequence[Mapping[str, JsonValue]] | None = None,
        model: str | None = None,
        params: Mapping[str, JsonValue] | None = None,
        tools: Sequence[Mapping[str, JsonValue]] | None = None,
        tool_choice: str | Mapping[str, JsonValue] | None = None,
        api_specific: Mapping[str, JsonValue] | None = None,
        extra: Mapping[str, JsonValue] | None = None,
    ) -> AnnotatedLLMRequest:
        """Build a request view; raises ``ValueError`` (``TypeError`` for ``model``) on invalid input."""
        # Same order of checks as the reference: typed arguments first, then the structured ones.
        data: dict[str, JsonValue] = {}
        try:
            model_name = _py_str(model)
        except TypeError as exc:
            raise _noted(exc, "model") from None
        data["messages"] = _read_messages(messages)
        if params is not None:
            data["params"] = _read_params(params)
        if instructions is not None:
            data["instructions"] = _read_instructions(instructions)
        if model_name is not None:
            data["model"] = model_name
        if tools is not None:
            data["tools"] = _read_tools(tools)
        if tool_choice is not None:
            data["tool_choice"] = _read_tool_choice(tool_choice)
        if api_specific is not None:
            data["api_specific"] = _read_api_specific(api_specific, _API_SPECIFIC_CTOR_PREFIX)
        self = object.__new__(cls)
        self._extra = {} if extra is None else _read_object(extra, "extra")
        self._data = data
        self._origin = None
        return self

    def __copy__(self) -> AnnotatedLLMRequest:
        clone = object.__new__(type(self))
        clone._data = copy_json(self._data)  # type: ignore[assignment]
        clone._extra = copy_json(self._extra)  # type: ignore[assignment]
        clone._origin = self._origin
        return clone

    def __deepcopy__(self, memo: dict[int, object]) -> AnnotatedLLMRequest:
        return self.__copy__()

    def _snapshot(self) -> AnnotatedLLMRequest:
        """A frozen-in-time view sharing this one's values: cheap, because values are never changed in place
        (getters copy, assignments replace), so later assignments to ``self`` cannot reach the snapshot."""
        clone = object.__new__(type(self))
        clone._data = dict(self._data)
        clone._extra = dict(self._extra)
        clone._origin = None
        return clone

    def _set(self, name: str, value: object) -> None:
        self._origin = None
        if value is None:
            if name == "messages":
                _read_messages(value)  # raises: messages cannot be cleared
            self._data.pop(name, None)
            return
        try:
            self._data[name] = _read_request_field(name, value)
        except (TypeError, OverflowError) as exc:
            raise _noted(exc, "value") from None

    @property
    def messages(self) -> list[dict[str, JsonValue]]:
        """Normalised messages: dicts tagged by ``role``."""
        return copy_json(self._data.get("messages"))  # type: ignore[return-value]

    @messages.setter
    def messages(self, value: Sequence[Mapping[str, JsonValue]]) -> None:
        self._set("messages", value)

    @property
    def instructions(self) -> str | list[dict[str, JsonValue]] | None:
        """Provider-level instructions: a string, a list of content parts, or None."""
        return copy_json(self._data.get("instructions"))  # type: ignore[return-value]

    @instructions.setter
    def instructions(self, value: str | Sequence[Mapping[str, JsonValue]] | None) -> None:
        self._set("instructions", value)

    @property
    def model(self) -> str | None:
        """Model name, if known."""
        return copy_json(self._data.get("model"))  # type: ignore[return-value]

    @model.setter
    def model(self, value: str | None) -> None:
        self._set("model", value)

    @property
    def params(self) -> dict[str, JsonValue] | None:
        """Generation parameters (``temperature``, ``max_tokens``, ``top_p``, ``stop``), if any."""
        return copy_json(self._data.get("params"))  # type: ignore[return-value]

    @params.setter
    def params(self, value: Mapping[str, JsonValue] | None) -> None:
        self._set("params", value)

    @property
    def tools(self) -> list[dict[str, JsonValue]] | None:
        """Tool declarations (``function`` or ``provider_native``), if any."""
        return copy_json(self._data.get("tools"))  # type: ignore[return-value]

    @tools.setter
    def tools(self, value: Sequence[Mapping[str, JsonValue]] | None) -> None:
        self._set("tools", value)

    @property
    def tool_choice(self) -> str | dict[str, JsonValue] | None:
        """Tool-selection directive: ``auto``/``none``/``required`` or a dict, if any."""
        return copy_json(self._data.get("tool_choice"))  # type: ignore[return-value]

    @tool_choice.setter
    def tool_choice(self, value: str | Mapping[str, JsonValue] | None) -> None:
        self._set("tool_choice", value)

    @property
    def api_specific(self) -> dict[str, JsonValue] | None:
        """Provider-specific request fields tagged by ``api``, if any."""
        return copy_json(self._data.get("api_specific"))  # type: ignore[return-value]

    @api_specific.setter
    def api_specific(self, value: Mapping[str, JsonValue] | None) -> None:
        self._set("api_specific", value)

    @property
    def store(self) -> bool | None:
        """Whether the provider should store the response, if set."""
        return copy_json(self._data.get("store"))  # type: ignore[return-value]

    @store.setter
    def store(self, value: bool | None) -> None:
        self._set("store", value)

    @property
    def previous_response_id(self) -> str | None:
        """Id of the previous response in a stateful conversation, if set."""
        return copy_json(self._data.get("previous_response_id"))  # type: ignore[return-value]

    @previous_response_id.setter
    def previous_response_id(self, value: str | None) -> None:
        self._set("previous_response_id", value)

    @property
    def truncation(self) -> JsonValue:
        """Truncation strategy (any JSON value), if set."""
        return copy_json(self._data.get("truncation"))

    @truncation.setter
    def truncation(self, value: JsonValue) -> None:
        self._set("truncation", value)

    @property
    def reasoning(self) -> JsonValue:
        """Reasoning configuration (any JSON value), if set."""
        return copy_json(self._data.get("reasoning"))

    @reasoning.setter
    def reasoning(self, value: JsonValue) -> None:
        self._set("reasoning", value)

    @property
    def include(self) -> JsonValue:
        """Additional outputs to include (any JSON value), if set."""
        return copy_json(self._data.get("include"))

    @include.setter
    def include(self, value: JsonValue) -> None:
        self._set("include", value)

    @property
    def user(self) -> str | None:
        """End-user identifier, if set."""
        return copy_json(self._data.get("user"))  # type: ignore[return-value]

    @user.setter
    def user(self, value: str | None) -> None:
        self._set("user", value)

    @property
    def metadata(self) -> JsonValue:
        """Request metadata (any JSON value), if set."""
        return copy_json(self._data.get("metadata"))

    @metadata.setter
    def metadata(self, value: JsonValue) -> None:
        self._set("metadata", value)

    @property
    def service_tier(self) -> str | None:
        """Service tier, if set."""
        return copy_json(self._data.get("service_tier"))  # type: ignore[return-value]

    @service_tier.setter
    def service_tier(self, value: str | None) -> None:
        self._set("service_tier", value)

    @property
    def parallel_tool_calls(self) -> bool | None:
        """Whether parallel tool calls are allowed, if set."""
        return copy_json(self._data.get("parallel_tool_calls"))  # type: ignore[return-value]

    @parallel_tool_calls.setter
    def parallel_tool_calls(self, value: bool | None) -> None:
        self._set("parallel_tool_calls", value)

    @property
    def max_output_tokens(self) -> int | None:
        """Output token limit, if set."""
        return copy_json(self._data.get("max_output_tokens"))  # type: ignore[return-value]

    @max_output_tokens.setter
    def max_output_tokens(self, value: int | None) -> None:
        self._set("max_output_tokens", value)

    @property
    def max_tool_calls(self) -> int | None:
        """Tool call limit, if set."""
        return copy_json(self._data.get("max_tool_calls"))  # type: ignore[return-value]

    @max_tool_calls.setter
    def max_tool_calls(self, value: int | None) -> None:
        self._set("max_tool_calls", value)

    @property
    def top_logprobs(self) -> int | None:
        """Number of most likely tokens to return log-probabilities for, if set."""
        return copy_json(self._data.get("top_logprobs"))  # type: ignore[return-value]

    @top_logprobs.setter
    def top_logprobs(self, value: int | None) -> None:
        self._set("top_logprobs", value)

    @property
    def stream(self) -> bool | None:
        """Whether the response is streamed, if set."""
        return copy_json(self._data.get("stream"))  # type: ignore[return-value]

    @stream.setter
    def stream(self, value: bool | None) -> None:
        self._set("stream", value)

    @property
    def extra(self) -> dict[str, JsonValue]:
        """Unknown top-level request fields (flattened into the JSON form)."""
        return copy_json(self._extra)  # type: ignore[return-value]

    @extra.setter
    def extra(self, value: Mapping[str, JsonValue]) -> None:
        self._extra = _read_object(value, "extra")
        self._origin = None

    def _messages(self) -> list[dict[str, JsonValue]]:
        return self._data["messages"]  # type: ignore[return-value]  # validated: a list of message dicts

    def system_prompt(self) -> str | None:
        """The first text of ``instructions``, else of the first system or developer message that has text."""
        text = _first_text(self._data.get("instructions"))
        if text is not None:
            return text
        for message in self._messages():
            if message.get("role") in ("system", "developer"):
                text = _first_text(message.get("content"))
                if text is not None:
                    return text
        return None

    def last_user_message(self) -> str | None:
        """The text of the last user message that has text."""
        for message in reversed(self._messages()):
            if message.get("role") == "user":
                text = _first_text(message.get("content"))
                if text is not None:
                    return text
        return None

    def has_tool_calls(self) -> bool:
        """Whether a message calls a tool: assistant ``tool_calls`` or ``tool_use`` parts, or a ``tool_call`` item."""
        for message in self._messages():
            role = message.get("role")
            if role == "tool_call":
                return True
            if role == "assistant":
                if message.get("tool_calls"):
                    return True
                content = message.get("content")
                if type(content) is list and any(
                    type(part) is dict and part.get("type") == "tool_use" for part in content
                ):
                    return True
        return False

    def __repr__(self) -> str:
        model = _py_str(self._data.get("model"))
        return f"<AnnotatedLLMRequest messages={len(self._messages())} model={_rust_option(model)}>"

    @classmethod
    def _from_json(cls, data: dict[str, JsonValue]) -> AnnotatedLLMRequest:
        """Build from the JSON form; unknown top-level keys become ``extra``. Raises ``ValueError``."""
        candidate: object = data  # stored events may hold any JSON value here
        if not isinstance(candidate, Mapping):
            detail = f"invalid type: {_unexpected(data, True)}, expected struct AnnotatedLlmRequest"
            raise ValueError(f"invalid annotated_request: {detail}")
        if "messages" not in data:
            raise ValueError("invalid annotated_request: missing field `messages`")
        fields: dict[str, JsonValue] = {}
        extra: dict[str, JsonValue] = {}
        for key, value in data.items():
            if key not in _REQUEST_FIELDS:
                extra[key] = value
            elif value is not None or key == "messages":
                try:
                    fields[key] = _read_request_field(key, value, True)
                except (TypeError, OverflowError) as exc:
                    raise ValueError(f"invalid {key}: {exc}") from None
        self = object.__new__(cls)
        self._data = fields
        self._extra = _read_object(extra, "extra")
        self._origin = None
        return self

    @classmethod
    def _from_codec(cls, data: dict[str, JsonValue], extra: dict[str, JsonValue] | None = None) -> AnnotatedLLMRequest:
        """Build from JSON a built-in codec produced: already in normal form, so it is not validated again.

        Unknown top-level keys of ``data`` become ``extra``; ``extra``, when given, is taken as is. The view may
        share values with ``data`` (the view never changes a value in place; getters copy).
        """
        fields: dict[str, JsonValue] = {}
        unknown: dict[str, JsonValue] = {}
        for key, value in data.items():
            if key not in _REQUEST_FIELDS:
                unknown[key] = value
            elif value is not None:
                fields[key] = value
        fields.setdefault("messages", [])
        self = object.__new__(cls)
        self._data = fields
        self._extra = unknown if extra is None else extra
        self._origin = None
        return self

    def _to_json(self) -> dict[str, JsonValue]:
        """The JSON form recorded on events: absent fields omitted, ``extra`` flattened in (it wins on clashes)."""
        merged = dict(self._data)
        merged.update(self._extra)
        return {key: copy_json(merged[key]) for key in sorted(merged)}


def _response_value(value: object, name: str, de: _De) -> JsonValue:
    """A response constructor argument: converted to JSON first, then read as JSON."""
    converted = _to_json_or_raise(value, f"invalid {name}: ValueError: Failed to convert to JSON: ")
    try:
        return de(converted, True)
    except _DeError as exc:
        raise ValueError(f"invalid {name}: {exc}") from None


_RESPONSE_FIELDS: dict[str, _De] = {
    "id": _de_str,
    "model": _de_str,
    "message": _de_content,
    "tool_calls": _vec(_RESPONSE_TOOL_CALL),
    "finish_reason": _de_finish_reason,
    "usage": _USAGE,
    "optimization_summary": _de_optimization_summary,
    "api_specific": _API_SPECIFIC_RESPONSE,
}


class AnnotatedLLMResponse:
    """Provider-neutral view of an LLM response, as produced by a response codec.

    Read-only: ``id``, ``model``, ``message`` (a string or content parts), ``tool_calls``
    (``{id, name, arguments}``), ``finish_reason``, ``usage``, ``optimization_summary``, ``api_specific``
    and unknown top-level ``extra`` fields. Getters return copies.
    """

    __slots__ = ("_data", "_extra")

    _data: dict[str, JsonValue]
    _extra: dict[str, JsonValue]

    def __new__(
        cls,
        id: str | None = None,
        model: str | None = None,
        message: JsonValue = None,
        tool_calls: Sequence[Mapping[str, JsonValue]] | None = None,
        finish_reason: str | Mapping[str, JsonValue] | None = None,
        usage: Mapping[str, JsonValue] | None = None,
        api_specific: Mapping[str, JsonValue] | None = None,
        extra: Mapping[str, JsonValue] | None = None,
    ) -> AnnotatedLLMResponse:
        """Build a response view; raises ``ValueError`` (``TypeError`` for ``id``/``model``) on invalid input.

        ``finish_reason`` accepts any string (``complete``/``length``/``tool_use``/``content_filter``, else
        it is kept as an unknown reason) or the JSON form (``"complete"``, ``{"unknown": "raw"}``).
        """
        data: dict[str, JsonValue] = {}
        try:
            response_id = _py_str(id)
        except TypeError as exc:
            raise _noted(exc, "id") from None
        try:
            model_name = _py_str(model)
        except TypeError as exc:
            raise _noted(exc, "model") from None
        if response_id is not None:
            data["id"] = response_id
        if model_name is not None:
            data["model"] = model_name
        if message is not None:
            data["message"] = _response_value(message, "message", _de_content)
        if tool_calls is not None:
            data["tool_calls"] = _response_value(tool_calls, "tool_calls", _RESPONSE_FIELDS["tool_calls"])
        if finish_reason is not None:
            if isinstance(finish_reason, str):
                reason = str.__str__(finish_reason)
                data["finish_reason"] = reason if reason in _FINISH_REASONS else {"unknown": reason}
            else:
                data["finish_reason"] = _response_value(finish_reason, "finish_reason", _de_finish_reason)
        if usage is not None:
            data["usage"] = _response_value(usage, "usage", _USAGE)
        if api_specific is not None:
            data["api_specific"] = _response_value(api_specific, "api_specific", _API_SPECIFIC_RESPONSE)
        self = object.__new__(cls)
        self._extra = {} if extra is None else _response_extra(extra)
        self._data = data
        return self

    @property
    def id(self) -> str | None:
        """Provider response id, if present."""
        return self._data.get("id")  # type: ignore[return-value]

    @property
    def model(self) -> str | None:
        """Model that served the response, if present."""
        return self._data.get("model")  # type: ignore[return-value]

    @property
    def message(self) -> JsonValue:
        """Primary assistant content: a string, a list of content parts, or None."""
        return copy_json(self._data.get("message"))

    @property
    def tool_calls(self) -> list[dict[str, JsonValue]] | None:
        """Tool calls requested by the model (``{id, name, arguments}``), if present."""
        return copy_json(self._data.get("tool_calls"))  # type: ignore[return-value]

    @property
    def finish_reason(self) -> str | None:
        """Normalised finish reason (``complete``/``length``/``tool_use``/``content_filter``) or the raw unknown one."""
        reason = self._data.get("finish_reason")
        if type(reason) is dict:
            return reason["unknown"]  # type: ignore[return-value]
        return reason  # type: ignore[return-value]

    @property
    def usage(self) -> dict[str, JsonValue] | None:
        """Token usage (prompt/completion/total and cache-read/cache-write token counts, ``cost``), if present."""
        return copy_json(self._data.get("usage"))  # type: ignore[return-value]

    @property
    def optimization_summary(self) -> dict[str, JsonValue] | None:
        """Close-time optimization accounting, if present."""
        return copy_json(self._data.get("optimization_summary"))  # type: ignore[return-value]

    @property
    def api_specific(self) -> dict[str, JsonValue] | None:
        """Provider-specific response fields tagged by ``api``, if present."""
        return copy_json(self._data.get("api_specific"))  # type: ignore[return-value]

    @property
    def extra(self) -> dict[str, JsonValue]:
        """Unknown top-level response fields (flattened into the JSON form)."""
        return copy_json(self._extra)  # type: ignore[return-value]

    def response_text(self) -> str | None:
        """The message text: the string itself, else the first text part."""
        return _first_text(self._data.get("message"))

    def has_tool_calls(self) -> bool:
        """Whether the response requests at least one tool call."""
        return bool(self._data.get("tool_calls"))

    def __repr__(self) -> str:
        return (
            f"<AnnotatedLLMResponse id={_rust_option(self._data.get('id'))} "  # type: ignore[arg-type]
            f"model={_rust_option(self._data.get('model'))}>"  # type: ignore[arg-type]
        )

    @classmethod
    def _from_json(cls, data: dict[str, JsonValue]) -> AnnotatedLLMResponse:
        """Build from the JSON form; unknown top-level keys become ``extra``.

        Raises ``ValueError("invalid annotated_response: ...")`` for the first problem in input order.
        """
        try:
            if type(data) is not dict:
                if not isinstance(data, Mapping):
                    raise _invalid_type(data, "struct AnnotatedLlmResponse", True)
                data = dict(data)
            fields: dict[str, JsonValue] = {}
            extra: dict[str, JsonValue] = {}
            # The reference reads the JSON object in key order, so the first error is the first by key.
            for key, value in sorted(data.items()):
                de = _RESPONSE_FIELDS.get(key)
                if de is None:
                    extra[key] = _de_any(value, True)
                elif value is not None:
                    fields[key] = de(value, True)
        except _DeError as exc:
            raise ValueError(f"invalid annotated_response: {exc}") from None
        self = object.__new__(cls)
        self._data = fields
        self._extra = dict(sorted(extra.items()))
        return self

    def _to_json(self) -> dict[str, JsonValue]:
        """The JSON form recorded on events: absent fields omitted, ``extra`` flattened in (it wins on clashes)."""
        merged = dict(self._data)
        merged.update(self._extra)
        return {key: copy_json(merged[key]) for key in sorted(merged)}


def _response_extra(value: object) -> dict[str, JsonValue]:
    converted = _to_json_or_raise(value, "invalid extra: ValueError: Failed to convert to JSON: ")
    if type(converted) is not dict:
        raise ValueError(f"invalid extra: {_invalid_type(converted, 'a map', True)}")
    return _sorted_json(converted)  # type: ignore[return-value]


def is_annotated_request(value: object) -> bool:
    """Whether ``value`` is an ``AnnotatedLLMRequest``."""
    return isinstance(value, AnnotatedLLMRequest)


def is_annotated_response(value: object) -> bool:
    """Whether ``value`` is an ``AnnotatedLLMResponse``."""
    return isinstance(value, AnnotatedLLMResponse)
