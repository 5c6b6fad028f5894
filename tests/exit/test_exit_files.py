"""At a normal interpreter exit and on SIGTERM, events still queued are delivered and the exporters'
files are complete: every ATOF line is valid JSON and the ATIF document validates (``nat.atif`` plus the
strict checks of ``tests/observability/atif_checks.py``), within the exit deadline.

The child activates the observability plugin (ATOF file and ATIF trajectory), opens an agent scope it
never closes, and emits 300 marks and a tool call behind a subscriber that holds the dispatcher back (a
slow one, or one that never returns and is quarantined by the watchdog), so a backlog is still queued
when the program exits or is terminated.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PROGRAM = """
import sys, threading, time
from nemo_relay import ScopeType, ToolExecutionResult, scope, subscribers, tools

out, mode, holdup = sys.argv[1:4]
activate(out)
forever = threading.Event()

def hold(event):
    if holdup == "slow":
        time.sleep(0.002)
    else:
        forever.wait()  # never returns: the watchdog quarantines it

subscribers.register("holdup", hold)
scope.push("never-closed-agent", ScopeType.Agent)
for index in range(300):
    scope.event("tick", data={"index": index})

async def call():
    return await tools.execute("lookup", {"q": "x"}, lambda args: ToolExecutionResult({"ok": True}))

asyncio.run(call())
print(f"queued {subscribers.stats().queued}", flush=True)
print("ready", flush=True)
if mode == "sigterm":
    time.sleep(60)  # the parent sends SIGTERM now
    print("SIGTERM did not end the program", flush=True)
"""

EXPECTED_STATUS = {"exit": 0, "sigterm": 128 + signal.SIGTERM}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("holdup", ["slow", "stuck"])
@pytest.mark.parametrize("mode", ["exit", "sigterm"])
def test_queued_events_reach_complete_files(
    mode: str, holdup: str, start_child: Callable[..., Any], check_trajectory: Callable[[Any], Any], tmp_path: Path
) -> None:
    """Caller: the program ends normally, or with status 143 on SIGTERM (the handler installed at plugin
    activation turns SIGTERM into ``SystemExit(143)`` so exit hooks run). Recorded: the backlog queued at
    that moment is delivered: the ATOF file has a valid JSON line for each of the 300 marks, in order,
    and for the tool call; the still-open agent run is written as one ATIF trajectory that validates;
    nothing is reported as undelivered; a subscriber that never returns is quarantined (reported once)
    instead of holding up the exit."""
    child = start_child(
        PROGRAM,
        str(tmp_path),
        mode,
        holdup,
        env={"NEMO_RELAY_EXIT_FLUSH_TIMEOUT": "10", "NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT": "0.3"},
    )
    queued = child.read_line()
    assert child.read_line() == "ready"
    assert int(queued.split()[1]) > 0  # a backlog was waiting when the program ended
    if mode == "sigterm":
        child.signal(signal.SIGTERM)
    status = child.wait()
    stderr = child.stderr()
    assert status == EXPECTED_STATUS[mode], stderr
    assert child.stdout() == ""

    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    ticks = [line["data"]["index"] for line in lines if line["name"] == "tick"]
    assert ticks == list(range(300))
    assert [line["name"] for line in lines if line["kind"] == "scope"] == ["never-closed-agent", "lookup", "lookup"]
    (trajectory_file,) = tmp_path.glob("run-*.json")
    document = json.loads(trajectory_file.read_text())
    check_trajectory(document)
    assert document["session_id"] == lines[0]["uuid"]  # the agent scope's run

    assert "not delivered" not in stderr and "did not finish" not in stderr, stderr
    assert stderr.count("subscriber_quarantined") == (1 if holdup == "stuck" else 0), stderr
