"""ATIF remote storage: HTTP uploads to a loopback server, S3 through moto, the upload worker's limits.

Remote uploads run on the dispatcher's upload worker; ``shutdown`` waits for them (bounded by its
timeout) and keeps a local recovery copy of anything not delivered. Every uploaded or recovered
trajectory is checked with the independent validator and the strict checks.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from atif_checks import check_trajectory
from atif_scenarios import Clock, chat_request, chat_response, manual_llm, user

from nemo_relay import ScopeType, scope, subscribers
from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.atif import storage
from nemo_relay._core.observability.atif.dispatcher import AtifDispatcher
from nemo_relay._core.observability.settings import AtifSettings, HttpStorageSettings, S3StorageSettings


class Receiver:
    """A loopback HTTP server recording POSTs; ``mode`` is ``ok`` (200), ``error`` (500) or ``hang``."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.mode == "hang":
                    receiver.release.wait(30)
                    return
                receiver.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200 if receiver.mode == "ok" else 500)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/atif/upload?tenant=t1"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[[str], Receiver]]:
    started: list[Receiver] = []

    def start(mode: str = "ok") -> Receiver:
        receiver = Receiver(mode)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def closed_port_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/atif"


def run_root(
    dispatcher: AtifDispatcher, name: str = "atif-storage", timeout: float | None = 10
) -> tuple[str, Teardown]:
    """One top-level agent with an LLM call through ``dispatcher``, then the plugin's teardown steps."""
    subscribers.register(name, dispatcher.on_event)
    try:
        c = Clock()
        root = scope.push("agent", ScopeType.Agent, metadata={"session_id": "chat-1"}, timestamp=c())
        manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
        scope.pop(root, timestamp=c())
        assert subscribers.flush(timeout=10)
    finally:
        subscribers.deregister(name)
    return root.uuid, dispatcher.shutdown(timeout)


def local_files(directory: Path) -> list[str]:
    return sorted(path.relative_to(directory).as_posix() for path in directory.rglob("*.json"))


# --- HTTP -------------------------------------------------------------------------------------------


def test_http_upload_posts_pretty_json_with_headers(
    receivers: Callable[[str], Receiver], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATIF_TEST_TOKEN", "secret-token")
    receiver = receivers("ok")
    http_storage = HttpStorageSettings(
        index=0, endpoint=receiver.url, headers={"x-team": "a"}, header_env={"authorization": "ATIF_TEST_TOKEN"}
    )
    diagnostics = RuntimeDiagnostics()
    dispatcher = AtifDispatcher(
        AtifSettings(output_directory=str(tmp_path), storage=(http_storage,)), diagnostics, "ns"
    )
    monkeypatch.setenv("ATIF_TEST_TOKEN", "changed-after-activation")
    session, teardown = run_root(dispatcher)

    assert teardown.ok and not diagnostics
    assert local_files(tmp_path) == []  # remote storage configured and it worked: no local copy
    ((path, headers, body),) = receiver.requests
    assert path == "/atif/upload?tenant=t1"
    assert headers["content-type"] == "application/json"
    assert headers["x-nemo-relay-atif-filename"] == f"nemo-relay-atif-{session}.json"
    assert headers["x-nemo-relay-atif-session-id"] == session
    assert headers["x-team"] == "a"
    assert headers["authorization"] == "secret-token"  # read once, at activation
    text = body.decode()
    document = json.loads(text)
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    check_trajectory(document)
    assert document["session_id"] == session
    assert document["extra"]["nemo_relay"]["session_id"] == "chat-1"


@pytest.mark.parametrize("failure", ["status", "refused"])
def test_failed_upload_is_reported_and_kept_locally(
    receivers: Callable[[str], Receiver], tmp_path: Path, failure: str
) -> None:
    endpoint = receivers("error").url if failure == "status" else closed_port_url()
    diagnostics = RuntimeDiagnostics()
    settings = AtifSettings(output_directory=str(tmp_path), storage=(HttpStorageSettings(index=0, endpoint=endpoint),))
    session, teardown = run_root(AtifDispatcher(settings, diagnostics, "ns"))

    (entry,) = diagnostics.entries()
    assert entry["code"] == "atif.remote_delivery_failed"
    assert entry["field"] == "storage[0]" and entry["session_id"] == session
    assert entry["message"].startswith(f"HTTP ATIF upload to '{endpoint}'")
    if failure == "status":
        assert entry["message"].endswith(
            f"for 'nemo-relay-atif-{session}.json' failed with status 500 Internal Server Error"
        )
    assert teardown.status == Teardown.REMOVED_WITH_ERROR
    assert teardown.message == "ATIF runtime delivery failures: atif.remote_delivery_failed (1)"
    assert local_files(tmp_path) == [f"nemo-relay-atif-{session}.json"]
    check_trajectory(json.loads((tmp_path / f"nemo-relay-atif-{session}.json").read_text()))


def test_one_working_target_is_enough(receivers: Callable[[str], Receiver], tmp_path: Path) -> None:
    good = receivers("ok")
    diagnostics = RuntimeDiagnostics()
    targets = (
        HttpStorageSettings(index=0, endpoint=closed_port_url()),
        HttpStorageSettings(index=1, endpoint=good.url),
    )
    _, teardown = run_root(
        AtifDispatcher(AtifSettings(output_directory=str(tmp_path), storage=targets), diagnostics, "ns")
    )

    assert [entry["field"] for entry in diagnostics.entries()] == ["storage[0]"]
    assert len(good.requests) == 1
    assert local_files(tmp_path) == []  # not every target failed: no recovery copy
    assert teardown.status == Teardown.REMOVED_WITH_ERROR


def test_shutdown_stops_waiting_for_a_hanging_endpoint(receivers: Callable[[str], Receiver], tmp_path: Path) -> None:
    hanging = receivers("hang")
    diagnostics = RuntimeDiagnostics()
    slow = HttpStorageSettings(index=0, endpoint=hanging.url, timeout_millis=60_000)
    dispatcher = AtifDispatcher(AtifSettings(output_directory=str(tmp_path), storage=(slow,)), diagnostics, "ns")
    session, teardown = run_root(dispatcher, timeout=0.2)

    entry = diagnostics.get("atif.remote_delivery_failed")
    assert entry is not None and "not delivered before the ATIF exporter shut down" in entry["message"]
    assert teardown.status == Teardown.REMOVED_WITH_ERROR
    assert local_files(tmp_path) == [f"nemo-relay-atif-{session}.json"]


def test_local_fallback_failure_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    diagnostics = RuntimeDiagnostics()
    settings = AtifSettings(
        output_directory=str(blocker / "sub"), storage=(HttpStorageSettings(index=0, endpoint=closed_port_url()),)
    )
    _, teardown = run_root(AtifDispatcher(settings, diagnostics, "ns"))
    assert [entry["code"] for entry in diagnostics.entries()] == [
        "atif.remote_delivery_failed",
        "atif.local_fallback_failed",
    ]
    assert teardown.message == (
        "ATIF runtime delivery failures: atif.remote_delivery_failed (1), atif.local_fallback_failed (1)"
    )


# --- the upload worker ------------------------------------------------------------------------------


class BlockingTarget:
    """A remote target that holds every upload until ``release`` is set."""

    index = 0

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.sent: list[str] = []

    def send(self, filename: str, session_id: str, body: bytes) -> None:
        self.started.set()
        self.release.wait(30)
        self.sent.append(filename)


def test_full_upload_queue_keeps_the_overflow_locally(tmp_path: Path) -> None:
    reports: list[tuple[str, str, str, str]] = []
    target = BlockingTarget()
    worker = storage.UploadWorker(
        [target], storage.LocalTarget(str(tmp_path)), lambda *r: reports.append(r), capacity=1
    )
    worker.submit("first.json", "s1", b"{}")
    assert target.started.wait(10)  # the worker holds "first"; the queue is empty again
    worker.submit("second.json", "s2", b"{}")  # fills the queue
    worker.submit("third.json", "s3", b"{}")  # overflows
    assert [(code, session) for code, _, _, session in reports] == [("atif.remote_delivery_failed", "s3")]
    assert "queue is full" in reports[0][2]
    assert local_files_any(tmp_path) == ["third.json"]
    target.release.set()
    worker.shutdown(10)
    assert target.sent == ["first.json", "second.json"]
    assert len(reports) == 1


def local_files_any(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_submit_after_shutdown_keeps_a_local_copy(tmp_path: Path) -> None:
    reports: list[tuple[str, str, str, str]] = []
    worker = storage.UploadWorker([BlockingTarget()], storage.LocalTarget(str(tmp_path)), lambda *r: reports.append(r))
    worker.shutdown(1)
    worker.submit("late.json", "s", b"{}")
    assert local_files_any(tmp_path) == ["late.json"]
    assert reports[0][0] == "atif.remote_delivery_failed"


# --- S3 ---------------------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="trajectories")
        yield client


def test_s3_upload_puts_the_trajectory_under_the_key_prefix(aws: Any, tmp_path: Path) -> None:
    diagnostics = RuntimeDiagnostics()
    s3 = S3StorageSettings(index=0, bucket="trajectories", key_prefix="runs/atif")
    session, teardown = run_root(
        AtifDispatcher(AtifSettings(output_directory=str(tmp_path), storage=(s3,)), diagnostics, "ns")
    )
    assert teardown.ok and not diagnostics
    stored = aws.get_object(Bucket="trajectories", Key=f"runs/atif/nemo-relay-atif-{session}.json")
    assert stored["ContentType"] == "application/json"
    document = json.loads(stored["Body"].read())
    check_trajectory(document)
    assert document["trajectory_id"] == session
    assert local_files(tmp_path) == []


def test_s3_upload_to_a_missing_bucket_fails_over_to_a_local_copy(aws: Any, tmp_path: Path) -> None:
    diagnostics = RuntimeDiagnostics()
    s3 = S3StorageSettings(index=0, bucket="no-such-bucket")
    session, teardown = run_root(
        AtifDispatcher(AtifSettings(output_directory=str(tmp_path), storage=(s3,)), diagnostics, "ns")
    )
    entry = diagnostics.get("atif.remote_delivery_failed")
    assert entry is not None and entry["message"].startswith(
        f"S3 ATIF upload to 's3://no-such-bucket/nemo-relay-atif-{session}.json'"
    )
    assert teardown.status == Teardown.REMOVED_WITH_ERROR
    assert local_files(tmp_path) == [f"nemo-relay-atif-{session}.json"]


def test_s3_storage_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` raise ImportError
    with pytest.raises(ImportError, match=r"nemo-relay-py\[s3\]"):
        AtifDispatcher(AtifSettings(storage=(S3StorageSettings(index=0, bucket="b"),)), RuntimeDiagnostics(), "ns")


def test_s3_plain_http_endpoint_needs_allow_http(aws: Any) -> None:
    settings = S3StorageSettings(index=0, bucket="b", endpoint_url="http://127.0.0.1:9000")
    with pytest.raises(ValueError, match="allow_http"):
        storage.S3Target(settings)
    storage.S3Target(S3StorageSettings(index=0, bucket="b", endpoint_url="http://127.0.0.1:9000", allow_http=True))
