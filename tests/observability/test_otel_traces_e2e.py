"""OpenTelemetry traces over real OTLP/HTTP (``support/otlp_receiver.py``), faults, and the exporter contract.

* end to end: the scripted agent run reaches a receiver process; parentage, kinds, token counts,
  resource, scope and headers are checked on the decoded protobuf;
* faults: a refusing, failing (500) or hanging endpoint never affects the agent's calls, is reported
  in runtime diagnostics, and ``shutdown`` returns within its timeout;
* ``TraceExporter`` (what the observability plugin builds per endpoint): exact drop counting, teardown
  outcomes, a caller's provider left untouched.

The only timing assertions are generous upper bounds on shutdown deadlines.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from traces_scenario import agent_run, run, span_id, start_of

from nemo_relay import OpenTelemetryConfig, OpenTelemetrySubscriber, ScopeType, scope, subscribers
from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.otel.traces import TraceExporter
from nemo_relay._core.observability.settings import TraceEndpointSettings
from support.otlp_receiver import OtlpReceiver

EXPECTED_RESULTS = ["chatcmpl-9", 5, "internal error: ValueError: boom"]
SHUTDOWN_BOUND = 10.0  # generous: the deadlines under test are 1-2 s


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., OpenTelemetrySubscriber]]:
    """``factory(otel_type, endpoint, **config)``: a registered subscriber, shut down at teardown."""
    made: list[tuple[OpenTelemetrySubscriber, str]] = []

    def make(otel_type: str, endpoint: str, **options: Any) -> OpenTelemetrySubscriber:
        config = OpenTelemetryConfig(otel_type, endpoint)
        for field, value in options.items():
            setattr(config, field, value)
        subscriber = OpenTelemetrySubscriber(config)
        name = f"otel-e2e-{uuid.uuid4()}"
        subscriber.register(name)
        made.append((subscriber, name))
        return subscriber

    try:
        yield make
    finally:
        for subscriber, name in made:
            subscriber.deregister(name)
            subscriber.shutdown(timeout=2)


def codes(subscriber: OpenTelemetrySubscriber) -> dict[str, int]:
    return {entry.code: entry.count for entry in subscriber.runtime_diagnostics().entries}


# --- end to end ------------------------------------------------------------------------------------------


def test_openinference_spans_reach_an_otlp_http_receiver(
    otlp_receiver: OtlpReceiver, subscriber_factory: Callable[..., OpenTelemetrySubscriber], events: list[Any]
) -> None:
    subscriber = subscriber_factory(
        "openinference",
        otlp_receiver.endpoint,  # a bare authority: completed with /v1/traces
        service_name="relay-tests",
        service_namespace="ns",
        service_version="1.2.3",
        resource_attributes={"deployment.environment": "ci"},
        headers={"x-tenant": "t-1"},
        instrumentation_scope="relay.scope",
    )
    assert run(agent_run) == EXPECTED_RESULTS
    subscriber.force_flush(timeout=10)
    spans = {span["name"]: span for span in otlp_receiver.wait_for("traces", lambda items: len(items) >= 5)}

    assert set(spans) == {"agent-run", "openai.chat", "add", "helper", "bad"}
    agent_uuid = start_of(events, "agent-run").uuid
    trace_id = agent_uuid.replace("-", "")
    for name, span in spans.items():
        assert span["trace_id"] == trace_id
        assert span["span_id"] == f"{span_id(start_of(events, name).uuid):016x}"
        assert span["parent_span_id"] == ("" if name == "agent-run" else f"{span_id(agent_uuid):016x}")
        assert span["resource"] == {
            "service.name": "relay-tests",
            "service.namespace": "ns",
            "service.version": "1.2.3",
            "deployment.environment": "ci",
        }
        assert span["scope"]["name"] == "relay.scope"
    kinds = {name: span["attributes"]["openinference.span.kind"] for name, span in spans.items()}
    assert kinds == {"agent-run": "AGENT", "openai.chat": "LLM", "add": "TOOL", "helper": "CHAIN", "bad": "TOOL"}
    assert [spans[n]["kind"] for n in ("agent-run", "openai.chat", "add")] == ["INTERNAL", "CLIENT", "CLIENT"]
    chat = spans["openai.chat"]["attributes"]
    assert (chat["llm.token_count.prompt"], chat["llm.token_count.completion"], chat["llm.token_count.total"]) == (
        20,
        7,
        27,
    )
    assert spans["bad"]["status"]["code"] == "ERROR"
    assert [event["name"] for event in spans["bad"]["events"]] == ["exception"]
    assert [event["name"] for event in spans["agent-run"]["events"]] == ["note", "llm.chunk"]

    requests = otlp_receiver.requests()
    assert {request["path"] for request in requests} == {"/v1/traces"}
    assert all(request["headers"].get("x-tenant") == "t-1" for request in requests)
    assert all(request["content_type"] == "application/x-protobuf" for request in requests)
    assert codes(subscriber) == {}


@pytest.mark.parametrize(
    ("otel_type", "root", "llm"),
    [("full", "agent-run", "openai.chat"), ("gen_ai", "invoke_agent agent-run", "chat gpt-4o")],
)
def test_other_projections_over_otlp_http(
    otlp_receiver: OtlpReceiver,
    subscriber_factory: Callable[..., OpenTelemetrySubscriber],
    otel_type: str,
    root: str,
    llm: str,
) -> None:
    subscriber = subscriber_factory(otel_type, otlp_receiver.traces_url)
    run(agent_run)
    subscriber.force_flush(timeout=10)
    spans = {span["name"]: span for span in otlp_receiver.wait_for("traces", lambda items: len(items) >= 5)}
    assert spans[llm]["parent_span_id"] == spans[root]["span_id"]
    attributes = spans[llm]["attributes"]
    if otel_type == "gen_ai":
        assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (20, 7)
    else:
        assert attributes["nemo_relay.model_name"] == "gpt-4o-2024"
    assert spans[root]["resource"] == {"service.name": "unknown_service"}  # exactly the configured identity


def test_header_env_is_read_once_when_the_exporter_is_built(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_TEST_OTLP_TOKEN", "Bearer secret-1")
    settings = TraceEndpointSettings(
        index=0,
        type="full",
        endpoint=otlp_receiver.endpoint,
        url=otlp_receiver.traces_url,
        header_env={"authorization": "RELAY_TEST_OTLP_TOKEN"},
        scheduled_delay_millis=60_000,
    )
    exporter = TraceExporter(settings, RuntimeDiagnostics())
    monkeypatch.delenv("RELAY_TEST_OTLP_TOKEN")
    name = f"otel-exporter-{uuid.uuid4()}"
    subscribers.register(name, exporter.on_event)
    try:
        scope.pop(scope.push("agent", ScopeType.Agent))
        assert subscribers.flush(timeout=10)
        assert exporter.force_flush(timeout=10)
    finally:
        subscribers.deregister(name)
    assert exporter.shutdown(timeout=5).ok
    assert [r["headers"].get("authorization") for r in otlp_receiver.requests()] == ["Bearer secret-1"]


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"])
def test_process_global_otlp_headers_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "authorization=leak")
    with pytest.raises(RuntimeError, match=f"^{variable} is not supported because process-global OTLP headers"):
        OpenTelemetrySubscriber(OpenTelemetryConfig("full", "http://127.0.0.1:4318"))
    monkeypatch.setenv(variable, "")  # empty is the same as unset
    OpenTelemetrySubscriber(OpenTelemetryConfig("full", "http://127.0.0.1:4318")).shutdown(timeout=1)


# --- faults ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["refused", "error500", "hang"])
def test_a_broken_endpoint_never_affects_the_agent(
    fault: str,
    otlp_receiver_factory: Callable[..., OtlpReceiver],
    refused_endpoint: str,
    subscriber_factory: Callable[..., OpenTelemetrySubscriber],
) -> None:
    endpoint = refused_endpoint if fault == "refused" else otlp_receiver_factory(fault).endpoint
    subscriber = subscriber_factory("openinference", endpoint, timeout_millis=500)
    assert run(agent_run) == EXPECTED_RESULTS
    with pytest.raises(RuntimeError, match=r"OpenTelemetry trace export to http://127\.0\.0\.1:\d+ failed"):
        subscriber.force_flush(timeout=10)
    entry = subscriber.runtime_diagnostics().get("otel.traces_export_failed")
    assert entry is not None and entry.count >= 1
    assert entry.message == f"OpenTelemetry trace export to endpoint {endpoint} failed"
    started = time.monotonic()
    subscriber.shutdown(timeout=2)
    assert time.monotonic() - started < SHUTDOWN_BOUND


def test_shutdown_keeps_its_deadline_while_an_export_hangs(
    hanging_otlp_receiver: OtlpReceiver, subscriber_factory: Callable[..., OpenTelemetrySubscriber]
) -> None:
    # The exporter would wait 60 s for an answer; shutdown must not.
    subscriber = subscriber_factory("full", hanging_otlp_receiver.endpoint, timeout_millis=60_000)
    assert run(agent_run) == EXPECTED_RESULTS
    started = time.monotonic()
    subscriber.shutdown(timeout=1)
    assert time.monotonic() - started < SHUTDOWN_BOUND
    unexported = subscriber.runtime_diagnostics().get("otel.spans_unexported_at_shutdown")
    assert unexported is not None and unexported.count == 5
    assert "did not finish in time; 5 spans were not exported" in unexported.message


# --- the exporter contract ---------------------------------------------------------------------------------


class BlockingExporter(SpanExporter):
    """Holds every export until ``release`` is set; records what it was given."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def settings(**overrides: Any) -> TraceEndpointSettings:
    fields: dict[str, Any] = {"index": 3, "type": "full", "endpoint": "http://collector:4318", "url": ""}
    fields["url"] = "http://collector:4318/v1/traces"
    fields.update(overrides)
    return TraceEndpointSettings(**fields)


@pytest.fixture
def registered() -> Iterator[Callable[[TraceExporter], None]]:
    names: list[str] = []

    def register(exporter: TraceExporter) -> None:
        name = f"otel-exporter-{uuid.uuid4()}"
        subscribers.register(name, exporter.on_event)
        names.append(name)

    try:
        yield register
    finally:
        subscribers.flush(timeout=10)
        for name in names:
            subscribers.deregister(name)


def test_dropped_spans_are_counted_exactly(registered: Callable[[TraceExporter], None]) -> None:
    blocking = BlockingExporter()
    diagnostics = RuntimeDiagnostics()
    exporter = TraceExporter(
        settings(max_queue_size=4, max_export_batch_size=4, scheduled_delay_millis=60_000),
        diagnostics,
        span_exporter=blocking,
    )
    registered(exporter)
    for index in range(20):
        scope.pop(scope.push(f"s{index}", ScopeType.Agent))
    assert subscribers.flush(timeout=10)
    started = time.monotonic()
    teardown = exporter.shutdown(timeout=0.5)  # the export in flight is still blocked
    assert time.monotonic() - started < SHUTDOWN_BOUND
    blocking.release.set()

    dropped = diagnostics.count("otel.spans_dropped")
    unexported = diagnostics.count("otel.spans_unexported_at_shutdown")
    assert 12 <= dropped <= 16  # at most one batch in flight plus a full queue were accepted
    assert dropped + unexported == 20  # nothing lost without being counted
    entry = diagnostics.get("otel.spans_dropped")
    assert entry is not None and entry["field"] == "opentelemetry.traces[3].endpoint"
    assert entry["message"] == (
        "OpenTelemetry dropped spans before export to endpoint http://collector:4318 because the batch queue was full"
    )
    assert teardown.status == Teardown.REMOVED_WITH_ERROR
    assert teardown.message is not None and f"otel.spans_dropped ({dropped})" in teardown.message
    assert exporter.shutdown(timeout=0.5) is teardown  # idempotent


def test_a_clean_teardown_and_events_after_it(registered: Callable[[TraceExporter], None]) -> None:
    memory = InMemorySpanExporter()
    exporter = TraceExporter(settings(), RuntimeDiagnostics(), span_exporter=memory)
    registered(exporter)
    scope.pop(scope.push("before", ScopeType.Agent))
    assert subscribers.flush(timeout=10)
    open_handle = scope.push("still-open", ScopeType.Agent)
    assert subscribers.flush(timeout=10)
    assert exporter.shutdown(timeout=5).ok
    scope.pop(open_handle)
    scope.pop(scope.push("after", ScopeType.Agent))
    assert subscribers.flush(timeout=10)
    assert [span.name for span in memory.get_finished_spans()] == ["before"]  # open and late spans: not exported


def test_a_callers_provider_is_neither_flushed_into_ours_nor_shut_down(
    registered: Callable[[TraceExporter], None],
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporter = TraceExporter(settings(type="gen_ai"), RuntimeDiagnostics(), tracer_provider=provider)
    registered(exporter)
    scope.pop(scope.push("agent", ScopeType.Agent))
    assert subscribers.flush(timeout=10)
    assert exporter.force_flush(timeout=5)
    assert exporter.shutdown(timeout=5).ok
    provider.get_tracer("user").start_span("user-span").end()  # the caller's provider still works
    assert [span.name for span in memory.get_finished_spans()] == ["invoke_agent agent", "user-span"]
    provider.shutdown()


# --- through the observability plugin ---------------------------------------------------------------------


def _plugin_config(endpoint: str) -> Any:
    from nemo_relay import observability, plugin

    section = observability.OpenTelemetrySectionConfig(
        enabled=True,
        endpoints=[observability.OpenTelemetryEndpointConfig("openinference", endpoint, timeout_millis=500)],
    )
    return plugin.PluginConfig(
        components=[observability.ComponentSpec(observability.ObservabilityConfig(opentelemetry=section))]
    )


def test_the_plugin_exports_traces_and_reports_delivery_failures(
    otlp_receiver: OtlpReceiver, refused_endpoint: str
) -> None:
    from nemo_relay import plugin

    async def session(endpoint: str) -> list[Any]:
        assert await plugin.initialize(_plugin_config(endpoint)) == {"diagnostics": []}
        return await agent_run()

    assert run(lambda: session(otlp_receiver.endpoint)) == EXPECTED_RESULTS
    plugin.clear(timeout=10)
    spans = otlp_receiver.wait_for("traces", lambda items: len(items) >= 5)
    assert {span["attributes"]["openinference.span.kind"] for span in spans} == {"AGENT", "LLM", "TOOL", "CHAIN"}
    assert plugin.report() is None

    assert run(lambda: session(refused_endpoint)) == EXPECTED_RESULTS  # the agent never notices
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"OpenTelemetry runtime delivery failures: otel\.traces_export_failed"):
        plugin.clear(timeout=5)
    assert time.monotonic() - started < SHUTDOWN_BOUND
    report = plugin.report()
    assert report is not None
    (entry,) = report["runtime_diagnostics"]
    assert (entry["code"], entry["component"], entry["field"]) == (
        "otel.traces_export_failed",
        "observability",
        "opentelemetry.traces[0].endpoint",
    )
    plugin.clear(timeout=5)  # a delivery failure does not block the next configuration
    assert plugin.report() is None
