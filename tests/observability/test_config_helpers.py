"""The public config helpers of ``nemo_relay.observability``: shapes, defaults and positional order."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import nemo_relay
from nemo_relay import observability as o
from nemo_relay import plugin

_DATA = Path(__file__).with_name("data")


def _helper_objects() -> Any:
    spec = importlib.util.spec_from_file_location("helper_objects", _DATA / "helper_objects.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_OBJECTS = _helper_objects().build(o)
_EXPECTED = json.loads((_DATA / "helper_dicts.json").read_text())


@pytest.mark.parametrize("name", sorted(_OBJECTS))
def test_to_dict_matches_reference(name: str) -> None:
    got = _OBJECTS[name].to_dict()
    assert json.loads(json.dumps(got)) == _EXPECTED[name]
    assert list(got) == list(_EXPECTED[name])  # same key order, so JSON dumps are identical


def test_pinned_default_shapes() -> None:
    assert o.AtofConfig().to_dict() == {"enabled": False}
    assert o.AtifConfig().to_dict() == {
        "enabled": False,
        "agent_name": "NeMo Relay",
        "model_name": "unknown",
        "filename_template": "nemo-relay-atif-{session_id}.json",
    }
    assert o.OpenTelemetrySectionConfig().to_dict() == {"enabled": False, "endpoints": []}
    assert o.ObservabilityConfig().to_dict() == {
        "version": 4,
        "policy": {"unknown_component": "warn", "unknown_field": "warn", "unsupported_value": "error"},
        "enable_full_payloads": False,
    }


def test_endpoint_keeps_historical_positional_order() -> None:
    names = [f.name for f in dataclasses.fields(o.OpenTelemetryEndpointConfig)]
    assert names == [
        "type", "endpoint", "mark_projection", "mark_exclude_names", "attribute_mappings", "transport",
        "service_name", "service_namespace", "service_version", "instrumentation_scope", "timeout_millis",
        "headers", "header_env", "resource_attributes", "max_queue_size", "max_export_batch_size",
        "scheduled_delay_millis", "completed_span_context_ttl_millis", "promote_metadata_prefixes",
        "promote_resource_metadata_prefixes",
    ]  # fmt: skip
    endpoint = o.OpenTelemetryEndpointConfig("gen_ai", "http://h:4318", "event", [], [], "grpc")
    assert (endpoint.type, endpoint.mark_projection, endpoint.transport) == ("gen_ai", "event", "grpc")


def test_signal_sections_default_disabled_and_serialise_endpoint_defaults() -> None:
    logs = o.OpenTelemetryLogSectionConfig(endpoints=[o.OpenTelemetrySignalEndpointConfig("http://c:4318")])
    assert logs.to_dict() == {
        "enabled": False,
        "endpoints": [
            {
                "endpoint": "http://c:4318",
                "transport": "http_binary",
                "headers": {},
                "header_env": {},
                "resource_attributes": {},
                "service_name": "unknown_service",
                "instrumentation_scope": "opentelemetry",
                "timeout_millis": 3000,
            }
        ],
        "minimum_severity": "info",
        "max_queue_size": 2048,
        "max_export_batch_size": 512,
        "scheduled_delay_millis": 1000,
    }
    assert o.OpenTelemetryMetricSectionConfig().to_dict()["enabled"] is False
    assert "endpoints" not in o.OpenTelemetryMetricSectionConfig().to_dict()


def test_stream_sink_alias_and_positional_transport() -> None:
    assert o.AtofEndpointConfig is o.AtofStreamSinkConfig
    sink = o.AtofEndpointConfig("ws://collector/events", "websocket")
    assert sink.to_dict()["transport"] == "websocket"
    assert "name" not in sink.to_dict()
    named = o.AtofStreamSinkConfig("http://c", name="primary", header_env={"authorization": "TOKEN"})
    assert list(named.to_dict())[:3] == ["type", "name", "url"]
    # The standalone exporter's class of the same name is a different one.
    assert nemo_relay.AtofStreamSinkConfig is not o.AtofStreamSinkConfig


def test_storage_configs_serialise_credentials_as_given() -> None:
    s3 = o.S3StorageConfig("bucket", access_key_id="AKIA", secret_access_key_var="SECRET", session_token_var="TOK")
    assert s3.to_dict() == {
        "type": "s3",
        "bucket": "bucket",
        "access_key_id": "AKIA",
        "secret_access_key_var": "SECRET",
        "session_token_var": "TOK",
    }
    http = o.HttpStorageConfig("https://h/up", {"authorization": "Bearer x"}, {"x-key": "KEY"})
    assert http.to_dict()["headers"] == {"authorization": "Bearer x"}
    assert http.to_dict()["header_env"] == {"x-key": "KEY"}


def test_component_spec_wraps_config() -> None:
    spec = o.ComponentSpec(o.ObservabilityConfig(atof=o.AtofConfig(enabled=True, sinks=[o.AtofFileSinkConfig()])))
    data = spec.to_dict()
    assert data["kind"] == o.OBSERVABILITY_PLUGIN_KIND == "observability"
    assert data["enabled"] is True
    assert data["config"]["atof"] == {"enabled": True, "sinks": [{"type": "file", "mode": "append"}]}


def test_component_spec_is_accepted_by_the_plugin_document() -> None:
    config = o.ObservabilityConfig(atif=o.AtifConfig(enabled=True, filename_template="no-session.json"))
    report = plugin.validate(plugin.PluginConfig(components=[o.ComponentSpec(config)]))
    assert [(d["code"], d.get("field")) for d in report["diagnostics"]] == [
        ("observability.unsupported_value", "filename_template")
    ]
    assert "observability" in plugin.list_kinds()


def test_classes_are_slotted_dataclasses_with_docstrings() -> None:
    for name in o.__all__:
        value = getattr(o, name)
        if inspect.isclass(value):
            assert dataclasses.is_dataclass(value), name
            assert "__slots__" in vars(value), name
            assert value.__doc__ and value.__doc__.strip(), name


def test_module_exports() -> None:
    assert o.UnsupportedBehavior.__args__ == ("ignore", "warn", "error")  # type: ignore[attr-defined]
    assert o.Json is not None and o.JsonObject is not None
    assert o._normalize((1, None)) == (1, None)
    assert o._normalize([1, None, {"a": None}]) == [1, None, {}]
    assert o._normalize_object({"a": None, "b": 1}) == {"b": 1}
