"""Reading metric marks: classification, envelope parsing and validation of their measurements.

A mark whose ``data_schema`` name is ``nemo.relay.metric_measurements`` belongs to the metric signal
whatever else it holds: with version ``"1"`` and a valid ``{"measurements": [...]}`` body it is a
metric; anything else is an *invalid* metric mark, dropped everywhere and reported. The body is
read like the reference's typed envelope (unknown fields refused, fields visited in sorted key
order, the same error texts), then each measurement is checked with the rules ``scope.metric``
applies before emitting (``nemo_relay._core.metrics``), then descriptor conflicts within the mark.
"""

from __future__ import annotations

from nemo_relay._core.metrics import METRIC_SCHEMA, MetricMeasurement, _problem
from nemo_relay._core.types import MetricKind, MetricValueType

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.events import MarkEvent, ScopeEvent

METRIC_SCHEMA_NAME = METRIC_SCHEMA["name"]
METRIC_SCHEMA_VERSION = METRIC_SCHEMA["version"]

METRIC = "metric"
INVALID = "invalid"
OTHER = "other"

_KINDS = {kind.label: kind for kind in MetricKind}
_VALUE_TYPES = {value_type.label: value_type for value_type in MetricValueType}
_FIELDS = ("name", "kind", "value_type", "value", "unit", "description", "attributes", "boundaries")
_REQUIRED = ("name", "kind", "value_type", "value")


class _Invalid(Exception):
    """A reason a metric mark is invalid (the text after ``was dropped atomically:``)."""


def is_reserved(event: ScopeEvent | MarkEvent) -> bool:
    """Whether ``event`` is a mark under the reserved metric schema name (any version)."""
    schema = event._schema
    return schema is not None and schema.get("name") == METRIC_SCHEMA_NAME


def parse(event: MarkEvent) -> tuple[str, list[MetricMeasurement] | str | None]:
    """``(METRIC, measurements)``, ``(INVALID, reason)`` or ``(OTHER, None)`` for one event.

    The result for the last event is remembered, since the fan-out, the log and the metric exporters
    may each ask about the same event on the dispatcher thread.
    """
    global _last
    last = _last
    if last is not None and last[0] is event:
        return last[1]
    if not is_reserved(event):
        result: tuple[str, list[MetricMeasurement] | str | None] = (OTHER, None)
    else:
        try:
            result = (METRIC, _measurements(event))
        except _Invalid as exc:
            result = (INVALID, str(exc))
    _last = (event, result)
    return result


_last: tuple[object, tuple[str, list[MetricMeasurement] | str | None]] | None = None


def invalid_message(mark_name: str, reason: str) -> str:
    """The runtime-diagnostic message for an invalid metric mark."""
    return f'OpenTelemetry metric mark "{mark_name}" was dropped atomically: {reason}'


def _measurements(event: MarkEvent) -> list[MetricMeasurement]:
    schema = event._schema or {}
    version = schema.get("version")
    if version != METRIC_SCHEMA_VERSION:
        raise _Invalid(f'unsupported metric schema version "{version}"')
    data = event.data
    if data is None:
        raise _Invalid("metric mark data is missing")
    raw = _envelope(data)
    if not raw:
        raise _Invalid("measurements must contain at least one entry")
    measurements = [_measurement(item) for item in raw]
    for index, measurement in enumerate(measurements):
        problem = _problem(measurement)
        if problem is not None:
            raise _Invalid(f"measurements[{index}] {problem}")
    latest: dict[str, tuple[int, MetricMeasurement]] = {}
    for index, measurement in enumerate(measurements):
        key = measurement.name.lower()
        seen = latest.get(key)
        if seen is not None and descriptor(seen[1]) != descriptor(measurement):
            raise _Invalid(f"measurements[{index}] conflicts with the descriptor for measurements[{seen[0]}]")
        latest[key] = (index, measurement)
    return measurements


def descriptor(measurement: MetricMeasurement) -> tuple[MetricKind, MetricValueType, str | None]:
    """What fixes an instrument for a destination's lifetime: kind, value type and unit (``None`` ≠ ``""``)."""
    return (measurement.kind, measurement.value_type, measurement.unit)


# --- the typed envelope, read the way the reference's deserializer reads it -------------------------


def _envelope_error(detail: str) -> _Invalid:
    return _Invalid(f"invalid metric envelope: {detail}")


def _unexpected(value: Any) -> str:
    if value is None:
        return "null"
    t = type(value)
    if t is bool:
        return f"boolean `{'true' if value else 'false'}`"
    if t is int:
        return f"integer `{value}`"
    if t is float:
        return f"floating point `{value!r}`"
    if t is str:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'string "{escaped}"'
    return "sequence" if t is list else "map"


def _invalid_type(value: Any, expected: str) -> _Invalid:
    return _envelope_error(f"invalid type: {_unexpected(value)}, expected {expected}")


def _envelope(data: Any) -> list[Any]:
    if type(data) is list:  # a struct may also be read from an array of its fields
        if not data:
            raise _envelope_error("invalid length 0, expected struct MetricEnvelope with 1 element")
        if len(data) > 1:
            raise _envelope_error(f"invalid length {len(data)}, expected fewer elements in array")
        return _sequence(data[0])
    if type(data) is not dict:
        raise _invalid_type(data, "struct MetricEnvelope")
    measurements: list[Any] | None = None
    for key in sorted(data):
        if key != "measurements":
            raise _envelope_error(f"unknown field `{key}`, expected `measurements`")
        measurements = _sequence(data[key])
    if measurements is None:
        raise _envelope_error("missing field `measurements`")
    return measurements


def _sequence(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _invalid_type(value, "a sequence")
    return value


def _measurement(item: Any) -> MetricMeasurement:
    if type(item) is list:
        if len(item) < len(_FIELDS):
            raise _envelope_error(
                f"invalid length {len(item)}, expected struct MetricMeasurement with {len(_FIELDS)} elements"
            )
        if len(item) > len(_FIELDS):
            raise _envelope_error(f"invalid length {len(item)}, expected fewer elements in array")
        fields = dict(zip(_FIELDS, item, strict=True))
        order: list[str] = list(_FIELDS)
    elif type(item) is dict:
        fields = item
        order = sorted(item)
    else:
        raise _invalid_type(item, "struct MetricMeasurement")
    values: dict[str, Any] = {}
    for key in order:
        if key not in _FIELDS:
            expected = ", ".join(f"`{name}`" for name in _FIELDS)
            raise _envelope_error(f"unknown field `{key}`, expected one of {expected}")
        values[key] = _field(key, fields[key])
    for key in _REQUIRED:
        if key not in values:
            raise _envelope_error(f"missing field `{key}`")
    return MetricMeasurement(
        values["name"],
        values["kind"],
        values["value_type"],
        values["value"],
        unit=values.get("unit"),
        description=values.get("description"),
        attributes=values.get("attributes"),
        boundaries=values.get("boundaries"),
    )


def _field(key: str, value: Any) -> Any:
    if key == "name":
        if type(value) is not str:
            raise _invalid_type(value, "a string")
        return value
    if key in ("unit", "description"):
        if value is not None and type(value) is not str:
            raise _invalid_type(value, "a string")
        return value
    if key == "kind":
        return _variant(value, _KINDS)
    if key == "value_type":
        return _variant(value, _VALUE_TYPES)
    if key == "boundaries":
        if value is None:
            return None
        if type(value) is not list:
            raise _invalid_type(value, "a sequence")
        for bound in value:
            if type(bound) not in (int, float):
                raise _invalid_type(bound, "f64")
        return [float(bound) for bound in value]
    return value  # value and attributes are any JSON, checked by the measurement rules


def _variant(value: Any, variants: dict[str, Any]) -> Any:
    name = value
    if type(value) is dict and len(value) == 1:  # the map form of a unit variant: {"counter": null}
        (name,) = value
        if value[name] is not None:
            raise _invalid_type(value[name], "unit variant")
    elif type(value) is not str:
        raise _invalid_type(value, "string or map")
    if name not in variants:
        expected = ", ".join(f"`{label}`" for label in variants)
        raise _envelope_error(f"unknown variant `{name}`, expected one of {expected}")
    return variants[name]
