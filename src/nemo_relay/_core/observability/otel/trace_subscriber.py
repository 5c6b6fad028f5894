"""The standalone trace subscriber: ``OpenTelemetryConfig`` and ``OpenTelemetrySubscriber``.

The subscriber is a ``TraceExporter`` (see ``traces``) built from a config object and registered by
hand as a global subscriber; both names are re-exported by ``traces`` (and lazily by ``nemo_relay``).
The config needs no OpenTelemetry library; the subscriber imports it when built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from nemo_relay._core.diagnostics import RuntimeDiagnostics
from nemo_relay._core.observability.otel.common import (
    batch_settings,
    resolve_http_endpoint,
    validate_headers,
    validate_promotion_prefixes,
)
from nemo_relay._core.observability.otel.diagnostics import OpenTelemetryRuntimeDiagnostics
from nemo_relay._core.observability.otel.signal_subscriber import SignalSubscriber
from nemo_relay._core.observability.settings import TraceEndpointSettings

__all__ = ["OpenTelemetryConfig", "OpenTelemetrySubscriber"]

_log = logging.getLogger("nemo_relay.observability.otel")

DEFAULT_TIMEOUT = 30.0
"""Seconds ``force_flush`` / ``shutdown`` wait when no timeout is given."""
DEFAULT_COMPLETED_TTL_MILLIS = 60_000

_TYPES = ("full", "gen_ai", "openinference")
_TRANSPORTS = ("http_binary", "grpc")
_MARK_PROJECTIONS = ("inherit", "event", "tool")
_TEXT_FIELDS = frozenset(("type", "endpoint", "transport", "service_name", "instrumentation_scope", "mark_projection"))


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"'{type(value).__name__}' object cannot be converted to 'str' for {name}")
    return value


def _unsigned(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    if value < 0:
        raise OverflowError("can't convert negative int to unsigned")
    return int(value)


def _string_map(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of strings to strings")
    return {_text(k, name): _text(v, name) for k, v in value.items()}


def _string_list(value: object, name: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of strings")
    return [_text(item, name) for item in value]


def _mappings(value: object) -> list[tuple[str, str]]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError("attribute_mappings must be a list of mappings")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, Mapping):
            raise ValueError("attribute_mappings must be a list of mappings")
        for field in ("key", "alias"):
            if field not in item:
                raise ValueError(f"attribute_mappings must be a list of mappings: missing field `{field}`")
        key, alias = _text(item["key"], "key"), _text(item["alias"], "alias")
        if not key.strip():
            raise ValueError("attribute mapping key must not be blank")
        if not alias.strip():
            raise ValueError("attribute mapping alias must not be blank")
        if alias in seen:
            raise ValueError(f'attribute mapping alias "{alias}" is duplicated')
        seen.add(alias)
        pairs.append((key, alias))
    return pairs


class OpenTelemetryConfig:
    """Configuration of an ``OpenTelemetrySubscriber``: one OTLP trace destination and its projection.

    Fields are plain attributes, checked when set (types, negative numbers, attribute mappings) and
    validated as a whole when the subscriber is built.

    Args:
        otel_type: The projection: ``"full"`` (every Relay field), ``"openinference"`` (OpenInference
            conventions) or ``"gen_ai"`` (OpenTelemetry GenAI conventions).
        endpoint: The collector. For ``http_binary`` a bare ``http://host:4318`` gains ``/v1/traces``.

    Attributes:
        type: The projection (see ``otel_type``).
        endpoint: The collector URL.
        transport: ``"http_binary"`` (OTLP/HTTP protobuf, default) or ``"grpc"``.
        service_name: Resource ``service.name`` (default ``"unknown_service"``).
        service_namespace: Resource ``service.namespace``, if set.
        service_version: Resource ``service.version``, if set.
        instrumentation_scope: Tracer name (default ``"opentelemetry"``).
        timeout_millis: OTLP request timeout (default 3000).
        completed_span_context_ttl_millis: How long a completed span can still parent late children
            and marks (default 60000; at most 4096 are kept).
        mark_projection: ``"inherit"`` (default) or ``"event"``: marks become span events of their
            active parent span (else orphan ``mark:<name>`` spans); ``"tool"``: marks become
            zero-duration ``mark:<name>`` spans.
        mark_exclude_names: Marks kept as span events under ``"tool"`` (default ``["llm.chunk"]``).
        promote_metadata_prefixes: Metadata keys starting with one of these literal prefixes become
            top-level span attributes.
        promote_resource_metadata_prefixes: Accepted for compatibility; not applied yet.
    """

    def __init__(self, otel_type: str, endpoint: str) -> None:
        self.type = otel_type
        self.endpoint = endpoint
        self.transport = "http_binary"
        self.service_name = "unknown_service"
        self.service_namespace: str | None = None
        self.service_version: str | None = None
        self.instrumentation_scope = "opentelemetry"
        self._timeout_millis = 3000
        self._ttl_millis = DEFAULT_COMPLETED_TTL_MILLIS
        self.mark_projection = "inherit"
        self._exclude: list[str] = ["llm.chunk"]
        self._prefixes: list[str] = []
        self._resource_prefixes: list[str] = []
        self._headers: dict[str, str] = {}
        self._resource_attributes: dict[str, str] = {}
        self._mappings: list[tuple[str, str]] = []

    def __setattr__(self, name: str, value: object) -> None:
        optional = name in ("service_namespace", "service_version")
        if name in _TEXT_FIELDS or (optional and value is not None):
            value = _text(value, name)
        object.__setattr__(self, name, value)

    @property
    def timeout_millis(self) -> int:
        """OTLP request timeout in milliseconds."""
        return self._timeout_millis

    @timeout_millis.setter
    def timeout_millis(self, value: int) -> None:
        self._timeout_millis = _unsigned(value, "timeout_millis")

    @property
    def completed_span_context_ttl_millis(self) -> int:
        """How long (ms) a completed span can still parent late children and marks."""
        return self._ttl_millis

    @completed_span_context_ttl_millis.setter
    def completed_span_context_ttl_millis(self, value: int) -> None:
        self._ttl_millis = _unsigned(value, "completed_span_context_ttl_millis")

    @property
    def mark_exclude_names(self) -> list[str]:
        """Mark names kept as span events under the ``tool`` mark projection (a copy)."""
        return list(self._exclude)

    @mark_exclude_names.setter
    def mark_exclude_names(self, value: list[str]) -> None:
        self._exclude = _string_list(value, "mark_exclude_names")

    @property
    def promote_metadata_prefixes(self) -> list[str]:
        """Literal metadata-key prefixes promoted to span attributes (a copy)."""
        return list(self._prefixes)

    @promote_metadata_prefixes.setter
    def promote_metadata_prefixes(self, value: list[str]) -> None:
        self._prefixes = _string_list(value, "promote_metadata_prefixes")

    @property
    def promote_resource_metadata_prefixes(self) -> list[str]:
        """Accepted for compatibility with the reference; not applied yet (a copy)."""
        return list(self._resource_prefixes)

    @promote_resource_metadata_prefixes.setter
    def promote_resource_metadata_prefixes(self, value: list[str]) -> None:
        self._resource_prefixes = _string_list(value, "promote_resource_metadata_prefixes")

    @property
    def headers(self) -> dict[str, str]:
        """Extra exporter headers (gRPC metadata for ``grpc``); a copy."""
        return dict(self._headers)

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = _string_map(value, "headers")

    def set_header(self, key: str, value: str) -> None:
        """Set one exporter header."""
        self._headers[_text(key, "key")] = _text(value, "value")

    @property
    def resource_attributes(self) -> dict[str, str]:
        """Extra resource attributes; a copy."""
        return dict(self._resource_attributes)

    @resource_attributes.setter
    def resource_attributes(self, value: dict[str, str]) -> None:
        self._resource_attributes = _string_map(value, "resource_attributes")

    def set_resource_attribute(self, key: str, value: str) -> None:
        """Set one resource attribute."""
        self._resource_attributes[_text(key, "key")] = _text(value, "value")

    @property
    def attribute_mappings(self) -> list[dict[str, str]]:
        """``[{"key", "alias"}]``: copy attribute ``key`` to ``alias`` when ``alias`` is not set (full and
        OpenInference); a copy."""
        return [{"alias": alias, "key": key} for key, alias in self._mappings]

    @attribute_mappings.setter
    def attribute_mappings(self, value: list[dict[str, str]]) -> None:
        self._mappings = _mappings(value)

    def __repr__(self) -> str:
        return f'<OpenTelemetryConfig transport="{self.transport}" endpoint="{self.endpoint}">'

    def _settings(self) -> TraceEndpointSettings:
        """Validated endpoint settings (raises like the reference when the configuration is unusable)."""
        if self.transport not in _TRANSPORTS:
            raise ValueError(f"transport must be 'http_binary' or 'grpc', got \"{self.transport}\"")
        if self.type not in _TYPES:
            raise ValueError(f"type must be 'full', 'gen_ai', or 'openinference', got \"{self.type}\"")
        if self.mark_projection not in _MARK_PROJECTIONS:
            raise ValueError(f"unknown variant `{self.mark_projection}`, expected one of `inherit`, `event`, `tool`")
        if not self.endpoint.strip():
            raise ValueError("endpoint is required and must be nonblank")
        validate_promotion_prefixes(self._prefixes)
        validate_promotion_prefixes(self._resource_prefixes)
        if self._ttl_millis == 0:
            raise RuntimeError("failed to build the OTLP exporter: completed_span_context_ttl must be greater than 0")
        for name, value in self._headers.items():
            try:
                validate_headers({name: value})
            except RuntimeError as exc:
                raise RuntimeError(str(exc)) from None
        batches = batch_settings()
        url = resolve_http_endpoint(self.endpoint, "traces") if self.transport == "http_binary" else self.endpoint
        return TraceEndpointSettings(
            index=0,
            type=self.type,
            endpoint=self.endpoint,
            url=url,
            mark_projection=self.mark_projection,
            mark_exclude_names=tuple(self._exclude),
            attribute_mappings=tuple(self._mappings),
            promote_metadata_prefixes=tuple(self._prefixes),
            promote_resource_metadata_prefixes=tuple(self._resource_prefixes),
            transport=self.transport,
            service_name=self.service_name,
            service_namespace=self.service_namespace,
            service_version=self.service_version,
            instrumentation_scope=self.instrumentation_scope,
            timeout_millis=self._timeout_millis,
            headers=dict(self._headers),
            resource_attributes=dict(self._resource_attributes),
            max_queue_size=batches.max_queue_size,
            max_export_batch_size=batches.max_export_batch_size,
            scheduled_delay_millis=batches.scheduled_delay_millis,
            completed_span_context_ttl_millis=self._ttl_millis,
        )


class OpenTelemetrySubscriber(SignalSubscriber):
    """Exports Relay events as OpenTelemetry spans to one OTLP endpoint; register it to start.

    Spans are exported from a background batch thread; ``force_flush`` delivers what was emitted so far
    and ``shutdown`` stops the exporter (both wait a bounded time). Problems never reach the code
    being traced: they are counted in ``runtime_diagnostics()``.

    Args:
        config: The endpoint and projection.
        tracer_provider: Send spans to this ``TracerProvider`` instead of an exporter of our own (an
            extension: the provider's processors and exporters are used, nothing global is installed).

    Raises:
        ValueError: The configuration is invalid (transport, type, mark projection, endpoint, prefixes).
        RuntimeError: ``OTEL_EXPORTER_OTLP_HEADERS`` / ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` is set, a
            header is invalid, or the completed-span TTL is 0.
        ImportError: ``opentelemetry-sdk`` or the OTLP exporter is missing (names the extra).
    """

    def __init__(self, config: OpenTelemetryConfig, *, tracer_provider: Any = None) -> None:
        if not isinstance(config, OpenTelemetryConfig):
            raise TypeError(f"'{type(config).__name__}' object is not an instance of 'OpenTelemetryConfig'")
        from nemo_relay._core.observability.otel.traces import TraceExporter

        settings = config._settings()
        self._diagnostics = RuntimeDiagnostics()
        self._exporter = TraceExporter(settings, self._diagnostics, tracer_provider=tracer_provider)
        self._shut = False

    def force_flush(self, timeout: float | None = None) -> None:
        """Deliver every event emitted so far and export the spans (waits at most ``timeout`` seconds, 30 by default).

        Raises:
            RuntimeError: the subscriber was shut down, or an export failed during the flush.
        """
        if self._shut:
            raise RuntimeError("OpenTelemetry tracer provider error: the subscriber is already shut down")
        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + limit
        _barrier(limit)
        failures = self._exporter.export_failures()
        finished = self._exporter.force_flush(max(0.0, deadline - time.monotonic()))
        if self._exporter.export_failures() != failures:
            raise RuntimeError(
                f"OpenTelemetry tracer provider error: OpenTelemetry trace export to {self._exporter.endpoint} failed"
            )
        if not finished:
            _log.warning("OpenTelemetry force_flush to %s did not finish within %g s", self._exporter.endpoint, limit)

    def shutdown(self, timeout: float | None = None) -> None:
        """Deliver pending events, export queued spans (at most ``timeout`` seconds, 30 by default) and stop.

        Delivery problems are logged and kept in ``runtime_diagnostics()``; a second call does nothing.
        """
        if self._shut:
            return
        self._shut = True
        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + limit
        _barrier(limit)
        outcome = self._exporter.shutdown(max(0.0, deadline - time.monotonic()))
        if not outcome.ok:
            _log.warning("%s", outcome.message)

    def runtime_diagnostics(self) -> OpenTelemetryRuntimeDiagnostics:
        """A snapshot of what went wrong so far (dropped spans, failed exports, refused metadata ...)."""
        return OpenTelemetryRuntimeDiagnostics._of(self._diagnostics)

    def __repr__(self) -> str:
        return "<OpenTelemetrySubscriber>"


def _barrier(timeout: float) -> None:
    """Wait (bounded) until events emitted so far reached the subscribers; no-op on the dispatcher thread."""
    from nemo_relay._core import dispatch

    if not dispatch.on_dispatcher_thread():
        dispatch.wait_drained(timeout)
