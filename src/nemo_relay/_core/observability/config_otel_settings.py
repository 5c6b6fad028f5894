"""Settings for an enabled ``opentelemetry`` section: usable trace endpoints and resolved signals."""

from __future__ import annotations

from nemo_relay._core.observability import config_url as urls
from nemo_relay._core.observability import settings
from nemo_relay._core.observability.config_common import Reporter
from nemo_relay._core.observability.config_otel import (
    SEVERITIES,
    SIGNAL_COPY_KEYS,
    SIGNAL_PATHS,
    TRANSPORTS,
    SignalError,
    check_signal_settings,
    resolve_signal,
    trace_endpoint_usable,
    trace_url,
)
from nemo_relay._core.observability.config_serde import debug_str

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["bsp_default", "build_settings"]


def bsp_default(name: str, fallback: int) -> int:
    """A batch-span-processor setting from ``OTEL_BSP_*`` (positive integers only), else ``fallback``."""
    import os

    try:
        value = int(os.environ.get(name, "").strip())
    except ValueError:
        return fallback
    return value if value > 0 else fallback


def _trace_settings(index: int, endpoint: dict[str, Any]) -> settings.TraceEndpointSettings:
    queue = endpoint["max_queue_size"] or bsp_default("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    batch = endpoint["max_export_batch_size"] or bsp_default("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
    delay = endpoint["scheduled_delay_millis"] or bsp_default("OTEL_BSP_SCHEDULE_DELAY", 5000)
    return settings.TraceEndpointSettings(
        index=index,
        type=endpoint["type"],
        endpoint=endpoint["endpoint"],
        url=trace_url(endpoint),
        mark_projection=endpoint["mark_projection"],
        mark_exclude_names=tuple(endpoint["mark_exclude_names"]),
        attribute_mappings=tuple((m["key"], m["alias"]) for m in endpoint["attribute_mappings"]),
        promote_metadata_prefixes=tuple(endpoint["promote_metadata_prefixes"]),
        promote_resource_metadata_prefixes=tuple(endpoint["promote_resource_metadata_prefixes"]),
        max_queue_size=queue,
        max_export_batch_size=min(batch, queue),  # the SDK never batches more than it can queue
        scheduled_delay_millis=delay,
        completed_span_context_ttl_millis=endpoint["completed_span_context_ttl_millis"],
        **_export_fields(endpoint),
    )


def _export_fields(endpoint: dict[str, Any]) -> dict[str, Any]:
    fields = {key: endpoint[key] for key in ("transport", *SIGNAL_COPY_KEYS)}
    for key in ("headers", "header_env", "resource_attributes"):
        fields[key] = dict(fields[key])
    return fields


def _signal_settings(signal: str, section: dict[str, Any], traces: list[dict[str, Any]]) -> tuple[Any, ...]:
    resolved, _ = resolve_signal(signal, section, traces)
    endpoints = []
    for index, endpoint, derived in resolved:
        url = endpoint["endpoint"]
        if endpoint["transport"] == "http_binary":
            url = urls.complete_signal_path(url, SIGNAL_PATHS[signal])
        endpoints.append(
            settings.SignalEndpointSettings(
                index=index, endpoint=endpoint["endpoint"], url=url, derived=derived, **_export_fields(endpoint)
            )
        )
    return tuple(endpoints)


def _activation_problem(signal: str, section: dict[str, Any]) -> str | None:
    # Signal settings that make activation impossible (validation may only have warned about them).
    report = Reporter({"unknown_field": "ignore", "unsupported_value": "error"})
    check_signal_settings(report, signal, section)
    if signal == "logs" and section["minimum_severity"].lower() not in SEVERITIES:
        return (
            f"OpenTelemetry logs.minimum_severity invalid log severity {debug_str(section['minimum_severity'])}; "
            "expected trace, debug, info, warn, warning, or error"
        )
    return report.diagnostics[0]["message"] if report.diagnostics else None


def _usable(endpoint: dict[str, Any]) -> bool:
    return (
        bool(endpoint["endpoint"].strip()) and endpoint["transport"] in TRANSPORTS and trace_endpoint_usable(endpoint)
    )


def build_settings(
    section: dict[str, Any], version: int
) -> tuple[tuple[settings.TraceEndpointSettings, ...], settings.LogSettings | None, settings.MetricSettings | None]:
    """The active trace endpoints and log/metric signals of an enabled section.

    Trace endpoints that cannot be used (blank, unknown transport, invalid batch settings) are
    skipped, as validation warned or the policy allowed; a version-3 config ignores signals. Raises
    ``SignalError`` when a signal cannot be activated or nothing at all would be exported.
    """
    raw_traces: list[dict[str, Any]] = section["traces"]
    logs_part = section["logs"] if version != 3 else None
    metrics_part = section["metrics"] if version != 3 else None
    logs_on = logs_part is not None and logs_part["enabled"]
    metrics_on = metrics_part is not None and metrics_part["enabled"]
    if not raw_traces and not logs_on and not metrics_on:
        raise SignalError(
            "enabled OpenTelemetry section requires at least one endpoint or an enabled log/metric signal"
        )
    traces = tuple(_trace_settings(i, ep) for i, ep in enumerate(raw_traces) if _usable(ep))
    logs = metrics = None
    for signal, part, on in (("logs", logs_part, logs_on), ("metrics", metrics_part, metrics_on)):
        if not on or part is None:
            continue
        problem = _activation_problem(signal, part)
        if problem is not None:
            raise SignalError(problem)
        try:
            endpoints = _signal_settings(signal, part, raw_traces)
        except SignalError as exc:
            raise SignalError(f"OpenTelemetry {signal}.endpoints invalid config: {exc}") from None
        if not endpoints:
            continue
        if signal == "logs":
            severity = part["minimum_severity"].lower()
            logs = settings.LogSettings(
                endpoints=endpoints,
                minimum_severity="warn" if severity == "warning" else severity,
                max_queue_size=part["max_queue_size"],
                max_export_batch_size=part["max_export_batch_size"],
                scheduled_delay_millis=part["scheduled_delay_millis"],
                completed_span_context_ttl_millis=part["completed_span_context_ttl_millis"],
            )
        else:
            metrics = settings.MetricSettings(
                endpoints=endpoints,
                export_interval_millis=part["export_interval_millis"],
                temporality=part["temporality"].lower(),
                max_instruments=part["max_instruments"],
                cardinality_limit=part["cardinality_limit"],
            )
    if not traces and logs is None and metrics is None:
        raise SignalError("enabled OpenTelemetry section requires at least one valid trace, log, or metric endpoint")
    return traces, logs, metrics
