"""Validation and parsing of the observability plugin's component ``config``.

``validate(config, policy)`` returns the reference's ``ConfigDiagnostic`` dicts, in its order:

1. a type error anywhere → one ``observability.invalid_plugin_config`` error and nothing else;
2. unknown and legacy keys (top level, ``policy``, ``atof``, ``atif``, ``opentelemetry`` and its
   endpoints and signals), with the version check after the top level;
3. value checks per section (ATOF sinks, ATIF template and storage, OpenTelemetry endpoints,
   destination collisions, log/metric signals, the version-3 trace-only rule).

``parse(config)`` turns a validated config into ``settings.ObservabilitySettings`` and raises
``ObservabilityConfigError`` for anything that cannot be activated. Neither reads files or sockets;
only environment variables named by ``header_env``/``*_var`` keys and ``OTEL_BSP_*`` are looked at.
"""

from __future__ import annotations

from dataclasses import replace

from nemo_relay._core.observability import config_otel as otel
from nemo_relay._core.observability import config_otel_settings as otel_settings
from nemo_relay._core.observability import config_url as urls
from nemo_relay._core.observability import settings as s
from nemo_relay._core.observability.config_common import (
    Reporter,
    atif_env_var_checks,
    header_name_valid,
    header_value_valid,
    stream_header_checks,
)
from nemo_relay._core.observability.config_serde import SerdeError, describe, read
from nemo_relay._core.observability.config_template import FilenameRenderError, render_filename, template_error

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "FilenameRenderError",
    "ObservabilityConfigError",
    "SUPPORTED_VERSIONS",
    "parse",
    "render_filename",
    "template_error",
    "validate",
]

SUPPORTED_VERSIONS = (3, 4)
DEFAULT_POLICY = {"unknown_component": "warn", "unknown_field": "warn", "unsupported_value": "error"}

_TOP_KEYS = ("version", "atof", "atif", "opentelemetry", "openinference", "policy", "enable_full_payloads")
_ATOF_KEYS = ("enabled", "sinks")
_ATOF_LEGACY = ("output_directory", "filename", "mode", "endpoints")
_ATIF_KEYS = ("enabled", "agent_name", "agent_version", "model_name", "tool_definitions", "extra",
              "output_directory", "filename_template", "storage")  # fmt: skip
_OTEL_LEGACY = ("mark_projection", "mark_exclude_names", "attribute_mappings", "promote_metadata_prefixes",
                "transport", "endpoint", "headers", "resource_attributes", "service_name", "service_namespace",
                "service_version", "instrumentation_scope", "timeout_millis")  # fmt: skip
_OTEL_KEYS = ("enabled", "traces", "endpoints", "logs", "metrics", *_OTEL_LEGACY)
_EXPORT_KEYS = ("transport", "service_name", "service_namespace", "service_version", "instrumentation_scope",
                "timeout_millis", "headers", "header_env", "resource_attributes")  # fmt: skip
_ENDPOINT_KEYS = ("type", "endpoint", "mark_projection", "mark_exclude_names", "attribute_mappings",
                  "promote_metadata_prefixes", "promote_resource_metadata_prefixes", *_EXPORT_KEYS,
                  "max_queue_size", "max_export_batch_size", "scheduled_delay_millis",
                  "completed_span_context_ttl_millis")  # fmt: skip
_ENDPOINT_LEGACY = ("semantic_selector", "capture_content")
_SIGNAL_KEYS = {
    "logs": ("enabled", "endpoints", "minimum_severity", "max_queue_size", "max_export_batch_size",
             "scheduled_delay_millis"),
    "metrics": ("enabled", "endpoints", "export_interval_millis", "temporality", "max_instruments",
                "cardinality_limit"),
}  # fmt: skip
_SIGNAL_ENDPOINT_KEYS = ("endpoint", *_EXPORT_KEYS)


class ObservabilityConfigError(ValueError):
    """The observability config cannot be activated; ``str()`` says what and where."""


# --- validation ----------------------------------------------------------------------------------


def validate(config: object, policy: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The ``ConfigDiagnostic`` dicts for one observability component ``config``.

    ``policy`` is the effective unsupported-config policy (the plugin host has already merged the
    global policy into the component's own); when None the component's own ``policy`` is used.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        return [_type_error(f"invalid type: {describe(config)}, expected a map")]
    try:
        document = read(config)
    except SerdeError as exc:
        return [_type_error(str(exc))]
    report = Reporter(dict(DEFAULT_POLICY, **(document["policy"] if policy is None else policy)))
    _check_keys(report, config, document["version"])
    if document["atof"] is not None:
        _check_atof(report, document["atof"])
    if document["atif"] is not None:
        _check_atif(report, document["atif"])
    if document["opentelemetry"] is not None:
        otel.check_section(report, document["opentelemetry"], document["version"])
    return report.diagnostics


def _type_error(message: str) -> dict[str, Any]:
    return {
        "code": "observability.invalid_plugin_config",
        "component": "observability",
        "level": "error",
        "message": f"invalid config: invalid observability plugin config: {message}",
    }


def _unknown_keys(report: Reporter, section: object, known: tuple[str, ...], component: str) -> None:
    if isinstance(section, dict):
        for key in sorted(section):
            if key not in known:
                report.unknown(component, key)


def _check_keys(report: Reporter, config: dict[str, Any], version: int) -> None:
    _unknown_keys(report, config, _TOP_KEYS, "observability")
    if "openinference" in config:
        report.error(
            "observability.legacy_openinference_section",
            "observability",
            "openinference",
            "the standalone OpenInference section was removed in observability config version 3; configure an "
            'opentelemetry endpoint with type = "openinference"',
        )
    if version not in SUPPORTED_VERSIONS:
        report.unsupported(
            "observability",
            "version",
            f"observability config version {version} is unsupported; use version 4 (or version 3 for trace-only "
            "compatibility)",
            code="observability.unsupported_config_version",
        )
    _unknown_keys(report, config.get("policy"), tuple(DEFAULT_POLICY), "policy")
    atof = config.get("atof")
    _unknown_keys(report, atof, _ATOF_KEYS, "atof")
    if isinstance(atof, dict):
        for key in _ATOF_LEGACY:
            if key in atof:
                message = (
                    f"ATOF {key} was removed in observability config version 2; configure typed ATOF sinks instead"
                )
                report.error("observability.legacy_atof_field", "atof", key, message)
    _unknown_keys(report, config.get("atif"), _ATIF_KEYS, "atif")
    section = config.get("opentelemetry")
    if not isinstance(section, dict):
        return
    _unknown_keys(report, section, _OTEL_KEYS, "opentelemetry")
    traces = section.get("traces", section.get("endpoints"))
    for index, endpoint in enumerate(traces if isinstance(traces, list) else []):
        for key in sorted(endpoint) if isinstance(endpoint, dict) else ():
            message = f'unknown OpenTelemetry endpoint field "{key}"'
            if key in _ENDPOINT_LEGACY:
                report.error(
                    "observability.legacy_opentelemetry_field", "opentelemetry", f"endpoints[{index}].{key}", message
                )
            elif key not in _ENDPOINT_KEYS:
                report.unknown("opentelemetry", f"endpoints[{index}].{key}", message)
    for signal, known in _SIGNAL_KEYS.items():
        part = section.get(signal)
        _unknown_keys(report, part, known, f"opentelemetry.{signal}")
        endpoints = part.get("endpoints") if isinstance(part, dict) else None
        for endpoint in endpoints if isinstance(endpoints, list) else []:
            _unknown_keys(report, endpoint, _SIGNAL_ENDPOINT_KEYS, f"opentelemetry.{signal}")
    for key in _OTEL_LEGACY:
        if key in section:
            message = f"OpenTelemetry {key} moved into each typed endpoint in observability config version 3"
            report.error("observability.legacy_opentelemetry_field", "opentelemetry", key, message)


def _stream_url_valid(url: str, transport: str) -> bool:
    try:
        parsed = urls.parse(url)
    except urls.UrlError:
        return False
    schemes = ("ws", "wss") if transport == "websocket" else ("http", "https")
    return parsed.scheme in schemes and bool(parsed.host)


def _check_atof(report: Reporter, atof: dict[str, Any]) -> None:
    sinks = atof["sinks"]
    if atof["enabled"] and not sinks:
        report.unsupported("atof", "sinks", "ATOF requires at least one configured sink when enabled")
    names: set[str] = set()
    for index, sink in enumerate(sinks):
        prefix = f"sinks[{index}]"
        if sink["type"] == "file":
            if sink["mode"] not in ("append", "overwrite"):
                report.unsupported("atof", f"{prefix}.mode", f"ATOF {prefix}.mode must be 'append' or 'overwrite'")
            continue
        name = sink["name"]
        if name is not None:
            if not name.strip():
                report.unsupported("atof", f"{prefix}.name", f"ATOF {prefix}.name must be non-empty")
            elif name != name.strip():
                message = f"ATOF {prefix}.name must not have leading or trailing whitespace"
                report.unsupported("atof", f"{prefix}.name", message)
            elif name in names:
                report.unsupported("atof", f"{prefix}.name", f'ATOF stream sink name "{name}" must be unique')
            names.add(name)
        url, transport = sink["url"], sink["transport"]
        if not url.strip():
            report.unsupported("atof", f"{prefix}.url", f"ATOF {prefix}.url must be non-empty")
        elif transport in ("http_post", "websocket", "ndjson") and not _stream_url_valid(url, transport):
            message = f'ATOF {prefix}.url must be a valid URL for transport "{transport}"'
            report.unsupported("atof", f"{prefix}.url", message)
        if transport not in ("http_post", "websocket", "ndjson"):
            message = f"ATOF {prefix}.transport must be 'http_post', 'websocket', or 'ndjson'"
            report.unsupported("atof", f"{prefix}.transport", message)
        if sink["timeout_millis"] == 0:
            report.unsupported(
                "atof", f"{prefix}.timeout_millis", f"ATOF {prefix}.timeout_millis must be greater than 0"
            )
        if sink["field_name_policy"] not in ("preserve", "replace_dots"):
            message = f"ATOF {prefix}.field_name_policy must be 'preserve' or 'replace_dots'"
            report.unsupported("atof", f"{prefix}.field_name_policy", message)
        stream_header_checks(report, "atof", prefix, sink["headers"], sink["header_env"])


def _check_atif(report: Reporter, atif: dict[str, Any]) -> None:
    problem = template_error(atif["filename_template"])
    if problem is not None:
        report.unsupported("atif", "filename_template", problem)
    for index, storage in enumerate(atif["storage"]):
        prefix = f"storage[{index}]"
        if storage["type"] == "s3":
            if not storage["bucket"].strip():
                report.unsupported("atif", f"{prefix}.bucket", f"ATIF {prefix}.bucket must be non-empty")
            for key in ("secret_access_key_var", "session_token_var"):
                if storage[key] is not None:
                    atif_env_var_checks(report, f"{prefix}.{key}", storage[key])
            continue
        endpoint = storage["endpoint"]
        try:
            valid = endpoint == endpoint.strip() and urls.parse(endpoint).scheme in ("http", "https")
        except urls.UrlError:
            valid = False
        if not valid:
            message = f"ATIF {prefix}.endpoint must be a valid http:// or https:// URL"
            report.unsupported("atif", f"{prefix}.endpoint", message)
        if storage["timeout_millis"] == 0:
            report.unsupported("atif", f"{prefix}.timeout_millis", f"ATIF {prefix}.timeout_millis must be positive")
        for name, value in storage["headers"].items():
            field = f"{prefix}.headers.{name}"
            if not header_name_valid(name):
                report.unsupported("atif", field, f"ATIF {field} header name '{name}' is invalid")
            if not header_value_valid(value):
                report.unsupported("atif", field, f"ATIF {field} value is invalid: failed to parse header value")
        for name, variable in storage["header_env"].items():
            field = f"{prefix}.header_env.{name}"
            if not header_name_valid(name):
                report.unsupported("atif", field, f"ATIF {field} header name '{name}' is invalid")
            atif_env_var_checks(report, field, variable)


# --- parsing -------------------------------------------------------------------------------------


def parse(config: object) -> s.ObservabilitySettings:
    """Normalised settings for a validated component ``config`` (the exporters are built from them).

    Raises:
        ObservabilityConfigError: the config has a type error, an unsupported version, a value that
            cannot be activated, or an enabled OpenTelemetry section with no usable endpoint.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ObservabilityConfigError(f"observability config must be an object, got {type(config).__name__}")
    try:
        document = read(config)
    except SerdeError as exc:
        raise ObservabilityConfigError(f"invalid observability plugin config: {exc}") from None
    version = document["version"]
    if version not in SUPPORTED_VERSIONS:
        raise ObservabilityConfigError(f"observability config version {version} is unsupported")
    atof, atif, section = document["atof"], document["atif"], document["opentelemetry"]
    strict = Reporter(DEFAULT_POLICY)  # error-level value problems make the config unusable
    if atof is not None:
        _check_atof(strict, atof)
    if atif is not None:
        _check_atif(strict, atif)
    if strict.has_errors:
        raise ObservabilityConfigError(next(d["message"] for d in strict.diagnostics if d["level"] == "error"))
    settings = s.ObservabilitySettings(
        version=version,
        enable_full_payloads=document["enable_full_payloads"],
        atof_sinks=tuple(_sink(i, sink) for i, sink in enumerate(atof["sinks"])) if atof and atof["enabled"] else (),
        atif=_atif(atif) if atif and atif["enabled"] else None,
    )
    if section is None or not section["enabled"]:
        return settings
    try:
        traces, logs, metrics = otel_settings.build_settings(section, version)
    except otel.SignalError as exc:
        raise ObservabilityConfigError(str(exc)) from None
    return replace(settings, opentelemetry_enabled=True, traces=traces, logs=logs, metrics=metrics)


def _sink(index: int, sink: dict[str, Any]) -> s.AtofFileSinkSettings | s.AtofStreamSinkSettings:
    if sink["type"] == "file":
        return s.AtofFileSinkSettings(index, sink["output_directory"], sink["filename"], sink["mode"])
    return s.AtofStreamSinkSettings(
        index,
        sink["url"],
        sink["transport"],
        dict(sink["headers"]),
        dict(sink["header_env"]),
        sink["timeout_millis"],
        sink["field_name_policy"],
        sink["name"],
    )


def _atif(atif: dict[str, Any]) -> s.AtifSettings:
    storage: list[s.S3StorageSettings | s.HttpStorageSettings] = []
    for index, item in enumerate(atif["storage"]):
        fields = {key: value for key, value in item.items() if key != "type"}
        storage.append(
            s.S3StorageSettings(index, **fields) if item["type"] == "s3" else s.HttpStorageSettings(index, **fields)
        )
    return s.AtifSettings(
        agent_name=atif["agent_name"],
        agent_version=atif["agent_version"] if atif["agent_version"] is not None else s.DEFAULT_AGENT_VERSION,
        model_name=atif["model_name"],
        tool_definitions=atif["tool_definitions"],
        extra=atif["extra"],
        output_directory=atif["output_directory"],
        filename_template=atif["filename_template"],
        storage=tuple(storage),
    )
