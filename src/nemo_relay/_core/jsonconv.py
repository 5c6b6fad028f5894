"""Eager JSON conversion of payloads: one type-dispatch walk that validates and copies.

The copy matters: events are delivered later on the dispatcher thread and must show the value as it
was at emission, whatever the caller mutates afterwards. Error texts follow the reference.
"""

from __future__ import annotations

import sys
from _collections_abc import Mapping, Sequence

from nemo_relay._core.errors import JsonConversionError
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
MAX_DEPTH = 256


def to_json(value: object) -> JsonValue:
    """Return a JSON-compatible copy of ``value`` or raise ``JsonConversionError`` (a ``ValueError``).

    Tuples, sets, sequences become lists; mappings and dataclass instances become dicts;
    non-finite floats become ``None``; cycles and unsupported types are refused.
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return value  # type: ignore[return-value]
    if t is int:
        if _MIN_INT <= value <= _MAX_INT:  # type: ignore[operator]
            return value  # type: ignore[return-value]
        raise JsonConversionError("JSON number out of range")
    if t is float:
        return value if value - value == 0.0 else None  # type: ignore[operator,return-value]
    if t is dict:
        # Fast path for the common flat object: string keys and plain leaves copy shallowly.
        for key, item in value.items():  # type: ignore[attr-defined]
            ti = type(item)
            if type(key) is not str or not (
                ti is str or ti is bool or item is None or (ti is int and _MIN_INT <= item <= _MAX_INT)
            ):
                return _convert(value, set(), 0)
        return value.copy()  # type: ignore[attr-defined,no-any-return]
    return _convert(value, set(), 0)


def _convert(value: Any, active: set[int], depth: int) -> JsonValue:
    t = type(value)
    if t is str or t is bool or value is None:
        return value  # type: ignore[no-any-return]
    if t is int:
        if _MIN_INT <= value <= _MAX_INT:
            return value  # type: ignore[no-any-return]
        raise JsonConversionError("JSON number out of range")
    if t is float:
        return value if value - value == 0.0 else None
    if t is dict or t is list or t is tuple:
        pass
    elif isinstance(value, str):
        return str.__str__(value)  # the string value, not an Enum's "Cls.MEMBER" text
    elif isinstance(value, bool):
        return bool(value)
    elif isinstance(value, int):
        return _convert(int(value), active, depth)
    elif isinstance(value, float):
        return _convert(float(value), active, depth)
    elif isinstance(value, bytes):
        raise JsonConversionError("invalid type: byte array, expected any valid JSON value")
    elif isinstance(value, bytearray):
        raise JsonConversionError("unexpected type: 'bytearray' object is not an instance of 'bytes'")
    elif not isinstance(value, (Mapping, Sequence, set, frozenset)) and not _is_dataclass(value):
        raise JsonConversionError(f"unsupported type {t.__name__}")

    if depth >= MAX_DEPTH:
        raise JsonConversionError(f"payload nests deeper than {MAX_DEPTH} levels; flatten it or pass a string")
    key = id(value)
    if key in active:
        raise JsonConversionError("circular reference detected")
    active.add(key)
    depth += 1
    try:
        if t is dict or isinstance(value, Mapping):
            out: dict[str, JsonValue] = {}
            for k, item in value.items():
                if type(k) is not str:
                    k = _key(k)
                # Plain leaves inline: most payloads are shallow, and a call per leaf dominates.
                ti = type(item)
                if ti is str or ti is bool or item is None or (ti is int and _MIN_INT <= item <= _MAX_INT):
                    out[k] = item
                else:
                    out[k] = _convert(item, active, depth)
            return out
        if t is list or t is tuple or isinstance(value, (Sequence, set, frozenset)):
            items: list[JsonValue] = []
            for item in value:
                ti = type(item)
                if ti is str or ti is bool or item is None or (ti is int and _MIN_INT <= item <= _MAX_INT):
                    items.append(item)
                else:
                    items.append(_convert(item, active, depth))
            return items
        fields = sys.modules["dataclasses"].fields(value)
        return {f.name: _convert(getattr(value, f.name), active, depth) for f in fields}
    finally:
        active.discard(key)


def _key(key: object) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if key is None:
        raise JsonConversionError("unexpected type: 'None' is not an instance of 'str'")
    raise JsonConversionError(f"unexpected type: '{type(key).__name__}' object is not an instance of 'str'")


def _is_dataclass(value: object) -> bool:
    # A dataclass instance implies the dataclasses module is loaded; we never import it ourselves.
    return hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type)


def copy_sorted(value: JsonValue) -> JsonValue:
    """Deep copy of an already-converted JSON value with every object's keys in sorted order.

    What events hand to their readers: the reference's JSON maps are ordered by key, so ``event.data`` and
    ``to_dict()`` list keys the same way there (its ``to_json()`` text is sorted too).
    """
    t = type(value)
    if t is dict:
        return {
            key: copy_sorted(item) if type(item) is dict or type(item) is list else item
            for key, item in sorted(value.items())  # type: ignore[union-attr]
        }
    if t is list:
        return [copy_sorted(item) if type(item) is dict or type(item) is list else item for item in value]  # type: ignore[union-attr]
    return value


def copy_json(value: JsonValue) -> JsonValue:
    """Deep copy of an already-converted JSON value (containers only; leaves are immutable)."""
    t = type(value)
    if t is dict:
        for item in value.values():  # type: ignore[union-attr]
            if type(item) is dict or type(item) is list:
                return {k: copy_json(v) for k, v in value.items()}  # type: ignore[union-attr]
        return value.copy()  # type: ignore[union-attr]  # flat: a shallow copy is a deep one
    if t is list:
        for item in value:  # type: ignore[union-attr]
            if type(item) is dict or type(item) is list:
                return [copy_json(v) for v in value]  # type: ignore[union-attr]
        return value.copy()  # type: ignore[union-attr]
    return value


# --- payloads on the managed hot path ------------------------------------------------------------------
#
# A managed call validates its arguments and result synchronously, but does not copy what is already
# plain JSON: the callback and the caller keep working with their own objects. Events need a snapshot
# taken at emission; small payloads are copied, larger ones are frozen with ``marshal`` (a C-speed
# deep copy) and thawed only when someone reads them.

FREEZE_ABOVE = 48  # containers + items above which a snapshot is frozen rather than copied


def plain_size(value: object) -> int:
    """Size (containers + items) of ``value`` if it is already plain JSON with exact types, else -1.

    Plain means: dicts with ``str`` keys, lists, strings, booleans, None, ints in range and finite
    floats, nested at most ``MAX_DEPTH`` deep (which also stops at cycles).
    """
    t = type(value)
    if t is not dict and t is not list:
        if t is str or t is bool or value is None or (t is int and _MIN_INT <= value <= _MAX_INT):  # type: ignore[operator]
            return 1
        if t is float:
            return 1 if value - value == 0.0 else -1  # type: ignore[operator]
        return -1
    # One level at a time, without a call per container: a 10 KiB payload has hundreds of them, and
    # this walk is most of what a large argument costs a managed call. The item checks are written out
    # twice (dict, list) for the same reason.
    size = 1
    level: list[object] = [value]
    for _ in range(MAX_DEPTH):
        deeper: list[object] = []
        push = deeper.append
        for container in level:
            size += len(container)  # type: ignore[arg-type]
            if type(container) is dict:
                for key, item in container.items():
                    if type(key) is not str:
                        return -1
                    ti = type(item)
                    if ti is str or ti is bool or item is None:
                        continue
                    if ti is dict or ti is list:
                        push(item)
                        continue
                    if ti is int:
                        if _MIN_INT <= item <= _MAX_INT:
                            continue
                    elif ti is float and item - item == 0.0:
                        continue
                    return -1
            else:
                for item in container:  # type: ignore[attr-defined]
                    ti = type(item)
                    if ti is str or ti is bool or item is None:
                        continue
                    if ti is dict or ti is list:
                        push(item)
                        continue
                    if ti is int:
                        if _MIN_INT <= item <= _MAX_INT:
                            continue
                    elif ti is float and item - item == 0.0:
                        continue
                    return -1
        if not deeper:
            return size
        level = deeper
    return -1


def own(value: object) -> tuple[JsonValue, JsonValue | Frozen]:
    """Validate ``value`` and return two independent copies: one for callbacks, one for the event.

    The caller keeps its own object untouched. Large plain payloads are copied through one ``Frozen``
    blob, which also serves as the event's snapshot, so a 10 KiB argument costs one validation walk and
    one C-speed round trip.
    """
    if type(value) is dict and len(value) < FREEZE_ABOVE:
        # The common small flat object: validate in one pass, copy at C speed.
        for key, item in value.items():
            ti = type(item)
            if type(key) is not str or not (
                ti is str or ti is bool or item is None or (ti is int and _MIN_INT <= item <= _MAX_INT)
            ):
                break
        else:
            return value.copy(), value.copy()
    size = plain_size(value)
    if size < 0:
        private = to_json(value)  # converted: already a private copy
        return private, freeze(private, plain_size(private))
    if size <= FREEZE_ABOVE:
        return copy_json(value), copy_json(value)  # type: ignore[arg-type]
    frozen = Frozen(value)  # type: ignore[arg-type]
    return frozen.thaw(), frozen


class Frozen:
    """An immutable snapshot of a large JSON payload; ``thaw()`` returns a fresh copy."""

    __slots__ = ("blob",)

    def __init__(self, value: JsonValue) -> None:
        import marshal  # deferred: only large payloads need it

        self.blob = marshal.dumps(value)

    def thaw(self) -> JsonValue:
        """A new deep copy of the payload."""
        import marshal

        return marshal.loads(self.blob)  # type: ignore[no-any-return]


def freeze(value: JsonValue, size: int) -> JsonValue | Frozen:
    """A snapshot of ``value`` for an event: a copy when small, a ``Frozen`` blob when large."""
    if size <= FREEZE_ABOVE:
        return copy_json(value)
    return Frozen(value)


def thaw(value: JsonValue | Frozen) -> JsonValue:
    """A fresh copy of an event payload (frozen or not)."""
    if type(value) is Frozen:
        return value.thaw()
    return copy_json(value)  # type: ignore[arg-type]


def peek(value: JsonValue | Frozen) -> JsonValue:
    """The payload value for reading only (no copy unless it is frozen)."""
    if type(value) is Frozen:
        return value.thaw()
    return value  # type: ignore[return-value]
