"""Fault: the OpenTelemetry endpoint is down (a collector that accepts connections and never answers)
when the program exits.

``tests/observability`` already covers a refused, failing or hanging endpoint while the program runs
(the agent is not slowed, ``plugin.report()``/runtime diagnostics name the failure, ``shutdown`` and
``plugin.clear`` keep their deadlines). What is left is the interpreter exit: it must keep its deadline
too, and the other exporters of the same configuration must still finish their files.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PROGRAM = """
import asyncio, sys
from nemo_relay import ScopeType, ToolExecutionResult, plugin, scope, tools
from nemo_relay.observability import (
    AtofConfig, AtofFileSinkConfig, ComponentSpec, ObservabilityConfig, OpenTelemetryEndpointConfig,
    OpenTelemetrySectionConfig,
)

out, endpoint = sys.argv[1], sys.argv[2]
config = plugin.PluginConfig(components=[ComponentSpec(ObservabilityConfig(
    atof=AtofConfig(enabled=True, sinks=[AtofFileSinkConfig(output_directory=out, filename="events.jsonl")]),
    opentelemetry=OpenTelemetrySectionConfig(
        enabled=True, endpoints=[OpenTelemetryEndpointConfig("openinference", endpoint, timeout_millis=60_000)]
    ),
))])
asyncio.run(plugin.initialize(config))

async def run():
    with scope.scope("agent", ScopeType.Agent):
        for index in range(20):
            await tools.execute("lookup", {"i": index}, lambda args: ToolExecutionResult({"ok": True}))

asyncio.run(run())  # returns although no span can be exported
print("done", flush=True)
"""


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """``http://127.0.0.1:<port>``: connections are accepted (by the kernel backlog) and never answered."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_exit_keeps_its_deadline_while_the_collector_hangs(
    run_python: Callable[..., Any], silent_collector: str, tmp_path: Path
) -> None:
    """Caller: the agent run completes and the program exits normally (status 0), although every export
    hangs (each with a 60 s request timeout); the exit takes the configured deadline, not the exporter's
    timeout (the child is only given the 30 s hang guard). Recorded: the ATOF file of the same
    configuration holds all 42 events; stderr reports the teardown's delivery failure with the exact
    count of spans not exported (21: the agent and 20 tools)."""
    result = run_python(PROGRAM, str(tmp_path), silent_collector, env={"NEMO_RELAY_EXIT_FLUSH_TIMEOUT": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert len(lines) == 42  # agent start/end and 20 tool calls (start and end each)
    assert [line["name"] for line in lines[:1] + lines[-1:]] == ["agent", "agent"]
    assert "plugin teardown at exit" in result.stderr
    assert "otel.spans_unexported_at_shutdown (21)" in result.stderr
