"""The observability plugin's ``register``: what it installs, in which order, and the OTel fan-out.

Most tests drive ``PLUGIN.register`` with a recording context and stand-in exporters; the last ones
go through ``nemo_relay.plugin`` with the real ATOF/ATIF/OTLP exporters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from nemo_relay import ScopeType, plugin, scope, subscribers
from nemo_relay._core import llmcalls
from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.plugin import PLUGIN, OpenTelemetryFanout
from nemo_relay._core.plugins import activation, names
from nemo_relay.observability import (
    AtifConfig,
    AtofConfig,
    AtofFileSinkConfig,
    ComponentSpec,
    ObservabilityConfig,
    OpenTelemetryEndpointConfig,
    OpenTelemetrySectionConfig,
)

NS = names.namespace("observability", 1)  # what the plugin host prefixes local names with
METRIC_SCHEMA = {"name": "nemo.relay.metric_measurements", "version": "1"}
_MEASUREMENT = {"name": "requests", "kind": "counter", "value_type": "u64", "value": 1}


class RecordingContext:
    """The parts of the plugin context the observability plugin uses, recording every call."""

    namespace = NS

    def __init__(self, fail_on: str | None = None) -> None:
        self.diagnostics = RuntimeDiagnostics()
        self.calls: list[tuple[str, str]] = []
        self.subscribers: dict[str, Any] = {}
        self.teardowns: dict[str, Any] = {}
        self.fail_on = fail_on

    def register_subscriber(self, name: str, callback: Any) -> None:
        if name == self.fail_on:
            raise RuntimeError(f"already exists: {name}")
        self.calls.append(("subscriber", name))
        self.subscribers[name] = callback

    def add_teardown(self, name: str, fn: Any) -> None:
        self.calls.append(("teardown", name))
        self.teardowns[name] = fn

    def rollback(self) -> list[tuple[str, Teardown]]:
        outcomes = []
        for kind, name in reversed(self.calls):
            if kind == "teardown":
                outcomes.append((name, self.teardowns[name](5.0)))
        return outcomes


class FakeExporter:
    """Stands in for a trace/log/metric exporter: records events, answers shutdown as told."""

    instances: ClassVar[list[FakeExporter]] = []
    fail_construct: ClassVar[set[str]] = set()

    def __init__(self, signal: str, settings: Any, diagnostics: Any, field: str, **kwargs: Any) -> None:
        if field in FakeExporter.fail_construct:
            raise RuntimeError(f"cannot build {field}")
        self.signal = signal
        self.settings = settings
        self.field = field
        self.endpoint = kwargs.get("endpoint")
        self.events: list[Any] = []
        self.raise_on_event = False
        self.outcome = Teardown.removed()
        self.shutdown_calls: list[float | None] = []
        FakeExporter.instances.append(self)

    def on_event(self, event: Any) -> None:
        if self.raise_on_event:
            raise ValueError("exporter bug")
        self.events.append(event)

    def force_flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float | None = None) -> Teardown:
        self.shutdown_calls.append(timeout)
        return self.outcome


@pytest.fixture
def fake_exporters(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeExporter]]:
    from nemo_relay._core.observability.otel import logs, metrics, traces

    FakeExporter.instances = []
    FakeExporter.fail_construct = set()
    monkeypatch.setattr(traces, "TraceExporter", lambda *a, **k: FakeExporter("traces", *a, **k))
    monkeypatch.setattr(logs, "LogExporter", lambda *a, **k: FakeExporter("logs", *a, **k))
    monkeypatch.setattr(metrics, "MetricExporter", lambda *a, **k: FakeExporter("metrics", *a, **k))
    yield FakeExporter
    FakeExporter.instances = []


@pytest.fixture(autouse=True)
def _reset_payload_flag() -> Iterator[None]:
    yield
    llmcalls.full_payloads = False


def _otel_config(**section: Any) -> dict[str, Any]:
    return {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{"type": "full", "endpoint": "http://127.0.0.1:9"}],
            "logs": {"enabled": True},
            "metrics": {"enabled": True},
            **section,
        }
    }


def _events(recorded: Any) -> dict[str, Any]:
    recorded.flush()
    return {getattr(event, "scope_category", "mark") + ":" + event.name: event for event in recorded}


def test_registration_order_and_names(tmp_path: Path, fake_exporters: type[FakeExporter]) -> None:
    config = {
        "enable_full_payloads": True,
        "atof": {
            "enabled": True,
            "sinks": [{"type": "file", "output_directory": str(tmp_path), "filename": "e.jsonl"}],
        },
        "atif": {"enabled": True, "output_directory": str(tmp_path)},
        **_otel_config(),
    }
    context = RecordingContext()
    PLUGIN.register(config, context)
    assert context.calls == [
        ("teardown", "payload-policy"),
        ("subscriber", "atof"),
        ("teardown", "atof.shutdown"),
        ("subscriber", "atif"),
        ("teardown", "atif.shutdown"),
        ("teardown", "opentelemetry.shutdown"),
        ("subscriber", "opentelemetry"),
    ]
    assert llmcalls.full_payloads is True
    assert [(e.signal, e.field) for e in fake_exporters.instances] == [
        ("traces", "opentelemetry.traces[0].endpoint"),
        ("logs", "opentelemetry.logs[0].endpoint"),
        ("metrics", "opentelemetry.metrics[0].endpoint"),
    ]
    assert fake_exporters.instances[1].endpoint.url == "http://127.0.0.1:9/v1/logs"
    outcomes = context.rollback()
    assert [name for name, _ in outcomes] == [
        "opentelemetry.shutdown",
        "atif.shutdown",
        "atof.shutdown",
        "payload-policy",
    ]
    assert all(outcome.ok for _, outcome in outcomes)
    assert llmcalls.full_payloads is False


def test_only_enabled_sections_are_installed() -> None:
    context = RecordingContext()
    PLUGIN.register({}, context)
    assert context.calls == [("teardown", "payload-policy")]
    assert llmcalls.full_payloads is False


def test_invalid_config_is_refused_before_anything_is_installed() -> None:
    context = RecordingContext()
    with pytest.raises(RuntimeError, match=r"^invalid config: ATOF sinks\[0\]\.mode must be 'append' or 'overwrite'$"):
        PLUGIN.register({"atof": {"enabled": True, "sinks": [{"type": "file", "mode": "sideways"}]}}, context)
    assert context.calls == []


def test_atof_build_failure_propagates_without_a_subscriber(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    context = RecordingContext()
    with pytest.raises(RuntimeError):
        PLUGIN.register(
            {"atof": {"enabled": True, "sinks": [{"type": "file", "output_directory": str(blocker)}]}}, context
        )
    assert context.calls == [("teardown", "payload-policy")]  # the host rolls this back


def test_subscriber_registration_failure_shuts_the_built_exporter(tmp_path: Path) -> None:
    context = RecordingContext(fail_on="atof")
    sink = {"type": "file", "output_directory": str(tmp_path), "filename": "e.jsonl"}
    with pytest.raises(RuntimeError, match="already exists"):
        PLUGIN.register({"atof": {"enabled": True, "sinks": [sink]}}, context)
    assert "atof.shutdown" not in context.teardowns


def test_otel_fanout_routes_metric_marks_apart(fake_exporters: type[FakeExporter], events: Any) -> None:
    context = RecordingContext()
    PLUGIN.register(_otel_config(), context)
    with scope.scope("agent", ScopeType.Agent):
        scope.event("plain")
        scope.event("metric", data={"measurements": [_MEASUREMENT]}, data_schema=METRIC_SCHEMA)
    recorded = _events(events)
    fanout = context.subscribers["opentelemetry"]
    for event in recorded.values():
        fanout(event)
    trace, log, metric = fake_exporters.instances
    names = ["start:agent", "mark:plain", "end:agent"]
    assert [f"{getattr(e, 'scope_category', 'mark')}:{e.name}" for e in trace.events] == names
    assert [f"{getattr(e, 'scope_category', 'mark')}:{e.name}" for e in log.events] == names
    assert [e.name for e in metric.events] == ["metric"]


@pytest.mark.parametrize(("with_metrics", "field"), [(True, "opentelemetry.metrics"), (False, None)])
def test_invalid_metric_marks_are_dropped_and_counted(
    fake_exporters: type[FakeExporter], events: Any, with_metrics: bool, field: str | None
) -> None:
    context = RecordingContext()
    PLUGIN.register(_otel_config(metrics={"enabled": with_metrics}), context)
    scope.event("bad-1", data={"measurements": []}, data_schema=METRIC_SCHEMA)
    scope.event("bad-2", data={"x": 1}, data_schema={"name": METRIC_SCHEMA["name"], "version": "2"})
    for event in _events(events).values():
        context.subscribers["opentelemetry"](event)
    assert all(not exporter.events for exporter in fake_exporters.instances)
    (entry,) = context.diagnostics.entries()
    expected = {"code": "otel.metric_mark_invalid", "component": "observability", "count": 2}
    assert {key: entry[key] for key in expected} == expected
    assert entry.get("field") == field
    assert entry["message"] == (
        'OpenTelemetry metric mark "bad-2" was dropped atomically: unsupported metric schema version "2"'
    )


def test_a_raising_exporter_does_not_stop_the_others(fake_exporters: type[FakeExporter], events: Any) -> None:
    context = RecordingContext()
    PLUGIN.register(_otel_config(), context)
    trace, log, _ = fake_exporters.instances
    trace.raise_on_event = True
    scope.event("one")
    scope.event("two")
    for event in _events(events).values():
        context.subscribers["opentelemetry"](event)
    assert [e.name for e in log.events] == ["one", "two"]


def test_construction_failures_skip_endpoints(fake_exporters: type[FakeExporter]) -> None:
    fake_exporters.fail_construct = {"opentelemetry.traces[0].endpoint"}
    context = RecordingContext()
    PLUGIN.register(_otel_config(), context)
    assert [e.signal for e in fake_exporters.instances] == ["logs", "metrics"]
    assert "opentelemetry" in context.subscribers


def test_no_constructible_exporter_is_an_activation_error(fake_exporters: type[FakeExporter]) -> None:
    fake_exporters.fail_construct = {"opentelemetry.traces[0].endpoint"}
    context = RecordingContext()
    config = {"opentelemetry": {"enabled": True, "endpoints": [{"type": "full", "endpoint": "http://127.0.0.1:9"}]}}
    with pytest.raises(RuntimeError, match="at least one valid trace, log, or metric endpoint"):
        PLUGIN.register(config, context)
    assert context.calls == [("teardown", "payload-policy")]


_OK = Teardown.removed()


@pytest.mark.parametrize(
    ("outcomes", "status", "message"),
    [
        ([_OK] * 3, Teardown.REMOVED, None),
        ([Teardown.removed_with_error("spans dropped"), _OK, _OK], Teardown.REMOVED_WITH_ERROR, "spans dropped"),
        ([Teardown.removed_with_error("a"), Teardown.not_removed("b"), _OK], Teardown.NOT_REMOVED, "b; a"),
    ],
)
def test_otel_teardown_aggregates_outcomes(outcomes: list[Teardown], status: str, message: str | None) -> None:
    exporters = [FakeExporter(signal, None, None, signal) for signal in ("traces", "logs", "metrics")]
    for exporter, outcome in zip(exporters, outcomes, strict=True):
        exporter.outcome = outcome
    fanout = OpenTelemetryFanout(exporters[:1], exporters[1:2], exporters[2:], RuntimeDiagnostics())
    result = fanout.shutdown(3.0)
    assert (result.status, result.message) == (status, message)
    assert all(len(exporter.shutdown_calls) == 1 for exporter in exporters)
    assert fanout.force_flush(1.0) is True


def test_otel_teardown_survives_a_raising_shutdown() -> None:
    class Broken(FakeExporter):
        def shutdown(self, timeout: float | None = None) -> Teardown:
            raise OSError("socket gone")

    broken, fine = Broken("traces", None, None, "a"), FakeExporter("logs", None, None, "b")
    result = OpenTelemetryFanout([broken], [fine], [], RuntimeDiagnostics()).shutdown(None)
    assert result.status == Teardown.NOT_REMOVED and result.message == "OSError: socket gone"
    assert fine.shutdown_calls == [None]


# --- through nemo_relay.plugin, with the real exporters ---------------------------------------------


@pytest.fixture
def isolated_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield
    activation.reset_for_tests()
    with contextlib.suppress(RuntimeError):
        plugin.clear(timeout=10)
    activation.reset_for_tests()


@pytest.mark.usefixtures("isolated_plugins")
async def test_file_outputs_through_the_plugin_api(tmp_path: Path) -> None:
    config = ObservabilityConfig(
        atof=AtofConfig(
            enabled=True,
            sinks=[AtofFileSinkConfig(output_directory=str(tmp_path), filename="events.jsonl", mode="overwrite")],
        ),
        atif=AtifConfig(
            enabled=True,
            agent_name="agent-x",
            agent_version="1.2",
            model_name="model-y",
            tool_definitions=[{"name": "lookup"}],
            extra={"binding": "test"},
            output_directory=str(tmp_path),
            filename_template="trajectory-{session_id}.json",
        ),
        enable_full_payloads=True,
    )
    async with plugin.plugin(plugin.PluginConfig(components=[ComponentSpec(config)])) as report:
        assert report == {"diagnostics": []}
        assert llmcalls.full_payloads is True
        with scope.scope("observed-agent", ScopeType.Agent) as handle:
            scope.event("step")
        session = str(handle.uuid)
    assert llmcalls.full_payloads is False
    assert plugin.report() is None
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["name"] == "step"
    trajectory = json.loads((tmp_path / f"trajectory-{session}.json").read_text())
    assert trajectory["agent"]["name"] == "agent-x"
    assert trajectory["agent"]["version"] == "1.2"
    assert trajectory["agent"]["model_name"] == "model-y"
    assert trajectory["agent"]["tool_definitions"][0]["name"] == "lookup"
    assert trajectory["agent"]["extra"]["binding"] == "test"


@pytest.mark.usefixtures("isolated_plugins")
async def test_registrations_are_namespaced(tmp_path: Path) -> None:
    from nemo_relay.runtime_registrations import RuntimeRegistrationKind, list_runtime_registrations

    sink = AtofFileSinkConfig(output_directory=str(tmp_path), filename="e.jsonl")
    config = ObservabilityConfig(atof=AtofConfig(enabled=True, sinks=[sink]))
    await plugin.initialize(plugin.PluginConfig(components=[ComponentSpec(config)]))
    try:
        names = {r.effective_name for r in list_runtime_registrations([RuntimeRegistrationKind.SUBSCRIBER])}
        assert f"{NS}atof" in names
    finally:
        await plugin.clear_async()
    names = {r.effective_name for r in list_runtime_registrations([RuntimeRegistrationKind.SUBSCRIBER])}
    assert f"{NS}atof" not in names


@pytest.mark.usefixtures("isolated_plugins")
async def test_bad_config_fails_initialize_and_installs_nothing(tmp_path: Path) -> None:
    config = ObservabilityConfig(atif=AtifConfig(enabled=True, filename_template="fixed.json"))
    with pytest.raises(RuntimeError, match=r"invalid config: ATIF filename_template must contain '\{session_id\}'"):
        await plugin.initialize(plugin.PluginConfig(components=[ComponentSpec(config)]))
    assert plugin.report() is None
    assert llmcalls.full_payloads is False


@pytest.mark.usefixtures("isolated_plugins")
async def test_traces_reach_an_otlp_receiver(otlp_receiver: Any) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    endpoint = OpenTelemetryEndpointConfig("full", otlp_receiver.endpoint, scheduled_delay_millis=50)
    config = ObservabilityConfig(opentelemetry=OpenTelemetrySectionConfig(enabled=True, endpoints=[endpoint]))
    await plugin.initialize(plugin.PluginConfig(components=[ComponentSpec(config)]))
    try:
        with scope.scope("traced-agent", ScopeType.Agent):
            pass
        await subscribers.flush_async()
    finally:
        await plugin.clear_async()
    spans = await asyncio.to_thread(otlp_receiver.wait_for, "traces")
    assert [span["name"] for span in spans] == ["traced-agent"]
