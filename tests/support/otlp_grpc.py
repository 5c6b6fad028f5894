"""An in-process OTLP/gRPC collector for tests (logs, metrics and traces services on 127.0.0.1).

``GrpcCollector.start()`` binds an ephemeral port; ``endpoint`` is ``http://127.0.0.1:<port>`` (plain
text); ``logs()``, ``metrics()`` and ``spans()`` return what was exported, decoded like the HTTP
receiver's query API (see ``otlp_receiver``); ``stop()`` ends it. Needs ``grpcio``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

from .otlp_receiver import _decode_logs, _decode_metrics, _decode_traces


class GrpcCollector:
    """Stores every export it receives; answers OK."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, list[dict[str, Any]]] = {"logs": [], "metrics": [], "traces": []}
        self.metadata: list[dict[str, str]] = []
        self._server: Any = None
        self.port = 0

    @classmethod
    def start(cls) -> GrpcCollector:
        """Serve on an ephemeral loopback port."""
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        collector = cls()
        store = collector._store

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                store("logs", _decode_logs(request), context)
                return logs_service_pb2.ExportLogsServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                store("metrics", _decode_metrics(request), context)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                store("traces", _decode_traces(request), context)
                return trace_service_pb2.ExportTraceServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        collector.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        collector._server = server
        return collector

    def _store(self, signal: str, items: list[dict[str, Any]], context: Any) -> None:
        with self._lock:
            self._items[signal].extend(items)
            self.metadata.append(dict(context.invocation_metadata()))

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>`` (the scheme makes exporters use plain text)."""
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> list[dict[str, Any]]:
        """Stored log records."""
        with self._lock:
            return list(self._items["logs"])

    def metrics(self) -> list[dict[str, Any]]:
        """Stored metrics."""
        with self._lock:
            return list(self._items["metrics"])

    def spans(self) -> list[dict[str, Any]]:
        """Stored spans."""
        with self._lock:
            return list(self._items["traces"])

    def wait_for(
        self, signal: str, predicate: Callable[[list[dict[str, Any]]], bool] | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll until ``predicate(items)`` (default: non-empty) holds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                items = list(self._items[signal])
            if predicate(items) if predicate is not None else items:
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"gRPC collector: {signal} condition not met within {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving (bounded)."""
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
