"""The test receiver itself: it stores what the real OTel SDK exporters send, and its fault modes work."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from support.otlp_receiver import OtlpReceiver

pytest.importorskip("opentelemetry.sdk")


def _post(url: str, body: bytes, timeout: float = 5.0) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_stores_spans_from_the_sdk_exporter(otlp_receiver: OtlpReceiver) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_receiver.traces_url)))
    tracer = provider.get_tracer("scope-a")
    with (
        tracer.start_as_current_span("parent", attributes={"a": 1, "b": [1.5, 2.5]}) as parent,
        tracer.start_as_current_span("child") as child,
    ):
        child.add_event("ev", {"k": "v"})
    provider.shutdown()

    spans = {s["name"]: s for s in otlp_receiver.wait_for("traces", lambda items: len(items) == 2)}
    assert spans["child"]["parent_span_id"] == spans["parent"]["span_id"]
    assert spans["parent"]["parent_span_id"] == ""
    assert spans["parent"]["span_id"] == format(parent.get_span_context().span_id, "016x")
    assert spans["child"]["trace_id"] == format(child.get_span_context().trace_id, "032x")
    assert spans["parent"]["attributes"] == {"a": 1, "b": [1.5, 2.5]}
    assert spans["child"]["events"][0]["name"] == "ev"
    assert spans["child"]["events"][0]["attributes"] == {"k": "v"}
    assert spans["parent"]["kind"] == "INTERNAL"
    assert spans["parent"]["status"]["code"] == "UNSET"
    assert spans["parent"]["resource"]["service.name"] == "svc"
    assert spans["parent"]["scope"]["name"] == "scope-a"
    assert otlp_receiver.requests()[0]["content_type"] == "application/x-protobuf"


def test_stores_logs_and_metrics(otlp_receiver: OtlpReceiver) -> None:
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=otlp_receiver.logs_url)))
    logs.get_logger("l").emit(
        LogRecord(
            body={"x": [1, None]}, severity_number=SeverityNumber.WARN, severity_text="WARN", attributes={"k": True}
        )
    )
    logs.shutdown()
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=otlp_receiver.metrics_url), export_interval_millis=60_000
    )
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("m").create_counter("requests", unit="1", description="d").add(3, {"route": "/a"})
    meters.shutdown()

    (record,) = otlp_receiver.wait_for("logs")
    assert record["body"] == {"x": [1, None]}
    assert record["severity_number"] == 13 and record["severity_text"] == "WARN"
    assert record["attributes"] == {"k": True}
    (metric,) = otlp_receiver.wait_for("metrics")
    assert (metric["name"], metric["unit"], metric["description"], metric["type"]) == ("requests", "1", "d", "sum")
    assert metric["temporality"] == "CUMULATIVE" and metric["is_monotonic"]
    assert metric["data_points"][0]["value"] == 3 and metric["data_points"][0]["attributes"] == {"route": "/a"}


def test_fault_modes(otlp_receiver_factory: Callable[..., OtlpReceiver], refused_endpoint: str) -> None:
    failing = otlp_receiver_factory("error500")
    assert _post(failing.logs_url, b"") == 500
    assert failing.logs() == [] and failing.requests()[0]["status"] == 500

    hanging = otlp_receiver_factory("hang")
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        _post(hanging.logs_url, b"", timeout=0.5)
    assert hanging.requests()[0]["status"] is None  # the query API still answers
    hanging.set_mode("ok")
    assert _post(hanging.logs_url, b"") == 200

    with pytest.raises(urllib.error.URLError):
        _post(refused_endpoint + "/v1/logs", b"")


def test_reset_and_stop_leave_no_process() -> None:
    receiver = OtlpReceiver.start("hang")
    process = receiver._process
    assert process is not None
    _ = receiver.requests()
    receiver.reset()
    started = time.monotonic()
    receiver.stop()
    assert process.poll() is not None
    assert time.monotonic() - started < 15
    assert not receiver.alive
