"""Argument checks shared by the public entry points: every message names the argument and the fix."""

from __future__ import annotations

from nemo_relay._core.types import type_name

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def expect(value: object, cls: type | tuple[type, ...], argument: str) -> None:
    """``TypeError`` unless ``value`` is an instance of ``cls``."""
    if not isinstance(value, cls):
        expected = cls.__name__ if isinstance(cls, type) else " | ".join(c.__name__ for c in cls)
        raise TypeError(f"argument '{argument}': '{type_name(value)}' object is not an instance of '{expected}'")


def text(value: object, argument: str) -> str:
    """A ``str`` argument (subclasses are converted to plain ``str``)."""
    if type(value) is str:
        return value
    expect(value, str, argument)
    return str.__str__(value)


def optional_text(value: object, argument: str) -> str | None:
    """A ``str`` or ``None`` argument."""
    return None if value is None else text(value, argument)


def function(value: object, argument: str) -> Any:
    """A callable argument."""
    if not callable(value):
        raise TypeError(f"argument '{argument}': expected a callable, got {type_name(value)}")
    return value


def priority(value: object) -> int:
    """A registration priority: an int in the i32 range (lower runs first)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"argument 'priority': expected an int, got {type_name(value)}")
    if not _I32_MIN <= value <= _I32_MAX:
        raise OverflowError(f"argument 'priority': {value} is outside the 32-bit signed range")
    return int(value)


def flag(value: object, argument: str) -> bool:
    """A ``bool`` argument."""
    if not isinstance(value, bool):
        raise TypeError(f"argument '{argument}': expected a bool, got {type_name(value)}")
    return value


def bits(value: object, cls: type, argument: str = "attributes") -> int:
    """The bit mask of an optional attribute-flags argument."""
    if value is None:
        return 0
    expect(value, cls, argument)
    return value._value  # type: ignore[attr-defined,no-any-return]
