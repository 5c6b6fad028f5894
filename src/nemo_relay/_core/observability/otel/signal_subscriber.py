"""What the public OpenTelemetry log and metric subscribers share: registration, flushing, diagnostics.

Each subclass builds its exporter in ``__init__`` and adds its own ``shutdown``; the exporter provides
``on_event``, ``flush_outcome(deadline)`` and ``_endpoint.timeout_millis``.
"""

from __future__ import annotations

from nemo_relay._core import dispatch as _dispatch
from nemo_relay._core.observability.otel.diagnostics import OpenTelemetryRuntimeDiagnostics

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from nemo_relay._core.diagnostics import RuntimeDiagnostics


class SignalSubscriber:
    """Base of ``OpenTelemetryLogSubscriber`` and ``OpenTelemetryMetricSubscriber``."""

    __slots__ = ("_exporter", "_diagnostics", "__weakref__")

    _exporter: Any
    _diagnostics: RuntimeDiagnostics
    _PROVIDER = "signal provider"  # named in errors: "log provider", "meter provider"
    _OUTCOME_TEXT: ClassVar[dict[str, str]] = {}

    def register(self, name: str) -> None:
        """Register as the global subscriber ``name``.

        Raises:
            RuntimeError: ``already exists: <name> subscriber already exists``.
        """
        from nemo_relay import subscribers

        subscribers.register(name, self._exporter.on_event)

    def deregister(self, name: str) -> bool:
        """Remove the global subscriber ``name``; False if there was none."""
        from nemo_relay import subscribers

        return subscribers.deregister(name)

    def force_flush(self) -> None:
        """Deliver every event emitted so far, then export everything pending.

        Raises:
            RuntimeError: an export failed or timed out, or the subscriber is shut down.
        """
        self._deliver_pending()
        outcome = self._exporter.flush_outcome(self._manual_deadline())
        if outcome != "flushed":
            raise RuntimeError(f"OpenTelemetry {self._PROVIDER} error: {self._OUTCOME_TEXT[outcome]}")

    def runtime_diagnostics(self) -> OpenTelemetryRuntimeDiagnostics:
        """Drops, failed exports and invalid marks seen so far."""
        return OpenTelemetryRuntimeDiagnostics._of(self._diagnostics)

    def _deliver_pending(self) -> None:
        # From a subscriber callback the dispatcher is busy delivering: waiting for it would deadlock.
        if not _dispatch.on_dispatcher_thread():
            _dispatch.wait_drained(None)

    def _manual_deadline(self) -> float:
        # The standalone API has no timeout argument: allow two request timeouts, at least five seconds.
        return max(5.0, 2 * float(self._exporter._endpoint.timeout_millis) / 1000)
