"""A scripted agent run shared by the OpenTelemetry trace tests, plus helpers to read its events.

The run: an agent scope (session metadata) → an OpenAI Chat LLM call through the codec (usage with
cached tokens) → a tool call whose callback opens a nested function scope with a mark inside → a
plain mark, an ``llm.chunk`` mark and a metric mark on the agent → a tool that raises.
"""

from __future__ import annotations

import asyncio
import uuid as uuid_module
from collections.abc import Callable
from typing import Any

import nemo_relay
from nemo_relay import (
    LLMRequest,
    MetricKind,
    MetricMeasurement,
    MetricValueType,
    ScopeType,
    ToolExecutionResult,
    llm,
    scope,
    tools,
)
from nemo_relay.codecs import OpenAIChatCodec

LOW_64 = (1 << 64) - 1

CHAT_REQUEST: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is 2+3?"}],
    "temperature": 0.2,
    "max_tokens": 50,
    "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}],
}
CHAT_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-9",
    "model": "gpt-4o-2024",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a":2,"b":3}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 7,
        "total_tokens": 27,
        "prompt_tokens_details": {"cached_tokens": 4},
    },
}
AGENT_METADATA = {"session_id": "sess-1", "user_id": "u-1", "agent_kind": "planner"}


async def agent_run() -> list[Any]:
    """Run the scripted agent; returns what the calls returned (the tool result and the failure text)."""
    results: list[Any] = []
    with scope.scope("agent-run", ScopeType.Agent, metadata=AGENT_METADATA, input={"q": "2+3"}):
        codec = OpenAIChatCodec()
        response = await llm.execute(
            "openai.chat",
            LLMRequest({}, CHAT_REQUEST),
            lambda request: CHAT_RESPONSE,
            model_name="gpt-4o",
            codec=codec,
            response_codec=codec,
        )
        results.append(response["id"])

        async def add(args: Any) -> ToolExecutionResult[Any]:
            with scope.scope("helper", ScopeType.Function, input={"n": 1}):
                scope.event("inside-helper", data={"k": 1})
            return ToolExecutionResult(args["a"] + args["b"])

        added = await tools.execute("add", {"a": 2, "b": 3}, add, tool_call_id="call_1")
        results.append(added.result)
        scope.event("note", data={"text": "hello", "n": 3}, metadata={"m": 1})
        scope.event("llm.chunk", data={"delta": "x"})
        scope.metric("tokens.used", [MetricMeasurement("tokens.used", MetricKind.Counter, MetricValueType.U64, 5)])

        async def bad(args: Any) -> ToolExecutionResult[Any]:
            raise ValueError("boom")

        try:
            await tools.execute("bad", {}, bad)
        except RuntimeError as exc:
            results.append(str(exc))
    return results


def run(coroutine_function: Callable[[], Any]) -> Any:
    """Run an async scenario to completion on a fresh loop (inheriting the test's scope stack)."""
    return asyncio.run(coroutine_function())


def id_int(uuid: str) -> int:
    """A Relay UUID as a 128-bit integer."""
    return uuid_module.UUID(uuid).int


def span_id(uuid: str) -> int:
    """The span id Relay derives from an event UUID (its last 8 bytes)."""
    return id_int(uuid) & LOW_64


def start_of(events: list[Any], name: str) -> Any:
    """The start event of the scope called ``name``."""
    return next(
        e for e in events if isinstance(e, nemo_relay.ScopeEvent) and e.name == name and e.scope_category == "start"
    )


def mark_of(events: list[Any], name: str) -> Any:
    """The mark called ``name``."""
    return next(e for e in events if isinstance(e, nemo_relay.MarkEvent) and e.name == name)
