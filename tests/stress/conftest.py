"""Fixtures of the stress suite: restore the dispatcher's queue bound, and catch stray threads, asyncio
shutdown noise and runtime error reports a run leaves behind.

The suite-wide autouse fixture (``tests/conftest.py``) already clears global registrations and drains
the queue after each test; it does not restore ``subscribers.configure(...)`` settings, hence
``restore_queue_capacity``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from nemo_relay import subscribers

# Threads the runtime itself starts and keeps for the life of the process.
RUNTIME_THREADS = frozenset({"nemo-relay-subscriber-dispatcher", "nemo-relay-subscriber-watchdog", "nemo-relay-flush"})

# Lines that must never appear: asyncio shutdown noise and runtime reports of callback or delivery failures.
FORBIDDEN_OUTPUT = (
    "Task was destroyed but it is pending",
    "Event loop is closed",
    "was never awaited",
    "Exception in callback",
    "Traceback",
    "Event subscriber error",
    "callable failed",
    "dispatcher failed",
    "not delivered",
)


@pytest.fixture
def restore_queue_capacity() -> Iterator[None]:
    """Put the queue bound back to what it was, whatever the test configured."""
    capacity = subscribers.stats().capacity
    try:
        yield
    finally:
        subscribers.configure(queue_capacity=capacity)


@pytest.fixture
def no_stray_threads() -> Iterator[None]:
    """Fail if the test leaves threads running, other than the runtime's own."""
    before = set(threading.enumerate())
    yield
    stray = [t.name for t in set(threading.enumerate()) - before if t.is_alive() and t.name not in RUNTIME_THREADS]
    assert not stray, f"threads left running: {stray}"


class Noise:
    """What a stress run wrote to stderr, logged, or warned about, checked against ``FORBIDDEN_OUTPUT``."""

    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
        self.capsys = capsys
        self.caplog = caplog

    def check(self, warnings: list[str], allowed: tuple[str, ...] = ()) -> str:
        """Assert nothing forbidden was reported; returns the captured stderr for further checks."""
        err = self.capsys.readouterr().err
        logged = [record.getMessage() for record in self.caplog.records if record.levelno >= logging.WARNING]
        for text in (err, *logged, *warnings):
            remaining = "\n".join(line for line in text.splitlines() if not any(a in line for a in allowed))
            for forbidden in FORBIDDEN_OUTPUT:
                assert forbidden not in remaining, f"{forbidden!r} reported:\n{text[:4000]}"
        assert not warnings, f"warnings raised during the run: {warnings[:10]}"
        return err


@pytest.fixture
def noise(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Noise:
    """Captures stderr (all threads write to the same ``sys.stderr``) and log records of the run."""
    caplog.set_level(logging.WARNING)
    return Noise(capsys, caplog)
