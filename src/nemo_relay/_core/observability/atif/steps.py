"""Mapping an ordered list of lifecycle events onto ATIF steps.

Events are read in timestamp order (emission order breaks ties). LLM calls make the steps: a call's
start is the ``user`` step carrying its newest prompt (unless the request only calls the model back
after tool work, whose request then rides on the agent step), and its end is the ``agent`` step with
the answer, tool calls and metrics. A tool call's end becomes an observation on the agent step that
asked for it, found by ``tool_call_id`` or, without one, by name and arguments; a result nothing asked
for joins the latest agent step as an extra tool call, or becomes a ``system`` step. Nested agent
scopes become embedded subagent trajectories, referenced from the tool call that launched them (or
from a step of their own). Marks and other scopes never become steps.
"""

from __future__ import annotations

from nemo_relay._core.observability.atif import extract
from nemo_relay._core.observability.atif.model import (
    FRAMEWORK,
    AgentInfo,
    ObservationResult,
    Step,
    SubagentRef,
    ToolCall,
    Trajectory,
    epoch_seconds,
)
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from nemo_relay._core.events import Event

# Where a nested agent scope may name the tool call that launched it.
_CALL_ID_KEYS = ("tool_call_id", "source_call_id", "call_id")


class Rec:
    """The fields of one event the mapping reads (payload getters copy, so each is read once)."""

    __slots__ = ("kind", "phase", "category", "uuid", "parent", "name", "ts", "time", "data", "metadata", "profile")

    def __init__(self, event: Event) -> None:
        self.kind: str = event.kind
        self.phase: str | None = getattr(event, "scope_category", None)
        self.category: str | None = event.category
        self.uuid: str = event.uuid
        self.parent: str | None = event.parent_uuid
        self.name: str = event.name
        self.ts: int = event._ts
        self.time: str = event.timestamp
        self.data: JsonValue = event.data
        self.metadata: JsonValue = event.metadata
        self.profile: dict[str, Any] = event.category_profile or {}

    def call_id(self) -> str | None:
        """The ``tool_call_id`` recorded on a tool event, if any."""
        value = self.profile.get("tool_call_id")
        return value if type(value) is str and value else None


class _Run:
    """One executed tool (start and end events) bound to a tool call of an agent step."""

    __slots__ = ("start", "end")

    def __init__(self, start: Rec | None, end: Rec) -> None:
        self.start = start
        self.end = end


class _Index:
    """What every trajectory of one export shares: scope names and parents, ended calls, subagents."""

    def __init__(self, records: list[Rec]) -> None:
        self.names: dict[str, str] = {}
        self.parents: dict[str, str | None] = {}
        self.categories: dict[str, str | None] = {}
        self.ended: set[str] = set()
        for rec in records:
            if rec.kind != "scope":
                continue
            if rec.phase == "start":
                self.names[rec.uuid] = rec.name
                self.parents[rec.uuid] = rec.parent
                self.categories[rec.uuid] = rec.category
            else:
                self.ended.add(rec.uuid)
        # A nested agent is an agent scope somewhere below another agent scope.
        self.subagents: set[str] = {
            uuid for uuid, category in self.categories.items() if category == "agent" and self._below_agent(uuid)
        }
        self._owners: dict[str, str | None] = {}
        self.groups: dict[str | None, list[Rec]] = {}
        for rec in records:
            self.groups.setdefault(self.owner(rec.parent), []).append(rec)

    def _below_agent(self, uuid: str) -> bool:
        seen = {uuid}
        parent = self.parents.get(uuid)
        while parent is not None and parent not in seen:
            if self.categories.get(parent) == "agent":
                return True
            seen.add(parent)
            parent = self.parents.get(parent)
        return False

    def owner(self, scope: str | None) -> str | None:
        """The subagent trajectory events under ``scope`` belong to (None: the top trajectory)."""
        chain: list[str] = []
        owner: str | None = None
        while scope is not None and scope not in chain:
            if scope in self._owners:
                owner = self._owners[scope]
                break
            chain.append(scope)
            if scope in self.subagents:
                owner = scope
                break
            scope = self.parents.get(scope)
        for visited in chain:
            self._owners[visited] = owner
        return owner

    def ancestry(self, rec: Rec) -> dict[str, JsonValue]:
        """``ancestry``: the event's id and name, and its parent scope's (name when that start was seen)."""
        out: dict[str, JsonValue] = {"function_id": rec.uuid, "function_name": rec.name}
        if rec.parent is not None:
            out["parent_id"] = rec.parent
            name = self.names.get(rec.parent)
            if name is not None:
                out["parent_name"] = name
        return out


def build(
    events: Iterable[Event],
    agent: AgentInfo,
    session_id: str,
    trajectory_id: str,
) -> Trajectory:
    """The trajectory for ``events``; agent scopes nested in another agent scope become subagents."""
    records = [Rec(event) for event in events]
    records.sort(key=lambda rec: rec.ts)  # stable: emission order breaks ties
    index = _Index(records)
    return _Builder(index, None, agent, session_id).trajectory(session_id, trajectory_id)


def _invocation(start_ns: int, end_ns: int, invocation_id: str) -> dict[str, JsonValue]:
    return {
        "end_timestamp": epoch_seconds(end_ns),
        "framework": FRAMEWORK,
        "invocation_id": invocation_id,
        "start_timestamp": epoch_seconds(start_ns),
        "status": "completed",
    }


def _event_extra(rec: Rec, metadata: JsonValue) -> dict[str, JsonValue]:
    extra: dict[str, JsonValue] = {"event_name": rec.name, "event_uuid": rec.uuid}
    if metadata is not None:
        extra["metadata"] = metadata
    if rec.parent is not None:
        extra["parent_event_uuid"] = rec.parent
    return extra


def _call_arguments(data: JsonValue) -> JsonValue:
    """Arguments of a tool call known only from its tool event: the start payload as a JSON object."""
    if data is None:
        return {}
    return data if type(data) is dict else {"value": data}


class _Builder:
    """Builds one trajectory (the top one, or one subagent's) from its share of the events."""

    def __init__(self, index: _Index, key: str | None, agent: AgentInfo, root_session: str) -> None:
        self.index = index
        self.key = key
        self.agent = agent
        self.root_session = root_session
        self.steps: list[Step] = []
        self.subagents: list[Trajectory] = []
        self.llm_starts: dict[str, Rec] = {}
        self.continued: dict[str, JsonValue] = {}  # LLM uuid -> request of a continuation call
        self.tool_starts: dict[str, Rec] = {}  # open tools, in start order
        self.runs: dict[Step, dict[str, _Run]] = {}
        self.results: dict[Step, dict[str, ObservationResult]] = {}
        self.pending: list[tuple[str, _Run, ObservationResult | None]] = []
        self.used_ids: set[str] = set()
        self.aliases: dict[str, str] = {}  # a provider id used again -> its newest (renamed) tool call

    def trajectory(self, session_id: str, trajectory_id: str) -> Trajectory:
        for rec in self.index.groups.get(self.key, ()):
            if rec.kind != "scope":
                continue  # marks are never steps
            category = rec.category
            if category == "llm":
                self._llm_start(rec) if rec.phase == "start" else self._llm_end(rec)
            elif category == "tool":
                if rec.phase == "start":
                    self.tool_starts[rec.uuid] = rec
                else:
                    self._tool_end(rec)
            elif category == "agent" and rec.phase == "start" and rec.uuid in self.index.subagents:
                self._subagent(rec)
        self._finish()
        return Trajectory(session_id, trajectory_id, self.agent, self.steps, self.subagents)

    # --- LLM calls ----------------------------------------------------------------------------

    def _llm_start(self, rec: Rec) -> None:
        self.llm_starts[rec.uuid] = rec
        request = extract.unwrap_request(rec.data)
        annotated = _annotated(rec, "annotated_request")
        if rec.uuid in self.index.ended and extract.is_continuation(annotated, request):
            self.continued[rec.uuid] = request  # the agent step carries it; no new user turn
            return
        extra: dict[str, JsonValue] = {"ancestry": self.index.ancestry(rec)}
        if request is not None:
            extra["llm_request"] = request
        self.steps.append(Step("user", extract.user_message(annotated, request), rec.time, extra=extra))

    def _llm_end(self, rec: Rec) -> None:
        response = rec.data
        if response is None:
            return  # nothing answered: no agent step
        start = self.llm_starts.pop(rec.uuid, None)
        annotated = _annotated(rec, "annotated_response")
        request = extract.unwrap_request(start.data) if start is not None else None
        request_view = _annotated(start, "annotated_request") if start is not None else None
        profile_model = (start.profile if start is not None else rec.profile).get("model_name")
        calls = extract.tool_calls(response)
        by_original = self._unique_ids(calls)
        step = Step(
            "agent",
            extract.agent_message(annotated, response),
            rec.time,
            model_name=extract.model_name(annotated, response, profile_model, request),
            reasoning_effort=extract.reasoning_effort(request_view, request) if start is not None else None,
            reasoning_content=extract.reasoning_content(response),
            tool_calls=calls or None,
            metrics=extract.metrics(annotated, response),
            llm_call_count=1,
        )
        extra: dict[str, JsonValue] = {"ancestry": self.index.ancestry(rec)}
        if start is not None:
            extra["invocation"] = _invocation(start.ts, rec.ts, rec.uuid)
        if rec.uuid in self.continued:
            extra["llm_request"] = self.continued.pop(rec.uuid)
        extra["llm_response"] = response
        step.extra = extra
        self.steps.append(step)
        # Tool results that ended before the call that asked for them was answered.
        waiting = self.pending
        self.pending = []
        for call_id, run, result in waiting:
            if call_id in by_original:
                self._attach(step, by_original[call_id], run, result)
            else:
                self.pending.append((call_id, run, result))

    def _unique_ids(self, calls: list[ToolCall]) -> dict[str, str]:
        """Keep tool-call ids unique in the trajectory (a provider may repeat ids across turns, and
        generated ``<name>:<n>`` ids repeat): a repeat becomes ``<id>#2``, ``#3``... and tool events
        naming the original id are routed to the newest call. Returns original id -> id used."""
        by_original: dict[str, str] = {}
        for call in calls:
            original = call.tool_call_id
            if original in self.used_ids:
                number = 2
                while f"{original}#{number}" in self.used_ids:
                    number += 1
                call.tool_call_id = f"{original}#{number}"
                self.aliases[original] = call.tool_call_id
            self.used_ids.add(call.tool_call_id)
            by_original.setdefault(original, call.tool_call_id)
        return by_original

    # --- tool calls ---------------------------------------------------------------------------

    def _tool_end(self, rec: Rec) -> None:
        start = self.tool_starts.pop(rec.uuid, None)
        run = _Run(start, rec)
        result = self._tool_result(rec)
        explicit = rec.call_id() or (start.call_id() if start is not None else None)
        if explicit is not None:
            explicit = self.aliases.get(explicit, explicit)
            found = self._find_call(explicit)
            if found is not None:
                self._attach(found, explicit, run, result)
            elif self._last_agent_step() is not None:
                self._synthetic(explicit, run, result)
            else:
                self.pending.append((explicit, run, result))  # its tool call may still come
            return
        match = self._match_call(rec.name, start.data if start is not None else None)
        if match is not None:
            self._attach(match[0], match[1], run, result)
        elif self._last_agent_step() is not None:
            self._synthetic(rec.uuid, run, result)
        elif result is not None:
            self.steps.append(Step("system", "", rec.time, observation=[result]))

    def _tool_result(self, rec: Rec) -> ObservationResult | None:
        if rec.data is None:
            return None
        content, raw = extract.observation_content(rec.data)
        extra = _event_extra(rec, rec.metadata)
        if raw is not None:
            extra["tool_result"] = raw
        annotation = rec.profile.get("tool_result_annotation")
        if annotation is not None:
            extra["tool_result_annotation"] = annotation
        return ObservationResult(content=content, extra=extra)

    def _last_agent_step(self) -> Step | None:
        if self.steps and self.steps[-1].source == "agent":
            return self.steps[-1]
        return None

    def _find_call(self, call_id: str) -> Step | None:
        for step in reversed(self.steps):
            if step.tool_calls and any(call.tool_call_id == call_id for call in step.tool_calls):
                return step
        return None

    def _match_call(self, name: str, data: JsonValue) -> tuple[Step, str] | None:
        """The newest agent step's first unexecuted tool call with this name and these arguments."""
        arguments = extract.tool_arguments(data)
        for step in reversed(self.steps):
            if not step.tool_calls:
                continue
            done = self.runs.get(step, {})
            for call in step.tool_calls:
                if call.function_name == name and call.tool_call_id not in done and call.arguments == arguments:
                    return step, call.tool_call_id
        return None

    def _synthetic(self, call_id: str, run: _Run, result: ObservationResult | None) -> None:
        """Record a tool nothing asked for as a tool call of the latest agent step."""
        step = self.steps[-1]
        origin = run.start if run.start is not None else run.end
        call = ToolCall(call_id, origin.name, _call_arguments(origin.data), _event_extra(origin, origin.metadata))
        step.tool_calls = [*(step.tool_calls or []), call]
        self.used_ids.add(call_id)
        self._attach(step, call_id, run, result)

    def _attach(self, step: Step, call_id: str, run: _Run | None, result: ObservationResult | None) -> None:
        if run is not None:
            self.runs.setdefault(step, {}).setdefault(call_id, run)
        if result is None:
            return
        result.source_call_id = call_id
        known = self.results.setdefault(step, {})
        existing = known.get(call_id)
        if existing is None:
            known[call_id] = result
            step.observation = [*(step.observation or []), result]
            return
        # A subagent reference already stands for this call: complete it with the tool's result.
        if existing.content is None:
            existing.content = result.content
        merged = dict(existing.extra or {})
        for key, value in (result.extra or {}).items():
            merged.setdefault(key, value)
        existing.extra = {key: merged[key] for key in sorted(merged)}

    # --- nested agents ------------------------------------------------------------------------

    def _subagent(self, rec: Rec) -> None:
        metadata = rec.metadata if type(rec.metadata) is dict else {}
        session = metadata.get("session_id")
        session = session if type(session) is str else None
        ref = SubagentRef(rec.uuid, session, {"name": rec.name, "scope_uuid": rec.uuid})
        result = ObservationResult(subagent_trajectory_ref=[ref], extra=_event_extra(rec, rec.metadata))
        target = self._launching_call(rec, metadata)
        if target is not None:
            self._attach(target[0], target[1], None, result)
        else:
            call_id = f"subagent:{rec.uuid}"
            arguments: dict[str, JsonValue] = {"name": rec.name}
            if rec.data is not None:
                arguments["payload"] = rec.data
            if session is not None:
                arguments["session_id"] = session
            call = ToolCall(call_id, rec.name, arguments, _event_extra(rec, rec.metadata))
            result.source_call_id = call_id
            self.steps.append(Step("agent", "", rec.time, tool_calls=[call], observation=[result], llm_call_count=0))
        child = _Builder(self.index, rec.uuid, self.agent, self.root_session)
        self.subagents.append(child.trajectory(session or self.root_session, rec.uuid))

    def _launching_call(self, rec: Rec, metadata: dict[str, Any]) -> tuple[Step, str] | None:
        """The tool call a nested agent runs for: named in its metadata/data, else the tool still running."""
        sources = [metadata, rec.data if type(rec.data) is dict else {}]
        for source in sources:
            for key in _CALL_ID_KEYS:
                call_id = source.get(key)
                if type(call_id) is str and call_id:
                    call_id = self.aliases.get(call_id, call_id)
                    step = self._find_call(call_id)
                    if step is not None:
                        return step, call_id
        for tool in reversed(self.tool_starts.values()):
            explicit = tool.call_id()
            if explicit is not None:
                explicit = self.aliases.get(explicit, explicit)
                step = self._find_call(explicit)
                if step is not None:
                    return step, explicit
            else:
                match = self._match_call(tool.name, tool.data)
                if match is not None:
                    return match
        return None

    # --- the end ------------------------------------------------------------------------------

    def _finish(self) -> None:
        for _call_id, run, result in self.pending:
            if result is not None:
                result.source_call_id = None
                self.steps.append(Step("system", "", run.end.time, observation=[result]))
        self.pending = []
        for step, runs in self.runs.items():
            ancestry: list[JsonValue] = []
            invocations: list[JsonValue] = []
            for call in step.tool_calls or ():
                executed = runs.get(call.tool_call_id)
                if executed is None:
                    continue
                origin = executed.start if executed.start is not None else executed.end
                ancestry.append(self.index.ancestry(origin))
                invocations.append(_invocation(origin.ts, executed.end.ts, call.tool_call_id))
            if ancestry:
                step.extra = {**(step.extra or {}), "tool_ancestry": ancestry, "tool_invocations": invocations}
        for number, step in enumerate(self.steps, 1):
            step.step_id = number


def _annotated(rec: Rec, key: str) -> dict[str, Any] | None:
    value = rec.profile.get(key)
    return value if type(value) is dict else None
