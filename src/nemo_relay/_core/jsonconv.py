"""Eager JSON conversion of payloads: one type-dispatch walk that validates and copies.

The copy matters: events are delivered later on the dispatcher thread and must show the value as it
was at emission, whatever the caller mutates afterwards. Error texts follow the reference.
"""

from __future__ import annotations

import gc
import marshal
import sys
from _collections_abc import Mapping, Sequence

from nemo_relay._core.errors import JsonConversionError
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from array import array
    from typing import Any

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
MAX_DEPTH = 256
FREEZE_ABOVE = 48  # containers + items above which a snapshot is frozen rather than copied
COPY_UP_TO = 16  # ... above which ``own`` copies with ``marshal`` first and checks the copy (see there)
# ``to_json`` tries the same for a value with a dict or list of at least BATCH_FROM items in its top two levels,
# and for such a dict or list down to BATCH_DEPTH; the bound keeps the cost of a failed try (a tuple deep
# inside) to a few copies.
BATCH_FROM = 32
BATCH_DEPTH = 3


def to_json(value: object) -> JsonValue:
    """Return a JSON-compatible copy of ``value`` or raise ``JsonConversionError`` (a ``ValueError``).

    Tuples, sets, sequences become lists; mappings and dataclass instances become dicts;
    non-finite floats become ``None``; cycles and unsupported types are refused. A large part that is
    plain JSON already is copied with ``marshal`` and checked in batches (see ``own``).
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
                break
        else:
            return value.copy()  # type: ignore[attr-defined,no-any-return]
    if (t is dict or t is list) and _has_large_part(value):  # type: ignore[arg-type]
        copied = _marshal_copy(value)  # a conversation, rows: try the C-speed copy of the whole value
        if copied is not None:
            return copied[0]
    return _convert(value, set(), 0)


def _has_large_part(value: dict[str, Any] | list[Any]) -> bool:
    if len(value) >= BATCH_FROM:
        return True
    for item in value.values() if type(value) is dict else value:
        if (type(item) is list or type(item) is dict) and len(item) >= BATCH_FROM:
            return True
    return False


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
    if 1 < depth < BATCH_DEPTH and (t is dict or t is list) and len(value) >= BATCH_FROM:
        copied = _marshal_copy(value)  # a large part deeper down: ``to_json`` tried the top levels already
        if copied is not None:
            return copied[0]
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


def plain_size(value: object) -> int:
    """Size (containers + items) of ``value`` if it is already plain JSON with exact types, else -1.

    Plain means: dicts with ``str`` keys, lists, strings, booleans, None, ints in range and finite
    floats, nested at most ``MAX_DEPTH`` deep (which also stops at cycles).
    """
    return _plain_size(value, 1 << 62)


def bounded_size(value: object) -> int:
    """``plain_size`` for small values; ``FREEZE_ABOVE + 1`` as soon as the count passes ``FREEZE_ABOVE``.

    What the snapshot choice needs, at a cost bounded by ``FREEZE_ABOVE`` items. -1 means a non-plain
    item among those counted; the rest of a large value is not checked.
    """
    return _plain_size(value, FREEZE_ABOVE)


def _plain_size(value: object, limit: int) -> int:
    t = type(value)
    if t is not dict and t is not list:
        if t is str or t is bool or value is None or (t is int and _MIN_INT <= value <= _MAX_INT):  # type: ignore[operator]
            return 1
        if t is float:
            return 1 if value - value == 0.0 else -1  # type: ignore[operator]
        return -1
    # One level at a time; a dict's items are checked inline (with its keys), a list's by ``_items_plain``.
    size = 1
    level: list[object] = [value]
    for _ in range(MAX_DEPTH):
        deeper: list[object] = []
        push = deeper.append
        for container in level:
            size += len(container)  # type: ignore[arg-type]
            if size > limit:
                return limit + 1
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
            elif _items_plain(container, deeper) < 0:  # type: ignore[arg-type]
                return -1
        if not deeper:
            return size
        level = deeper
    return -1


def own(value: object) -> tuple[JsonValue, JsonValue | Frozen]:
    """Validate ``value`` and return two independent copies: one for callbacks, one for the event.

    The caller keeps its own object untouched. Past ``COPY_UP_TO`` items the value is frozen before it is
    checked: the ``marshal`` blob is the event's snapshot, its thawed copy goes to the callbacks, and the
    check runs on that copy (``_loaded_plain``). A 10 KiB argument costs one C-speed round trip and a
    batched check.
    """
    size = 0
    if type(value) is dict and len(value) < FREEZE_ABOVE:
        # The common small flat object: validate in one pass, copy at C speed.
        for key, item in value.items():
            ti = type(item)
            if type(key) is not str or not (
                ti is str or ti is bool or item is None or (ti is int and _MIN_INT <= item <= _MAX_INT)
            ):
                if (ti is list or ti is dict) and len(item) > COPY_UP_TO:
                    size = COPY_UP_TO + 1  # large: no need to count
                break
        else:
            return value.copy(), value.copy()
    if not size:
        size = _plain_size(value, COPY_UP_TO)
    if size > COPY_UP_TO:
        copied = _marshal_copy(value)
        if copied is not None:
            frozen = Frozen.__new__(Frozen)
            frozen.blob = copied[1]
            return copied[0], frozen
    elif size >= 0:
        return copy_json(value), copy_json(value)  # type: ignore[arg-type]
    # Not plain JSON (or refused by the batched check just now): convert item by item, which also raises the
    # precise error. ``to_json`` would try the whole value with marshal again; it cannot succeed.
    private = _convert(value, set(), 0)
    return private, freeze(private, bounded_size(private))


def _marshal_copy(value: object) -> tuple[JsonValue, bytes] | None:
    """A private copy of ``value`` and the ``marshal`` blob it came from, if ``value`` is plain JSON; else None
    (the caller converts item by item, which also raises the precise error)."""
    try:
        blob = marshal.dumps(value)  # type: ignore[arg-type]  # runs no user code: it refuses what it does not know
    except ValueError:
        return None
    private = marshal.loads(blob)
    return (private, blob) if _loaded_plain(private) else None


# --- checking a large payload: batched over each level of its marshal copy --------------------------------
#
# A copy made by ``marshal.loads`` holds only exact builtin types, and its dicts are fresh: a dict gets a
# general key table (one that ``gc.get_referents`` reports keys from, not only values) exactly when it
# has a key that is not a ``str``. So one ``get_referents`` call lists a whole level's items, the count
# tells whether every key is a string, and C builtins check items in bulk. Records make each level
# regular, so slicing a level by the first record's length groups its items by field ("all ints",
# "all strings"). Any grouping is correct, since every item lands in exactly one group; a group that is
# not uniform is checked item by item.


def _referents_as_assumed() -> bool:
    # Other interpreters (or a future CPython) may traverse dicts differently: then check item by item.
    return (
        gc.get_referents({"key": 0.5}) == [0.5]
        and len(gc.get_referents({1: 0.5})) == 2
        and sorted(gc.get_referents([1.5, 2.5])) == [1.5, 2.5]
    )


_BATCHED = _referents_as_assumed()
_NONE = type(None)


def _array() -> type[array[int]]:
    # ``array`` is imported on first use: its import costs more than the rest of this module.
    global _ARRAY
    if _ARRAY is None:
        from array import array

        _ARRAY = array
    return _ARRAY


_ARRAY: type[array[int]] | None = None


def _loaded_plain(value: JsonValue) -> bool:
    """Whether ``value``, a container returned by ``marshal.loads``, is plain JSON (see ``plain_size``)."""
    if not _BATCHED:
        return plain_size(value) >= 0
    referents, join = gc.get_referents, "".join
    array = _ARRAY or _array()
    level: list[Any] = [value]
    has_dicts = type(value) is dict
    for _ in range(MAX_DEPTH):
        items = referents(*level)
        if has_dicts and len(items) != sum(map(len, level)):
            return False  # some dict has a key that is not a str: its keys were listed too
        deeper: list[Any] = []
        has_dicts = False
        first = level[0]
        groups: tuple[list[Any], ...]
        if len(items) < 16:
            groups = (items,)  # too few for batching to pay: item by item
        elif len(level) >= 8 and type(first) is dict and first:
            stride = len(first)  # records: slicing by the first one's length gives its fields
            groups = tuple(items[offset::stride] for offset in range(stride)) if stride > 1 else (items,)
        else:
            groups = (items,)
        for group in groups:
            if len(group) >= 8:
                kind = type(group[0])
                if kind is str:
                    try:
                        join(group)
                        continue
                    except TypeError:
                        pass
                elif kind is int:
                    try:
                        array("q", group)  # ints (and bools) in the signed 64-bit range
                        continue
                    except (TypeError, OverflowError):
                        pass
                elif kind is dict or kind is list:
                    if list(map(type, group)).count(kind) == len(group):
                        deeper += group
                        has_dicts = has_dicts or kind is dict
                        continue
                elif kind is float and list(map(type, group)).count(float) == len(group):
                    total = sum(group)  # inf or nan if any item is not finite
                    if total - total == 0.0:
                        continue
            found = _items_plain(group, deeper)
            if found < 0:
                return False
            if found:
                has_dicts = True
        if not deeper:
            return True
        level = deeper
    return False


def _items_plain(group: list[Any], deeper: list[Any]) -> int:
    """Check ``group`` item by item, adding its containers to ``deeper``: -1 if an item is not plain
    JSON, else the number of dicts found."""
    dicts = 0
    push = deeper.append
    for item in group:
        ti = type(item)
        if ti is str or ti is bool or ti is _NONE:
            continue
        if ti is dict:
            push(item)
            dicts += 1
            continue
        if ti is list:
            push(item)
            continue
        if ti is int:
            if _MIN_INT <= item <= _MAX_INT:
                continue
        elif ti is float and item - item == 0.0:
            continue
        return -1
    return dicts


class Frozen:
    """An immutable snapshot of a large JSON payload; ``thaw()`` returns a fresh copy."""

    __slots__ = ("blob",)

    def __init__(self, value: JsonValue) -> None:
        self.blob = marshal.dumps(value)

    def thaw(self) -> JsonValue:
        """A new deep copy of the payload."""
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
