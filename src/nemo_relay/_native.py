"""Compatibility names for code written against the reference's compiled ``nemo_relay._native`` module."""

from __future__ import annotations

from nemo_relay._core.context import (
    ThreadScopeStackBinding as _ThreadScopeStackBinding,
)
from nemo_relay._core.context import (
    capture_thread_binding as capture_thread_scope_stack,
)
from nemo_relay._core.context import (
    restore_thread_binding as restore_thread_scope_stack,
)
from nemo_relay._core.context import (
    scope_stack_active,
    set_thread_scope_stack,
)
from nemo_relay.subscribers import _native_flush as flush_subscribers

__all__ = [
    "_ThreadScopeStackBinding",
    "capture_thread_scope_stack",
    "flush_subscribers",
    "restore_thread_scope_stack",
    "scope_stack_active",
    "set_thread_scope_stack",
]
