"""The error tree. Every class keeps the builtin base that reference callers already catch.

RelayError
 ├── RelayRuntimeError (RuntimeError)
 │    ├── AlreadyExistsError      "already exists: ..."
 │    ├── NotFoundError           "not found: ..."
 │    ├── InvalidArgumentError    "invalid argument: ..."
 │    ├── ScopeStackEmptyError    "scope stack empty"
 │    ├── GuardrailRejectedError  "guardrail rejected: ..."
 │    └── InternalError           "internal error: ..."
 ├── InvalidValueError (ValueError)       "invalid argument: ..." where the reference raises ValueError
 └── JsonConversionError (ValueError)     "Failed to convert to JSON: ..."

``error_type`` is the low-cardinality code written to ``error.type`` in end-event metadata.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import ClassVar


class RelayError(Exception):
    """Base of every error this package raises on purpose."""

    error_type: ClassVar[str] = "internal_error"
    prefix: ClassVar[str] = ""

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(f"{self.prefix}{detail}" if self.prefix else detail)


class RelayRuntimeError(RelayError, RuntimeError):
    """A runtime failure; surfaces as ``RuntimeError`` like the reference's native errors."""


class AlreadyExistsError(RelayRuntimeError):
    """A registration with that name already exists in that registry."""

    error_type = "already_exists"
    prefix = "already exists: "


class NotFoundError(RelayRuntimeError):
    """A handle, scope or registration could not be found."""

    error_type = "not_found"
    prefix = "not found: "


class InvalidArgumentError(RelayRuntimeError):
    """An argument or callback result broke the API contract."""

    error_type = "invalid_argument"
    prefix = "invalid argument: "


class ScopeStackEmptyError(RelayRuntimeError):
    """An operation needed a scope but the stack had none."""

    error_type = "scope_stack_empty"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or "scope stack empty")


class GuardrailRejectedError(RelayRuntimeError):
    """A conditional-execution guardrail refused the call; ``reason`` is its text."""

    error_type = "guardrail_rejected"
    prefix = "guardrail rejected: "

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InternalError(RelayRuntimeError):
    """A callback failed or the runtime met an unexpected state."""

    error_type = "internal_error"
    prefix = "internal error: "


class InvalidValueError(RelayError, ValueError):
    """An invalid value where the reference raises ``ValueError`` (metrics, propagation contexts)."""

    error_type = "invalid_argument"
    prefix = "invalid argument: "


class JsonConversionError(RelayError, ValueError):
    """A payload could not be converted to JSON."""

    error_type = "invalid_argument"
    prefix = "Failed to convert to JSON: "
