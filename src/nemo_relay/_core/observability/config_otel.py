"""The ``opentelemetry`` section: trace endpoint checks, destination collisions, log/metric signals.

Everything here works on the normalised document from ``config_serde.read``. Signal endpoint
resolution (explicit list, or one endpoint derived per trace endpoint) is shared by validation and
``parse`` so both agree on what will be exported.
"""

from __future__ import annotations

import re

from nemo_relay._core.observability import config_url as urls
from nemo_relay._core.observability.config_common import (
    INVALID_OTEL_ENDPOINT,
    Reporter,
    header_name_valid,
    header_value_valid,
)
from nemo_relay._core.observability.config_serde import ABSENT, debug_str

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SIGNAL_PATHS", "SignalError", "check_section", "resolve_signal", "trace_url"]

TRANSPORTS = ("http_binary", "grpc")
SIGNAL_PATHS = {"traces": "/v1/traces", "logs": "/v1/logs", "metrics": "/v1/metrics"}
SEVERITIES = ("trace", "debug", "info", "warn", "warning", "error")
TEMPORALITIES = ("cumulative", "delta", "low_memory")
_USIZE_MAX = 2**64 - 1
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
_COLLISION = "observability.unsafe_otel_destination_collision"


class SignalError(ValueError):
    """A log/metric signal's endpoints cannot be resolved; ``str()`` is the reason."""


def trace_url(endpoint: dict[str, Any]) -> str:
    """Where a trace endpoint exports: ``http_binary`` bare authorities gain ``/v1/traces``."""
    raw: str = endpoint["endpoint"]
    return urls.complete_signal_path(raw, SIGNAL_PATHS["traces"]) if endpoint["transport"] == "http_binary" else raw


def _destination(endpoint: str, transport: str, signal_path: str) -> str:
    target = urls.complete_signal_path(endpoint, signal_path) if transport == "http_binary" else endpoint
    return urls.canonical_destination(target)


# --- trace endpoints -----------------------------------------------------------------------------


def _mapping_error(mappings: list[dict[str, str]]) -> str | None:
    aliases: set[str] = set()
    for mapping in mappings:
        if not mapping["key"].strip():
            return "attribute mapping key must not be blank"
        alias = mapping["alias"].strip()
        if not alias:
            return "attribute mapping alias must not be blank"
        if alias in aliases:
            return f"attribute mapping alias {debug_str(alias)} is duplicated"
        aliases.add(alias)
    return None


def prefix_error(prefixes: list[str]) -> str | None:
    """Why a ``promote_*metadata_prefixes`` list is invalid (first problem), or None."""
    seen: set[str] = set()
    for prefix in prefixes:
        if not prefix.strip():
            return "metadata promotion prefix must not be blank"
        if prefix != prefix.strip():
            return f"metadata promotion prefix {debug_str(prefix)} must not have surrounding whitespace"
        if any(char in "*?[]" for char in prefix):
            return f"metadata promotion prefix {debug_str(prefix)} must be a literal prefix, not a glob"
        if not (prefix.isascii() and _PREFIX.fullmatch(prefix)):
            return (
                f"metadata promotion prefix {debug_str(prefix)} must contain letter, number, underscore, or hyphen "
                "segments separated by single dots, with an optional trailing dot"
            )
        if prefix in seen:
            return f"metadata promotion prefix {debug_str(prefix)} is duplicated"
        seen.add(prefix)
    return None


def _duplicate(names: list[str]) -> list[str]:
    seen: set[str] = set()
    repeated = []
    for name in names:
        folded = name.lower()
        if folded in seen:
            repeated.append(name)
        seen.add(folded)
    return repeated


def _header_entries(report: Reporter, label: str, endpoint: dict[str, Any], conflict: Any) -> None:
    # Shared by trace and signal endpoints: names, values, env-var names (never their presence).
    headers: dict[str, str] = endpoint["headers"]
    for name, value in headers.items():
        field = f"{label}.headers.{name}"
        if not header_name_valid(name):
            report.unsupported(
                "opentelemetry", field, f"OpenTelemetry {field} header name {debug_str(name)} is invalid"
            )
        if not header_value_valid(value):
            report.unsupported("opentelemetry", field, f"OpenTelemetry header {debug_str(name)} has an invalid value")
    static = {name.lower() for name in headers}
    for name, variable in endpoint["header_env"].items():
        field = f"{label}.header_env.{name}"
        if not header_name_valid(name):
            report.unsupported(
                "opentelemetry", field, f"OpenTelemetry {field} header name {debug_str(name)} is invalid"
            )
        if name.lower() in static:
            conflict(name)
        if not variable.strip():
            report.unsupported(
                "opentelemetry", field, f"OpenTelemetry {field} must name a non-empty environment variable"
            )
        elif variable != variable.strip():
            report.unsupported(
                "opentelemetry",
                field,
                f"OpenTelemetry {field} must not have surrounding whitespace; got {debug_str(variable)}",
            )


def _check_trace_endpoint(report: Reporter, index: int, endpoint: dict[str, Any]) -> None:
    label = f"endpoints[{index}]"
    if not endpoint["endpoint"].strip():
        report.unsupported("opentelemetry", f"{label}.endpoint", "OpenTelemetry endpoint must be a nonblank string")
    if endpoint["transport"] not in TRANSPORTS:
        report.unsupported(
            "opentelemetry", f"{label}.transport", "OpenTelemetry endpoint transport must be 'http_binary' or 'grpc'"
        )
    problem = _mapping_error(endpoint["attribute_mappings"])
    if problem is not None:
        report.unsupported("opentelemetry", f"{label}.attribute_mappings", problem)
    for key in ("promote_metadata_prefixes", "promote_resource_metadata_prefixes"):
        problem = prefix_error(endpoint[key])
        if problem is not None:
            report.unsupported("opentelemetry", f"{label}.{key}", problem)
    for key in (
        "max_queue_size",
        "max_export_batch_size",
        "scheduled_delay_millis",
        "completed_span_context_ttl_millis",
    ):
        if endpoint[key] == 0:
            message = f"OpenTelemetry {label}.{key} must be greater than 0"
            report.warning(INVALID_OTEL_ENDPOINT, "opentelemetry", f"{label}.{key}", message)
    queue, batch = endpoint["max_queue_size"], endpoint["max_export_batch_size"]
    if queue is not None and batch is not None and batch > queue:
        message = f"OpenTelemetry {label}.max_export_batch_size must be less than or equal to max_queue_size"
        report.warning(INVALID_OTEL_ENDPOINT, "opentelemetry", f"{label}.max_export_batch_size", message)
    for key in ("headers", "header_env"):
        for name in _duplicate(list(endpoint[key])):
            report.unsupported(
                "opentelemetry",
                f"{label}.{key}.{name}",
                f"OpenTelemetry {label}.{key} contains duplicate header {debug_str(name)} ignoring ASCII case",
            )

    def conflict(name: str) -> None:
        message = f"OpenTelemetry {label} header {debug_str(name)} cannot appear in both headers and header_env"
        report.unsupported("opentelemetry", f"{label}.header_env.{name}", message)

    _header_entries(report, label, endpoint, conflict)


def trace_endpoint_usable(endpoint: dict[str, Any]) -> bool:
    """Whether an endpoint's batch settings let it be activated (otherwise it is skipped)."""
    keys = ("max_queue_size", "max_export_batch_size", "scheduled_delay_millis", "completed_span_context_ttl_millis")
    if any(endpoint[key] == 0 for key in keys):
        return False
    queue, batch = endpoint["max_queue_size"], endpoint["max_export_batch_size"]
    return queue is None or batch is None or batch <= queue


def _check_collisions(report: Reporter, traces: list[dict[str, Any]]) -> None:
    keys = [(ep["transport"], _destination(ep["endpoint"], ep["transport"], SIGNAL_PATHS["traces"])) for ep in traces]
    for later in range(len(traces)):
        for earlier in range(later):
            first, second = traces[earlier], traces[later]
            if first["type"] != second["type"] and keys[earlier] == keys[later]:
                transport, destination = keys[later]
                message = (
                    f"OpenTelemetry endpoints[{earlier}] ({first['type']}) and endpoints[{later}] ({second['type']}) "
                    f"use the same {transport} destination {debug_str(destination)}; different projection types must "
                    "use independent destinations"
                )
                report.error(_COLLISION, "opentelemetry", f"endpoints[{later}].endpoint", message)


# --- log and metric signals ----------------------------------------------------------------------


def _derive(signal: str, index: int, endpoint: dict[str, Any]) -> str:
    # The signal endpoint copied from trace endpoint ``index``; SignalError says why it cannot be.
    transport = endpoint["transport"]
    if transport not in TRANSPORTS:
        raise SignalError(
            f"OpenTelemetry traces.endpoints[{index}].transport must be 'http_binary' or 'grpc', got "
            f"{debug_str(transport)}"
        )
    raw: str = endpoint["endpoint"].strip()
    if transport == "grpc":
        return raw
    try:
        url = urls.parse(raw)
    except urls.UrlError as exc:
        message = f"OpenTelemetry endpoints[{index}] cannot derive {signal} endpoint from {debug_str(raw)}: {exc}"
        raise SignalError(message) from None
    if url.scheme not in ("http", "https"):
        raise SignalError(
            f"OpenTelemetry endpoints[{index}] cannot derive {signal} endpoint from non-HTTP endpoint {debug_str(raw)}"
        )
    target = SIGNAL_PATHS[signal]
    if url.path == "/":
        return url.with_path(target).serialize()
    if url.path.endswith(SIGNAL_PATHS["traces"]):
        return url.with_path(url.path[: -len(SIGNAL_PATHS["traces"])] + target).serialize()
    raise SignalError(
        f"OpenTelemetry endpoints[{index}] path {debug_str(url.path)} cannot derive {target}; configure "
        f"opentelemetry.{signal}.endpoints explicitly"
    )


def resolve_signal(
    signal: str, section: dict[str, Any], traces: list[dict[str, Any]]
) -> tuple[list[tuple[int, dict[str, Any], bool]], list[tuple[int, str]]]:
    """The endpoints a log/metric signal exports to, and warnings for trace endpoints it had to skip.

    Returns ``([(index, endpoint config, derived)], [(trace index, warning)])``; each endpoint config
    has the signal endpoint's keys with ``endpoint`` set to the (explicit or derived) endpoint.
    Raises ``SignalError`` when the signal cannot be resolved at all.
    """
    explicit = section["endpoints"]
    resolved: list[tuple[int, dict[str, Any], bool]] = []
    warnings: list[tuple[int, str]] = []
    if explicit is not None:
        if not explicit:
            raise SignalError(f"enabled OpenTelemetry {signal} section requires at least one explicit endpoint")
        others = [path for name, path in SIGNAL_PATHS.items() if name != signal]
        for index, endpoint in enumerate(explicit):
            raw, transport = endpoint["endpoint"], endpoint["transport"]
            if not raw.strip():
                raise SignalError(f"OpenTelemetry {signal}.endpoints[{index}].endpoint must be nonblank")
            if transport not in TRANSPORTS:
                raise SignalError(
                    f"OpenTelemetry {signal}.endpoints[{index}].transport must be 'http_binary' or 'grpc', got "
                    f"{debug_str(transport)}"
                )
            if transport == "http_binary":
                try:
                    path = urls.parse(raw).path.rstrip("/")
                except urls.UrlError:
                    path = ""
                for other in others:
                    if path.endswith(other):
                        raise SignalError(
                            f"OpenTelemetry {signal}.endpoints[{index}] ends in {other}; configure a {signal} "
                            "endpoint or a bare authority"
                        )
            resolved.append((index, endpoint, False))
    else:
        if not traces:
            raise SignalError(f"enabled OpenTelemetry {signal} section has no explicit or derivable trace endpoints")
        for index, trace in enumerate(traces):
            try:
                derived = _derive(signal, index, trace)
            except SignalError as exc:
                warnings.append((index, str(exc)))
                continue
            copied = {key: trace[key] for key in SIGNAL_COPY_KEYS}
            resolved.append((index, {**copied, "endpoint": derived, "transport": trace["transport"]}, True))
    seen: dict[tuple[str, str], int] = {}
    for index, endpoint, _ in resolved:
        key = (endpoint["transport"], _destination(endpoint["endpoint"], endpoint["transport"], SIGNAL_PATHS[signal]))
        if key in seen:
            raise SignalError(
                f"OpenTelemetry {signal}.endpoints[{seen[key]}] and {signal}.endpoints[{index}] use the same "
                f"{key[0]} destination {debug_str(key[1])}"
            )
        seen[key] = index
    return resolved, warnings


SIGNAL_COPY_KEYS = (
    "headers",
    "header_env",
    "resource_attributes",
    "service_name",
    "service_namespace",
    "service_version",
    "instrumentation_scope",
    "timeout_millis",
)


def check_signal_settings(report: Reporter, signal: str, section: dict[str, Any]) -> None:
    """Value checks of a log or metric section's own settings (not its endpoints)."""
    component = f"opentelemetry.{signal}"
    if signal == "logs":
        if section["minimum_severity"].lower() not in SEVERITIES:
            message = "OpenTelemetry logs.minimum_severity must be trace, debug, info, warn, warning, or error"
            report.unsupported(component, "minimum_severity", message)
        queue, batch = section["max_queue_size"], section["max_export_batch_size"]
        suffix = "must be greater than 0, and the batch size must not exceed the queue size"
        if queue == 0:
            report.unsupported(component, "max_queue_size", f"OpenTelemetry logs.max_queue_size {suffix}")
        if batch == 0 or batch > queue:
            report.unsupported(component, "max_export_batch_size", f"OpenTelemetry logs.max_export_batch_size {suffix}")
        if section["scheduled_delay_millis"] == 0:
            report.unsupported(
                component, "scheduled_delay_millis", f"OpenTelemetry logs.scheduled_delay_millis {suffix}"
            )
        return
    if section["temporality"].lower() not in TEMPORALITIES:
        report.unsupported(
            component, "temporality", "OpenTelemetry metrics.temporality must be cumulative, delta, or low_memory"
        )
    for key in ("export_interval_millis", "max_instruments"):
        if section[key] == 0:
            report.unsupported(component, key, f"OpenTelemetry metrics.{key} must be greater than 0")
    if not 0 < section["cardinality_limit"] < _USIZE_MAX:
        message = "OpenTelemetry metrics.cardinality_limit must be greater than 0 and less than usize::MAX"
        report.unsupported(component, "cardinality_limit", message)


def _check_signal_endpoints(report: Reporter, signal: str, endpoints: list[dict[str, Any]]) -> None:
    component = f"opentelemetry.{signal}"
    for index, endpoint in enumerate(endpoints):
        if endpoint["type"] is not ABSENT:
            message = f"OpenTelemetry {signal} endpoints do not use trace projection types"
            report.unsupported(component, f"endpoints[{index}].type", message)
    for index, endpoint in enumerate(endpoints):
        label = f"endpoints[{index}]"
        if not endpoint["endpoint"].strip():
            message = f"OpenTelemetry {signal}.{label}.endpoint must be a nonblank string"
            report.unsupported(component, f"{label}.endpoint", message)
        if endpoint["transport"] not in TRANSPORTS:
            message = f"OpenTelemetry {signal}.{label}.transport must be 'http_binary' or 'grpc'"
            report.unsupported(component, f"{label}.transport", message)
        for key in ("headers", "header_env"):
            for name in _duplicate(list(endpoint[key])):
                message = f"OpenTelemetry {signal}.{label}.{key}.{name} contains a duplicate header ignoring ASCII case"
                report.unsupported(component, f"{label}.{key}.{name}", message)

        def conflict(name: str, label: str = label) -> None:
            message = f"OpenTelemetry {signal}.{label}.header_env.{name} cannot also appear in headers"
            report.unsupported(component, f"{label}.header_env.{name}", message)

        _header_entries(report, label, endpoint, conflict)


def _check_signal(report: Reporter, signal: str, section: dict[str, Any], traces: list[dict[str, Any]]) -> None:
    check_signal_settings(report, signal, section)
    explicit = section["endpoints"]
    if explicit:
        _check_signal_endpoints(report, signal, explicit)
    if not (section["enabled"] or explicit):
        return
    component = f"opentelemetry.{signal}"
    try:
        _, warnings = resolve_signal(signal, section, traces)
    except SignalError as exc:
        report.unsupported(component, "endpoints", f"OpenTelemetry {signal}.endpoints invalid config: {exc}")
        return
    for index, message in warnings:
        report.warning(INVALID_OTEL_ENDPOINT, component, f"endpoints[{index}]", f"invalid config: {message}")


def check_section(report: Reporter, section: dict[str, Any], version: int) -> None:
    """Every semantic check of the ``opentelemetry`` section, in the reference's order."""
    traces: list[dict[str, Any]] = section["traces"]
    for index, endpoint in enumerate(traces):
        _check_trace_endpoint(report, index, endpoint)
    _check_collisions(report, traces)
    logs, metrics = section["logs"], section["metrics"]
    signal_enabled = any(part is not None and part["enabled"] for part in (logs, metrics))
    if section["enabled"] and not traces and not signal_enabled:
        message = "enabled OpenTelemetry section requires at least one endpoint or an enabled log/metric signal"
        report.unsupported("opentelemetry", "endpoints", message)
    for signal, part in (("logs", logs), ("metrics", metrics)):
        if part is not None:
            _check_signal(report, signal, part, traces)
    if version == 3 and (logs is not None or metrics is not None):
        message = "observability config version 3 is trace-only; use version 4 for OpenTelemetry logs or metrics"
        report.unsupported("opentelemetry", "logs" if logs is not None else "metrics", message)
