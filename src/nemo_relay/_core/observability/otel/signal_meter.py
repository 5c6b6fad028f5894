"""The SDK side of the metric signal: meter provider, periodic reader, and an exporter that reports failures.

Importing this module imports ``opentelemetry-sdk``; ``metrics`` imports it only when an exporter
is built, so reading metric marks needs no OpenTelemetry at all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk import metrics as sdk_metrics
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)

from nemo_relay._core.observability.otel.signal_export import ExportReasons
from nemo_relay._core.types import MetricKind

_GAUGE_CLASS = getattr(sdk_metrics, "_Gauge", None)  # the synchronous gauge's SDK class (1.23+)
_SDK_CLASSES: dict[MetricKind, Any] = {
    MetricKind.Counter: sdk_metrics.Counter,
    MetricKind.UpDownCounter: sdk_metrics.UpDownCounter,
    MetricKind.Histogram: sdk_metrics.Histogram,
    MetricKind.Gauge: _GAUGE_CLASS,
}
# Which instrument kinds aggregate as deltas under each configured temporality (the reference's
# selectors: "delta" keeps up-down counters cumulative; "low_memory" also keeps gauges cumulative).
DELTA_KINDS = {
    "cumulative": frozenset(),
    "delta": frozenset({MetricKind.Counter, MetricKind.Histogram, MetricKind.Gauge}),
    "low_memory": frozenset({MetricKind.Counter, MetricKind.Histogram}),
}
OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}


def preferred_temporality(temporality: str) -> dict[type, AggregationTemporality]:
    """The reader's per-instrument-class temporality for a configured ``temporality``."""
    deltas = DELTA_KINDS[temporality]
    return {
        cls: AggregationTemporality.DELTA if kind in deltas else AggregationTemporality.CUMULATIVE
        for kind, cls in _SDK_CLASSES.items()
        if cls is not None
    }


class ReportingMetricExporter(MetricExporter):
    """Wraps the OTLP metric exporter: counts failed exports (with a reason) and runs a pre-export hook."""

    def __init__(
        self,
        inner: Any,
        temporality: str,
        on_failed: Callable[[str], None],
        before_export: Callable[[], None],
    ) -> None:
        super().__init__(preferred_temporality=preferred_temporality(temporality))
        self._inner = inner
        self._reasons = ExportReasons(inner)
        self._on_failed = on_failed
        self._before_export = before_export
        self.failures = 0

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Export one collection; a failure is reported, never raised."""
        self._before_export()
        reason = self._reasons.call(lambda: self._inner.export(metrics_data, timeout_millis=timeout_millis))
        if reason is None:
            return MetricExportResult.SUCCESS
        self.failures += 1
        self._on_failed(reason)
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing is buffered here; ask the wrapped exporter."""
        return bool(self._inner.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown(timeout_millis=timeout_millis)


def build_provider(
    exporter: ReportingMetricExporter,
    resource: Any,
    export_interval_millis: int,
    timeout_millis: int,
    cardinality_limit: int,
) -> Any:
    """A ``MeterProvider`` with one periodic reader around ``exporter``; no exemplars, no global install."""
    reader_kwargs: dict[str, Any] = {
        "export_interval_millis": export_interval_millis,
        "export_timeout_millis": timeout_millis,
    }
    if "cardinality_limits" in inspect.signature(PeriodicExportingMetricReader.__init__).parameters:
        # Overflow is applied before measurements reach the SDK; leave room for the empty and the
        # overflow attribute sets so that the SDK's own limit never folds a series a second time.
        limit = min(cardinality_limit + 2, 2**31 - 1)
        reader_kwargs["cardinality_limits"] = {cls: limit for cls in _SDK_CLASSES.values() if cls is not None}
    reader = PeriodicExportingMetricReader(exporter, **reader_kwargs)
    provider_kwargs: dict[str, Any] = {"resource": resource, "metric_readers": [reader], "shutdown_on_exit": False}
    if "exemplar_filter" in inspect.signature(sdk_metrics.MeterProvider.__init__).parameters:
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

        provider_kwargs["exemplar_filter"] = AlwaysOffExemplarFilter()
    return sdk_metrics.MeterProvider(**provider_kwargs)


def create_instrument(meter: Any, kind: MetricKind, name: str, unit: str, description: str, bounds: Any) -> Any:
    """The SDK instrument for one metric; returns its recording function ``record(value, attributes)``."""
    if kind is MetricKind.Counter:
        return meter.create_counter(name, unit=unit, description=description).add
    if kind is MetricKind.UpDownCounter:
        return meter.create_up_down_counter(name, unit=unit, description=description).add
    if kind is MetricKind.Gauge:
        return meter.create_gauge(name, unit=unit, description=description).set
    if bounds is not None:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=bounds
        ).record
    return meter.create_histogram(name, unit=unit, description=description).record
