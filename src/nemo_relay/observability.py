"""Typed configuration for the built-in ``observability`` plugin.

Build an ``ObservabilityConfig`` (ATOF event files/streams, ATIF trajectories, OpenTelemetry traces,
logs and metrics), wrap it in ``ComponentSpec`` and hand it to ``nemo_relay.plugin``::

    from nemo_relay import plugin
    from nemo_relay.observability import AtofConfig, AtofFileSinkConfig, ComponentSpec, ObservabilityConfig

    config = ObservabilityConfig(atof=AtofConfig(enabled=True, sinks=[AtofFileSinkConfig(filename="events.jsonl")]))
    report = await plugin.initialize(plugin.PluginConfig(components=[ComponentSpec(config)]))

Every class is a plain dataclass: nothing is validated until the plugin system validates the whole
document (``plugin.validate``), so a config can be built up step by step. ``to_dict()`` gives the
JSON the plugin system receives: optional values left as ``None`` are omitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass

from nemo_relay._core.types import Json, JsonObject

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, Literal, TypeAlias

    UnsupportedBehavior: TypeAlias = Literal["ignore", "warn", "error"]

__all__ = [
    "OBSERVABILITY_PLUGIN_KIND",
    "AtifConfig",
    "AtofConfig",
    "AtofEndpointConfig",
    "AtofFileSinkConfig",
    "AtofStreamSinkConfig",
    "ComponentSpec",
    "ConfigPolicy",
    "HttpStorageConfig",
    "Json",
    "JsonObject",
    "ObservabilityConfig",
    "OpenTelemetryEndpointConfig",
    "OpenTelemetryLogSectionConfig",
    "OpenTelemetryMetricSectionConfig",
    "OpenTelemetrySectionConfig",
    "OpenTelemetrySignalEndpointConfig",
    "S3StorageConfig",
    "UnsupportedBehavior",
]

OBSERVABILITY_PLUGIN_KIND = "observability"
"""The plugin kind of the observability component."""


def __getattr__(name: str) -> object:
    # Built on first use so that importing this module does not import `typing`.
    if name == "UnsupportedBehavior":
        from typing import Literal

        alias = Literal["ignore", "warn", "error"]
        globals()[name] = alias
        return alias
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _normalize(value: object) -> Any:
    """Plain JSON-like data for ``value``.

    Objects with ``to_dict()`` serialise themselves; other dataclasses become dicts of their fields;
    dicts (and dataclass fields) lose ``None`` values; lists are walked. Anything else, tuples
    included, is returned unchanged.
    """
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _normalize(v) for f in fields(value) if (v := getattr(value, f.name)) is not None}
    if isinstance(value, dict):
        return {key: _normalize(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_normalize(item) for item in value]
    return value


def _normalize_object(value: object) -> Any:
    """``_normalize`` for a value that is expected to serialise to a JSON object."""
    return _normalize(value)


def _put(out: dict[str, Any], key: str, value: object) -> None:
    # Optional fields: present only when set.
    if value is not None:
        out[key] = _normalize(value)


@dataclass(slots=True)
class ConfigPolicy:
    """How the observability component treats configuration it does not support.

    Each field is ``"ignore"`` (say nothing), ``"warn"`` (a warning diagnostic) or ``"error"`` (an
    error diagnostic, which blocks ``plugin.initialize``). A global ``plugin.ConfigPolicy`` value other
    than its default overrides the one given here.

    Attributes:
        unknown_component: Unknown plugin kinds (used by the plugin document, kept for symmetry).
        unknown_field: Keys the observability config does not recognise.
        unsupported_value: Recognised keys whose value cannot be honoured.
    """

    unknown_component: UnsupportedBehavior = "warn"
    unknown_field: UnsupportedBehavior = "warn"
    unsupported_value: UnsupportedBehavior = "error"

    def to_dict(self) -> JsonObject:
        """All three fields, always."""
        return {
            "unknown_component": self.unknown_component,
            "unknown_field": self.unknown_field,
            "unsupported_value": self.unsupported_value,
        }


@dataclass(slots=True)
class AtofStreamSinkConfig:
    """An ATOF sink that streams every event to a remote collector.

    Attributes:
        url: Destination; ``http(s)://`` for ``http_post``/``ndjson``, ``ws(s)://`` for ``websocket``.
        transport: ``"http_post"`` (one POST per event), ``"websocket"`` (one text message per event)
            or ``"ndjson"`` (one long-lived streaming upload).
        headers: Static request headers.
        header_env: Header name to environment-variable name; read once at activation, so secrets
            never appear in the config or the report. The variable must be set when validating.
        timeout_millis: Per-request timeout, and how long shutdown waits for the sink to drain.
        field_name_policy: ``"preserve"`` or ``"replace_dots"`` (``service.name`` becomes
            ``service_name`` in every object key, recursively).
        name: Optional label, unique among stream sinks, used in diagnostics.
    """

    url: str
    transport: Literal["http_post", "websocket", "ndjson"] = "http_post"
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)
    timeout_millis: int = 3000
    field_name_policy: Literal["preserve", "replace_dots"] = "preserve"
    name: str | None = None

    def to_dict(self) -> JsonObject:
        """``{"type": "stream", ...}``; ``name`` only when set."""
        out: dict[str, Any] = {"type": "stream"}
        _put(out, "name", self.name)
        out.update(
            url=self.url,
            transport=self.transport,
            headers=_normalize(self.headers),
            header_env=_normalize(self.header_env),
            timeout_millis=self.timeout_millis,
            field_name_policy=self.field_name_policy,
        )
        return out


AtofEndpointConfig = AtofStreamSinkConfig
"""Former name of ``AtofStreamSinkConfig``, kept for existing callers."""


@dataclass(slots=True)
class AtofFileSinkConfig:
    """An ATOF sink writing one JSON line per event to a local file.

    Attributes:
        output_directory: Directory for the file (created if missing); the working directory at
            activation when None.
        filename: File name; ``nemo-relay-events-<UTC timestamp>.jsonl`` when None.
        mode: ``"append"`` to an existing file or ``"overwrite"`` it at activation.
    """

    output_directory: str | None = None
    filename: str | None = None
    mode: Literal["append", "overwrite"] = "append"

    def to_dict(self) -> JsonObject:
        """``{"type": "file", ...}`` without unset paths."""
        out: dict[str, Any] = {"type": "file"}
        _put(out, "output_directory", self.output_directory)
        _put(out, "filename", self.filename)
        out["mode"] = self.mode
        return out


@dataclass(slots=True)
class AtofConfig:
    """The ATOF section: raw lifecycle events, delivered to every sink.

    Attributes:
        enabled: Whether events are exported; an enabled section needs at least one sink.
        sinks: ``AtofFileSinkConfig`` / ``AtofStreamSinkConfig`` objects (or equivalent dicts).
    """

    enabled: bool = False
    sinks: list[AtofFileSinkConfig | AtofStreamSinkConfig] | None = None

    def to_dict(self) -> JsonObject:
        """``enabled`` plus ``sinks`` when given."""
        out: dict[str, Any] = {"enabled": self.enabled}
        _put(out, "sinks", self.sinks)
        return out


@dataclass(slots=True)
class S3StorageConfig:
    """ATIF remote storage in an S3 bucket (object key = ``key_prefix`` + rendered file name).

    Unset connection fields fall back to ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` and ``AWS_ALLOW_HTTP``.

    Attributes:
        bucket: Bucket name (required, non-blank).
        key_prefix: Prefix for object keys; a ``/`` is added when missing.
        access_key_id: Access key id.
        secret_access_key_var: Name of the environment variable holding the secret key.
        session_token_var: Name of the environment variable holding a session token.
        region: Bucket region.
        endpoint_url: S3-compatible endpoint.
        allow_http: Allow a plain-HTTP endpoint.
    """

    bucket: str = ""
    key_prefix: str | None = None
    access_key_id: str | None = None
    secret_access_key_var: str | None = None
    session_token_var: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    allow_http: bool | None = None

    def to_dict(self) -> JsonObject:
        """``{"type": "s3", "bucket": ...}`` plus the fields that are set."""
        out: dict[str, Any] = {"type": "s3", "bucket": self.bucket}
        for name in ("key_prefix", "access_key_id", "secret_access_key_var", "session_token_var", "region",
                     "endpoint_url", "allow_http"):  # fmt: skip
            _put(out, name, getattr(self, name))
        return out


@dataclass(slots=True)
class HttpStorageConfig:
    """ATIF remote storage: one ``POST`` of the trajectory JSON per trajectory.

    Attributes:
        endpoint: ``http(s)://`` URL receiving the uploads.
        headers: Static request headers.
        header_env: Header name to environment-variable name (read at activation).
        timeout_millis: Request timeout.
    """

    endpoint: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)
    timeout_millis: int = 3000

    def to_dict(self) -> JsonObject:
        """``{"type": "http", ...}`` with every field."""
        return {
            "type": "http",
            "endpoint": self.endpoint,
            "headers": _normalize(self.headers),
            "header_env": _normalize(self.header_env),
            "timeout_millis": self.timeout_millis,
        }


@dataclass(slots=True)
class AtifConfig:
    """The ATIF section: one agent trajectory file per top-level agent (or turn) scope.

    Attributes:
        enabled: Whether trajectories are written.
        agent_name: ``agent.name`` in every trajectory.
        agent_version: ``agent.version``; the runtime's version when None.
        model_name: Default ``agent.model_name``.
        tool_definitions: ``agent.tool_definitions`` (JSON objects).
        extra: ``agent.extra`` (any JSON).
        output_directory: Directory for trajectory files and recovery copies (cwd when None).
        filename_template: Relative path per trajectory; must contain ``{session_id}`` and may use
            ``{metadata.<path>}`` or ``{metadata.<path>:-<fallback>}`` from the root scope's metadata.
        storage: Remote backends (``S3StorageConfig`` / ``HttpStorageConfig``); when given, files
            are written locally only if every backend fails.
    """

    enabled: bool = False
    agent_name: str = "NeMo Relay"
    agent_version: str | None = None
    model_name: str = "unknown"
    tool_definitions: list[JsonObject] | None = None
    extra: JsonObject | None = None
    output_directory: str | None = None
    filename_template: str = "nemo-relay-atif-{session_id}.json"
    storage: list[S3StorageConfig | HttpStorageConfig] | None = None

    def to_dict(self) -> JsonObject:
        """The section without unset optional fields."""
        out: dict[str, Any] = {"enabled": self.enabled, "agent_name": self.agent_name}
        _put(out, "agent_version", self.agent_version)
        out["model_name"] = self.model_name
        _put(out, "tool_definitions", self.tool_definitions)
        _put(out, "extra", self.extra)
        _put(out, "output_directory", self.output_directory)
        out["filename_template"] = self.filename_template
        _put(out, "storage", self.storage)
        return out


@dataclass(slots=True)
class OpenTelemetryEndpointConfig:
    """One OTLP trace destination and the projection that shapes its spans.

    The positional order of the fields is part of the API (older callers pass them positionally).

    Attributes:
        type: Projection: ``"full"`` (every Relay attribute), ``"gen_ai"`` (OpenTelemetry GenAI
            semantic conventions) or ``"openinference"``.
        endpoint: OTLP endpoint; an ``http_binary`` bare authority gains ``/v1/traces``.
        mark_projection: How marks appear: ``"inherit"``/``"event"`` (span events) or ``"tool"``
            (child spans). Ignored by ``gen_ai``.
        mark_exclude_names: Marks never projected as ``tool`` spans.
        attribute_mappings: ``{"key": ..., "alias": ...}`` copies of span attributes.
        transport: ``"http_binary"`` (OTLP/HTTP protobuf) or ``"grpc"``.
        service_name: Resource ``service.name``.
        service_namespace: Resource ``service.namespace``.
        service_version: Resource ``service.version``.
        instrumentation_scope: Tracer name.
        timeout_millis: Export request timeout.
        headers: Export headers (gRPC metadata for ``grpc``).
        header_env: Header name to environment-variable name (read at activation).
        resource_attributes: Extra resource attributes.
        max_queue_size: Batch processor queue size (``OTEL_BSP_MAX_QUEUE_SIZE``, 2048 when None).
        max_export_batch_size: Batch size (``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, 512 when None).
        scheduled_delay_millis: Batch delay (``OTEL_BSP_SCHEDULE_DELAY``, 5000 when None).
        completed_span_context_ttl_millis: How long finished spans stay available as parents.
        promote_metadata_prefixes: Metadata key prefixes promoted to span attributes.
        promote_resource_metadata_prefixes: Metadata key prefixes promoted to resource attributes.
    """

    type: Literal["full", "gen_ai", "openinference"]
    endpoint: str
    mark_projection: Literal["inherit", "event", "tool"] = "inherit"
    mark_exclude_names: list[str] = field(default_factory=lambda: ["llm.chunk"])
    attribute_mappings: list[dict[str, str]] = field(default_factory=list)
    transport: Literal["http_binary", "grpc"] = "http_binary"
    service_name: str = "unknown_service"
    service_namespace: str | None = None
    service_version: str | None = None
    instrumentation_scope: str = "opentelemetry"
    timeout_millis: int = 3000
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    max_queue_size: int | None = None
    max_export_batch_size: int | None = None
    scheduled_delay_millis: int | None = None
    completed_span_context_ttl_millis: int | None = None
    promote_metadata_prefixes: list[str] = field(default_factory=list)
    promote_resource_metadata_prefixes: list[str] = field(default_factory=list)

    def to_dict(self) -> JsonObject:
        """Every set field; unset optional ones are omitted."""
        out: dict[str, Any] = {
            "type": self.type,
            "endpoint": self.endpoint,
            "mark_projection": self.mark_projection,
            "mark_exclude_names": _normalize(self.mark_exclude_names),
            "attribute_mappings": _normalize(self.attribute_mappings),
            "promote_metadata_prefixes": _normalize(self.promote_metadata_prefixes),
            "promote_resource_metadata_prefixes": _normalize(self.promote_resource_metadata_prefixes),
            "transport": self.transport,
            "service_name": self.service_name,
        }
        _put(out, "service_namespace", self.service_namespace)
        _put(out, "service_version", self.service_version)
        out["instrumentation_scope"] = self.instrumentation_scope
        out["timeout_millis"] = self.timeout_millis
        for name in ("max_queue_size", "max_export_batch_size", "scheduled_delay_millis",
                     "completed_span_context_ttl_millis"):  # fmt: skip
            _put(out, name, getattr(self, name))
        out["headers"] = _normalize(self.headers)
        out["header_env"] = _normalize(self.header_env)
        out["resource_attributes"] = _normalize(self.resource_attributes)
        return out


@dataclass(slots=True)
class OpenTelemetrySignalEndpointConfig:
    """One OTLP destination for logs or metrics (no projection ``type``).

    Attributes:
        endpoint: OTLP endpoint; an ``http_binary`` bare authority gains ``/v1/logs`` or ``/v1/metrics``.
        transport: ``"http_binary"`` or ``"grpc"``.
        headers: Export headers.
        header_env: Header name to environment-variable name (read at activation).
        resource_attributes: Extra resource attributes.
        service_name: Resource ``service.name``.
        service_namespace: Resource ``service.namespace``.
        service_version: Resource ``service.version``.
        instrumentation_scope: Logger/meter name.
        timeout_millis: Export request timeout.
    """

    endpoint: str
    transport: Literal["http_binary", "grpc"] = "http_binary"
    headers: dict[str, str] = field(default_factory=dict)
    header_env: dict[str, str] = field(default_factory=dict)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    service_name: str = "unknown_service"
    service_namespace: str | None = None
    service_version: str | None = None
    instrumentation_scope: str = "opentelemetry"
    timeout_millis: int = 3000

    def to_dict(self) -> JsonObject:
        """Every set field; unset optional ones are omitted."""
        out: dict[str, Any] = {
            "endpoint": self.endpoint,
            "transport": self.transport,
            "headers": _normalize(self.headers),
            "header_env": _normalize(self.header_env),
            "resource_attributes": _normalize(self.resource_attributes),
            "service_name": self.service_name,
        }
        _put(out, "service_namespace", self.service_namespace)
        _put(out, "service_version", self.service_version)
        out["instrumentation_scope"] = self.instrumentation_scope
        out["timeout_millis"] = self.timeout_millis
        return out


@dataclass(slots=True)
class OpenTelemetryLogSectionConfig:
    """OpenTelemetry logs: one log record per (non-metric) mark.

    Attributes:
        enabled: Whether marks are exported as logs.
        endpoints: Explicit destinations; when None, one is derived from each trace endpoint
            (``/v1/traces`` becomes ``/v1/logs``). An explicit empty list is an error when enabled.
        minimum_severity: Lowest exported severity: ``trace``, ``debug``, ``info``, ``warn``
            (``warning``) or ``error``.
        max_queue_size: Batch processor queue size.
        max_export_batch_size: Batch size (at most ``max_queue_size``).
        scheduled_delay_millis: Batch delay.
        completed_span_context_ttl_millis: Accepted for compatibility; not serialised.
    """

    enabled: bool = False
    endpoints: list[OpenTelemetrySignalEndpointConfig] | None = None
    minimum_severity: Literal["trace", "debug", "info", "warn", "warning", "error"] = "info"
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    scheduled_delay_millis: int = 1000
    completed_span_context_ttl_millis: int = 60000

    def to_dict(self) -> JsonObject:
        """The section; ``endpoints`` only when given."""
        out: dict[str, Any] = {"enabled": self.enabled}
        _put(out, "endpoints", self.endpoints)
        out.update(
            minimum_severity=self.minimum_severity,
            max_queue_size=self.max_queue_size,
            max_export_batch_size=self.max_export_batch_size,
            scheduled_delay_millis=self.scheduled_delay_millis,
        )
        return out


@dataclass(slots=True)
class OpenTelemetryMetricSectionConfig:
    """OpenTelemetry metrics: measurements carried by metric marks.

    Attributes:
        enabled: Whether metric marks are exported.
        endpoints: Explicit destinations; when None, derived from the trace endpoints.
        export_interval_millis: Periodic reader interval.
        temporality: ``"cumulative"``, ``"delta"`` or ``"low_memory"``.
        max_instruments: Instruments per destination before marks are dropped.
        cardinality_limit: Attribute sets per instrument.
    """

    enabled: bool = False
    endpoints: list[OpenTelemetrySignalEndpointConfig] | None = None
    export_interval_millis: int = 60000
    temporality: Literal["cumulative", "delta", "low_memory"] = "cumulative"
    max_instruments: int = 256
    cardinality_limit: int = 2000

    def to_dict(self) -> JsonObject:
        """The section; ``endpoints`` only when given."""
        out: dict[str, Any] = {"enabled": self.enabled}
        _put(out, "endpoints", self.endpoints)
        out.update(
            export_interval_millis=self.export_interval_millis,
            temporality=self.temporality,
            max_instruments=self.max_instruments,
            cardinality_limit=self.cardinality_limit,
        )
        return out


@dataclass(slots=True)
class OpenTelemetrySectionConfig:
    """The OpenTelemetry section: trace endpoints plus optional log and metric signals.

    Attributes:
        enabled: Whether anything is exported; an enabled section needs a trace endpoint or an
            enabled signal.
        endpoints: Trace destinations (``OpenTelemetryEndpointConfig``); serialised even when empty.
        logs: Log signal settings.
        metrics: Metric signal settings.
    """

    enabled: bool = False
    endpoints: list[OpenTelemetryEndpointConfig] = field(default_factory=list)
    logs: OpenTelemetryLogSectionConfig | None = None
    metrics: OpenTelemetryMetricSectionConfig | None = None

    def to_dict(self) -> JsonObject:
        """``enabled``, ``endpoints`` and the signals that are set."""
        out: dict[str, Any] = {"enabled": self.enabled, "endpoints": _normalize(self.endpoints)}
        _put(out, "logs", self.logs)
        _put(out, "metrics", self.metrics)
        return out


@dataclass(slots=True)
class ObservabilityConfig:
    """The observability component's ``config``.

    Attributes:
        version: Config schema version: 4, or 3 for trace-only configurations.
        atof: Raw event export.
        atif: Agent trajectory export.
        opentelemetry: OpenTelemetry export.
        policy: What to do with unsupported configuration.
        enable_full_payloads: Keep the complete sanitized request on every LLM start event instead
            of only what changed since the previous turn.
    """

    version: int = 4
    atof: AtofConfig | None = None
    atif: AtifConfig | None = None
    opentelemetry: OpenTelemetrySectionConfig | None = None
    policy: ConfigPolicy = field(default_factory=ConfigPolicy)
    enable_full_payloads: bool = False

    def to_dict(self) -> JsonObject:
        """The config; ``policy`` and ``enable_full_payloads`` are always present."""
        out: dict[str, Any] = {"version": self.version}
        _put(out, "atof", self.atof)
        _put(out, "atif", self.atif)
        _put(out, "opentelemetry", self.opentelemetry)
        _put(out, "policy", self.policy)
        out["enable_full_payloads"] = self.enable_full_payloads
        return out


@dataclass(slots=True)
class ComponentSpec:
    """An observability component for ``plugin.PluginConfig(components=[...])``.

    Attributes:
        config: An ``ObservabilityConfig`` or an equivalent dict.
        enabled: Disabled components are validated but not activated.
    """

    config: ObservabilityConfig | JsonObject
    enabled: bool = True

    def to_dict(self) -> JsonObject:
        """``{"kind": "observability", "enabled": ..., "config": ...}``."""
        return {"kind": OBSERVABILITY_PLUGIN_KIND, "enabled": self.enabled, "config": _normalize(self.config)}
