"""``config.parse``: normalised settings, endpoint completion and derivation, defaults and refusals."""

from __future__ import annotations

import os

import pytest

from nemo_relay._core.observability import settings as s
from nemo_relay._core.observability.config import ObservabilityConfigError, parse
from nemo_relay._core.observability.config_otel_settings import bsp_default

_BSP = ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY")


@pytest.fixture(autouse=True)
def _no_bsp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _BSP:
        monkeypatch.delenv(name, raising=False)


def _otel(*endpoints: dict[str, object], **section: object) -> dict[str, object]:
    return {"opentelemetry": {"enabled": True, "endpoints": list(endpoints), **section}}


def test_empty_config_parses_to_nothing_enabled() -> None:
    assert parse({}) == s.ObservabilitySettings()
    assert parse(None) == s.ObservabilitySettings()


def test_disabled_sections_produce_no_exporters() -> None:
    config = {
        "atof": {"enabled": False, "sinks": [{"type": "file"}]},
        "atif": {"enabled": False},
        "opentelemetry": {"enabled": False, "endpoints": [{"type": "full", "endpoint": "http://h"}]},
    }
    settings = parse(config)
    assert (settings.atof_sinks, settings.atif, settings.opentelemetry_enabled, settings.traces) == (
        (),
        None,
        False,
        (),
    )


def test_atof_sinks_are_fully_defaulted() -> None:
    settings = parse(
        {
            "enable_full_payloads": True,
            "atof": {
                "enabled": True,
                "sinks": [
                    {"type": "file"},
                    {"type": "stream", "url": "wss://c/e", "transport": "websocket", "name": "main"},
                ],
            },
        }
    )
    assert settings.enable_full_payloads is True
    assert settings.atof_sinks == (
        s.AtofFileSinkSettings(index=0, output_directory=None, filename=None, mode="append"),
        s.AtofStreamSinkSettings(
            index=1,
            url="wss://c/e",
            transport="websocket",
            headers={},
            header_env={},
            timeout_millis=3000,
            field_name_policy="preserve",
            name="main",
        ),
    )


def test_file_sink_paths_resolve_at_activation(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(str(tmp_path))
    sink = s.AtofFileSinkSettings(index=0)
    path = sink.resolve_path()
    assert os.path.dirname(path) == str(tmp_path)
    assert os.path.basename(path).startswith("nemo-relay-events-") and path.endswith(".jsonl")
    assert s.AtofFileSinkSettings(0, "/d", "e.jsonl").resolve_path() == os.path.join("/d", "e.jsonl")


def test_header_env_is_resolved_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TOKEN", "Bearer relay-499")
    config = {
        "atof": {
            "enabled": True,
            "sinks": [
                {
                    "type": "stream",
                    "url": "http://c",
                    "headers": {"x": "1"},
                    "header_env": {"authorization": "RELAY_TOKEN"},
                }
            ],
        }
    }
    (sink,) = parse(config).atof_sinks
    assert isinstance(sink, s.AtofStreamSinkSettings)
    assert "relay-499" not in repr(sink)
    assert sink.resolve_headers() == {"x": "1", "authorization": "Bearer relay-499"}
    monkeypatch.delenv("RELAY_TOKEN")
    with pytest.raises(ValueError, match="'RELAY_TOKEN' for header 'authorization' is not set"):
        sink.resolve_headers()


def test_atif_settings_and_storage() -> None:
    settings = parse(
        {
            "atif": {
                "enabled": True,
                "tool_definitions": [{"name": "lookup"}],
                "extra": {"binding": "x"},
                "filename_template": "{metadata.team:-none}/t-{session_id}.json",
                "storage": [
                    {"type": "s3", "bucket": "b", "key_prefix": "runs"},
                    {"type": "http", "endpoint": "https://h/up", "timeout_millis": 10},
                ],
            }
        }
    )
    assert settings.atif == s.AtifSettings(
        agent_name="NeMo Relay",
        agent_version=s.DEFAULT_AGENT_VERSION,
        model_name="unknown",
        tool_definitions=[{"name": "lookup"}],
        extra={"binding": "x"},
        output_directory=None,
        filename_template="{metadata.team:-none}/t-{session_id}.json",
        storage=(
            s.S3StorageSettings(index=0, bucket="b", key_prefix="runs"),
            s.HttpStorageSettings(index=1, endpoint="https://h/up", timeout_millis=10),
        ),
    )
    assert parse({"atif": {"enabled": True, "agent_version": "2.0"}}).atif.agent_version == "2.0"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("endpoint", "transport", "url"),
    [
        ("http://h:4318", "http_binary", "http://h:4318/v1/traces"),
        ("http://h:4318/", "http_binary", "http://h:4318/"),
        ("https://h/custom", "http_binary", "https://h/custom"),
        ("http://h:4318?x=1", "http_binary", "http://h:4318/v1/traces?x=1"),
        ("http://h:4317", "grpc", "http://h:4317"),
    ],
)
def test_trace_endpoint_completion(endpoint: str, transport: str, url: str) -> None:
    (trace,) = parse(_otel({"type": "full", "endpoint": endpoint, "transport": transport})).traces
    assert (trace.endpoint, trace.url) == (endpoint, url)


def test_trace_endpoint_fields_and_batch_defaults() -> None:
    (trace,) = parse(
        _otel(
            {
                "type": "openinference",
                "endpoint": "http://p:6006",
                "mark_projection": "tool",
                "attribute_mappings": [{"key": "a", "alias": "b"}],
                "promote_metadata_prefixes": ["app."],
                "service_name": "svc",
                "headers": {"x": "1"},
                "max_queue_size": 100,
                "max_export_batch_size": 50,
            }
        )
    ).traces
    assert trace.type == "openinference"
    assert trace.mark_projection == "tool"
    assert trace.mark_exclude_names == ("llm.chunk",)
    assert trace.attribute_mappings == (("a", "b"),)
    assert trace.promote_metadata_prefixes == ("app.",)
    assert (trace.service_name, trace.instrumentation_scope, trace.timeout_millis) == ("svc", "opentelemetry", 3000)
    assert (trace.max_queue_size, trace.max_export_batch_size, trace.scheduled_delay_millis) == (100, 50, 5000)
    assert trace.field == "opentelemetry.traces[0].endpoint"


def test_batch_settings_fall_back_to_otel_bsp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "128")  # clamped to the queue size
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    (trace,) = parse(_otel({"type": "full", "endpoint": "http://h"})).traces
    assert (trace.max_queue_size, trace.max_export_batch_size, trace.scheduled_delay_millis) == (64, 64, 250)
    (explicit,) = parse(_otel({"type": "full", "endpoint": "http://h", "scheduled_delay_millis": 9})).traces
    assert explicit.scheduled_delay_millis == 9


@pytest.mark.parametrize("raw", ["", "x", "0", "-3", "1.5"])
def test_unusable_bsp_env_values_are_ignored(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", raw)
    assert bsp_default("OTEL_BSP_MAX_QUEUE_SIZE", 2048) == 2048


def test_endpoints_with_invalid_batch_settings_are_skipped() -> None:
    settings = parse(
        _otel(
            {"type": "full", "endpoint": "http://a", "max_queue_size": 0},
            {"type": "gen_ai", "endpoint": "http://b", "max_queue_size": 5, "max_export_batch_size": 9},
            {"type": "openinference", "endpoint": "http://c"},
        )
    )
    assert [(t.index, t.type) for t in settings.traces] == [(2, "openinference")]


def test_only_unusable_endpoints_means_nothing_to_export() -> None:
    with pytest.raises(ObservabilityConfigError, match="at least one valid trace, log, or metric endpoint"):
        parse(_otel({"type": "full", "endpoint": "http://a", "max_queue_size": 0}))


def test_enabled_section_without_endpoints_is_refused() -> None:
    with pytest.raises(ObservabilityConfigError, match="requires at least one endpoint or an enabled log/metric"):
        parse(_otel())


def test_log_and_metric_endpoints_are_derived_from_trace_endpoints() -> None:
    settings = parse(
        _otel(
            {"type": "full", "endpoint": "http://h:4318", "headers": {"x": "1"}, "service_name": "svc"},
            {"type": "gen_ai", "endpoint": "http://g:4318/base/v1/traces?tenant=a"},
            {"type": "openinference", "endpoint": "http://p:4317", "transport": "grpc"},
            {"type": "full", "endpoint": "http://q/custom"},
            logs={"enabled": True, "minimum_severity": "WARNING"},
            metrics={"enabled": True, "temporality": "Delta"},
        )
    )
    assert settings.logs is not None and settings.metrics is not None
    assert [(e.index, e.url, e.derived) for e in settings.logs.endpoints] == [
        (0, "http://h:4318/v1/logs", True),
        (1, "http://g:4318/base/v1/logs?tenant=a", True),
        (2, "http://p:4317", True),
    ]
    first = settings.logs.endpoints[0]
    assert (first.headers, first.service_name, first.transport) == ({"x": "1"}, "svc", "http_binary")
    assert settings.metrics.endpoints[0].url == "http://h:4318/v1/metrics"
    assert settings.logs.minimum_severity == "warn"
    assert settings.metrics.temporality == "delta"


def test_explicit_signal_endpoints_are_completed_not_derived() -> None:
    settings = parse(
        {
            "opentelemetry": {
                "enabled": True,
                "logs": {"enabled": True, "endpoints": [{"endpoint": "http://c:4318"}, {"endpoint": "http://d/x/"}]},
            }
        }
    )
    assert settings.traces == ()
    assert settings.logs is not None
    assert [(e.endpoint, e.url, e.derived) for e in settings.logs.endpoints] == [
        ("http://c:4318", "http://c:4318/v1/logs", False),
        ("http://d/x/", "http://d/x/", False),
    ]
    assert settings.metrics is None


def test_underivable_signal_leaves_only_traces() -> None:
    settings = parse(_otel({"type": "full", "endpoint": "http://q/custom"}, logs={"enabled": True}))
    assert settings.logs is None
    assert len(settings.traces) == 1


def test_signal_that_cannot_be_resolved_is_refused() -> None:
    with pytest.raises(ObservabilityConfigError, match=r"logs\.endpoints invalid config: .*ends in /v1/traces"):
        parse(
            {
                "opentelemetry": {
                    "enabled": True,
                    "logs": {"enabled": True, "endpoints": [{"endpoint": "http://c/v1/traces"}]},
                }
            }
        )


def test_invalid_severity_is_refused_at_activation() -> None:
    config = {
        "opentelemetry": {
            "enabled": True,
            "logs": {"enabled": True, "minimum_severity": "loud", "endpoints": [{"endpoint": "http://c"}]},
        }
    }
    with pytest.raises(ObservabilityConfigError, match='invalid log severity "loud"'):
        parse(config)


def test_version_3_ignores_signals() -> None:
    settings = parse({"version": 3, **_otel({"type": "full", "endpoint": "http://h"}, logs={"enabled": True})})
    assert settings.version == 3
    assert settings.logs is None and len(settings.traces) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"version": 9}, "observability config version 9 is unsupported"),
        ({"version": "4"}, 'invalid type: string "4", expected u32'),
        ({"atof": {"enabled": True, "sinks": [{"type": "file", "mode": "bad"}]}}, "sinks[0].mode must be 'append'"),
        ({"atif": {"enabled": True, "filename_template": "x"}}, "must contain '{session_id}'"),
        ([], "must be an object"),
    ],
)
def test_unusable_configs_raise(config: object, message: str) -> None:
    with pytest.raises(ObservabilityConfigError) as info:
        parse(config)
    assert message in str(info.value)


def test_settings_are_frozen() -> None:
    settings = parse({})
    with pytest.raises(AttributeError):
        settings.version = 3  # type: ignore[misc]
