"""The sync/async seam: the only place that asks whether an event loop is running or a value is awaitable."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any


def running_loop() -> Any:
    """The event loop running on this thread, or ``None``; never imports asyncio itself."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None  # asyncio was never imported, so no loop can be running
    return asyncio._get_running_loop()


class _NeverRaised(BaseException):
    """Stands in for asyncio.CancelledError while asyncio is not imported (nothing can raise it then)."""


def cancelled_error_type() -> type[BaseException]:
    """``asyncio.CancelledError`` if asyncio is loaded, else a type nothing raises."""
    asyncio = sys.modules.get("asyncio")
    return _NeverRaised if asyncio is None else asyncio.CancelledError
