"""Metric measurements and ``scope.metric``: construction, the emitted payload, and every validation rule
with its exact message and reporting order. Expected texts were checked against the reference wheel
(nemo-relay 0.8.4)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from nemo_relay import MetricKind, MetricMeasurement, MetricValueType, ScopeType, scope

C, UDC, G, H = MetricKind.Counter, MetricKind.UpDownCounter, MetricKind.Gauge, MetricKind.Histogram
U64, I64, F64 = MetricValueType.U64, MetricValueType.I64, MetricValueType.F64
SCHEMA = {"name": "nemo.relay.metric_measurements", "version": "1"}
MEASUREMENT_KEYS = {"name", "kind", "value_type", "value", "unit", "description", "attributes", "boundaries"}

NAME = "name must be 1-255 ASCII bytes, start with a letter, and contain only letters, digits, '_', '.', '-', or '/'"
HISTOGRAM_ONLY = "boundaries are only valid for histogram measurements"
TOO_MANY = "boundaries must contain at most 64 entries"
FINITE = "must be finite"
INCREASING = "boundaries must be strictly increasing without duplicates"
UNIT = "unit must be ASCII and at most 63 bytes"
U64_VALUE = "value must be an unsigned integer no greater than i64::MAX"
I64_VALUE = "value must be a signed integer"
F64_VALUE = "value must be a number"
NEGATIVE = "counter values must be non-negative"
ATTRS_OBJECT = "attributes must be a JSON object"
BLANK_KEY = "attributes contains a blank attribute key"
NULL = "attribute values must not be null"
NOT_PRIMITIVE = "attribute values must be primitive values or homogeneous primitive arrays"
EMPTY_ARRAY = "attribute arrays must not be empty and untyped"
NESTED_ARRAY = "attribute arrays must contain primitive values"
MIXED_ARRAY = "attribute arrays must contain one primitive type"
TOO_BIG = "attribute values must not exceed the maximum signed 64-bit integer"


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def mm(
    name: str = "a",
    kind: MetricKind = C,
    value_type: MetricValueType = U64,
    value: Any = 1,
    **kwargs: Any,
) -> MetricMeasurement:
    return MetricMeasurement(name, kind, value_type, value, **kwargs)


def kind_error(kind: str, value_type: str) -> str:
    return f"kind {kind} does not support value_type {value_type}"


def assert_rejected(events: Any, measurements: list[MetricMeasurement], message: str, **kwargs: Any) -> None:
    """The group raises ``ValueError(message)`` and nothing at all is emitted."""
    with pytest.raises(ValueError, match=exactly(message)):
        scope.metric("group", measurements, **kwargs)
    assert events.flush() == []


def emitted(events: Any, measurements: Any, **kwargs: Any) -> Any:
    scope.metric("group", measurements, **kwargs)
    (mark,) = events.flush()
    return mark


class TestMeasurementConstruction:
    def test_defaults(self) -> None:
        m = MetricMeasurement("ok", C, U64, 1)
        assert m.name == "ok"
        assert m.kind is C
        assert m.value_type is U64
        assert m.value == 1
        assert (m.unit, m.description, m.attributes, m.boundaries) == (None, None, None, None)

    def test_all_fields_and_keywords(self) -> None:
        m = MetricMeasurement(
            name="latency",
            kind=H,
            value_type=F64,
            value=1.5,
            unit="ms",
            description="request latency",
            attributes={"route": "/a", "codes": [200, 201]},
            boundaries=[1, 2.5],
        )
        assert (m.name, m.kind, m.value_type, m.value) == ("latency", H, F64, 1.5)
        assert (m.unit, m.description) == ("ms", "request latency")
        assert m.attributes == {"route": "/a", "codes": [200, 201]}
        assert m.boundaries == [1.0, 2.5]
        assert all(type(b) is float for b in m.boundaries)

    def test_tuple_boundaries_and_converted_payloads(self) -> None:
        m = mm(kind=H, value_type=F64, value=(1,), boundaries=(1, 2), attributes={"k": (1, 2)})
        assert m.boundaries == [1.0, 2.0]
        assert m.attributes == {"k": [1, 2]}
        assert m.value == [1]

    def test_value_nan_is_stored_as_null(self) -> None:
        assert mm(kind=G, value_type=F64, value=float("nan")).value is None

    @pytest.mark.parametrize(
        ("measurement", "text"),
        [
            (MetricMeasurement("ok", C, U64, 1), '<MetricMeasurement name="ok" kind=counter value_type=u64>'),
            (MetricMeasurement("x", UDC, I64, -3), '<MetricMeasurement name="x" kind=up_down_counter value_type=i64>'),
            (MetricMeasurement("g", G, F64, 1.0), '<MetricMeasurement name="g" kind=gauge value_type=f64>'),
            (MetricMeasurement("h", H, F64, 1.5), '<MetricMeasurement name="h" kind=histogram value_type=f64>'),
            # validation happens at emission, so an invalid measurement still has a repr
            (MetricMeasurement("1 bad", C, I64, -1), '<MetricMeasurement name="1 bad" kind=counter value_type=i64>'),
        ],
        ids=["counter", "up_down_counter", "gauge", "histogram", "invalid-still-has-repr"],
    )
    def test_repr(self, measurement: MetricMeasurement, text: str) -> None:
        assert repr(measurement) == text
        assert str(measurement) == text

    def test_repr_escapes_quotes_in_the_name(self) -> None:
        assert repr(mm(name='a"b', kind=H, value_type=F64, value=1.0)) == (
            '<MetricMeasurement name="a\\"b" kind=histogram value_type=f64>'
        )

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            pytest.param({"name": 1}, TypeError, id="name-int"),
            pytest.param({"kind": 0}, TypeError, id="kind-int"),
            pytest.param({"kind": "counter"}, TypeError, id="kind-str"),
            pytest.param({"value_type": "u64"}, TypeError, id="value_type-str"),
            pytest.param({"kind": U64}, TypeError, id="kind-is-value-type"),
            pytest.param({"unit": 1}, TypeError, id="unit-int"),
            pytest.param({"description": 1}, TypeError, id="description-int"),
            pytest.param({"boundaries": "ab"}, TypeError, id="boundaries-str"),
            pytest.param({"boundaries": ["a"]}, TypeError, id="boundaries-item-str"),
            pytest.param({"boundaries": {1.0}}, TypeError, id="boundaries-set"),
            pytest.param({"boundaries": (b for b in [1.0])}, TypeError, id="boundaries-generator"),
            pytest.param({"value": object()}, ValueError, id="value-object"),
            pytest.param({"attributes": b"x"}, ValueError, id="attributes-bytes"),
        ],
    )
    def test_argument_errors(self, kwargs: dict[str, Any], error: type) -> None:
        arguments = {"name": "a", "kind": H, "value_type": F64, "value": 1.0, **kwargs}
        with pytest.raises(error):
            MetricMeasurement(**arguments)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"name": 1}, "argument 'name': 'int' object is not an instance of 'str'"),
            ({"kind": 0}, "argument 'kind': 'int' object is not an instance of 'MetricKind'"),
            ({"value_type": "u64"}, "argument 'value_type': 'str' object is not an instance of 'MetricValueType'"),
            ({"unit": 1}, "argument 'unit': 'int' object is not an instance of 'str'"),
            ({"description": 1}, "argument 'description': 'int' object is not an instance of 'str'"),
            ({"value": object()}, "Failed to convert to JSON: unsupported type object"),
            (
                {"attributes": b"x"},
                "Failed to convert to JSON: invalid type: byte array, expected any valid JSON value",
            ),
            ({"value": -(2**63) - 1}, "Failed to convert to JSON: JSON number out of range"),
        ],
        ids=["name", "kind", "value_type", "unit", "description", "value", "attributes", "value-out-of-range"],
    )
    def test_argument_error_texts(self, kwargs: dict[str, Any], message: str) -> None:
        arguments = {"name": "a", "kind": C, "value_type": U64, "value": 1, **kwargs}
        with pytest.raises((TypeError, ValueError), match=exactly(message)):
            MetricMeasurement(**arguments)

    @pytest.mark.parametrize("field", sorted(MEASUREMENT_KEYS))
    def test_properties_are_read_only(self, field: str) -> None:
        m = mm()
        with pytest.raises(AttributeError):
            setattr(m, field, None)

    def test_no_value_equality(self) -> None:
        assert mm() != mm()

    def test_attributes_are_snapshotted_at_construction(self) -> None:
        source = {"k": [1, 2]}
        m = mm(attributes=source)
        source["k"].append(3)
        source["z"] = [0]
        assert m.attributes == {"k": [1, 2]}

    def test_returned_containers_are_copies(self, events: Any) -> None:
        m = mm(kind=H, value_type=F64, value=1.0, attributes={"k": 1}, boundaries=[1.0])
        m.attributes["z"] = 1
        m.boundaries.append(9.0)
        assert m.attributes == {"k": 1}
        assert m.boundaries == [1.0]
        (entry,) = emitted(events, [m]).data["measurements"]
        assert entry["attributes"] == {"k": 1}
        assert entry["boundaries"] == [1.0]


class TestSuccessPayload:
    def test_reference_example(self, events: Any) -> None:
        root = scope.get_handle()
        mark = emitted(
            events,
            [MetricMeasurement("relay.tokens", C, U64, 12, unit="{token}", attributes={"model": "test"})],
            metadata={"source": "test"},
        )
        assert mark.kind == "mark"
        assert mark.name == "group"
        assert mark.parent_uuid == root.uuid
        assert mark.data_schema == SCHEMA
        assert mark.metadata == {"source": "test"}
        assert mark.severity is None
        assert mark.category is None
        assert mark.data == {
            "measurements": [
                {
                    "name": "relay.tokens",
                    "kind": "counter",
                    "value_type": "u64",
                    "value": 12,
                    "unit": "{token}",
                    "description": None,
                    "attributes": {"model": "test"},
                    "boundaries": None,
                }
            ]
        }

    def test_all_fields_set(self, events: Any) -> None:
        m = mm("latency", H, F64, 2.5, unit="ms", description="d", attributes={"ok": True}, boundaries=[1, 5])
        (entry,) = emitted(events, [m]).data["measurements"]
        assert entry == {
            "name": "latency",
            "kind": "histogram",
            "value_type": "f64",
            "value": 2.5,
            "unit": "ms",
            "description": "d",
            "attributes": {"ok": True},
            "boundaries": [1.0, 5.0],
        }

    @pytest.mark.parametrize(
        ("kind", "value_type", "value", "kind_label", "type_label"),
        [
            (C, U64, 3, "counter", "u64"),
            (C, F64, 0.5, "counter", "f64"),
            (UDC, I64, -3, "up_down_counter", "i64"),
            (UDC, F64, -1.5, "up_down_counter", "f64"),
            (G, U64, 0, "gauge", "u64"),
            (G, I64, -(2**63), "gauge", "i64"),
            (G, F64, 1, "gauge", "f64"),
            (H, U64, 3, "histogram", "u64"),
            (H, F64, -1.0, "histogram", "f64"),
        ],
    )
    def test_supported_combinations_and_labels(
        self, events: Any, kind: MetricKind, value_type: MetricValueType, value: Any, kind_label: str, type_label: str
    ) -> None:
        (entry,) = emitted(events, [mm(kind=kind, value_type=value_type, value=value)]).data["measurements"]
        assert set(entry) == MEASUREMENT_KEYS
        assert (entry["kind"], entry["value_type"], entry["value"]) == (kind_label, type_label, value)
        assert type(entry["value"]) is type(value)

    def test_group_keeps_order(self, events: Any) -> None:
        group = [mm("b", value=1), mm("a", kind=G, value_type=I64, value=-1), mm("B", value=2)]
        entries = emitted(events, group).data["measurements"]
        assert [(e["name"], e["value"]) for e in entries] == [("b", 1), ("a", -1), ("B", 2)]

    @pytest.mark.parametrize("container", [list, tuple, iter], ids=["list", "tuple", "iterator"])
    def test_any_iterable_of_measurements(self, events: Any, container: Any) -> None:
        entries = emitted(events, container([mm("x"), mm("y")])).data["measurements"]
        assert [e["name"] for e in entries] == ["x", "y"]

    def test_parent_handle_and_timestamp(self, events: Any) -> None:
        outer = scope.push("outer", ScopeType.Agent)
        scope.metric("in-outer", [mm()])
        scope.metric("explicit", [mm()], handle=scope.get_handle(), timestamp=datetime(2026, 1, 1, tzinfo=UTC))
        scope.metric("offset", [mm()], timestamp=datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))))
        scope.pop(outer)
        _, in_outer, explicit, offset, _ = events.flush()
        assert in_outer.parent_uuid == explicit.parent_uuid == outer.uuid
        assert explicit.timestamp == "2026-01-01T00:00:00+00:00"
        assert offset.timestamp == "2026-01-01T00:00:00.000005+00:00"
        assert scope.get_handle().name == "root"

    def test_metric_does_not_change_the_stack(self) -> None:
        before = scope.get_handle().uuid
        scope.metric("m", [mm()])
        assert scope.get_handle().uuid == before


VALID = [
    pytest.param(mm("a" * 255), id="name-255"),
    pytest.param(mm("a-b.c/d_e9Z"), id="name-all-allowed-chars"),
    pytest.param(mm("Z"), id="name-one-uppercase-letter"),
    pytest.param(mm(unit=""), id="unit-empty"),
    pytest.param(mm(unit="x" * 63), id="unit-63"),
    pytest.param(mm(unit="{tok}/s"), id="unit-symbols"),
    pytest.param(mm(value=2**63 - 1), id="u64-at-i64-max"),
    pytest.param(mm(value=0), id="u64-zero"),
    pytest.param(mm(kind=UDC, value_type=I64, value=-(2**63)), id="i64-min"),
    pytest.param(mm(kind=UDC, value_type=I64, value=2**63 - 1), id="i64-max"),
    pytest.param(mm(value_type=F64, value=0.0), id="counter-f64-zero"),
    pytest.param(mm(value_type=F64, value=-0.0), id="counter-f64-negative-zero"),
    pytest.param(mm(value_type=F64, value=3), id="f64-int-value"),
    pytest.param(mm(kind=H, value_type=F64, value=1.0, boundaries=[]), id="boundaries-empty"),
    pytest.param(mm(kind=H, value_type=F64, value=1.0, boundaries=list(range(64))), id="boundaries-64"),
    pytest.param(mm(kind=H, value_type=U64, value=1, boundaries=[-1, 0, 0.5]), id="boundaries-negative"),
    pytest.param(mm(attributes={}), id="attributes-empty"),
    pytest.param(mm(attributes={"s": "x", "i": -1, "f": 1.5, "b": False}), id="attributes-primitives"),
    pytest.param(mm(attributes={"k": [True, False]}), id="attributes-bool-array"),
    pytest.param(mm(attributes={"k": ["a", "b"]}), id="attributes-str-array"),
    pytest.param(mm(attributes={"k": [1.5, 2.5]}), id="attributes-float-array"),
    pytest.param(mm(attributes={"k": [1, 2]}), id="attributes-int-array"),
    pytest.param(mm(attributes={" k ": 1}), id="attributes-padded-key"),
    pytest.param(mm(attributes={"k": 2**63 - 1}), id="attributes-i64-max"),
]


class TestValidMeasurements:
    @pytest.mark.parametrize("measurement", VALID)
    def test_emitted(self, events: Any, measurement: MetricMeasurement) -> None:
        (entry,) = emitted(events, [measurement]).data["measurements"]
        assert entry["name"] == measurement.name
        assert entry["value"] == measurement.value
        assert entry["attributes"] == measurement.attributes
        assert entry["boundaries"] == measurement.boundaries


# One problem per measurement: (measurement, message without the "measurements[0] " prefix).
INVALID = [
    # name
    pytest.param(mm(""), NAME, id="name-empty"),
    pytest.param(mm("1a"), NAME, id="name-digit-first"),
    pytest.param(mm("_a"), NAME, id="name-underscore-first"),
    pytest.param(mm("/a"), NAME, id="name-slash-first"),
    pytest.param(mm("a b"), NAME, id="name-space"),
    pytest.param(mm("a:b"), NAME, id="name-colon"),
    pytest.param(mm("é"), NAME, id="name-non-ascii"),
    pytest.param(mm("aé"), NAME, id="name-non-ascii-later"),
    pytest.param(mm("a" * 256), NAME, id="name-256"),
    # boundaries
    pytest.param(mm(boundaries=[1.0]), HISTOGRAM_ONLY, id="boundaries-counter"),
    pytest.param(mm(kind=UDC, value_type=I64, boundaries=[1.0]), HISTOGRAM_ONLY, id="boundaries-updown"),
    pytest.param(mm(kind=G, boundaries=[1.0]), HISTOGRAM_ONLY, id="boundaries-gauge"),
    pytest.param(mm(boundaries=[]), HISTOGRAM_ONLY, id="boundaries-empty-counter"),
    pytest.param(mm(kind=H, boundaries=list(range(65))), TOO_MANY, id="boundaries-65"),
    pytest.param(mm(kind=H, boundaries=[float("nan")]), FINITE, id="boundaries-nan"),
    pytest.param(mm(kind=H, boundaries=[1, float("inf")]), FINITE, id="boundaries-inf"),
    pytest.param(mm(kind=H, boundaries=[float("-inf"), 1]), FINITE, id="boundaries-minus-inf"),
    pytest.param(mm(kind=H, boundaries=[2, 1]), INCREASING, id="boundaries-decreasing"),
    pytest.param(mm(kind=H, boundaries=[1, 1]), INCREASING, id="boundaries-duplicate"),
    pytest.param(mm(kind=H, boundaries=[1, 3, 2]), INCREASING, id="boundaries-unsorted"),
    # unit
    pytest.param(mm(unit="x" * 64), UNIT, id="unit-64"),
    pytest.param(mm(unit="µs"), UNIT, id="unit-non-ascii"),
    # value
    pytest.param(mm(value=-1), U64_VALUE, id="u64-negative"),
    pytest.param(mm(value=2**63), U64_VALUE, id="u64-above-i64-max"),
    pytest.param(mm(value=1.0), U64_VALUE, id="u64-float"),
    pytest.param(mm(value=True), U64_VALUE, id="u64-bool"),
    pytest.param(mm(value="1"), U64_VALUE, id="u64-str"),
    pytest.param(mm(value=None), U64_VALUE, id="u64-none"),
    pytest.param(mm(kind=H, value=-1), U64_VALUE, id="u64-histogram-negative"),
    pytest.param(mm(kind=UDC, value_type=I64, value=1.0), I64_VALUE, id="i64-float"),
    pytest.param(mm(kind=UDC, value_type=I64, value=2**63), I64_VALUE, id="i64-too-big"),
    pytest.param(mm(kind=G, value_type=I64, value=1.5), I64_VALUE, id="i64-fraction"),
    pytest.param(mm(kind=G, value_type=F64, value=float("nan")), F64_VALUE, id="f64-nan"),
    pytest.param(mm(kind=G, value_type=F64, value=float("inf")), F64_VALUE, id="f64-inf"),
    pytest.param(mm(kind=G, value_type=F64, value=True), F64_VALUE, id="f64-bool"),
    pytest.param(mm(kind=G, value_type=F64, value="1"), F64_VALUE, id="f64-str"),
    # kind / value type compatibility
    pytest.param(mm(value_type=I64, value=1), kind_error("counter", "i64"), id="counter-i64"),
    pytest.param(mm(value_type=I64, value=-1), kind_error("counter", "i64"), id="counter-i64-negative"),
    pytest.param(mm(kind=H, value_type=I64, value=1), kind_error("histogram", "i64"), id="histogram-i64"),
    pytest.param(mm(kind=UDC, value_type=U64, value=1), kind_error("up_down_counter", "u64"), id="updown-u64"),
    # counter sign
    pytest.param(mm(value_type=F64, value=-0.5), NEGATIVE, id="counter-f64-negative"),
    # attributes
    pytest.param(mm(attributes=[1]), ATTRS_OBJECT, id="attributes-list"),
    pytest.param(mm(attributes="s"), ATTRS_OBJECT, id="attributes-str"),
    pytest.param(mm(attributes=1), ATTRS_OBJECT, id="attributes-int"),
    pytest.param(mm(attributes={"": 1}), BLANK_KEY, id="key-empty"),
    pytest.param(mm(attributes={" ": 1}), BLANK_KEY, id="key-space"),
    pytest.param(mm(attributes={"\t\n": 1}), BLANK_KEY, id="key-tab-newline"),
    pytest.param(mm(attributes={"\u3000": 1}), BLANK_KEY, id="key-ideographic-space"),
    pytest.param(mm(attributes={"k": None}), NULL, id="value-null"),
    pytest.param(mm(attributes={"k": float("nan")}), NULL, id="value-nan"),
    pytest.param(mm(attributes={"k": {}}), NOT_PRIMITIVE, id="value-object"),
    pytest.param(mm(attributes={"k": {"a": 1}}), NOT_PRIMITIVE, id="value-nonempty-object"),
    pytest.param(mm(attributes={"k": 2**63}), TOO_BIG, id="value-above-i64"),
    pytest.param(mm(attributes={"k": []}), EMPTY_ARRAY, id="array-empty"),
    pytest.param(mm(attributes={"k": [None]}), NULL, id="array-null-first"),
    pytest.param(mm(attributes={"k": [None, 1]}), NULL, id="array-null-then-int"),
    pytest.param(mm(attributes={"k": [None, [1]]}), NULL, id="array-null-then-array"),
    pytest.param(mm(attributes={"k": [float("nan")]}), NULL, id="array-nan-first"),
    pytest.param(mm(attributes={"k": [{}]}), NOT_PRIMITIVE, id="array-object-first"),
    pytest.param(mm(attributes={"k": [{}, 1]}), NOT_PRIMITIVE, id="array-object-then-int"),
    pytest.param(mm(attributes={"k": [[1]]}), NESTED_ARRAY, id="array-of-arrays"),
    pytest.param(mm(attributes={"k": [[1], None]}), NESTED_ARRAY, id="array-array-then-null"),
    pytest.param(mm(attributes={"k": [[1], 1]}), NESTED_ARRAY, id="array-array-then-int"),
    pytest.param(mm(attributes={"k": [1, "a"]}), MIXED_ARRAY, id="array-int-str"),
    pytest.param(mm(attributes={"k": [1, 2.5]}), MIXED_ARRAY, id="array-int-float"),
    pytest.param(mm(attributes={"k": [1.0, 2]}), MIXED_ARRAY, id="array-float-int"),
    pytest.param(mm(attributes={"k": [1, True]}), MIXED_ARRAY, id="array-int-bool"),
    pytest.param(mm(attributes={"k": [True, 1]}), MIXED_ARRAY, id="array-bool-int"),
    # a later element of another type (null, array, object included) is a type mix
    pytest.param(mm(attributes={"k": [1, None]}), MIXED_ARRAY, id="array-int-then-null"),
    pytest.param(mm(attributes={"k": ["a", "b", None]}), MIXED_ARRAY, id="array-str-then-null"),
    pytest.param(mm(attributes={"k": [1.5, float("nan")]}), MIXED_ARRAY, id="array-float-then-nan"),
    pytest.param(mm(attributes={"k": [True, None]}), MIXED_ARRAY, id="array-bool-then-null"),
    pytest.param(mm(attributes={"k": [1, [1]]}), MIXED_ARRAY, id="array-int-then-array"),
    pytest.param(mm(attributes={"k": [1, {}]}), MIXED_ARRAY, id="array-int-then-object"),
    pytest.param(mm(attributes={"k": [1, 2**63]}), MIXED_ARRAY, id="array-i64-then-u64"),
    # the first element is validated as a value of its own
    pytest.param(mm(attributes={"k": [[]]}), EMPTY_ARRAY, id="array-of-empty-array"),
    pytest.param(mm(attributes={"k": [[None]]}), NULL, id="array-of-array-of-null"),
    pytest.param(mm(attributes={"k": [[1, "a"]]}), MIXED_ARRAY, id="array-of-mixed-array"),
]


class TestRules:
    @pytest.mark.parametrize(("measurement", "message"), INVALID)
    def test_single_problem(self, events: Any, measurement: MetricMeasurement, message: str) -> None:
        assert_rejected(events, [measurement], f"invalid argument: measurements[0] {message}")

    @pytest.mark.parametrize(("measurement", "message"), INVALID)
    def test_bad_measurement_poisons_the_group(self, events: Any, measurement: MetricMeasurement, message: str) -> None:
        group = [mm("good"), mm("fine", kind=G, value_type=F64, value=0.5), measurement]
        assert_rejected(events, group, f"invalid argument: measurements[2] {message}")

    def test_empty_group(self, events: Any) -> None:
        assert_rejected(events, [], "invalid argument: measurements must contain at least one entry")

    def test_error_type_is_value_error(self) -> None:
        with pytest.raises(ValueError) as info:
            scope.metric("group", [mm(value_type=I64)])
        assert "does not support value_type i64" in str(info.value)

    @pytest.mark.parametrize(
        "measurements",
        [pytest.param([1], id="int"), pytest.param([mm(), "x"], id="str-second"), pytest.param([None], id="none")],
    )
    def test_non_measurements_raise_type_error(self, events: Any, measurements: list[Any]) -> None:
        with pytest.raises(TypeError, match="is not an instance of 'MetricMeasurement'"):
            scope.metric("group", measurements)
        assert events.flush() == []

    @pytest.mark.parametrize("measurements", [5, None], ids=repr)
    def test_non_iterables_raise_type_error(self, events: Any, measurements: Any) -> None:
        with pytest.raises(TypeError):
            scope.metric("group", measurements)
        assert events.flush() == []


# Two problems in one measurement: the first in the reference's check order wins.
# Order: name, boundaries (count, finite, increasing, histogram-only), unit, value, kind/value type,
# counter sign, attributes.
ORDER = [
    pytest.param(mm("1", boundaries=[1.0]), NAME, id="name-before-boundaries"),
    pytest.param(mm("1", kind=H, boundaries=list(range(65))), NAME, id="name-before-boundary-count"),
    pytest.param(mm("1", unit="é", value=-1, attributes=[1]), NAME, id="name-before-everything"),
    pytest.param(mm(kind=H, boundaries=[float("nan")] * 65), TOO_MANY, id="count-before-finite"),
    pytest.param(mm(boundaries=list(range(65))), TOO_MANY, id="count-before-histogram-only"),
    pytest.param(mm(kind=H, boundaries=[2, 1, float("nan")]), FINITE, id="finite-before-increasing"),
    pytest.param(mm(kind=H, boundaries=[1, 1, float("nan")]), FINITE, id="finite-before-duplicate"),
    pytest.param(mm(boundaries=[float("inf")]), FINITE, id="finite-before-histogram-only"),
    pytest.param(mm(kind=G, boundaries=[2, 1]), INCREASING, id="increasing-before-histogram-only"),
    pytest.param(mm(unit="x" * 64, boundaries=[1.0]), HISTOGRAM_ONLY, id="histogram-only-before-unit"),
    pytest.param(mm(value=-1, boundaries=[]), HISTOGRAM_ONLY, id="histogram-only-before-value"),
    pytest.param(mm(kind=H, unit="é", boundaries=[2, 1]), INCREASING, id="increasing-before-unit"),
    pytest.param(mm(unit="x" * 64, value=-1), UNIT, id="unit-before-value"),
    pytest.param(mm(unit="é", value_type=I64), UNIT, id="unit-before-kind"),
    pytest.param(mm(value_type=I64, value=1.5), I64_VALUE, id="value-before-kind"),
    pytest.param(mm(kind=UDC, value=-1), U64_VALUE, id="value-before-kind-updown"),
    pytest.param(mm(value_type=I64, value=-1), kind_error("counter", "i64"), id="kind-before-sign"),
    pytest.param(mm(value_type=I64, attributes=[1]), kind_error("counter", "i64"), id="kind-before-attributes"),
    pytest.param(mm(value_type=F64, value=-1.0, attributes=[1]), NEGATIVE, id="sign-before-attributes"),
    pytest.param(mm(value=-1, attributes=[1]), U64_VALUE, id="value-before-attributes"),
    # attribute entries are checked in sorted key order, key then value
    pytest.param(mm(attributes={"a": None, "": 1}), BLANK_KEY, id="blank-key-sorts-first"),
    pytest.param(mm(attributes={"": 1, "a": None}), BLANK_KEY, id="blank-key-first"),
    pytest.param(mm(attributes={"a": None, "\u3000": 1}), NULL, id="null-sorts-before-blank-key"),
    pytest.param(mm(attributes={"b": None, "a": {}}), NOT_PRIMITIVE, id="sorted-a-before-b"),
    pytest.param(mm(attributes={"b": [], "a": None}), NULL, id="sorted-a-before-b-2"),
    pytest.param(mm(attributes={"a": None, "b": {}}), NULL, id="sorted-already"),
]


class TestReportingOrder:
    @pytest.mark.parametrize(("measurement", "message"), ORDER)
    def test_first_problem_wins(self, events: Any, measurement: MetricMeasurement, message: str) -> None:
        assert_rejected(events, [measurement], f"invalid argument: measurements[0] {message}")

    def test_first_bad_index_is_reported(self, events: Any) -> None:
        group = [mm("a"), mm("1"), mm("b", value_type=I64)]
        assert_rejected(events, group, f"invalid argument: measurements[1] {NAME}")

    def test_later_index(self, events: Any) -> None:
        group = [mm("a"), mm("b"), mm("c"), mm("d", unit="é")]
        assert_rejected(events, group, f"invalid argument: measurements[3] {UNIT}")

    def test_metadata_is_converted_before_measurements_are_validated(self, events: Any) -> None:
        assert_rejected(events, [mm(value=-1)], "Failed to convert to JSON: unsupported type object", metadata=object())
        assert_rejected(events, [], "Failed to convert to JSON: unsupported type object", metadata=object())

    @pytest.mark.parametrize(
        ("timestamp", "error", "message"),
        [
            ("later", TypeError, "timestamp must be a datetime.datetime object"),
            (datetime(2026, 1, 1), ValueError, "timestamp datetime must be timezone-aware"),
        ],
        ids=["str", "naive"],
    )
    @pytest.mark.parametrize("measurements", [[], [mm(value=-1)]], ids=["empty", "invalid"])
    def test_timestamp_is_checked_before_measurements_are_validated(
        self, events: Any, timestamp: Any, error: type, message: str, measurements: list[MetricMeasurement]
    ) -> None:
        with pytest.raises(error, match=exactly(message)):
            scope.metric("group", measurements, timestamp=timestamp)
        assert events.flush() == []

    def test_metadata_is_converted_before_the_timestamp_is_checked(self) -> None:
        with pytest.raises(ValueError, match=exactly("Failed to convert to JSON: unsupported type object")):
            scope.metric("group", [mm()], metadata=object(), timestamp="later")


class TestDescriptorConflicts:
    @pytest.mark.parametrize(
        "group",
        [
            pytest.param([mm("a"), mm("a", kind=G)], id="kind"),
            pytest.param([mm("a", unit="x"), mm("a")], id="unit-vs-none"),
            pytest.param([mm("a"), mm("a", unit="")], id="none-vs-empty-unit"),
            pytest.param([mm("a", unit="ms"), mm("a", unit="s")], id="unit"),
            pytest.param([mm("a"), mm("a", value_type=F64, value=1.0)], id="value-type"),
            pytest.param([mm("lat"), mm("LAT", kind=G)], id="case-insensitive"),
        ],
    )
    def test_conflict_between_two(self, events: Any, group: list[MetricMeasurement]) -> None:
        assert_rejected(
            events, group, "invalid argument: measurements[1] conflicts with the descriptor for measurements[0]"
        )

    def test_same_descriptor_with_different_details_is_fine(self, events: Any) -> None:
        group = [
            mm("a", kind=H, value_type=F64, value=1.0, unit="ms", description="x", boundaries=[1.0]),
            mm(
                "A",
                kind=H,
                value_type=F64,
                value=2.0,
                unit="ms",
                description="y",
                boundaries=[2.0],
                attributes={"k": 1},
            ),
        ]
        entries = emitted(events, group).data["measurements"]
        assert [e["value"] for e in entries] == [1.0, 2.0]

    def test_unrelated_names_do_not_conflict(self, events: Any) -> None:
        group = [mm("a"), mm("b", kind=G, value_type=I64, value=-1), mm("c", kind=H, value_type=F64, value=1.0)]
        assert len(emitted(events, group).data["measurements"]) == 3

    def test_conflict_is_reported_against_the_latest_earlier_entry(self, events: Any) -> None:
        group = [mm("x"), mm("b"), mm("X"), mm("x", kind=G)]
        assert_rejected(
            events, group, "invalid argument: measurements[3] conflicts with the descriptor for measurements[2]"
        )

    def test_conflict_index_with_repeated_names(self, events: Any) -> None:
        group = [mm("a"), mm("A"), mm("a", kind=G)]
        assert_rejected(
            events, group, "invalid argument: measurements[2] conflicts with the descriptor for measurements[1]"
        )

    def test_first_conflict_in_group_order(self, events: Any) -> None:
        group = [mm("a"), mm("b"), mm("a", kind=G), mm("b", kind=G)]
        assert_rejected(
            events, group, "invalid argument: measurements[2] conflicts with the descriptor for measurements[0]"
        )

    def test_invalid_measurements_are_reported_before_conflicts(self, events: Any) -> None:
        group = [mm("a"), mm("a", kind=G), mm("b", value_type=I64)]
        assert_rejected(events, group, f"invalid argument: measurements[2] {kind_error('counter', 'i64')}")

    def test_invalid_attributes_later_win_over_earlier_conflict(self, events: Any) -> None:
        group = [mm("a"), mm("a", kind=G), mm("b", attributes={"k": None})]
        assert_rejected(events, group, f"invalid argument: measurements[2] {NULL}")
