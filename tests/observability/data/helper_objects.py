"""``nemo_relay.observability`` objects whose ``to_dict()`` is compared with the reference's output.

``build(module)`` takes the module so the same objects can be built against the reference wheel
(``regen_helper_dicts.py``) and against this package (``test_config_helpers.py``).
"""

import dataclasses


@dataclasses.dataclass
class Plain:
    """A dataclass without ``to_dict`` (normalised field by field, ``None`` dropped)."""

    a: int = 1
    b: object = None


def build(o):
    return {
        "policy": o.ConfigPolicy(),
        "policy_positional": o.ConfigPolicy("error", "ignore"),
        "atof_default": o.AtofConfig(),
        "atof_empty_sinks": o.AtofConfig(enabled=True, sinks=[]),
        "atof_mixed": o.AtofConfig(
            enabled=True,
            sinks=[
                o.AtofFileSinkConfig(filename="x", mode="overwrite"),
                {"type": "file", "filename": None},
                o.AtofEndpointConfig("ws://x", "websocket", name="n"),
            ],
        ),
        "stream_positional": o.AtofStreamSinkConfig(
            "http://x", "ndjson", {"a": "b", "c": None}, {"k": "V"}, 5, "replace_dots"
        ),
        "file": o.AtofFileSinkConfig("d", "f"),
        "atif_default": o.AtifConfig(),
        "atif_full": o.AtifConfig(
            enabled=True,
            agent_version="1",
            tool_definitions=[{"name": "t", "x": None}],
            extra={"a": None, "b": [None, {"c": None}]},
            output_directory="d",
            storage=[
                o.S3StorageConfig("b", key_prefix="p", allow_http=False),
                o.HttpStorageConfig("http://h", headers={"a": "b"}),
                {"type": "http", "x": None},
            ],
        ),
        "s3_default": o.S3StorageConfig(),
        "s3_positional": o.S3StorageConfig("b", "p", "id", "SV", "TV", "r", "http://e", True),
        "http_default": o.HttpStorageConfig(),
        "http_positional": o.HttpStorageConfig("http://x", {"a": "b"}, {"c": "D"}, 9),
        "otel_default": o.OpenTelemetrySectionConfig(),
        "otel_full": o.OpenTelemetrySectionConfig(
            enabled=True,
            endpoints=[o.OpenTelemetryEndpointConfig("gen_ai", "e"), {"type": "full", "endpoint": None}],
            logs=o.OpenTelemetryLogSectionConfig(
                enabled=True, endpoints=[o.OpenTelemetrySignalEndpointConfig("x", service_version="v")]
            ),
            metrics=o.OpenTelemetryMetricSectionConfig(endpoints=[]),
        ),
        "endpoint_positional": o.OpenTelemetryEndpointConfig(
            "full",
            "http://x",
            "tool",
            ["a"],
            [{"key": "k", "alias": "a"}],
            "grpc",
            "svc",
            "ns",
            "1.0",
            "scope",
            10,
            {"h": "v"},
            {"e": "E"},
            {"r": "s"},
            1,
            2,
            3,
            4,
            ["p."],
            ["q"],
        ),
        "endpoint_nulls": o.OpenTelemetryEndpointConfig(
            "full", "x", attribute_mappings=[{"key": "a", "alias": None}], mark_exclude_names=["a", None]
        ),
        "signal_positional": o.OpenTelemetrySignalEndpointConfig(
            "http://x", "grpc", {"a": "b"}, {"c": "D"}, {"r": "s"}, "svc", "ns", "v", "sc", 7
        ),
        "logs_default": o.OpenTelemetryLogSectionConfig(),
        "logs_positional": o.OpenTelemetryLogSectionConfig(True, [], "warning", 1, 1, 1, 5),
        "metrics_default": o.OpenTelemetryMetricSectionConfig(),
        "metrics_positional": o.OpenTelemetryMetricSectionConfig(True, None, 1, "delta", 2, 3),
        "observability_default": o.ObservabilityConfig(),
        "observability_full": o.ObservabilityConfig(
            version=3,
            atof=o.AtofConfig(),
            atif={"enabled": True, "x": None},
            opentelemetry=o.OpenTelemetrySectionConfig(),
            policy=o.ConfigPolicy("error"),
            enable_full_payloads=True,
        ),
        "observability_no_policy": o.ObservabilityConfig(policy=None),
        "observability_dict_policy": o.ObservabilityConfig(policy={"unknown_field": "error", "x": None}),
        "component": o.ComponentSpec(o.ObservabilityConfig()),
        "component_dict": o.ComponentSpec({"version": None, "atof": {"enabled": None}}, enabled=False),
        "component_nested": o.ComponentSpec({"x": Plain(b={"c": None}), "y": o.ConfigPolicy(), "z": [1, None]}),
    }
