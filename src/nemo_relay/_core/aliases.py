"""Callback and payload type aliases of the public API (loaded on first use: they need ``typing``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeAlias, TypedDict, Union

from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay._core.llmctx import LlmSanitizeRequestContext, LlmSanitizeResponseContext
from nemo_relay._core.types import JsonValue
from nemo_relay._core.values import (
    LLMRequest,
    LLMRequestInterceptOutcome,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
)

Event: TypeAlias = Union[ScopeEvent, MarkEvent]  # noqa: UP007 - runtime alias


class EventSanitizeFields(TypedDict):
    """The fields an event sanitizer may rewrite (the return value replaces all three)."""

    data: JsonValue
    category_profile: dict[str, JsonValue] | None
    metadata: JsonValue


EventSanitizeGuardrail: TypeAlias = Callable[
    [Event, EventSanitizeFields], EventSanitizeFields | Awaitable[EventSanitizeFields]
]
EventMetadataScalar: TypeAlias = str | bool | int | float
EventMetadataValue: TypeAlias = EventMetadataScalar | list[str] | list[bool] | list[int | float]
EventMetadata: TypeAlias = dict[str, EventMetadataValue]
EventMetadataInjectorCallback: TypeAlias = Callable[[Event], EventMetadata | Awaitable[EventMetadata]]

ToolSanitizeGuardrail: TypeAlias = Callable[[str, JsonValue], JsonValue | Awaitable[JsonValue]]
ToolConditionalExecutionGuardrail: TypeAlias = Callable[[str, JsonValue], str | Awaitable[str | None] | None]
LlmSanitizeRequestGuardrail: TypeAlias = Callable[
    [LLMRequest, LlmSanitizeRequestContext], LLMRequest | Awaitable[LLMRequest | None] | None
]
LlmSanitizeResponseGuardrail: TypeAlias = Callable[
    [JsonValue, LlmSanitizeResponseContext], JsonValue | Awaitable[JsonValue]
]
LlmConditionalExecutionGuardrail: TypeAlias = Callable[[LLMRequest], str | Awaitable[str | None] | None]

ToolRequestIntercept: TypeAlias = Callable[[str, JsonValue], JsonValue | Awaitable[JsonValue]]
ToolExecutionNext: TypeAlias = Callable[[JsonValue], Awaitable[ToolExecutionResult[JsonValue]]]
ToolExecutionIntercept: TypeAlias = Callable[
    [str, JsonValue, ToolExecutionNext],
    ToolExecutionInterceptOutcome | Awaitable[ToolExecutionInterceptOutcome],
]
LlmRequestIntercept: TypeAlias = Callable[
    [str, LLMRequest, object], LLMRequestInterceptOutcome | Awaitable[LLMRequestInterceptOutcome]
]
LlmExecutionNext: TypeAlias = Callable[[LLMRequest], Awaitable[JsonValue]]
LlmExecutionIntercept: TypeAlias = Callable[[str, LLMRequest, LlmExecutionNext], JsonValue | Awaitable[JsonValue]]
LlmStreamNext: TypeAlias = Callable[[LLMRequest], Awaitable[AsyncIterator[JsonValue]]]
LlmStreamExecutionIntercept: TypeAlias = Callable[
    [LLMRequest, LlmStreamNext], AsyncIterator[JsonValue] | Awaitable[AsyncIterator[JsonValue]]
]

NAMES = (
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
