"""The public ``AtifExporter``: construction, registration, and the event-to-step mapping, spelled out.

``test_atif_reference.py`` compares whole trajectories with the reference; the tests here state the
rules one at a time so a failure names the rule. Every exported trajectory is checked with the
independent validator and the strict checks (``atif_checks``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from atif_checks import check_trajectory
from atif_scenarios import (
    ANTHROPIC_REQUEST,
    ANTHROPIC_RESPONSE,
    Clock,
    chat_request,
    chat_response,
    manual_llm,
    manual_tool,
    user,
)

from nemo_relay import AtifExporter, LLMRequest, ScopeType, ToolExecutionResult, llm, scope, subscribers, tools
from nemo_relay.codecs import AnthropicMessagesCodec, OpenAIChatCodec


@pytest.fixture
def exporter() -> Iterator[AtifExporter]:
    exporter = AtifExporter("session-1", "test-agent", "2.0", model_name="gpt-test")
    exporter.register("atif-test")
    try:
        yield exporter
    finally:
        exporter.deregister("atif-test")


def export(exporter: AtifExporter) -> dict[str, Any]:
    trajectory = exporter.export()
    check_trajectory(trajectory)
    return trajectory


def steps_of(trajectory: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(step["source"], step["message"]) for step in trajectory["steps"]]


# --- construction and registration ------------------------------------------------------------------


def test_empty_export_has_header_agent_and_zero_steps() -> None:
    exporter = AtifExporter(
        "s", "agent", "1.0", model_name="m", tool_definitions=[{"type": "function", "name": "f"}], extra="any json"
    )
    assert exporter.export() == {
        "agent": {
            "extra": "any json",
            "model_name": "m",
            "name": "agent",
            "tool_definitions": [{"name": "f", "type": "function"}],
            "version": "1.0",
        },
        "final_metrics": {"total_steps": 0},
        "schema_version": "ATIF-v1.7",
        "session_id": "s",
        "steps": [],
        "trajectory_id": "s",
    }


def test_export_json_is_compact_in_schema_field_order() -> None:
    text = AtifExporter("s", "a", "v", extra={"z": 1, "a": 2}).export_json()
    assert text == (
        '{"schema_version":"ATIF-v1.7","session_id":"s","trajectory_id":"s",'
        '"agent":{"name":"a","version":"v","extra":{"a":2,"z":1}},"steps":[],"final_metrics":{"total_steps":0}}'
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"session_id": 1}, TypeError),
        ({"agent_name": None}, TypeError),
        ({"model_name": 3}, TypeError),
        ({"tool_definitions": {"a": 1}}, TypeError),
        ({"tool_definitions": [object()]}, ValueError),
        ({"extra": object()}, ValueError),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], error: type[Exception]) -> None:
    arguments: dict[str, Any] = {"session_id": "s", "agent_name": "a", "agent_version": "v"}
    arguments.update(kwargs)
    with pytest.raises(error):
        AtifExporter(**arguments)


def test_register_twice_raises_and_deregister_reports_removal() -> None:
    exporter = AtifExporter("s", "a", "v")
    assert exporter.deregister("never-registered") is False
    exporter.register("atif-twice")
    with pytest.raises(RuntimeError, match="already exists"):
        exporter.register("atif-twice")
    assert exporter.deregister("atif-twice") is True
    assert exporter.deregister("atif-twice") is False


def test_clear_forgets_events_and_deregistered_exporter_stops_collecting(exporter: AtifExporter) -> None:
    c = Clock()
    manual_llm("chat", chat_request(user("first")), chat_response("a"), c)
    assert len(export(exporter)["steps"]) == 2
    exporter.clear()
    assert export(exporter)["steps"] == []
    exporter.deregister("atif-test")
    manual_llm("chat", chat_request(user("second")), chat_response("b"), c)
    assert export(exporter)["steps"] == []


def test_export_from_a_subscriber_does_not_deadlock(exporter: AtifExporter) -> None:
    seen: list[int] = []
    subscribers.register("atif-exporting-subscriber", lambda event: seen.append(len(exporter.export()["steps"])))
    try:
        manual_llm("chat", chat_request(user("q")), chat_response("a"), Clock())
        assert subscribers.flush(timeout=10)
    finally:
        subscribers.deregister("atif-exporting-subscriber")
    assert len(seen) == 2


# --- user, agent and system steps -------------------------------------------------------------------


def test_llm_call_becomes_user_then_agent_step_with_ancestry_and_invocation(exporter: AtifExporter) -> None:
    c = Clock()
    agent = scope.push("planner", ScopeType.Agent, timestamp=c())
    handle = llm.call("chat", chat_request(user("What now?")), model_name="gpt-x", timestamp=c())
    llm.call_end(handle, chat_response("Do this."), timestamp=c())
    scope.pop(agent, timestamp=c())

    user_step, agent_step = export(exporter)["steps"]
    ancestry = {"function_id": handle.uuid, "function_name": "chat", "parent_id": agent.uuid, "parent_name": "planner"}
    assert user_step == {
        "step_id": 1,
        "source": "user",
        "message": "What now?",
        "timestamp": "2026-01-02T03:04:05.020+00:00",
        "extra": {"ancestry": ancestry, "llm_request": {"messages": [user("What now?")], "model": "gpt-4o"}},
    }
    assert agent_step["source"] == "agent" and agent_step["message"] == "Do this."
    assert agent_step["model_name"] == "gpt-4o-2024"  # the response's model wins over model_name
    assert agent_step["llm_call_count"] == 1
    assert agent_step["extra"]["ancestry"] == ancestry
    assert agent_step["extra"]["invocation"] == {
        "start_timestamp": 1767323045.02,
        "end_timestamp": 1767323045.03,
        "invocation_id": handle.uuid,
        "status": "completed",
        "framework": "nemo_relay",
    }
    assert agent_step["extra"]["llm_response"]["choices"][0]["message"]["content"] == "Do this."


def test_marks_are_not_steps(exporter: AtifExporter) -> None:
    c = Clock()
    scope.event("progress", data={"pct": 50}, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    scope.event("done", timestamp=c())
    assert steps_of(export(exporter)) == [("user", "q"), ("agent", "a")]


def test_continuation_after_tool_work_adds_no_user_step(exporter: AtifExporter) -> None:
    c = Clock()
    manual_llm("chat", chat_request(user("Weather?")), chat_response(calls=[("c1", "weather", {})]), c)
    manual_tool("weather", {}, "sunny", c, tool_call_id="c1")
    followup = chat_request(user("Weather?"), {"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    manual_llm("chat", followup, chat_response("It is sunny."), c)

    trajectory = export(exporter)
    assert steps_of(trajectory) == [("user", "Weather?"), ("agent", ""), ("agent", "It is sunny.")]
    # The continuation's request rides on the agent step it produced.
    assert trajectory["steps"][2]["extra"]["llm_request"]["messages"][-1]["role"] == "tool"


def test_a_new_user_message_after_tool_work_is_a_user_step(exporter: AtifExporter) -> None:
    c = Clock()
    manual_llm("chat", chat_request(user("hi")), chat_response("hello"), c)
    history = chat_request(user("hi"), {"role": "assistant", "content": "hello"}, user("and now?"))
    manual_llm("chat", history, chat_response("now this"), c)
    assert steps_of(export(exporter)) == [
        ("user", "hi"),
        ("agent", "hello"),
        ("user", "and now?"),
        ("agent", "now this"),
    ]


def test_uncorrelated_tool_result_before_any_llm_call_is_a_system_step(exporter: AtifExporter) -> None:
    c = Clock()
    manual_tool("load_context", {"path": "a"}, "file contents", c)
    step = export(exporter)["steps"][0]
    assert step["source"] == "system" and step["message"] == ""
    assert step["observation"]["results"][0]["content"] == "file contents"
    assert "source_call_id" not in step["observation"]["results"][0]


# --- tool calls and observations --------------------------------------------------------------------


def test_tool_results_correlate_by_id_and_by_name_and_arguments(exporter: AtifExporter) -> None:
    c = Clock()
    calls = [("id-a", "lookup", {"key": "a"}), ("id-b", "lookup", {"key": "b"}), ("id-c", "fetch", {"n": 1})]
    manual_llm("chat", chat_request(user("q")), chat_response(calls=calls), c)
    manual_tool("fetch", {"n": 1}, {"rows": 3}, c, tool_call_id="id-c")  # by id
    manual_tool("lookup", {"key": "b"}, "B", c)  # by name and arguments
    manual_tool("lookup", {"key": "a"}, "A", c, annotation={"cache": "hit"})

    step = export(exporter)["steps"][1]
    assert [call["tool_call_id"] for call in step["tool_calls"]] == ["id-a", "id-b", "id-c"]
    results = step["observation"]["results"]
    assert [(r["source_call_id"], r.get("content")) for r in results] == [("id-c", None), ("id-b", "B"), ("id-a", "A")]
    assert results[0]["extra"]["tool_result"] == {"rows": 3}  # non-text results stay JSON, in extra
    assert results[2]["extra"]["tool_result_annotation"] == {"cache": "hit"}
    # Lineage follows the tool-call order, not the order the tools finished in.
    assert [i["invocation_id"] for i in step["extra"]["tool_invocations"]] == ["id-a", "id-b", "id-c"]
    assert [a["function_name"] for a in step["extra"]["tool_ancestry"]] == ["lookup", "lookup", "fetch"]


def test_repeated_tool_call_ids_stay_unique_and_correlate_with_the_newest_call(exporter: AtifExporter) -> None:
    # Some providers number calls per response ("call_0" every turn); ids without a provider id are
    # generated as "<name>:<n>". The reference repeats them; ATIF consumers need them unique.
    c = Clock()
    manual_llm("chat", chat_request(user("q")), chat_response(calls=[("call_0", "search", {"q": 1})]), c)
    manual_tool("search", {"q": 1}, "first", c, tool_call_id="call_0")
    history = chat_request(user("q"), {"role": "tool", "tool_call_id": "call_0", "content": "first"})
    manual_llm("chat", history, chat_response(calls=[("call_0", "search", {"q": 2})]), c)
    manual_tool("search", {"q": 2}, "second", c, tool_call_id="call_0")
    unnamed = {
        "choices": [{"message": {"content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}}]
    }
    for _ in range(2):
        manual_llm("chat", history, unnamed, c)
        manual_tool("f", {}, "ok", c)

    steps = export(exporter)["steps"]
    agent_steps = [step for step in steps if step["source"] == "agent"]
    assert [step["tool_calls"][0]["tool_call_id"] for step in agent_steps] == ["call_0", "call_0#2", "f:1", "f:1#2"]
    assert [step["observation"]["results"][0]["source_call_id"] for step in agent_steps] == [
        "call_0",
        "call_0#2",
        "f:1",
        "f:1#2",
    ]
    assert agent_steps[1]["observation"]["results"][0]["content"] == "second"


def test_tool_nothing_asked_for_joins_the_latest_agent_step(exporter: AtifExporter) -> None:
    c = Clock()
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    handle = tools.call("audit", {"level": 2}, timestamp=c())
    tools.call_end(handle, ToolExecutionResult("logged"), timestamp=c())

    step = export(exporter)["steps"][1]
    assert step["tool_calls"] == [
        {
            "tool_call_id": handle.uuid,
            "function_name": "audit",
            "arguments": {"level": 2},
            "extra": {
                "event_name": "audit",
                "event_uuid": handle.uuid,
                "parent_event_uuid": step["extra"]["ancestry"]["parent_id"],
            },
        }
    ]
    assert step["observation"]["results"][0]["source_call_id"] == handle.uuid


def test_non_object_tool_arguments_are_wrapped_to_stay_valid(exporter: AtifExporter) -> None:
    # The reference copies these verbatim, which ATIF validators reject (arguments must be an object).
    c = Clock()
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    manual_tool("echo", "plain text", 1, c)
    manual_tool("sum", [1, 2], 3, c)
    manual_tool("noop", None, 0, c)
    calls = export(exporter)["steps"][1]["tool_calls"]
    assert [call["arguments"] for call in calls] == [{"value": "plain text"}, {"value": [1, 2]}, {}]


def test_content_parts_keep_only_atif_fields(exporter: AtifExporter) -> None:
    # The reference keeps unknown keys inside parts, which ATIF validators reject.
    parts = [{"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}}]
    manual_llm("x", LLMRequest({}, {"messages": [{"role": "user", "content": parts}]}), {"content": "r"}, Clock())
    assert export(exporter)["steps"][0]["message"] == [{"type": "text", "text": "t"}]


# --- metrics ----------------------------------------------------------------------------------------


def test_metrics_with_cached_tokens_and_cost_and_final_totals(exporter: AtifExporter) -> None:
    c = Clock()
    annotated = {
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "cache_read_tokens": 80,
            "cache_write_tokens": 20,
            "cost": {"total": 0.25, "currency": "USD", "source": "model_pricing"},
        }
    }
    manual_llm("a", chat_request(user("q")), chat_response("one"), c, annotated_response=annotated)
    raw = chat_response(
        "two", usage={"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    )
    manual_llm("b", chat_request(user("q2")), raw, c)

    trajectory = export(exporter)
    assert trajectory["steps"][1]["metrics"] == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "cached_tokens": 100,
        "cost_usd": 0.25,
    }
    assert trajectory["steps"][3]["metrics"] == {"prompt_tokens": 10, "completion_tokens": 2, "cached_tokens": 4}
    assert trajectory["final_metrics"] == {
        "total_prompt_tokens": 130,
        "total_completion_tokens": 32,
        "total_cached_tokens": 104,
        "total_cost_usd": 0.25,
        "total_steps": 4,
    }


async def test_openai_chat_codec_run(exporter: AtifExporter) -> None:
    codec = OpenAIChatCodec()

    async def provider(request: LLMRequest) -> Any:
        usage = {"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 20}}
        return chat_response(calls=[("call_9", "search", {"q": "relay"})], usage=usage)

    with scope.scope("agent", ScopeType.Agent):
        await llm.execute("chat", chat_request(user("find relay")), provider, codec=codec, response_codec=codec)
        await tools.execute("search", {"q": "relay"}, lambda args: ToolExecutionResult("3 hits"))

    user_step, agent_step = export(exporter)["steps"]
    assert user_step["message"] == "find relay"
    assert agent_step["metrics"] == {"prompt_tokens": 50, "completion_tokens": 5, "cached_tokens": 20}
    assert agent_step["tool_calls"][0]["arguments"] == {"q": "relay"}
    assert agent_step["observation"]["results"][0]["source_call_id"] == "call_9"


async def test_anthropic_codec_counts_cache_once(exporter: AtifExporter) -> None:
    codec = AnthropicMessagesCodec()

    async def provider(request: LLMRequest) -> Any:
        return ANTHROPIC_RESPONSE

    with scope.scope("agent", ScopeType.Agent):
        await llm.execute("claude", LLMRequest({}, ANTHROPIC_REQUEST), provider, codec=codec, response_codec=codec)

    user_step, agent_step = export(exporter)["steps"]
    assert user_step["message"] == [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]
    assert agent_step["message"] == "Hi\nthere"
    # input 5 + cache read 100 + cache write 20; the cached part is the reads and writes.
    assert agent_step["metrics"] == {"prompt_tokens": 125, "completion_tokens": 7, "cached_tokens": 120}
    assert agent_step["tool_calls"] == [{"tool_call_id": "tu1", "function_name": "weather", "arguments": {"city": "X"}}]


# --- nested agents ----------------------------------------------------------------------------------


def test_nested_agent_is_an_embedded_subagent_referenced_from_its_tool_call(exporter: AtifExporter) -> None:
    c = Clock()
    outer = scope.push("orchestrator", ScopeType.Agent, timestamp=c())
    manual_llm("plan", chat_request(user("research it")), chat_response(calls=[("d1", "delegate", {})]), c)
    tool = tools.call("delegate", {}, tool_call_id="d1", timestamp=c())
    inner = scope.push("researcher", ScopeType.Agent, metadata={"tool_call_id": "d1"}, timestamp=c())
    manual_llm("look", chat_request(user("look it up")), chat_response("found it", usage={"prompt_tokens": 4}), c)
    scope.pop(inner, timestamp=c())
    tools.call_end(tool, ToolExecutionResult("found it"), timestamp=c())
    scope.pop(outer, timestamp=c())

    trajectory = export(exporter)
    assert steps_of(trajectory) == [("user", "research it"), ("agent", "")]
    (result,) = trajectory["steps"][1]["observation"]["results"]
    assert result["source_call_id"] == "d1" and result["content"] == "found it"
    assert result["subagent_trajectory_ref"] == [
        {"trajectory_id": inner.uuid, "extra": {"name": "researcher", "scope_uuid": inner.uuid}}
    ]
    (child,) = trajectory["subagent_trajectories"]
    assert child["trajectory_id"] == inner.uuid and child["session_id"] == "session-1"
    assert steps_of(child) == [("user", "look it up"), ("agent", "found it")]
    # Totals do not include the subagent's usage.
    assert child["final_metrics"]["total_prompt_tokens"] == 4
    assert "total_prompt_tokens" not in trajectory["final_metrics"]


def test_export_is_a_copy(exporter: AtifExporter) -> None:
    manual_llm("chat", chat_request(user("q")), chat_response("a"), Clock())
    first = exporter.export()
    first["steps"][0]["extra"]["llm_request"]["messages"].clear()
    assert exporter.export()["steps"][0]["extra"]["llm_request"]["messages"] == [user("q")]
    assert json.loads(exporter.export_json())["steps"][0]["message"] == "q"
