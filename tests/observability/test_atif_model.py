"""ATIF schema objects and payload extraction, unit by unit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from atif_checks import AtifCheckError, check_trajectory

from nemo_relay._core.observability.atif import extract
from nemo_relay._core.observability.atif.model import (
    AgentInfo,
    Metrics,
    ObservationResult,
    Step,
    SubagentRef,
    ToolCall,
    Trajectory,
    content_parts,
    epoch_seconds,
    final_metrics,
    message_value,
    sorted_json,
)


def test_step_serialises_in_schema_order_and_omits_absent_fields() -> None:
    step = Step(
        "agent",
        "done",
        "2026-01-02T03:04:05+00:00",
        step_id=2,
        model_name="m",
        tool_calls=[ToolCall("c1", "f", {"b": 1, "a": 2})],
        observation=[ObservationResult("c1", "ok", [SubagentRef("t1", extra={"name": "n"})], {"z": 1, "a": 2})],
        metrics=Metrics(prompt_tokens=3, extra={"y": 1, "x": 2}),
        llm_call_count=1,
        extra={"b": 1, "a": 1},
    )
    out = step.to_json()
    assert list(out) == [
        "step_id",
        "source",
        "message",
        "timestamp",
        "model_name",
        "tool_calls",
        "observation",
        "metrics",
        "llm_call_count",
        "extra",
    ]
    assert list(out["tool_calls"][0]) == ["tool_call_id", "function_name", "arguments"]
    assert list(out["tool_calls"][0]["arguments"]) == ["a", "b"]  # free-form JSON is key-sorted
    assert list(out["observation"]["results"][0]) == ["source_call_id", "content", "subagent_trajectory_ref", "extra"]
    assert list(out["metrics"]) == ["prompt_tokens", "extra"]
    assert list(out["extra"]) == ["a", "b"]


def test_empty_metrics_and_empty_lists_are_omitted() -> None:
    out = Step("agent", "", tool_calls=[], observation=[], metrics=Metrics()).to_json()
    assert out == {"step_id": 0, "source": "agent", "message": ""}


def test_final_metrics_sum_present_values_and_aggregate_optimization() -> None:
    optimization = {
        "tokens_saved": {"prompt_tokens": 4, "total_tokens": 6},
        "estimated_cost_saved": 0.1,
        "currency": "USD",
    }
    steps = [
        Step("user", "q"),
        Step("agent", "a", metrics=Metrics(prompt_tokens=10, cost_usd=0.25)),
        Step(
            "agent",
            "b",
            metrics=Metrics(prompt_tokens=5, cached_tokens=2, extra={"nemo_relay": {"optimization": optimization}}),
        ),
    ]
    assert final_metrics(steps) == {
        "total_prompt_tokens": 15,
        "total_cached_tokens": 2,
        "total_cost_usd": 0.25,
        "total_steps": 3,
        "extra": {
            "nemo_relay": {
                "optimization": {
                    "estimated_cost_saved_usd": 0.1,
                    "llm_call_count": 1,
                    "prompt_tokens_saved": 4,
                    "total_tokens_saved": 6,
                }
            }
        },
    }
    assert final_metrics([]) == {"total_steps": 0}


def test_trajectory_embeds_subagents_and_validates() -> None:
    agent = AgentInfo("a", "1", tool_definitions=[{"name": "f"}])
    child = Trajectory("s", "child", agent, [Step("user", "hi", step_id=1)])
    ref = ObservationResult("subagent:child", None, [SubagentRef("child")])
    call = ToolCall("subagent:child", "child", {"name": "child"})
    parent = Trajectory("s", "s", agent, [Step("agent", "", step_id=1, tool_calls=[call], observation=[ref])], [child])
    document = parent.to_json()
    check_trajectory(document)
    assert list(document) == [
        "schema_version",
        "session_id",
        "trajectory_id",
        "agent",
        "steps",
        "final_metrics",
        "subagent_trajectories",
    ]


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda d: d["steps"][1]["tool_calls"].append(dict(d["steps"][1]["tool_calls"][0])), "used twice"),
        (lambda d: d["steps"][1].update(step_id=5), "sequential"),  # the validator catches these two too
        (lambda d: d["steps"][1]["observation"]["results"][0].update(source_call_id="nope"), "nope"),
        (lambda d: d["steps"][0].update(timestamp="2026-01-02T03:04:05"), "no timezone"),
        (lambda d: d["final_metrics"].update(total_prompt_tokens=99), "steps sum to"),
        (lambda d: d["steps"][1]["metrics"].update(cached_tokens=50), "exceeds"),
    ],
)
def test_strict_checks_catch_broken_trajectories(mutate: Any, rule: str) -> None:
    document = {
        "schema_version": "ATIF-v1.7",
        "session_id": "s",
        "agent": {"name": "a", "version": "1"},
        "steps": [
            {"step_id": 1, "source": "user", "message": "q", "timestamp": "2026-01-02T03:04:05+00:00"},
            {
                "step_id": 2,
                "source": "agent",
                "message": "",
                "tool_calls": [{"tool_call_id": "c", "function_name": "f", "arguments": {}}],
                "observation": {"results": [{"source_call_id": "c", "content": "r"}]},
                "metrics": {"prompt_tokens": 10, "cached_tokens": 4},
            },
        ],
        "final_metrics": {"total_prompt_tokens": 10, "total_cached_tokens": 4, "total_steps": 2},
    }
    check_trajectory(document)
    mutate(document)
    with pytest.raises((AtifCheckError, ValueError), match=rule):
        check_trajectory(document)


def test_helpers() -> None:
    assert epoch_seconds(1_767_323_045_999_999_999) == 1767323045.999  # truncated to the millisecond
    assert sorted_json({"b": [{"d": 1, "c": 2}], "a": 1}) == {"a": 1, "b": [{"c": 2, "d": 1}]}
    assert list(sorted_json({"b": 1, "a": 2})) == ["a", "b"]
    image = {"type": "image", "source": {"media_type": "image/webp", "path": "x.webp", "detail": "low"}}
    assert content_parts([image]) == [{"type": "image", "source": {"media_type": "image/webp", "path": "x.webp"}}]
    assert content_parts([{"type": "image_url", "image_url": {"url": "u"}}]) is None
    assert message_value(None) == ""
    assert message_value({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert message_value([{"type": "input_text", "text": "t"}]) == '[{"text":"t","type":"input_text"}]'


# --- extraction -------------------------------------------------------------------------------------


def test_request_envelope_and_user_message() -> None:
    request = {"messages": [{"role": "user", "content": "old"}, {"role": "user", "content": "new"}]}
    assert extract.unwrap_request({"content": request, "headers": {}}) == request
    assert extract.unwrap_request({"content": 1, "other": 2}) == {"content": 1, "other": 2}
    assert extract.user_message(None, request) == "new"
    annotated = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert extract.user_message(annotated, request) == [{"type": "text", "text": "hi"}]
    assert extract.user_message({"messages": []}, {"x": 1}) == '{"x":1}'
    parts = [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]
    assert extract.user_message(None, {"input": [{"role": "user", "content": parts}]}) == "a\nb"


@pytest.mark.parametrize(
    ("annotated", "request_body", "expected"),
    [
        (None, {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]}, True),
        (None, {"messages": [{"role": "user", "content": "q"}]}, False),
        (None, {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "r"}]}]}, True),
        (None, {"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, True),
        (None, {"input": [{"role": "assistant", "content": "x"}]}, False),
        (None, {"prompt": "p"}, False),
        ({"messages": [{"role": "tool_result", "call_id": "c", "output": "x"}]}, {}, True),
        ({"messages": [{"role": "user", "content": "q"}]}, {"messages": [{"role": "tool"}]}, False),
    ],
)
def test_continuation_detection(annotated: Any, request_body: Any, expected: bool) -> None:
    assert extract.is_continuation(annotated, request_body) is expected


def test_tool_calls_from_every_provider_shape() -> None:
    chat = {"choices": [{"message": {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x":1}'}}]}}]}
    anthropic = {"type": "message", "content": [{"type": "tool_use", "id": "b", "name": "g", "input": {"y": 2}}]}
    responses = {"output": [{"type": "function_call", "call_id": "c", "name": "h", "arguments": "{}"}]}
    found = [extract.tool_calls(r)[0].to_json() for r in (chat, anthropic, responses)]
    assert found == [
        {"tool_call_id": "a", "function_name": "f", "arguments": {"x": 1}},
        {"tool_call_id": "b", "function_name": "g", "arguments": {"y": 2}},
        {"tool_call_id": "c", "function_name": "h", "arguments": {}},
    ]
    assert extract.tool_calls({"tool_calls": [{"name": "n", "arguments": "oops"}]})[0].to_json() == {
        "tool_call_id": "n:1",
        "function_name": "n",
        "arguments": {"raw": "oops"},
    }
    assert extract.tool_calls("text") == []


def test_usage_reading() -> None:
    def metrics(annotated: Any = None, response: Any = None) -> Any:
        found = extract.metrics(annotated, response)
        return None if found is None else found.to_json()

    anthropic = {
        "type": "message",
        "content": [],
        "usage": {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 7},
    }
    assert metrics(response=anthropic) == {"prompt_tokens": 12, "completion_tokens": 1, "cached_tokens": 7}
    assert metrics(response={"usage": {"prompt_tokens": True}}) is None  # a bool is not a count: usage ignored
    assert metrics(response={"usage": {}}) is None
    annotated = {"usage": {"prompt_tokens": 9, "cost": {"total": 1, "currency": "USD"}}}
    raw = {"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    assert metrics(annotated, raw) == {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "cost_usd": 1.0,
        "extra": {"total_tokens": 3},
    }
    assert json.dumps(metrics(annotated={"usage": {"cache_write_tokens": 3}})) == '{"cached_tokens": 3}'
