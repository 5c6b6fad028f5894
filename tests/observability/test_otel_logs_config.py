"""``OpenTelemetryLogConfig`` / ``OpenTelemetryLogSubscriber`` construction, validation and transports."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import nemo_relay
from nemo_relay import LogSeverity, ScopeType, scope, subscribers

pytest.importorskip("opentelemetry.sdk._logs")


def test_defaults_and_repr() -> None:
    config = nemo_relay.OpenTelemetryLogConfig("http://collector:4318")
    assert (config.endpoint, config.transport, config.headers, config.resource_attributes) == (
        "http://collector:4318",
        "http_binary",
        {},
        {},
    )
    assert (config.service_name, config.service_namespace, config.service_version) == ("unknown_service", None, None)
    assert (config.instrumentation_scope, config.timeout_millis) == ("opentelemetry", 3000)
    assert (config.max_queue_size, config.max_export_batch_size, config.scheduled_delay_millis) == (2048, 512, 1000)
    assert config.minimum_severity is LogSeverity.Info
    assert config.completed_span_context_ttl_millis == 60000
    assert repr(config) == '<OpenTelemetryLogConfig transport="http_binary" endpoint="http://collector:4318">'
    config.set_header("X-Key", "1")
    config.set_resource_attribute("deployment", "test")
    headers = config.headers
    headers["mutated"] = "no"
    assert config.headers == {"X-Key": "1"} and config.resource_attributes == {"deployment": "test"}


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("endpoint", 5, TypeError, "'int' object is not an instance of 'str'"),
        ("endpoint", None, TypeError, "'None' is not an instance of 'str'"),
        ("headers", {"a": 1}, ValueError, "headers must be a dict[str, str]"),
        ("resource_attributes", [("a", "b")], ValueError, "resource_attributes must be a dict[str, str]"),
        ("timeout_millis", "x", TypeError, "'str' object cannot be interpreted as an integer"),
        ("timeout_millis", 1.5, TypeError, "'float' object cannot be interpreted as an integer"),
        ("timeout_millis", -1, OverflowError, "can't convert negative int to unsigned"),
        ("max_queue_size", 2**64, OverflowError, "int too big to convert"),
        ("service_namespace", 5, TypeError, "'int' object is not an instance of 'str'"),
        ("minimum_severity", "warn", TypeError, "'str' object is not an instance of 'LogSeverity'"),
        ("minimum_severity", None, TypeError, "'None' is not an instance of 'LogSeverity'"),
    ],
)
def test_setters_check_types(field: str, value: Any, error: type[Exception], message: str) -> None:
    config = nemo_relay.OpenTelemetryLogConfig("http://x")
    with pytest.raises(error) as caught:
        setattr(config, field, value)
    assert str(caught.value) == message


def test_optional_and_integer_setters() -> None:
    config = nemo_relay.OpenTelemetryLogConfig("http://x")
    config.service_namespace = "ns"
    config.service_namespace = None
    config.timeout_millis = True  # bool is an int, as in the reference
    config.minimum_severity = LogSeverity.Error
    assert (config.service_namespace, config.timeout_millis, config.minimum_severity) == (None, 1, LogSeverity.Error)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"endpoint": ""}, ValueError, "endpoint is required and must be nonblank"),
        ({"endpoint": "  "}, ValueError, "endpoint is required and must be nonblank"),
        ({"transport": "x"}, ValueError, "transport must be 'http_binary' or 'grpc', got \"x\""),
        (
            {"endpoint": "::::"},
            RuntimeError,
            "failed to build the OTLP exporter: invalid URI ::::. Reason invalid authority",
        ),
        ({"timeout_millis": 0}, RuntimeError, "failed to build the OTLP exporter: timeout must be greater than 0"),
        (
            {"max_queue_size": 0},
            RuntimeError,
            "failed to build the OTLP exporter: max_queue_size must be greater than 0",
        ),
        (
            {"max_export_batch_size": 4096},
            RuntimeError,
            "failed to build the OTLP exporter: max_export_batch_size must be greater than 0 and no greater than "
            "max_queue_size",
        ),
        ({"scheduled_delay_millis": 0}, RuntimeError, "failed to build the OTLP exporter: scheduled_delay must be"),
        (
            {"completed_span_context_ttl_millis": 0},
            RuntimeError,
            "failed to build the OTLP exporter: completed_span_context_ttl must be greater than 0",
        ),
        ({"headers": {"bad name": "v"}}, RuntimeError, 'invalid OTLP header "bad name": invalid HTTP header name'),
        ({"headers": {"x": "a\nb"}}, RuntimeError, 'invalid OTLP header "x": failed to parse header value'),
        (
            {"headers": {"": "v"}},
            RuntimeError,
            'invalid OTLP header "": header name must be nonblank and have no surrounding whitespace',
        ),
    ],
)
def test_subscriber_construction_validates(changes: dict[str, Any], error: type[Exception], message: str) -> None:
    config = nemo_relay.OpenTelemetryLogConfig("http://127.0.0.1:9")
    for key, value in changes.items():
        setattr(config, key, value)
    with pytest.raises(error) as caught:
        nemo_relay.OpenTelemetryLogSubscriber(config)
    assert str(caught.value).startswith(message)


def test_subscriber_arguments() -> None:
    with pytest.raises(TypeError, match="'str' object is not an instance of 'OpenTelemetryLogConfig'"):
        nemo_relay.OpenTelemetryLogSubscriber("x")  # type: ignore[arg-type]
    subscriber = nemo_relay.OpenTelemetryLogSubscriber(config=nemo_relay.OpenTelemetryLogConfig("127.0.0.1:4318"))
    assert repr(subscriber) == "<OpenTelemetryLogSubscriber>"
    subscriber.shutdown()


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"])
def test_process_global_header_variables_are_refused(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, "authorization=secret")
    with pytest.raises(RuntimeError, match=f"{variable} is not supported because process-global OTLP headers"):
        nemo_relay.OpenTelemetryLogSubscriber(nemo_relay.OpenTelemetryLogConfig("http://127.0.0.1:9"))
    monkeypatch.delenv(variable)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=b")  # another signal's variable is fine
    nemo_relay.OpenTelemetryLogSubscriber(nemo_relay.OpenTelemetryLogConfig("http://127.0.0.1:9")).shutdown()


def test_register_and_deregister_are_global(otlp_receiver: Any) -> None:
    subscriber = nemo_relay.OpenTelemetryLogSubscriber(nemo_relay.OpenTelemetryLogConfig(otlp_receiver.endpoint))
    name = f"logs-{uuid.uuid4()}"
    subscriber.register(name)
    with pytest.raises(RuntimeError, match=f"already exists: {name} subscriber already exists"):
        subscriber.register(name)
    assert subscriber.deregister(name) is True
    assert subscriber.deregister(name) is False
    subscriber.shutdown()


def test_headers_reach_the_collector(otlp_receiver: Any) -> None:
    config = nemo_relay.OpenTelemetryLogConfig(otlp_receiver.endpoint)
    config.set_header("x-tenant", "t1")
    subscriber = nemo_relay.OpenTelemetryLogSubscriber(config)
    subscriber.register("with-headers")
    scope.event("hello")
    subscriber.force_flush()
    assert otlp_receiver.requests()[0]["headers"]["x-tenant"] == "t1"
    subscriber.deregister("with-headers")
    subscriber.shutdown()


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
    config = nemo_relay.OpenTelemetryLogConfig(grpc_collector.endpoint)
    config.transport = "grpc"
    config.set_header("X-Tenant", "t1")
    subscriber = nemo_relay.OpenTelemetryLogSubscriber(config)
    subscriber.register("grpc-logs")
    with scope.scope("agent", ScopeType.Agent) as agent:
        scope.event("over-grpc", data={"k": "v"})
    subscriber.force_flush()
    (record,) = grpc_collector.logs()
    assert record["body"] == {"k": "v"} and record["trace_id"] == agent.uuid.replace("-", "")
    assert grpc_collector.metadata[0]["x-tenant"] == "t1"  # headers travel as (lowercase) metadata
    subscriber.deregister("grpc-logs")
    subscriber.shutdown()


def test_open_scope_table_is_bounded(otlp_receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nemo_relay._core.observability.otel import signal_lineage

    monkeypatch.setattr(signal_lineage, "MAX_ACTIVE", 2)
    subscriber = nemo_relay.OpenTelemetryLogSubscriber(nemo_relay.OpenTelemetryLogConfig(otlp_receiver.endpoint))
    subscriber.register("bounded")
    handles = [scope.push(f"s{i}", ScopeType.Function) for i in range(4)]
    scope.event("under-newest")
    for handle in reversed(handles):
        scope.pop(handle)
    subscribers.flush()
    diagnostic = subscriber.runtime_diagnostics().get("otel.log_active_scope_high_water")
    assert diagnostic is not None and diagnostic.count == 2
    subscriber.force_flush()
    (record,) = otlp_receiver.logs()
    assert record["span_id"] == handles[-1].uuid.replace("-", "")[16:]  # the newest scopes are still known
    subscriber.deregister("bounded")
    subscriber.shutdown()


def test_importing_the_config_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, nemo_relay\n"
        "nemo_relay.OpenTelemetryLogConfig('http://x'); nemo_relay.OpenTelemetryMetricConfig('http://x')\n"
        "from nemo_relay._core.observability.otel.metrics import classify_metric_mark\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://collector:4318/v1/logs?tenant=a", None),
        ("localhost:4317", None),
        ("[::1]:4317", None),
        ("http://[::1]:4318", None),
        ("dns:collector", None),
        ("http://", "empty string"),
        ("unix:///tmp/otel.sock", "invalid format"),
        ("::::", "invalid authority"),
    ],
)
def test_endpoint_uri_checks(endpoint: str, reason: str | None) -> None:
    config = nemo_relay.OpenTelemetryLogConfig(endpoint)
    if reason is None:
        nemo_relay.OpenTelemetryLogSubscriber(config).shutdown()
        return
    with pytest.raises(RuntimeError) as caught:
        nemo_relay.OpenTelemetryLogSubscriber(config)
    assert str(caught.value) == f"failed to build the OTLP exporter: invalid URI {endpoint}. Reason {reason}"
