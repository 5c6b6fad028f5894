"""Acceptance test: many asyncio tasks and OS threads, each on its own scope stack, interleave nested scopes and
marks; one subscriber must see every event exactly once, correctly parented, paired and in per-worker order."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nemo_relay
from nemo_relay import ScopeType, scope, subscribers

SEED = 20240611
TASKS = 200
THREADS = 8
MAX_SLEEP = 0.002
MAIN = -1  # worker tag of the spawning test body

_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def timestamp_ns(text: str) -> int:
    """Exact nanoseconds of an RFC 3339 timestamp (``datetime`` alone would truncate to microseconds)."""
    match = _TIMESTAMP.fullmatch(text)
    assert match, f"unexpected timestamp format {text!r}"
    offset = "+00:00" if match[3] == "Z" else match[3]
    seconds = int(datetime.fromisoformat(match[1] + offset).timestamp())
    return seconds * 1_000_000_000 + int((match[2] or "0").ljust(9, "0"))


def phase(event: Any) -> str:
    return getattr(event, "scope_category", "mark")


def worker_of(name: str) -> int:
    if name == "spawner":
        return MAIN
    match = re.match(r"w(\d+)-", name)
    assert match, f"event {name!r} carries no worker tag"
    return int(match[1])


@dataclass
class Plan:
    """What one worker does: per round, the number of marks emitted at each nesting level (depth 2-4)."""

    worker: int
    kind: str  # "fork", "own-stack" or "thread"
    rounds: list[list[int]]
    sleep_seed: int
    emitted: list[tuple[str, str]] = field(default_factory=list)
    root: str | None = None

    def expected(self) -> list[tuple[str, str]]:
        sequence: list[tuple[str, str]] = []
        for r, marks in enumerate(self.rounds):
            for depth, count in enumerate(marks):
                sequence.append(("start", f"w{self.worker}-r{r}-d{depth}"))
                sequence.extend(("mark", f"w{self.worker}-r{r}-d{depth}-m{k}") for k in range(count))
            sequence.extend(("end", f"w{self.worker}-r{r}-d{depth}") for depth in reversed(range(len(marks))))
        return sequence


def make_plans() -> list[Plan]:
    rng = random.Random(SEED)
    plans = []
    for worker in range(TASKS + THREADS):
        kind = "thread" if worker >= TASKS else ("fork" if worker % 2 == 0 else "own-stack")
        rounds = [[rng.randint(0, 2) for _ in range(rng.randint(2, 4))] for _ in range(rng.randint(1, 2))]
        plans.append(Plan(worker, kind, rounds, rng.randrange(2**32)))
    return plans


class Steps:
    """The scope/mark operations of one plan, shared by the async and the threaded drivers."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.open: list[Any] = []

    def push(self, r: int, depth: int) -> None:
        name = f"w{self.plan.worker}-r{r}-d{depth}"
        expected_parent = self.open[-1].uuid if self.open else self.plan.root
        handle = scope.push(name, ScopeType.Agent if depth == 0 else ScopeType.Function)
        assert handle.parent_uuid == expected_parent
        assert scope.get_handle().uuid == handle.uuid
        self.open.append(handle)
        self.plan.emitted.append(("start", name))

    def mark(self, r: int, depth: int, k: int) -> None:
        assert scope.get_handle().uuid == self.open[-1].uuid
        name = f"w{self.plan.worker}-r{r}-d{depth}-m{k}"
        scope.event(name, data={"worker": self.plan.worker})
        self.plan.emitted.append(("mark", name))

    def pop(self) -> None:
        handle = self.open.pop()
        assert scope.get_handle().uuid == handle.uuid
        scope.pop(handle)
        self.plan.emitted.append(("end", handle.name))
        assert scope.get_handle().uuid == (self.open[-1].uuid if self.open else self.plan.root)


async def run_task(plan: Plan) -> None:
    if plan.kind == "own-stack":
        nemo_relay._scope_stack_var.set(nemo_relay.create_scope_stack())
    plan.root = scope.get_handle().uuid
    rng = random.Random(plan.sleep_seed)
    steps = Steps(plan)
    for r, marks in enumerate(plan.rounds):
        for depth, count in enumerate(marks):
            steps.push(r, depth)
            for k in range(count):
                await asyncio.sleep(rng.uniform(0, MAX_SLEEP))
                steps.mark(r, depth, k)
            await asyncio.sleep(rng.uniform(0, MAX_SLEEP))
        for _ in marks:
            await asyncio.sleep(rng.uniform(0, MAX_SLEEP))
            steps.pop()


def run_thread(plan: Plan, errors: list[BaseException]) -> None:
    try:
        assert not nemo_relay.scope_stack_active()
        plan.root = scope.get_handle().uuid
        rng = random.Random(plan.sleep_seed)
        steps = Steps(plan)
        for r, marks in enumerate(plan.rounds):
            for depth, count in enumerate(marks):
                steps.push(r, depth)
                for k in range(count):
                    time.sleep(rng.uniform(0, MAX_SLEEP))
                    steps.mark(r, depth, k)
                time.sleep(rng.uniform(0, MAX_SLEEP))
            for _ in marks:
                time.sleep(rng.uniform(0, MAX_SLEEP))
                steps.pop()
    except BaseException as exc:
        errors.append(exc)


async def test_tasks_and_threads_on_their_own_stacks(events):
    plans = make_plans()
    assert {p.kind for p in plans} == {"fork", "own-stack", "thread"}
    assert {len(marks) for p in plans for marks in p.rounds} == {2, 3, 4}

    main_root = scope.get_handle().uuid
    spawner = scope.push("spawner", ScopeType.Agent)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=run_thread, args=(plan, errors), name=f"worker-{plan.worker}")
        for plan in plans
        if plan.kind == "thread"
    ]
    loop = asyncio.get_running_loop()
    tasks = []
    for plan in plans:
        if plan.kind == "fork":
            tasks.append(loop.create_task(run_task(plan), context=nemo_relay.fork_asyncio_context()))
        elif plan.kind == "own-stack":
            tasks.append(loop.create_task(run_task(plan)))
    for thread in threads:
        thread.start()
    await asyncio.gather(*tasks)
    for thread in threads:
        await asyncio.to_thread(thread.join, 30)
        assert not thread.is_alive()
    assert not errors, errors
    # No worker touched the spawner's stack.
    assert scope.get_handle().uuid == spawner.uuid
    scope.pop(spawner)
    assert await subscribers.flush_async(timeout=30), "dispatcher did not drain"
    recorded = list(events)

    # Every worker did exactly what its plan said, and every emitted event arrived exactly once.
    for plan in plans:
        assert plan.emitted == plan.expected()
    assert len(recorded) == 2 + sum(len(plan.expected()) for plan in plans)

    # Roots: forked tasks continue from the spawner; the others each have a private root.
    roots = {MAIN: main_root} | {plan.worker: plan.root for plan in plans}
    assert all(plan.root == spawner.uuid for plan in plans if plan.kind == "fork")
    private = [plan.root for plan in plans if plan.kind != "fork"]
    assert len(set(private)) == len(private)
    assert spawner.uuid not in private and main_root not in private and None not in private

    # Scope starts and ends pair up one-to-one, with the end strictly later.
    starts: dict[str, Any] = {}
    ends: dict[str, Any] = {}
    for event in recorded:
        if phase(event) == "start":
            assert event.uuid not in starts
            starts[event.uuid] = event
        elif phase(event) == "end":
            assert event.uuid not in ends
            ends[event.uuid] = event
    assert starts.keys() == ends.keys()
    for uuid, start in starts.items():
        end = ends[uuid]
        assert (end.name, end.parent_uuid) == (start.name, start.parent_uuid)
        assert timestamp_ns(end.timestamp) > timestamp_ns(start.timestamp)
    uuids = [event.uuid for event in recorded if phase(event) == "mark"] + list(starts)
    assert len(set(uuids)) == len(uuids)

    # Every ancestor chain stays inside the emitting worker and ends at that worker's root.
    by_name = {start.name: start for start in starts.values()}
    for event in recorded:
        worker = worker_of(event.name)
        parent = event.parent_uuid
        hops = 0
        while parent != roots[worker]:
            assert parent in starts, f"{event.name} has an ancestor {parent} outside its worker"
            assert worker_of(starts[parent].name) == worker, f"{event.name} is parented into another worker"
            parent = starts[parent].parent_uuid
            hops += 1
            assert hops <= 4
        # ... and the direct parent is the enclosing level of the same round.
        match = re.fullmatch(r"(w\d+-r\d+)-d(\d+)(-m\d+)?", event.name)
        if match is None:
            continue
        prefix, depth, mark_suffix = match[1], int(match[2]), match[3]
        if mark_suffix:
            assert event.parent_uuid == by_name[f"{prefix}-d{depth}"].uuid
        elif depth > 0:
            assert event.parent_uuid == by_name[f"{prefix}-d{depth - 1}"].uuid
        else:
            assert event.parent_uuid == roots[worker]

    # Delivery preserves each worker's emission order.
    per_worker: dict[int, list[tuple[str, str]]] = {}
    for event in recorded:
        per_worker.setdefault(worker_of(event.name), []).append((phase(event), event.name))
    assert per_worker.pop(MAIN) == [("start", "spawner"), ("end", "spawner")]
    for plan in plans:
        assert per_worker[plan.worker] == plan.expected()
