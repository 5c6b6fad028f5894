"""Calling an OTLP exporter and learning why an export failed.

The SDK exporters return only SUCCESS/FAILURE; the reason (status code, connection error, timeout)
goes to their module logger. ``ExportReasons`` watches that logger with a pass-through filter and
keeps the first warning of each export per thread (a retry warning names the connection error or
status; the final error only says that retries ran out), so a runtime diagnostic can say *why*
without parsing anything private. Records still reach the application's logging unchanged.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import weakref

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_GENERIC_REASON = "the OTLP exporter reported a failed export"


class _LastMessage(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and getattr(self.local, "message", None) is None:
            try:
                self.local.message = record.getMessage()
            except Exception:  # a broken log call must not break the export path
                self.local.message = str(record.msg)
        return True


_filters: dict[str, _LastMessage] = {}
_filters_lock = threading.Lock()


def _watch(logger_name: str) -> _LastMessage:
    with _filters_lock:
        watcher = _filters.get(logger_name)
        if watcher is None:
            watcher = _filters[logger_name] = _LastMessage()
            # First in line: the SDK's DuplicateFilter would otherwise hide repeats from us.
            logging.getLogger(logger_name).filters.insert(0, watcher)
        return watcher


class ExportReasons:
    """Runs ``exporter.export`` and returns ``None`` on success or a short failure reason."""

    __slots__ = ("_watchers",)

    def __init__(self, exporter: object) -> None:
        names = {type(exporter).__module__, "opentelemetry.exporter.otlp.common.http"}
        self._watchers = [_watch(name) for name in sorted(names)]

    def call(self, export: Callable[[], Any]) -> str | None:
        """``export()``; ``None`` when it reported success, else why it did not."""
        for watcher in self._watchers:
            watcher.local.message = None
        try:
            result = export()
        except Exception as exc:  # an exporter bug is a failed export, never an error on our thread
            return f"{type(exc).__name__}: {exc}"
        if getattr(result, "name", None) == "SUCCESS":
            return None
        for watcher in self._watchers:
            message = getattr(watcher.local, "message", None)
            if message:
                return str(message)
        return _GENERIC_REASON


def run_bounded(target: Callable[[], object], timeout: float | None, name: str) -> bool:
    """Run ``target`` on a daemon thread and wait at most ``timeout`` seconds; True if it finished.

    Used for exporter and provider shutdowns, which may block on a hung connection: the caller's
    deadline wins and the thread is left to finish (or die with the process).
    """
    done = threading.Event()

    def run() -> None:
        try:
            target()
        except Exception:  # shutdown problems are reported by the caller's own accounting
            pass
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    return done.wait(timeout)


# --- interpreter exit ---------------------------------------------------------------------------------

EXIT_TIMEOUT = 2.0  # seconds per exporter, after at most the same again for the dispatcher to drain
_live: weakref.WeakSet[Any] = weakref.WeakSet()  # the annotation is never evaluated
_exit_hook_installed = False


def shutdown_at_exit(exporter: object) -> None:
    """Shut ``exporter`` down (``exporter.shutdown(timeout)``) at interpreter exit unless it already was.

    Registered after the dispatcher's own exit hook, so it runs first: queued events are delivered,
    then every live exporter gets a bounded chance to send what it holds.
    """
    global _exit_hook_installed
    _live.add(exporter)
    if not _exit_hook_installed:
        _exit_hook_installed = True
        atexit.register(_shutdown_live)


def _shutdown_live() -> None:
    exporters = list(_live)
    if not exporters:
        return
    from nemo_relay._core import dispatch

    if not dispatch.on_dispatcher_thread():
        dispatch.wait_drained(EXIT_TIMEOUT)
    for exporter in exporters:
        with contextlib.suppress(Exception):  # exit must go on; the exporter counted what it lost
            exporter.shutdown(EXIT_TIMEOUT)
