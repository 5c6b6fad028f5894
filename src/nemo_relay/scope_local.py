"""Registrations owned by a scope: visible to that scope and its descendants, removed when it is popped.

The owning scope must be on the current stack when registering or deregistering. Events already
emitted keep the registrations they were emitted with.
"""

from __future__ import annotations

from collections.abc import Callable

from nemo_relay._core import lifecycle as _lifecycle
from nemo_relay._core import registry as _registry
from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay._core.handles import ScopeHandle
from nemo_relay.subscribers import subscriber_entry

__all__ = ["deregister_subscriber", "register_subscriber"]


def register_subscriber(
    scope_handle: ScopeHandle, name: str, callback: Callable[[ScopeEvent | MarkEvent], None]
) -> None:
    """Register a subscriber owned by ``scope_handle``.

    It receives events emitted while the owner is on the stack: the owner's own end event, its
    descendants' events, and marks under it.

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> subscriber already exists``.
    """
    entry = subscriber_entry(name, callback)
    _registry.register_local(_lifecycle.owner_frame(scope_handle, "scope_handle"), _registry.SUBSCRIBER, entry)


def deregister_subscriber(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a subscriber owned by ``scope_handle``; False if it had none by that name.

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack.
    """
    frame = _lifecycle.owner_frame(scope_handle, "scope_handle")
    return _registry.deregister_local(frame, _registry.SUBSCRIBER, name)
