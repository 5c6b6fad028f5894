"""NeMo Relay in pure Python: one execution model for agent scopes, tool calls and LLM calls.

Scopes nest on a per-context stack (isolated across asyncio tasks and threads, propagatable across
processes); every scope, mark and managed call emits lifecycle events that a background dispatcher
delivers to subscribers. The public API matches the reference ``nemo-relay`` 0.8.4 package.

Quick start::

    import nemo_relay
    from nemo_relay import ScopeType, scope, subscribers

    subscribers.register("print", lambda event: print(event.to_json()))
    with scope.scope("agent", ScopeType.Agent):
        scope.event("thinking", data={"step": 1})
    subscribers.flush()
"""

from __future__ import annotations

import atexit as _atexit

from nemo_relay import (
    errors,
    event_metadata,
    guardrails,
    intercepts,
    llm,
    scope,
    scope_local,
    subscribers,
    tools,
)
from nemo_relay._core import oplog as _oplog
from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
from nemo_relay._core.context import (
    ScopeStack,
    _propagation_parent_var,
    _propagation_root_var,
    _scope_stack_var,
    get_scope_stack,
    propagate_scope_to_thread,
    scope_stack_active,
    set_thread_scope_stack,
    use_scope_stack,
)
from nemo_relay._core.context import new_stack as _new_stack
from nemo_relay._core.events import Event, MarkEvent, ScopeEvent
from nemo_relay._core.handles import LLMHandle, ScopeHandle, ToolHandle
from nemo_relay._core.llmctx import (
    LlmCodecIdentity,
    LlmSanitizeRequestCodec,
    LlmSanitizeRequestContext,
    LlmSanitizeResponseCodec,
    LlmSanitizeResponseContext,
)
from nemo_relay._core.metrics import MetricMeasurement
from nemo_relay._core.propagation import (
    PropagationContext,
    capture_propagation_context,
    capture_propagation_context_with_root,
    capture_traceparent,
    create_scope_stack_from_propagation,
    fork_asyncio_context,
)
from nemo_relay._core.types import (
    Json,
    JsonObject,
    JsonPrimitive,
    JsonValue,
    LLMAttributes,
    LogSeverity,
    MetricKind,
    MetricTemporality,
    MetricValueType,
    ScopeAttributes,
    ScopeType,
    ToolAttributes,
)
from nemo_relay._core.values import (
    LLMRequest,
    LLMRequestInterceptOutcome,
    PendingMarkSpec,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
)

TYPE_CHECKING = False  # `typing` costs milliseconds at import; these names are built on first use
if TYPE_CHECKING:
    from typing import Literal, TypeAlias

    from nemo_relay._core.types import DataSchema

    UnsupportedBehavior: TypeAlias = Literal["ignore", "warn", "error"]
    from nemo_relay import codecs, observability, plugin, runtime_registrations, typed
    from nemo_relay._core.aliases import (
        EventMetadata,
        EventMetadataInjectorCallback,
        EventMetadataScalar,
        EventMetadataValue,
        EventSanitizeFields,
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
    from nemo_relay._core.observability.atif.exporter import AtifExporter
    from nemo_relay._core.observability.atof import (
        AtofExporter,
        AtofExporterConfig,
        AtofExporterMode,
        AtofStreamSinkConfig,
    )
    from nemo_relay._core.observability.otel.diagnostics import (
        OpenTelemetryRuntimeDiagnostic,
        OpenTelemetryRuntimeDiagnostics,
    )
    from nemo_relay._core.observability.otel.logs import OpenTelemetryLogConfig, OpenTelemetryLogSubscriber
    from nemo_relay._core.observability.otel.metrics import OpenTelemetryMetricConfig, OpenTelemetryMetricSubscriber
    from nemo_relay._core.observability.otel.traces import OpenTelemetryConfig, OpenTelemetrySubscriber

_LAZY_MODULES = ("runtime_registrations", "_native", "utils", "codecs", "typed", "plugin", "observability")

# Exporter classes, loaded on first use (they pull optional libraries such as opentelemetry-sdk).
_LAZY_NAMES = {
    "AtofExporter": "nemo_relay._core.observability.atof",
    "AtofExporterConfig": "nemo_relay._core.observability.atof",
    "AtofExporterMode": "nemo_relay._core.observability.atof",
    "AtofStreamSinkConfig": "nemo_relay._core.observability.atof",
    "AtifExporter": "nemo_relay._core.observability.atif.exporter",
    "OpenTelemetryConfig": "nemo_relay._core.observability.otel.traces",
    "OpenTelemetrySubscriber": "nemo_relay._core.observability.otel.traces",
    "OpenTelemetryRuntimeDiagnostic": "nemo_relay._core.observability.otel.diagnostics",
    "OpenTelemetryRuntimeDiagnostics": "nemo_relay._core.observability.otel.diagnostics",
    "OpenTelemetryLogConfig": "nemo_relay._core.observability.otel.logs",
    "OpenTelemetryLogSubscriber": "nemo_relay._core.observability.otel.logs",
    "OpenTelemetryMetricConfig": "nemo_relay._core.observability.otel.metrics",
    "OpenTelemetryMetricSubscriber": "nemo_relay._core.observability.otel.metrics",
}


def __getattr__(name: str) -> object:
    # Rarely needed names load on first use, so `import nemo_relay` stays cheap.
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"nemo_relay.{name}")
    module_name = _LAZY_NAMES.get(name)
    if module_name is not None:
        import importlib

        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value
        return value
    if name in _ALIASES:
        from nemo_relay._core import aliases

        return getattr(aliases, name)
    if name == "DataSchema":
        from nemo_relay._core import types

        return types.DataSchema
    if name == "UnsupportedBehavior":
        from typing import Literal

        alias = Literal["ignore", "warn", "error"]
        globals()[name] = alias
        return alias
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_scope_stack() -> ScopeStack:
    """Create a new isolated scope stack with its own root; it is not installed anywhere.

    Install it with ``use_scope_stack``, ``set_thread_scope_stack`` or ``_scope_stack_var.set``.
    """
    return _new_stack()


_oplog.init_from_env()
_atexit.register(_oplog.shutdown)

_ALIASES = frozenset(
    (
        "EventSanitizeFields",
        "EventSanitizeGuardrail",
        "EventMetadataScalar",
        "EventMetadataValue",
        "EventMetadata",
        "EventMetadataInjectorCallback",
        "ToolSanitizeGuardrail",
        "ToolConditionalExecutionGuardrail",
        "LlmSanitizeRequestGuardrail",
        "LlmSanitizeResponseGuardrail",
        "LlmConditionalExecutionGuardrail",
        "ToolRequestIntercept",
        "ToolExecutionIntercept",
        "LlmRequestIntercept",
        "LlmExecutionIntercept",
        "LlmStreamExecutionIntercept",
    )
)

__all__ = [
    # submodules
    "codecs",
    "errors",
    "observability",
    "plugin",
    "event_metadata",
    "guardrails",
    "intercepts",
    "llm",
    "runtime_registrations",
    "scope",
    "scope_local",
    "subscribers",
    "tools",
    "typed",
    # scope-stack isolation and propagation
    "PropagationContext",
    "ScopeStack",
    "capture_propagation_context",
    "capture_propagation_context_with_root",
    "capture_traceparent",
    "create_scope_stack",
    "create_scope_stack_from_propagation",
    "fork_asyncio_context",
    "get_scope_stack",
    "propagate_scope_to_thread",
    "scope_stack_active",
    "set_thread_scope_stack",
    "use_scope_stack",
    # types
    "DataSchema",
    "Event",
    "LLMAttributes",
    "LogSeverity",
    "MarkEvent",
    "MetricKind",
    "MetricMeasurement",
    "MetricTemporality",
    "MetricValueType",
    "ScopeAttributes",
    "ScopeEvent",
    "ScopeHandle",
    "ScopeType",
    "ToolAttributes",
    "ToolHandle",
    "LLMHandle",
    "ToolExecutionResult",
    "ToolExecutionInterceptOutcome",
    "LLMRequest",
    "LLMRequestInterceptOutcome",
    "PendingMarkSpec",
    "AnnotatedLLMRequest",
    "AnnotatedLLMResponse",
    "LlmCodecIdentity",
    "LlmSanitizeRequestCodec",
    "LlmSanitizeRequestContext",
    "LlmSanitizeResponseCodec",
    "LlmSanitizeResponseContext",
    # exporters (loaded on first use)
    "AtifExporter",
    "AtofExporter",
    "AtofExporterConfig",
    "AtofExporterMode",
    "AtofStreamSinkConfig",
    "OpenTelemetryConfig",
    "OpenTelemetryLogConfig",
    "OpenTelemetryLogSubscriber",
    "OpenTelemetryMetricConfig",
    "OpenTelemetryMetricSubscriber",
    "OpenTelemetryRuntimeDiagnostic",
    "OpenTelemetryRuntimeDiagnostics",
    "OpenTelemetrySubscriber",
    # callback and payload aliases (built on first use)
    "EventMetadata",
    "EventMetadataInjectorCallback",
    "EventMetadataScalar",
    "EventMetadataValue",
    "EventSanitizeFields",
    "EventSanitizeGuardrail",
    "LlmConditionalExecutionGuardrail",
    "LlmExecutionIntercept",
    "LlmRequestIntercept",
    "LlmSanitizeRequestGuardrail",
    "LlmSanitizeResponseGuardrail",
    "LlmStreamExecutionIntercept",
    "ToolConditionalExecutionGuardrail",
    "ToolExecutionIntercept",
    "ToolRequestIntercept",
    "ToolSanitizeGuardrail",
    # JSON aliases
    "Json",
    "JsonObject",
    "JsonPrimitive",
    "JsonValue",
    "UnsupportedBehavior",
]

# Private names that reference-compatible code and tests touch directly.
_reference_private = (_scope_stack_var, _propagation_parent_var, _propagation_root_var)
