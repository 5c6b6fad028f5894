"""Validate ATIF trajectories: the independent validator, then the stricter rules it does not check.

``check_trajectory(doc)`` runs ``nat.atif.Trajectory.model_validate`` (NVIDIA's pydantic models,
which forbid unknown keys), then checks, for the trajectory and every embedded subagent:

* ``step_id`` is 1, 2, ... n in order; ``final_metrics.total_steps == n``;
* ``final_metrics`` totals are exactly the sums of the step metrics (absent when no step has one);
* ``tool_call_id`` values are unique within the trajectory;
* every observation ``source_call_id`` names a tool call of the same step;
* every timestamp parses and is timezone-aware; ``invocation`` start <= end;
* token counts are non-negative ints with ``cached_tokens <= prompt_tokens``;
* agent-only fields appear only on agent steps, and ``llm_call_count == 0`` steps carry no metrics;
* step ``extra`` validates as NAT's ``AtifStepExtra`` (ancestry / invocation shapes);
* subagent references resolve to a unique embedded ``trajectory_id``.

It returns the validated pydantic model, so a test can also read typed fields.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from nat.atif import AtifStepExtra, AtifToolCallExtra, Trajectory

_AGENT_ONLY = ("model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics")
_TOTALS = (
    ("total_prompt_tokens", "prompt_tokens"),
    ("total_completion_tokens", "completion_tokens"),
    ("total_cached_tokens", "cached_tokens"),
    ("total_cost_usd", "cost_usd"),
)


class AtifCheckError(AssertionError):
    """A trajectory broke one of the strict rules; the message names the path and the rule."""


def check_trajectory(doc: dict[str, Any] | str) -> Trajectory:
    """Validate ``doc`` (a dict or JSON text) with ``nat.atif`` and the strict rules; return the model."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    assert isinstance(doc, dict)
    model = Trajectory.model_validate(doc)
    _check(doc, "trajectory")
    return model


def _fail(path: str, message: str) -> None:
    raise AtifCheckError(f"{path}: {message}")


def _timestamp(path: str, text: object) -> datetime:
    if not isinstance(text, str):
        _fail(path, f"timestamp must be a string, got {text!r}")
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        _fail(path, f"timestamp {text!r} is not ISO 8601")
    if value.tzinfo is None or value.utcoffset() is None:
        _fail(path, f"timestamp {text!r} has no timezone")
    return value


def _count(path: str, value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        _fail(path, f"token count must be a non-negative int, got {value!r}")
    return value  # type: ignore[return-value]


def _check(doc: dict[str, Any], path: str) -> None:
    steps = doc["steps"]
    ids = [step["step_id"] for step in steps]
    if ids != list(range(1, len(steps) + 1)):
        _fail(path, f"step_ids must be 1..{len(steps)} in order, got {ids}")
    seen_calls: set[str] = set()
    for index, step in enumerate(steps):
        _check_step(step, f"{path}.steps[{index}]", seen_calls)
    _check_final_metrics(doc, path)
    children = doc.get("subagent_trajectories") or []
    child_ids = [child.get("trajectory_id") for child in children]
    if len(set(child_ids)) != len(child_ids) or None in child_ids:
        _fail(path, f"subagent trajectory_ids must be present and unique, got {child_ids}")
    for index, step in enumerate(steps):
        for result in (step.get("observation") or {}).get("results", []):
            for ref in result.get("subagent_trajectory_ref") or []:
                if ref.get("trajectory_id") not in child_ids:
                    _fail(f"{path}.steps[{index}]", f"subagent ref {ref.get('trajectory_id')!r} is not embedded")
    for index, child in enumerate(children):
        _check(child, f"{path}.subagent_trajectories[{index}]")


def _check_step(step: dict[str, Any], path: str, seen_calls: set[str]) -> None:
    if "timestamp" in step:
        _timestamp(f"{path}.timestamp", step["timestamp"])
    if step["source"] != "agent":
        for key in _AGENT_ONLY:
            if step.get(key) is not None:
                _fail(path, f"{key} is only allowed on agent steps")
    if step.get("llm_call_count") == 0 and (step.get("metrics") or step.get("reasoning_content")):
        _fail(path, "a step with llm_call_count 0 must not carry metrics or reasoning_content")
    calls = step.get("tool_calls") or []
    call_ids = [call["tool_call_id"] for call in calls]
    for call_id in call_ids:
        if call_id in seen_calls:
            _fail(path, f"tool_call_id {call_id!r} is used twice in one trajectory")
        seen_calls.add(call_id)
    for call in calls:
        if not isinstance(call["arguments"], dict):
            _fail(path, f"arguments of {call['tool_call_id']!r} must be an object")
        if call.get("extra") is not None and "ancestry" in call["extra"]:
            AtifToolCallExtra.model_validate(call["extra"])
    for result in (step.get("observation") or {}).get("results", []):
        source = result.get("source_call_id")
        if source is not None and source not in call_ids:
            _fail(path, f"observation source_call_id {source!r} names no tool call of this step")
    metrics = step.get("metrics")
    if metrics is not None:
        prompt = _count(f"{path}.metrics.prompt_tokens", metrics.get("prompt_tokens"))
        _count(f"{path}.metrics.completion_tokens", metrics.get("completion_tokens"))
        cached = _count(f"{path}.metrics.cached_tokens", metrics.get("cached_tokens"))
        if prompt is not None and cached is not None and cached > prompt:
            _fail(path, f"cached_tokens {cached} exceeds prompt_tokens {prompt}")
        cost = metrics.get("cost_usd")
        if cost is not None and (not isinstance(cost, (int, float)) or cost < 0 or not math.isfinite(cost)):
            _fail(path, f"cost_usd must be a non-negative number, got {cost!r}")
    extra = step.get("extra")
    if extra is not None and "ancestry" in extra:
        AtifStepExtra.model_validate(extra)
        for key in ("invocation",):
            invocation = extra.get(key)
            if invocation is not None:
                _check_invocation(f"{path}.extra.{key}", invocation)
        for index, invocation in enumerate(extra.get("tool_invocations") or []):
            _check_invocation(f"{path}.extra.tool_invocations[{index}]", invocation)


def _check_invocation(path: str, invocation: dict[str, Any]) -> None:
    start, end = invocation.get("start_timestamp"), invocation.get("end_timestamp")
    if (start is None) != (end is None):
        _fail(path, "start_timestamp and end_timestamp come together")
    if start is not None and start > end:
        _fail(path, f"start_timestamp {start} is after end_timestamp {end}")


def _check_final_metrics(doc: dict[str, Any], path: str) -> None:
    final = doc.get("final_metrics")
    if final is None:
        _fail(path, "final_metrics is missing")
    steps = doc["steps"]
    if final["total_steps"] != len(steps):
        _fail(path, f"total_steps {final['total_steps']} != {len(steps)} steps")
    for total_key, step_key in _TOTALS:
        values = [step["metrics"][step_key] for step in steps if step.get("metrics", {}).get(step_key) is not None]
        expected = sum(values) if values else None
        actual = final.get(total_key)
        if expected is None or actual is None:
            if expected != actual:
                _fail(path, f"final_metrics.{total_key} is {actual!r}, the steps sum to {expected!r}")
        elif not math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12):
            _fail(path, f"final_metrics.{total_key} is {actual!r}, the steps sum to {expected!r}")
