"""Fault: a process killed with SIGKILL while the ATOF file exporter is writing.

The ATOF file sink appends whole lines with ``O_APPEND`` writes (lines are batched between the dispatcher's
idle moments; a batch is one ``write`` call and never splits a line across calls except a short write), and
it never rewrites what it wrote. So at any moment, and after a kill, the file is a byte prefix of the
stream of lines: every newline-terminated line is one complete event, the lines are the delivered events
in order with none missing or repeated, and only the bytes after the last newline can be a torn line
(a write cut short by the kill). Readers must skip such an unterminated tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from nemo_relay import plugin, scope, subscribers
    from nemo_relay.observability import AtofConfig, AtofFileSinkConfig, ComponentSpec, ObservabilityConfig

    sink = AtofFileSinkConfig(output_directory=sys.argv[1], filename="events.jsonl")
    atof = AtofConfig(enabled=True, sinks=[sink])
    config = plugin.PluginConfig(components=[ComponentSpec(ObservabilityConfig(atof=atof))])
    asyncio.run(plugin.initialize(config))
    pad = "x" * 400  # a batch of lines spans several pages
    index = 0
    while True:  # until killed
        for _ in range(50):
            scope.event("tick", data={"index": index, "pad": pad})
            index += 1
        subscribers.flush(timeout=10)  # stay under the queue bound, so no event is dropped (no gaps)
        if index == 1000:
            print("ready", flush=True)
        time.sleep(0.002)  # keep the file small enough to read quickly
    """
)


def read_events(path: Path) -> tuple[list[dict[str, object]], bytes]:
    """What a reader gets: the complete lines, checked as the prefix property above, and the torn tail."""
    data = path.read_bytes()
    *lines, tail = data.split(b"\n")
    events = [json.loads(line) for line in lines]  # every terminated line is complete JSON
    assert [event["data"]["index"] for event in events] == list(range(len(events)))  # type: ignore[index]
    assert all(event["name"] == "tick" for event in events)
    if tail:  # a torn line: the start of the next event's line, never anything else
        assert tail.startswith(b'{"atof_version":"0.1"')
    return events, tail


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
@pytest.mark.timeout(60)
def test_sigkill_while_exporting_leaves_only_complete_lines(tmp_path: Path) -> None:
    """Caller (the reading parent): reading the file while the child writes and after it is killed never
    fails or blocks, and each read shows a valid prefix. Recorded: the file holds complete JSON lines for
    a contiguous run of events ``0..n-1`` in order; at most one unterminated torn line follows, which the
    reader skips; nothing delivered before the kill is damaged."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEMO_RELAY_")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n", child.stderr.read() if child.stderr else b""
        path = tmp_path / "events.jsonl"
        seen = 0
        for _ in range(5):  # read while the child keeps writing
            events, _tail = read_events(path)
            assert len(events) >= max(seen, 1000)
            seen = len(events)
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    events, _tail = read_events(path)
    assert len(events) >= seen
    assert child.stderr is not None and child.stderr.read() == b""
