"""Two reference behaviours that changed between releases, each decided here and nowhere else.

1. The callback-error policy (spec §4.9). In 0.8.4 an exception raised by a user callback (tool or
   LLM function, guardrail, intercept, collector) reaches the caller as
   ``RuntimeError("internal error: <Type>: <message>")``; 0.10 re-raises the original exception.
   Either way the end event records ``otel.status_description`` (the wrapped text), ``error.type``
   and ``exception.type``.
2. The execution-intercept calling convention (spec §10): 0.8.4 calls ``fn(name, args, next)`` for
   tools, ``fn(name, request, next)`` for LLM calls and ``fn(request, next)`` for streams; 0.10 passes
   context objects instead.

Switching to 0.10 means changing ``ERROR_POLICY`` and the three ``call_*`` functions below.
"""

from __future__ import annotations

from nemo_relay._core.errors import InternalError, RelayError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from nemo_relay._core.types import JsonValue

ERROR_POLICY = "0.8"


class CallbackError(InternalError):
    """A user callback raised; ``original`` is its exception (also chained as ``__cause__``)."""

    def __init__(self, original: BaseException, prefix: str = "") -> None:
        super().__init__(f"{prefix}{type(original).__name__}: {original}")
        self.original = original
        self.exception_type = type(original).__name__


def callback_failed(original: BaseException, prefix: str = "") -> BaseException:
    """What the caller sees for an exception raised by a user callback.

    Runtime errors that we raised ourselves (contract violations, rejections, conversions) pass
    through unchanged, as do cancellations and interpreter exits.
    """
    if isinstance(original, RelayError) or not isinstance(original, Exception):
        return original
    wrapped = CallbackError(original, prefix)
    wrapped.__cause__ = original
    if ERROR_POLICY == "0.8":
        return wrapped
    return original


def rethrow(original: BaseException, prefix: str = "") -> NoReturn:
    """Raise what the caller should see for ``original`` (see ``callback_failed``)."""
    error = callback_failed(original, prefix)
    if error is original:
        raise original
    raise error from original


def error_metadata(error: BaseException) -> dict[str, JsonValue]:
    """End-event metadata describing ``error`` (status, description, error.type, exception.type)."""
    description = error
    if not isinstance(error, RelayError) and isinstance(error, Exception):
        description = CallbackError(error)
    metadata: dict[str, JsonValue] = {
        "otel.status_code": "ERROR",
        "otel.status_description": str(description),
        "error.type": getattr(description, "error_type", "internal_error"),
    }
    exception_type = getattr(description, "exception_type", None)
    if exception_type is not None:
        metadata["exception.type"] = exception_type
    return metadata


# --- execution-intercept calling conventions -------------------------------------------------------------


def call_tool_execution_intercept(
    callback: Callable[..., Any], name: str, args: JsonValue, tool_call_id: str | None, next_call: Any
) -> Any:
    """Invoke a tool execution intercept (0.8.4: ``fn(name, args, next)``)."""
    return callback(name, args, next_call)


def call_llm_execution_intercept(
    callback: Callable[..., Any], name: str, request: Any, context: Any, next_call: Any
) -> Any:
    """Invoke an LLM execution intercept (0.8.4: ``fn(name, request, next)``)."""
    return callback(name, request, next_call)


def call_llm_stream_intercept(
    callback: Callable[..., Any], name: str, request: Any, context: Any, next_call: Any
) -> Any:
    """Invoke an LLM stream execution intercept (0.8.4: ``fn(request, next)``)."""
    return callback(request, next_call)
