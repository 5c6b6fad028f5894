"""Registrations owned by a scope: visible to that scope and its descendants, removed when it is popped.

Every global middleware family (guardrails, intercepts, sanitizers, injectors) and subscribers can be
registered on a scope handle. The owning scope must be on the current stack when registering or
deregistering. At equal priority, global entries run first, then outer scopes', then inner scopes'.
Events already emitted keep the registrations they were emitted with.
"""

from __future__ import annotations

from nemo_relay._core import registrars as _r
from nemo_relay._core import registry as _f
from nemo_relay._core.handles import ScopeHandle

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from nemo_relay._core.aliases import (
        Event,
        EventMetadataInjectorCallback,
        EventSanitizeGuardrail,
        LlmConditionalExecutionGuardrail,
        LlmExecutionIntercept,
        LlmRequestIntercept,
        LlmSanitizeRequestGuardrail,
        LlmSanitizeResponseGuardrail,
        LlmStreamExecutionIntercept,
        ToolConditionalExecutionGuardrail,
        ToolExecutionIntercept,
        ToolRequestIntercept,
        ToolSanitizeGuardrail,
    )

__all__ = [
    "register_event_metadata_injector",
    "deregister_event_metadata_injector",
    "register_mark_sanitize",
    "deregister_mark_sanitize",
    "register_scope_sanitize_start",
    "deregister_scope_sanitize_start",
    "register_scope_sanitize_end",
    "deregister_scope_sanitize_end",
    "register_tool_sanitize_request",
    "deregister_tool_sanitize_request",
    "register_tool_sanitize_response",
    "deregister_tool_sanitize_response",
    "register_tool_conditional_execution",
    "deregister_tool_conditional_execution",
    "register_tool_request",
    "deregister_tool_request",
    "register_tool_execution",
    "deregister_tool_execution",
    "register_llm_sanitize_request",
    "deregister_llm_sanitize_request",
    "register_llm_sanitize_response",
    "deregister_llm_sanitize_response",
    "register_llm_conditional_execution",
    "deregister_llm_conditional_execution",
    "register_llm_request",
    "deregister_llm_request",
    "register_llm_execution",
    "deregister_llm_execution",
    "register_llm_stream_execution",
    "deregister_llm_stream_execution",
    "register_subscriber",
    "deregister_subscriber",
]


def register_event_metadata_injector(
    scope_handle: ScopeHandle, name: str, priority: int, injector: EventMetadataInjectorCallback
) -> None:
    """Register a metadata injector owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.EVENT_METADATA_INJECTOR, name, priority, injector, owner=scope_handle)


def deregister_event_metadata_injector(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a metadata injector owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.EVENT_METADATA_INJECTOR, name, scope_handle)


def register_mark_sanitize(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: EventSanitizeGuardrail
) -> None:
    """Register a mark sanitizer owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.MARK_SANITIZE, name, priority, guardrail, owner=scope_handle)


def deregister_mark_sanitize(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a mark sanitizer owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.MARK_SANITIZE, name, scope_handle)


def register_scope_sanitize_start(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: EventSanitizeGuardrail
) -> None:
    """Register a scope-start sanitizer owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.SCOPE_SANITIZE_START, name, priority, guardrail, owner=scope_handle)


def deregister_scope_sanitize_start(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a scope-start sanitizer owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.SCOPE_SANITIZE_START, name, scope_handle)


def register_scope_sanitize_end(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: EventSanitizeGuardrail
) -> None:
    """Register a scope-end sanitizer owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.SCOPE_SANITIZE_END, name, priority, guardrail, owner=scope_handle)


def deregister_scope_sanitize_end(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a scope-end sanitizer owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.SCOPE_SANITIZE_END, name, scope_handle)


def register_tool_sanitize_request(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: ToolSanitizeGuardrail
) -> None:
    """Register a tool request sanitizer owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.TOOL_SANITIZE_REQUEST, name, priority, guardrail, owner=scope_handle)


def deregister_tool_sanitize_request(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a tool request sanitizer owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.TOOL_SANITIZE_REQUEST, name, scope_handle)


def register_tool_sanitize_response(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: ToolSanitizeGuardrail
) -> None:
    """Register a tool response sanitizer owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.TOOL_SANITIZE_RESPONSE, name, priority, guardrail, owner=scope_handle)


def deregister_tool_sanitize_response(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a tool response sanitizer owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.TOOL_SANITIZE_RESPONSE, name, scope_handle)


def register_tool_conditional_execution(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: ToolConditionalExecutionGuardrail
) -> None:
    """Register a tool conditional-execution guardrail owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.TOOL_CONDITIONAL_EXECUTION, name, priority, guardrail, owner=scope_handle)


def deregister_tool_conditional_execution(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a tool conditional-execution guardrail owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.TOOL_CONDITIONAL_EXECUTION, name, scope_handle)


def register_tool_request(
    scope_handle: ScopeHandle, name: str, priority: int, break_chain: bool, fn: ToolRequestIntercept
) -> None:
    """Register a tool request intercept owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.TOOL_REQUEST_INTERCEPT, name, priority, fn, break_chain, owner=scope_handle)


def deregister_tool_request(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a tool request intercept owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.TOOL_REQUEST_INTERCEPT, name, scope_handle)


def register_tool_execution(scope_handle: ScopeHandle, name: str, priority: int, fn: ToolExecutionIntercept) -> None:
    """Register a tool execution intercept owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.TOOL_EXECUTION_INTERCEPT, name, priority, fn, owner=scope_handle)


def deregister_tool_execution(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a tool execution intercept owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.TOOL_EXECUTION_INTERCEPT, name, scope_handle)


def register_llm_sanitize_request(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: LlmSanitizeRequestGuardrail
) -> None:
    """Register an LLM request sanitizer owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.LLM_SANITIZE_REQUEST, name, priority, guardrail, owner=scope_handle)


def deregister_llm_sanitize_request(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove an LLM request sanitizer owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.LLM_SANITIZE_REQUEST, name, scope_handle)


def register_llm_sanitize_response(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: LlmSanitizeResponseGuardrail
) -> None:
    """Register an LLM response sanitizer owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.LLM_SANITIZE_RESPONSE, name, priority, guardrail, owner=scope_handle)


def deregister_llm_sanitize_response(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove an LLM response sanitizer owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.LLM_SANITIZE_RESPONSE, name, scope_handle)


def register_llm_conditional_execution(
    scope_handle: ScopeHandle, name: str, priority: int, guardrail: LlmConditionalExecutionGuardrail
) -> None:
    """Register an LLM conditional-execution guardrail owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.LLM_CONDITIONAL_EXECUTION, name, priority, guardrail, owner=scope_handle)


def deregister_llm_conditional_execution(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove an LLM conditional-execution guardrail owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.LLM_CONDITIONAL_EXECUTION, name, scope_handle)


def register_llm_request(
    scope_handle: ScopeHandle, name: str, priority: int, break_chain: bool, fn: LlmRequestIntercept
) -> None:
    """Register an LLM request intercept owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.LLM_REQUEST_INTERCEPT, name, priority, fn, break_chain, owner=scope_handle)


def deregister_llm_request(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove an LLM request intercept owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.LLM_REQUEST_INTERCEPT, name, scope_handle)


def register_llm_execution(scope_handle: ScopeHandle, name: str, priority: int, fn: LlmExecutionIntercept) -> None:
    """Register an LLM execution intercept owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.LLM_EXECUTION_INTERCEPT, name, priority, fn, owner=scope_handle)


def deregister_llm_execution(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove an LLM execution intercept owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.LLM_EXECUTION_INTERCEPT, name, scope_handle)


def register_llm_stream_execution(
    scope_handle: ScopeHandle, name: str, priority: int, fn: LlmStreamExecutionIntercept
) -> None:
    """Register an LLM stream execution intercept owned by ``scope_handle`` (global contract).

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> already exists``.
    """
    _r.register(_f.LLM_STREAM_EXECUTION_INTERCEPT, name, priority, fn, owner=scope_handle)


def deregister_llm_stream_execution(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove an LLM stream execution intercept owned by ``scope_handle``; False if it had none by that name."""
    return _r.deregister(_f.LLM_STREAM_EXECUTION_INTERCEPT, name, scope_handle)


def register_subscriber(scope_handle: ScopeHandle, name: str, callback: Callable[[Event], None]) -> None:
    """Register a subscriber owned by ``scope_handle``.

    It receives events emitted while the owner is on the stack: the owner's own end event, its
    descendants' events, and marks under it.

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack,
            or ``already exists: <name> subscriber already exists``.
    """
    _r.register(_f.SUBSCRIBER, name, 0, callback, owner=scope_handle)


def deregister_subscriber(scope_handle: ScopeHandle, name: str) -> bool:
    """Remove a subscriber owned by ``scope_handle``; False if it had none by that name.

    Raises:
        RuntimeError: ``not found: scope <uuid> not found`` when the owner is not on the current stack.
    """
    return _r.deregister(_f.SUBSCRIBER, name, scope_handle)
