"""SIGTERM as a normal exit, so the exit hooks deliver queued events and exporters finish their files.

Python's default for SIGTERM kills the process without running ``atexit`` hooks. The handler installed
here raises ``SystemExit(128 + SIGTERM)`` (exit status 143, what a shell reports for SIGTERM) in the main
thread instead, so the dispatcher drain and the plugin teardown run within their exit deadline. It is
installed only:

* once a plugin configuration has been activated (never at ``import nemo_relay``);
* from the main thread (Python only lets the main thread set signal handlers);
* while SIGTERM still has its default disposition: a handler the program (or a framework) installed,
  or ``SIG_IGN``, is left alone;
* unless ``NEMO_RELAY_HANDLE_SIGTERM`` is ``0`` (or ``false``, ``no``, ``off``).

The first SIGTERM restores the default disposition before raising, so a second SIGTERM during the exit
drain terminates at once. A forked child gets the default disposition back: fork-based workers
(``multiprocessing``) expect SIGTERM to end them the default way.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from types import FrameType

ENV_VARIABLE = "NEMO_RELAY_HANDLE_SIGTERM"
_OFF = frozenset(("0", "false", "no", "off"))
_ON = frozenset(("", "1", "true", "yes", "on"))

_installed = False


def install() -> bool:
    """Install the SIGTERM handler when allowed (see the module docstring); True if it is installed."""
    global _installed
    if _installed:
        return True
    if not _enabled() or threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False  # the program decided what SIGTERM does
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (AttributeError, ValueError, OSError):  # no SIGTERM here, or not the main interpreter
        return False
    _installed = True
    return True


def installed() -> bool:
    """Whether this module's handler is the one installed."""
    return _installed


def _enabled() -> bool:
    raw = os.environ.get(ENV_VARIABLE)
    if raw is None:
        return True
    value = raw.strip().lower()
    if value in _OFF:
        return False
    if value not in _ON:
        _say(f"nemo_relay: ignoring {ENV_VARIABLE}={raw!r}: expected 0 or 1; using the default (1)")
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Only the first SIGTERM exits cleanly: a second one (an impatient supervisor) ends the process at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:  # stderr closed: nothing more to do
        pass


def _after_fork_in_child() -> None:
    global _installed
    if not _installed:
        return
    _installed = False
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # forked from a thread Python does not consider the main one
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
