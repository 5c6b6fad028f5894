"""Opt-in: OpenInference traces stored by a real Arize Phoenix server (a separate interpreter, on loopback).

Skipped unless ``NEMO_RELAY_PHOENIX_PYTHON`` names a Python with ``arize-phoenix`` installed. Phoenix
is heavy (hundreds of MB of dependencies), so it lives in its own virtual environment, never in the
project's; to run this test::

    python3 -m venv /tmp/phoenix-venv && /tmp/phoenix-venv/bin/pip install arize-phoenix
    NEMO_RELAY_PHOENIX_PYTHON=/tmp/phoenix-venv/bin/python .venv/bin/python -m pytest -k phoenix tests/observability

The test starts ``phoenix serve`` on free loopback ports with a throwaway working directory, exports a
scripted agent run through ``OpenTelemetrySubscriber`` with the ``openinference`` projection, then
reads the spans back through Phoenix's REST API and checks names, parentage, OpenInference span kinds
and token counts as Phoenix stored them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nemo_relay
from nemo_relay import LLMRequest, ScopeType, ToolExecutionResult, llm, scope, tools

PHOENIX_PYTHON = os.environ.get("NEMO_RELAY_PHOENIX_PYTHON")
pytestmark = pytest.mark.skipif(not PHOENIX_PYTHON, reason="set NEMO_RELAY_PHOENIX_PYTHON to a Python with phoenix")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

PROJECT = "nemo-relay-phoenix-test"
STARTUP_TIMEOUT = 180.0  # first start creates its SQLite schema; slow CI machines need the room


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Phoenix server in its own process; yields its base URL and kills it at the end."""
    assert PHOENIX_PYTHON is not None
    workdir: Path = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen(
        [PHOENIX_PYTHON, "-m", "phoenix.server.main", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"phoenix exited with {process.returncode}; see {workdir / 'phoenix.log'}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{base}/healthz", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"phoenix did not answer within {STARTUP_TIMEOUT}s; see {workdir / 'phoenix.log'}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


CHAT_REQUEST = {"model": "gpt-4o", "messages": [{"role": "user", "content": "what is 2+3?"}]}
CHAT_RESPONSE = {
    "id": "chatcmpl-1",
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "5"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
}


async def _agent() -> None:
    from nemo_relay.codecs import OpenAIChatCodec

    with scope.scope("phoenix-agent", ScopeType.Agent, input={"q": "2+3"}):
        codec = OpenAIChatCodec()
        await llm.execute(
            "openai.chat",
            LLMRequest({}, CHAT_REQUEST),
            lambda request: CHAT_RESPONSE,
            model_name="gpt-4o",
            codec=codec,
            response_codec=codec,
        )
        await tools.execute("add", {"a": 2, "b": 3}, lambda args: ToolExecutionResult(args["a"] + args["b"]))


def test_phoenix_stores_the_openinference_spans(phoenix: str) -> None:
    config = nemo_relay.OpenTelemetryConfig("openinference", phoenix)
    config.service_name = "nemo-relay-test"
    config.set_resource_attribute("openinference.project.name", PROJECT)
    subscriber = nemo_relay.OpenTelemetrySubscriber(config)
    subscriber.register("phoenix")
    try:
        asyncio.run(_agent())
        subscriber.force_flush()
    finally:
        subscriber.deregister("phoenix")
        subscriber.shutdown()

    spans: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while len(spans) < 3:  # Phoenix ingests asynchronously
        with contextlib.suppress(urllib.error.HTTPError):
            spans = _get(f"{phoenix}/v1/projects/{PROJECT}/spans")["data"]
        if time.monotonic() > deadline:
            pytest.fail(f"phoenix stored {len(spans)} spans: {spans!r}")
        time.sleep(0.5)

    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"phoenix-agent", "openai.chat", "add"}
    agent, chat, tool = by_name["phoenix-agent"], by_name["openai.chat"], by_name["add"]
    assert (agent["span_kind"], chat["span_kind"], tool["span_kind"]) == ("AGENT", "LLM", "TOOL")
    assert agent["parent_id"] is None
    assert chat["parent_id"] == agent["context"]["span_id"] and tool["parent_id"] == agent["context"]["span_id"]
    assert {span["context"]["trace_id"] for span in spans} == {agent["context"]["trace_id"]}
    attributes = chat["attributes"]
    counts = (
        attributes.get("llm.token_count.prompt"),
        attributes.get("llm.token_count.completion"),
        attributes.get("llm.token_count.total"),
    )
    if counts == (None, None, None):  # some Phoenix versions nest dotted keys
        token_count = attributes["llm"]["token_count"]
        counts = (token_count["prompt"], token_count["completion"], token_count["total"])
    assert counts == (20, 7, 27)
