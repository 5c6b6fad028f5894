"""The built-in ``observability`` plugin: validates its config and wires the exporters in.

``register`` installs, in this order (names are local; the plugin context prefixes them with the
component's namespace):

1. ``payload-policy`` — a teardown resetting the full-payload flag it sets from ``enable_full_payloads``;
2. ATOF (when enabled) — subscriber ``atof`` fanning every event out to all sinks, teardown ``atof.shutdown``;
3. ATIF (when enabled) — subscriber ``atif`` feeding the trajectory dispatcher, teardown ``atif.shutdown``;
4. OpenTelemetry (when enabled) — teardown ``opentelemetry.shutdown``, then subscriber
   ``opentelemetry``: valid metric marks go to the metric exporters only, invalid ones (reserved
   metric schema) are dropped and counted as ``otel.metric_mark_invalid``, everything else goes to
   the trace and log exporters. One exporter raising never stops the others.

Teardowns run in reverse order at ``plugin.clear``; if ``register`` fails part-way, the plugin host
rolls back what was already registered, and exporters built but not yet registered are shut here.
Exporter modules (and their optional libraries) are imported only when their section is enabled.
"""

from __future__ import annotations

import logging

from nemo_relay._core.diagnostics import Teardown
from nemo_relay._core.errors import RelayError
from nemo_relay._core.observability import config as _config
from nemo_relay._core.plugins.model import PluginConfigError, PluginRegistrationError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from nemo_relay._core.diagnostics import RuntimeDiagnostics
    from nemo_relay._core.events import Event
    from nemo_relay._core.observability.settings import ObservabilitySettings

__all__ = ["PLUGIN", "ObservabilityPlugin"]

_log = logging.getLogger("nemo_relay.observability")
_NO_ACTIVE_ENDPOINT = "enabled OpenTelemetry section requires at least one valid trace, log, or metric endpoint"


class ObservabilityPlugin:
    """The ``observability`` kind: one component at most; ATOF, ATIF and OpenTelemetry export."""

    kind = "observability"

    def allows_multiple_components(self) -> bool:
        """The observability component may appear only once per document."""
        return False

    def validate_with_policy(self, config: dict[str, Any], policy: dict[str, str]) -> list[dict[str, Any]]:
        """Diagnostics for ``config`` under the (already merged) unsupported-config ``policy``."""
        return _config.validate(config, policy)

    def register(self, config: dict[str, Any], context: Any) -> None:
        """Build the enabled exporters and register their subscribers and teardowns with ``context``.

        Raises:
            RuntimeError: ``invalid config: ...`` when the config cannot be activated (nothing is
                left installed by this call; the host rolls back earlier registrations).
        """
        try:
            settings = _config.parse(config)
        except _config.ObservabilityConfigError as exc:
            raise PluginConfigError(str(exc)) from None
        _register_payload_policy(settings, context)
        try:
            if settings.atof_sinks:
                _register_atof(settings, context)
            if settings.atif is not None:
                _register_atif(settings, context)
            if settings.opentelemetry_enabled:
                _register_opentelemetry(settings, context)
        except (RuntimeError, ValueError, OSError, ImportError) as exc:
            if isinstance(exc, RelayError):
                raise
            # An exporter that cannot start (unwritable file, missing extra): the message says what and where.
            raise PluginRegistrationError(str(exc)) from exc

    def __repr__(self) -> str:
        return "ObservabilityPlugin(kind='observability')"


PLUGIN = ObservabilityPlugin()
"""The plugin object the plugin host loads for kind ``observability``."""


def _register_payload_policy(settings: ObservabilitySettings, context: Any) -> None:
    from nemo_relay._core import llmcalls

    llmcalls.full_payloads = settings.enable_full_payloads

    def reset(_left: float | None) -> Teardown:
        llmcalls.full_payloads = False
        return Teardown.removed()

    context.add_teardown("payload-policy", reset)


def _register_atof(settings: ObservabilitySettings, context: Any) -> None:
    from nemo_relay._core.observability.atof import build_sinks

    fanout = build_sinks(list(settings.atof_sinks), context.diagnostics)
    try:
        context.register_subscriber("atof", fanout.deliver)
    except BaseException:
        fanout.shutdown(0.0)
        raise
    context.add_teardown("atof.shutdown", fanout.shutdown)


def _register_atif(settings: ObservabilitySettings, context: Any) -> None:
    from nemo_relay._core.observability.atif.dispatcher import AtifDispatcher

    assert settings.atif is not None
    dispatcher = AtifDispatcher(settings.atif, context.diagnostics, context.namespace)
    try:
        context.register_subscriber("atif", dispatcher.on_event)
    except BaseException:
        dispatcher.shutdown(0.0)
        raise
    context.add_teardown("atif.shutdown", dispatcher.shutdown)


def _build(kind: str, field: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # A construction failure skips this endpoint only (logged), as the reference does.
    try:
        return make(*args, **kwargs)
    except Exception as exc:
        _log.warning("skipping OpenTelemetry %s endpoint %s: %s: %s", kind, field, type(exc).__name__, exc)
        return None


def _register_opentelemetry(settings: ObservabilitySettings, context: Any) -> None:
    diagnostics = context.diagnostics
    traces: list[Any] = []
    logs: list[Any] = []
    metrics: list[Any] = []
    if settings.traces:
        from nemo_relay._core.observability.otel.traces import TraceExporter

        for trace in settings.traces:
            traces.append(_build("trace", trace.field, TraceExporter, trace, diagnostics, trace.field))
    if settings.logs is not None:
        from nemo_relay._core.observability.otel.logs import LogExporter

        for endpoint in settings.logs.endpoints:
            field = f"opentelemetry.logs[{endpoint.index}].endpoint"
            logs.append(_build("log", field, LogExporter, settings.logs, diagnostics, field, endpoint=endpoint))
    if settings.metrics is not None:
        from nemo_relay._core.observability.otel.metrics import MetricExporter

        for endpoint in settings.metrics.endpoints:
            field = f"opentelemetry.metrics[{endpoint.index}].endpoint"
            metrics.append(
                _build("metric", field, MetricExporter, settings.metrics, diagnostics, field, endpoint=endpoint)
            )
    traces, logs, metrics = ([e for e in group if e is not None] for group in (traces, logs, metrics))
    if not (traces or logs or metrics):
        raise PluginConfigError(_NO_ACTIVE_ENDPOINT)
    fanout = OpenTelemetryFanout(traces, logs, metrics, diagnostics)
    try:
        context.add_teardown("opentelemetry.shutdown", fanout.shutdown)
    except BaseException:
        fanout.shutdown(0.0)
        raise
    context.register_subscriber("opentelemetry", fanout)


class OpenTelemetryFanout:
    """The single OpenTelemetry subscriber: routes each event to the right exporters, isolating failures."""

    __slots__ = ("_traces", "_logs", "_metrics", "_others", "_all", "_diagnostics", "_classify", "_invalid_message",
                 "_failed", "_invalid_logged")  # fmt: skip

    def __init__(
        self, traces: Sequence[Any], logs: Sequence[Any], metrics: Sequence[Any], diagnostics: RuntimeDiagnostics
    ) -> None:
        from nemo_relay._core.observability.otel.metrics import classify_metric_mark, invalid_metric_mark_message

        self._traces = tuple(traces)
        self._logs = tuple(logs)
        self._metrics = tuple(metrics)
        self._others = self._traces + self._logs  # everything but metric marks goes here
        self._all = self._traces + self._logs + self._metrics
        self._diagnostics = diagnostics
        self._classify = classify_metric_mark
        self._invalid_message = invalid_metric_mark_message
        self._failed: set[int] = set()  # exporters whose failure was already logged
        self._invalid_logged = False

    def __call__(self, event: Event) -> None:
        """Deliver one event (runs on the dispatcher thread)."""
        targets = self._others
        if event.kind == "mark":
            route = self._classify(event)
            if route == "metric":
                targets = self._metrics
            elif route == "invalid":
                self._drop_invalid(event)
                return
        for exporter in targets:
            try:
                exporter.on_event(event)
            except Exception:
                if id(exporter) not in self._failed:
                    self._failed.add(id(exporter))
                    _log.exception("OpenTelemetry exporter %r failed to handle an event; continuing", exporter)

    def _drop_invalid(self, event: Any) -> None:
        message = self._invalid_message(event)
        field = "opentelemetry.metrics" if self._metrics else None
        self._diagnostics.record("otel.metric_mark_invalid", "observability", message, field=field)
        if not self._invalid_logged:
            self._invalid_logged = True
            _log.warning("%s", message)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Flush every exporter; True when all of them finished in time."""
        ok = True
        for exporter in self._all:
            try:
                ok = bool(exporter.force_flush(timeout)) and ok
            except Exception:
                _log.exception("OpenTelemetry exporter %r failed to flush", exporter)
                ok = False
        return ok

    def shutdown(self, timeout: float | None = None) -> Teardown:
        """Shut every exporter down in turn (traces, logs, metrics) within ``timeout`` seconds overall.

        Delivery-only problems give ``removed_with_error``; anything else ``not_removed``.
        """
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        delivery: list[str] = []
        fatal: list[str] = []
        for exporter in self._all:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                outcome = exporter.shutdown(left)
            except Exception as exc:
                fatal.append(f"{type(exc).__name__}: {exc}")
                continue
            if not isinstance(outcome, Teardown) or outcome.ok:
                continue
            (fatal if outcome.status == Teardown.NOT_REMOVED else delivery).append(outcome.message or outcome.status)
        if fatal:
            return Teardown.not_removed("; ".join(fatal + delivery))
        if delivery:
            return Teardown.removed_with_error("; ".join(delivery))
        return Teardown.removed()
