"""At a normal interpreter exit the active plugin configuration is torn down within the exit deadline:
queued events reach the exporters, ATOF files are complete and still-open agent runs are written as ATIF
trajectories, without the program calling ``plugin.clear()``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from nemo_relay import ScopeType, plugin, scope, tools, ToolExecutionResult
    from nemo_relay.observability import (
        AtifConfig, AtofConfig, AtofFileSinkConfig, ComponentSpec, ObservabilityConfig,
    )

    out = sys.argv[1]
    config = plugin.PluginConfig(components=[ComponentSpec(ObservabilityConfig(
        atof=AtofConfig(enabled=True, sinks=[AtofFileSinkConfig(output_directory=out, filename="events.jsonl")]),
        atif=AtifConfig(enabled=True, output_directory=out, filename_template="run-{session_id}.json"),
    ))])
    asyncio.run(plugin.initialize(config))
    scope.push("never-popped-agent", ScopeType.Agent)   # the run is still open at exit
    for index in range(500):
        scope.event("tick", data={"index": index})
    async def call():
        return await tools.execute("lookup", {"q": "x"}, lambda args: ToolExecutionResult({"ok": True}))
    asyncio.run(call())
    print("exiting without clear", flush=True)
    """
)


def test_exit_delivers_queued_events_and_writes_open_trajectories(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "exiting without clear" in done.stdout
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sum(1 for line in lines if line["name"] == "tick") == 500
    assert [line["name"] for line in lines if line["kind"] == "scope"][-2:] == ["lookup", "lookup"]
    (trajectory_file,) = tmp_path.glob("run-*.json")
    trajectory = json.loads(trajectory_file.read_text())
    assert trajectory["schema_version"] == "ATIF-v1.7"
    assert trajectory["session_id"] == lines[0]["uuid"]  # the agent scope's uuid
    assert "not delivered" not in done.stderr and "did not finish" not in done.stderr
