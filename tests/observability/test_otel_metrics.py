"""OpenTelemetry metrics through the public API, against a real OTLP/HTTP receiver and an in-memory reader."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nemo_relay
from nemo_relay import MetricKind, MetricMeasurement, MetricTemporality, MetricValueType, scope, subscribers
from support.otlp_receiver import OtlpReceiver

pytest.importorskip("opentelemetry.sdk.metrics")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.otel.metrics import (
    MetricExporter,
    classify_metric_mark,
    invalid_metric_mark_message,
)
from nemo_relay._core.observability.settings import MetricSettings, SignalEndpointSettings

SCHEMA = {"name": "nemo.relay.metric_measurements", "version": "1"}
C, U, G, H = MetricKind.Counter, MetricKind.UpDownCounter, MetricKind.Gauge, MetricKind.Histogram
U64, I64, F64 = MetricValueType.U64, MetricValueType.I64, MetricValueType.F64

Factory = Callable[..., nemo_relay.OpenTelemetryMetricSubscriber]


@pytest.fixture
def metric_subscriber() -> Iterator[Factory]:
    """``make(endpoint, provider=None, **config)``: a registered metric subscriber, shut down at teardown."""
    made: list[tuple[nemo_relay.OpenTelemetryMetricSubscriber, str]] = []

    def make(endpoint: str, *, provider: Any = None, **fields: Any) -> nemo_relay.OpenTelemetryMetricSubscriber:
        config = nemo_relay.OpenTelemetryMetricConfig(endpoint)
        for key, value in fields.items():
            setattr(config, key, value)
        subscriber = nemo_relay.OpenTelemetryMetricSubscriber(config, meter_provider=provider)
        name = f"otel-metrics-{uuid.uuid4()}"
        subscriber.register(name)
        made.append((subscriber, name))
        return subscriber

    try:
        yield make
    finally:
        for subscriber, name in made:
            subscriber.deregister(name)
            with contextlib.suppress(RuntimeError):  # fault tests leave a failing final export behind
                subscriber.shutdown()


class Memory:
    """An in-memory reader plus the subscriber recording into it."""

    def __init__(self, make: Factory, **fields: Any) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.subscriber = make("http://127.0.0.1:9", provider=self.provider, **fields)

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """``{metric name: [(attributes, value or histogram count), ...]}`` of one collection."""
        subscribers.flush()
        data = self.reader.get_metrics_data()
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        if data is None:
            return out
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    out[metric.name] = [
                        (dict(p.attributes or {}), getattr(p, "value", getattr(p, "count", None)))
                        for p in metric.data.data_points
                    ]
        return out

    def diagnostic(self, code: str) -> nemo_relay.OpenTelemetryRuntimeDiagnostic | None:
        subscribers.flush()
        return self.subscriber.runtime_diagnostics().get(code)


@pytest.fixture
def memory(metric_subscriber: Factory) -> Memory:
    return Memory(metric_subscriber)


def raw(name: str, data: Any, schema: dict[str, str] | None = None) -> None:
    """Emit a mark under the reserved schema with arbitrary ``data``."""
    scope.event(name, data=data, data_schema=schema or SCHEMA)


# --- end to end ---------------------------------------------------------------------------------------


def test_measurements_reach_the_backend(otlp_receiver: OtlpReceiver, metric_subscriber: Factory) -> None:
    subscriber = metric_subscriber(otlp_receiver.endpoint, service_name="svc", instrumentation_scope="relay-metrics")
    attributes = {"route": "/a", "ok": True, "n": 2, "f": 1.5, "tags": ["x", "y"]}
    scope.metric(
        "group",
        [
            MetricMeasurement("calls", C, U64, 3, unit="1", description="tool calls", attributes=attributes),
            MetricMeasurement("cost", C, F64, 2.5),
            MetricMeasurement("inflight", U, I64, -4),
            MetricMeasurement("temperature", G, F64, 0.5),
            MetricMeasurement("latency", H, U64, 5, unit="ms", boundaries=[1.0, 10.0]),
            MetricMeasurement("score", H, F64, 0.5),
        ],
    )
    scope.metric("again", [MetricMeasurement("calls", C, U64, 4, unit="1", attributes=attributes)])
    subscriber.force_flush()
    metrics = {m["name"]: m for m in otlp_receiver.metrics()}
    calls = metrics["calls"]
    assert (calls["type"], calls["unit"], calls["description"], calls["is_monotonic"]) == (
        "sum",
        "1",
        "tool calls",
        True,
    )
    assert calls["temporality"] == "CUMULATIVE"
    (point,) = calls["data_points"]
    assert (point["value"], point["value_kind"], point["attributes"]) == (7, "int", attributes)
    assert metrics["cost"]["data_points"][0]["value_kind"] == "double"
    assert metrics["inflight"]["is_monotonic"] is False and metrics["inflight"]["data_points"][0]["value"] == -4
    assert metrics["temperature"]["type"] == "gauge"
    latency = metrics["latency"]["data_points"][0]
    assert (latency["explicit_bounds"], latency["bucket_counts"], latency["sum"]) == ([1.0, 10.0], [0, 1, 0], 5.0)
    assert metrics["score"]["data_points"][0]["explicit_bounds"][:3] == [0.0, 5.0, 10.0]  # SDK default buckets
    assert calls["resource"] == {"service.name": "svc"} and calls["scope"]["name"] == "relay-metrics"
    assert otlp_receiver.requests()[0]["path"] == "/v1/metrics"


@pytest.mark.parametrize(
    ("temporality", "expected"),
    [
        (MetricTemporality.Cumulative, {"c": "CUMULATIVE", "u": "CUMULATIVE", "h": "CUMULATIVE"}),
        (MetricTemporality.Delta, {"c": "DELTA", "u": "CUMULATIVE", "h": "DELTA"}),
        (MetricTemporality.LowMemory, {"c": "DELTA", "u": "CUMULATIVE", "h": "DELTA"}),
    ],
)
def test_temporality(
    temporality: MetricTemporality, expected: dict[str, str], otlp_receiver: OtlpReceiver, metric_subscriber: Factory
) -> None:
    subscriber = metric_subscriber(otlp_receiver.endpoint, temporality=temporality)
    group = [MetricMeasurement("c", C, U64, 1), MetricMeasurement("u", U, I64, 1), MetricMeasurement("h", H, U64, 1)]
    scope.metric("first", group)
    subscriber.force_flush()
    scope.metric("second", group)
    subscriber.force_flush()
    last = {m["name"]: m for m in otlp_receiver.metrics()[-3:]}
    assert {name: metric["temporality"] for name, metric in last.items()} == expected
    cumulative = expected["c"] == "CUMULATIVE"
    assert last["c"]["data_points"][0]["value"] == (2 if cumulative else 1)
    assert last["u"]["data_points"][0]["value"] == 2  # up-down counters stay cumulative


def test_periodic_reader_exports_on_its_interval(otlp_receiver: OtlpReceiver, metric_subscriber: Factory) -> None:
    metric_subscriber(otlp_receiver.endpoint, export_interval_millis=100)
    scope.metric("tick", [MetricMeasurement("ticks", C, U64, 1)])
    otlp_receiver.wait_for("metrics", lambda items: any(m["name"] == "ticks" for m in items), timeout=10)


# --- validation: every rule drops the whole mark and says why ------------------------------------------

OK = {"name": "x", "kind": "counter", "value_type": "u64", "value": 1}

INVALID_MARKS: list[tuple[Any, str]] = [
    (None, "metric mark data is missing"),
    (5, "invalid metric envelope: invalid type: integer `5`, expected struct MetricEnvelope"),
    ("s", 'invalid metric envelope: invalid type: string "s", expected struct MetricEnvelope'),
    (1.5, "invalid metric envelope: invalid type: floating point `1.5`, expected struct MetricEnvelope"),
    (True, "invalid metric envelope: invalid type: boolean `true`, expected struct MetricEnvelope"),
    ([], "invalid metric envelope: invalid length 0, expected struct MetricEnvelope with 1 element"),
    ({}, "invalid metric envelope: missing field `measurements`"),
    ({"measurements": [OK], "extra": 1}, "invalid metric envelope: unknown field `extra`, expected `measurements`"),
    ({"measurements": None}, "invalid metric envelope: invalid type: null, expected a sequence"),
    ({"measurements": {}}, "invalid metric envelope: invalid type: map, expected a sequence"),
    ({"measurements": []}, "measurements must contain at least one entry"),
    ({"measurements": [5]}, "invalid metric envelope: invalid type: integer `5`, expected struct MetricMeasurement"),
    ({"measurements": [{**OK, "extra": 1}]}, "invalid metric envelope: unknown field `extra`, expected one of `name`"),
    ({"measurements": [{k: v for k, v in OK.items() if k != "name"}]}, "missing field `name`"),
    ({"measurements": [{k: v for k, v in OK.items() if k != "value"}]}, "missing field `value`"),
    ({"measurements": [{**OK, "name": 5}]}, "invalid type: integer `5`, expected a string"),
    ({"measurements": [{**OK, "name": None}]}, "invalid type: null, expected a string"),
    ({"measurements": [{**OK, "kind": "bogus"}]}, "unknown variant `bogus`, expected one of `counter`"),
    ({"measurements": [{**OK, "kind": None}]}, "invalid type: null, expected string or map"),
    ({"measurements": [{**OK, "value_type": "u32"}]}, "unknown variant `u32`, expected one of `u64`, `i64`, `f64`"),
    ({"measurements": [{**OK, "unit": 5}]}, "invalid type: integer `5`, expected a string"),
    ({"measurements": [{**OK, "description": 3}]}, "invalid type: integer `3`, expected a string"),
    ({"measurements": [{**OK, "kind": "histogram", "boundaries": "x"}]}, 'string "x", expected a sequence'),
    ({"measurements": [{**OK, "kind": "histogram", "boundaries": ["x"]}]}, 'string "x", expected f64'),
    ({"measurements": [{**OK, "name": "9lives"}]}, "measurements[0] name must be 1-255 ASCII bytes"),
    ({"measurements": [{**OK, "name": "a" * 256}]}, "measurements[0] name must be 1-255 ASCII bytes"),
    ({"measurements": [{**OK, "name": "sp ace"}]}, "measurements[0] name must be 1-255 ASCII bytes"),
    ({"measurements": [{**OK, "value": -1}]}, "measurements[0] value must be an unsigned integer no greater than"),
    ({"measurements": [{**OK, "value": 2**63}]}, "measurements[0] value must be an unsigned integer no greater than"),
    ({"measurements": [{**OK, "value": 1.0}]}, "measurements[0] value must be an unsigned integer"),
    ({"measurements": [{**OK, "value": True}]}, "measurements[0] value must be an unsigned integer"),
    ({"measurements": [{**OK, "value": "1"}]}, "measurements[0] value must be an unsigned integer"),
    ({"measurements": [{**OK, "value_type": "i64", "value": 1.5}]}, "measurements[0] value must be a signed integer"),
    ({"measurements": [{**OK, "value_type": "f64", "value": "x"}]}, "measurements[0] value must be a number"),
    ({"measurements": [{**OK, "value_type": "i64"}]}, "kind counter does not support value_type i64"),
    ({"measurements": [{**OK, "kind": "histogram", "value_type": "i64"}]}, "does not support value_type i64"),
    ({"measurements": [{**OK, "kind": "up_down_counter"}]}, "kind up_down_counter does not support value_type u64"),
    ({"measurements": [{**OK, "value_type": "f64", "value": -0.5}]}, "counter values must be non-negative"),
    ({"measurements": [{**OK, "unit": "é"}]}, "unit must be ASCII and at most 63 bytes"),
    ({"measurements": [{**OK, "unit": "u" * 64}]}, "unit must be ASCII and at most 63 bytes"),
    ({"measurements": [{**OK, "boundaries": [1.0]}]}, "boundaries are only valid for histogram measurements"),
    (
        {"measurements": [{**OK, "kind": "histogram", "boundaries": [2.0, 1.0]}]},
        "boundaries must be strictly increasing",
    ),
    ({"measurements": [{**OK, "kind": "histogram", "boundaries": [1.0] * 2}]}, "strictly increasing"),
    (
        {"measurements": [{**OK, "kind": "histogram", "boundaries": [float(i) for i in range(65)]}]},
        "boundaries must contain at most 64 entries",
    ),
    ({"measurements": [{**OK, "attributes": [1]}]}, "measurements[0] attributes must be a JSON object"),
    ({"measurements": [{**OK, "attributes": {" ": 1}}]}, "attributes contains a blank attribute key"),
    ({"measurements": [{**OK, "attributes": {"a": None}}]}, "attribute values must not be null"),
    ({"measurements": [{**OK, "attributes": {"a": {}}}]}, "primitive values or homogeneous primitive arrays"),
    ({"measurements": [{**OK, "attributes": {"a": 2**63}}]}, "must not exceed the maximum signed 64-bit integer"),
    ({"measurements": [{**OK, "attributes": {"a": []}}]}, "attribute arrays must not be empty and untyped"),
    ({"measurements": [{**OK, "attributes": {"a": [1, 2.5]}}]}, "attribute arrays must contain one primitive type"),
    ({"measurements": [{**OK, "attributes": {"a": [[1]]}}]}, "attribute arrays must contain primitive values"),
    (
        {"measurements": [OK, {**OK, "name": "X", "kind": "gauge"}]},
        "measurements[1] conflicts with the descriptor for measurements[0]",
    ),
]


@pytest.mark.parametrize(("data", "reason"), INVALID_MARKS)
def test_invalid_metric_marks_are_dropped_atomically(data: Any, reason: str, memory: Memory) -> None:
    raw("bad", data)
    scope.metric("good", [MetricMeasurement("valid", C, U64, 1)])
    assert "x" not in memory.points() and "X" not in memory.points()
    diagnostic = memory.diagnostic("otel.metric_mark_invalid")
    assert diagnostic is not None and diagnostic.count == 1
    assert diagnostic.message.startswith('OpenTelemetry metric mark "bad" was dropped atomically: ')
    assert reason in diagnostic.message


def test_unsupported_schema_version_is_invalid_even_for_logs(memory: Memory) -> None:
    raw("v2", {"measurements": [OK]}, {**SCHEMA, "version": "2"})
    diagnostic = memory.diagnostic("otel.metric_mark_invalid")
    assert diagnostic is not None and 'unsupported metric schema version "2"' in diagnostic.message


def test_one_bad_measurement_drops_the_whole_mark(memory: Memory) -> None:
    raw("mixed", {"measurements": [OK, {**OK, "name": "y", "value": -1}]})
    assert memory.points() == {}


def test_sequence_forms_and_optional_nulls_are_accepted(memory: Memory) -> None:
    raw("seq", [[OK]])
    raw("fields", {"measurements": [["y", "gauge", "f64", 2, None, None, None, None]]})
    raw("nulls", {"measurements": [{**OK, "name": "z", "unit": None, "description": None, "attributes": None}]})
    raw("gauge-int-as-f64", {"measurements": [{"name": "g", "kind": "gauge", "value_type": "f64", "value": 1}]})
    points = memory.points()
    assert points["x"] == [({}, 1)] and points["y"] == [({}, 2.0)] and points["z"] == [({}, 1)]
    assert points["g"] == [({}, 1.0)] and isinstance(points["g"][0][1], float)


# --- destination rules ----------------------------------------------------------------------------------


def test_descriptor_conflicts(memory: Memory) -> None:
    scope.metric("first", [MetricMeasurement("calls", C, U64, 1, description="one", unit=None)])
    scope.metric("kind", [MetricMeasurement("CALLS", G, U64, 1)])
    scope.metric("type", [MetricMeasurement("calls", C, F64, 1.0)])
    scope.metric("unit", [MetricMeasurement("calls", C, U64, 1, unit="")])  # None and "" differ
    scope.metric("description-is-free", [MetricMeasurement("Calls", C, U64, 2, description="two")])
    diagnostic = memory.diagnostic("otel.metric_descriptor_conflict")
    assert diagnostic is not None and diagnostic.count == 3
    assert diagnostic.message == (
        'OpenTelemetry metric mark "unit" was dropped atomically: metric "calls" conflicts with its existing '
        "instrument descriptor"
    )
    assert memory.points() == {"calls": [({}, 3)]}  # first-seen name kept


def test_histogram_boundaries_are_fixed_by_the_first_measurement(memory: Memory) -> None:
    scope.metric("h1", [MetricMeasurement("h", H, F64, 1.0, boundaries=[1.0])])
    scope.metric("h2", [MetricMeasurement("h", H, F64, 5.0, boundaries=[2.0])])
    scope.metric("h3", [MetricMeasurement("h", H, F64, 0.5)])
    subscribers.flush()
    data = memory.reader.get_metrics_data()
    assert data is not None
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert (list(point.explicit_bounds), list(point.bucket_counts), point.count) == ([1.0], [2, 1], 3)
    assert memory.diagnostic("otel.metric_descriptor_conflict") is None


def test_instrument_limit(metric_subscriber: Factory) -> None:
    memory = Memory(metric_subscriber, max_instruments=2)
    scope.metric("two", [MetricMeasurement("a", C, U64, 1), MetricMeasurement("b", C, U64, 1)])
    scope.metric("third", [MetricMeasurement("a", C, U64, 1), MetricMeasurement("c", C, U64, 1)])
    scope.metric("existing", [MetricMeasurement("B", C, U64, 1)])
    diagnostic = memory.diagnostic("otel.metric_instrument_limit")
    assert diagnostic is not None and diagnostic.count == 1
    assert diagnostic.message == (
        'OpenTelemetry metric mark "third" was dropped atomically: metric mark exceeds the endpoint limit of 2 '
        "distinct instruments"
    )
    assert memory.points() == {"a": [({}, 1)], "b": [({}, 2)]}  # "third" recorded nothing, not even "a"


def test_cardinality_limit_uses_the_overflow_series(metric_subscriber: Factory) -> None:
    memory = Memory(metric_subscriber, cardinality_limit=2)
    for index in range(4):
        scope.metric(f"m{index}", [MetricMeasurement("c", C, U64, 1, attributes={"i": index})])
    scope.metric("empty-set", [MetricMeasurement("c", C, U64, 1)])  # never counts against the limit
    scope.metric("known", [MetricMeasurement("c", C, U64, 5, attributes={"i": 0})])
    points = dict((tuple(sorted(attrs.items())), value) for attrs, value in memory.points()["c"])
    assert points == {(("i", 0),): 6, (("i", 1),): 1, (("otel.metric.overflow", True),): 2, (): 1}
    diagnostic = memory.diagnostic("otel.metric_cardinality_limit")
    assert diagnostic is not None and diagnostic.count == 2
    assert diagnostic.message == (
        'OpenTelemetry metric "c" exceeded the endpoint cardinality limit of 2; additional attribute sets use the '
        "SDK overflow series"
    )


def test_delta_cardinality_starts_over_each_collection(otlp_receiver: OtlpReceiver, metric_subscriber: Factory) -> None:
    subscriber = metric_subscriber(otlp_receiver.endpoint, temporality=MetricTemporality.Delta, cardinality_limit=1)
    scope.metric("a", [MetricMeasurement("c", C, U64, 1, attributes={"i": 1})])
    scope.metric("b", [MetricMeasurement("c", C, U64, 1, attributes={"i": 2})])
    subscriber.force_flush()
    scope.metric("c", [MetricMeasurement("c", C, U64, 1, attributes={"i": 3})])
    subscriber.force_flush()
    first, second = (m["data_points"] for m in otlp_receiver.metrics() if m["name"] == "c")
    assert sorted(str(p["attributes"]) for p in first) == ["{'i': 1}", "{'otel.metric.overflow': True}"]
    assert [p["attributes"] for p in second] == [{"i": 3}]


def test_classification_for_the_fan_out(events: Any) -> None:
    scope.metric("valid", [MetricMeasurement("c", C, U64, 1)])
    raw("invalid", {"measurements": []})
    scope.event("plain", data={"measurements": []})
    with scope.scope("s", nemo_relay.ScopeType.Agent):
        pass
    kinds = {event.name: classify_metric_mark(event) for event in events.flush()}
    assert kinds == {"valid": "metric", "invalid": "invalid", "plain": "other", "s": "other"}
    (invalid,) = [event for event in events if event.name == "invalid"]
    assert invalid_metric_mark_message(invalid) == (
        'OpenTelemetry metric mark "invalid" was dropped atomically: measurements must contain at least one entry'
    )


# --- fault modes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refused", "error500", "hang"])
def test_endpoint_faults(
    mode: str, otlp_receiver_factory: Callable[..., OtlpReceiver], refused_endpoint: str, metric_subscriber: Factory
) -> None:
    endpoint = refused_endpoint if mode == "refused" else otlp_receiver_factory(mode).endpoint
    subscriber = metric_subscriber(endpoint, timeout_millis=500)
    for index in range(20):
        scope.metric(f"m{index}", [MetricMeasurement("calls", C, U64, 1)])
    subscribers.flush()
    with pytest.raises(RuntimeError, match="OpenTelemetry metric provider error"):
        subscriber.force_flush()
    failed = subscriber.runtime_diagnostics().get("otel.metrics_export_failed")
    assert failed is not None and f"OpenTelemetry metric export to endpoint {endpoint} failed: " in failed.message
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="OpenTelemetry metric provider error"):
        subscriber.shutdown()  # the final export fails too, as in the reference
    assert time.monotonic() - started < 15
    subscriber.shutdown()  # a second shutdown is a no-op


# --- the plugin's engine ------------------------------------------------------------------------------


def _settings(url: str, **overrides: Any) -> MetricSettings:
    endpoint = SignalEndpointSettings(index=0, endpoint=url, url=url + "/v1/metrics", timeout_millis=500)
    return MetricSettings(endpoints=(endpoint,), **overrides)


def test_metric_exporter_contract(otlp_receiver: OtlpReceiver, failing_otlp_receiver: OtlpReceiver) -> None:
    diagnostics = RuntimeDiagnostics()
    exporter = MetricExporter(_settings(otlp_receiver.endpoint), diagnostics, "opentelemetry.metrics[0].endpoint")
    subscribers.register("engine", exporter.on_event)
    scope.metric("m", [MetricMeasurement("calls", C, U64, 2)])
    raw("bad", {"measurements": []})
    subscribers.flush()
    assert exporter.force_flush(5.0) is True
    assert [m["name"] for m in otlp_receiver.metrics()] == ["calls"]
    (entry,) = diagnostics.entries()
    assert (entry["code"], entry["component"], entry["field"]) == (
        "otel.metric_mark_invalid",
        "opentelemetry.metrics",
        "opentelemetry.metrics[0].endpoint",
    )
    assert exporter.shutdown(5.0).ok
    assert exporter.force_flush(1.0) is False
    subscribers.deregister("engine")

    failing = MetricExporter(_settings(failing_otlp_receiver.endpoint), RuntimeDiagnostics(), "f")
    failing.apply("direct", [MetricMeasurement("calls", C, U64, 1)])
    teardown = failing.shutdown(5.0)
    assert teardown.status == Teardown.REMOVED_WITH_ERROR and "failed exports" in (teardown.message or "")
