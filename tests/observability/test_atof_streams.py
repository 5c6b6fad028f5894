"""ATOF stream sinks against real loopback endpoints: http_post, ndjson, websocket, and failing endpoints.

Servers bind 127.0.0.1:0 in this process and are stopped at teardown. Timing is only asserted as a
generous upper bound where the behaviour is a deadline (shutdown).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nemo_relay
from nemo_relay import AtofExporter, AtofExporterConfig, scope, subscribers
from nemo_relay._core import oplog
from nemo_relay._core.diagnostics import RuntimeDiagnostics
from nemo_relay._core.observability.atof import AtofFanout, build_sinks
from nemo_relay._core.observability.atof_wire import replace_dots
from nemo_relay._core.observability.settings import AtofFileSinkSettings, AtofStreamSinkSettings

SHUTDOWN_BOUND = 2.0  # seconds; the pinned "< 2 s" (deadlines here are 0.3 s, so there is plenty of slack)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- loopback endpoints ----------------------------------------------------------------------------


class Recorder:
    """A threaded HTTP server recording every POST; ``mode``: ok | error500 | gate (respond after ``release``)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.release = threading.Event()
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                record: dict[str, Any] = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "chunks": [],
                    "complete": False,
                }
                recorder.requests.append(record)
                if self.headers.get("Transfer-Encoding") == "chunked":
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        record["chunks"].append(self.rfile.read(size))
                        self.rfile.readline()
                else:
                    record["chunks"].append(self.rfile.read(int(self.headers["Content-Length"])))
                record["body"] = b"".join(record["chunks"])
                record["complete"] = True
                if recorder.mode == "gate":
                    recorder.release.wait(30)
                self.send_response(500 if recorder.mode == "error500" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ingest"

    def bodies(self) -> list[bytes]:
        return [r["body"] for r in self.requests if r["complete"]]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Hanging:
    """A TCP listener that accepts connections and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def server_factory() -> Iterator[Callable[[str], Recorder]]:
    started: list[Recorder] = []

    def make(mode: str = "ok") -> Recorder:
        server = Recorder(mode)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    endpoint = Hanging()
    yield endpoint
    endpoint.stop()


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stream_exporter(url: str, transport: str = "http_post", **fields: Any) -> AtofExporter:
    config = AtofExporterConfig()
    config.sink_type = "stream"
    config.url = url
    config.transport = transport
    for name, value in fields.items():
        setattr(config, name, value)
    return AtofExporter(config)


def three_events() -> None:
    handle = scope.push("agent", nemo_relay.ScopeType.Agent, metadata={"service.name": "relay"})
    scope.event("checkpoint", data={"step": 1})
    scope.pop(handle)


def registered(fanout: AtofFanout, name: str) -> Callable[[], None]:
    subscribers.register(name, fanout.deliver)
    return lambda: subscribers.deregister(name) and None  # type: ignore[func-returns-value]


# --- happy paths -----------------------------------------------------------------------------------


def test_http_post_one_request_per_event_with_snapshotted_header_env(
    server_factory: Callable[[str], Recorder], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_factory("ok")
    monkeypatch.setenv("ATOF_TEST_TOKEN", "Bearer relay-499")
    oplog.init_from_env({"NEMO_RELAY_LOG": "debug"})
    try:
        exporter = stream_exporter(
            server.url, headers={"X-Custom": "yes"}, header_env={"Authorization": "ATOF_TEST_TOKEN"}
        )
        monkeypatch.delenv("ATOF_TEST_TOKEN")  # resolved once, when the exporter was built
        exporter.register("atof-http")
        three_events()
        exporter.force_flush()
        exporter.shutdown()
        exporter.deregister("atof-http")
        logged = capsys.readouterr().err
    finally:
        oplog.reset_for_tests()
    bodies = server.bodies()
    assert len(bodies) == 3
    assert all(body.endswith(b"\n") and body.count(b"\n") == 1 for body in bodies)
    assert b'"scope_category":"start"' in bodies[0] and b'"name":"checkpoint"' in bodies[1]
    assert b'"scope_category":"end"' in bodies[2]
    assert json.loads(bodies[0])["metadata"] == {"service.name": "relay"}  # preserve policy keeps dots
    for request in server.requests:
        assert request["path"] == "/ingest"
        assert request["headers"]["content-type"] == "application/x-ndjson"
        assert request["headers"]["authorization"] == "Bearer relay-499"
        assert request["headers"]["x-custom"] == "yes"
    assert "endpoint_started" in logged and "relay-499" not in logged
    assert "relay-499" not in repr(exporter._fanout.diagnostics.entries())


def test_ndjson_is_one_streaming_upload(server_factory: Callable[[str], Recorder]) -> None:
    server = server_factory("ok")
    exporter = stream_exporter(server.url, "ndjson", headers={"x-stream": "1"})
    exporter.register("atof-ndjson")
    try:
        three_events()
        exporter.force_flush()
        wait_until(lambda: server.requests and len(server.requests[0]["chunks"]) == 3)  # before shutdown
        assert not server.requests[0]["complete"]  # still one open upload
    finally:
        exporter.shutdown()
        exporter.deregister("atof-ndjson")
    (request,) = server.requests
    assert request["complete"]
    assert request["headers"]["transfer-encoding"] == "chunked"
    assert request["headers"]["content-type"] == "application/x-ndjson"
    assert request["headers"]["x-stream"] == "1"
    lines = request["body"].decode().splitlines()
    assert [json.loads(line).get("scope_category", "mark") for line in lines] == ["start", "mark", "end"]
    assert all(chunk.endswith(b"\n") and chunk.count(b"\n") == 1 for chunk in request["chunks"])


def test_websocket_sends_one_text_message_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    from websockets.sync.server import serve

    messages: list[object] = []
    headers: dict[str, str] = {}
    closed = threading.Event()

    def handler(ws: Any) -> None:
        headers.update({k.lower(): v for k, v in ws.request.headers.raw_items()})
        for message in ws:
            messages.append(message)
        closed.set()

    monkeypatch.setenv("ATOF_WS_TOKEN", "ws-secret")
    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        exporter = stream_exporter(
            f"ws://127.0.0.1:{port}/events", "websocket", header_env={"authorization": "ATOF_WS_TOKEN"}
        )
        exporter.register("atof-ws")
        try:
            three_events()
            exporter.force_flush()
            wait_until(lambda: len(messages) == 3)
        finally:
            exporter.shutdown()
            exporter.deregister("atof-ws")
        assert closed.wait(5)  # shutdown closed the connection
        server.shutdown()
    assert all(isinstance(m, str) and not m.endswith("\n") for m in messages)
    assert [json.loads(m).get("scope_category", "mark") for m in messages] == ["start", "mark", "end"]  # type: ignore[arg-type]
    assert headers["authorization"] == "ws-secret"


def test_replace_dots_applies_to_streams_only(server_factory: Callable[[str], Recorder], tmp_path: Any) -> None:
    server = server_factory("ok")
    sinks = [
        AtofFileSinkSettings(0, str(tmp_path), "events.jsonl"),
        AtofStreamSinkSettings(1, server.url, field_name_policy="replace_dots"),
    ]
    fanout = build_sinks(sinks, RuntimeDiagnostics())
    undo = registered(fanout, "atof-dots")
    try:
        metadata = {"service.name": "relay", "nested": {"deployment.region": "us-east"}}
        scope.event("m", data={"a.b": [{"c.d": 1}]}, metadata=metadata)
        assert subscribers.flush(10)
    finally:
        undo()
        assert fanout.shutdown().ok
    streamed = json.loads(server.bodies()[0])
    assert streamed["metadata"] == {"service_name": "relay", "nested": {"deployment_region": "us-east"}}
    assert streamed["data"] == {"a_b": [{"c_d": 1}]}
    written = json.loads((tmp_path / "events.jsonl").read_text())
    assert written["metadata"] == metadata and written["data"] == {"a.b": [{"c.d": 1}]}


def test_replace_dots_collisions_match_the_reference() -> None:
    assert replace_dots({"service.name": 1, "service_name": 2}) == {"service_name": 1, "service_name_2": 2}
    given = {"a.b": 1, "a_b": 2, "a_b_2": 3, "z.a": 4, "b": 5, "a.b.c": 6, "a_b.c": 7, "a_b_c": 8, "é.x": 9}
    given |= {"Z.y": 10, "list": [{"k.k": 1, "k_k": 2}], ".": 11, "_": 12}
    # Captured from the reference's http_post body for the same metadata.
    expected = {"Z_y": 10, "_": 11, "__2": 12, "a_b": 1, "a_b_2": 2, "a_b_2_2": 3, "a_b_c": 6, "a_b_c_2": 7}
    expected |= {"a_b_c_3": 8, "b": 5, "list": [{"k_k": 1, "k_k_2": 2}], "z_a": 4, "é_x": 9}
    out = replace_dots(given)
    assert out == expected and list(out) != sorted(out)  # serialised with sorted keys afterwards


# --- failing endpoints -----------------------------------------------------------------------------


def test_error_status_is_counted_and_reported(server_factory: Callable[[str], Recorder]) -> None:
    server = server_factory("error500")
    diagnostics = RuntimeDiagnostics()
    fanout = build_sinks([AtofStreamSinkSettings(2, server.url, timeout_millis=1000)], diagnostics)
    undo = registered(fanout, "atof-500")

    async def caller() -> object:
        with scope.scope("agent", nemo_relay.ScopeType.Agent):
            return await nemo_relay.tools.execute("t", {"x": 1}, lambda a: nemo_relay.ToolExecutionResult("ok"))

    try:
        result = asyncio.run(caller())
        assert subscribers.flush(10)
    finally:
        undo()
    assert result.result == "ok"  # type: ignore[attr-defined]  # the caller never sees the endpoint
    assert fanout.force_flush() is False
    teardown = fanout.shutdown()
    assert len(server.requests) == 4
    entry = diagnostics.get("atof.stream_delivery_failed")
    assert entry is not None and entry["count"] == 4 and entry["field"] == "sinks[2]"
    assert teardown.status == "removed_with_error"
    assert "sinks[2] (http_post http://127.0.0.1:" in (teardown.message or "")
    assert "4 of 4 events undelivered (4 failed)" in (teardown.message or "")


@pytest.mark.parametrize("transport", ["http_post", "ndjson", "websocket"])
def test_refused_endpoint_never_blocks_and_is_reported(transport: str) -> None:
    scheme = "ws" if transport == "websocket" else "http"
    url = f"{scheme}://127.0.0.1:{refused_port()}/x"
    diagnostics = RuntimeDiagnostics()
    fanout = build_sinks([AtofStreamSinkSettings(0, url, transport=transport, timeout_millis=300)], diagnostics)
    undo = registered(fanout, "atof-refused")
    try:
        start = time.perf_counter()
        three_events()
        emitted = time.perf_counter() - start
        assert subscribers.flush(10)
    finally:
        undo()
    started = time.monotonic()
    teardown = fanout.shutdown()
    assert time.monotonic() - started < SHUTDOWN_BOUND
    assert emitted < 1.0  # generous: emitting never waits for the endpoint
    assert teardown.status == "removed_with_error" and "3 of 3 events undelivered" in (teardown.message or "")
    lost = diagnostics.count("atof.stream_delivery_failed") + diagnostics.count("atof.stream_undelivered")
    assert lost == 3


@pytest.mark.parametrize("transport", ["http_post", "ndjson", "websocket"])
def test_hanging_endpoint_shutdown_keeps_its_deadline(transport: str, hanging: Hanging) -> None:
    scheme = "ws" if transport == "websocket" else "http"
    url = f"{scheme}://127.0.0.1:{hanging.port}/x"
    diagnostics = RuntimeDiagnostics()
    fanout = build_sinks([AtofStreamSinkSettings(0, url, transport=transport, timeout_millis=300)], diagnostics)
    undo = registered(fanout, "atof-hang")
    try:
        three_events()
        assert subscribers.flush(10)
    finally:
        undo()
    started = time.monotonic()
    teardown = fanout.shutdown()
    elapsed = time.monotonic() - started
    assert elapsed < SHUTDOWN_BOUND
    assert teardown.status == "removed_with_error"
    assert "3 of 3 events undelivered" in (teardown.message or "")
    scope.event("after-shutdown")  # ignored, and nothing blocks
    assert subscribers.flush(10)


def test_blocked_response_released_when_teardown_starts(
    server_factory: Callable[[str], Recorder], tmp_path: Any
) -> None:
    # Pinned: the endpoint holds its response until teardown begins; teardown still finishes well
    # under 2 s and both sinks hold all three events.
    server = server_factory("gate")
    sinks = [
        AtofFileSinkSettings(0, str(tmp_path), "events.jsonl", "overwrite"),
        AtofStreamSinkSettings(1, server.url, field_name_policy="replace_dots"),
    ]
    fanout = build_sinks(sinks, RuntimeDiagnostics())
    undo = registered(fanout, "atof-gate")
    try:
        three_events()
        assert subscribers.flush(10)
        wait_until(lambda: len(server.requests) == 1)  # the first POST is waiting for its answer
    finally:
        undo()
    started = time.monotonic()
    threading.Timer(0.1, server.release.set).start()  # the server notices teardown has started
    teardown = fanout.shutdown()
    assert time.monotonic() - started < SHUTDOWN_BOUND
    assert teardown.ok, teardown.message
    assert len(server.bodies()) == 3
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 3


def test_bounded_queue_drops_are_counted_exactly(hanging: Hanging) -> None:
    diagnostics = RuntimeDiagnostics()
    url = f"http://127.0.0.1:{hanging.port}/x"
    fanout = build_sinks([AtofStreamSinkSettings(0, url, timeout_millis=5000)], diagnostics, queue_capacity=4)
    recorded: list[Any] = []
    subscribers.register("atof-sample", recorded.append)
    try:
        for i in range(11):
            scope.event(f"m{i}")
        assert subscribers.flush(10)
    finally:
        subscribers.deregister("atof-sample")
    fanout.deliver(recorded[0])
    wait_until(lambda: len(hanging.connections) == 1)  # the worker holds event 0 in flight
    for event in recorded[1:]:
        fanout.deliver(event)  # 4 fit in the queue, 6 are dropped
    started = time.monotonic()
    teardown = fanout.shutdown(timeout=0.3)
    assert time.monotonic() - started < SHUTDOWN_BOUND
    assert diagnostics.count("atof.stream_dropped") == 6
    assert diagnostics.count("atof.stream_undelivered") == 5
    assert "11 of 11 events undelivered (6 dropped, 5 abandoned at shutdown)" in (teardown.message or "")


def test_events_after_shutdown_are_ignored(server_factory: Callable[[str], Recorder]) -> None:
    server = server_factory("ok")
    fanout = build_sinks([AtofStreamSinkSettings(0, server.url)], RuntimeDiagnostics())
    undo = registered(fanout, "atof-after")
    try:
        scope.event("before")
        assert subscribers.flush(10)
        assert fanout.shutdown().ok
        scope.event("after")
        assert subscribers.flush(10)
    finally:
        undo()
    assert [json.loads(b)["name"] for b in server.bodies()] == ["before"]


def test_missing_websocket_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "websockets.sync.client", None)
    with pytest.raises(RuntimeError, match=r"pip install 'nemo-relay-py\[websocket\]'"):
        stream_exporter("ws://127.0.0.1:9/x", "websocket")


def test_unset_header_env_at_activation_fails_without_leaking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATOF_TEST_GONE", raising=False)
    settings = AtofStreamSinkSettings(4, "http://127.0.0.1:9/x", header_env={"authorization": "ATOF_TEST_GONE"})
    with pytest.raises(RuntimeError, match=r"sinks\[4\].*ATOF_TEST_GONE"):
        build_sinks([settings], RuntimeDiagnostics())


EXIT_SCRIPT = """
import sys
import nemo_relay
from nemo_relay import AtofExporter, AtofExporterConfig, scope
config = AtofExporterConfig()
config.sink_type = "stream"
config.url = sys.argv[1]
config.transport = "ndjson"
exporter = AtofExporter(config)
exporter.register("exit")
for name in ("a", "b", "c"):
    scope.event(name)
# no force_flush, no shutdown: the exit hook must finish the upload
"""


def test_interpreter_exit_finishes_an_open_ndjson_upload(server_factory: Callable[[str], Recorder]) -> None:
    import subprocess

    server = server_factory("ok")
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, server.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: server.requests and server.requests[0]["complete"])
    assert [json.loads(line)["name"] for line in server.requests[0]["body"].decode().splitlines()] == ["a", "b", "c"]


def test_non_latin1_header_values_are_sent_as_utf8(server_factory: Callable[[str], Recorder]) -> None:
    server = server_factory("ok")
    exporter = stream_exporter(server.url, headers={"x-team": "équipe"})
    exporter.register("atof-utf8")
    try:
        scope.event("m")
        exporter.force_flush()
    finally:
        exporter.shutdown()
        exporter.deregister("atof-utf8")
    (request,) = server.requests
    assert request["headers"]["x-team"].encode("latin-1").decode("utf-8") == "équipe"  # http.server decodes Latin-1


def test_an_unexpected_transport_error_costs_one_event_not_the_worker(
    server_factory: Callable[[str], Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nemo_relay._core.observability import atof_transports

    server = server_factory("ok")
    original = atof_transports.HttpPost.send
    calls: list[int] = []

    def flaky(self: Any, item: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("boom from a transport bug")
        return original(self, item)

    monkeypatch.setattr(atof_transports.HttpPost, "send", flaky)
    diagnostics = RuntimeDiagnostics()
    fanout = build_sinks([AtofStreamSinkSettings(0, server.url)], diagnostics)
    undo = registered(fanout, "atof-flaky")
    try:
        for name in ("first", "second"):
            scope.event(name)
        assert subscribers.flush(10)
    finally:
        undo()
    teardown = fanout.shutdown()
    assert [json.loads(b)["name"] for b in server.bodies()] == ["second"]
    entry = diagnostics.get("atof.stream_delivery_failed")
    assert entry is not None and entry["count"] == 1 and "ValueError" in entry["message"]
    assert "boom" not in entry["message"]  # exception text may quote headers: only the type is kept
    assert "1 of 2 events undelivered (1 failed)" in (teardown.message or "")


def test_websocket_reconnects_and_resends_after_the_server_drops_it() -> None:
    from websockets.sync.server import serve

    received: list[str] = []
    connections: list[int] = []

    def handler(ws: Any) -> None:
        connections.append(1)
        for message in ws:
            received.append(message)
            if len(connections) == 1:
                return  # the first connection is dropped after one message

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        exporter = stream_exporter(f"ws://127.0.0.1:{port}/", "websocket")
        exporter.register("atof-ws-retry")
        try:
            scope.event("one")
            wait_until(lambda: len(received) == 1)
            time.sleep(0.3)  # let the client see the close frame
            scope.event("two")
            scope.event("three")
            exporter.force_flush()
            wait_until(lambda: len(received) == 3)
        finally:
            exporter.shutdown()
            exporter.deregister("atof-ws-retry")
            server.shutdown()
    assert [json.loads(m)["name"] for m in received] == ["one", "two", "three"]
    assert len(connections) == 2


def test_plugin_clear_with_a_blocked_endpoint_delivers_everything(
    server_factory: Callable[[str], Recorder], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pinned plugin scenario end to end: file + replace_dots stream sink; the endpoint holds its
    # answers until teardown starts; clear_async returns well under 2 s with all 3 events in both sinks.
    from nemo_relay import observability, plugin

    server = server_factory("gate")
    monkeypatch.setenv("ATOF_PLUGIN_TOKEN", "Bearer relay-499")
    atof = observability.AtofConfig(
        enabled=True,
        sinks=[
            observability.AtofFileSinkConfig(output_directory=str(tmp_path), filename="events.jsonl", mode="overwrite"),
            observability.AtofStreamSinkConfig(
                server.url, header_env={"authorization": "ATOF_PLUGIN_TOKEN"}, field_name_policy="replace_dots"
            ),
        ],
    )
    config = plugin.PluginConfig(components=[observability.ComponentSpec(observability.ObservabilityConfig(atof=atof))])

    async def run() -> float:
        assert await plugin.initialize(config) == {"diagnostics": []}
        monkeypatch.delenv("ATOF_PLUGIN_TOKEN")
        three_events()
        await subscribers.flush_async()
        await asyncio.to_thread(wait_until, lambda: len(server.requests) == 1)
        started = time.monotonic()
        threading.Timer(0.1, server.release.set).start()
        await plugin.clear_async()
        return time.monotonic() - started

    assert asyncio.run(run()) < SHUTDOWN_BOUND
    assert plugin.report() is None
    bodies = server.bodies()
    assert len(bodies) == 3 and b'"service_name":"relay"' in bodies[0]
    assert all(r["headers"]["authorization"] == "Bearer relay-499" for r in server.requests)
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["name"] == "checkpoint"
    assert json.loads(lines[0])["metadata"] == {"service.name": "relay"}  # the file keeps dots
