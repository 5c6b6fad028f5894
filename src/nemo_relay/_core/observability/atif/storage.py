"""Where finished ATIF trajectories go: a local file, an HTTP endpoint, an S3 bucket.

Local files are written where the trajectory is finished (a fast local write). Remote uploads run
on one ``UploadWorker`` thread with a bounded queue, so a slow or dead endpoint never holds up event
delivery; when every remote target fails, or the queue is full, or shutdown runs out of time, a
recovery copy is written to the local directory instead. Failures are reported through a callback
(``report(code, field, message, session_id)``), never raised.

HTTP uses the standard library (``http.client``); S3 needs ``boto3`` (the ``s3`` extra), imported
only when an S3 target is configured.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from nemo_relay._core.observability.settings import HttpStorageSettings, S3StorageSettings

    class RemoteTarget(Protocol):
        """A remote destination: ``send`` raises ``DeliveryError`` with the diagnostic message."""

        index: int

        def send(self, filename: str, session_id: str, body: bytes) -> None: ...

    Report = Callable[[str, str, str, str], None]  # (code, field, message, session_id)

LOCAL_WRITE_FAILED = "atif.local_write_failed"
REMOTE_DELIVERY_FAILED = "atif.remote_delivery_failed"
LOCAL_FALLBACK_FAILED = "atif.local_fallback_failed"
QUEUE_CAPACITY = 64
S3_EXTRA_HINT = "ATIF S3 storage needs boto3: install it with pip install 'nemo-relay-py[s3]'"


class DeliveryError(Exception):
    """A remote target did not accept a trajectory; ``str()`` is the diagnostic message."""


class LocalTarget:
    """Writes trajectories below one directory (``filename`` is a rendered, path-safe relative name)."""

    __slots__ = ("directory",)

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def write(self, filename: str, body: bytes) -> str:
        """Write ``body`` to ``directory/filename`` (parents created, replaced atomically); return the path."""
        path = os.path.join(self.directory, filename)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        partial = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(partial, "wb") as handle:
                handle.write(body)
            os.replace(partial, path)  # readers never see a half-written trajectory
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise
        return path


class HttpTarget:
    """One ``POST`` per trajectory; any 2xx status is success."""

    __slots__ = ("index", "endpoint", "_headers", "_timeout", "_https", "_host", "_port", "_path")

    def __init__(self, settings: HttpStorageSettings) -> None:
        from urllib.parse import urlsplit

        self.index = settings.index
        self.endpoint = settings.endpoint
        self._headers = settings.resolve_headers()  # header_env is read once, at activation
        self._timeout = settings.timeout_millis / 1000
        parts = urlsplit(settings.endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def send(self, filename: str, session_id: str, body: bytes) -> None:
        import http.client

        headers = {
            **self._headers,
            "content-type": "application/json",
            "x-nemo-relay-atif-filename": filename,
            "x-nemo-relay-atif-session-id": session_id,
        }
        connection_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = connection_class(self._host, self._port, timeout=self._timeout)
        try:
            connection.request("POST", self._path, body, headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            raise DeliveryError(f"HTTP ATIF upload to '{self.endpoint}' failed: {error}") from None
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise DeliveryError(
                f"HTTP ATIF upload to '{self.endpoint}' for '{filename}' failed with status "
                f"{response.status} {response.reason}".rstrip()
            )


def _env(name: str | None) -> str | None:
    value = os.environ.get(name) if name else None
    return value if value else None


class S3Target:
    """``PutObject`` of each trajectory at ``key_prefix/filename``; unset settings fall back to ``AWS_*``."""

    __slots__ = ("index", "bucket", "_prefix", "_client")

    def __init__(self, settings: S3StorageSettings) -> None:
        import importlib

        try:  # an optional dependency without type stubs: resolved by name
            boto3 = importlib.import_module("boto3")
            config_class = importlib.import_module("botocore.config").Config
        except ImportError as error:
            raise ImportError(S3_EXTRA_HINT) from error
        self.index = settings.index
        self.bucket = settings.bucket
        prefix = settings.key_prefix or ""
        self._prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        endpoint = settings.endpoint_url or _env("AWS_ENDPOINT_URL")
        allow_http = settings.allow_http
        if allow_http is None:
            allow_http = (_env("AWS_ALLOW_HTTP") or "").strip().lower() in ("1", "true", "yes")
        if endpoint is not None and endpoint.startswith("http://") and not allow_http:
            raise ValueError(f"ATIF S3 endpoint '{endpoint}' uses plain HTTP; set allow_http (or AWS_ALLOW_HTTP=true)")
        secret_var = settings.secret_access_key_var or "AWS_SECRET_ACCESS_KEY"
        token_var = settings.session_token_var or "AWS_SESSION_TOKEN"
        self._client: Any = boto3.client(
            "s3",
            region_name=settings.region or _env("AWS_REGION") or _env("AWS_DEFAULT_REGION"),
            endpoint_url=endpoint,
            aws_access_key_id=settings.access_key_id or _env("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=_env(secret_var),
            aws_session_token=_env(token_var),
            config=config_class(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2}),
        )

    def send(self, filename: str, session_id: str, body: bytes) -> None:
        key = self._prefix + filename
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        except Exception as error:  # botocore raises many unrelated types; all mean "not stored"
            raise DeliveryError(f"S3 ATIF upload to 's3://{self.bucket}/{key}' failed: {error}") from None


def remote_targets(storage: tuple[S3StorageSettings | HttpStorageSettings, ...]) -> list[RemoteTarget]:
    """Build every configured remote target (at activation, so configuration errors surface there)."""
    from nemo_relay._core.observability.settings import HttpStorageSettings

    return [HttpTarget(entry) if isinstance(entry, HttpStorageSettings) else S3Target(entry) for entry in storage]


class _Job:
    __slots__ = ("filename", "session_id", "body", "done")

    def __init__(self, filename: str, session_id: str, body: bytes) -> None:
        self.filename = filename
        self.session_id = session_id
        self.body = body
        self.done = False  # set once delivered or given up on (under the worker's lock)


class UploadWorker:
    """One background thread that uploads trajectories to every remote target, in order."""

    def __init__(
        self, targets: list[RemoteTarget], local: LocalTarget, report: Report, capacity: int = QUEUE_CAPACITY
    ) -> None:
        self._targets = targets
        self._local = local
        self._report = report
        self._queue: queue.Queue[_Job | None] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._current: _Job | None = None
        self._closed = False

    def submit(self, filename: str, session_id: str, body: bytes) -> None:
        """Queue one trajectory; when the queue is full it is kept as a local recovery copy instead."""
        job = _Job(filename, session_id, body)
        with self._lock:
            if self._closed:
                self._give_up(job, "the ATIF uploader is shut down")
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nemo-relay-atif-upload", daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait(job)
                return
            except queue.Full:
                pass
        self._give_up(job, f"the ATIF upload queue is full ({self._queue.maxsize} trajectories)")

    def shutdown(self, timeout: float | None) -> None:
        """Deliver what is queued within ``timeout`` seconds; keep the rest as local recovery copies."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            # A stuck worker may never take it; whatever it has not taken is kept locally below.
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        leftovers: list[_Job] = []
        with self._lock:
            if self._current is not None and not self._current.done:
                leftovers.append(self._current)
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    leftovers.append(job)
            for job in leftovers:
                job.done = True  # a late finish of the job in flight is ignored
            if thread is not None and thread.is_alive():
                with contextlib.suppress(queue.Full):
                    self._queue.put_nowait(None)  # so a worker that is still busy exits when it is done
        for job in leftovers:
            self._give_up(job, "not delivered before the ATIF exporter shut down")

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.done:
                    continue
                self._current = job
            failures = self._send(job)
            if self._settle(job) and failures == len(self._targets):
                self._fallback(job)

    def _settle(self, job: _Job) -> bool:
        """Mark ``job`` finished; False when shutdown already gave up on it (and kept a copy)."""
        with self._lock:
            self._current = None
            if job.done:
                return False
            job.done = True
            return True

    def _send(self, job: _Job) -> int:
        failures = 0
        for target in self._targets:
            try:
                target.send(job.filename, job.session_id, job.body)
            except DeliveryError as error:
                failures += 1
                with self._lock:
                    abandoned = job.done
                if not abandoned:
                    self._report(REMOTE_DELIVERY_FAILED, f"storage[{target.index}]", str(error), job.session_id)
        return failures

    def _give_up(self, job: _Job, reason: str) -> None:
        for target in self._targets:
            self._report(
                REMOTE_DELIVERY_FAILED, f"storage[{target.index}]", f"ATIF trajectory '{job.filename}': {reason}",
                job.session_id,
            )  # fmt: skip
        self._fallback(job)

    def _fallback(self, job: _Job) -> None:
        try:
            self._local.write(job.filename, job.body)
        except OSError as error:
            message = f"could not write the local recovery copy of ATIF trajectory '{job.filename}': {error}"
            self._report(LOCAL_FALLBACK_FAILED, "output_directory", message, job.session_id)
