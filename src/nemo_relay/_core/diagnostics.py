"""Runtime diagnostics: counted, aggregated reports of problems found while exporting (never raised).

Exporters and plugins record what went wrong off the caller's path (a dropped span, a refused
connection, a file that could not be written) here. Records aggregate by ``(code, component, field)``:
a repeat updates the message and session and adds to the count, so a failure that happens a million
times is one entry with ``count == 1_000_000``, not a million log lines. The plugin report shows them
as ``runtime_diagnostics``; standalone exporters expose them through ``runtime_diagnostics()``.

Teardown outcomes say what shutting a registration down achieved: ``Removed``; ``RemovedWithError``
(callbacks are gone but delivery failed, e.g. an endpoint refused the last batch); ``NotRemoved``
(callbacks may remain registered).
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

_MAX_COUNT = 2**64 - 1


class RuntimeDiagnostics:
    """A thread-safe aggregate of runtime diagnostics, in first-seen order."""

    __slots__ = ("_lock", "_entries")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str | None], dict[str, Any]] = {}

    def record(
        self,
        code: str,
        component: str,
        message: str,
        *,
        field: str | None = None,
        session_id: str | None = None,
        count: int = 1,
    ) -> None:
        """Add ``count`` occurrences of ``code`` for ``component``/``field``; the latest message wins."""
        key = (code, component, field)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = {"code": code, "component": component, "message": message, "count": 0}
                if field is not None:
                    entry["field"] = field
                self._entries[key] = entry
            entry["message"] = message
            if session_id is not None:
                entry["session_id"] = session_id
            entry["count"] = min(_MAX_COUNT, entry["count"] + count)

    def entries(self) -> list[dict[str, Any]]:
        """Copies of every entry: ``{code, component, message, count}`` plus ``field``/``session_id`` if set."""
        with self._lock:
            return [dict(entry) for entry in self._entries.values()]

    def get(self, code: str) -> dict[str, Any] | None:
        """The first entry with ``code`` (any component or field), or None."""
        with self._lock:
            for entry in self._entries.values():
                if entry["code"] == code:
                    return dict(entry)
        return None

    def count(self, code: str) -> int:
        """Total occurrences of ``code`` across components and fields."""
        with self._lock:
            return sum(entry["count"] for entry in self._entries.values() if entry["code"] == code)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._entries)


class Teardown:
    """The outcome of shutting one registration down (``Teardown.removed()`` and friends)."""

    __slots__ = ("status", "message")

    REMOVED = "removed"
    REMOVED_WITH_ERROR = "removed_with_error"
    NOT_REMOVED = "not_removed"

    def __init__(self, status: str, message: str | None = None) -> None:
        self.status = status
        self.message = message

    @classmethod
    def removed(cls) -> Teardown:
        """Callbacks gone, everything delivered."""
        return cls(cls.REMOVED)

    @classmethod
    def removed_with_error(cls, message: str) -> Teardown:
        """Callbacks gone, but something was not delivered (the plugin may be configured again)."""
        return cls(cls.REMOVED_WITH_ERROR, message)

    @classmethod
    def not_removed(cls, message: str) -> Teardown:
        """Callbacks may remain registered."""
        return cls(cls.NOT_REMOVED, message)

    @property
    def ok(self) -> bool:
        """Whether the registration was removed cleanly."""
        return self.status == self.REMOVED

    def __repr__(self) -> str:
        return f"Teardown({self.status!r}, {self.message!r})"
