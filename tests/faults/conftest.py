"""Fixtures for the fault tests: a child-process runner, dispatcher settings restored after each test,
and a subscriber that blocks until the test releases it.

Fault tests never measure durations. Waiting is done on events; timeouts are only hang guards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nemo_relay
from nemo_relay import subscribers
from nemo_relay._core import dispatch

SRC = str(Path(nemo_relay.__file__).resolve().parents[1])
HANG_GUARD = 30.0  # seconds: a child still running then has hung (never a measurement)


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without NEMO_RELAY_* settings, with this source tree importable, plus ``env``."""
    full = {key: value for key, value in os.environ.items() if not key.startswith("NEMO_RELAY_")}
    full["PYTHONPATH"] = SRC + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    return full


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_python(code, *args, env=None)``: run ``code`` in a fresh interpreter and return the result."""

    def run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            env=child_env(env),
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            check=False,
        )

    return run


@pytest.fixture
def dispatcher_settings() -> Iterator[Callable[..., None]]:
    """``configure(**kwargs)`` as ``subscribers.configure``; the previous settings come back afterwards."""
    saved = {
        "queue_capacity": dispatch._capacity,
        "exit_flush_timeout": dispatch._exit_timeout,
        "stall_timeout": dispatch._stall_timeout,
    }
    try:
        yield subscribers.configure
    finally:
        subscribers.configure(**saved)


class Blocker:
    """A subscriber that records event names and blocks on the events named ``block`` until released."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def __call__(self, event: object) -> None:
        name = event.name  # type: ignore[attr-defined]
        self.seen.append(name)
        if name == "block":
            self.entered.set()
            try:
                self.release.wait(HANG_GUARD)
            finally:
                self.returned.set()

    def wait_entered(self) -> None:
        assert self.entered.wait(10), "the dispatcher never reached the blocking subscriber"


@pytest.fixture
def blocker() -> Iterator[Blocker]:
    """A fresh ``Blocker``; released when the test ends, whatever happened."""
    stuck = Blocker()
    try:
        yield stuck
    finally:
        stuck.release.set()
