"""OpenTelemetry logs: one OTLP log record per (sanitized) non-metric mark.

``LogExporter`` is the engine the observability plugin builds per log endpoint; the manual
``OpenTelemetryLogConfig`` / ``OpenTelemetryLogSubscriber`` pair wraps one exporter in the
reference's standalone API. Per mark: severity from ``metadata["nemo_relay.log.severity"]`` (default
info; an invalid value drops the record and is reported), records below ``minimum_severity`` are
skipped, the body is the mark's ``data``, attributes describe the mark, and the trace context is the
mark's scope's (same deterministic ids as the trace exporter; see ``signal_lineage``). Scope events
only maintain that lineage. Records go through the SDK ``LoggerProvider`` into a bounded batch
processor (``signal_batch``) and an OTLP exporter. ``opentelemetry-sdk`` is imported only when an
exporter is built.
"""

from __future__ import annotations

import time

from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.events import SEVERITY_KEY
from nemo_relay._core.observability.otel import signal_lineage as _lineage
from nemo_relay._core.observability.otel import signal_metric_marks as _marks
from nemo_relay._core.observability.otel.signal_config import (
    BUILD_ERROR,
    SignalConfigBase,
    check_instance,
    check_u64,
    require_positive,
)
from nemo_relay._core.observability.otel.signal_export import shutdown_at_exit
from nemo_relay._core.observability.otel.signal_subscriber import SignalSubscriber
from nemo_relay._core.types import LogSeverity

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from nemo_relay._core.events import MarkEvent, ScopeEvent
    from nemo_relay._core.observability.settings import LogSettings, SignalEndpointSettings

__all__ = ["LogExporter", "OpenTelemetryLogConfig", "OpenTelemetryLogSubscriber"]

COMPONENT = "opentelemetry.logs"
_SEVERITY_LABELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "warning": 3, "error": 4}
# (OTLP severity number, severity text) per LogSeverity value.
_SEVERITY_WIRE = ((1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR"))
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


def any_value(value: Any) -> Any:
    """A JSON value as an OTLP ``AnyValue``: nested nulls become ``"null"``, integers beyond i64 strings."""
    t = type(value)
    if value is None:
        return "null"
    if t is int:
        return value if _I64_MIN <= value <= _I64_MAX else str(value)
    if t is list:
        return [any_value(item) for item in value]
    if t is dict:
        return {key: any_value(item) for key, item in value.items()}
    return value


def severity_of(label: str) -> int | None:
    """The ``LogSeverity`` value of a label (``warning`` is ``warn``; case and outer spaces ignored)."""
    return _SEVERITY_LABELS.get(label.strip().lower())


class LogExporter:
    """Turns marks into OTLP log records for one endpoint; ``on_event`` runs on the dispatcher thread.

    Args:
        settings: The log signal settings (severity threshold, batch sizes, completed-scope TTL).
        diagnostics: Where drops, failed exports and invalid marks are counted.
        field: Diagnostic field naming this endpoint (e.g. ``opentelemetry.logs[0].endpoint``).
        endpoint: The destination; defaults to the only entry of ``settings.endpoints``.
        logger_provider: Emit into this SDK ``LoggerProvider`` instead of building one (beyond the
            reference). The caller owns it: its processors and resource apply, and ``shutdown`` only
            flushes it.
        component: Diagnostic component.
    """

    def __init__(
        self,
        settings: LogSettings,
        diagnostics: RuntimeDiagnostics,
        field: str,
        *,
        endpoint: SignalEndpointSettings | None = None,
        logger_provider: Any = None,
        component: str = COMPONENT,
    ) -> None:
        from nemo_relay._core.observability.otel.common import build_otlp_exporter, build_resource, require

        if endpoint is None:
            if len(settings.endpoints) != 1:
                raise ValueError(f"LogExporter needs exactly one endpoint, got {len(settings.endpoints)}")
            endpoint = settings.endpoints[0]
        self._endpoint = endpoint
        self._diagnostics = diagnostics
        self._field = field
        self._component = component
        self._minimum = severity_of(settings.minimum_severity)
        if self._minimum is None:
            raise ValueError(f"unknown minimum_severity {settings.minimum_severity!r}")
        self._lineage = _lineage.ScopeLineage(settings.completed_span_context_ttl_millis, _lineage.MAX_ACTIVE)
        self._api = require("opentelemetry._logs")
        self._trace = require("opentelemetry.trace")
        self._closed = False
        self._dropped = 0
        self._failed_batches = 0
        self._processor: Any = None
        if logger_provider is not None:
            self._provider = logger_provider
            self._owned = False
        else:
            sdk_logs = require("opentelemetry.sdk._logs")
            from nemo_relay._core.observability.otel.common import resolve_headers
            from nemo_relay._core.observability.otel.signal_batch import BoundedBatchLogProcessor

            headers = resolve_headers(endpoint.headers, endpoint.header_env)
            exporter = build_otlp_exporter("logs", endpoint.transport, endpoint.url, headers, endpoint.timeout_millis)
            resource = build_resource(
                endpoint.service_name,
                endpoint.service_namespace,
                endpoint.service_version,
                endpoint.resource_attributes,
            )
            self._provider = sdk_logs.LoggerProvider(resource=resource, shutdown_on_exit=False)
            self._processor = BoundedBatchLogProcessor(
                exporter,
                max_queue_size=settings.max_queue_size,
                max_export_batch_size=settings.max_export_batch_size,
                scheduled_delay_millis=settings.scheduled_delay_millis,
                on_dropped=self._record_dropped,
                on_failed=self._record_failed,
            )
            self._provider.add_log_record_processor(self._processor)
            self._owned = True
        self._logger = self._provider.get_logger(endpoint.instrumentation_scope)
        shutdown_at_exit(self)
        self._uses_context = _log_record_takes_context(self._api.LogRecord)
        self._no_span = self._trace.set_span_in_context(self._trace.INVALID_SPAN)

    # -- events ---------------------------------------------------------------------------------

    def on_event(self, event: ScopeEvent | MarkEvent) -> None:
        """Track scope lineage, or emit one log record for a mark."""
        if self._closed:
            return
        if event.kind == "scope":
            if not self._lineage.observe(event):  # type: ignore[arg-type]
                self._diagnostics.record(
                    "otel.log_active_scope_high_water",
                    self._component,
                    f"OpenTelemetry log scope tracking reached {self._lineage.max_active} open scopes for endpoint "
                    f"{self._endpoint.endpoint}; the oldest open scope lost its trace context",
                    field=self._field,
                )
            return
        mark: MarkEvent = event  # type: ignore[assignment]
        if _marks.is_reserved(mark):
            kind, reason = _marks.parse(mark)
            if kind == _marks.INVALID:
                self._record("otel.metric_mark_invalid", _marks.invalid_message(mark.name, str(reason)))
            return
        metadata = mark.metadata
        severity = 2
        if type(metadata) is dict and SEVERITY_KEY in metadata:
            label = metadata.pop(SEVERITY_KEY)
            if type(label) is not str:
                self._invalid_severity(mark.name, f"{SEVERITY_KEY} must be a string after sanitization")
                return
            parsed = severity_of(label)
            if parsed is None:
                self._invalid_severity(
                    mark.name,
                    f'invalid log severity "{label}"; expected trace, debug, info, warn, warning, or error',
                )
                return
            severity = parsed
        if severity < self._minimum:  # type: ignore[operator]
            return
        self._emit(mark, severity, metadata)

    def _emit(self, mark: MarkEvent, severity: int, metadata: Any) -> None:
        attributes: dict[str, Any] = {"nemo_relay.atof.version": mark.atof_version, "nemo_relay.mark.name": mark.name}
        attributes["nemo_relay.mark.uuid"] = mark.uuid
        parent = mark.parent_uuid
        if parent is not None:
            attributes["nemo_relay.mark.parent_uuid"] = parent
        if mark.category is not None:
            attributes["nemo_relay.mark.category"] = mark.category
        profile = mark.category_profile
        if profile is not None:
            attributes["nemo_relay.mark.category_profile"] = any_value(profile)
        schema = mark._schema
        if schema is not None:
            attributes["nemo_relay.mark.data_schema.name"] = schema.get("name")
            attributes["nemo_relay.mark.data_schema.version"] = schema.get("version")
        if metadata is not None and metadata != {}:
            attributes["nemo_relay.mark.metadata"] = any_value(metadata)
        data = mark.data
        number, text = _SEVERITY_WIRE[severity]
        span = self._lineage.context_of(mark)
        record: dict[str, Any] = {
            "timestamp": mark._ts,
            "observed_timestamp": time.time_ns(),
            "severity_number": self._api.SeverityNumber(number),
            "severity_text": text,
            "body": None if data is None else any_value(data),
            "attributes": attributes,
        }
        record.update(self._trace_fields(span))
        self._logger.emit(self._api.LogRecord(**record))

    def _trace_fields(self, span: tuple[int, int] | None) -> dict[str, Any]:
        trace = self._trace
        if span is None:
            return {"context": self._no_span} if self._uses_context else {}
        context = trace.SpanContext(span[0], span[1], is_remote=False, trace_flags=trace.TraceFlags(1))
        if self._uses_context:
            return {"context": trace.set_span_in_context(trace.NonRecordingSpan(context))}
        return {"trace_id": span[0], "span_id": span[1], "trace_flags": trace.TraceFlags(1)}

    # -- diagnostics ----------------------------------------------------------------------------

    def _record(self, code: str, message: str, count: int = 1) -> None:
        self._diagnostics.record(code, self._component, message, field=self._field, count=count)

    def _invalid_severity(self, name: str, reason: str) -> None:
        self._record("otel.log_mark_invalid_severity", f'OpenTelemetry log mark "{name}" was dropped: {reason}')

    def _record_dropped(self, count: int, why: str) -> None:
        self._dropped += count
        cause = "the batch queue was full" if why == "queue_full" else "shutdown timed out"
        self._record(
            "otel.logs_dropped",
            f"OpenTelemetry dropped logs before export to endpoint {self._endpoint.endpoint} because {cause}",
            count,
        )

    def _record_failed(self, count: int, reason: str) -> None:
        self._failed_batches += 1
        self._record(
            "otel.logs_export_failed",
            f"OpenTelemetry log export to endpoint {self._endpoint.endpoint} failed: {reason}",
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def flush_outcome(self, timeout: float | None) -> str:
        """``flushed``, ``failed``, ``timed_out`` or ``shut_down`` (see ``signal_batch``)."""
        if self._closed:
            return "shut_down"
        if self._processor is None:
            millis = 30_000 if timeout is None else int(timeout * 1000)
            return "flushed" if self._provider.force_flush(millis) else "failed"
        outcome: str = self._processor.flush(timeout)
        return outcome

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export every record emitted so far; True if that succeeded within ``timeout`` seconds."""
        return self.flush_outcome(timeout) == "flushed"

    def shutdown(self, timeout: float | None = None) -> Teardown:
        """Flush and stop within ``timeout`` seconds; records that could not be delivered make it an error."""
        if self._closed:
            return Teardown.removed()
        self._closed = True
        if not self._owned:  # the caller's provider: flush it, shutting it down is theirs
            millis = 30_000 if timeout is None else int(timeout * 1000)
            self._provider.force_flush(millis)
            return Teardown.removed()
        self._processor.close(timeout)
        self._provider.shutdown()  # the processor is already closed; this only marks the provider
        if self._dropped or self._failed_batches:
            return Teardown.removed_with_error(
                f"OpenTelemetry logs for endpoint {self._endpoint.endpoint} were not all delivered: "
                f"{self._dropped} dropped, {self._failed_batches} failed exports"
            )
        return Teardown.removed()

    @property
    def closed(self) -> bool:
        """Whether ``shutdown`` ran."""
        return self._closed


def _log_record_takes_context(cls: Any) -> bool:
    # SDK 1.35 moved trace correlation from trace_id/span_id arguments to ``context``.
    import inspect

    try:
        return "context" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return True


# --- the standalone API --------------------------------------------------------------------------


class OpenTelemetryLogConfig(SignalConfigBase):
    """Settings for a standalone ``OpenTelemetryLogSubscriber``; values are checked when a subscriber is built."""

    __slots__ = (
        "_minimum_severity",
        "_max_queue_size",
        "_max_export_batch_size",
        "_scheduled_delay_millis",
        "_completed_span_context_ttl_millis",
    )

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self._minimum_severity = LogSeverity.Info
        self._max_queue_size = 2048
        self._max_export_batch_size = 512
        self._scheduled_delay_millis = 1000
        self._completed_span_context_ttl_millis = 60000

    @property
    def minimum_severity(self) -> LogSeverity:
        """Marks below this severity are not exported (default ``LogSeverity.Info``)."""
        return self._minimum_severity

    @minimum_severity.setter
    def minimum_severity(self, value: LogSeverity) -> None:
        self._minimum_severity = check_instance(value, LogSeverity)

    @property
    def max_queue_size(self) -> int:
        """Records buffered before new ones are dropped (default 2048)."""
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = check_u64(value)

    @property
    def max_export_batch_size(self) -> int:
        """Records per export request (default 512; at most ``max_queue_size``)."""
        return self._max_export_batch_size

    @max_export_batch_size.setter
    def max_export_batch_size(self, value: int) -> None:
        self._max_export_batch_size = check_u64(value)

    @property
    def scheduled_delay_millis(self) -> int:
        """Longest wait before a partial batch is exported (default 1000 ms)."""
        return self._scheduled_delay_millis

    @scheduled_delay_millis.setter
    def scheduled_delay_millis(self, value: int) -> None:
        self._scheduled_delay_millis = check_u64(value)

    @property
    def completed_span_context_ttl_millis(self) -> int:
        """How long (in event time) an ended scope still gives marks its trace context (default 60000 ms)."""
        return self._completed_span_context_ttl_millis

    @completed_span_context_ttl_millis.setter
    def completed_span_context_ttl_millis(self, value: int) -> None:
        self._completed_span_context_ttl_millis = check_u64(value)

    def _settings(self) -> LogSettings:
        from nemo_relay._core.observability.settings import LogSettings

        endpoint = self._endpoint_settings("logs")
        require_positive(self._max_queue_size, "max_queue_size")
        if not 0 < self._max_export_batch_size <= self._max_queue_size:
            raise RuntimeError(
                f"{BUILD_ERROR}max_export_batch_size must be greater than 0 and no greater than max_queue_size"
            )
        require_positive(self._scheduled_delay_millis, "scheduled_delay")
        require_positive(self._completed_span_context_ttl_millis, "completed_span_context_ttl")
        return LogSettings(
            endpoints=(endpoint,),
            minimum_severity=self._minimum_severity.label,
            max_queue_size=self._max_queue_size,
            max_export_batch_size=self._max_export_batch_size,
            scheduled_delay_millis=self._scheduled_delay_millis,
            completed_span_context_ttl_millis=self._completed_span_context_ttl_millis,
        )


class OpenTelemetryLogSubscriber(SignalSubscriber):
    """Exports marks as OTLP log records once registered as a subscriber.

    Args:
        config: Destination and batching; a snapshot is taken, later changes do not apply.
        logger_provider: Optional SDK ``LoggerProvider`` to emit into instead of building one (beyond
            the reference); it stays yours, ``shutdown`` only flushes it.

    Raises:
        ValueError: blank endpoint or unknown transport.
        RuntimeError: invalid headers or values (``failed to build the OTLP exporter: ...``), or a
            process-global ``OTEL_EXPORTER_OTLP_[LOGS_]HEADERS`` variable is set.
    """

    __slots__ = ()
    _PROVIDER = "log provider"
    _OUTCOME_TEXT: ClassVar[dict[str, str]] = {
        "failed": "the export failed (see runtime_diagnostics())",
        "timed_out": "the flush timed out",
        "shut_down": "the log provider is already shut down",
    }

    def __init__(self, config: OpenTelemetryLogConfig, *, logger_provider: Any = None) -> None:
        check_instance(config, OpenTelemetryLogConfig)
        settings = config._settings()
        self._diagnostics = RuntimeDiagnostics()
        self._exporter = LogExporter(
            settings, self._diagnostics, "endpoint", logger_provider=logger_provider, component=COMPONENT
        )

    def shutdown(self) -> None:
        """Deliver pending events, export what is pending (bounded), and stop; later marks are ignored."""
        if self._exporter.closed:
            return
        self._deliver_pending()
        self._exporter.shutdown(self._manual_deadline())

    def __repr__(self) -> str:
        return "<OpenTelemetryLogSubscriber>"
