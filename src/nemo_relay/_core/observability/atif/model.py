"""The ATIF v1.7 schema as dataclasses that serialise to JSON in the schema's field order.

``to_json()`` omits every optional field that is ``None`` (ATIF objects forbid unknown keys and treat
absent and null alike), so a serialised trajectory contains only what was observed. ``export()``
hands out key-sorted copies (``sorted_json``); ``export_json()`` keeps the field order below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = "ATIF-v1.7"
FRAMEWORK = "nemo_relay"
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

JsonObject = dict[str, JsonValue]


def _put(out: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        out[key] = value


@dataclass(slots=True)
class AgentInfo:
    """``agent``: who produced the trajectory (``extra`` may be any JSON value)."""

    name: str
    version: str
    model_name: str | None = None
    tool_definitions: list[JsonValue] | None = None
    extra: JsonValue = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        _put(out, "model_name", self.model_name)
        _put(out, "tool_definitions", sorted_json(self.tool_definitions))
        _put(out, "extra", sorted_json(self.extra))
        return out


@dataclass(slots=True, eq=False)
class ToolCall:
    """One tool call an agent step made; ``arguments`` is a JSON object."""

    tool_call_id: str
    function_name: str
    arguments: JsonValue
    extra: JsonObject | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tool_call_id": self.tool_call_id,
            "function_name": self.function_name,
            "arguments": sorted_json(self.arguments),
        }
        _put(out, "extra", sorted_json(self.extra))
        return out


@dataclass(slots=True)
class SubagentRef:
    """A pointer from an observation to an embedded subagent trajectory."""

    trajectory_id: str
    session_id: str | None = None
    extra: JsonObject | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trajectory_id": self.trajectory_id}
        _put(out, "session_id", self.session_id)
        _put(out, "extra", sorted_json(self.extra))
        return out


@dataclass(slots=True, eq=False)
class ObservationResult:
    """The result of one tool call (``source_call_id``) or of a non-tool action (no id)."""

    source_call_id: str | None = None
    content: JsonValue = None  # a string or a list of ATIF content parts
    subagent_trajectory_ref: list[SubagentRef] | None = None
    extra: JsonObject | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "source_call_id", self.source_call_id)
        _put(out, "content", sorted_json(self.content))
        if self.subagent_trajectory_ref is not None:
            out["subagent_trajectory_ref"] = [ref.to_json() for ref in self.subagent_trajectory_ref]
        _put(out, "extra", sorted_json(self.extra))
        return out


@dataclass(slots=True)
class Metrics:
    """Per-step LLM usage. ``prompt_tokens`` counts cached tokens too; ``cached_tokens`` is that subset."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    extra: JsonObject | None = None

    def empty(self) -> bool:
        """True when nothing was measured (the step then has no ``metrics``)."""
        return (
            self.prompt_tokens is None
            and self.completion_tokens is None
            and self.cached_tokens is None
            and self.cost_usd is None
            and not self.extra
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "prompt_tokens", self.prompt_tokens)
        _put(out, "completion_tokens", self.completion_tokens)
        _put(out, "cached_tokens", self.cached_tokens)
        _put(out, "cost_usd", self.cost_usd)
        if self.extra:
            out["extra"] = sorted_json(self.extra)
        return out


@dataclass(slots=True, eq=False)
class Step:
    """One step: a user prompt, an agent (LLM) turn, or a system operation. ``step_id`` is set at the end."""

    source: str  # "user" | "agent" | "system"
    message: JsonValue  # a string or a list of ATIF content parts
    timestamp: str | None = None
    step_id: int = 0
    model_name: str | None = None
    reasoning_effort: JsonValue = None  # a string or a number
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    observation: list[ObservationResult] | None = None
    metrics: Metrics | None = None
    llm_call_count: int | None = None
    extra: JsonObject | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step_id": self.step_id, "source": self.source, "message": sorted_json(self.message)}
        _put(out, "timestamp", self.timestamp)
        _put(out, "model_name", self.model_name)
        _put(out, "reasoning_effort", self.reasoning_effort)
        _put(out, "reasoning_content", self.reasoning_content)
        if self.tool_calls:
            out["tool_calls"] = [call.to_json() for call in self.tool_calls]
        if self.observation:
            out["observation"] = {"results": [result.to_json() for result in self.observation]}
        if self.metrics is not None and not self.metrics.empty():
            out["metrics"] = self.metrics.to_json()
        _put(out, "llm_call_count", self.llm_call_count)
        if self.extra:
            out["extra"] = sorted_json(self.extra)
        return out


@dataclass(slots=True)
class Trajectory:
    """A whole trajectory: agent, ordered steps, totals, and embedded subagent trajectories."""

    session_id: str | None
    trajectory_id: str | None
    agent: AgentInfo
    steps: list[Step] = field(default_factory=list)
    subagent_trajectories: list[Trajectory] = field(default_factory=list)
    extra: JsonValue = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        _put(out, "session_id", self.session_id)
        _put(out, "trajectory_id", self.trajectory_id)
        out["agent"] = self.agent.to_json()
        out["steps"] = [step.to_json() for step in self.steps]
        out["final_metrics"] = final_metrics(self.steps)
        if self.subagent_trajectories:
            out["subagent_trajectories"] = [child.to_json() for child in self.subagent_trajectories]
        _put(out, "extra", sorted_json(self.extra))
        return out


def final_metrics(steps: list[Step]) -> dict[str, Any]:
    """``final_metrics``: sums of the step metrics that are present, the step count, optimization totals."""
    prompt = completion = cached = None
    cost: float | None = None
    optimized = 0
    saved_prompt = saved_total = 0
    saved_cost: float | None = None
    for step in steps:
        metrics = step.metrics
        if metrics is None:
            continue
        if metrics.prompt_tokens is not None:
            prompt = (prompt or 0) + metrics.prompt_tokens
        if metrics.completion_tokens is not None:
            completion = (completion or 0) + metrics.completion_tokens
        if metrics.cached_tokens is not None:
            cached = (cached or 0) + metrics.cached_tokens
        if metrics.cost_usd is not None:
            cost = (cost or 0.0) + metrics.cost_usd
        summary = _optimization(metrics)
        if summary is not None:
            optimized += 1
            saved = summary.get("tokens_saved")
            if isinstance(saved, dict):
                saved_prompt += _count(saved.get("prompt_tokens"))
                saved_total += _count(saved.get("total_tokens"))
            value = summary.get("estimated_cost_saved")
            if _is_number(value) and summary.get("currency", "USD") == "USD":
                saved_cost = (saved_cost or 0.0) + float(value)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    _put(out, "total_prompt_tokens", prompt)
    _put(out, "total_completion_tokens", completion)
    _put(out, "total_cached_tokens", cached)
    _put(out, "total_cost_usd", cost)
    out["total_steps"] = len(steps)
    if optimized:
        totals: dict[str, Any] = {
            "llm_call_count": optimized,
            "prompt_tokens_saved": saved_prompt,
            "total_tokens_saved": saved_total,
        }
        _put(totals, "estimated_cost_saved_usd", saved_cost)
        out["extra"] = {"nemo_relay": {"optimization": sorted_json(totals)}}
    return out


def _optimization(metrics: Metrics) -> dict[str, Any] | None:
    relay = metrics.extra.get("nemo_relay") if metrics.extra else None
    summary = relay.get("optimization") if isinstance(relay, dict) else None
    return summary if isinstance(summary, dict) else None


def _count(value: object) -> int:
    return value if type(value) is int else 0


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


# --- JSON helpers ----------------------------------------------------------------------------------


def compact_json(value: object) -> str:
    """Compact JSON with sorted keys: how a payload that is not text is shown as a message."""
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sorted_json(value: Any) -> Any:
    """A deep copy with every object's keys in sorted order (the shape ``export()`` returns)."""
    if type(value) is dict:
        return {key: sorted_json(value[key]) for key in sorted(value)}
    if type(value) is list:
        return [sorted_json(item) for item in value]
    return value


def epoch_seconds(ns: int) -> float:
    """Unix seconds with millisecond precision (truncated), as ``invocation`` timestamps carry them."""
    return (ns // 1_000_000) / 1000


def content_parts(value: list[JsonValue]) -> list[JsonValue] | None:
    """``value`` as ATIF content parts (text, or image with a supported media type and a path), else None."""
    parts: list[JsonValue] = []
    for part in value:
        if type(part) is not dict:
            return None
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if type(text) is not str:
                return None
            parts.append({"type": "text", "text": text})
        elif kind == "image":
            source = part.get("source")
            if type(source) is not dict:
                return None
            media_type, path = source.get("media_type"), source.get("path")
            if media_type not in IMAGE_MEDIA_TYPES or type(path) is not str:
                return None
            parts.append({"type": "image", "source": {"media_type": media_type, "path": path}})
        else:
            return None
    return parts


def message_value(value: JsonValue) -> JsonValue:
    """A message or observation content: text as is, content parts as parts, anything else as JSON text."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    if type(value) is list:
        parts = content_parts(value)
        if parts is not None:
            return parts
    return compact_json(value)
