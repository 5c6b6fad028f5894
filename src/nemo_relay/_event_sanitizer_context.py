"""Compatibility: whether a queued publication callback is running (flushes are no-ops there)."""

from __future__ import annotations

from nemo_relay._core import dispatch as _dispatch
from nemo_relay._core.context import _publication_callback_var


def callback_active() -> bool:
    """True inside a queued publication callback or on the dispatcher thread."""
    return _publication_callback_var.get() or _dispatch.on_dispatcher_thread()
