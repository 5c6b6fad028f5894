"""② Validated registration for every middleware family, global or owned by a scope (one code path)."""

from __future__ import annotations

from nemo_relay._core import args, registry
from nemo_relay._core.lifecycle import owner_frame

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.handles import ScopeHandle

_LLM_SANITIZERS = (registry.LLM_SANITIZE_REQUEST, registry.LLM_SANITIZE_RESPONSE)


def entry(family: int, name: object, priority: object, callback: object, break_chain: object = False) -> registry.Entry:
    """A checked registry entry: name, priority, ``break_chain`` and the callback's shape."""
    name = args.text(name, "name")
    rank = 0 if family == registry.SUBSCRIBER else args.priority(priority)
    stop = args.flag(break_chain, "break_chain")
    if family in _LLM_SANITIZERS:
        _check_sanitizer_signature(callback)
    args.function(callback, "callback")
    return registry.Entry(name, rank, callback, stop)  # type: ignore[arg-type]


def _check_sanitizer_signature(callback: object) -> None:
    import inspect  # deferred: only LLM sanitizer registration needs it

    try:
        signature = inspect.signature(callback)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            "LLM sanitizer callback signature cannot be inspected; use a callable that accepts `(payload, context)`"
        ) from None
    try:
        signature.bind(None, None)
    except TypeError:
        raise TypeError("LLM sanitizer callback must accept `(payload, context)`") from None


def register(
    family: int, name: object, priority: object, callback: object, break_chain: object = False, owner: Any = None
) -> None:
    """Register globally, or on the scope ``owner`` (which must be on the current stack)."""
    new = entry(family, name, priority, callback, break_chain)
    if owner is None:
        registry.register_global(family, new)
    else:
        registry.register_local(owner_frame(owner, "scope_handle"), family, new)


def deregister(family: int, name: object, owner: ScopeHandle | None = None) -> bool:
    """Remove a registration; False when there was none by that name."""
    name = args.text(name, "name")
    if owner is None:
        return registry.deregister_global(family, name)
    return registry.deregister_local(owner_frame(owner, "scope_handle"), family, name)
