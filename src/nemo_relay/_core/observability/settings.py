"""Normalised, fully-defaulted settings of the observability plugin, as the exporters receive them.

``config.parse`` turns a validated component ``config`` dict into one ``ObservabilitySettings``.
Every value here is already checked and defaulted, so exporters never look at raw configuration:
names mirror the configuration keys, optional values stay ``None`` only where ``None`` means
something (e.g. "use the working directory at activation"), and ``index`` is the entry's position
in its configuration list (for diagnostic fields such as ``sinks[0]`` or ``endpoints[1]``).

Header environment variables (``header_env``) are named here, not read: exporters call
``resolve_headers`` once, when they are built, so a credential is snapshotted at activation and
never stored in the settings (nor in a report).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeAlias

__all__ = [
    "AtifSettings",
    "AtifStorageSettings",
    "AtofFileSinkSettings",
    "AtofSinkSettings",
    "AtofStreamSinkSettings",
    "HttpStorageSettings",
    "LogSettings",
    "MetricSettings",
    "ObservabilitySettings",
    "S3StorageSettings",
    "SignalEndpointSettings",
    "TraceEndpointSettings",
    "default_atof_filename",
    "resolve_headers",
]

#: ``agent.version`` written into ATIF trajectories when the configuration gives none.
DEFAULT_AGENT_VERSION = "0.8.4"  # the reference release this package mirrors


def resolve_headers(
    headers: Mapping[str, str], header_env: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Static ``headers`` plus each ``header_env`` header read from its environment variable.

    Raises ``ValueError`` naming the variable (never its value) when one is unset or blank, since
    validation only checked it existed when the configuration was validated.
    """
    env = os.environ if environ is None else environ
    resolved = dict(headers)
    for header, variable in header_env.items():
        value = env.get(variable)
        if value is None or not value.strip():
            raise ValueError(f"environment variable '{variable}' for header '{header}' is not set or is blank")
        resolved[header] = value
    return resolved


def default_atof_filename() -> str:
    """The ATOF file sink's default file name, stamped with the current UTC time."""
    import time

    return time.strftime("nemo-relay-events-%Y-%m-%d-%H.%M.%S.jsonl", time.gmtime())


# --- ATOF -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AtofFileSinkSettings:
    """An ATOF sink writing one JSON line per event to a local file.

    ``output_directory``/``filename`` are ``None`` when not configured: the sink resolves them when it
    is built (working directory; ``default_atof_filename()``) via ``resolve_path``.
    """

    index: int
    output_directory: str | None = None
    filename: str | None = None
    mode: str = "append"  # "append" | "overwrite" (truncate at activation)

    def resolve_path(self) -> str:
        """The file path this sink writes: configured values, else cwd and a UTC-stamped name."""
        directory = self.output_directory if self.output_directory is not None else os.getcwd()
        name = self.filename if self.filename is not None else default_atof_filename()
        return os.path.join(directory, name)


@dataclass(frozen=True, slots=True)
class AtofStreamSinkSettings:
    """An ATOF sink streaming events to ``url`` over ``transport`` from its own background worker."""

    index: int
    url: str
    transport: str = "http_post"  # "http_post" | "websocket" | "ndjson"
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)  # header name -> environment variable name
    timeout_millis: int = 3000
    field_name_policy: str = "preserve"  # "preserve" | "replace_dots"
    name: str | None = None

    def resolve_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Static plus environment-sourced headers (see module ``resolve_headers``)."""
        return resolve_headers(self.headers, self.header_env, environ)


AtofSinkSettings: TypeAlias = "AtofFileSinkSettings | AtofStreamSinkSettings"


# --- ATIF -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3StorageSettings:
    """ATIF remote storage in an S3 bucket; unset connection fields fall back to the ``AWS_*`` variables."""

    index: int
    bucket: str
    key_prefix: str | None = None
    access_key_id: str | None = None
    secret_access_key_var: str | None = None  # environment variable *names*, read at activation
    session_token_var: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    allow_http: bool | None = None


@dataclass(frozen=True, slots=True)
class HttpStorageSettings:
    """ATIF remote storage: one ``POST`` of the trajectory JSON per trajectory to ``endpoint``."""

    index: int
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)
    timeout_millis: int = 3000

    def resolve_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Static plus environment-sourced headers (see module ``resolve_headers``)."""
        return resolve_headers(self.headers, self.header_env, environ)


AtifStorageSettings: TypeAlias = "S3StorageSettings | HttpStorageSettings"


@dataclass(frozen=True, slots=True)
class AtifSettings:
    """The ATIF trajectory exporter: agent identity, where files go, and remote storage backends."""

    agent_name: str = "NeMo Relay"
    agent_version: str = DEFAULT_AGENT_VERSION
    model_name: str = "unknown"
    tool_definitions: list[dict[str, Any]] | None = None
    extra: Any = None  # any JSON value -> ``agent.extra``; None = omitted
    output_directory: str | None = None  # None = working directory at activation
    filename_template: str = "nemo-relay-atif-{session_id}.json"
    storage: tuple[S3StorageSettings | HttpStorageSettings, ...] = ()

    def resolve_output_directory(self) -> str:
        """The configured directory, else the current working directory."""
        return self.output_directory if self.output_directory is not None else os.getcwd()


# --- OpenTelemetry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceEndpointSettings:
    """One OTLP trace destination with its projection (``type``) and batch-processor settings.

    ``endpoint`` is as configured; ``url`` is the destination actually exported to (for
    ``http_binary`` a bare authority gains ``/v1/traces``). Batch sizes are resolved: per-endpoint
    override, else ``OTEL_BSP_*`` environment variable, else the SDK default.
    """

    index: int
    type: str  # "full" | "gen_ai" | "openinference"
    endpoint: str
    url: str
    mark_projection: str = "inherit"  # "inherit" | "event" | "tool"
    mark_exclude_names: tuple[str, ...] = ("llm.chunk",)
    attribute_mappings: tuple[tuple[str, str], ...] = ()  # (key, alias) pairs
    promote_metadata_prefixes: tuple[str, ...] = ()
    promote_resource_metadata_prefixes: tuple[str, ...] = ()
    transport: str = "http_binary"  # "http_binary" | "grpc"
    service_name: str = "unknown_service"
    service_namespace: str | None = None
    service_version: str | None = None
    instrumentation_scope: str = "opentelemetry"
    timeout_millis: int = 3000
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    scheduled_delay_millis: int = 5000
    completed_span_context_ttl_millis: int | None = None

    @property
    def field(self) -> str:
        """Runtime-diagnostic field naming this endpoint, e.g. ``opentelemetry.traces[0].endpoint``."""
        return f"opentelemetry.traces[{self.index}].endpoint"

    def resolve_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Static plus environment-sourced headers (see module ``resolve_headers``)."""
        return resolve_headers(self.headers, self.header_env, environ)


@dataclass(frozen=True, slots=True)
class SignalEndpointSettings:
    """One OTLP log or metric destination, explicit or derived from trace endpoint ``index``.

    ``url`` is the completed destination (``/v1/logs`` or ``/v1/metrics`` for ``http_binary``).
    """

    index: int
    endpoint: str
    url: str
    derived: bool = False  # True when copied from trace endpoint ``index``
    transport: str = "http_binary"
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    service_name: str = "unknown_service"
    service_namespace: str | None = None
    service_version: str | None = None
    instrumentation_scope: str = "opentelemetry"
    timeout_millis: int = 3000

    def resolve_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Static plus environment-sourced headers (see module ``resolve_headers``)."""
        return resolve_headers(self.headers, self.header_env, environ)


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The OpenTelemetry log signal: resolved endpoints plus batch and severity settings."""

    endpoints: tuple[SignalEndpointSettings, ...] = ()
    minimum_severity: str = "info"  # "trace" | "debug" | "info" | "warn" | "error" ("warning" normalised)
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    scheduled_delay_millis: int = 1000
    completed_span_context_ttl_millis: int = 60000


@dataclass(frozen=True, slots=True)
class MetricSettings:
    """The OpenTelemetry metric signal: resolved endpoints plus reader and limit settings."""

    endpoints: tuple[SignalEndpointSettings, ...] = ()
    export_interval_millis: int = 60000
    temporality: str = "cumulative"  # "cumulative" | "delta" | "low_memory"
    max_instruments: int = 256
    cardinality_limit: int = 2000


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    """The whole observability component, ready to build exporters from.

    Disabled sections are empty/``None``: ``atof_sinks`` is ``()`` unless ATOF is enabled, ``atif``
    is ``None`` unless ATIF is enabled, ``logs``/``metrics`` are ``None`` unless that signal is
    enabled, and ``traces`` holds only the trace endpoints that will be activated.
    """

    version: int = 4
    enable_full_payloads: bool = False
    atof_sinks: tuple[AtofFileSinkSettings | AtofStreamSinkSettings, ...] = ()
    atif: AtifSettings | None = None
    opentelemetry_enabled: bool = False
    traces: tuple[TraceEndpointSettings, ...] = ()
    logs: LogSettings | None = None
    metrics: MetricSettings | None = None
