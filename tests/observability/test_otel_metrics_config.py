"""``OpenTelemetryMetricConfig`` / ``OpenTelemetryMetricSubscriber`` construction, validation and transports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import nemo_relay
from nemo_relay import MetricKind, MetricMeasurement, MetricTemporality, MetricValueType, scope

pytest.importorskip("opentelemetry.sdk.metrics")


def test_defaults_and_repr() -> None:
    config = nemo_relay.OpenTelemetryMetricConfig("http://collector:4318")
    assert (config.endpoint, config.transport, config.timeout_millis) == ("http://collector:4318", "http_binary", 3000)
    assert (config.export_interval_millis, config.max_instruments, config.cardinality_limit) == (60000, 256, 2000)
    assert config.temporality is MetricTemporality.Cumulative
    assert (config.service_name, config.instrumentation_scope) == ("unknown_service", "opentelemetry")
    assert repr(config) == '<OpenTelemetryMetricConfig transport="http_binary" endpoint="http://collector:4318">'


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("temporality", "delta", TypeError, "'str' object is not an instance of 'MetricTemporality'"),
        ("temporality", 1, TypeError, "'int' object is not an instance of 'MetricTemporality'"),
        ("cardinality_limit", -1, OverflowError, "can't convert negative int to unsigned"),
        ("export_interval_millis", 1.0, TypeError, "'float' object cannot be interpreted as an integer"),
        ("transport", None, TypeError, "'None' is not an instance of 'str'"),
    ],
)
def test_setters_check_types(field: str, value: Any, error: type[Exception], message: str) -> None:
    config = nemo_relay.OpenTelemetryMetricConfig("http://x")
    with pytest.raises(error) as caught:
        setattr(config, field, value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"endpoint": " "}, ValueError, "endpoint is required and must be nonblank"),
        ({"transport": "http"}, ValueError, "transport must be 'http_binary' or 'grpc', got \"http\""),
        ({"timeout_millis": 0}, RuntimeError, "failed to build the OTLP exporter: timeout must be greater than 0"),
        ({"export_interval_millis": 0}, RuntimeError, "failed to build the OTLP exporter: export_interval must be"),
        ({"max_instruments": 0}, RuntimeError, "failed to build the OTLP exporter: max_instruments must be"),
        ({"cardinality_limit": 0}, RuntimeError, "failed to build the OTLP exporter: cardinality_limit must be"),
        (
            {"cardinality_limit": 2**64 - 1},
            RuntimeError,
            "failed to build the OTLP exporter: cardinality_limit must be less than usize::MAX",
        ),
    ],
)
def test_subscriber_construction_validates(changes: dict[str, Any], error: type[Exception], message: str) -> None:
    config = nemo_relay.OpenTelemetryMetricConfig("http://127.0.0.1:9")
    for key, value in changes.items():
        setattr(config, key, value)
    with pytest.raises(error) as caught:
        nemo_relay.OpenTelemetryMetricSubscriber(config)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS"])
def test_process_global_header_variables_are_refused(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, " ")  # any non-empty value counts
    with pytest.raises(RuntimeError, match=f"{variable} is not supported because process-global OTLP headers"):
        nemo_relay.OpenTelemetryMetricSubscriber(nemo_relay.OpenTelemetryMetricConfig("http://127.0.0.1:9"))


@pytest.fixture
def grpc_collector() -> Iterator[Any]:
    pytest.importorskip("grpc")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    from support.otlp_grpc import GrpcCollector

    collector = GrpcCollector.start()
    try:
        yield collector
    finally:
        collector.stop()


def test_grpc_transport(grpc_collector: Any) -> None:
    config = nemo_relay.OpenTelemetryMetricConfig(grpc_collector.endpoint)
    config.transport = "grpc"
    config.temporality = MetricTemporality.Delta
    subscriber = nemo_relay.OpenTelemetryMetricSubscriber(config)
    subscriber.register("grpc-metrics")
    scope.metric("m", [MetricMeasurement("calls", MetricKind.Counter, MetricValueType.U64, 2, unit="1")])
    subscriber.force_flush()
    (metric,) = grpc_collector.metrics()
    assert (metric["name"], metric["unit"], metric["temporality"]) == ("calls", "1", "DELTA")
    assert metric["data_points"][0]["value"] == 2
    subscriber.deregister("grpc-metrics")
    subscriber.shutdown()
