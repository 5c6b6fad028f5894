"""Metric measurements and their validation (all-or-nothing for a group)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nemo_relay._core.errors import InvalidValueError
from nemo_relay._core.jsonconv import copy_json, to_json
from nemo_relay._core.types import JsonValue, MetricKind, MetricValueType, type_name

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

METRIC_SCHEMA = {"name": "nemo.relay.metric_measurements", "version": "1"}

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_FIRST = frozenset(_LETTERS)
_NAME_REST = frozenset(_LETTERS + "0123456789_.-/")
_I64_MAX = 2**63 - 1
_I64_MIN = -(2**63)
_ALLOWED_VALUE_TYPES = {
    MetricKind.Counter: (MetricValueType.U64, MetricValueType.F64),
    MetricKind.UpDownCounter: (MetricValueType.I64, MetricValueType.F64),
    MetricKind.Gauge: (MetricValueType.U64, MetricValueType.I64, MetricValueType.F64),
    MetricKind.Histogram: (MetricValueType.U64, MetricValueType.F64),
}


class MetricMeasurement:
    """One measurement of a metric mark: instrument name, kind, value type, value and descriptors."""

    __slots__ = ("_name", "_kind", "_value_type", "_value", "_unit", "_description", "_attributes", "_boundaries")

    def __init__(
        self,
        name: str,
        kind: MetricKind,
        value_type: MetricValueType,
        value: Any,
        unit: str | None = None,
        description: str | None = None,
        attributes: Any = None,
        boundaries: Sequence[float] | None = None,
    ) -> None:
        _expect(name, str, "name")
        _expect(kind, MetricKind, "kind")
        _expect(value_type, MetricValueType, "value_type")
        if unit is not None:
            _expect(unit, str, "unit")
        if description is not None:
            _expect(description, str, "description")
        if boundaries is not None:
            if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, Sequence):
                raise TypeError(
                    f"argument 'boundaries': '{type_name(boundaries)}' object is not an instance of 'Sequence'"
                )
            boundaries = [_real(b) for b in boundaries]
        self._name = str(name)
        self._kind = kind
        self._value_type = value_type
        self._value = None if value is None else to_json(value)
        self._unit = unit
        self._description = description
        self._attributes = None if attributes is None else to_json(attributes)
        self._boundaries = boundaries

    @property
    def name(self) -> str:
        """Instrument name (validated when emitted)."""
        return self._name

    @property
    def kind(self) -> MetricKind:
        """Instrument kind."""
        return self._kind

    @property
    def value_type(self) -> MetricValueType:
        """Numeric type of ``value``."""
        return self._value_type

    @property
    def value(self) -> JsonValue:
        """The measured value (a copy)."""
        return copy_json(self._value)

    @property
    def unit(self) -> str | None:
        """UCUM-style unit, at most 63 ASCII bytes."""
        return self._unit

    @property
    def description(self) -> str | None:
        """Free-text description of the instrument."""
        return self._description

    @property
    def attributes(self) -> JsonValue:
        """Attribute set: primitive values or homogeneous primitive arrays (a copy)."""
        return copy_json(self._attributes)

    @property
    def boundaries(self) -> list[float] | None:
        """Explicit histogram bucket boundaries, strictly increasing."""
        return None if self._boundaries is None else list(self._boundaries)

    def __repr__(self) -> str:
        name = self._name.replace("\\", "\\\\").replace('"', '\\"')  # escaped like the reference's Debug form
        return f'<MetricMeasurement name="{name}" kind={self._kind.label} value_type={self._value_type.label}>'

    def to_dict(self) -> dict[str, JsonValue]:
        """The measurement as it appears in a metric mark's ``data``."""
        return {
            "name": self._name,
            "kind": self._kind.label,
            "value_type": self._value_type.label,
            "value": copy_json(self._value),
            "unit": self._unit,
            "description": self._description,
            "attributes": copy_json(self._attributes),
            "boundaries": self.boundaries,  # type: ignore[dict-item]
        }


def _expect(value: object, cls: type, argument: str) -> None:
    if not isinstance(value, cls):
        raise TypeError(f"argument '{argument}': '{type_name(value)}' object is not an instance of '{cls.__name__}'")


def _real(value: object) -> float:
    if not isinstance(value, (int, float)):
        raise TypeError(f"argument 'boundaries': must be real numbers, not {type_name(value)}")
    return float(value)


def measurement_data(measurements: object) -> dict[str, JsonValue]:
    """Validate a group of measurements and build the metric mark's ``data``; raise before emitting anything."""
    group = list(measurements)  # type: ignore[call-overload]
    # Like the reference: every measurement is checked on its own first, then descriptor conflicts.
    for index, item in enumerate(group):
        if not isinstance(item, MetricMeasurement):
            raise TypeError(
                f"argument 'measurements[{index}]': '{type_name(item)}' object is not an instance of "
                "'MetricMeasurement'"
            )
    if not group:
        raise InvalidValueError("measurements must contain at least one entry")
    for index, item in enumerate(group):
        problem = _problem(item)
        if problem is not None:
            raise InvalidValueError(f"measurements[{index}] {problem}")
    latest: dict[str, tuple[int, MetricMeasurement]] = {}
    for index, item in enumerate(group):
        key = item._name.lower()
        seen = latest.get(key)
        if seen is not None and _descriptor(seen[1]) != _descriptor(item):
            raise InvalidValueError(f"measurements[{index}] conflicts with the descriptor for measurements[{seen[0]}]")
        latest[key] = (index, item)
    return {"measurements": [item.to_dict() for item in group]}


def _descriptor(m: MetricMeasurement) -> tuple[MetricKind, str | None, MetricValueType]:
    return (m._kind, m._unit, m._value_type)


def _problem(m: MetricMeasurement) -> str | None:
    # Checked in the reference's order, so the first problem reported is the same.
    name = m._name
    if not (0 < len(name) <= 255 and name[0] in _NAME_FIRST and _NAME_REST.issuperset(name)):
        return (
            "name must be 1-255 ASCII bytes, start with a letter, and contain only letters, digits, "
            "'_', '.', '-', or '/'"
        )
    if m._boundaries is not None:
        if len(m._boundaries) > 64:
            return "boundaries must contain at most 64 entries"
        if not all(math.isfinite(b) for b in m._boundaries):
            return "must be finite"
        if any(b >= c for b, c in zip(m._boundaries, m._boundaries[1:], strict=False)):
            return "boundaries must be strictly increasing without duplicates"
        if m._kind is not MetricKind.Histogram:
            return "boundaries are only valid for histogram measurements"
    if m._unit is not None and (not m._unit.isascii() or len(m._unit) > 63):
        return "unit must be ASCII and at most 63 bytes"
    problem = _value_problem(m._value_type, m._value)
    if problem is not None:
        return problem
    if m._value_type not in _ALLOWED_VALUE_TYPES[m._kind]:
        return f"kind {m._kind.label} does not support value_type {m._value_type.label}"
    if m._kind is MetricKind.Counter and m._value < 0:  # type: ignore[operator]
        return "counter values must be non-negative"
    if m._attributes is not None:
        return _attributes_problem(m._attributes)
    return None


def _value_problem(value_type: MetricValueType, value: JsonValue) -> str | None:
    is_int = type(value) is int
    if value_type is MetricValueType.U64:
        if not is_int or not 0 <= value <= _I64_MAX:  # type: ignore[operator]
            return "value must be an unsigned integer no greater than i64::MAX"
    elif value_type is MetricValueType.I64:
        if not is_int or not _I64_MIN <= value <= _I64_MAX:  # type: ignore[operator]
            return "value must be a signed integer"
    elif not (is_int or type(value) is float) or not math.isfinite(value):  # type: ignore[arg-type]
        return "value must be a number"
    return None


def _attributes_problem(attributes: JsonValue) -> str | None:
    if type(attributes) is not dict:
        return "attributes must be a JSON object"
    for key in sorted(attributes):  # the reference checks entries in key order
        if not key.strip():
            return "attributes contains a blank attribute key"
        problem = _attribute_value_problem(attributes[key])
        if problem is not None:
            return problem
    return None


def _attribute_value_problem(value: JsonValue) -> str | None:
    if value is None:
        return "attribute values must not be null"
    if type(value) is dict:
        return "attribute values must be primitive values or homogeneous primitive arrays"
    if type(value) is int and value > _I64_MAX:
        return "attribute values must not exceed the maximum signed 64-bit integer"
    if type(value) is not list:
        return None
    if not value:
        return "attribute arrays must not be empty and untyped"
    # The first element decides the array's type and is validated as a value of its own.
    first = value[0]
    problem = _attribute_value_problem(first)
    if problem is not None:
        return problem
    if type(first) is list:
        return "attribute arrays must contain primitive values"
    kind = _primitive_kind(first)
    if any(_primitive_kind(element) != kind for element in value[1:]):
        return "attribute arrays must contain one primitive type"
    return None


def _primitive_kind(value: JsonValue) -> str:
    if type(value) is int:
        return "i64" if value <= _I64_MAX else "u64"
    return type(value).__name__
