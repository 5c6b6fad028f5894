"""``Generic`` and ``TypeVar`` for runtime classes, without importing ``typing`` (milliseconds at import).

Type checkers see the real ``typing`` names; at run time ``Generic[T]`` is a plain base class whose
subscription (``ToolExecutionResult[Json]``) returns a ``types.GenericAlias``, which is all user
annotations need.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Generic as Generic
    from typing import TypeVar as TypeVar
else:
    from types import GenericAlias

    class Generic:
        """Run-time stand-in for ``typing.Generic``: subscriptable, no behaviour."""

        __slots__ = ()
        __class_getitem__ = classmethod(GenericAlias)

    def TypeVar(name: str, *constraints: object, **options: object) -> str:
        """Run-time stand-in for ``typing.TypeVar``: only its name is kept."""
        return name
