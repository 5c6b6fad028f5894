"""Global guardrails: conditional-execution guardrails that may reject a call, and sanitizers that
rewrite what events record (never what the call itself receives).

Lower priorities run first; names are unique per family. Sanitizers run on the publication path:
a failing sanitizer omits the payload (it fails closed) and is reported, never raised.
"""

from __future__ import annotations

from nemo_relay._core import registrars as _r
from nemo_relay._core import registry as _f

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.aliases import (
        EventSanitizeGuardrail,
        LlmConditionalExecutionGuardrail,
        LlmSanitizeRequestGuardrail,
        LlmSanitizeResponseGuardrail,
        ToolConditionalExecutionGuardrail,
        ToolSanitizeGuardrail,
    )

__all__ = [
    "deregister_llm_conditional_execution",
    "deregister_llm_sanitize_request",
    "deregister_llm_sanitize_response",
    "deregister_mark_sanitize",
    "deregister_scope_sanitize_end",
    "deregister_scope_sanitize_start",
    "deregister_tool_conditional_execution",
    "deregister_tool_sanitize_request",
    "deregister_tool_sanitize_response",
    "register_llm_conditional_execution",
    "register_llm_sanitize_request",
    "register_llm_sanitize_response",
    "register_mark_sanitize",
    "register_scope_sanitize_end",
    "register_scope_sanitize_start",
    "register_tool_conditional_execution",
    "register_tool_sanitize_request",
    "register_tool_sanitize_response",
]


def register_mark_sanitize(name: str, priority: int, guardrail: EventSanitizeGuardrail) -> None:
    """Sanitize marks: ``guardrail(event, {"data", "category_profile", "metadata"})`` returns the new fields.

    The returned mapping replaces all three fields (a missing key means None). A raising guardrail
    clears all three and stops the chain.

    Raises:
        RuntimeError: ``already exists: <name> already exists``.
    """
    _r.register(_f.MARK_SANITIZE, name, priority, guardrail)


def deregister_mark_sanitize(name: str) -> bool:
    """Remove a mark sanitizer; False if none had that name."""
    return _r.deregister(_f.MARK_SANITIZE, name)


def register_scope_sanitize_start(name: str, priority: int, guardrail: EventSanitizeGuardrail) -> None:
    """Sanitize scope start events of every category (tool and LLM starts after their own sanitizers)."""
    _r.register(_f.SCOPE_SANITIZE_START, name, priority, guardrail)


def deregister_scope_sanitize_start(name: str) -> bool:
    """Remove a scope-start sanitizer; False if none had that name."""
    return _r.deregister(_f.SCOPE_SANITIZE_START, name)


def register_scope_sanitize_end(name: str, priority: int, guardrail: EventSanitizeGuardrail) -> None:
    """Sanitize scope end events of every category (tool and LLM ends after their own sanitizers)."""
    _r.register(_f.SCOPE_SANITIZE_END, name, priority, guardrail)


def deregister_scope_sanitize_end(name: str) -> bool:
    """Remove a scope-end sanitizer; False if none had that name."""
    return _r.deregister(_f.SCOPE_SANITIZE_END, name)


def register_tool_sanitize_request(name: str, priority: int, guardrail: ToolSanitizeGuardrail) -> None:
    """Sanitize recorded tool arguments: ``guardrail(tool_name, args)`` returns the JSON to record."""
    _r.register(_f.TOOL_SANITIZE_REQUEST, name, priority, guardrail)


def deregister_tool_sanitize_request(name: str) -> bool:
    """Remove a tool request sanitizer; False if none had that name."""
    return _r.deregister(_f.TOOL_SANITIZE_REQUEST, name)


def register_tool_sanitize_response(name: str, priority: int, guardrail: ToolSanitizeGuardrail) -> None:
    """Sanitize recorded tool results: ``guardrail(tool_name, result)`` returns the JSON to record."""
    _r.register(_f.TOOL_SANITIZE_RESPONSE, name, priority, guardrail)


def deregister_tool_sanitize_response(name: str) -> bool:
    """Remove a tool response sanitizer; False if none had that name."""
    return _r.deregister(_f.TOOL_SANITIZE_RESPONSE, name)


def register_tool_conditional_execution(name: str, priority: int, guardrail: ToolConditionalExecutionGuardrail) -> None:
    """Gate tool calls: ``guardrail(tool_name, args)`` returns None to allow or a string reason to reject.

    Each evaluation is recorded as a ``guardrail`` scope; a rejected managed call raises
    ``RuntimeError("guardrail rejected: <reason>")`` and never runs.
    """
    _r.register(_f.TOOL_CONDITIONAL_EXECUTION, name, priority, guardrail)


def deregister_tool_conditional_execution(name: str) -> bool:
    """Remove a tool conditional-execution guardrail; False if none had that name."""
    return _r.deregister(_f.TOOL_CONDITIONAL_EXECUTION, name)


def register_llm_sanitize_request(name: str, priority: int, guardrail: LlmSanitizeRequestGuardrail) -> None:
    """Sanitize recorded LLM requests: ``guardrail(request, context)`` returns an ``LLMRequest`` or None.

    None omits the payload and skips later sanitizers.

    Raises:
        TypeError: The callback does not accept ``(payload, context)``.
    """
    _r.register(_f.LLM_SANITIZE_REQUEST, name, priority, guardrail)


def deregister_llm_sanitize_request(name: str) -> bool:
    """Remove an LLM request sanitizer; False if none had that name."""
    return _r.deregister(_f.LLM_SANITIZE_REQUEST, name)


def register_llm_sanitize_response(name: str, priority: int, guardrail: LlmSanitizeResponseGuardrail) -> None:
    """Sanitize recorded LLM responses: ``guardrail(response, context)`` returns JSON (or None to omit).

    Raises:
        TypeError: The callback does not accept ``(payload, context)``.
    """
    _r.register(_f.LLM_SANITIZE_RESPONSE, name, priority, guardrail)


def deregister_llm_sanitize_response(name: str) -> bool:
    """Remove an LLM response sanitizer; False if none had that name."""
    return _r.deregister(_f.LLM_SANITIZE_RESPONSE, name)


def register_llm_conditional_execution(name: str, priority: int, guardrail: LlmConditionalExecutionGuardrail) -> None:
    """Gate LLM calls: ``guardrail(request)`` returns None to allow or a string reason to reject."""
    _r.register(_f.LLM_CONDITIONAL_EXECUTION, name, priority, guardrail)


def deregister_llm_conditional_execution(name: str) -> bool:
    """Remove an LLM conditional-execution guardrail; False if none had that name."""
    return _r.deregister(_f.LLM_CONDITIONAL_EXECUTION, name)
