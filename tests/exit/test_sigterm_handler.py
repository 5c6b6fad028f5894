"""When the SIGTERM handler is installed, and when it is left alone.

It is installed when a plugin configuration activates (on the caller's main thread), never at
``import nemo_relay``; never over a handler (or ``SIG_IGN``) the program set; not with
``NEMO_RELAY_HANDLE_SIGTERM=0``; and a forked child gets the default back.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals only"),
    pytest.mark.timeout(60),
]

# Prints one word per step: "default", "ours", "ignored" or "other" (SIGTERM's disposition then).
DESCRIBE = """
import signal
from nemo_relay._core import signals

def disposition():
    handler = signal.getsignal(signal.SIGTERM)
    if handler is signal.SIG_DFL:
        return "default"
    if handler is signal.SIG_IGN:
        return "ignored"
    return "ours" if handler is signals._on_sigterm else "other"
"""


def test_installed_by_activation_on_the_main_thread_only(start_child: Callable[..., Any], tmp_path: Path) -> None:
    """Caller: importing, subscribing and emitting leave SIGTERM alone; activating a plugin
    configuration from another thread leaves it alone too (only the main thread may set handlers);
    the first activation from the main thread installs the handler."""
    child = start_child(
        DESCRIBE
        + """
import threading
import nemo_relay
from nemo_relay import scope, subscribers
print(disposition(), flush=True)
subscribers.register("s", lambda event: None)
scope.event("e")
subscribers.flush(timeout=10)
print(disposition(), flush=True)
worker = threading.Thread(target=activate, args=(sys.argv[1],))
worker.start()
worker.join()
print(disposition(), flush=True)
activate(sys.argv[1])
print(disposition(), flush=True)
""",
        str(tmp_path),
    )
    assert child.wait() == 0, child.stderr()
    assert child.stdout().split() == ["default", "default", "default", "ours"]


@pytest.mark.parametrize("setting", ["0", "false", "OFF"])
def test_opt_out_keeps_the_default_disposition(setting: str, start_child: Callable[..., Any], tmp_path: Path) -> None:
    """Caller: with ``NEMO_RELAY_HANDLE_SIGTERM`` off, SIGTERM kills the process the default way (no exit
    hooks). Recorded: nothing."""
    child = start_child(
        DESCRIBE + "\nactivate(sys.argv[1])\nprint(disposition(), flush=True)\nimport time\ntime.sleep(60)\n",
        str(tmp_path),
        env={"NEMO_RELAY_HANDLE_SIGTERM": setting},
    )
    assert child.read_line() == "default"
    child.signal(signal.SIGTERM)
    assert child.wait() == -signal.SIGTERM


def test_an_unknown_setting_is_reported_and_the_handler_installed(
    start_child: Callable[..., Any], tmp_path: Path
) -> None:
    """Caller: an unrecognised ``NEMO_RELAY_HANDLE_SIGTERM`` value is treated as the default (on).
    Recorded: one stderr line naming the variable and the value."""
    child = start_child(
        DESCRIBE + "\nactivate(sys.argv[1])\nprint(disposition())\n",
        str(tmp_path),
        env={"NEMO_RELAY_HANDLE_SIGTERM": "maybe"},
    )
    assert child.wait() == 0
    assert child.stdout().split() == ["ours"]
    assert "ignoring NEMO_RELAY_HANDLE_SIGTERM='maybe'" in child.stderr()


def test_a_programs_own_handler_is_left_alone(start_child: Callable[..., Any], tmp_path: Path) -> None:
    """Caller: a handler the program installed before activating keeps running on SIGTERM (here it exits
    with status 7); activation does not replace it. ``SIG_IGN`` is kept as well."""
    child = start_child(
        DESCRIBE
        + """
import time
def mine(signum, frame):
    print("mine", flush=True)
    raise SystemExit(7)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
activate(sys.argv[1])
print(disposition(), flush=True)
signal.signal(signal.SIGTERM, mine)
activate(sys.argv[1])
print(disposition(), flush=True)
time.sleep(60)
""",
        str(tmp_path),
    )
    assert child.read_line() == "ignored"
    assert child.read_line() == "other"
    child.signal(signal.SIGTERM)
    assert child.wait() == 7
    assert child.stdout() == "mine\n"


def test_a_second_sigterm_during_the_exit_drain_ends_the_process_at_once(
    start_child: Callable[..., Any], tmp_path: Path
) -> None:
    """Caller: the first SIGTERM starts a clean exit; a second one while the exit hooks wait (here on a
    subscriber that never returns, with the watchdog off) terminates the process the default way."""
    child = start_child(
        """
import atexit, threading, time
from nemo_relay import scope, subscribers
activate(sys.argv[1])
forever = threading.Event()
subscribers.register("stuck", lambda event: forever.wait())
scope.event("e1")
scope.event("e2")
atexit.register(lambda: print("exit hooks running", flush=True))  # runs before nemo_relay's (LIFO)
print("ready", flush=True)
time.sleep(60)
""",
        str(tmp_path),
        env={"NEMO_RELAY_SUBSCRIBER_STALL_TIMEOUT": "0", "NEMO_RELAY_EXIT_FLUSH_TIMEOUT": "60"},
    )
    assert child.read_line() == "ready"
    child.signal(signal.SIGTERM)
    assert child.read_line() == "exit hooks running"
    child.signal(signal.SIGTERM)
    assert child.wait() == -signal.SIGTERM


def test_a_forked_child_gets_the_default_back(start_child: Callable[..., Any], tmp_path: Path) -> None:
    """Caller: fork-based workers (``multiprocessing``) see SIGTERM's default disposition; the parent keeps
    its handler."""
    child = start_child(
        DESCRIBE
        + """
import os
activate(sys.argv[1])
pid = os.fork()
if pid == 0:
    print("child", disposition(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent", disposition(), flush=True)
""",
        str(tmp_path),
    )
    assert child.wait() == 0, child.stderr()
    assert child.stdout().splitlines() == ["child default", "parent ours"]
