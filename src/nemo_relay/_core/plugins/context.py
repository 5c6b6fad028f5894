"""The registration context handed to a plugin component's ``register``, and its rollback.

Each ``register_*`` call registers globally at once, under ``namespace + name``, and records how to
undo it. Rollback undoes everything in reverse order; each undo reports a ``Teardown`` outcome. The
context is sealed when ``register`` returns: later calls raise instead of leaking registrations that
no rollback would ever remove.
"""

from __future__ import annotations

import time

from nemo_relay import event_metadata, guardrails, intercepts, runtime_registrations, subscribers
from nemo_relay._core import args
from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.plugins import model, names

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

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
    from nemo_relay.runtime_registrations import ConditionalMiddlewareGuardrail, RuntimeRegistrationKind

    Undo = Callable[[float | None], Teardown | None]


class ComponentContext:
    """Component-scoped registration: every name is qualified with the component's namespace.

    Extras for built-in plugins: ``namespace`` (the effective-name prefix), ``component`` (the kind),
    ``ordinal``, ``diagnostics`` (the active configuration's ``RuntimeDiagnostics``, shown in
    ``plugin.report()``) and ``add_teardown``.
    """

    __slots__ = ("component", "ordinal", "namespace", "diagnostics", "_undo", "_sealed")

    def __init__(self, kind: str, ordinal: int, diagnostics: RuntimeDiagnostics) -> None:
        self.component = kind
        self.ordinal = ordinal
        self.namespace = names.namespace(kind, ordinal)
        self.diagnostics = diagnostics
        self._undo: list[tuple[str, Undo]] = []
        self._sealed = False

    def __repr__(self) -> str:
        return f"PluginContext(component={self.component!r}, namespace={self.namespace!r})"

    # --- bookkeeping ---------------------------------------------------------------------------------------

    def _qualify(self, name: object) -> str:
        if self._sealed:
            raise RuntimeError(
                f"plugin context of component '{self.component}' is closed: register callbacks only while "
                "Plugin.register runs (configure plugins again with plugin.initialize() to change them)"
            )
        return self.namespace + args.text(name, "name")

    def _add(self, name: object, register: Callable[..., None], deregister: Callable[[str], bool], *rest: Any) -> None:
        qualified = self._qualify(name)
        register(qualified, *rest)

        def undo(_left: float | None) -> None:
            # Already gone (someone deregistered the effective name directly) also counts as removed.
            deregister(qualified)

        self._undo.append((qualified, undo))

    def add_teardown(self, name: str, fn: Callable[[float | None], Teardown]) -> None:
        """Run ``fn(seconds_left)`` on rollback or clear (reverse order); its ``Teardown`` is the outcome.

        ``seconds_left`` is what remains of the teardown deadline (None: no deadline).
        """
        qualified = self._qualify(name)
        args.function(fn, "fn")
        self._undo.append((qualified, fn))

    def seal(self) -> None:
        """Refuse further registrations (called when the component's ``register`` returns)."""
        self._sealed = True

    def rollback(self, deadline: float | None) -> list[tuple[str, Teardown]]:
        """Undo every registration in reverse order; ``(effective name, outcome)`` for each."""
        self._sealed = True
        outcomes: list[tuple[str, Teardown]] = []
        while self._undo:
            qualified, undo = self._undo.pop()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                outcome = undo(left)
            except Exception as exc:
                outcome = Teardown.not_removed(f"{model.type_name(exc)}: {exc}")
            outcomes.append((qualified, outcome if isinstance(outcome, Teardown) else Teardown.removed()))
        return outcomes

    # --- the public registration surfaces ------------------------------------------------------------------

    def register_subscriber(self, name: str, callback: Callable[[Event], None]) -> None:
        """Register a subscriber that receives every event."""
        self._add(name, subscribers.register, subscribers.deregister, callback)

    def register_conditional_middleware_guardrail(
        self,
        name: str,
        kinds: set[RuntimeRegistrationKind],
        registration_name: str,
        guardrail: ConditionalMiddlewareGuardrail,
    ) -> None:
        """Gate the global registration ``registration_name`` (an effective name, used as given)."""
        self._add(
            name,
            runtime_registrations.register_conditional_middleware_guardrail,
            runtime_registrations.deregister_conditional_middleware_guardrail,
            kinds,
            registration_name,
            guardrail,
        )

    def register_event_metadata_injector(
        self, name: str, priority: int, callback: EventMetadataInjectorCallback
    ) -> None:
        """Register an event metadata injector."""
        self._add(name, event_metadata.register_injector, event_metadata.deregister_injector, priority, callback)

    def register_mark_sanitize_guardrail(self, name: str, priority: int, callback: EventSanitizeGuardrail) -> None:
        """Register a mark sanitizer."""
        self._add(name, guardrails.register_mark_sanitize, guardrails.deregister_mark_sanitize, priority, callback)

    def register_scope_sanitize_start_guardrail(
        self, name: str, priority: int, callback: EventSanitizeGuardrail
    ) -> None:
        """Register a scope-start sanitizer."""
        self._add(
            name,
            guardrails.register_scope_sanitize_start,
            guardrails.deregister_scope_sanitize_start,
            priority,
            callback,
        )

    def register_scope_sanitize_end_guardrail(self, name: str, priority: int, callback: EventSanitizeGuardrail) -> None:
        """Register a scope-end sanitizer."""
        self._add(
            name, guardrails.register_scope_sanitize_end, guardrails.deregister_scope_sanitize_end, priority, callback
        )

    def register_tool_sanitize_request_guardrail(
        self, name: str, priority: int, callback: ToolSanitizeGuardrail
    ) -> None:
        """Register a tool request sanitizer (recorded arguments only)."""
        self._add(
            name,
            guardrails.register_tool_sanitize_request,
            guardrails.deregister_tool_sanitize_request,
            priority,
            callback,
        )

    def register_tool_sanitize_response_guardrail(
        self, name: str, priority: int, callback: ToolSanitizeGuardrail
    ) -> None:
        """Register a tool response sanitizer (recorded results only)."""
        self._add(
            name,
            guardrails.register_tool_sanitize_response,
            guardrails.deregister_tool_sanitize_response,
            priority,
            callback,
        )

    def register_tool_conditional_execution_guardrail(
        self, name: str, priority: int, callback: ToolConditionalExecutionGuardrail
    ) -> None:
        """Register a tool guardrail that may block execution."""
        self._add(
            name,
            guardrails.register_tool_conditional_execution,
            guardrails.deregister_tool_conditional_execution,
            priority,
            callback,
        )

    def register_llm_sanitize_request_guardrail(
        self, name: str, priority: int, callback: LlmSanitizeRequestGuardrail
    ) -> None:
        """Register an LLM request sanitizer (recorded requests only)."""
        self._add(
            name,
            guardrails.register_llm_sanitize_request,
            guardrails.deregister_llm_sanitize_request,
            priority,
            callback,
        )

    def register_llm_sanitize_response_guardrail(
        self, name: str, priority: int, callback: LlmSanitizeResponseGuardrail
    ) -> None:
        """Register an LLM response sanitizer (recorded responses only)."""
        self._add(
            name,
            guardrails.register_llm_sanitize_response,
            guardrails.deregister_llm_sanitize_response,
            priority,
            callback,
        )

    def register_llm_conditional_execution_guardrail(
        self, name: str, priority: int, callback: LlmConditionalExecutionGuardrail
    ) -> None:
        """Register an LLM guardrail that may block execution."""
        self._add(
            name,
            guardrails.register_llm_conditional_execution,
            guardrails.deregister_llm_conditional_execution,
            priority,
            callback,
        )

    def register_llm_request_intercept(
        self, name: str, priority: int, break_chain: bool, callback: LlmRequestIntercept
    ) -> None:
        """Register an LLM request intercept (rewrites the real request)."""
        self._add(
            name, intercepts.register_llm_request, intercepts.deregister_llm_request, priority, break_chain, callback
        )

    def register_llm_execution_intercept(self, name: str, priority: int, callback: LlmExecutionIntercept) -> None:
        """Register an LLM execution intercept (wraps buffered calls)."""
        self._add(name, intercepts.register_llm_execution, intercepts.deregister_llm_execution, priority, callback)

    def register_llm_stream_execution_intercept(
        self, name: str, priority: int, callback: LlmStreamExecutionIntercept
    ) -> None:
        """Register an LLM stream execution intercept (wraps streamed calls)."""
        self._add(
            name,
            intercepts.register_llm_stream_execution,
            intercepts.deregister_llm_stream_execution,
            priority,
            callback,
        )

    def register_tool_request_intercept(
        self, name: str, priority: int, break_chain: bool, callback: ToolRequestIntercept
    ) -> None:
        """Register a tool request intercept (rewrites the real arguments)."""
        self._add(
            name, intercepts.register_tool_request, intercepts.deregister_tool_request, priority, break_chain, callback
        )

    def register_tool_execution_intercept(self, name: str, priority: int, callback: ToolExecutionIntercept) -> None:
        """Register a tool execution intercept (wraps execution)."""
        self._add(name, intercepts.register_tool_execution, intercepts.deregister_tool_execution, priority, callback)


def describe_failures(kind: str, outcomes: list[tuple[str, Teardown]]) -> tuple[list[str], bool]:
    """Error texts for the outcomes that were not clean, and whether callbacks may remain registered."""
    errors: list[str] = []
    may_remain = False
    for qualified, outcome in outcomes:
        if outcome.status == Teardown.REMOVED_WITH_ERROR:
            errors.append(f"{kind} registration '{qualified}' reported a delivery failure: {outcome.message}")
        elif outcome.status == Teardown.NOT_REMOVED:
            errors.append(f"{kind} registration '{qualified}' could not be removed: {outcome.message}")
            may_remain = True
    return errors, may_remain
