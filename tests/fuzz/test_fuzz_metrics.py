"""Fuzz metric marks: ``MetricMeasurement`` construction and the all-or-nothing validation of ``scope.metric``.

Each generated group is judged by an independent model of core-api §2.4 ("metric"): the constructor raises
only ``TypeError`` (a non-real boundary), ``OverflowError`` (a boundary too large for a float, as the
reference's float extraction does) or the documented JSON-conversion ``ValueError`` (value, attributes);
``scope.metric`` then either emits exactly one mark whose ``data`` is ``{"measurements": [m.to_dict() ...]}``
with schema ``nemo.relay.metric_measurements/1``, or raises ``ValueError("invalid argument: measurements[i]
<problem>")`` naming the first invalid measurement and one of the problems the model finds in it (or the
first descriptor conflict), and emits nothing.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fuzz_support import fuzz_settings, model_outcome, python_values, same_json, short_texts
from hypothesis import event, given
from hypothesis import strategies as st

from nemo_relay import MetricKind, MetricMeasurement, MetricValueType, scope, subscribers
from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay.errors import InvalidValueError, JsonConversionError

pytestmark = pytest.mark.timeout(120)

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
LETTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
ALLOWED = {
    MetricKind.Counter: {MetricValueType.U64, MetricValueType.F64},
    MetricKind.UpDownCounter: {MetricValueType.I64, MetricValueType.F64},
    MetricKind.Gauge: {MetricValueType.U64, MetricValueType.I64, MetricValueType.F64},
    MetricKind.Histogram: {MetricValueType.U64, MetricValueType.F64},
}
SCHEMA = {"name": "nemo.relay.metric_measurements", "version": "1"}

# --- generation ---------------------------------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(["A", "a", "x", "X"]),  # reused names (in any case) give descriptor conflicts
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.\-/]{0,12}\Z"),
    st.sampled_from(["a" * 255, "a" * 256, "", "1a", "_a", "a b", "é", "aé", "a\x00", "A.b-c/d_9", "ab\n"]),
    short_texts,
)
valid_names = st.one_of(
    st.sampled_from(["A", "a", "x", "X", "a" * 255]), st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.\-/]{0,12}\Z")
)
values = st.one_of(
    st.sampled_from([0, 1, -1, I64_MAX, I64_MAX + 1, 2**64 - 1, 2**64, I64_MIN, I64_MIN - 1, 0.0, -0.0, 1.5, -1.5]),
    st.sampled_from([math.nan, math.inf, -math.inf, True, False, None, "1", [1], {"a": 1}]),
    st.integers(-(2**65), 2**65),
    st.floats(),
    python_values(4),
)
primitives = st.one_of(st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), short_texts, st.none())
attribute_values = st.one_of(
    primitives,
    st.lists(primitives, max_size=3),
    st.lists(st.lists(primitives, max_size=2), max_size=2),
    st.dictionaries(short_texts, primitives, max_size=2),
)
attributes = st.one_of(
    st.none(),
    st.dictionaries(st.one_of(short_texts, st.sampled_from(["", " ", "\t", "model"])), attribute_values, max_size=3),
    st.sampled_from([[1], "x", 5, {"k": 2**64}]),
    python_values(4),
)
units = st.one_of(st.none(), short_texts, st.sampled_from(["a" * 63, "a" * 64, "é", "{token}", "ms"]))
boundaries = st.one_of(
    st.none(),
    st.lists(st.one_of(st.floats(), st.integers(-5, 5), st.booleans()), max_size=5),
    st.lists(st.floats(0, 100), min_size=60, max_size=70).map(sorted),
    st.sampled_from([[1, 2, 3], [1.0, 2.5], [1, 1], [3, 2], [math.nan], [math.inf], [10**400], [None], ["1"]]),
)
measurements = st.fixed_dictionaries(
    {
        "name": names,
        "kind": st.sampled_from(list(MetricKind)),
        "value_type": st.sampled_from(list(MetricValueType)),
        "value": values,
        "unit": units,
        "description": st.one_of(st.none(), short_texts),
        "attributes": attributes,
        "boundaries": boundaries,
    }
)


@st.composite
def valid_measurements(draw: st.DrawFn) -> dict[str, Any]:
    """A measurement that breaks no rule (the group may still conflict on a reused name)."""
    kind = draw(st.sampled_from(list(MetricKind)))
    value_type = draw(st.sampled_from(sorted(ALLOWED[kind], key=lambda t: t.value)))
    if value_type is MetricValueType.U64:
        value: Any = draw(st.integers(0, I64_MAX))
    elif value_type is MetricValueType.I64:
        value = draw(st.integers(I64_MIN, I64_MAX))
    else:
        value = draw(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53))
        if kind is MetricKind.Counter:
            value = abs(value)
    primitive = st.one_of(st.booleans(), st.integers(I64_MIN, I64_MAX), st.floats(), short_texts)
    attribute = st.one_of(primitive, primitive.flatmap(lambda p: st.lists(st.just(p), min_size=1, max_size=3)))
    bounds = st.lists(st.floats(-1e6, 1e6), max_size=8, unique=True).map(sorted)
    return {
        "name": draw(valid_names),
        "kind": kind,
        "value_type": value_type,
        "value": value,
        "unit": draw(st.one_of(st.none(), st.text("abcdefghijklmnopqrstuvwxyz{}/%", max_size=10))),
        "description": draw(st.one_of(st.none(), short_texts)),
        "attributes": draw(st.one_of(st.none(), st.dictionaries(st.from_regex(r"\A\w{1,5}\Z"), attribute, max_size=3))),
        "boundaries": draw(bounds) if kind is MetricKind.Histogram and draw(st.booleans()) else None,
    }


groups = st.lists(st.one_of(valid_measurements(), valid_measurements(), measurements), max_size=4)


# --- the model ----------------------------------------------------------------------------------------------


def constructor_error(m: dict[str, Any]) -> tuple[type[Exception], str | None] | None:
    """The exception (and message, when the conversion rule fixes it) the constructor must raise, or None."""
    bounds = m["boundaries"]
    if bounds is not None:
        for b in bounds:
            if not isinstance(b, (int, float)):
                return TypeError, None
            if isinstance(b, int):
                try:
                    float(b)
                except OverflowError:
                    return OverflowError, None
    for key in ("value", "attributes"):
        if m[key] is not None:
            outcome, detail = model_outcome(m[key])
            if outcome == "error":
                return JsonConversionError, detail
    return None


def _value_problems(value_type: MetricValueType, value: Any) -> set[str]:
    is_int = type(value) is int
    if value_type is MetricValueType.U64 and not (is_int and 0 <= value <= I64_MAX):
        return {"value must be an unsigned integer no greater than i64::MAX"}
    if value_type is MetricValueType.I64 and not (is_int and I64_MIN <= value <= I64_MAX):
        return {"value must be a signed integer"}
    if value_type is MetricValueType.F64 and not ((is_int or type(value) is float) and math.isfinite(value)):
        return {"value must be a number"}
    return set()


def _kind_of(value: Any) -> str:
    if type(value) is int:
        return "i64" if value <= I64_MAX else "u64"
    return type(value).__name__


def _attribute_value_problems(value: Any) -> set[str]:
    if value is None:
        return {"attribute values must not be null"}
    if isinstance(value, dict):
        return {"attribute values must be primitive values or homogeneous primitive arrays"}
    if type(value) is int and value > I64_MAX:
        return {"attribute values must not exceed the maximum signed 64-bit integer"}
    if not isinstance(value, list):
        return set()
    if not value:
        return {"attribute arrays must not be empty and untyped"}
    problems = _attribute_value_problems(value[0])
    if problems:
        return problems
    if isinstance(value[0], list):
        return {"attribute arrays must contain primitive values"}
    if any(_kind_of(item) != _kind_of(value[0]) for item in value[1:]):
        return {"attribute arrays must contain one primitive type"}
    return set()


def measurement_problems(m: dict[str, Any]) -> set[str]:
    """Every rule ``m`` breaks (the implementation reports the first in the reference's order)."""
    problems: set[str] = set()
    name = m["name"]
    if not (0 < len(name) <= 255 and name[0] in LETTERS and set(name) <= NAME_CHARS):
        problems.add(
            "name must be 1-255 ASCII bytes, start with a letter, and contain only letters, digits, '_', '.', "
            "'-', or '/'"
        )
    bounds = m["boundaries"]
    if bounds is not None:
        floats = [float(b) for b in bounds]
        if len(floats) > 64:
            problems.add("boundaries must contain at most 64 entries")
        if not all(math.isfinite(b) for b in floats):
            problems.add("must be finite")
        if any(b >= c for b, c in itertools.pairwise(floats)):
            problems.add("boundaries must be strictly increasing without duplicates")
        if m["kind"] is not MetricKind.Histogram:
            problems.add("boundaries are only valid for histogram measurements")
    unit = m["unit"]
    if unit is not None and (not unit.isascii() or len(unit) > 63):
        problems.add("unit must be ASCII and at most 63 bytes")
    value = None if m["value"] is None else model_outcome(m["value"])[1]
    value_problems = _value_problems(m["value_type"], value)
    problems |= value_problems
    if m["value_type"] not in ALLOWED[m["kind"]]:
        problems.add(f"kind {m['kind'].label} does not support value_type {m['value_type'].label}")
    if m["kind"] is MetricKind.Counter and not value_problems and value < 0:
        problems.add("counter values must be non-negative")
    attrs = None if m["attributes"] is None else model_outcome(m["attributes"])[1]
    if attrs is not None:
        if not isinstance(attrs, dict):
            problems.add("attributes must be a JSON object")
        else:
            for key, item in attrs.items():
                if not key.strip():
                    problems.add("attributes contains a blank attribute key")
                problems |= _attribute_value_problems(item)
    return problems


def group_error(group: list[dict[str, Any]]) -> tuple[int, set[str]] | None:
    """``(index, acceptable messages)`` of the error ``scope.metric`` must raise, or None."""
    if not group:
        return -1, {"measurements must contain at least one entry"}
    for index, m in enumerate(group):
        problems = measurement_problems(m)
        if problems:
            return index, problems
    latest: dict[str, tuple[int, tuple[Any, ...]]] = {}
    for index, m in enumerate(group):
        key = m["name"].lower()
        descriptor = (m["kind"], m["unit"], m["value_type"])
        if key in latest and latest[key][1] != descriptor:
            return index, {f"conflicts with the descriptor for measurements[{latest[key][0]}]"}
        latest[key] = (index, descriptor)
    return None


@contextmanager
def recording() -> Iterator[list[ScopeEvent | MarkEvent]]:
    events: list[ScopeEvent | MarkEvent] = []
    name = f"fuzz-recorder-{uuid.uuid4()}"
    subscribers.register(name, events.append)
    try:
        yield events
        assert subscribers.flush(timeout=10), "dispatcher did not drain"
    finally:
        subscribers.deregister(name)


def build(m: dict[str, Any]) -> MetricMeasurement:
    return MetricMeasurement(
        m["name"], m["kind"], m["value_type"], m["value"], unit=m["unit"], description=m["description"],
        attributes=m["attributes"], boundaries=m["boundaries"],
    )  # fmt: skip


@given(group=groups)
@fuzz_settings(250)
def test_metric_groups_follow_the_documented_rules(group: list[dict[str, Any]]) -> None:
    built: list[MetricMeasurement] = []
    for m in group:
        expected = constructor_error(m)
        try:
            measurement = build(m)
        except (TypeError, OverflowError, JsonConversionError) as exc:
            assert expected is not None, f"the constructor refused a valid measurement: {exc!r}"
            assert type(exc) is expected[0] or isinstance(exc, expected[0])
            if expected[1] is not None:
                assert str(exc) == expected[1]
            event(f"constructor raised {type(exc).__name__}")
            return
        assert expected is None, f"the constructor accepted {m!r}; expected {expected[0].__name__}"
        assert measurement.name == m["name"] and measurement.kind is m["kind"]
        built.append(measurement)
    error = group_error(group)
    with recording() as events:
        try:
            scope.metric("fuzz.metrics", built)
        except InvalidValueError as exc:
            assert error is not None, f"scope.metric refused a valid group: {exc}"
            index, messages = error
            prefix = "invalid argument: " if index < 0 else f"invalid argument: measurements[{index}] "
            assert str(exc).startswith(prefix), str(exc)
            assert str(exc).removeprefix(prefix) in messages, str(exc)
            assert isinstance(exc, ValueError)
            event("group refused")
            refused = True
        else:
            assert error is None, f"scope.metric accepted a group with problem {error}"
            event("group accepted")
            refused = False
    if refused:
        assert events == [], "a refused group emitted something"
        return
    (mark,) = events
    assert isinstance(mark, MarkEvent)
    assert mark.name == "fuzz.metrics" and mark.data_schema == SCHEMA
    assert same_json(mark.data, {"measurements": [m.to_dict() for m in built]})
    for entry, m in zip(mark.data["measurements"], group, strict=True):  # type: ignore[index]
        assert entry["kind"] == m["kind"].label and entry["value_type"] == m["value_type"].label
        assert same_json(entry["value"], model_outcome(m["value"])[1])
