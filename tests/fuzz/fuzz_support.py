"""Shared pieces of the fuzz suite: hypothesis settings, value strategies and an independent JSON model.

Settings (see ``conftest.py`` for the environment variable): every property takes its settings from
``fuzz_settings(n)``. By default that is ``n`` examples, derandomized (the same inputs on every run, so CI
is reproducible) with no example database; ``NEMO_RELAY_FUZZ_EXAMPLES=N`` gives every property ``N`` random
examples instead. No profile is loaded globally, so hypothesis tests elsewhere keep their own settings.

Nothing here imports ``nemo_relay``, so generated cases can also be replayed against the reference wheel.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# --- settings --------------------------------------------------------------------------------------------

EXAMPLES_VARIABLE = "NEMO_RELAY_FUZZ_EXAMPLES"


def _examples_override() -> int | None:
    text = os.environ.get(EXAMPLES_VARIABLE, "").strip()
    if not text:
        return None
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"{EXAMPLES_VARIABLE} must be a positive integer, got {text!r}") from None
    if count < 1:
        raise ValueError(f"{EXAMPLES_VARIABLE} must be a positive integer, got {text!r}")
    return count


EXAMPLES = _examples_override()
LONG = EXAMPLES is not None

settings.register_profile(
    "nemo-relay-fuzz-ci",
    derandomize=True,  # a fixed sequence of inputs: CI runs are reproducible
    database=None,
    deadline=5000,  # ms per example: generous on a loaded 2-core machine, still far from "hangs"
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile(
    "nemo-relay-fuzz-long",
    parent=settings.get_profile("nemo-relay-fuzz-ci"),
    derandomize=False,  # fresh random inputs on every long run
    deadline=20000,
)
PROFILE = settings.get_profile("nemo-relay-fuzz-long" if LONG else "nemo-relay-fuzz-ci")


def fuzz_settings(max_examples: int, **overrides: Any) -> settings:
    """Settings for one property: ``max_examples`` by default, ``NEMO_RELAY_FUZZ_EXAMPLES`` when that is set."""
    return settings(PROFILE, max_examples=EXAMPLES or max_examples, **overrides)


# --- odd Python values (module level so that generated cases pickle) ----------------------------------------


class StrSub(str):
    """A ``str`` subclass whose ``__str__`` lies: conversion must use the string value."""

    def __str__(self) -> str:
        return "<lying str>"


class IntSub(int):
    """An ``int`` subclass."""


class FloatSub(float):
    """A ``float`` subclass."""


class Color(enum.Enum):
    """A plain enum: not JSON."""

    RED = "red"


class StrColor(enum.StrEnum):
    """A string enum: its value is the string."""

    RED = "red"


class IntColor(enum.IntEnum):
    """An integer enum: its value is the integer."""

    RED = 7


class DictSub(dict):  # type: ignore[type-arg]
    """A ``dict`` subclass."""


class ListSub(list):  # type: ignore[type-arg]
    """A ``list`` subclass."""


class Plain:
    """An object with a ``__dict__`` (not a dataclass): not JSON."""

    def __init__(self, value: object = 1) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Plain({self.value!r})"


@dataclasses.dataclass
class Box:
    """A dataclass: converts to a dict of its fields."""

    value: Any = None
    label: str = "box"


INT_EDGES = (
    0,
    1,
    -1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    -(10**30),
)
I64_MIN, U64_MAX = -(2**63), 2**64 - 1

# Text without lone surrogates (those are a known divergence, pinned by their own xfail property).
SAFE_CHARS = st.characters(blacklist_categories=("Cs",))
texts = st.text(SAFE_CHARS, max_size=12)
short_texts = st.text(SAFE_CHARS, max_size=6)
ints = st.one_of(st.sampled_from(INT_EDGES), st.integers(), st.integers(-(2**70), 2**70))
floats = st.floats(allow_nan=True, allow_infinity=True)

json_scalars = st.one_of(st.none(), st.booleans(), ints.filter(lambda i: I64_MIN <= i <= U64_MAX), floats, texts)


def json_values(max_leaves: int = 25, finite: bool = True) -> st.SearchStrategy[Any]:
    """Plain JSON values (exact types, str keys); ``finite`` leaves out NaN and the infinities."""
    leaf_floats = st.floats(allow_nan=False, allow_infinity=False) if finite else floats
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(I64_MIN, U64_MAX), st.sampled_from(INT_EDGES[:9]), leaf_floats, texts
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(short_texts, inner, max_size=4)),
        max_leaves=max_leaves,
    )


json_objects = st.dictionaries(short_texts, json_values(12), max_size=5)

odd_scalars = st.one_of(
    json_scalars,
    ints,
    texts.map(StrSub),
    st.integers(-(2**70), 2**70).map(IntSub),
    floats.map(FloatSub),
    st.sampled_from([Color.RED, StrColor.RED, IntColor.RED]),
    st.binary(max_size=4),
    st.binary(max_size=4).map(bytearray),
    st.builds(Plain, st.integers()),
    st.sampled_from([object(), 1j, range(3), Box, memoryview(b"ab")]),
)
odd_keys = st.one_of(
    short_texts,
    short_texts,
    short_texts.map(StrSub),
    st.just(StrColor.RED),
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.tuples(st.integers(0, 3)),
    st.just(IntColor.RED),
)
_hashables = st.one_of(st.integers(-5, 5), short_texts, st.booleans(), st.none())


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    items = st.lists(inner, max_size=4)
    return st.one_of(
        items,
        items.map(tuple),
        items.map(ListSub),
        items.map(collections.UserList),
        items.map(collections.deque),
        st.sets(_hashables, max_size=3),
        st.frozensets(_hashables, max_size=3),
        st.dictionaries(short_texts, inner, max_size=4),
        st.dictionaries(odd_keys, inner, max_size=3),
        st.dictionaries(short_texts, inner, max_size=3).map(DictSub),
        st.dictionaries(short_texts, inner, max_size=3).map(collections.UserDict),
        st.dictionaries(short_texts, inner, max_size=3).map(collections.OrderedDict),
        st.builds(Box, inner, short_texts),
    )


def python_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary Python values: JSON, JSON-convertible Python (tuples, sets, mappings, dataclasses, subclasses)
    and non-JSON values (bytes, objects, huge ints, non-str keys), mixed at any depth."""
    return st.recursive(odd_scalars, _containers, max_leaves=max_leaves)


# --- cycles and deep nesting --------------------------------------------------------------------------------


def _mutable_containers(value: Any, out: list[tuple[Any, int]], depth: int = 0) -> None:
    # Containers that can receive a back reference, with their depth; walks a freshly generated tree.
    if type(value) in (list, dict, ListSub, DictSub, collections.UserList, collections.UserDict, Box):
        out.append((value, depth))
        children: Any
        if isinstance(value, Box):
            children = [value.value]
        elif isinstance(value, (dict, collections.UserDict)):
            children = list(value.values())
        else:
            children = list(value)
        for child in children:
            _mutable_containers(child, out, depth + 1)


def _attach(container: Any, target: Any, key: str) -> None:
    if isinstance(container, Box):
        container.value = target
    elif isinstance(container, (dict, collections.UserDict)):
        container[key] = target
    else:
        container.append(target)


_mutable_tree = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(collections.UserList),
        st.dictionaries(short_texts, inner, max_size=3),
        st.dictionaries(short_texts, inner, max_size=3).map(collections.UserDict),
        st.builds(Box, inner),
    ),
    max_leaves=12,
).filter(lambda v: type(v) in (list, dict, collections.UserList, collections.UserDict, Box))


@st.composite
def cyclic_values(draw: st.DrawFn) -> Any:
    """A container tree in which one container refers back to itself or to one of its ancestors."""
    root = draw(_mutable_tree)
    found: list[tuple[Any, int]] = []
    _mutable_containers(root, found)
    holder = draw(st.sampled_from([c for c, _ in found]))
    ancestors = _ancestors(root, holder)
    target = draw(st.sampled_from(ancestors))
    _attach(holder, target, draw(short_texts))
    return root


def _ancestors(root: Any, holder: Any) -> list[Any]:
    # The chain of containers from ``root`` down to ``holder`` (both included), found by identity.
    def walk(node: Any, chain: list[Any]) -> list[Any] | None:
        chain = [*chain, node]
        if node is holder:
            return chain
        found: list[tuple[Any, int]] = []
        _mutable_containers(node, found)
        kids: Any
        if isinstance(node, Box):
            kids = [node.value]
        elif isinstance(node, (dict, collections.UserDict)):
            kids = list(node.values())
        elif isinstance(node, (list, collections.UserList)):
            kids = list(node)
        else:
            kids = []
        for kid in kids:
            result = walk(kid, chain)
            if result is not None:
                return result
        return None

    chain = walk(root, [])
    assert chain is not None
    return chain


_NESTERS: tuple[Callable[[Any], Any], ...] = (
    lambda v: [v],
    lambda v: {"k": v},
    lambda v: (v,),
    lambda v: collections.UserList([v]),
    lambda v: collections.UserDict({"k": v}),
    lambda v: Box(v),
    lambda v: [1, "x", v],
)


@st.composite
def nested_values(draw: st.DrawFn, min_depth: int = 200, max_depth: int = 3000) -> tuple[int, Any]:
    """``(depth, value)``: ``depth`` containers (random kinds) nested around a scalar leaf."""
    depth = draw(st.one_of(st.integers(min_depth, max_depth), st.sampled_from([255, 256, 257, 258])))
    kinds = draw(st.lists(st.sampled_from(range(len(_NESTERS))), min_size=1, max_size=4))
    value: Any = draw(st.one_of(st.none(), st.integers(0, 9), short_texts))
    for level in range(depth):
        value = _NESTERS[kinds[level % len(kinds)]](value)
    return depth, value


# --- an independent model of the documented JSON conversion ------------------------------------------------


class ModelError(Exception):
    """The conversion must fail with ``Failed to convert to JSON: <str(self)>``."""


MAX_DEPTH = 256


def model_json(value: Any) -> Any:
    """What the documented conversion (core-api §8) makes of ``value``, or ``ModelError`` with the detail text.

    Rules: exact JSON passes; ``str``/``int``/``float`` subclasses (and str/int enums) give their plain value;
    ints outside ``[-2**63, 2**64-1]`` are out of range; non-finite floats become null; mappings need
    ``str`` keys; sequences, sets and frozensets become lists; dataclass instances become dicts of their
    fields; bytes and anything else are refused; a container nested inside 256 others, or inside itself, is
    refused.
    """
    return _model(value, [], 0)


def _model(value: Any, active: list[int], depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value if value is None else bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        if not I64_MIN <= value <= U64_MAX:
            raise ModelError("JSON number out of range")
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, bytes):
        raise ModelError("invalid type: byte array, expected any valid JSON value")
    if isinstance(value, bytearray):
        raise ModelError("unexpected type: 'bytearray' object is not an instance of 'bytes'")
    is_dc = dataclasses.is_dataclass(value) and not isinstance(value, type)
    if not (isinstance(value, (Mapping, Sequence, set, frozenset)) or is_dc):
        raise ModelError(f"unsupported type {type(value).__name__}")
    if depth >= MAX_DEPTH:
        raise ModelError(f"payload nests deeper than {MAX_DEPTH} levels; flatten it or pass a string")
    if id(value) in active:
        raise ModelError("circular reference detected")
    active.append(id(value))
    try:
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                name = _model_key(key)  # the key is checked before its value
                out[name] = _model(item, active, depth + 1)
            return out
        if is_dc:
            return {f.name: _model(getattr(value, f.name), active, depth + 1) for f in dataclasses.fields(value)}
        return [_model(item, active, depth + 1) for item in value]
    finally:
        active.pop()


def _model_key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if key is None:
        raise ModelError("unexpected type: 'None' is not an instance of 'str'")
    raise ModelError(f"unexpected type: '{type(key).__name__}' object is not an instance of 'str'")


def model_outcome(value: Any) -> tuple[str, Any]:
    """``("ok", json)`` or ``("error", "Failed to convert to JSON: ...")`` for ``value``."""
    try:
        return "ok", model_json(value)
    except ModelError as exc:
        return "error", f"Failed to convert to JSON: {exc}"


def same_json(a: Any, b: Any) -> bool:
    """Structural equality that tells ``True`` from ``1`` and ``1`` from ``1.0`` (``-0.0 == 0.0`` is kept).

    Key order is not compared: it is not part of the contract (``to_json`` sorts keys; checked on its own).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return bool(a == b)


def depth_of(value: Any) -> int:
    """Container nesting depth of a plain JSON value (a scalar is 0)."""
    depth, frontier = 0, [value]
    while frontier:
        nxt: list[Any] = []
        for item in frontier:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        if not any(isinstance(item, (dict, list)) for item in frontier):
            break
        depth += 1
        frontier = nxt
    return depth
