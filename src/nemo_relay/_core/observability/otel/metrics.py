"""OpenTelemetry metrics: metric-measurement marks become SDK instrument measurements.

Only marks under the reserved schema ``nemo.relay.metric_measurements`` (version ``"1"``) are read
(``signal_metric_marks`` parses and validates them). A mark is applied atomically: an invalid
measurement, a descriptor conflict with an instrument this destination already has (names compare
case-insensitively; kind, value type and unit are fixed for the destination's lifetime), or going
past ``max_instruments`` drops every measurement of the mark and is reported. New attribute sets
beyond ``cardinality_limit`` per instrument fold into the ``otel.metric.overflow=true`` series (and
are reported). A periodic reader exports every ``export_interval_millis`` with the configured
temporality.

``MetricExporter`` is the engine the observability plugin builds per metric endpoint; the manual
``OpenTelemetryMetricConfig`` / ``OpenTelemetryMetricSubscriber`` pair wraps one in the reference's
standalone API. ``classify_metric_mark`` tells the plugin's fan-out where a mark goes.
"""

from __future__ import annotations

import threading

from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.otel import signal_metric_marks as _marks
from nemo_relay._core.observability.otel.diagnostics import OpenTelemetryRuntimeDiagnostics
from nemo_relay._core.observability.otel.signal_config import (
    BUILD_ERROR,
    SignalConfigBase,
    check_instance,
    check_u64,
    require_positive,
)
from nemo_relay._core.observability.otel.signal_export import run_bounded, shutdown_at_exit
from nemo_relay._core.observability.otel.signal_subscriber import SignalSubscriber
from nemo_relay._core.types import MetricTemporality, MetricValueType

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from nemo_relay._core.events import MarkEvent, ScopeEvent
    from nemo_relay._core.metrics import MetricMeasurement
    from nemo_relay._core.observability.settings import MetricSettings, SignalEndpointSettings

__all__ = [
    "MetricExporter",
    "OpenTelemetryMetricConfig",
    "OpenTelemetryMetricSubscriber",
    "classify_metric_mark",
    "invalid_metric_mark_message",
]

COMPONENT = "opentelemetry.metrics"
_USIZE_MAX = 2**64 - 1
_TEMPORALITY_LABELS = {
    MetricTemporality.Cumulative: "cumulative",
    MetricTemporality.Delta: "delta",
    MetricTemporality.LowMemory: "low_memory",
}


def classify_metric_mark(event: ScopeEvent | MarkEvent) -> str:
    """Where an event goes: ``"metric"`` (a valid metric mark: metric exporters only), ``"invalid"``
    (reserved schema but unusable: dropped everywhere, see ``invalid_metric_mark_message``) or
    ``"other"`` (traces and logs)."""
    if event.kind != "mark" or not _marks.is_reserved(event):
        return _marks.OTHER
    return _marks.parse(event)[0]  # type: ignore[arg-type]


def invalid_metric_mark_message(event: MarkEvent) -> str:
    """The ``otel.metric_mark_invalid`` diagnostic message for a mark ``classify_metric_mark`` calls invalid."""
    kind, reason = _marks.parse(event)
    return _marks.invalid_message(event.name, str(reason) if kind == _marks.INVALID else "not invalid")


class _Instrument:
    __slots__ = ("name", "descriptor", "record", "attribute_sets", "delta")

    def __init__(self, name: str, descriptor: tuple[Any, ...], record: Any, delta: bool) -> None:
        self.name = name
        self.descriptor = descriptor
        self.record = record
        self.attribute_sets: set[Any] = set()
        self.delta = delta


def _attribute_key(attributes: dict[str, Any]) -> Any:
    return tuple(sorted((k, tuple(v) if type(v) is list else v) for k, v in attributes.items()))


class MetricExporter:
    """Applies metric marks to one endpoint's instruments; ``on_event`` runs on the dispatcher thread.

    Args:
        settings: The metric signal settings (interval, temporality, limits).
        diagnostics: Where invalid marks, conflicts, limits and failed exports are counted.
        field: Diagnostic field naming this endpoint (e.g. ``opentelemetry.metrics[0].endpoint``).
        endpoint: The destination; defaults to the only entry of ``settings.endpoints``.
        meter_provider: Record into this SDK ``MeterProvider`` instead of building one (beyond the
            reference). The caller owns it: its readers and resource apply, ``shutdown`` only flushes it.
        component: Diagnostic component.
    """

    def __init__(
        self,
        settings: MetricSettings,
        diagnostics: RuntimeDiagnostics,
        field: str,
        *,
        endpoint: SignalEndpointSettings | None = None,
        meter_provider: Any = None,
        component: str = COMPONENT,
    ) -> None:
        from nemo_relay._core.observability.otel.common import require

        if endpoint is None:
            if len(settings.endpoints) != 1:
                raise ValueError(f"MetricExporter needs exactly one endpoint, got {len(settings.endpoints)}")
            endpoint = settings.endpoints[0]
        require("opentelemetry.sdk.metrics")
        from nemo_relay._core.observability.otel import signal_meter

        self._meter_api = signal_meter
        self._endpoint = endpoint
        self._settings = settings
        self._diagnostics = diagnostics
        self._field = field
        self._component = component
        self._instruments: dict[str, _Instrument] = {}
        self._lock = threading.Lock()  # instruments' attribute sets: dispatcher thread vs reader thread
        self._deltas = signal_meter.DELTA_KINDS[settings.temporality]
        self._closed = False
        self._reporter: Any = None
        if meter_provider is not None:
            self._provider = meter_provider
            self._owned = False
        else:
            from nemo_relay._core.observability.otel.common import build_otlp_exporter, build_resource, resolve_headers

            headers = resolve_headers(endpoint.headers, endpoint.header_env)
            inner = build_otlp_exporter("metrics", endpoint.transport, endpoint.url, headers, endpoint.timeout_millis)
            self._reporter = signal_meter.ReportingMetricExporter(
                inner, settings.temporality, self._record_failed, self._reset_delta_sets
            )
            resource = build_resource(
                endpoint.service_name,
                endpoint.service_namespace,
                endpoint.service_version,
                endpoint.resource_attributes,
            )
            self._provider = signal_meter.build_provider(
                self._reporter,
                resource,
                settings.export_interval_millis,
                endpoint.timeout_millis,
                settings.cardinality_limit,
            )
            self._owned = True
        self._meter = self._provider.get_meter(endpoint.instrumentation_scope)
        shutdown_at_exit(self)

    # -- events ---------------------------------------------------------------------------------

    def on_event(self, event: ScopeEvent | MarkEvent) -> None:
        """Apply a valid metric mark; report an invalid one; ignore everything else."""
        if self._closed or event.kind != "mark" or not _marks.is_reserved(event):
            return
        kind, result = _marks.parse(event)  # type: ignore[arg-type]
        if kind == _marks.INVALID:
            self._record("otel.metric_mark_invalid", _marks.invalid_message(event.name, str(result)))
            return
        self.apply(event.name, result)  # type: ignore[arg-type]

    def apply(self, mark_name: str, measurements: list[MetricMeasurement]) -> bool:
        """Record a validated group atomically; False (and reported) when the destination refuses it."""
        new: dict[str, MetricMeasurement] = {}
        for measurement in measurements:
            key = measurement.name.lower()
            existing = self._instruments.get(key)
            if existing is not None and existing.descriptor != _marks.descriptor(measurement):
                self._record(
                    "otel.metric_descriptor_conflict",
                    f'OpenTelemetry metric mark "{mark_name}" was dropped atomically: metric "{measurement.name}" '
                    "conflicts with its existing instrument descriptor",
                )
                return False
            if existing is None:
                new.setdefault(key, measurement)
        limit = self._settings.max_instruments
        if len(self._instruments) + len(new) > limit:
            self._record(
                "otel.metric_instrument_limit",
                f'OpenTelemetry metric mark "{mark_name}" was dropped atomically: metric mark exceeds the '
                f"endpoint limit of {limit} distinct instruments",
            )
            return False
        for key, first in new.items():
            record = self._meter_api.create_instrument(
                self._meter, first.kind, first.name, first.unit or "", first.description or "", first.boundaries
            )
            self._instruments[key] = _Instrument(
                first.name, _marks.descriptor(first), record, first.kind in self._deltas
            )
        for measurement in measurements:
            instrument = self._instruments[measurement.name.lower()]
            value = measurement.value
            value = float(value) if measurement.value_type is MetricValueType.F64 else int(value)  # type: ignore[arg-type]
            attributes = self._limit_cardinality(instrument, measurement)
            instrument.record(value, attributes)
        return True

    def _limit_cardinality(self, instrument: _Instrument, measurement: MetricMeasurement) -> dict[str, Any]:
        attributes: dict[str, Any] = measurement.attributes or {}  # type: ignore[assignment]
        if not attributes:
            return attributes  # the attribute-less series never counts against the limit
        key = _attribute_key(attributes)
        limit = self._settings.cardinality_limit
        with self._lock:
            if key in instrument.attribute_sets:
                return attributes
            if len(instrument.attribute_sets) < limit:
                instrument.attribute_sets.add(key)
                return attributes
        self._record(
            "otel.metric_cardinality_limit",
            f'OpenTelemetry metric "{measurement.name}" exceeded the endpoint cardinality limit of {limit}; '
            "additional attribute sets use the SDK overflow series",
        )
        return dict(self._meter_api.OVERFLOW_ATTRIBUTES)

    def _reset_delta_sets(self) -> None:
        # Called just before each export, i.e. after a collection: delta series start over, and so do
        # the attribute sets counted against the limit (cumulative ones live as long as the exporter).
        with self._lock:
            for instrument in self._instruments.values():
                if instrument.delta:
                    instrument.attribute_sets.clear()

    # -- diagnostics ----------------------------------------------------------------------------

    def _record(self, code: str, message: str) -> None:
        self._diagnostics.record(code, self._component, message, field=self._field)

    def _record_failed(self, reason: str) -> None:
        self._record(
            "otel.metrics_export_failed",
            f"OpenTelemetry metric export to endpoint {self._endpoint.endpoint} failed: {reason}",
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def flush_outcome(self, timeout: float | None) -> str:
        """Collect and export now: ``flushed``, ``failed``, ``timed_out`` or ``shut_down``."""
        if self._closed:
            return "shut_down"
        millis = 30_000 if timeout is None else max(1, int(timeout * 1000))
        failures = 0 if self._reporter is None else self._reporter.failures
        result: list[bool] = []
        if not run_bounded(
            lambda: result.append(bool(self._provider.force_flush(millis))), timeout, "nemo-relay-otel-mf"
        ):
            return "timed_out"
        if self._reporter is not None and self._reporter.failures > failures:
            return "failed"
        return "flushed" if result and result[0] else "failed"

    def force_flush(self, timeout: float | None = None) -> bool:
        """Collect and export now; True if that succeeded within ``timeout`` seconds."""
        return self.flush_outcome(timeout) == "flushed"

    def shutdown(self, timeout: float | None = None) -> Teardown:
        """Export a final collection and stop within ``timeout`` seconds; a failed export makes it an error."""
        return self._shutdown(timeout)[0]

    def _shutdown(self, timeout: float | None) -> tuple[Teardown, str]:
        if self._closed:
            return Teardown.removed(), "shut_down"
        self._closed = True
        millis = 30_000 if timeout is None else max(1, int(timeout * 1000))
        if not self._owned:  # the caller's provider: flush it, shutting it down is theirs
            run_bounded(lambda: self._provider.force_flush(millis), timeout, "nemo-relay-otel-mf")
            return Teardown.removed(), "flushed"
        failures = self._reporter.failures
        finished = run_bounded(lambda: self._provider.shutdown(timeout_millis=millis), timeout, "nemo-relay-otel-ms")
        if not finished:
            outcome = "timed_out"
        elif self._reporter.failures > failures:
            outcome = "failed"
        else:
            outcome = "flushed"
        if outcome != "flushed" or self._reporter.failures:
            return (
                Teardown.removed_with_error(
                    f"OpenTelemetry metrics for endpoint {self._endpoint.endpoint} were not all delivered: "
                    f"{self._reporter.failures} failed exports"
                    + ("; the final export did not finish in time" if outcome == "timed_out" else "")
                ),
                outcome,
            )
        return Teardown.removed(), outcome

    @property
    def closed(self) -> bool:
        """Whether ``shutdown`` ran."""
        return self._closed


# --- the standalone API --------------------------------------------------------------------------


class OpenTelemetryMetricConfig(SignalConfigBase):
    """Settings for a standalone ``OpenTelemetryMetricSubscriber``; values are checked when a subscriber is built."""

    __slots__ = ("_export_interval_millis", "_temporality", "_max_instruments", "_cardinality_limit")

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self._export_interval_millis = 60000
        self._temporality = MetricTemporality.Cumulative
        self._max_instruments = 256
        self._cardinality_limit = 2000

    @property
    def export_interval_millis(self) -> int:
        """Period of the reader's collect-and-export cycle (default 60000 ms)."""
        return self._export_interval_millis

    @export_interval_millis.setter
    def export_interval_millis(self, value: int) -> None:
        self._export_interval_millis = check_u64(value)

    @property
    def temporality(self) -> MetricTemporality:
        """Aggregation temporality preference (default ``MetricTemporality.Cumulative``)."""
        return self._temporality

    @temporality.setter
    def temporality(self, value: MetricTemporality) -> None:
        self._temporality = check_instance(value, MetricTemporality)

    @property
    def max_instruments(self) -> int:
        """Distinct instruments this destination accepts (default 256)."""
        return self._max_instruments

    @max_instruments.setter
    def max_instruments(self, value: int) -> None:
        self._max_instruments = check_u64(value)

    @property
    def cardinality_limit(self) -> int:
        """Distinct attribute sets per instrument before the overflow series is used (default 2000)."""
        return self._cardinality_limit

    @cardinality_limit.setter
    def cardinality_limit(self, value: int) -> None:
        self._cardinality_limit = check_u64(value)

    def _settings(self) -> MetricSettings:
        from nemo_relay._core.observability.settings import MetricSettings

        endpoint = self._endpoint_settings("metrics")
        require_positive(self._export_interval_millis, "export_interval")
        require_positive(self._max_instruments, "max_instruments")
        require_positive(self._cardinality_limit, "cardinality_limit")
        if self._cardinality_limit >= _USIZE_MAX:
            raise RuntimeError(f"{BUILD_ERROR}cardinality_limit must be less than usize::MAX")
        return MetricSettings(
            endpoints=(endpoint,),
            export_interval_millis=self._export_interval_millis,
            temporality=_TEMPORALITY_LABELS[self._temporality],
            max_instruments=self._max_instruments,
            cardinality_limit=self._cardinality_limit,
        )


class OpenTelemetryMetricSubscriber(SignalSubscriber):
    """Exports metric marks (``scope.metric``) as OTLP metrics once registered as a subscriber.

    Args:
        config: Destination, interval, temporality and limits; a snapshot is taken.
        meter_provider: Optional SDK ``MeterProvider`` to record into instead of building one (beyond
            the reference); it stays yours, ``shutdown`` only flushes it.

    Raises:
        ValueError: blank endpoint or unknown transport.
        RuntimeError: invalid headers or values (``failed to build the OTLP exporter: ...``), or a
            process-global ``OTEL_EXPORTER_OTLP_[METRICS_]HEADERS`` variable is set.
    """

    __slots__ = ()
    _PROVIDER = "metric provider"
    _OUTCOME_TEXT: ClassVar[dict[str, str]] = {
        "failed": "the export failed (see runtime_diagnostics())",
        "timed_out": "the export did not finish in time",
        "shut_down": "the meter provider is already shut down",
    }

    def __init__(self, config: OpenTelemetryMetricConfig, *, meter_provider: Any = None) -> None:
        check_instance(config, OpenTelemetryMetricConfig)
        settings = config._settings()
        self._diagnostics = RuntimeDiagnostics()
        self._exporter = MetricExporter(
            settings, self._diagnostics, "endpoint", meter_provider=meter_provider, component=COMPONENT
        )

    def shutdown(self) -> None:
        """Deliver pending events, export a final collection and stop.

        Raises:
            RuntimeError: the final export failed or did not finish in time.
        """
        if self._exporter.closed:
            return
        self._deliver_pending()
        _, outcome = self._exporter._shutdown(self._manual_deadline())
        if outcome not in ("flushed", "shut_down"):
            raise RuntimeError(f"OpenTelemetry {self._PROVIDER} error: {self._OUTCOME_TEXT[outcome]}")

    def runtime_diagnostics(self) -> OpenTelemetryRuntimeDiagnostics:
        """Invalid marks, conflicts, limits and failed exports seen so far."""
        return OpenTelemetryRuntimeDiagnostics._of(self._diagnostics)

    def __repr__(self) -> str:
        return "<OpenTelemetryMetricSubscriber>"
