"""OpenTelemetry SDK glue for span export; imported only when a trace exporter is built.

* ``DeterministicIds`` makes the SDK's tracer use the ids Relay dictates: a span id from the event
  UUID's low 64 bits and, for trace roots, the trace id from the whole UUID.
* ``CountingSpanExporter`` wraps the OTLP exporter and keeps exact delivery counters.
* ``GatedBatchSpanProcessor`` is the SDK's ``BatchSpanProcessor`` with an exact, counted admission
  gate in front of its bounded queue (the SDK's own queue drops the oldest span silently).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from nemo_relay._core.observability.otel.common import BatchSettings


class DeterministicIds(IdGenerator):
    """An id generator that hands out the ids set by ``use`` once, and random ids otherwise.

    The span engine calls ``use(trace_id, span_id)`` right before ``tracer.start_span``; the tracer
    asks for a trace id only for roots, so a trace id set for a child is simply discarded.
    """

    def __init__(self, fallback: IdGenerator | None = None) -> None:
        self._fallback = fallback if fallback is not None else RandomIdGenerator()
        self._next = threading.local()

    def use(self, trace_id: int | None, span_id: int) -> None:
        """Ids for the next span started on this thread."""
        self._next.trace_id = trace_id
        self._next.span_id = span_id

    def generate_span_id(self) -> int:
        span_id: int | None = getattr(self._next, "span_id", None)
        if span_id:
            self._next.span_id = None
            return span_id
        return self._fallback.generate_span_id()

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._next, "trace_id", None)
        if trace_id:
            self._next.trace_id = None
            return trace_id
        return self._fallback.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False  # trace ids are Relay UUIDs, not W3C level-2 random ids


class DeliveryCounters:
    """Exact span accounting for one endpoint, safe across the dispatcher and batch threads.

    Every span handed to the processor is ``queued`` until the batch thread passes it to the exporter
    (``in_flight``), then ``exported`` or ``failed``. ``dropped`` spans never entered the queue.
    """

    __slots__ = ("_lock", "capacity", "queued", "in_flight", "exported", "failed", "failed_batches", "dropped")

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        self.capacity = capacity
        self.queued = self.in_flight = self.exported = self.failed = self.failed_batches = self.dropped = 0

    def admit(self) -> bool:
        """Reserve a queue slot for one span; False (and one more ``dropped``) when the queue is full."""
        with self._lock:
            # Spans popped by the batch thread but not yet handed to the exporter still count as queued,
            # so the SDK's own deque can never overflow (it would drop the oldest span silently).
            if self.queued >= self.capacity:
                self.dropped += 1
                return False
            self.queued += 1
            return True

    def take(self, count: int) -> None:
        with self._lock:
            self.queued -= count
            self.in_flight += count

    def settle(self, count: int, ok: bool) -> None:
        with self._lock:
            self.in_flight -= count
            if ok:
                self.exported += count
            else:
                self.failed += count
                self.failed_batches += 1

    @property
    def pending(self) -> int:
        """Spans accepted but not yet exported or failed."""
        with self._lock:
            return self.queued + self.in_flight


class CountingSpanExporter(SpanExporter):
    """Delegates to ``inner`` and settles the counters; a raising exporter counts as a failed batch."""

    def __init__(self, inner: SpanExporter, counters: DeliveryCounters, on_failure: Callable[[int], None]) -> None:
        self._inner = inner
        self._counters = counters
        self._on_failure = on_failure

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        count = len(spans)
        self._counters.take(count)
        ok = False
        try:
            ok = self._inner.export(spans) is SpanExportResult.SUCCESS
        except Exception:  # an exporter bug must not kill the batch thread or go uncounted
            ok = False
        finally:
            self._counters.settle(count, ok)
        if not ok:
            self._on_failure(count)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class GatedBatchSpanProcessor(BatchSpanProcessor):
    """``BatchSpanProcessor`` whose queue admission is counted exactly (see ``DeliveryCounters``)."""

    def __init__(
        self,
        exporter: CountingSpanExporter,
        counters: DeliveryCounters,
        settings: BatchSettings,
        on_drop: Callable[[], None],
    ) -> None:
        super().__init__(
            exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.scheduled_delay_millis,
            max_export_batch_size=settings.max_export_batch_size,
        )
        self._counters = counters
        self._on_drop = on_drop

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.context and span.context.trace_flags.sampled):
            return
        if not self._counters.admit():
            self._on_drop()
            return
        super().on_end(span)


def build_provider(resource: Resource, processor: BatchSpanProcessor, ids: DeterministicIds) -> TracerProvider:
    """A private provider: exact resource, every span sampled, no attribute limits, no atexit hook."""
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=resource,
        shutdown_on_exit=False,  # the exporter drains the dispatcher first, then shuts down (bounded)
        id_generator=ids,
        span_limits=SpanLimits(
            max_attributes=SpanLimits.UNSET,
            max_events=SpanLimits.UNSET,
            max_links=SpanLimits.UNSET,
            max_span_attributes=SpanLimits.UNSET,
            max_event_attributes=SpanLimits.UNSET,
            max_link_attributes=SpanLimits.UNSET,
            max_attribute_length=SpanLimits.UNSET,
            max_span_attribute_length=SpanLimits.UNSET,
        ),
    )
    provider.add_span_processor(processor)
    return provider


def caller_tracer(provider: Any, scope: str) -> tuple[Any, DeterministicIds | None]:
    """A tracer on a caller's provider that uses Relay ids without touching the provider.

    An SDK tracer is copied (it is cached and shared per scope) and the copy gets a deterministic id
    generator falling back to the provider's own; any other tracer is used as it is (ids are then the
    implementation's).
    """
    tracer = provider.get_tracer(scope)
    fallback = getattr(tracer, "id_generator", None)
    if not isinstance(fallback, IdGenerator):
        return tracer, None
    ids = DeterministicIds(fallback)
    own = copy.copy(tracer)
    own.id_generator = ids
    return own, ids
