"""A real OTLP/HTTP receiver for tests: a separate process on 127.0.0.1 that stores what exporters send.

Run as a child process (``python otlp_receiver.py --mode ok``) it binds an ephemeral loopback port,
prints ``PORT <n>`` on stdout, and serves:

* ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``: OTLP/HTTP export requests, protobuf
  (``application/x-protobuf``) or JSON (``application/json``), optionally gzip/deflate encoded, decoded
  with ``opentelemetry-proto``'s generated classes. What the receiver does with them depends on its
  *mode*: ``ok`` stores them and answers 200 with an empty export response; ``error500`` stores
  nothing and answers 500; ``hang`` reads the body, records the request and never answers (the
  connection stays open until the receiver stops).
* the query API (always answers, whatever the mode), JSON bodies:

  ==========================  ================================================================
  ``GET /_stored/traces``     ``[span]``: ``trace_id``, ``span_id``, ``parent_span_id`` (lowercase
                              hex; ``""`` when no parent), ``name``, ``kind`` (``INTERNAL``,
                              ``SERVER``, ``CLIENT``, ``PRODUCER``, ``CONSUMER``, ``UNSPECIFIED``),
                              ``start_time_unix_nano``, ``end_time_unix_nano``, ``attributes``,
                              ``status`` (``{"code": "UNSET"|"OK"|"ERROR", "message"}``), ``events``
                              (``[{name, time_unix_nano, attributes}]``), ``links``
                              (``[{trace_id, span_id, attributes}]``), ``flags``, ``trace_state``,
                              ``resource`` (attributes), ``scope`` (``{name, version}``)
  ``GET /_stored/logs``       ``[record]``: ``time_unix_nano``, ``observed_time_unix_nano``,
                              ``severity_number``, ``severity_text``, ``body`` (decoded; absent →
                              ``null``), ``has_body``, ``attributes``, ``trace_id``, ``span_id``
                              (hex, ``""`` when unset), ``flags``, ``event_name``, ``resource``,
                              ``scope``
  ``GET /_stored/metrics``    ``[metric]``: ``name``, ``description``, ``unit``, ``type`` (``sum``,
                              ``gauge``, ``histogram``, ``exponential_histogram``, ``summary``),
                              ``is_monotonic`` (sums), ``temporality`` (``DELTA``, ``CUMULATIVE``,
                              ``UNSPECIFIED``; sums and histograms), ``data_points``, ``resource``,
                              ``scope``. Number points: ``attributes``, ``start_time_unix_nano``,
                              ``time_unix_nano``, ``value`` (int for ``as_int``, float for
                              ``as_double``), ``value_kind`` (``int``/``double``). Histogram points:
                              ``attributes``, times, ``count``, ``sum``, ``min``, ``max``,
                              ``bucket_counts``, ``explicit_bounds``. One entry per metric per
                              export request (periodic readers export the same metric repeatedly).
  ``GET /_stored/requests``   ``[{path, content_type, content_encoding, headers, status, bytes}]`` in
                              arrival order (``status`` is ``null`` for hung requests)
  ``POST /_control/mode``     body ``{"mode": "ok"|"error500"|"hang"}``: switch the fault mode
  ``POST /_control/reset``    forget everything stored
  ==========================  ================================================================

  Attribute values are decoded from ``AnyValue``: strings, bools, ints, doubles, arrays → lists,
  kvlists → dicts, bytes → ``{"bytes_hex": ...}``.

The receiver exits when its stdin closes, so a test process that dies does not leave it behind.

Test side (``tests/observability/conftest.py`` provides these fixtures):

* ``otlp_receiver`` — an :class:`OtlpReceiver` in mode ``ok``;
* ``otlp_receiver_factory`` — ``factory(mode="ok") -> OtlpReceiver``; every receiver made is stopped
  at teardown;
* ``refused_endpoint`` — ``"http://127.0.0.1:<port>"`` where nothing listens (connection refused);
* ``hanging_otlp_receiver`` / ``failing_otlp_receiver`` — receivers in mode ``hang`` / ``error500``.

Without the fixtures: ``OtlpReceiver.start(mode="ok", python=None)`` (``python``: interpreter for the
child, default this one; it needs ``opentelemetry-proto``) or ``with OtlpReceiver(mode) as r: ...``.
For OTLP/gRPC there is an in-process collector in ``support/otlp_grpc.py`` (``GrpcCollector``).

:class:`OtlpReceiver` attributes and methods: ``endpoint`` (``http://127.0.0.1:<port>``),
``traces_url``, ``logs_url``, ``metrics_url``, ``spans()``, ``logs()``, ``metrics()``, ``requests()``,
``stored(signal)``,
``wait_for(signal, predicate=None, timeout=10.0)`` (polls until ``predicate(items)`` is true, or
``items`` is non-empty; returns the items; raises ``AssertionError`` on timeout), ``set_mode(mode)``,
``reset()``, ``stop()``; also a context manager. :func:`closed_port_endpoint` gives a refusing URL.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "error500", "hang")
SIGNALS = ("traces", "logs", "metrics")
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0


# --------------------------------------------------------------------------------------------------
# Test side
# --------------------------------------------------------------------------------------------------


class OtlpReceiver:
    """A handle on a receiver child process; ``start()`` returns once it listens."""

    def __init__(self, mode: str = "ok", python: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown receiver mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.port = 0
        self._python = python or sys.executable
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, mode: str = "ok", python: str | None = None) -> OtlpReceiver:
        """Spawn a receiver in ``mode`` and wait (bounded) until it reports its port.

        ``python`` is the interpreter for the child (default: this one); it needs ``opentelemetry-proto``.
        """
        receiver = cls(mode, python)
        receiver._spawn()
        return receiver

    def _spawn(self) -> None:
        process = subprocess.Popen(
            [self._python, "-u", os.path.abspath(__file__), "--mode", self.mode],
            stdin=subprocess.PIPE,  # closed by stop() or by our death: the child exits on EOF
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                self.stop()
                raise RuntimeError(f"OTLP receiver did not start (mode={self.mode}, rc={process.returncode})")
            ready, _, _ = select.select([process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(process.stdout.fileno(), 1)
                if not chunk:
                    continue
                line += chunk
        text = line.decode().strip()
        if not text.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"OTLP receiver sent an unexpected greeting: {text!r}")
        self.port = int(text.split()[1])

    # -- addresses ------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        """The OTLP/HTTP traces URL."""
        return f"{self.endpoint}/v1/traces"

    @property
    def logs_url(self) -> str:
        """The OTLP/HTTP logs URL."""
        return f"{self.endpoint}/v1/logs"

    @property
    def metrics_url(self) -> str:
        """The OTLP/HTTP metrics URL."""
        return f"{self.endpoint}/v1/metrics"

    # -- query API ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.endpoint}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def spans(self) -> list[dict[str, Any]]:
        """Every stored span."""
        return list(self._call("GET", "/_stored/traces"))

    def logs(self) -> list[dict[str, Any]]:
        """Every stored log record."""
        return list(self._call("GET", "/_stored/logs"))

    def metrics(self) -> list[dict[str, Any]]:
        """Every stored metric (one entry per metric per export request)."""
        return list(self._call("GET", "/_stored/metrics"))

    def requests(self) -> list[dict[str, Any]]:
        """Every OTLP request received, stored or not."""
        return list(self._call("GET", "/_stored/requests"))

    def stored(self, signal: str) -> list[dict[str, Any]]:
        """Stored items of ``signal`` (``traces``, ``logs``, ``metrics`` or ``requests``)."""
        return list(self._call("GET", f"/_stored/{signal}"))

    def wait_for(
        self,
        signal: str,
        predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Poll ``signal`` until ``predicate(items)`` holds (default: any item); return the items."""
        deadline = time.monotonic() + timeout
        while True:
            items = self.stored(signal)
            if predicate(items) if predicate is not None else items:
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: {signal} condition not met within {timeout}s; have {items!r}")
            time.sleep(0.05)

    def set_mode(self, mode: str) -> None:
        """Switch the fault mode of a running receiver."""
        if mode not in MODES:
            raise ValueError(f"unknown receiver mode {mode!r}")
        self._call("POST", "/_control/mode", {"mode": mode})
        self.mode = mode

    def reset(self) -> None:
        """Forget every stored item and request."""
        self._call("POST", "/_control/reset", {})

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the child process still runs."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Stop the child: close its stdin, then terminate, then kill (each step bounded)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        for step in (None, process.terminate, process.kill):
            if step is not None:
                with contextlib.suppress(OSError):
                    step()
            try:
                process.wait(timeout=_STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> OtlpReceiver:
        if self._process is None:
            self._spawn()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def closed_port_endpoint() -> str:
    """``http://127.0.0.1:<port>`` for a port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------------------------------
# Receiver side (the child process)
# --------------------------------------------------------------------------------------------------


def _hex(raw: bytes) -> str:
    return raw.hex()


def _any_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return {"bytes_hex": value.bytes_value.hex()}
    return getattr(value, which)


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in items}


def _scope(scope: Any) -> dict[str, Any]:
    return {"name": scope.name, "version": scope.version, "attributes": _attributes(scope.attributes)}


_SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_TEMPORALITY = {0: "UNSPECIFIED", 1: "DELTA", 2: "CUMULATIVE"}


def _decode_traces(request: Any) -> list[dict[str, Any]]:
    out = []
    for rs in request.resource_spans:
        resource = _attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = _scope(ss.scope)
            for span in ss.spans:
                out.append(
                    {
                        "trace_id": _hex(span.trace_id),
                        "span_id": _hex(span.span_id),
                        "parent_span_id": _hex(span.parent_span_id),
                        "name": span.name,
                        "kind": _SPAN_KINDS.get(span.kind, str(span.kind)),
                        "start_time_unix_nano": span.start_time_unix_nano,
                        "end_time_unix_nano": span.end_time_unix_nano,
                        "attributes": _attributes(span.attributes),
                        "status": {
                            "code": _STATUS.get(span.status.code, str(span.status.code)),
                            "message": span.status.message,
                        },
                        "events": [
                            {
                                "name": e.name,
                                "time_unix_nano": e.time_unix_nano,
                                "attributes": _attributes(e.attributes),
                            }
                            for e in span.events
                        ],
                        "links": [
                            {
                                "trace_id": _hex(li.trace_id),
                                "span_id": _hex(li.span_id),
                                "attributes": _attributes(li.attributes),
                            }
                            for li in span.links
                        ],
                        "flags": span.flags,
                        "trace_state": span.trace_state,
                        "resource": resource,
                        "scope": scope,
                    }
                )
    return out


def _decode_logs(request: Any) -> list[dict[str, Any]]:
    out = []
    for rl in request.resource_logs:
        resource = _attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            scope = _scope(sl.scope)
            for record in sl.log_records:
                has_body = record.HasField("body") and record.body.WhichOneof("value") is not None
                out.append(
                    {
                        "time_unix_nano": record.time_unix_nano,
                        "observed_time_unix_nano": record.observed_time_unix_nano,
                        "severity_number": record.severity_number,
                        "severity_text": record.severity_text,
                        "body": _any_value(record.body) if has_body else None,
                        "has_body": has_body,
                        "attributes": _attributes(record.attributes),
                        "trace_id": _hex(record.trace_id),
                        "span_id": _hex(record.span_id),
                        "flags": record.flags,
                        "event_name": getattr(record, "event_name", ""),
                        "resource": resource,
                        "scope": scope,
                    }
                )
    return out


def _number_point(point: Any) -> dict[str, Any]:
    which = point.WhichOneof("value")
    value = point.as_int if which == "as_int" else point.as_double
    return {
        "attributes": _attributes(point.attributes),
        "start_time_unix_nano": point.start_time_unix_nano,
        "time_unix_nano": point.time_unix_nano,
        "value": value,
        "value_kind": "int" if which == "as_int" else "double",
    }


def _histogram_point(point: Any) -> dict[str, Any]:
    return {
        "attributes": _attributes(point.attributes),
        "start_time_unix_nano": point.start_time_unix_nano,
        "time_unix_nano": point.time_unix_nano,
        "count": point.count,
        "sum": point.sum if point.HasField("sum") else None,
        "min": point.min if point.HasField("min") else None,
        "max": point.max if point.HasField("max") else None,
        "bucket_counts": list(point.bucket_counts),
        "explicit_bounds": list(point.explicit_bounds),
    }


def _decode_metrics(request: Any) -> list[dict[str, Any]]:
    out = []
    for rm in request.resource_metrics:
        resource = _attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            scope = _scope(sm.scope)
            for metric in sm.metrics:
                which = metric.WhichOneof("data")
                entry: dict[str, Any] = {
                    "name": metric.name,
                    "description": metric.description,
                    "unit": metric.unit,
                    "type": which,
                    "resource": resource,
                    "scope": scope,
                }
                data = getattr(metric, which) if which else None
                if which == "sum":
                    entry["is_monotonic"] = data.is_monotonic
                    entry["temporality"] = _TEMPORALITY.get(data.aggregation_temporality, "?")
                    entry["data_points"] = [_number_point(p) for p in data.data_points]
                elif which == "gauge":
                    entry["data_points"] = [_number_point(p) for p in data.data_points]
                elif which == "histogram":
                    entry["temporality"] = _TEMPORALITY.get(data.aggregation_temporality, "?")
                    entry["data_points"] = [_histogram_point(p) for p in data.data_points]
                elif which == "exponential_histogram":
                    entry["temporality"] = _TEMPORALITY.get(data.aggregation_temporality, "?")
                    entry["data_points"] = [
                        {"attributes": _attributes(p.attributes), "count": p.count, "sum": p.sum}
                        for p in data.data_points
                    ]
                else:
                    entry["data_points"] = []
                out.append(entry)
    return out


class _Store:
    def __init__(self, mode: str) -> None:
        self.lock = threading.Lock()
        self.mode = mode
        self.items: dict[str, list[dict[str, Any]]] = {name: [] for name in (*SIGNALS, "requests")}
        self.release = threading.Event()  # set at exit so hung handlers can finish


def _codec(signal: str) -> tuple[Any, Any, Callable[[Any], list[dict[str, Any]]]]:
    # Imported here so the test side of this module does not need opentelemetry-proto.
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb

        return pb.ExportTraceServiceRequest, pb.ExportTraceServiceResponse, _decode_traces
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb_logs

        return pb_logs.ExportLogsServiceRequest, pb_logs.ExportLogsServiceResponse, _decode_logs
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb_metrics

    return pb_metrics.ExportMetricsServiceRequest, pb_metrics.ExportMetricsServiceResponse, _decode_metrics


def _make_handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value: Any, status: int = 200) -> None:
            self._reply(status, json.dumps(value).encode(), "application/json")

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            return raw

        def do_GET(self) -> None:
            prefix = "/_stored/"
            if self.path.startswith(prefix) and self.path[len(prefix) :] in store.items:
                with store.lock:
                    snapshot = list(store.items[self.path[len(prefix) :]])
                self._json(snapshot)
            else:
                self._json({"error": "not found"}, 404)

        def do_POST(self) -> None:
            if self.path.startswith("/_control/"):
                body = json.loads(self._body() or b"{}")
                with store.lock:
                    if self.path == "/_control/mode" and body.get("mode") in MODES:
                        store.mode = body["mode"]
                    elif self.path == "/_control/reset":
                        for items in store.items.values():
                            items.clear()
                    else:
                        self._json({"error": "bad control request"}, 400)
                        return
                self._json({"mode": store.mode})
                return
            signal = self.path.split("?", 1)[0].removeprefix("/v1/")
            if signal not in SIGNALS:
                self._json({"error": "not found"}, 404)
                return
            raw = self._body()
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            with store.lock:
                mode = store.mode
                request_record: dict[str, Any] = {
                    "path": self.path,
                    "content_type": content_type,
                    "content_encoding": self.headers.get("Content-Encoding"),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "status": None,
                    "bytes": len(raw),
                }
                store.items["requests"].append(request_record)
            if mode == "hang":
                store.release.wait()
                return
            if mode == "error500":
                request_record["status"] = 500
                self._reply(500, b"injected failure", "text/plain")
                return
            request_type, response_type, decode = _codec(signal)
            message = request_type()
            try:
                if content_type == "application/json":
                    from google.protobuf import json_format

                    json_format.Parse(raw, message)
                else:
                    message.ParseFromString(raw)
            except Exception as exc:
                request_record["status"] = 400
                self._reply(400, f"undecodable body: {exc}".encode(), "text/plain")
                return
            decoded = decode(message)
            with store.lock:
                store.items[signal].extend(decoded)
                request_record["status"] = 200
            if content_type == "application/json":
                self._reply(200, b"{}", "application/json")
            else:
                self._reply(200, response_type().SerializeToString(), "application/x-protobuf")

    return Handler


def _serve(mode: str) -> None:
    store = _Store(mode)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(store))
    server.daemon_threads = True  # hung handlers must not keep the process alive

    def watch_parent() -> None:
        # EOF on stdin means the test process stopped us or died: exit without waiting for anyone.
        while sys.stdin.buffer.read(65536):
            pass
        store.release.set()
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.1)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``otlp_receiver.py [--mode ok|error500|hang]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args(argv)
    _serve(args.mode)


if __name__ == "__main__":
    main()

__all__ = ["MODES", "OtlpReceiver", "closed_port_endpoint", "main"]
