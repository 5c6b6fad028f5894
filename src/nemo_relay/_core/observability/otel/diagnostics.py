"""``OpenTelemetryRuntimeDiagnostic(s)``: what an OpenTelemetry subscriber reports about its own exports."""

from __future__ import annotations

from nemo_relay._core.diagnostics import RuntimeDiagnostics


class OpenTelemetryRuntimeDiagnostic:
    """One aggregated problem: ``code``, the latest ``message`` and how many times it happened (``count``)."""

    __slots__ = ("_code", "_message", "_count")

    def __init__(self, code: str, message: str, count: int) -> None:
        self._code = code
        self._message = message
        self._count = count

    @property
    def code(self) -> str:
        """Stable diagnostic code, e.g. ``otel.spans_dropped``."""
        return self._code

    @property
    def message(self) -> str:
        """The most recent message recorded for this code."""
        return self._message

    @property
    def count(self) -> int:
        """Occurrences so far."""
        return self._count

    def __repr__(self) -> str:
        return f"OpenTelemetryRuntimeDiagnostic(code={self._code!r}, message={self._message!r}, count={self._count})"


class OpenTelemetryRuntimeDiagnostics:
    """A snapshot of a subscriber's runtime diagnostics, one entry per code."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[OpenTelemetryRuntimeDiagnostic]) -> None:
        self._entries = entries

    @classmethod
    def _of(cls, store: RuntimeDiagnostics) -> OpenTelemetryRuntimeDiagnostics:
        by_code: dict[str, OpenTelemetryRuntimeDiagnostic] = {}
        for entry in store.entries():
            code = entry["code"]
            seen = by_code.get(code)
            count = entry["count"] + (0 if seen is None else seen.count)
            by_code[code] = OpenTelemetryRuntimeDiagnostic(code, entry["message"], count)
        return cls(list(by_code.values()))

    @property
    def entries(self) -> list[OpenTelemetryRuntimeDiagnostic]:
        """Every diagnostic, in first-seen order."""
        return list(self._entries)

    def get(self, code: str) -> OpenTelemetryRuntimeDiagnostic | None:
        """The diagnostic for ``code``, or None."""
        for entry in self._entries:
            if entry.code == code:
                return entry
        return None

    def __repr__(self) -> str:
        return f"OpenTelemetryRuntimeDiagnostics({self._entries!r})"
