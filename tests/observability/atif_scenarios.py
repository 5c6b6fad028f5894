"""Scripted agent runs for ATIF comparisons, written against the public API only.

The same module runs under this package and under the reference wheel (``nemo-relay`` 0.8.4):
``atif_reference_gen.py`` records the reference's trajectories for every scenario into
``fixtures/atif_reference/``, and ``test_atif_reference.py`` replays them here and compares.

Most runs use manual ``llm.call``/``tools.call`` with fixed timestamps, so timestamps (and the
``invocation`` epoch seconds derived from them) are compared exactly. Runs through managed
``execute`` (codecs, streaming) get wall-clock times, which ``normalise`` replaces. UUIDs are
replaced by ``U1``, ``U2``, ... in order of first appearance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nemo_relay import LLMRequest, ScopeType, ToolExecutionResult, llm, scope, tools
from nemo_relay.codecs import (
    AnthropicMessagesCodec,
    GeminiGenerateContentCodec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
)

Scenario = Callable[[], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}
WALL_CLOCK: set[str] = set()  # scenarios whose timestamps are not fixed

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")
_EPOCH = re.compile(r'"(start|end)_timestamp": [0-9.e+]+')


def scenario(wall_clock: bool = False) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[fn.__name__] = fn
        if wall_clock:
            WALL_CLOCK.add(fn.__name__)
        return fn

    return register


def normalise(doc: Any, wall_clock: bool) -> Any:
    """``doc`` with UUIDs numbered by first appearance (and times masked for wall-clock runs)."""
    text = json.dumps(doc, sort_keys=True, indent=1)
    mapping: dict[str, str] = {}
    text = _UUID.sub(lambda match: mapping.setdefault(match.group(0), f"U{len(mapping) + 1}"), text)
    if wall_clock:
        text = _TIMESTAMP.sub("TS", text)
        text = _EPOCH.sub(r'"\1_timestamp": "EPOCH"', text)
    return json.loads(text)


class Clock:
    """Fixed timestamps 10 ms apart (or ``ms`` apart), starting 2026-01-02T03:04:05Z."""

    def __init__(self) -> None:
        self.t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self, ms: int = 10) -> datetime:
        self.t += timedelta(milliseconds=ms)
        return self.t


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def chat_request(*messages: dict[str, Any], model: str = "gpt-4o", **params: Any) -> LLMRequest:
    return LLMRequest({}, {"model": model, "messages": list(messages), **params})


def chat_response(
    content: str | None = None,
    calls: list[tuple[str, str, dict[str, Any]]] | None = None,
    usage: dict[str, Any] | None = None,
    model: str = "gpt-4o-2024",
) -> dict[str, Any]:
    """An OpenAI chat completion with optional tool calls ``(id, name, arguments)``."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in calls
        ]
    response: dict[str, Any] = {
        "id": "chatcmpl",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
    }
    if usage:
        response["usage"] = usage
    return response


def manual_llm(name: str, request: LLMRequest, response: Any, clock: Clock, **kwargs: Any) -> None:
    model_name = kwargs.pop("model_name", None)
    handle = llm.call(name, request, model_name=model_name, timestamp=clock())
    llm.call_end(handle, response, timestamp=clock(), **kwargs)


def manual_tool(
    name: str, args: Any, result: Any, clock: Clock, tool_call_id: str | None = None, annotation: Any = None
) -> None:
    handle = tools.call(name, args, tool_call_id=tool_call_id, timestamp=clock())
    tools.call_end(handle, ToolExecutionResult(result, annotation=annotation), timestamp=clock())


ANTHROPIC_REQUEST = {
    "model": "claude",
    "max_tokens": 100,
    "system": "be nice",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]}],
}
ANTHROPIC_RESPONSE = {
    "id": "m1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "Hi"},
        {"type": "text", "text": "there"},
        {"type": "tool_use", "id": "tu1", "name": "weather", "input": {"city": "X"}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
}


# --- the tool loop --------------------------------------------------------------------------------


@scenario()
async def raw_openai_tool_loop() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, input={"q": "hi"}, timestamp=c())
    weather = [("call_1", "weather", {"city": "Paris"})]
    manual_llm(
        "chat",
        chat_request({"role": "system", "content": "sys"}, user("What is the weather?")),
        chat_response(calls=weather, usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}),
        c,
        model_name="gpt-4o",
    )
    manual_tool("weather", {"city": "Paris"}, {"temp": 20}, c, tool_call_id="call_1")
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    manual_llm(
        "chat",
        chat_request(
            user("What is the weather?"),
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "20"},
        ),
        chat_response("It is 20C", usage={"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}),
        c,
    )
    scope.event("mymark", data={"x": 1}, timestamp=c())
    scope.pop(h, timestamp=c())


@scenario()
async def tool_correlation_by_name_and_arguments() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    calls = [("call_a", "add", {"a": 1, "b": 2}), ("call_b", "add", {"a": 3, "b": 4})]
    manual_llm("chat", chat_request(user("q")), chat_response(calls=calls), c)
    manual_tool("add", {"b": 4, "a": 3}, 7, c)
    manual_tool("add", {"a": 1, "b": 2}, 3, c)
    manual_tool("other", {}, "x", c)
    followup = chat_request(user("q"), {"role": "tool", "tool_call_id": "call_a", "content": "3"})
    manual_llm("chat", followup, chat_response("done"), c)
    scope.pop(h, timestamp=c())


@scenario()
async def tool_results_before_and_without_calls() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_tool("search", {"q": "x"}, "result text", c, tool_call_id="t1", annotation={"src": "web"})
    manual_llm("chat", chat_request(user("q")), chat_response("answer"), c)
    manual_tool("search", {"q": "y"}, None, c)
    scope.pop(h, timestamp=c())


@scenario()
async def tool_results_deferred_and_uncorrelated() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_tool("early", {"e": 1}, "early-result", c)
    manual_tool("pre", {"p": 1}, "pre-result", c, tool_call_id="later_id")
    calls = [("later_id", "pre", {"p": 1}), ("", "noid", {}), ("", "noid", {"z": 1})]
    manual_llm("chat", chat_request(user("q")), chat_response(calls=calls), c)
    manual_tool("unmatched", {}, "um", c, tool_call_id="nope")
    manual_tool("noid", {}, "n1", c)
    handle = llm.call("chat", chat_request(user("q2")), timestamp=c())
    manual_tool("during", {}, "d", c)
    llm.call_end(handle, chat_response("fin"), timestamp=c())
    manual_tool("after", {}, "af", c)
    scope.pop(h, timestamp=c())


@scenario()
async def tool_result_with_unknown_id_while_user_turn_open() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_llm("x", chat_request(user("q")), chat_response("a"), c)
    handle = llm.call("x", chat_request(user("q2")), timestamp=c())
    manual_tool("t", {}, "r", c, tool_call_id="zz")
    llm.call_end(handle, chat_response("b"), timestamp=c())
    manual_llm("x", chat_request(user("q3")), chat_response("c"), c)
    scope.pop(h, timestamp=c())


@scenario()
async def tool_result_shapes() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response(calls=[(f"k{i}", "f", {"i": i}) for i in range(6)]), c)
    for i, result in enumerate(["", [{"type": "text", "text": "part"}], {"content": "inner"}, True, 0, ["a"]]):
        manual_tool("f", {"i": i}, result, c, tool_call_id=f"k{i}")
    scope.pop(h, timestamp=c())


@scenario()
async def tool_error_marks_and_function_scopes() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response(calls=[("c1", "boom", {})]), c)
    handle = tools.call("boom", {}, tool_call_id="c1", timestamp=c())
    scope.event("inside-tool", data=1, timestamp=c())
    tools.call_end(
        handle, ToolExecutionResult(None), metadata={"otel.status_code": "ERROR", "error": "bad"}, timestamp=c()
    )
    function = scope.push("func", ScopeType.Function, timestamp=c())
    manual_llm("chat", chat_request(user("q2")), chat_response("a2"), c)
    scope.pop(function, timestamp=c())
    scope.pop(h, timestamp=c())


@scenario()
async def tool_call_argument_shapes() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    calls = [
        {"id": "a1", "type": "function", "function": {"name": "f", "arguments": "not json"}},
        {"id": "a2", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}},
        {"id": "a3", "type": "function", "function": {"name": "f", "arguments": {"already": "obj"}}},
        {"id": "a4", "type": "function", "function": {"name": "f"}},
        {"id": "a5", "function": {"name": "g", "arguments": '"s"'}},
        {"type": "function", "function": {"name": "h", "arguments": "{}"}},
    ]
    manual_llm("chat", chat_request(user("q")), {"choices": [{"message": {"content": None, "tool_calls": calls}}]}, c)
    manual_llm("chat", chat_request(user("q")), {"function_call": {"name": "legacy", "arguments": '{"x": 1}'}}, c)
    legacy = {"choices": [{"message": {"function_call": {"name": "legacy2", "arguments": "{}"}}}]}
    manual_llm("chat", chat_request(user("q")), legacy, c)
    flat = {"tool_calls": [{"id": "tc", "name": "flat", "arguments": {"x": 1}}], "content": "with text"}
    manual_llm("chat", chat_request(user("q")), flat, c)
    scope.pop(h, timestamp=c())


@scenario()
async def open_calls_at_export() -> None:
    c = Clock()
    scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response(calls=[("k", "f", {})]), c)
    tools.call("f", {}, tool_call_id="k", timestamp=c())
    llm.call("chat", chat_request(user("q2")), timestamp=c())


# --- nested agents --------------------------------------------------------------------------------


@scenario(wall_clock=True)
async def subagent_in_managed_tool() -> None:
    with scope.scope("agent", ScopeType.Agent):

        async def plan(request: LLMRequest) -> Any:
            return chat_response(calls=[("call_sub", "researcher", {"topic": "x"})])

        await llm.execute("chat", chat_request(user("delegate")), plan)

        async def researcher(args: Any) -> ToolExecutionResult[Any]:
            with scope.scope("researcher-agent", ScopeType.Agent, input={"topic": "x", "n": 1}):

                async def research(request: LLMRequest) -> Any:
                    return chat_response("found", usage={"prompt_tokens": 3, "completion_tokens": 2})

                await llm.execute("sub-chat", chat_request(user("research x")), research)
            return ToolExecutionResult("found")

        await tools.execute("researcher", {"topic": "x"}, researcher, tool_call_id="call_sub")

        async def answer(request: LLMRequest) -> Any:
            return chat_response("final", usage={"prompt_tokens": 5, "completion_tokens": 1})

        tool_message = {"role": "tool", "tool_call_id": "call_sub", "content": "found"}
        await llm.execute("chat", chat_request(user("delegate"), tool_message), answer)


@scenario()
async def subagent_named_by_metadata_and_standalone() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    calls = [("call_sub", "researcher", {"topic": "x"}), ("call_2", "other", {})]
    manual_llm("chat", chat_request(user("delegate")), chat_response(calls=calls), c)
    sub = scope.push(
        "researcher-agent", ScopeType.Agent, metadata={"tool_call_id": "call_sub"}, input="text input", timestamp=c()
    )
    manual_llm("sub-chat", chat_request(user("research x")), chat_response("found"), c)
    scope.pop(sub, timestamp=c())
    manual_tool("researcher", {"topic": "x"}, "found", c, tool_call_id="call_sub")
    other = scope.push("other-agent", ScopeType.Agent, input={"a": 1}, timestamp=c())
    scope.pop(other, timestamp=c())
    scope.pop(h, timestamp=c())


@scenario()
async def subagent_without_tool_and_session_metadata() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    child = scope.push("child", ScopeType.Agent, metadata={"session_id": "child-sess"}, timestamp=c())
    manual_llm("c-chat", chat_request(user("cq")), chat_response("ca"), c)
    scope.pop(child, timestamp=c())
    scope.pop(h, timestamp=c())


@scenario()
async def subagent_result_merges_tool_result() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("d")), chat_response(calls=[("k1", "sub", {"a": 1})]), c)
    handle = tools.call("sub", {"a": 1}, tool_call_id="k1", metadata={"tool_start": 1}, timestamp=c())
    sub = scope.push("subagent", ScopeType.Agent, metadata={"sub_start": 1}, timestamp=c())
    scope.pop(sub, metadata={"sub_end": 1}, timestamp=c())
    tools.call_end(
        handle, ToolExecutionResult({"obj": 1}, annotation={"ann": 1}), metadata={"tool_end": 1}, timestamp=c()
    )
    scope.pop(h, timestamp=c())


@scenario()
async def subagents_nested_two_levels_and_turn_scope() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    function = scope.push("func", ScopeType.Function, timestamp=c())
    sub1 = scope.push("sub1", ScopeType.Agent, metadata={"session_id": "s-sub1"}, timestamp=c())
    manual_llm("c1", chat_request(user("q1")), chat_response("a1"), c)
    sub2 = scope.push("sub2", ScopeType.Agent, input="hi", timestamp=c())
    manual_llm("c2", chat_request(user("q2")), chat_response("a2"), c)
    scope.pop(sub2, timestamp=c())
    scope.pop(sub1, timestamp=c())
    scope.pop(function, timestamp=c())
    turn = scope.push("turnish", ScopeType.Custom, metadata={"nemo_relay_scope_role": "turn"}, timestamp=c())
    manual_llm("c3", chat_request(user("q3")), chat_response("a3"), c)
    scope.pop(turn, timestamp=c())
    scope.pop(h, timestamp=c())


@scenario()
async def two_sequential_agents_in_one_exporter() -> None:
    c = Clock()
    for i in range(2):
        h = scope.push(f"agent{i}", ScopeType.Agent, timestamp=c())
        manual_llm("chat", chat_request(user(f"q{i}")), chat_response(f"a{i}"), c)
        scope.pop(h, timestamp=c())


@scenario()
async def calls_outside_any_agent() -> None:
    c = Clock()
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    manual_tool("t", {}, 1, c)


@scenario()
async def other_scope_types_are_not_steps() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    for scope_type in (ScopeType.Retriever, ScopeType.Embedder, ScopeType.Guardrail, ScopeType.Custom):
        inner = scope.push(f"s-{scope_type}", scope_type, input={"i": 1}, timestamp=c())
        scope.pop(inner, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    scope.pop(h, timestamp=c())


@scenario()
async def scope_and_event_metadata() -> None:
    c = Clock()
    h = scope.push(
        "agent", ScopeType.Agent, metadata={"session_id": "meta-sess", "user_id": "u1"}, input={"t": 1}, timestamp=c()
    )
    handle = llm.call("x", chat_request(user("q")), metadata={"k": "v"}, data={"d": 1}, timestamp=c())
    llm.call_end(handle, chat_response("a"), metadata={"k2": "v2"}, data={"d": 2}, timestamp=c())
    tool = tools.call("t", {"a": 1}, metadata={"tm": 1}, data={"td": 1}, timestamp=c())
    tools.call_end(tool, ToolExecutionResult({"r": 1}), metadata={"tm2": 2}, timestamp=c())
    scope.event("m", data={"x": 1}, metadata={"mm": 1}, timestamp=c())
    scope.pop(h, timestamp=c())


# --- messages -------------------------------------------------------------------------------------


@scenario()
async def response_shapes() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    output = [
        {"type": "message", "content": [{"type": "output_text", "text": "o1"}, {"type": "output_text", "text": "o2"}]}
    ]
    for response in [
        {"content": "plain content"},
        {"assistant_message": {"content": "am"}},
        {"answer": "ans"},
        {"output_text": "ot"},
        {"output": output},
        {"weird": 1},
        "just a string",
        42,
        None,
        [1, 2],
        {"content": [{"type": "text", "text": "t1"}, {"type": "text", "text": "t2"}]},
    ]:
        manual_llm("chat", LLMRequest({}, {"prompt": "p"}), response, c)
    scope.pop(h, timestamp=c())


@scenario()
async def request_shapes() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    image_url = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    for content in [
        {"messages": [user("a"), user("b")]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "t1"}, image_url]}]},
        {"prompt": "a prompt"},
        {"input": "resp input"},
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "it"}]}]},
        {"messages": [{"role": "system", "content": "only system"}]},
        {},
        {"messages": []},
    ]:
        manual_llm("chat", LLMRequest({}, content), chat_response("r"), c)
    scope.pop(h, timestamp=c())


@scenario()
async def user_message_shapes() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    image = {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
    for messages in [
        [{"role": "user", "content": [{"type": "text", "text": "single"}]}],
        [{"role": "user", "content": [{"type": "input_text", "text": "i1"}, {"type": "input_text", "text": "i2"}]}],
        [{"role": "user", "content": None}],
        [user("first"), assistant("mid")],
        [{"role": "user", "content": [image, {"type": "text", "text": "look"}]}],
        [{"role": "developer", "content": "dev"}, user("u1"), user("u2")],
        [{"role": "user", "content": {"weird": 1}}],
    ]:
        manual_llm("chat", LLMRequest({}, {"model": "m", "messages": messages}), chat_response("r"), c)
    scope.pop(h, timestamp=c())


@scenario()
async def atif_content_parts() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    for content in [
        [{"type": "image", "source": {"media_type": "image/png", "path": "a.png"}}, {"type": "text", "text": "t"}],
        [{"type": "image", "source": {"media_type": "image/bmp", "path": "a.bmp"}}],
        [],
        [{"type": "text"}],
    ]:
        manual_llm("x", LLMRequest({}, {"messages": [{"role": "user", "content": content}]}), {"content": content}, c)
    scope.pop(h, timestamp=c())


@scenario()
async def continuation_requests() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    tool_use = {"type": "tool_use", "id": "tu1", "name": "f", "input": {}}
    anthropic_call = {"type": "message", "role": "assistant", "model": "c", "content": [tool_use]}
    manual_llm("a", LLMRequest({}, {"model": "c", "messages": [user("q")]}), anthropic_call, c)
    manual_tool("f", {}, "r", c, tool_call_id="tu1")
    tool_result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "r"}]}
    done = {"type": "message", "role": "assistant", "model": "c", "content": [{"type": "text", "text": "done"}]}
    manual_llm("a", LLMRequest({}, {"model": "c", "messages": [user("q"), tool_result]}), done, c)
    function_call = {"type": "function_call", "call_id": "fc1", "name": "g", "arguments": '{"x":1}'}
    responses_call = {"object": "response", "model": "c", "output": [function_call]}
    manual_llm("r", LLMRequest({}, {"model": "c", "input": [user("q2")]}), responses_call, c)
    manual_tool("g", {"x": 1}, {"ok": True}, c)
    output = {"type": "function_call_output", "call_id": "fc1", "output": "ok"}
    final = {"object": "response", "model": "c", "output_text": "fin"}
    manual_llm("r", LLMRequest({}, {"model": "c", "input": [user("q2"), output]}), final, c)
    stale = {"role": "tool", "tool_call_id": "zzz", "content": "stale"}
    manual_llm("x", chat_request(user("q3"), stale), chat_response("a3"), c)
    manual_llm("x", chat_request(user("q4")), chat_response(calls=[("k1", "t", {})]), c)
    manual_tool("t", {}, "v", c, tool_call_id="k1")
    llm.call("x", chat_request(user("q4"), {"role": "tool", "tool_call_id": "k1", "content": "v"}), timestamp=c())
    scope.pop(h, timestamp=c())


@scenario()
async def continuation_rules() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    mixed = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "x", "content": "r"}, {"type": "text", "text": "t"}],
    }
    for messages in [
        [{"role": "system", "content": "s"}, assistant("a")],
        [assistant("only")],
        [user("u"), {"role": "function", "name": "f", "content": "x"}],
        [user("u"), mixed],
        [user("u"), {"role": "tool", "tool_call_id": "x", "content": "r"}, user("follow")],
    ]:
        manual_llm("x", LLMRequest({}, {"messages": messages}), {"content": "r"}, c)
    for items in [
        [{"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"}],
        [{"role": "assistant", "content": "x"}],
        [{"type": "message", "role": "user", "content": "typed"}],
    ]:
        manual_llm("x", LLMRequest({}, {"input": items}), {"content": "r"}, c)
    scope.pop(h, timestamp=c())


@scenario()
async def multi_turn_conversation() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    system = {"role": "system", "content": "s"}
    manual_llm("chat", chat_request(system, user("hi")), chat_response("hello"), c)
    history = chat_request(system, user("hi"), assistant("hello"), user("how are you"))
    manual_llm("chat", history, chat_response("fine"), c)
    scope.pop(h, timestamp=c())


@scenario()
async def reasoning_and_model_names() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    first = {"choices": [{"message": {"content": "a", "reasoning_content": "think1"}}]}
    manual_llm("x", chat_request(user("q"), reasoning_effort="low"), first, c, model_name="pm")
    summary = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "sum"}]}
    message = {"type": "message", "content": [{"type": "output_text", "text": "b"}]}
    responses = LLMRequest({}, {"model": "m2", "input": "q", "reasoning": {"effort": "medium"}})
    manual_llm("x", responses, {"output": [summary, message]}, c)
    thinking = {"type": "message", "content": [{"type": "thinking", "thinking": "th"}, {"type": "text", "text": "c"}]}
    manual_llm("x", LLMRequest({}, {"messages": [user("q")], "thinking": {"type": "enabled"}}), thinking, c)
    odd = {"message": {"content": "d", "reasoning": "r-field"}, "reasoning_content": "top"}
    manual_llm("x", LLMRequest({}, {"messages": [user("q")]}), odd, c, model_name="only-start")
    manual_llm("x", LLMRequest({}, {"model": "req-model", "messages": [user("q")]}), {"content": "e"}, c)
    manual_llm("x", LLMRequest({}, {"messages": [user("q")]}), {"content": "f", "reasoning": "explicit"}, c)
    scope.pop(h, timestamp=c())


@scenario()
async def out_of_order_and_parallel_calls() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    t = [c() for _ in range(8)]
    a = llm.call("A", chat_request(user("qa")), timestamp=t[0])
    b = llm.call("B", chat_request(user("qb")), timestamp=t[1])
    llm.call_end(b, chat_response("rb"), timestamp=t[3])
    llm.call_end(a, chat_response("ra"), timestamp=t[2])
    late = llm.call("C", chat_request(user("qc")), timestamp=t[5])
    llm.call_end(late, chat_response("rc"), timestamp=t[6])
    early = llm.call("D", chat_request(user("qd")), timestamp=t[4] - timedelta(milliseconds=5))
    llm.call_end(early, chat_response("rd"), timestamp=t[4])
    scope.pop(h, timestamp=c())


@scenario()
async def sub_millisecond_invocation_times() -> None:
    base = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    h = scope.push("agent", ScopeType.Agent, timestamp=base)
    for i, micros in enumerate([555, 999, 1500, 123456, 999999]):
        start = base + timedelta(seconds=i + 1, microseconds=micros)
        handle = llm.call("x", chat_request(user("q")), timestamp=start)
        llm.call_end(handle, chat_response("a"), timestamp=start + timedelta(microseconds=micros))
    scope.pop(h, timestamp=base + timedelta(seconds=20))


# --- metrics --------------------------------------------------------------------------------------


@scenario()
async def metrics_from_annotated_and_raw_usage() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    cost = {"total": 0.25, "currency": "USD", "source": "provider_reported"}
    annotated = {
        "message": "annotated text",
        "model": "ann-model",
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 9,
            "cache_read_tokens": 10,
            "cache_write_tokens": 5,
            "cost": cost,
        },
    }
    raw = chat_response("raw text", usage={"prompt_tokens": 1, "completion_tokens": 1})
    manual_llm("x", chat_request(user("q")), raw, c, annotated_response=annotated)
    euro = {"message": "eur", "usage": {"prompt_tokens": 5, "cost": {**cost, "total": 0.5, "currency": "EUR"}}}
    manual_llm("x", chat_request(user("q")), chat_response("raw2"), c, annotated_response=euro)
    for usage in [
        {"input_tokens": 7, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 2}, "total_tokens": 10},
        {"prompt_tokens": 7, "completion_tokens": 3, "cost": 0.01, "foo": "bar"},
        {"prompt_tokens": 7, "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0}},
        {"promptTokenCount": 4, "candidatesTokenCount": 2},
        {"prompt_tokens": "7"},
        {"prompt_tokens": 10, "completion_tokens": 2, "cache_read_input_tokens": 3},
        {"input_tokens": 10, "cache_creation_input_tokens": 4},
        {"prompt_tokens": 0, "completion_tokens": 0},
        {"prompt_tokens": 5, "cost": {"total": 1.5, "currency": "USD"}},
        {"prompt_tokens": 5, "cost_usd": 0.3},
        {"prompt_tokens": -1},
        {"prompt_tokens": 2.0},
        {"completion_tokens": 4, "total_cost": 0.2},
        {"prompt_tokens": 9, "cached_tokens": 4},
        {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 1}, "cache_read_input_tokens": 5},
        {"prompt_tokens": 9, "cached_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2}},
    ]:
        manual_llm("x", chat_request(user("q")), {"choices": [{"message": {"content": "u"}}], "usage": usage}, c)
    gemini = {"promptTokenCount": 4, "candidatesTokenCount": 2, "cachedContentTokenCount": 1}
    manual_llm("x", chat_request(user("q")), {"choices": [{"message": {"content": "u"}}], "usageMetadata": gemini}, c)
    anthropic = {"type": "message", "content": [{"type": "text", "text": "t"}]}
    for usage in [
        {"input_tokens": 9, "cache_read_input_tokens": 1, "prompt_tokens": 3},
        {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
    ]:
        manual_llm("x", chat_request(user("q")), {**anthropic, "usage": usage}, c)
    manual_llm("x", chat_request(user("q")), {"type": "message", "content": "plain", "usage": {"input_tokens": 9}}, c)
    scope.pop(h, timestamp=c())


@scenario()
async def optimization_summaries() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    summary = {
        "schema_version": "1",
        "calculation_version": "1",
        "status": "complete",
        "tokens_saved": {"prompt_tokens": 10, "total_tokens": 12},
        "estimated_cost_saved": 0.5,
        "currency": "USD",
        "contributions": [{"producer": "acg", "kind": "cache", "applied": True}],
    }
    annotated = {"message": "a", "usage": {"prompt_tokens": 5}, "optimization_summary": summary}
    manual_llm("x", chat_request(user("q")), chat_response("a"), c, annotated_response=annotated)
    second = {**summary, "tokens_saved": {"prompt_tokens": 1}, "estimated_cost_saved": None}
    manual_llm("x", chat_request(user("q")), chat_response("b"), c, annotated_response={"optimization_summary": second})
    scope.pop(h, timestamp=c())


@scenario()
async def annotated_tool_calls_are_not_read() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    calls = [{"id": "t1", "name": "f", "arguments": {"a": 1}}]
    manual_llm("x", chat_request(user("q")), {"raw": True}, c, annotated_response={"tool_calls": calls})
    manual_tool("f", {"a": 1}, "x", c)
    scope.pop(h, timestamp=c())


@scenario()
async def duplicate_spans_are_kept() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    request = chat_request(user("q"))
    hook = llm.call("hook", request, timestamp=c())
    gateway = llm.call("gateway", request, model_name="gpt-4o", timestamp=c())
    llm.call_end(gateway, chat_response("a", usage={"prompt_tokens": 3, "completion_tokens": 1}), timestamp=c())
    llm.call_end(hook, {"text": "a"}, timestamp=c())
    scope.pop(h, timestamp=c())


# --- codecs (wall clock) --------------------------------------------------------------------------


@scenario(wall_clock=True)
async def openai_chat_codec_tool_loop() -> None:
    codec = OpenAIChatCodec()
    with scope.scope("agent", ScopeType.Agent):

        async def first(request: LLMRequest) -> Any:
            usage = {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "total_tokens": 105,
                "prompt_tokens_details": {"cached_tokens": 40},
                "completion_tokens_details": {"reasoning_tokens": 2},
            }
            return chat_response(calls=[("call_1", "weather", {"city": "Paris"})], usage=usage)

        system = {"role": "system", "content": "sys"}
        request = chat_request(system, user("weather?"), reasoning_effort="high")
        await llm.execute("chat", request, first, codec=codec, response_codec=codec)
        await tools.execute(
            "weather", {"city": "Paris"}, lambda a: ToolExecutionResult({"t": 1}), tool_call_id="call_1"
        )

        async def second(request: LLMRequest) -> Any:
            return chat_response("sunny", usage={"prompt_tokens": 200, "completion_tokens": 5, "total_tokens": 205})

        call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
        history = chat_request(
            user("weather?"),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"t":1}'},
        )
        await llm.execute("chat", history, second, codec=codec, response_codec=codec)


@scenario(wall_clock=True)
async def anthropic_codec_cached_tokens() -> None:
    codec = AnthropicMessagesCodec()
    with scope.scope("agent", ScopeType.Agent):

        async def provider(request: LLMRequest) -> Any:
            return ANTHROPIC_RESPONSE

        await llm.execute("anth", LLMRequest({}, ANTHROPIC_REQUEST), provider, codec=codec, response_codec=codec)
        await tools.execute("weather", {"city": "X"}, lambda a: ToolExecutionResult("sunny"))


@scenario()
async def anthropic_raw_cached_tokens() -> None:
    c = Clock()
    h = scope.push("agent", ScopeType.Agent, timestamp=c())
    manual_llm("anth", LLMRequest({}, ANTHROPIC_REQUEST), ANTHROPIC_RESPONSE, c)
    manual_tool("weather", {"city": "X"}, "sunny", c)
    scope.pop(h, timestamp=c())


@scenario(wall_clock=True)
async def codec_user_messages() -> None:
    chat = OpenAIChatCodec()
    anthropic = AnthropicMessagesCodec()

    async def openai(request: LLMRequest) -> Any:
        return chat_response("r")

    async def claude(request: LLMRequest) -> Any:
        text = [{"type": "text", "text": "r"}]
        usage = {"input_tokens": 1, "output_tokens": 1}
        return {"id": "m", "type": "message", "role": "assistant", "model": "c", "content": text, "usage": usage}

    with scope.scope("agent", ScopeType.Agent):
        single = chat_request({"role": "user", "content": [{"type": "text", "text": "single"}]})
        await llm.execute("c1", single, openai, codec=chat, response_codec=chat)
        image = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
        mixed = chat_request({"role": "user", "content": [{"type": "text", "text": "look"}, image]})
        await llm.execute("c2", mixed, openai, codec=chat, response_codec=chat)
        plain = LLMRequest({}, {"model": "c", "max_tokens": 5, "messages": [user("plain")]})
        await llm.execute("c3", plain, claude, codec=anthropic, response_codec=anthropic)
        system_only = chat_request({"role": "system", "content": "s"})
        await llm.execute("c5", system_only, openai, codec=chat, response_codec=chat)


@scenario(wall_clock=True)
async def responses_codec_usage() -> None:
    codec = OpenAIResponsesCodec()

    async def provider(request: LLMRequest) -> Any:
        usage = {
            "input_tokens": 10,
            "output_tokens": 4,
            "total_tokens": 14,
            "input_tokens_details": {"cached_tokens": 6},
            "output_tokens_details": {"reasoning_tokens": 2},
        }
        text = {"type": "output_text", "text": "resp", "annotations": []}
        message = {"type": "message", "id": "m", "role": "assistant", "status": "completed", "content": [text]}
        reasoning = {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "summary!"}]}
        return {
            "id": "resp_1",
            "object": "response",
            "model": "o3",
            "status": "completed",
            "output": [reasoning, message],
            "usage": usage,
        }

    with scope.scope("agent", ScopeType.Agent):
        request = LLMRequest({}, {"model": "o3", "input": "hello", "reasoning": {"effort": "high"}})
        await llm.execute("r", request, provider, codec=codec, response_codec=codec)


@scenario(wall_clock=True)
async def gemini_codec_function_call() -> None:
    codec = GeminiGenerateContentCodec()

    async def provider(request: LLMRequest) -> Any:
        parts = [{"text": "let me"}, {"functionCall": {"name": "f", "args": {"x": 1}}}]
        usage = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6, "cachedContentTokenCount": 1}
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gem"}

    with scope.scope("agent", ScopeType.Agent):
        request = LLMRequest({}, {"model": "gem", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        await llm.execute("g", request, provider, codec=codec, response_codec=codec)
        await tools.execute("f", {"x": 1}, lambda a: ToolExecutionResult("r"))


@scenario(wall_clock=True)
async def streamed_call() -> None:
    with scope.scope("agent", ScopeType.Agent):

        async def provider(request: LLMRequest) -> Any:
            for i in range(3):
                yield {"choices": [{"delta": {"content": f"p{i}"}}]}

        chunks: list[Any] = []

        def finalize() -> Any:
            text = "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks)
            message = {"role": "assistant", "content": text}
            return {"choices": [{"message": message}], "usage": {"prompt_tokens": 3, "completion_tokens": 3}}

        stream = await llm.stream_execute("s", chat_request(user("q")), provider, chunks.append, finalize)
        async for _ in stream:
            pass


# --- the observability plugin ---------------------------------------------------------------------

#: ATIF settings of the plugin run (besides ``enabled`` and ``output_directory``).
PLUGIN_ATIF = {"agent_version": "9.9", "extra": {"binding": "x"}, "tool_definitions": [{"name": "weather"}]}


def plugin_run() -> Callable[[], None]:
    """Three trajectory roots (an agent with a nested agent, a turn, one left open); returns the closer
    of the open one, to be called after the plugin was torn down."""
    c = Clock()
    metadata = {"session_id": "my-session", "user_id": "bob"}
    root = scope.push("agent", ScopeType.Agent, metadata=metadata, input={"task": 1}, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response(calls=[("k", "t", {})]), c)
    manual_tool("t", {}, "v", c, tool_call_id="k")
    scope.event("mark1", data={"m": 1}, timestamp=c())
    child = scope.push("child", ScopeType.Agent, timestamp=c())
    manual_llm("cchat", chat_request(user("cq")), chat_response("ca"), c)
    scope.pop(child, timestamp=c())
    scope.pop(root, timestamp=c())
    turn = scope.push("turn", ScopeType.Custom, metadata={"nemo_relay_scope_role": "turn"}, timestamp=c())
    manual_llm("chat", chat_request(user("q2")), chat_response("a2"), c)
    scope.pop(turn, timestamp=c())
    manual_llm("outside", chat_request(user("ignored")), chat_response("ignored"), c)
    still_open = scope.push("open", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("q3")), chat_response("a3"), c)
    return lambda: scope.pop(still_open, timestamp=c())


def plugin_files(directory: Any) -> list[Any]:
    """The trajectory files below ``directory``, in the order of their first observed event."""
    from pathlib import Path

    documents = [json.loads(path.read_text()) for path in Path(directory).rglob("*.json")]
    documents.sort(key=lambda document: document["extra"]["observed_events"][0]["timestamp"])
    return documents
