"""OpenTelemetry logs through the public API, against a real OTLP/HTTP receiver (and in-memory SDK doubles)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nemo_relay
from nemo_relay import LogSeverity, ScopeType, scope, subscribers
from support.otlp_receiver import OtlpReceiver

pytest.importorskip("opentelemetry.sdk._logs")

from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.otel.logs import LogExporter
from nemo_relay._core.observability.settings import LogSettings, SignalEndpointSettings

METRIC_SCHEMA = {"name": "nemo.relay.metric_measurements", "version": "1"}
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


def ns(when: dt.datetime) -> int:
    """Nanoseconds since the epoch, exactly (microsecond datetimes)."""
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000


def hex_id(handle_uuid: str) -> str:
    return handle_uuid.replace("-", "")


Factory = Callable[..., nemo_relay.OpenTelemetryLogSubscriber]


@pytest.fixture
def log_subscriber() -> Iterator[Factory]:
    """``make(endpoint, **config)`` builds, registers and (at teardown) shuts down a log subscriber."""
    made: list[tuple[nemo_relay.OpenTelemetryLogSubscriber, str]] = []

    def make(endpoint: str, *, provider: Any = None, **fields: Any) -> nemo_relay.OpenTelemetryLogSubscriber:
        config = nemo_relay.OpenTelemetryLogConfig(endpoint)
        config.scheduled_delay_millis = fields.pop("scheduled_delay_millis", 50)
        for key, value in fields.items():
            setattr(config, key, value)
        subscriber = nemo_relay.OpenTelemetryLogSubscriber(config, logger_provider=provider)
        name = f"otel-logs-{uuid.uuid4()}"
        subscriber.register(name)
        made.append((subscriber, name))
        return subscriber

    try:
        yield make
    finally:
        for subscriber, name in made:
            subscriber.deregister(name)
            subscriber.shutdown()


def stored_logs(receiver: OtlpReceiver, subscriber: nemo_relay.OpenTelemetryLogSubscriber) -> list[dict[str, Any]]:
    subscriber.force_flush()
    return receiver.logs()


def by_name(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["attributes"]["nemo_relay.mark.name"]: record for record in records}


# --- end to end ---------------------------------------------------------------------------------------


def test_marks_become_log_records(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    subscriber = log_subscriber(
        otlp_receiver.endpoint, service_name="svc", service_version="1.2", instrumentation_scope="relay-logs"
    )
    with scope.scope("agent", ScopeType.Agent) as agent:
        scope.event("plain", data={"a": 1, "b": None, "c": [None, 2**64 - 1]}, metadata={"x": "y"}, timestamp=T0)
        scope.event("warned", data="text", severity=LogSeverity.Warn)
        scope.event("schema", data=3.5, data_schema={"name": "s", "version": "2"}, severity=LogSeverity.Error)
        scope.event("no-data")
        scope.event("nested-null-metadata", data=[], metadata={"n": None, "o": {"p": None}})
    records = by_name(stored_logs(otlp_receiver, subscriber))

    plain = records["plain"]
    assert plain["time_unix_nano"] == ns(T0)
    assert plain["observed_time_unix_nano"] > plain["time_unix_nano"]
    assert (plain["severity_number"], plain["severity_text"]) == (9, "INFO")
    assert plain["body"] == {"a": 1, "b": "null", "c": ["null", "18446744073709551615"]}
    attributes = plain["attributes"]
    assert attributes.pop("nemo_relay.mark.uuid")
    assert attributes == {
        "nemo_relay.atof.version": "0.1",
        "nemo_relay.mark.name": "plain",
        "nemo_relay.mark.parent_uuid": agent.uuid,
        "nemo_relay.mark.metadata": {"x": "y"},
    }
    assert plain["resource"] == {"service.name": "svc", "service.version": "1.2"}  # no SDK defaults
    assert plain["scope"]["name"] == "relay-logs"

    assert (records["warned"]["severity_number"], records["warned"]["severity_text"]) == (13, "WARN")
    assert "nemo_relay.mark.metadata" not in records["warned"]["attributes"]  # only the severity key was there
    assert records["schema"]["attributes"]["nemo_relay.mark.data_schema.name"] == "s"
    assert records["schema"]["attributes"]["nemo_relay.mark.data_schema.version"] == "2"
    assert records["schema"]["severity_text"] == "ERROR" and records["schema"]["body"] == 3.5
    assert records["no-data"]["has_body"] is False
    assert records["nested-null-metadata"]["attributes"]["nemo_relay.mark.metadata"] == {
        "n": "null",
        "o": {"p": "null"},
    }
    assert otlp_receiver.requests()[0]["path"] == "/v1/logs"  # a bare authority gains the signal path


def test_trace_context_follows_scope_lineage(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    subscriber = log_subscriber(otlp_receiver.endpoint)
    with scope.scope("agent", ScopeType.Agent) as agent:
        with scope.scope("step", ScopeType.Function) as step:
            scope.event("in-step")
        scope.event("in-agent")
    scope.event("top-level")  # parent is the stack root, not a scope: no trace context
    with scope.scope("second", ScopeType.Agent) as second:
        scope.event("in-second")
    records = by_name(stored_logs(otlp_receiver, subscriber))

    assert records["in-step"]["trace_id"] == hex_id(agent.uuid)
    assert records["in-step"]["span_id"] == hex_id(step.uuid)[16:]
    assert records["in-agent"]["span_id"] == hex_id(agent.uuid)[16:]
    assert records["in-step"]["flags"] == 1
    assert (records["top-level"]["trace_id"], records["top-level"]["span_id"], records["top-level"]["flags"]) == (
        "",
        "",
        0,
    )
    assert records["in-second"]["trace_id"] == hex_id(second.uuid)  # a new top-level scope starts a trace


def test_ended_scopes_resolve_for_the_ttl_in_event_time(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    subscriber = log_subscriber(otlp_receiver.endpoint, completed_span_context_ttl_millis=1000)
    agent = scope.push("agent", ScopeType.Agent, timestamp=T0)
    scope.pop(agent, timestamp=T0 + dt.timedelta(seconds=1))
    end = T0 + dt.timedelta(seconds=1)
    scope.event("within", handle=agent, timestamp=end + dt.timedelta(milliseconds=999))
    scope.event("after", handle=agent, timestamp=end + dt.timedelta(milliseconds=1001))
    scope.event("late-but-early-stamp", handle=agent, timestamp=end)  # the clock already moved past the TTL
    records = by_name(stored_logs(otlp_receiver, subscriber))
    assert records["within"]["span_id"] == hex_id(agent.uuid)[16:]
    assert records["after"]["span_id"] == ""
    assert records["late-but-early-stamp"]["span_id"] == ""


def test_propagated_parent_continues_the_remote_trace(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    subscriber = log_subscriber(otlp_receiver.endpoint)
    remote_root = "01a201a7-0000-7000-8000-0000000000aa"
    remote_parent = "01a201a7-0000-7000-8000-0000000000bb"
    rooted = nemo_relay.create_scope_stack_from_propagation(nemo_relay.PropagationContext(remote_parent, remote_root))
    with nemo_relay.use_scope_stack(rooted):
        scope.event("under-remote-parent")
        with scope.scope("local", ScopeType.Function) as local:
            scope.event("under-local")
    rootless = nemo_relay.create_scope_stack_from_propagation(nemo_relay.PropagationContext(remote_parent))
    with nemo_relay.use_scope_stack(rootless):
        scope.event("rootless")
    records = by_name(stored_logs(otlp_receiver, subscriber))
    assert records["under-remote-parent"]["trace_id"] == hex_id(remote_root)
    assert records["under-remote-parent"]["span_id"] == hex_id(remote_parent)[16:]
    assert records["under-local"]["trace_id"] == hex_id(remote_root)
    assert records["under-local"]["span_id"] == hex_id(local.uuid)[16:]
    assert records["rootless"]["trace_id"] == ""


def test_minimum_severity_and_invalid_severities(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    subscriber = log_subscriber(otlp_receiver.endpoint, minimum_severity=LogSeverity.Warn)
    for severity in LogSeverity:
        scope.event(f"sev-{severity.label}", severity=severity)
    scope.event("alias", metadata={"nemo_relay.log.severity": " WARNING "})
    scope.event("bad-label", metadata={"nemo_relay.log.severity": "fatal"})
    scope.event("bad-type", metadata={"nemo_relay.log.severity": 3})
    records = by_name(stored_logs(otlp_receiver, subscriber))
    assert sorted(records) == ["alias", "sev-error", "sev-warn"]
    assert records["alias"]["severity_text"] == "WARN"
    diagnostic = subscriber.runtime_diagnostics().get("otel.log_mark_invalid_severity")
    assert diagnostic is not None and diagnostic.count == 2
    assert "must be a string after sanitization" in diagnostic.message


def test_default_threshold_is_info_and_trace_is_lowest(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    default = log_subscriber(otlp_receiver.endpoint)
    assert nemo_relay.OpenTelemetryLogConfig("x").minimum_severity is LogSeverity.Info
    for severity in LogSeverity:
        scope.event(f"sev-{severity.label}", severity=severity)
    records = by_name(stored_logs(otlp_receiver, default))
    assert sorted(records) == ["sev-error", "sev-info", "sev-warn"]
    otlp_receiver.reset()
    everything = log_subscriber(otlp_receiver.endpoint, minimum_severity=LogSeverity.Trace)
    scope.event("lowest", severity=LogSeverity.Trace)
    (record,) = [
        r for r in stored_logs(otlp_receiver, everything) if r["attributes"]["nemo_relay.mark.name"] == "lowest"
    ]
    assert (record["severity_number"], record["severity_text"]) == (1, "TRACE")


def test_metric_marks_and_scope_events_are_not_logged(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    subscriber = log_subscriber(otlp_receiver.endpoint)
    measurement = nemo_relay.MetricMeasurement(
        "calls", nemo_relay.MetricKind.Counter, nemo_relay.MetricValueType.U64, 1
    )
    with scope.scope("agent", ScopeType.Agent):
        scope.metric("valid-metric", [measurement])
        scope.event("empty-metric", data={"measurements": []}, data_schema=METRIC_SCHEMA)
        scope.event("wrong-version", data={"measurements": []}, data_schema={**METRIC_SCHEMA, "version": "2"})
        scope.event("kept")
    records = by_name(stored_logs(otlp_receiver, subscriber))
    assert list(records) == ["kept"]
    diagnostic = subscriber.runtime_diagnostics().get("otel.metric_mark_invalid")
    assert diagnostic is not None and diagnostic.count == 2
    assert 'unsupported metric schema version "2"' in diagnostic.message


def test_caller_supplied_logger_provider(log_subscriber: Factory) -> None:
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    subscriber = log_subscriber("http://127.0.0.1:9", provider=provider)
    with scope.scope("agent", ScopeType.Agent) as agent:
        scope.event("into-memory", data={"k": 1})
    subscriber.force_flush()
    (finished,) = memory.get_finished_logs()
    record = finished.log_record
    assert record.body == {"k": 1}
    assert record.attributes is not None and record.attributes["nemo_relay.mark.name"] == "into-memory"
    assert record.trace_id == int(hex_id(agent.uuid), 16)
    subscriber.shutdown()
    provider.get_logger("still-usable").emit(_logs.LogRecord(body="after"))  # shutdown left the provider alone
    assert len(memory.get_finished_logs()) == 2
    assert not isinstance(_logs.get_logger_provider(), LoggerProvider)  # nothing installed globally


def test_full_queue_refuses_new_records_and_counts_them(otlp_receiver: OtlpReceiver, log_subscriber: Factory) -> None:
    subscriber = log_subscriber(
        otlp_receiver.endpoint, max_queue_size=3, max_export_batch_size=2, scheduled_delay_millis=60_000
    )
    for index in range(10):
        scope.event(f"e{index}")
    subscribers.flush()
    subscriber.shutdown()
    stored = [int(r["attributes"]["nemo_relay.mark.name"][1:]) for r in otlp_receiver.logs()]
    dropped = subscriber.runtime_diagnostics().get("otel.logs_dropped")
    assert len(stored) + (0 if dropped is None else dropped.count) == 10  # delivered or counted, nothing lost
    assert stored[:3] == [0, 1, 2] and stored == sorted(stored)  # a full queue refuses the newest, not the oldest
    if dropped is not None:
        assert "because the batch queue was full" in dropped.message


def test_drop_count_is_exact_while_the_endpoint_hangs(hanging_otlp_receiver: OtlpReceiver) -> None:
    # One batch of 3 hangs in export for the whole test; the queue holds 3 more; everything else is
    # refused, and what is still queued when the shutdown deadline passes is abandoned and counted.
    diagnostics = RuntimeDiagnostics()
    url = hanging_otlp_receiver.endpoint
    endpoint = SignalEndpointSettings(index=0, endpoint=url, url=url + "/v1/logs", timeout_millis=10_000)
    settings = LogSettings(
        endpoints=(endpoint,), max_queue_size=3, max_export_batch_size=3, scheduled_delay_millis=60_000
    )
    exporter = LogExporter(settings, diagnostics, "f")
    subscribers.register("hung-engine", exporter.on_event)
    for index in range(10):
        scope.event(f"e{index}")
    subscribers.flush()
    started = time.monotonic()
    teardown = exporter.shutdown(1.0)
    assert time.monotonic() - started < 5
    assert diagnostics.count("otel.logs_dropped") == 7  # 10 - the one batch in flight
    assert teardown.status == Teardown.REMOVED_WITH_ERROR
    subscribers.deregister("hung-engine")


def test_shut_down_subscriber_ignores_marks_and_refuses_flush(
    otlp_receiver: OtlpReceiver, log_subscriber: Factory
) -> None:
    subscriber = log_subscriber(otlp_receiver.endpoint)
    scope.event("before")
    subscriber.shutdown()
    subscriber.shutdown()  # idempotent
    scope.event("after")
    subscribers.flush()
    assert [r["attributes"]["nemo_relay.mark.name"] for r in otlp_receiver.logs()] == ["before"]
    with pytest.raises(RuntimeError, match=r"OpenTelemetry log provider error: .*already shut down"):
        subscriber.force_flush()


# --- fault modes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refused", "error500", "hang"])
def test_endpoint_faults_never_reach_the_agent(
    mode: str, otlp_receiver_factory: Callable[..., OtlpReceiver], refused_endpoint: str, log_subscriber: Factory
) -> None:
    endpoint = refused_endpoint if mode == "refused" else otlp_receiver_factory(mode).endpoint
    subscriber = log_subscriber(endpoint, timeout_millis=500, scheduled_delay_millis=20)
    seen: list[str] = []
    subscribers.register("fault-observer", lambda event: seen.append(event.name))

    async def agent() -> object:
        with scope.scope("agent", ScopeType.Agent):
            for index in range(20):
                scope.event(f"step-{index}", data=index)
            return await nemo_relay.tools.execute(
                "tool", {"x": 1}, lambda args: nemo_relay.ToolExecutionResult({"ok": True})
            )

    import asyncio

    result = asyncio.run(agent())
    assert getattr(result, "result", result) == {"ok": True}
    subscribers.flush()
    assert sum(name.startswith("step-") for name in seen) == 20  # the agent's events all went out
    with pytest.raises(RuntimeError, match="OpenTelemetry log provider error"):
        subscriber.force_flush()
    failed = subscriber.runtime_diagnostics().get("otel.logs_export_failed")
    assert failed is not None and failed.count >= 1
    assert f"OpenTelemetry log export to endpoint {endpoint} failed: " in failed.message
    started = time.monotonic()
    subscriber.shutdown()
    assert time.monotonic() - started < 15  # bounded even when the endpoint never answers
    subscribers.deregister("fault-observer")


# --- the plugin's engine ------------------------------------------------------------------------------


def _settings(url: str, **overrides: Any) -> LogSettings:
    endpoint = SignalEndpointSettings(index=0, endpoint=url, url=url + "/v1/logs", timeout_millis=500)
    return LogSettings(endpoints=(endpoint,), scheduled_delay_millis=20, **overrides)


def test_log_exporter_contract(otlp_receiver: OtlpReceiver) -> None:
    diagnostics = RuntimeDiagnostics()
    exporter = LogExporter(_settings(otlp_receiver.endpoint), diagnostics, "opentelemetry.logs[0].endpoint")
    subscribers.register("engine", exporter.on_event)
    scope.event("via-engine", data=1, metadata={"nemo_relay.log.severity": "nope"})
    scope.event("via-engine-ok", data=1)
    subscribers.flush()
    assert exporter.force_flush(5.0) is True
    assert [r["attributes"]["nemo_relay.mark.name"] for r in otlp_receiver.logs()] == ["via-engine-ok"]
    (entry,) = diagnostics.entries()
    assert entry["component"] == "opentelemetry.logs" and entry["field"] == "opentelemetry.logs[0].endpoint"
    teardown = exporter.shutdown(5.0)
    assert isinstance(teardown, Teardown) and teardown.ok
    assert exporter.force_flush(1.0) is False
    subscribers.deregister("engine")


def test_log_exporter_teardown_reports_undelivered_records(hanging_otlp_receiver: OtlpReceiver) -> None:
    diagnostics = RuntimeDiagnostics()
    exporter = LogExporter(_settings(hanging_otlp_receiver.endpoint), diagnostics, "f")
    subscribers.register("engine", exporter.on_event)
    for index in range(5):
        scope.event(f"e{index}")
    subscribers.flush()
    started = time.monotonic()
    teardown = exporter.shutdown(1.0)
    assert time.monotonic() - started < 5
    assert teardown.status == Teardown.REMOVED_WITH_ERROR
    lost = diagnostics.count("otel.logs_export_failed") + diagnostics.count("otel.logs_dropped")
    assert lost >= 1
    subscribers.deregister("engine")


def test_pending_records_are_sent_at_interpreter_exit(otlp_receiver: OtlpReceiver) -> None:
    import subprocess
    import sys

    code = (
        "import nemo_relay\n"
        "from nemo_relay import scope\n"
        f"config = nemo_relay.OpenTelemetryLogConfig({otlp_receiver.endpoint!r})\n"
        "config.scheduled_delay_millis = 60000\n"
        "logs = nemo_relay.OpenTelemetryLogSubscriber(config)\n"
        "logs.register('exit-logs')\n"
        f"metric_config = nemo_relay.OpenTelemetryMetricConfig({otlp_receiver.endpoint!r})\n"
        "metrics = nemo_relay.OpenTelemetryMetricSubscriber(metric_config)\n"
        "metrics.register('exit-metrics')\n"
        "scope.event('at-exit', data=1)\n"
        "scope.metric('m', [nemo_relay.MetricMeasurement('exits', nemo_relay.MetricKind.Counter,"
        " nemo_relay.MetricValueType.U64, 1)])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert [r["attributes"]["nemo_relay.mark.name"] for r in otlp_receiver.logs()] == ["at-exit"]
    assert [m["name"] for m in otlp_receiver.metrics()] == ["exits"]
