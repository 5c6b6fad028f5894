"""The stress workload: many asyncio tasks on several threads, each running a seeded plan of nested scopes,
marks and managed tool / LLM calls through global and task-local middleware.

Everything a task does is decided up front by its :class:`TaskPlan` (seeded per task), so the exact event
sequence each task must produce is known before anything runs (:func:`expected_events`). Only the
interleaving (random sleeps, thread scheduling) varies, and no assertion depends on it.

Identification: every scope, tool and LLM call of task ``N`` is named ``tN`` (its root scope) or ``tN.<...>``,
its scope-local guardrail is ``l-guard-N``, and payloads carry ``"task": N``. A task's own registrations
tag what passes through them with ``N`` too, so a payload that ended up in the wrong task is visible.

Sizes (environment variable ``NEMO_RELAY_STRESS``):

* unset or ``default``: 8 threads x 125 tasks = 1,000 tasks, 3-8 operations each (CI size);
* ``large``: 16 threads x 625 tasks = 10,000 tasks, 6-14 operations each.

``NEMO_RELAY_STRESS_SEED`` replaces the fixed seed (to explore other plans; failures print the seed).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import nemo_relay
from nemo_relay import (
    LLMRequest,
    LLMRequestInterceptOutcome,
    PendingMarkSpec,
    ScopeHandle,
    ScopeType,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
    guardrails,
    intercepts,
    llm,
    scope,
    scope_local,
    subscribers,
    tools,
)

DEFAULT_SEED = 20260611

# (phase, category, name): what the checks compare; phase is "start", "end" or "mark".
Shape = tuple[str, str | None, str]
THREAD = -1  # owner id of events that belong to a thread's own scope, not to a task

_SLEEPS = (0.0, 0.0, 0.0, 0.0002, 0.001)  # most awaits only yield; a few really sleep
_TASK_NAME = re.compile(r"t(\d+)(?:\.|$)")
_LOCAL_GUARD = re.compile(r"l-guard-(\d+)$")
_THREAD_NAME = re.compile(r"thread(\d+)$")


@dataclass(frozen=True)
class Size:
    """How big a run is."""

    label: str
    threads: int
    tasks_per_thread: int
    min_ops: int
    max_ops: int
    max_depth: int = 3

    @property
    def tasks(self) -> int:
        return self.threads * self.tasks_per_thread


SIZES = {
    "default": Size("default", threads=8, tasks_per_thread=125, min_ops=3, max_ops=8),
    "large": Size("large", threads=16, tasks_per_thread=625, min_ops=6, max_ops=14),
}


def size_from_env() -> Size:
    """The size selected by ``NEMO_RELAY_STRESS`` (unset means ``default``)."""
    label = os.environ.get("NEMO_RELAY_STRESS", "").strip().lower() or "default"
    if label not in SIZES:
        raise ValueError(f"NEMO_RELAY_STRESS must be one of {sorted(SIZES)}, got {label!r}")
    return SIZES[label]


def seed_from_env() -> int:
    """``NEMO_RELAY_STRESS_SEED`` or the fixed default seed."""
    return int(os.environ.get("NEMO_RELAY_STRESS_SEED", DEFAULT_SEED))


# --- plans ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One step of a task.

    ``kind`` is one of: ``mark``, ``sleep``, ``tool_sync``, ``tool_async`` (allowed tool calls), ``tool_deny``
    (rejected by the global guardrail), ``tool_ldeny`` (rejected by the task's own guardrail), ``tool_fail``
    (the tool raises), ``llm_sync``, ``llm_async`` (buffered LLM calls), ``stream`` (consumed to the end),
    ``stream_close`` (``aclose()`` after ``take`` chunks), ``stream_drop`` (``break`` after ``take`` chunks,
    then the stream is dropped) and ``scope`` (a nested scope around ``children``, entered with ``mode``
    ``with`` / ``async`` / ``push``).
    """

    kind: str
    name: str
    chunks: int = 0
    take: int = 0
    mode: str = ""
    agent: bool = False
    children: tuple[Op, ...] = ()


@dataclass
class TaskPlan:
    """What task ``task`` does on thread ``thread``; ``forked`` tasks run in ``fork_asyncio_context()``,
    the others install a fresh stack with ``use_scope_stack``."""

    task: int
    thread: int
    forked: bool
    ops: tuple[Op, ...]
    sleep_seed: int
    root_parent: str | None = None  # filled in when the task runs
    local_events: list[Shape] = field(default_factory=list)
    local_seen_at_flush: int = -1
    seen: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"t{self.task}"


_LEAF_KINDS = (
    ("mark", 4),
    ("sleep", 2),
    ("tool_sync", 3),
    ("tool_async", 3),
    ("tool_deny", 1),
    ("tool_ldeny", 1),
    ("tool_fail", 1),
    ("llm_sync", 2),
    ("llm_async", 2),
    ("stream", 2),
    ("stream_close", 1),
    ("stream_drop", 1),
)


def make_plans(size: Size, seed: int) -> list[TaskPlan]:
    """Every task's plan, derived from ``seed`` only."""
    plans = []
    for task in range(size.tasks):
        rng = random.Random(f"{seed}-{task}")
        counter = iter(range(1_000_000))
        count = rng.randint(size.min_ops, size.max_ops)
        ops = tuple(_make_op(rng, task, counter, size, depth=0) for _ in range(count))
        forked = rng.random() < 0.5
        plans.append(TaskPlan(task, task % size.threads, forked, ops, sleep_seed=rng.getrandbits(32)))
    return plans


def _make_op(rng: random.Random, task: int, counter: Iterator[int], size: Size, depth: int) -> Op:
    k = next(counter)
    if depth < size.max_depth and rng.random() < 0.25:
        children = tuple(_make_op(rng, task, counter, size, depth + 1) for _ in range(rng.randint(1, 4)))
        mode = rng.choice(("with", "async", "push"))
        return Op("scope", f"t{task}.s{k}", mode=mode, agent=rng.random() < 0.3, children=children)
    kinds, weights = zip(*_LEAF_KINDS, strict=True)
    kind = rng.choices(kinds, weights)[0]
    if kind == "mark":
        return Op(kind, f"t{task}.m{k}")
    if kind.startswith("tool"):
        suffix = {"tool_deny": ".deny", "tool_ldeny": ".ldeny"}.get(kind, "")
        return Op(kind, f"t{task}.tool{k}{suffix}")
    if kind.startswith("llm"):
        return Op(kind, f"t{task}.llm{k}")
    if kind.startswith("stream"):
        chunks = rng.randint(1, 4) if kind == "stream" else rng.randint(2, 5)
        take = chunks if kind == "stream" else rng.randint(1, chunks - 1)
        return Op(kind, f"t{task}.stream{k}", chunks=chunks, take=take)
    return Op(kind, f"t{task}.sleep{k}")


def walk(ops: tuple[Op, ...]) -> Iterator[Op]:
    """Every op in execution order (a scope before its children)."""
    for op in ops:
        yield op
        yield from walk(op.children)


# --- the expected event sequence ------------------------------------------------------------------------------

_GLOBAL_TOOL_GUARD = "g-tool-guard"
_GLOBAL_LLM_GUARD = "g-llm-guard"
_TOOL_DONE = "tool.checked"  # pending mark added by the global tool execution intercept
_LLM_ROUTED = "llm.routed"  # pending mark added by the global LLM request intercept


def _guard(name: str) -> list[Shape]:
    return [("start", "guardrail", name), ("end", "guardrail", name)]


def _op_events(op: Op, task: int) -> list[Shape]:
    local_guard = f"l-guard-{task}"
    kind, name = op.kind, op.name
    if kind == "mark":
        return [("mark", None, name)]
    if kind == "sleep":
        return []
    if kind in ("tool_sync", "tool_async"):
        return _guard(_GLOBAL_TOOL_GUARD) + _guard(local_guard) + [
            ("start", "tool", name), ("end", "tool", name), ("mark", None, _TOOL_DONE)
        ]  # fmt: skip
    if kind == "tool_deny":  # the global guardrail runs first (equal priority) and stops the chain
        return [*_guard(_GLOBAL_TOOL_GUARD), ("mark", None, name)]
    if kind == "tool_ldeny":
        return [*_guard(_GLOBAL_TOOL_GUARD), *_guard(local_guard), ("mark", None, name)]
    if kind == "tool_fail":  # pending marks of a failed call are discarded
        return [*_guard(_GLOBAL_TOOL_GUARD), *_guard(local_guard), ("start", "tool", name), ("end", "tool", name)]
    if kind in ("llm_sync", "llm_async"):
        return [*_guard(_GLOBAL_LLM_GUARD), ("start", "llm", name), ("mark", None, _LLM_ROUTED), ("end", "llm", name)]
    if kind.startswith("stream"):
        return [
            *_guard(_GLOBAL_LLM_GUARD),
            ("start", "llm", name),
            ("mark", None, _LLM_ROUTED),
            *[("mark", None, "llm.chunk")] * op.take,  # one per chunk the consumer pulled
            ("end", "llm", name),
        ]
    assert kind == "scope", kind
    category = "agent" if op.agent else "function"
    inner = [shape for child in op.children for shape in _op_events(child, task)]
    return [("start", category, name), *inner, ("end", category, name)]


def expected_events(plan: TaskPlan) -> list[Shape]:
    """The exact ordered events task ``plan`` emits: its root scope around every op's events."""
    inner = [shape for op in plan.ops for shape in _op_events(op, plan.task)]
    return [("start", "agent", plan.name), *inner, ("end", "agent", plan.name)]


def expected_seen(plan: TaskPlan) -> dict[str, list[str]]:
    """What each of the task's own registrations must see, in order (see ``_TaskRun._register_local``)."""
    ops = list(walk(plan.ops))
    tools_guarded = [op.name for op in ops if op.kind.startswith("tool") and op.kind != "tool_deny"]
    tools_run = [op.name for op in ops if op.kind in ("tool_sync", "tool_async", "tool_fail")]
    llm_calls = [op.name for op in ops if op.kind.startswith(("llm", "stream"))]
    marks = [name for kind, _, name in expected_events(plan)[1:] if kind == "mark"]
    return {
        "tool_guard": tools_guarded,
        "tool_request": tools_run,
        "tool_execution": tools_run,
        "llm_request": llm_calls,
        "llm_execution": [op.name for op in ops if op.kind.startswith("llm")],
        "llm_stream": [plan.name] * sum(op.kind.startswith("stream") for op in ops),
        "mark_sanitize": marks,
    }


# --- what the global subscriber keeps ---------------------------------------------------------------------------


class Record(NamedTuple):
    """A compact copy of one delivered event (a large run delivers millions; events themselves are big)."""

    phase: str
    category: str | None
    name: str
    uuid: str
    parent_uuid: str | None
    claims: frozenset[int]  # task ids that the name and payload say this event belongs to
    problem: str | None  # what a global sanitizer failed to record on it, if anything

    @property
    def shape(self) -> Shape:
        return (self.phase, self.category, self.name)


def _claims(name: str, data: Any) -> frozenset[int]:
    found: set[int] = set()
    for pattern in (_TASK_NAME, _LOCAL_GUARD):
        match = pattern.match(name)
        if match:
            found.add(int(match[1]))
    if isinstance(data, dict):
        for key in ("task", "by", "local_tag"):
            if isinstance(data.get(key), int):
                found.add(data[key])
        target = data.get("target_name")
        if isinstance(target, str) and (match := _TASK_NAME.match(target)):
            found.add(int(match[1]))
        content, headers = data.get("content"), data.get("headers")
        if isinstance(content, dict) and isinstance(content.get("task"), int):
            found.add(content["task"])
        if isinstance(headers, dict) and isinstance(headers.get("x-task"), str):
            found.add(int(headers["x-task"]))
    return frozenset(found)


def _problem(phase: str, category: str | None, metadata: Any, data: Any) -> str | None:
    # The global sanitizers tag every event; tool starts also carry both request intercepts' tags.
    flag = {"start": "stress.start", "end": "stress.end", "mark": "stress.mark"}[phase]
    if not isinstance(metadata, dict) or metadata.get(flag) is not True:
        return f"no {flag} tag in metadata {metadata!r}"
    if phase == "start" and category == "tool":
        if not (isinstance(data, dict) and data.get("global") is True and data.get("sanitized") is True):
            return f"tool start data misses the global intercept or sanitizer: {data!r}"
        if data.get("local_tag") != data.get("task"):
            return f"tool start tagged by another task's intercept: {data!r}"
    return None


class Recorder:
    """The global subscriber: keeps a :class:`Record` per delivered event, in delivery order."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def __call__(self, event: Any) -> None:
        phase = getattr(event, "scope_category", "mark")
        data = event.data
        self.records.append(
            Record(
                phase,
                event.category,
                event.name,
                event.uuid,
                event.parent_uuid,
                _claims(event.name, data),
                _problem(phase, event.category, event.metadata, data),
            )
        )


# --- middleware -------------------------------------------------------------------------------------------------

# Which task the current context belongs to; sync middleware runs in the caller's context and must see it.
current_task: ContextVar[int | None] = ContextVar("stress_current_task", default=None)
current_thread: ContextVar[int | None] = ContextVar("stress_current_thread", default=None)


class Violations(list[str]):
    """Cross-talk seen from inside a callback (appended from any thread; ``list.append`` is atomic)."""

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)


def _with_tag(fields: Any, key: str) -> dict[str, Any]:
    metadata = fields.get("metadata")
    return {**fields, "metadata": {**(metadata if isinstance(metadata, dict) else {}), key: True}}


def install_global_middleware(violations: Violations) -> None:
    """Global guardrails, intercepts and sanitizers that every task's calls pass through.

    Sync callbacks check that they run in the calling task's context; async ones that they run on the
    calling task's thread (the originating loop).
    """

    def tool_guard(name: str, args: Any) -> str | None:
        violations.check(current_task.get() == args["task"], f"tool guardrail for {name} ran in another context")
        return "denied globally" if name.endswith(".deny") else None

    def llm_guard(request: LLMRequest) -> str | None:
        violations.check(current_task.get() == request.content["task"], "LLM guardrail ran in another context")
        return None

    def tool_request(name: str, args: Any) -> Any:
        violations.check(current_task.get() == args["task"], f"tool request intercept for {name} in another context")
        return {**args, "global": True}

    async def tool_execution(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        violations.check(threading.get_ident() == current_thread.get(), f"tool intercept for {name} off its loop")
        await asyncio.sleep(0)
        downstream = await next_call(args)
        marks = [PendingMarkSpec(_TOOL_DONE, data={"task": args["task"]})]
        return ToolExecutionInterceptOutcome(downstream.result, marks, annotation=downstream.annotation)

    def llm_request(name: str, request: LLMRequest, annotated: Any) -> LLMRequestInterceptOutcome:
        task = request.content["task"]
        violations.check(current_task.get() == task, f"LLM request intercept for {name} in another context")
        marks = [PendingMarkSpec(_LLM_ROUTED, data={"task": task})]
        rewritten = LLMRequest({**request.headers, "x-global": "1"}, request.content)
        return LLMRequestInterceptOutcome(rewritten, None, marks)

    async def llm_execution(name: str, request: LLMRequest, next_call: Any) -> Any:
        violations.check(threading.get_ident() == current_thread.get(), f"LLM intercept for {name} off its loop")
        return await next_call(request)

    async def llm_stream(request: LLMRequest, next_call: Any) -> Any:
        return await next_call(request)

    def sanitize_tool_request(name: str, args: Any) -> Any:
        return {**args, "sanitized": True}

    def sanitize_tool_response(name: str, result: Any) -> Any:
        return {**result, "sanitized": True} if isinstance(result, dict) else result

    def sanitize_llm_request(request: LLMRequest, context: Any) -> LLMRequest:
        return LLMRequest(request.headers, {**request.content, "sanitized": True})

    def sanitize_llm_response(response: Any, context: Any) -> Any:
        return {**response, "sanitized": True} if isinstance(response, dict) else response

    guardrails.register_tool_conditional_execution(_GLOBAL_TOOL_GUARD, 0, tool_guard)
    guardrails.register_llm_conditional_execution(_GLOBAL_LLM_GUARD, 0, llm_guard)
    intercepts.register_tool_request("g-tool-request", 0, False, tool_request)
    intercepts.register_tool_execution("g-tool-execution", 0, tool_execution)
    intercepts.register_llm_request("g-llm-request", 0, False, llm_request)
    intercepts.register_llm_execution("g-llm-execution", 0, llm_execution)
    intercepts.register_llm_stream_execution("g-llm-stream", 0, llm_stream)
    guardrails.register_tool_sanitize_request("g-tool-sanitize-request", 0, sanitize_tool_request)
    guardrails.register_tool_sanitize_response("g-tool-sanitize-response", 0, sanitize_tool_response)
    guardrails.register_llm_sanitize_request("g-llm-sanitize-request", 0, sanitize_llm_request)
    guardrails.register_llm_sanitize_response("g-llm-sanitize-response", 0, sanitize_llm_response)
    guardrails.register_mark_sanitize("g-mark", 0, lambda event, fields: _with_tag(fields, "stress.mark"))
    guardrails.register_scope_sanitize_start("g-start", 0, lambda event, fields: _with_tag(fields, "stress.start"))
    guardrails.register_scope_sanitize_end("g-end", 0, lambda event, fields: _with_tag(fields, "stress.end"))


# --- one task ---------------------------------------------------------------------------------------------------


class _TaskRun:
    """Runs one plan; every callback it hands to the runtime checks that it only sees this task's work."""

    def __init__(self, plan: TaskPlan, violations: Violations) -> None:
        self.plan = plan
        self.task = plan.task
        self.violations = violations
        self.rng = random.Random(plan.sleep_seed)
        self.agents = [plan.name]  # names of the Agent scopes this task has open, innermost last
        self.open: list[ScopeHandle] = []
        plan.seen = {key: [] for key in expected_seen(plan)}

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.choice(_SLEEPS))

    def check_top(self) -> None:
        self.violations.check(scope.get_handle().uuid == self.open[-1].uuid, f"{self.plan.name}: wrong top of stack")

    async def run(self) -> None:
        current_task.set(self.task)
        if self.plan.forked:
            await self._run_root()
        else:
            with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
                await self._run_root()

    async def _run_root(self) -> None:
        self.plan.root_parent = scope.get_handle().uuid
        async with scope.scope(self.plan.name, ScopeType.Agent, input={"task": self.task}) as root:
            self.open.append(root)
            self._register_local(root)
            await self._run_ops(self.plan.ops)
            self.check_top()
            self.open.pop()

    def _register_local(self, root: ScopeHandle) -> None:
        """Scope-local middleware and a subscriber on the task's root scope; each records what it sees."""
        task, seen, check = self.task, self.plan.seen, self.violations.check
        local_events = self.plan.local_events

        def subscriber(event: Any) -> None:
            local_events.append((getattr(event, "scope_category", "mark"), event.category, event.name))

        def tool_guard(name: str, args: Any) -> str | None:
            seen["tool_guard"].append(name)
            return "denied locally" if name.endswith(".ldeny") else None

        def tool_request(name: str, args: Any) -> Any:
            seen["tool_request"].append(name)
            return {**args, "local_tag": task}

        async def tool_execution(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
            seen["tool_execution"].append(name)
            await self.pause()
            downstream = await next_call(args)
            return ToolExecutionInterceptOutcome(downstream.result, [], annotation=downstream.annotation)

        def llm_request(name: str, request: LLMRequest, annotated: Any) -> LLMRequestInterceptOutcome:
            seen["llm_request"].append(name)
            return LLMRequestInterceptOutcome(LLMRequest({**request.headers, "x-task": str(task)}, request.content))

        async def llm_execution(name: str, request: LLMRequest, next_call: Any) -> Any:
            seen["llm_execution"].append(name)
            return await next_call(request)

        async def llm_stream(request: LLMRequest, next_call: Any) -> Any:
            seen["llm_stream"].append(f"t{request.content['task']}")
            return await next_call(request)

        def mark_sanitize(event: Any, fields: Any) -> Any:
            # Runs on the dispatcher thread: the task-local registration must still only see this task's marks.
            seen["mark_sanitize"].append(event.name)
            data = fields.get("data")
            check(isinstance(data, dict), f"t{task}: mark {event.name} without dict data")
            return {**fields, "data": {**data, "by": task} if isinstance(data, dict) else data}

        scope_local.register_subscriber(root, f"l-subscriber-{task}", subscriber)
        scope_local.register_tool_conditional_execution(root, f"l-guard-{task}", 0, tool_guard)
        scope_local.register_tool_request(root, f"l-tool-request-{task}", 0, False, tool_request)
        scope_local.register_tool_execution(root, f"l-tool-execution-{task}", 0, tool_execution)
        scope_local.register_llm_request(root, f"l-llm-request-{task}", 0, False, llm_request)
        scope_local.register_llm_execution(root, f"l-llm-execution-{task}", 0, llm_execution)
        scope_local.register_llm_stream_execution(root, f"l-llm-stream-{task}", 0, llm_stream)
        scope_local.register_mark_sanitize(root, f"l-mark-{task}", 0, mark_sanitize)

    async def _run_ops(self, ops: tuple[Op, ...]) -> None:
        for op in ops:
            await self.pause()
            await self._run_op(op)
            self.check_top()

    async def _run_op(self, op: Op) -> None:
        kind = op.kind
        if kind == "mark":
            scope.event(op.name, data={"task": self.task})
        elif kind == "sleep":
            await self.pause()
        elif kind.startswith("tool"):
            await self._tool(op)
        elif kind.startswith("llm"):
            response = await llm.execute(op.name, self._request(op), self._provider(op))
            self.violations.check(response == {"task": self.task, "answer": op.name}, f"{op.name}: got {response!r}")
        elif kind.startswith("stream"):
            await self._stream(op)
        else:
            await self._scope(op)

    async def _scope(self, op: Op) -> None:
        scope_type = ScopeType.Agent if op.agent else ScopeType.Function
        if op.agent:
            self.agents.append(op.name)
        if op.mode == "push":  # explicit push/pop, output recorded on the end event
            handle = scope.push(op.name, scope_type, input={"task": self.task})
            self.open.append(handle)
            await self._run_ops(op.children)
            self.check_top()
            scope.pop(self.open.pop(), output={"task": self.task})
        elif op.mode == "async":
            async with scope.scope(op.name, scope_type, input={"task": self.task}) as handle:
                self.open.append(handle)
                await self._run_ops(op.children)
                self.check_top()
                self.open.pop()
        else:  # a plain `with` held across awaits: legal, the stack belongs to this task
            with scope.scope(op.name, scope_type, input={"task": self.task}) as handle:
                self.open.append(handle)
                await self._run_ops(op.children)
                self.check_top()
                self.open.pop()
        if op.agent:
            self.agents.pop()

    async def _tool(self, op: Op) -> None:
        task, check = self.task, self.violations.check

        def verify(args: Any) -> None:
            check(args == {"task": task, "global": True, "local_tag": task}, f"{op.name}: tool got {args!r}")

        def sync_tool(args: Any) -> ToolExecutionResult[Any]:
            verify(args)
            if op.kind == "tool_fail":
                raise ValueError(f"{op.name} failed on purpose")
            return ToolExecutionResult({"task": task, "tool": op.name})

        async def async_tool(args: Any) -> ToolExecutionResult[Any]:
            verify(args)
            await self.pause()
            return ToolExecutionResult({"task": task, "tool": op.name})

        func = async_tool if op.kind == "tool_async" else sync_tool
        try:
            result = await tools.execute(op.name, {"task": task}, func)
        except RuntimeError as exc:
            wanted = {
                "tool_deny": "guardrail rejected: denied globally",
                "tool_ldeny": "guardrail rejected: denied locally",
            }.get(op.kind, f"ValueError: {op.name} failed on purpose")
            check(op.kind in ("tool_deny", "tool_ldeny", "tool_fail") and wanted in str(exc), f"{op.name}: {exc!r}")
            return
        check(op.kind in ("tool_sync", "tool_async"), f"{op.name} was not rejected")
        check(result.result == {"task": task, "tool": op.name}, f"{op.name}: result {result.result!r}")

    def _request(self, op: Op) -> LLMRequest:
        return LLMRequest({"authorization": "Bearer secret"}, {"task": self.task, "messages": [{"role": "user"}]})

    def _check_provider_request(self, op: Op, request: LLMRequest) -> None:
        headers, check = request.headers, self.violations.check
        check(request.content.get("task") == self.task, f"{op.name}: provider got content {request.content!r}")
        check(headers.get("x-task") == str(self.task), f"{op.name}: x-task header {headers.get('x-task')!r}")
        check(headers.get("x-global") == "1", f"{op.name}: the global request intercept did not run")
        # Agent scopes of other tasks must never leak into this task's session header.
        session = headers.get("x-dynamo-session-id")
        check(session == self.agents[-1], f"{op.name}: x-dynamo-session-id {session!r}, want {self.agents[-1]!r}")

    def _provider(self, op: Op) -> Callable[[LLMRequest], Any]:
        def sync_provider(request: LLMRequest) -> Any:
            self._check_provider_request(op, request)
            return {"task": self.task, "answer": op.name}

        async def async_provider(request: LLMRequest) -> Any:
            self._check_provider_request(op, request)
            await self.pause()
            return {"task": self.task, "answer": op.name}

        return async_provider if op.kind == "llm_async" else sync_provider

    async def _stream(self, op: Op) -> None:
        task, check = self.task, self.violations.check
        collected: list[Any] = []
        finalized: list[int] = []

        async def produce(request: LLMRequest) -> AsyncIterator[Any]:
            self._check_provider_request(op, request)
            for index in range(op.chunks):
                await self.pause()
                yield {"task": task, "index": index}

        def collect(chunk: Any) -> None:
            check(isinstance(chunk, dict) and chunk.get("task") == task, f"{op.name}: collected {chunk!r}")
            collected.append(chunk)

        def finalize() -> Any:
            finalized.append(len(collected))
            return {"task": task, "chunks": len(collected)}

        stream = await llm.stream_execute(op.name, self._request(op), produce, collect, finalize)
        async for _chunk in stream:
            if len(collected) == op.take and op.kind != "stream":
                break
        if op.kind == "stream_close":
            await stream.aclose()
        elif op.kind == "stream_drop":
            del stream  # abandoned: the runtime must record the end as soon as the stream is gone
        check(finalized == [op.take], f"{op.name}: finalizer calls {finalized}, want one after {op.take} chunks")


# --- threads --------------------------------------------------------------------------------------------------


@dataclass
class ThreadResult:
    """What one worker thread reports back."""

    index: int
    scope_uuid: str | None = None
    loop_errors: list[str] = field(default_factory=list)
    task_errors: list[BaseException] = field(default_factory=list)
    flushed: bool = False


async def _thread_main(index: int, plans: list[TaskPlan], violations: Violations, result: ThreadResult) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: result.loop_errors.append(str(context.get("message"))))
    current_thread.set(threading.get_ident())
    thread_scope = scope.push(f"thread{index}", ScopeType.Agent)
    result.scope_uuid = thread_scope.uuid
    tasks = []
    for plan in plans:
        run = _TaskRun(plan, violations).run()
        # Forked tasks continue under the thread's scope; the others start their own stack inside the task.
        context = nemo_relay.fork_asyncio_context() if plan.forked else None
        tasks.append(loop.create_task(run, context=context))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    result.task_errors.extend(outcome for outcome in outcomes if isinstance(outcome, BaseException))
    scope.pop(thread_scope)
    # A barrier from this loop while other threads keep emitting: everything this thread's tasks emitted
    # must have reached their scope-local subscribers when it returns.
    result.flushed = await subscribers.flush_async(timeout=120)
    for plan in plans:
        plan.local_seen_at_flush = len(plan.local_events)


def run_thread(index: int, plans: list[TaskPlan], violations: Violations, result: ThreadResult) -> None:
    """Thread body: one event loop (``asyncio.run``) running ``plans`` as concurrent tasks."""
    try:
        asyncio.run(_thread_main(index, plans, violations, result))
    except BaseException as exc:  # reported by the test, which joins this thread
        result.task_errors.append(exc)


def run_workers(size: Size, plans: list[TaskPlan], violations: Violations) -> list[ThreadResult]:
    """Run the plans on ``size.threads`` threads (one event loop each) and join them all."""
    results = [ThreadResult(index) for index in range(size.threads)]
    threads = [
        threading.Thread(
            target=run_thread,
            args=(index, [plan for plan in plans if plan.thread == index], violations, results[index]),
            name=f"stress-worker-{index}",
        )
        for index in range(size.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(1200)  # a failure bound, not a measurement
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"worker threads never finished: {stuck}"
    return results


# --- checks -----------------------------------------------------------------------------------------------------


def owner_of(record: Record, starts: dict[str, Record], roots: dict[str, int]) -> int:
    """The task whose root scope this event's ancestry reaches, after checking every ancestor on the way
    belongs to that same task (``THREAD`` for a thread's own scope)."""
    if record.phase != "mark" and _THREAD_NAME.match(record.name):
        return THREAD
    if record.uuid in roots:
        return roots[record.uuid]
    chain: list[Record] = []
    parent = record.parent_uuid
    while parent not in roots:
        ancestor = starts.get(parent)  # type: ignore[arg-type]
        assert ancestor is not None, f"{record.name}: ancestor {parent} was never delivered or is outside any task"
        chain.append(ancestor)
        parent = ancestor.parent_uuid
        assert len(chain) <= 10, f"{record.name}: ancestry too deep or cyclic"
    owner = roots[parent]
    for ancestor in chain:
        assert ancestor.name.startswith(f"t{owner}."), f"{record.name} of t{owner} is parented into {ancestor.name}"
    return owner
