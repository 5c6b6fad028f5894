"""A bounded batch log-record processor with exact drop accounting and deadline-bound flush/shutdown.

It plugs into the SDK ``LoggerProvider`` like ``BatchLogRecordProcessor`` and keeps its contract
(queue, batch size, schedule delay, one export at a time on a worker thread), with three differences
the runtime needs: a full queue refuses the *new* record and reports it (the SDK silently evicts the
oldest), ``force_flush`` and ``shutdown`` honour their timeouts even while an export hangs, and every
failed export is reported with its reason. Importing this module imports ``opentelemetry-sdk``.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor

from nemo_relay._core.observability.otel.signal_export import ExportReasons, run_bounded

FLUSHED = "flushed"
FAILED = "failed"
TIMED_OUT = "timed_out"
SHUT_DOWN = "shut_down"


class BoundedBatchLogProcessor(LogRecordProcessor):
    """Queue records, export them in batches from a daemon thread, and count every record not exported.

    ``on_dropped(count, reason)`` and ``on_failed(count, reason)`` are called (from any thread, never
    under the lock) for records refused by a full queue / abandoned at shutdown, and for batches whose
    export failed.
    """

    def __init__(
        self,
        exporter: Any,
        *,
        max_queue_size: int,
        max_export_batch_size: int,
        scheduled_delay_millis: int,
        on_dropped: Callable[[int, str], None],
        on_failed: Callable[[int, str], None],
    ) -> None:
        self._exporter = exporter
        self._reasons = ExportReasons(exporter)
        self._max_queue = max_queue_size
        self._max_batch = max_export_batch_size
        self._delay = scheduled_delay_millis / 1000.0
        self._on_dropped = on_dropped
        self._on_failed = on_failed
        self._reset()
        self._closed = False
        self._exporter_closed = False

    def _reset(self) -> None:
        # (Re)built at construction and in a forked child, where the parent's worker does not exist.
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Any] = deque()
        self._accepted = 0  # records ever queued
        self._taken = 0  # records handed to the exporter (or abandoned)
        self._finished = 0  # records whose export attempt completed
        self._flush_target = 0
        self._failures = 0
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- the SDK processor interface ------------------------------------------------------------

    def on_emit(self, log_record: Any) -> None:
        """Queue one record (the SDK calls this from ``Logger.emit``)."""
        self.offer(log_record)

    emit = on_emit  # older SDK releases call ``emit(log_data)``

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued; True if it was exported without failure before the deadline."""
        return self.flush(timeout_millis / 1000.0) == FLUSHED

    def shutdown(self) -> None:
        """Flush, stop the worker and close the exporter (bounded by a default deadline)."""
        self.close(30.0)

    # -- ours -----------------------------------------------------------------------------------

    def offer(self, record: Any) -> bool:
        """Queue ``record``; False (and one drop reported) when the queue is full or closed."""
        with self._cond:
            if self._closed:
                return False
            if self._pid != os.getpid():
                self._reset()
            if len(self._queue) >= self._max_queue:
                full = True
            else:
                full = False
                self._queue.append(record)
                self._accepted += 1
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="nemo-relay-otel-logs", daemon=True)
                    self._thread.start()
                if len(self._queue) >= self._max_batch:
                    self._cond.notify_all()
        if full:
            self._on_dropped(1, "queue_full")
        return not full

    def flush(self, timeout: float | None) -> str:
        """Export every record queued so far; ``FLUSHED``, ``FAILED``, ``TIMED_OUT`` or ``SHUT_DOWN``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return SHUT_DOWN
            return self._wait_for(self._accepted, deadline)

    def close(self, timeout: float | None) -> str:
        """Stop accepting records, export what is queued within ``timeout``, abandon the rest, close the exporter."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return SHUT_DOWN
            self._closed = True
            outcome = self._wait_for(self._accepted, deadline)
            abandoned = len(self._queue)
            self._queue.clear()
            self._taken += abandoned
            self._finished += abandoned
            self._cond.notify_all()  # the worker sees closed + empty and exits
        if abandoned:
            self._on_dropped(abandoned, "shutdown_timeout")
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        # The exporter's own shutdown may wait for an in-flight request; the deadline still wins.
        if not self._exporter_closed:
            self._exporter_closed = True
            if not run_bounded(self._exporter.shutdown, remaining, "nemo-relay-otel-logs-shutdown"):
                outcome = TIMED_OUT
        return outcome

    @property
    def queued(self) -> int:
        """Records waiting for export."""
        with self._cond:
            return len(self._queue)

    def _wait_for(self, target: int, deadline: float | None) -> str:
        # Called with the lock held; the worker exports up to ``target`` and notifies as it finishes.
        failures = self._failures
        if target > self._flush_target:
            self._flush_target = target
            self._cond.notify_all()
        while self._finished < target:
            if self._thread is None:
                break  # nothing was ever queued in this process
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return TIMED_OUT
            self._cond.wait(remaining)
        return FAILED if self._failures > failures else FLUSHED

    def _work(self) -> None:
        next_due = time.monotonic() + self._delay
        while True:
            with self._cond:
                while True:
                    if self._queue and (
                        len(self._queue) >= self._max_batch
                        or self._flush_target > self._taken
                        or self._closed
                        or time.monotonic() >= next_due
                    ):
                        break
                    if self._closed and not self._queue:
                        return
                    self._cond.wait(max(0.0, next_due - time.monotonic()) if self._queue else self._delay)
                    if not self._queue and time.monotonic() >= next_due:
                        next_due = time.monotonic() + self._delay
                count = min(self._max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                self._taken += count
            reason = self._reasons.call(functools.partial(self._exporter.export, batch))
            with self._cond:
                self._finished += count
                if reason is not None:
                    self._failures += 1
                self._cond.notify_all()
            if reason is not None:
                self._on_failed(count, reason)
            if time.monotonic() >= next_due:
                next_due = time.monotonic() + self._delay
