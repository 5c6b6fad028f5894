"""Fault: ``os.fork()`` while events are queued behind a blocked subscriber (the in-process fork test in
``tests/core/test_dispatch.py`` covers the child's empty queue, counters and flush bridge; these run whole
programs, so both processes also go through their interpreter exit)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")

PROGRAM = """
import os, sys, threading
from nemo_relay import scope, subscribers

out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
role = "parent"
entered, release = threading.Event(), threading.Event()

def gate(event):
    if event.name == "block":
        entered.set()
        release.wait()  # in the child this Event is a copy nobody sets: only the watchdog gets it out

def writer(event):
    os.write(out, f"{role} {event.name}\\n".encode())  # one write per line: O_APPEND keeps lines whole

subscribers.register("gate", gate)
subscribers.register("writer", writer)
scope.event("block")
assert entered.wait(10)
for index in range(5):
    scope.event(f"pre-{index}")

pid = os.fork()
if pid == 0:
    role = "child"
    stats = subscribers.stats()
    assert (stats.queued, stats.published, stats.delivered) == (0, 0, 0), stats
    subscribers.configure(stall_timeout=0.2)
    entered.clear()
    scope.event("block")  # the child's own worker gets stuck in the gate, and its own watchdog frees it
    for index in range(3):
        scope.event(f"child-{index}")
    assert subscribers.flush(timeout=10)
    assert subscribers.stats().quarantined == 1
    scope.event("child-last")
    sys.exit(0)  # a normal exit: the child's exit drain delivers "child-last"
release.set()
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
scope.event("post")  # no flush: the parent's exit drain delivers it
"""


@pytest.mark.timeout(60)
def test_fork_with_events_queued(run_python: Callable[..., Any], tmp_path: Path) -> None:
    """Caller: ``fork`` returns at once in both processes although the dispatcher is blocked with five
    events queued. Recorded: the child starts with an empty queue and zeroed counters, and its dispatcher
    works: it delivers only the child's own events (its own watchdog quarantines the inherited blocking
    subscriber when it blocks the child too), including at its interpreter exit. The parent delivers its
    backlog exactly once, and its later events at its own exit."""
    out = tmp_path / "lines.txt"
    out.touch()
    result = run_python(PROGRAM, str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "child exit 0\n"
    lines = out.read_text().splitlines()
    parent = [line.split(" ", 1)[1] for line in lines if line.startswith("parent ")]
    child = [line.split(" ", 1)[1] for line in lines if line.startswith("child ")]
    assert parent == ["block", "pre-0", "pre-1", "pre-2", "pre-3", "pre-4", "post"]
    assert child == ["block", "child-0", "child-1", "child-2", "child-last"]
    assert len(lines) == len(parent) + len(child)
    assert result.stderr.count("subscriber_quarantined") == 1  # the child's, and only once
    assert "not delivered" not in result.stderr
