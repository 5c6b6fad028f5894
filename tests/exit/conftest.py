"""Fixtures for the exit tests: child programs started with ``subprocess`` and the ATIF validator.

Each child runs this source tree with no ``NEMO_RELAY_*`` variables of the test's own environment.
Timeouts here are hang guards, never measurements.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
SRC = str(TESTS.parent / "src")
HANG_GUARD = 30.0

# The observability plugin with the ATOF file exporter and ATIF trajectories, writing below argv[1].
ACTIVATE = """
import asyncio, sys
from nemo_relay import plugin
from nemo_relay.observability import AtifConfig, AtofConfig, AtofFileSinkConfig, ComponentSpec, ObservabilityConfig

def activate(out):
    config = plugin.PluginConfig(components=[ComponentSpec(ObservabilityConfig(
        atof=AtofConfig(enabled=True, sinks=[AtofFileSinkConfig(output_directory=out, filename="events.jsonl")]),
        atif=AtifConfig(enabled=True, output_directory=out, filename_template="run-{session_id}.json"),
    ))])
    return asyncio.run(plugin.initialize(config))
"""


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without NEMO_RELAY_* settings, with this source tree importable, plus ``env``."""
    full = {key: value for key, value in os.environ.items() if not key.startswith("NEMO_RELAY_")}
    full["PYTHONPATH"] = SRC + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    return full


class Child:
    """A running child program: read its stdout line by line, signal it, wait for it."""

    def __init__(self, code: str, args: tuple[str, ...], env: dict[str, str] | None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ACTIVATE + textwrap.dedent(code), *args],
            env=child_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def read_line(self) -> str:
        """The next stdout line (without the newline); the child's stderr is shown if it ended instead."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(HANG_GUARD)
            pytest.fail(f"the child ended early ({self.process.returncode}): {self.stderr()}")
        return line.rstrip("\n")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self) -> int:
        return self.process.wait(HANG_GUARD)

    def stdout(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.read()

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def start_child() -> Iterator[Callable[..., Child]]:
    """``start_child(code, *args, env=None)``: run ``ACTIVATE`` + ``code``; killed at teardown if still running."""
    children: list[Child] = []

    def start(code: str, *args: str, env: dict[str, str] | None = None) -> Child:
        child = Child(code, args, env)
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            child.stop()


@pytest.fixture(scope="session")
def check_trajectory() -> Callable[[Any], Any]:
    """``tests/observability/atif_checks.check_trajectory``: ``nat.atif`` validation plus the strict rules."""
    module = sys.modules.get("atif_checks")
    if module is None:
        spec = importlib.util.spec_from_file_location("atif_checks", TESTS / "observability" / "atif_checks.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.check_trajectory  # type: ignore[no-any-return]
