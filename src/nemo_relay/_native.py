"""Compatibility names for code written against the reference's compiled ``nemo_relay._native`` module."""

from __future__ import annotations

from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
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

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Iterable


def list_runtime_registrations(kinds: Iterable[str] | None = None) -> list[dict[str, object]]:
    """Global registrations as plain dicts (the form the compiled module returned)."""
    from nemo_relay.runtime_registrations import list_runtime_registrations as listing

    return [
        {
            "effective_name": item.effective_name,
            "kind": str(item.kind),
            "local_name": item.local_name,
            "owner": {
                "component_ordinal": item.owner.component_ordinal,
                "kind": str(item.owner.kind),
                "plugin_kind": item.owner.plugin_kind,
            },
        }
        for item in listing(None if kinds is None else set(kinds))  # type: ignore[arg-type]
    ]


__all__ = [
    "AnnotatedLLMRequest",
    "AnnotatedLLMResponse",
    "_ThreadScopeStackBinding",
    "capture_thread_scope_stack",
    "flush_subscribers",
    "list_runtime_registrations",
    "restore_thread_scope_stack",
    "scope_stack_active",
    "set_thread_scope_stack",
]
