"""Event metadata injectors: add attributes (session ids, tenant, version ...) to every delivered event.

An injector ``injector(event)`` returns ``{key: value}``; keys are dot-separated segments of letters,
digits, ``_`` and ``-``; values are strings, booleans, numbers, or lists of one of those. Injection only
inserts: existing keys (and keys added by earlier injectors) are kept. A failing or invalid injector is
logged and skipped.
"""

from __future__ import annotations

from nemo_relay._core import registrars as _r
from nemo_relay._core import registry as _f

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.aliases import EventMetadataInjectorCallback

__all__ = ["deregister_injector", "register_injector"]


def register_injector(name: str, priority: int, injector: EventMetadataInjectorCallback) -> None:
    """Register a global injector; injectors run in ``(priority, name)`` order before event sanitizers.

    Raises:
        RuntimeError: ``already exists: <name> already exists``.
    """
    _r.register(_f.EVENT_METADATA_INJECTOR, name, priority, injector)


def deregister_injector(name: str) -> bool:
    """Remove a global injector; False if none had that name."""
    return _r.deregister(_f.EVENT_METADATA_INJECTOR, name)
