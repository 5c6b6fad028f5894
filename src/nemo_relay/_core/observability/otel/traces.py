"""⑪ OpenTelemetry traces: scopes become spans, marks become span events (or spans).

``TraceExporter`` is one trace endpoint: a projection (``full``, ``openinference`` or ``gen_ai``),
an OTLP exporter behind the SDK's batch span processor, and the span book-keeping. The observability
plugin builds one per configured endpoint; ``OpenTelemetrySubscriber`` is the same exporter registered
by hand (``OpenTelemetryConfig`` is its configuration).

Span lifecycle, on the dispatcher thread:

* scope start → span opened at the event time with the event's deterministic ids: span id = the
  event UUID's last 8 bytes; a trace root's trace id = its whole UUID, children inherit it. The parent
  is the active span of ``parent_uuid``, else a recently completed span (LRU of 4096), else the
  propagated remote parent of the emitting stack, else none (a new trace; top-level scopes start
  their own traces);
* scope end → status from ``otel.status_code``, error typing, end attributes, promoted metadata and
  attribute mappings, then the span ends at the event time;
* mark → a span event on its active parent span, else a zero-duration ``mark:<name>`` span (or
  always such a span with ``mark_projection = "tool"``).

Nothing blocks the dispatcher: spans are queued into the batch processor's bounded queue (what does
not fit is dropped and counted in ``otel.spans_dropped``); failed exports count in
``otel.traces_export_failed``; ``force_flush`` and ``shutdown`` wait at most their timeout.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from nemo_relay._core.context import emission_stack_root
from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay._core.observability.otel.common import (
    Attributes,
    MetadataPromoter,
    batch_settings,
    build_otlp_exporter,
    build_resource,
    check_global_header_env,
    require,
    validate_headers,
)
from nemo_relay._core.observability.otel.projection_base import (
    Projection,
    is_metric_schema,
    meta_str,
    metadata_of,
    session_identity,
)
from nemo_relay._core.observability.otel.trace_subscriber import (  # the public names, re-exported here
    DEFAULT_COMPLETED_TTL_MILLIS,
    DEFAULT_TIMEOUT,
    OpenTelemetryConfig,
    OpenTelemetrySubscriber,
)
from nemo_relay._core.observability.settings import TraceEndpointSettings

__all__ = ["OpenTelemetryConfig", "OpenTelemetrySubscriber", "TraceExporter"]

_log = logging.getLogger("nemo_relay.observability.otel")

COMPLETED_CONTEXTS = 4096
"""Recently completed span contexts kept for late children and marks."""
MAX_ACTIVE_SPANS = 65_536
"""Open spans kept per endpoint; beyond it the oldest is forgotten (never exported) and counted."""
EXIT_TIMEOUT = 5.0
"""Seconds each exporter gets to deliver its spans at interpreter exit."""
COMPONENT = "observability"
"""Runtime-diagnostic component of trace endpoints (the plugin's, as the reference reports them)."""

_LOW_64 = (1 << 64) - 1
# Delivery problems: they turn a teardown into ``removed_with_error``.
_DROPPED = "otel.spans_dropped"
_EXPORT_FAILED = "otel.traces_export_failed"
_UNEXPORTED = "otel.spans_unexported_at_shutdown"
_EVICTED = "otel.active_spans_evicted"
_METRIC_INVALID = "otel.metric_mark_invalid"


def _projection(kind: str) -> Projection:
    if kind == "full":
        from nemo_relay._core.observability.otel.projection_full import FullProjection

        return FullProjection()
    if kind == "openinference":
        require("openinference.semconv.trace", extra="openinference")
        from nemo_relay._core.observability.otel.projection_openinference import OpenInferenceProjection

        return OpenInferenceProjection()
    if kind == "gen_ai":
        from nemo_relay._core.observability.otel.projection_genai import GenAIProjection

        return GenAIProjection()
    raise ValueError(f"type must be 'full', 'gen_ai', or 'openinference', got \"{kind}\"")


def _run_bounded(fn: Callable[[], object], timeout: float, name: str) -> bool:
    """Run ``fn`` on a daemon thread; True if it finished within ``timeout`` seconds.

    The SDK's flush and shutdown block on in-flight exports; a helper thread keeps our deadline even
    when a collector hangs (the thread ends when the exporter's own request timeout fires).
    """
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:  # a failing flush is reported through the delivery counters
            _log.debug("OpenTelemetry %s raised", name, exc_info=True)
        finally:
            done.set()

    threading.Thread(target=run, name=f"nemo-relay-otel-{name}", daemon=True).start()
    return done.wait(max(timeout, 0.0))


class _Active:
    """An open span and what its end needs."""

    __slots__ = ("span", "context", "state", "attributes", "promoted", "child_error")

    def __init__(self, span: Any, state: Any, attributes: Attributes, promoted: frozenset[str]) -> None:
        self.span = span
        self.context = span.get_span_context()
        self.state = state
        self.attributes = attributes  # start attributes, for mappings over start + end
        self.promoted = promoted  # keys promoted at start (an end value may replace them)
        # (error.type, exception.type) of the first failed child, inherited by an ERROR end.
        self.child_error: tuple[str | None, str | None] | None = None


class TraceExporter:
    """One trace endpoint: projection, span book-keeping and an OTLP exporter behind a batch processor.

    Args:
        endpoint: The endpoint settings (type, URL, projection options, batch sizes, identity).
        diagnostics: Where runtime problems are counted (dropped spans, failed exports, promotion refusals).
        field: Diagnostic field naming the endpoint (default ``endpoint.field``).
        tracer_provider: A caller's ``TracerProvider``: spans go there (with Relay's ids when it is the
            SDK's) and nothing of ours is installed; its processors and exporters are the caller's.
        span_exporter: A ``SpanExporter`` to use instead of OTLP (still behind our batch processor).
        component: Runtime-diagnostic component (default ``"observability"``).

    Raises:
        RuntimeError: process-global OTLP header variables are set, or a header is invalid.
        ImportError: the OpenTelemetry libraries are missing (names the extra to install).
    """

    def __init__(
        self,
        endpoint: TraceEndpointSettings,
        diagnostics: RuntimeDiagnostics,
        field: str | None = None,
        *,
        tracer_provider: Any = None,
        span_exporter: Any = None,
        component: str = COMPONENT,
    ) -> None:
        self._settings = endpoint
        self._diagnostics = diagnostics
        self._field = field if field is not None else endpoint.field
        self._component = component
        self._projection = _projection(endpoint.type)
        require("opentelemetry.sdk.trace")
        from opentelemetry import context as context_api
        from opentelemetry import trace as trace_api

        from nemo_relay._core.observability.otel import trace_sdk

        self._trace_api = trace_api
        self._empty_context = context_api.Context
        self._kinds = {"internal": trace_api.SpanKind.INTERNAL, "client": trace_api.SpanKind.CLIENT}
        self._ok = trace_api.Status(trace_api.StatusCode.OK)
        self._error_code = trace_api.StatusCode.ERROR
        self._sampled = trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED)
        self._provider: Any = None
        self._caller_provider = tracer_provider
        self._counters: Any = None
        if tracer_provider is not None:
            self._tracer, self._ids = trace_sdk.caller_tracer(tracer_provider, endpoint.instrumentation_scope)
        else:
            if span_exporter is None:
                check_global_header_env("traces")
                headers = endpoint.resolve_headers()
                validate_headers(headers)
                url = endpoint.url or endpoint.endpoint
                span_exporter = build_otlp_exporter("traces", endpoint.transport, url, headers, endpoint.timeout_millis)
            batches = batch_settings(
                endpoint.max_queue_size, endpoint.max_export_batch_size, endpoint.scheduled_delay_millis
            )
            counters = trace_sdk.DeliveryCounters(batches.max_queue_size)
            counting = trace_sdk.CountingSpanExporter(span_exporter, counters, self._export_failed)
            processor = trace_sdk.GatedBatchSpanProcessor(counting, counters, batches, self._span_dropped)
            ids = trace_sdk.DeterministicIds()
            resource = build_resource(
                endpoint.service_name,
                endpoint.service_namespace,
                endpoint.service_version,
                endpoint.resource_attributes,
            )
            self._provider = trace_sdk.build_provider(resource, processor, ids)
            self._tracer, self._ids = self._provider.get_tracer(endpoint.instrumentation_scope), ids
            self._counters = counters
        self._promoter = MetadataPromoter(endpoint.promote_metadata_prefixes, diagnostics, self._component, self._field)
        self._mappings = tuple(endpoint.attribute_mappings) if self._projection.applies_mappings else ()
        self._aliases = frozenset(alias for _, alias in self._mappings)
        self._exclude_marks = frozenset(endpoint.mark_exclude_names)
        ttl = endpoint.completed_span_context_ttl_millis
        # The TTL runs on event time (the latest event timestamp seen), as in the reference.
        self._completed_ttl_ns = (DEFAULT_COMPLETED_TTL_MILLIS if ttl is None else ttl) * 1_000_000
        self._clock = 0
        if endpoint.promote_resource_metadata_prefixes:
            _log.warning("OpenTelemetry promote_resource_metadata_prefixes is not supported yet; ignoring it")
        self._lock = threading.Lock()
        self._active: dict[int, _Active] = {}
        self._completed: OrderedDict[int, tuple[Any, int]] = OrderedDict()
        self._closed = False
        self._teardown: Teardown | None = None
        self._warned_status: set[str] = set()
        _live.add(self)

    @property
    def endpoint(self) -> str:
        """The configured endpoint, as diagnostics name it."""
        return self._settings.endpoint

    # --- events --------------------------------------------------------------------------------------

    def on_event(self, event: ScopeEvent | MarkEvent) -> None:
        """Project one event (called on the dispatcher thread); never raises."""
        try:
            with self._lock:
                if self._closed:
                    return
                if event._ts > self._clock:
                    self._clock = event._ts
                if type(event) is ScopeEvent:
                    if event._phase == "start":
                        self._start(event)
                    else:
                        self._end(event)
                elif type(event) is MarkEvent:
                    self._mark(event)
        except Exception:  # observers never break the observed code
            _log.exception("OpenTelemetry trace export could not project event %r", getattr(event, "name", event))

    def _start(self, event: ScopeEvent) -> None:
        parent, _ = self._parent(event.parent_uuid)
        metadata = metadata_of(event)
        promoted = self._promoter.promote(metadata, self._aliases)
        plan = self._projection.start(event, frozenset(promoted))
        attributes = plan.attributes
        if parent is None and self._projection.session_identity:
            attributes.update(session_identity(metadata, self._stack_root(event)))
        kept = frozenset(key for key in promoted if key not in attributes)
        for key in kept:
            attributes[key] = promoted[key]
        span = self._open(plan.name, plan.kind, attributes, parent, event._id, event._ts)
        if len(self._active) >= MAX_ACTIVE_SPANS:
            self._evict_oldest()
        self._active[event._id] = _Active(span, plan.state, attributes, kept)

    def _end(self, event: ScopeEvent) -> None:
        active = self._active.pop(event._id, None)
        if active is None:
            return  # its start was before this exporter existed (or was evicted)
        metadata = metadata_of(event)
        promoted = self._promoter.promote(metadata, self._aliases)
        attributes = self._projection.end(event, active.state, frozenset(promoted))
        status = meta_str(metadata, "otel.status_code")
        exception_type = None
        if status == "ERROR":
            explicit = meta_str(metadata, "error.type")
            exception_type = meta_str(metadata, "exception.type")
            child = active.child_error
            inherited = explicit if explicit is not None else (child[0] if child else None)
            if exception_type is None and child is not None:
                exception_type = child[1]
            if self._projection.error_type_attribute:
                attributes["error.type"] = inherited if inherited is not None else "_OTHER"
            parent = self._active.get(event._parent) if event._parent is not None else None
            if parent is not None and parent.child_error is None:
                parent.child_error = (inherited, exception_type)
        owned = (active.attributes.keys() - active.promoted) | attributes.keys() | self._aliases
        for key, value in promoted.items():
            if key not in owned:
                attributes[key] = value
        span = active.span
        span.set_attributes(attributes)
        if self._mappings:
            merged = {**active.attributes, **attributes}
            for key, alias in self._mappings:
                if alias not in merged and key in merged:
                    span.set_attribute(alias, merged[key])
        self._set_status(span, status, metadata)
        if exception_type is not None:
            span.add_event("exception", {"exception.type": exception_type}, timestamp=event._ts)
        span.end(end_time=event._ts)
        self._remember(event._id, active.context)

    def _mark(self, event: MarkEvent) -> None:
        if is_metric_schema(event):
            self._metric_mark(event)
            return
        if not self._projection.traces_marks:
            return
        metadata = metadata_of(event)
        promoted = self._promoter.promote(metadata, self._aliases)
        attributes = self._projection.mark(event, frozenset(promoted))
        if event.name == "session.start" and self._projection.session_identity:
            attributes.update(session_identity(metadata, self._stack_root(event)))
        for key, value in promoted.items():
            attributes.setdefault(key, value)
        tool = self._settings.mark_projection == "tool" and not self._excluded(event, metadata)
        parent = self._active.get(event._parent) if event._parent is not None else None
        if not tool and parent is not None:
            self._map(attributes)
            parent.span.add_event(event.name, attributes, timestamp=event._ts)
            return
        if tool:
            attributes.update(self._projection.mark_tool(event))
            if parent is None:
                attributes["nemo_relay.mark.orphan"] = True
        else:
            attributes.update(self._projection.orphan())
        self._map(attributes)
        context = parent.context if parent is not None else self._parent(event.parent_uuid)[0]
        span = self._open(f"mark:{event.name}", "internal", attributes, context, event._id, event._ts)
        span.end(end_time=event._ts)

    def _excluded(self, event: MarkEvent, metadata: Any) -> bool:
        return event.name in self._exclude_marks or meta_str(metadata, "hook_event_name") in self._exclude_marks

    def _map(self, attributes: Attributes) -> None:
        for key, alias in self._mappings:
            if alias not in attributes and key in attributes:
                attributes[alias] = attributes[key]

    def _metric_mark(self, event: MarkEvent) -> None:
        # Valid metric marks belong to the metrics signal; a malformed one is reported, never traced.
        from nemo_relay._core.observability.otel import signal_metric_marks as marks

        kind, reason = marks.parse(event)
        if kind == marks.INVALID:
            message = marks.invalid_message(event.name, str(reason))
            self._diagnostics.record(_METRIC_INVALID, self._component, message, field=self._field)

    # --- spans ---------------------------------------------------------------------------------------

    def _open(self, name: str, kind: str, attributes: Attributes, parent: Any, id_: int, ts: int) -> Any:
        if self._ids is not None:
            self._ids.use(None if parent is not None else id_, id_ & _LOW_64)
        context = self._empty_context()  # never the caller's ambient OpenTelemetry context
        if parent is not None:
            context = self._trace_api.set_span_in_context(self._trace_api.NonRecordingSpan(parent), context)
        return self._tracer.start_span(
            name, context=context, kind=self._kinds[kind], attributes=attributes, start_time=ts
        )

    def _parent(self, parent_uuid: str | None) -> tuple[Any, _Active | None]:
        """The parent span context of an event whose parent is ``parent_uuid`` (None: a new trace)."""
        if parent_uuid is None:
            return None, None
        key = int(parent_uuid.replace("-", ""), 16)
        active = self._active.get(key)
        if active is not None:
            return active.context, active
        completed = self._completed.get(key)
        if completed is not None:
            if completed[1] >= self._clock:
                return completed[0], None
            del self._completed[key]
        stack = emission_stack_root()
        if stack is not None and stack[1] is not None and parent_uuid in (stack[1], stack[2]):
            remote = self._trace_api.SpanContext(
                trace_id=int(stack[1].replace("-", ""), 16),
                span_id=key & _LOW_64,
                is_remote=True,
                trace_flags=self._sampled,
            )
            return remote, None
        return None, None

    def _stack_root(self, event: ScopeEvent | MarkEvent) -> str | None:
        stack = emission_stack_root()
        return stack[0] if stack is not None else event.parent_uuid

    def _remember(self, key: int, context: Any) -> None:
        completed = self._completed
        completed[key] = (context, self._clock + self._completed_ttl_ns)
        completed.move_to_end(key)
        if len(completed) > COMPLETED_CONTEXTS:
            completed.popitem(last=False)

    def _evict_oldest(self) -> None:
        key = next(iter(self._active))
        del self._active[key]
        self._diagnostics.record(
            _EVICTED,
            self._component,
            f"OpenTelemetry endpoint {self.endpoint} had more than {MAX_ACTIVE_SPANS} open spans; "
            "the oldest was forgotten without export",
            field=self._field,
        )

    def _set_status(self, span: Any, status: str | None, metadata: Any) -> None:
        if status == "OK":
            span.set_status(self._ok)
        elif status == "ERROR":
            description = meta_str(metadata, "otel.status_description")
            span.set_status(self._trace_api.Status(self._error_code, description))
        elif status is not None and status != "UNSET" and status not in self._warned_status:
            if len(self._warned_status) < 64:
                self._warned_status.add(status)
            _log.warning("OpenTelemetry ignored unknown otel.status_code %r (expected OK, ERROR or UNSET)", status)

    # --- delivery ------------------------------------------------------------------------------------

    def _span_dropped(self) -> None:
        self._diagnostics.record(
            _DROPPED,
            self._component,
            f"OpenTelemetry dropped spans before export to endpoint {self.endpoint} because the batch queue was full",
            field=self._field,
        )

    def _export_failed(self, count: int) -> None:
        self._diagnostics.record(
            _EXPORT_FAILED,
            self._component,
            f"OpenTelemetry trace export to endpoint {self.endpoint} failed",
            field=self._field,
        )

    def export_failures(self) -> int:
        """Failed export requests so far (0 with a caller's provider)."""
        counters = self._counters
        return 0 if counters is None else int(counters.failed_batches)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export every ended span now; True if that finished within ``timeout`` seconds without a failure."""
        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        if self._provider is None:
            flush = getattr(self._caller_provider, "force_flush", None)
            return flush is None or _run_bounded(flush, limit, "flush")
        failures = self.export_failures()
        finished = _run_bounded(self._provider.force_flush, limit, "flush")
        return finished and self.export_failures() == failures

    def shutdown(self, timeout: float | None = None) -> Teardown:
        """Stop projecting, export what is queued (at most ``timeout`` seconds), and report what was lost.

        Spans still open are not exported. A caller's provider is left running. Returns
        ``removed_with_error`` when spans were dropped, exports failed or the deadline cut the export short.
        """
        with self._lock:
            if self._teardown is not None:
                return self._teardown
            self._closed = True
            still_open = len(self._active)
            self._active.clear()
            self._completed.clear()
        _live.discard(self)
        if still_open:
            _log.debug("OpenTelemetry endpoint %s shut down with %d spans still open", self.endpoint, still_open)
        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        if self._provider is not None:
            finished = _run_bounded(self._provider.shutdown, limit, "shutdown")
            unexported = self._counters.pending
            if unexported:
                how = "ended" if finished else "did not finish in time"
                self._diagnostics.record(
                    _UNEXPORTED,
                    self._component,
                    f"OpenTelemetry shutdown of endpoint {self.endpoint} {how}; {unexported} spans were not exported",
                    field=self._field,
                    count=unexported,
                )
        self._teardown = self._outcome()
        return self._teardown

    def _outcome(self) -> Teardown:
        counts: dict[str, int] = {}
        for entry in self._diagnostics.entries():
            if entry["code"] in (_DROPPED, _EXPORT_FAILED, _UNEXPORTED) and entry.get("field") == self._field:
                counts[entry["code"]] = counts.get(entry["code"], 0) + entry["count"]
        if not counts:
            return Teardown.removed()
        summary = ", ".join(f"{code} ({count})" for code, count in counts.items())
        return Teardown.removed_with_error(
            f"OpenTelemetry runtime delivery failures: {summary} (trace endpoint {self.endpoint})"
        )


# --- interpreter exit ----------------------------------------------------------------------------------

_live: weakref.WeakSet[TraceExporter] = weakref.WeakSet()


def _shutdown_at_exit() -> None:
    exporters = list(_live)
    if not exporters:
        return
    from nemo_relay._core import dispatch

    # Registered after the dispatcher's own exit hook, so this runs first: deliver what is queued,
    # then give every exporter a bounded chance to send it.
    if not dispatch.on_dispatcher_thread():
        dispatch.wait_drained(EXIT_TIMEOUT)
    for exporter in exporters:
        exporter.shutdown(EXIT_TIMEOUT)


atexit.register(_shutdown_at_exit)
