"""Stress: 1,000 asyncio tasks on 8 threads (one event loop each) run nested scopes, marks and managed tool and
LLM calls (buffered and streamed) through global and task-local middleware, while one global subscriber
records everything.

Each task follows a seeded plan (``stress_workload.make_plans``): nested scopes entered with ``with``,
``async with`` or ``push``/``pop``; marks; sync and async tools, tools rejected by the global or by the
task's own conditional guardrail, failing tools; sync and async LLM calls; streams consumed to the end,
closed early with ``aclose()``, or abandoned (``break`` and drop); random awaits everywhere, including
inside intercepts, tools, providers and stream producers. Half the tasks run in ``fork_asyncio_context()``
under their thread's scope, half on a fresh stack (``use_scope_stack``). Each task registers, on its own
root scope, a subscriber, a conditional guardrail, tool and LLM request / execution / stream intercepts
and a mark sanitizer. Global middleware: conditional guardrails, request and execution intercepts, tool,
LLM, mark and scope sanitizers.

What passing proves (the plan fixes every task's exact event sequence in advance, so all counts are exact):

* zero cross-talk: every event's ancestry stays inside the task that emitted it up to that task's root
  scope, and each task's events arrive in its emission order; every task-local registration saw exactly
  its own task's calls and events (the subscriber all of them, the intercepts and guardrail exactly the
  task's calls, the mark sanitizer exactly its marks); sync middleware ran in the caller's context and
  async middleware on the caller's loop; the ``x-dynamo-session-id`` header named the task's own agent;
* zero lost events below the queue bound: after ``flush`` returns True the global subscriber holds exactly
  the expected number of events (scopes 2 each, tool and LLM calls start+end, guardrail evaluations 2 per
  guardrail run, rejection and pending marks, one ``llm.chunk`` per chunk pulled), nothing twice, and the
  dispatcher dropped nothing; ``flush_async`` on each loop, while other threads still emit, already covers
  everything that loop's tasks emitted;
* every managed call (tool, LLM, stream, guardrail evaluation) has exactly one end per start;
* no "Task was destroyed but it is pending", "Event loop is closed" or "was never awaited", no callback
  errors, and no threads left behind besides the runtime's own.

``NEMO_RELAY_STRESS=large`` runs 10,000 tasks on 16 threads (see ``stress_workload``).
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from typing import Any

import pytest
from stress_workload import (
    THREAD,
    Record,
    Recorder,
    Shape,
    TaskPlan,
    ThreadResult,
    Violations,
    expected_events,
    expected_seen,
    install_global_middleware,
    make_plans,
    owner_of,
    run_workers,
    seed_from_env,
    size_from_env,
)

from nemo_relay import subscribers

SIZE = size_from_env()
SEED = seed_from_env()

pytestmark = pytest.mark.timeout(1800 if SIZE.label == "large" else 240)


def first_difference(actual: list[Any], expected: list[Any]) -> str:
    """A short description of where two sequences part (the full lists can be thousands long)."""
    for index, (got, want) in enumerate(zip(actual, expected, strict=False)):
        if got != want:
            return f"at {index}: got {got!r}, want {want!r}"
    return f"lengths differ: got {len(actual)}, want {len(expected)}"


def check_threads_and_tasks(results: list[ThreadResult], violations: Violations) -> None:
    """Nothing raised in any task or loop, and no callback saw another task's work."""
    errors = [f"thread {r.index}: {e!r}" for r in results for e in r.task_errors]
    errors += [f"thread {r.index} loop: {message}" for r in results for message in r.loop_errors]
    assert not errors, f"seed {SEED}: {len(errors)} errors, first: {errors[:5]}"
    assert not violations, f"seed {SEED}: {len(violations)} cross-talk violations, first: {violations[:5]}"
    assert all(r.flushed for r in results), "a loop's flush_async() timed out"


def check_roots(records: list[Record], plans: list[TaskPlan], results: list[ThreadResult]) -> dict[str, int]:
    """Each task's root scope has the expected parent; returns root uuid -> task id."""
    by_name = {plan.name: plan for plan in plans}
    roots: dict[str, int] = {}
    for record in records:
        plan = by_name.get(record.name)
        if plan is not None and record.phase == "start":
            assert record.uuid not in roots
            roots[record.uuid] = plan.task
            assert record.parent_uuid == plan.root_parent, f"{plan.name} is not where it was pushed"
    assert sorted(roots.values()) == [plan.task for plan in plans]
    thread_scopes = {r.scope_uuid for r in results}
    private = [plan.root_parent for plan in plans if not plan.forked]
    for plan in plans:
        if plan.forked:  # continues from its own thread's scope
            assert plan.root_parent == results[plan.thread].scope_uuid
    assert len(set(private)) == len(private), "two tasks shared a private stack"
    assert not thread_scopes & set(private)
    return roots


def check_one_end_per_start(records: list[Record]) -> None:
    """Every start (scope, tool, LLM, guardrail) has exactly one end with the same uuid and name, after it."""
    starts: dict[str, Record] = {}
    ends: Counter[str] = Counter()
    for record in records:
        if record.phase == "start":
            assert record.uuid not in starts, f"{record.name}: start delivered twice"
            starts[record.uuid] = record
        elif record.phase == "end":
            start = starts.get(record.uuid)
            assert start is not None, f"{record.name}: end without an earlier start"
            assert (start.name, start.category) == (record.name, record.category)
            ends[record.uuid] += 1
    assert set(ends) == set(starts), "a start has no end"
    assert max(ends.values()) == 1, "an end was delivered twice"
    marks = [record.uuid for record in records if record.phase == "mark"]
    assert len(set(marks)) == len(marks), "a mark was delivered twice"
    managed = Counter(r.category for r in starts.values() if r.category in ("tool", "llm", "guardrail"))
    assert set(managed) == {"tool", "llm", "guardrail"}, managed


def test_tasks_on_many_loops_never_cross_talk_and_lose_nothing(
    restore_queue_capacity: None, no_stray_threads: None, noise: Any, recwarn: pytest.WarningsRecorder
) -> None:
    plans = make_plans(SIZE, SEED)
    expected = {plan.task: expected_events(plan) for plan in plans}
    total = sum(map(len, expected.values())) + 2 * SIZE.threads  # + each thread's own scope
    # "Below the bound" must hold by construction, whatever the dispatcher's pace: raise the bound if a
    # large run could exceed it.
    if total >= subscribers.stats().capacity:
        subscribers.configure(queue_capacity=2 * total)
    kinds = Counter(shape[1] or shape[0] for events in expected.values() for shape in events)
    assert {"tool", "llm", "guardrail", "mark", "function", "agent"} <= set(kinds), kinds

    violations = Violations()
    install_global_middleware(violations)
    recorder = Recorder()
    subscribers.register("stress-recorder", recorder)
    before = subscribers.stats()

    results = run_workers(SIZE, plans, violations)
    assert subscribers.flush(timeout=120), "dispatcher did not drain"
    after = subscribers.stats()
    records = recorder.records

    check_threads_and_tasks(results, violations)

    # Zero lost, nothing twice, nothing dropped.
    assert len(records) == total, f"seed {SEED}: delivered {len(records)} events, expected exactly {total}"
    assert after.dropped == before.dropped
    assert after.published - before.published == total
    assert after.delivered - before.delivered == total
    check_one_end_per_start(records)
    problems = [f"{r.name}: {r.problem}" for r in records if r.problem]
    assert not problems, f"global sanitizers missed events: {problems[:5]}"

    # Zero cross-talk: ancestry, payload claims and per-task order.
    roots = check_roots(records, plans, results)
    starts = {record.uuid: record for record in records if record.phase == "start"}
    delivered: defaultdict[int | str, list[Shape]] = defaultdict(list)
    for record in records:
        owner = owner_of(record, starts, roots)
        assert record.claims <= {owner}, f"{record.shape} under t{owner} carries payload of {set(record.claims)}"
        delivered[record.name if owner == THREAD else owner].append(record.shape)
    for index in range(SIZE.threads):
        name = f"thread{index}"
        assert delivered.pop(name) == [("start", "agent", name), ("end", "agent", name)]
    for plan in plans:
        got, want = delivered.pop(plan.task), expected[plan.task]
        assert got == want, f"seed {SEED}, {plan.name}: {first_difference(got, want)}"
    assert not delivered

    # Task-local registrations saw exactly their own task: the subscriber every event after it was
    # registered (all but the root's start) by the time its loop's flush_async returned, the middleware
    # exactly the task's calls and marks.
    for plan in plans:
        want_local = expected[plan.task][1:]
        assert plan.local_events == want_local, f"{plan.name}: {first_difference(plan.local_events, want_local)}"
        assert plan.local_seen_at_flush == len(want_local), f"{plan.name}: flush_async returned before delivery"
        assert plan.seen == expected_seen(plan), f"{plan.name}: a local registration saw other work"

    gc.collect()  # an un-awaited coroutine only warns when it is collected
    noise.check([str(w.message) for w in recwarn])
