"""ATOF stream sinks: each sink owns a bounded queue and one background worker that delivers to its URL.

The dispatcher thread only appends to the queue (a full queue drops the event and counts it, diagnostic
``atof.stream_dropped``), so a slow or dead endpoint never slows the caller, the file sink or another
stream. The worker speaks one transport (``atof_transports``); failures are logged through the
operational log and counted (``atof.stream_delivery_failed``), never raised.

``flush(deadline)`` waits until everything queued before the call has been handed to the transport;
``shutdown(deadline)`` refuses new events, waits for the queue to drain, closes the transport, and past
the deadline aborts the connection (unblocking the worker) and counts what was left as
``atof.stream_undelivered``. Nothing here waits longer than the deadline it is given.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque

from nemo_relay._core import oplog
from nemo_relay._core.observability.atof_transports import DeliveryFailed, Transport, make_transport

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.diagnostics import RuntimeDiagnostics
    from nemo_relay._core.observability.settings import AtofStreamSinkSettings

__all__ = ["DEFAULT_QUEUE_CAPACITY", "StreamSink"]

DEFAULT_QUEUE_CAPACITY = 8192  # events per sink; beyond it new events are dropped and counted
_TARGET = "nemo_relay.observability"
_COMPONENT = "atof"
_MAX_TIMEOUT_MILLIS = 10**10  # larger values overflow socket timeouts; ~115 days is "forever" here
_RETRY_BACKOFF = (0.05, 2.0)  # websocket reconnect delay: first, maximum (doubling)


class StreamSink:
    """One ATOF stream destination with its own worker thread and bounded queue."""

    def __init__(
        self,
        settings: AtofStreamSinkSettings,
        headers: dict[str, str],
        diagnostics: RuntimeDiagnostics,
        capacity: int = DEFAULT_QUEUE_CAPACITY,
    ) -> None:
        self.index = settings.index
        self.transport_name = settings.transport
        self.timeout = min(settings.timeout_millis, _MAX_TIMEOUT_MILLIS) / 1000
        self.replace_dots = settings.field_name_policy == "replace_dots"
        self.text_items = settings.transport == "websocket"  # websocket sends str messages, others bytes
        self._transport: Transport = make_transport(settings.transport, settings.url, headers, self.timeout)
        self.endpoint = self._transport.endpoint  # scheme://host:port/path: no credentials, no query
        self._diagnostics = diagnostics
        self._capacity = capacity
        self._init_state()
        _track(self)
        self._log("info", "endpoint_started", "ATOF endpoint worker started")

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the worker waits here for items
        self._progress = threading.Condition(self._lock)  # flush/shutdown wait here for the worker
        self._queue: deque[bytes | str] = deque()
        self._thread: threading.Thread | None = None
        self._idle = False  # the worker sleeps on ``_work`` and needs a notify
        self._waiters = 0  # threads waiting on ``_progress``
        self._accepted = 0  # events queued
        self._done = 0  # events the worker finished with (delivered or failed)
        self._failed = 0
        self._dropped = 0
        self._abandoned = 0  # still queued or in flight when shutdown gave up
        self._closing = False  # no new events
        self._stopping = False  # the worker exits once the queue is empty
        self._aborted = False  # the worker exits now
        self._stopped = threading.Event()
        self._reported_drop = False

    @property
    def field(self) -> str:
        """Diagnostic field naming this sink (``sinks[<index>]``)."""
        return f"sinks[{self.index}]"

    # --- dispatcher side ----------------------------------------------------------------------------

    def enqueue(self, item: bytes | str) -> None:
        """Queue one serialised event; O(1), never blocks on I/O, never raises."""
        with self._lock:
            if self._closing:
                return  # events after shutdown are ignored
            if len(self._queue) >= self._capacity:
                self._dropped += 1
                first = not self._reported_drop
                self._reported_drop = True
            else:
                self._queue.append(item)
                self._accepted += 1
                if self._thread is None:
                    self._start()
                elif self._idle:
                    self._work.notify()
                return
        self._diagnostics.record(
            "atof.stream_dropped",
            _COMPONENT,
            f"ATOF {self.transport_name} sink {self.endpoint}: queue full ({self._capacity} events); event dropped",
            field=self.field,
        )
        if first:
            self._log("warn", "endpoint_queue_full", "ATOF endpoint queue is full; dropping events")

    def _start(self) -> None:
        # Under the lock. Started on the first event, so idle sinks cost no thread (and a forked
        # child starts its own).
        name = f"nemo-relay-atof-{self.transport_name}-{self.index}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- worker -------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._stopping and not self._aborted:
                        self._idle = True
                        self._work.wait()
                        self._idle = False
                    if self._aborted or not self._queue:
                        break
                    item = self._queue.popleft()
                ok = self._deliver(item)
                with self._lock:
                    if self._is_aborted():
                        break  # shutdown already counted this one as abandoned
                    self._done += 1
                    if not ok:
                        self._failed += 1
                    if self._waiters:
                        self._progress.notify_all()
            if not self._aborted:
                self._close_transport()
        except BaseException as exc:  # the worker must never die silently
            self._log("error", "endpoint_worker_failed", f"ATOF endpoint worker failed: {type(exc).__name__}")
        finally:
            self._stopped.set()
            with self._lock:
                if self._waiters:
                    self._progress.notify_all()

    def _deliver(self, item: bytes | str) -> bool:
        delay = _RETRY_BACKOFF[0]
        while True:
            try:
                earlier = self._transport.send(item)
            except DeliveryFailed as exc:
                if exc.retry and not self._aborted:
                    # Connection-oriented transport: keep the event and reconnect (the bounded queue
                    # absorbs the backlog; shutdown's deadline ends the retries).
                    self._log("warn", "endpoint_reconnecting", "ATOF endpoint connection failed; reconnecting")
                    with self._lock:
                        if not self._aborted:
                            self._work.wait(delay)
                        if self._is_aborted():
                            return False
                    delay = min(delay * 2, _RETRY_BACKOFF[1])
                    continue
                self._failure(exc, current=1)
                return False
            except Exception as exc:  # a transport bug must cost one event, never the worker
                self._failure(_unexpected(exc), current=1)
                return False
            if earlier:
                self._count_failed(earlier, earlier, "upload failed")
            return True

    def _close_transport(self) -> None:
        try:
            earlier = self._transport.close()
        except DeliveryFailed as exc:
            self._failure(exc, current=0)
            return
        except Exception as exc:
            self._failure(_unexpected(exc), current=0)
            return
        if earlier:
            self._count_failed(earlier, earlier, "upload failed")

    def _failure(self, exc: DeliveryFailed, current: int) -> None:
        # ``current`` (0 or 1) is counted by the worker loop; ``exc.earlier`` events were sent
        # before (ndjson lines of a broken upload) and are only now known lost.
        fields: dict[str, object] = {"reason": exc.reason} if exc.status is None else {"status": exc.status}
        self._log("warn", "endpoint_delivery_failed", exc.summary, **fields)
        why = exc.summary if exc.status is None else f"{exc.summary} (HTTP {exc.status})"
        self._count_failed(exc.earlier, exc.earlier + current, why)

    def _count_failed(self, earlier: int, count: int, why: str) -> None:
        if self._is_aborted():
            return  # shutdown gave up on this sink and counted everything unconfirmed as abandoned
        if earlier:
            with self._lock:
                self._failed += earlier
        if count:
            self._diagnostics.record(
                "atof.stream_delivery_failed",
                _COMPONENT,
                f"ATOF {self.transport_name} sink {self.endpoint}: {why}",
                field=self.field,
                count=count,
            )

    # --- flush and shutdown -------------------------------------------------------------------------

    def flush(self, deadline: float) -> bool:
        """Wait (until ``deadline``, a ``time.monotonic()`` value) for everything queued so far.

        Returns True when it drained in time and no event has been lost so far.
        """
        drained = self._wait_done(deadline)
        if not drained:
            self._log("warn", "endpoint_flush_failed", "ATOF endpoint flush timed out", reason="timeout")
        return drained and self.lost() == 0

    def _wait_done(self, deadline: float) -> bool:
        with self._lock:
            target = self._accepted
            self._waiters += 1
            try:
                while self._done < target and not self._stopped.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._progress.wait(remaining)
            finally:
                self._waiters -= 1
            return self._done >= target

    def begin_shutdown(self) -> None:
        """Refuse new events and let the worker finish the queue and close the transport."""
        with self._lock:
            self._closing = True
            self._stopping = True
            if self._thread is None:
                self._stopped.set()  # never started: nothing to deliver or close
            elif self._idle:
                self._work.notify()

    def finish_shutdown(self, deadline: float) -> str | None:
        """Wait for the worker until ``deadline``, then abort it; returns a problem summary or None."""
        if not self._aborted and not self._stopped.wait(max(0.0, deadline - time.monotonic())):
            self._log("warn", "endpoint_close_failed", "ATOF endpoint close timed out", reason="timeout")
            with self._lock:
                self._aborted = True
                # Still queued, in flight, or sent on an upload whose response never came.
                abandoned = self._accepted - self._done + self._transport.pending()
                self._abandoned = abandoned
                self._queue.clear()
                self._work.notify_all()
            self._transport.abort()  # unblocks a worker stuck in I/O; it exits without counting
            if abandoned:
                self._diagnostics.record(
                    "atof.stream_undelivered",
                    _COMPONENT,
                    f"ATOF {self.transport_name} sink {self.endpoint}: events still queued, in flight or "
                    "unconfirmed when the shutdown deadline passed",
                    field=self.field,
                    count=abandoned,
                )
        return self._problem()

    def _problem(self) -> str | None:
        with self._lock:
            failed, dropped, abandoned, accepted = self._failed, self._dropped, self._abandoned, self._accepted
        lost = failed + dropped + abandoned
        if not lost:
            return None
        parts = [
            f"{n} {what}"
            for n, what in ((failed, "failed"), (dropped, "dropped"), (abandoned, "abandoned at shutdown"))
            if n
        ]
        total = accepted + dropped
        summary = f"{self.field} ({self.transport_name} {self.endpoint}): {lost} of {total} events undelivered"
        return f"{summary} ({', '.join(parts)})"

    def lost(self) -> int:
        """Events that will never be delivered: failed, dropped, or abandoned at shutdown."""
        with self._lock:
            return self._failed + self._dropped + self._abandoned

    def _is_aborted(self) -> bool:
        # A method, not the attribute: another thread sets it while this one waits.
        return self._aborted

    def _log(self, level: str, event: str, message: str, **fields: object) -> None:
        oplog.log(
            level, _TARGET, event, message,
            endpoint_index=self.index, exporter="atof", transport=self.transport_name, **fields,
        )  # fmt: skip

    def _after_fork(self) -> None:
        # The worker and the connection belong to the parent; start over with an empty queue.
        self._transport = self._transport.fresh()
        self._init_state()


def _unexpected(exc: Exception) -> DeliveryFailed:
    # Only the exception type: its text could quote a header value.
    return DeliveryFailed("request_failed", f"ATOF endpoint delivery failed ({type(exc).__name__})")


# --- process-wide bookkeeping: exit drain and fork ------------------------------------------------

_live: weakref.WeakSet[StreamSink] = weakref.WeakSet()
_hooks_installed = False


def _track(sink: StreamSink) -> None:
    global _hooks_installed
    _live.add(sink)
    if not _hooks_installed:
        _hooks_installed = True
        import atexit

        atexit.register(_drain_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)


def _drain_at_exit() -> None:
    # Registered after the dispatcher's own exit hook, so it runs first: drain the dispatcher, then
    # close each sink gracefully (ndjson's last chunk, websocket's close frame) within its own
    # timeout, all in parallel. Daemon workers would otherwise die mid-upload.
    sinks = [sink for sink in list(_live) if not sink._closing and sink._thread is not None]
    if not sinks:
        return
    from nemo_relay._core import dispatch

    if not dispatch.on_dispatcher_thread():
        dispatch.wait_drained(max(sink.timeout for sink in sinks))
    start = time.monotonic()
    for sink in sinks:
        sink.begin_shutdown()
    for sink in sinks:
        sink.finish_shutdown(start + sink.timeout)


def _after_fork_in_child() -> None:
    for sink in list(_live):
        sink._after_fork()
