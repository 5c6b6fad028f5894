"""The serde-style reading behind the annotated views: inputs buffered as the reference buffers Python objects,
leaf deserialisers, structs and internally tagged enums, and serde's error wording (see ``annotated``).
"""

from __future__ import annotations

from _collections_abc import Mapping, Sequence
from operator import index as _index

from nemo_relay._core.codecs.rustfmt import float_display as _rust_float
from nemo_relay._core.codecs.rustfmt import printable_str as _rust_str
from nemo_relay._core.jsonconv import copy_json
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    # A deserialiser: (input already in content form, JSON mode?) -> normalised JSON value.
    _De: TypeAlias = Callable[[Any, bool], JsonValue]

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
_MAX_DEPTH = 256


class _DeError(Exception):
    """A validation failure whose text is the serde-style message (without the field prefix)."""


# --- message formatting --------------------------------------------------------------------------------


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
