"""Typed errors. Each keeps the builtin base (``RuntimeError`` or ``ValueError``) that reference-compatible
code catches, and the reference's message text; ``error_type`` is the code written to ``error.type``.
"""

from __future__ import annotations

from nemo_relay._core.errors import (
    AlreadyExistsError,
    GuardrailRejectedError,
    InternalError,
    InvalidArgumentError,
    InvalidValueError,
    JsonConversionError,
    NotFoundError,
    RelayError,
    RelayRuntimeError,
    ScopeStackEmptyError,
)

__all__ = [
    "AlreadyExistsError",
    "GuardrailRejectedError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidValueError",
    "JsonConversionError",
    "NotFoundError",
    "RelayError",
    "RelayRuntimeError",
    "ScopeStackEmptyError",
]
