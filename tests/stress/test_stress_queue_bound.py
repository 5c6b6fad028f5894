"""Stress: the dispatcher's bounded queue under many concurrent emitters, with exact drop accounting.

Emitters are asyncio tasks spread over several threads (one event loop each) plus plain threads; each
emits marks, scopes (start, inner mark, end) and managed tool and LLM calls (start and end), and records
what it emitted in order. A small ``queue_capacity`` is configured and delivery is held back by a
subscriber that blocks on a ``threading.Event``.

* Blocked delivery: the queue fills to exactly its bound and every further event is dropped and counted.
  After release, delivered + dropped == emitted exactly, ``stats().dropped`` is the true drop count,
  nothing is delivered twice, and what each emitter got delivered is a prefix of what it emitted (the
  newest events are the ones dropped, so the queued ones stay intact).
* Delivery racing emission: the subscriber keeps delivering but stalls now and then until drops have
  happened, so the queue fills and drains repeatedly while emitters run. The same exact accounting holds,
  and each emitter's delivered events keep their emission order.

The queue bound is restored afterwards (``restore_queue_capacity``). ``NEMO_RELAY_STRESS=large`` uses
more emitters, more events and a larger bound.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from stress_workload import size_from_env

import nemo_relay
from nemo_relay import LLMRequest, ScopeType, ToolExecutionResult, llm, scope, subscribers, tools

SIZE = size_from_env()
LARGE = SIZE.label == "large"
LOOP_THREADS = 16 if LARGE else 8
TASKS_PER_LOOP = 32 if LARGE else 12
PLAIN_THREADS = 8 if LARGE else 4
UNITS = 60 if LARGE else 20  # per emitter in the blocked test
CAPACITY = 5_000 if LARGE else 500
SEED = 4242
WAIT = 60.0  # failure bound for every wait; never a measurement

pytestmark = pytest.mark.timeout(900 if LARGE else 120)

Key = tuple[str, str]  # (phase, name)
_EMITTER = re.compile(r"(e\d+)\.")


@dataclass
class Emitter:
    """One task or plain thread emitting units; ``emitted`` lists its events in emission order."""

    ident: str
    rng: random.Random
    emitted: list[Key] = field(default_factory=list)

    def _scope(self, name: str) -> None:
        handle = scope.push(name, ScopeType.Function)
        self.emitted.append(("start", name))
        scope.event(f"{name}.m")
        self.emitted.append(("mark", f"{name}.m"))
        scope.pop(handle)
        self.emitted.append(("end", name))

    def sync_unit(self, index: int) -> None:
        """A mark (1 event) or a scope around a mark (3 events)."""
        name = f"{self.ident}.u{index}"
        if self.rng.random() < 0.5:
            scope.event(name)
            self.emitted.append(("mark", name))
        else:
            self._scope(name)

    async def async_unit(self, index: int) -> None:
        """A sync unit, a managed tool call or a managed LLM call (start and end each)."""
        name = f"{self.ident}.u{index}"
        roll = self.rng.random()
        if roll < 0.5:
            self.sync_unit(index)
        elif roll < 0.75:
            await tools.execute(name, {"i": index}, lambda args: ToolExecutionResult(args))
            self.emitted += [("start", name), ("end", name)]
        else:
            await llm.execute(name, LLMRequest({}, {"i": index}), lambda request: {"ok": True})
            self.emitted += [("start", name), ("end", name)]
        await asyncio.sleep(0)  # let the loop's other emitters interleave


class Holdable:
    """Global subscriber that records deliveries and blocks the dispatcher whenever ``hold_when`` says so,
    until the test calls ``release()``."""

    def __init__(self, hold_when: Callable[[int], bool]) -> None:
        self.hold_when = hold_when
        self.received: list[tuple[str, str, str]] = []  # (phase, name, uuid)
        self.held = threading.Event()
        self._release = threading.Event()
        self.holds = 0

    def __call__(self, event: Any) -> None:
        self.received.append((getattr(event, "scope_category", "mark"), event.name, event.uuid))
        if self.hold_when(len(self.received)):
            self.holds += 1
            self._release.clear()
            self.held.set()
            self._release.wait(WAIT)  # bounded: a broken test must not wedge the dispatcher forever

    def release(self) -> None:
        self.held.clear()
        self._release.set()

    def stop_holding(self) -> None:
        """Never block again, and let a blocked delivery go (cleanup, including after a failure)."""
        self.hold_when = lambda delivered: False
        self.release()


def start_emitters(
    emitters: list[Emitter], units: int | None, stop: threading.Event, errors: list[BaseException]
) -> list[threading.Thread]:
    """Run ``emitters`` on ``LOOP_THREADS`` event loops and ``PLAIN_THREADS`` plain threads.

    Each emits ``units`` units, or keeps going until ``stop`` is set when ``units`` is None.
    """

    def more(index: int) -> bool:
        return index < units if units is not None else not stop.is_set()

    async def task_body(emitter: Emitter) -> None:
        index = 0
        while more(index):
            await emitter.async_unit(index)
            index += 1

    async def loop_main(group: list[Emitter]) -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(task_body(e), context=nemo_relay.fork_asyncio_context()) for e in group]
        await asyncio.gather(*tasks)

    def loop_thread(group: list[Emitter]) -> None:
        try:
            asyncio.run(loop_main(group))
        except BaseException as exc:
            errors.append(exc)

    def plain_thread(emitter: Emitter) -> None:
        try:
            index = 0
            while more(index):
                emitter.sync_unit(index)
                index += 1
        except BaseException as exc:
            errors.append(exc)

    on_loops = LOOP_THREADS * TASKS_PER_LOOP
    threads = [
        threading.Thread(target=loop_thread, args=(emitters[i:on_loops:LOOP_THREADS],), name=f"stress-loop-{i}")
        for i in range(LOOP_THREADS)
    ]
    threads += [
        threading.Thread(target=plain_thread, args=(emitter,), name=f"stress-plain-{emitter.ident}")
        for emitter in emitters[on_loops:]
    ]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread], errors: list[BaseException]) -> None:
    for thread in threads:
        thread.join(WAIT)
    assert not [t.name for t in threads if t.is_alive()], "emitters never finished"
    assert not errors, errors[:5]


def make_emitters() -> list[Emitter]:
    count = LOOP_THREADS * TASKS_PER_LOOP + PLAIN_THREADS
    return [Emitter(f"e{n}", random.Random(f"{SEED}-{n}")) for n in range(count)]


def delivered_by_emitter(received: list[tuple[str, str, str]]) -> dict[str, list[Key]]:
    """The test's own events per emitter, in delivery order; also checks nothing arrived twice."""
    identities = [(phase, uuid) for phase, _, uuid in received]
    assert len(set(identities)) == len(identities), "an event was delivered twice"
    per_emitter: dict[str, list[Key]] = {}
    for phase, name, _ in received:
        match = _EMITTER.match(name)
        if match:
            per_emitter.setdefault(match[1], []).append((phase, name))
    return per_emitter


def is_subsequence(part: list[Key], whole: list[Key]) -> bool:
    remaining = iter(whole)
    return all(key in remaining for key in part)


def test_blocked_delivery_drops_exactly_the_events_beyond_the_bound(
    restore_queue_capacity: None, no_stray_threads: None, noise: Any, recwarn: pytest.WarningsRecorder
) -> None:
    recorder = Holdable(lambda delivered: delivered == 1)  # hold on the first event: the plug
    subscribers.register("stress-holdable", recorder)
    scope.event("plug")
    assert recorder.held.wait(WAIT), "the dispatcher never reached the blocking subscriber"
    # The plug is being delivered, so the queue is empty and the whole bound is ours.
    subscribers.configure(queue_capacity=CAPACITY)
    before = subscribers.stats()
    emitters, errors = make_emitters(), []
    try:
        join_all(start_emitters(emitters, UNITS, threading.Event(), errors), errors)
        during = subscribers.stats()
    finally:
        recorder.stop_holding()
    emitted = sum(len(e.emitted) for e in emitters)
    assert emitted > 5 * CAPACITY
    assert subscribers.flush(timeout=WAIT), "dispatcher did not drain"
    after = subscribers.stats()

    # While blocked: the queue sat exactly at its bound; everything else was refused and counted.
    dropped = during.dropped - before.dropped
    assert during.queued == CAPACITY
    assert during.published - before.published == CAPACITY
    assert CAPACITY + dropped == emitted

    # After release: delivered + dropped == emitted, nothing twice, the kept events are the oldest ones.
    per_emitter = delivered_by_emitter(recorder.received[1:])
    delivered = sum(map(len, per_emitter.values()))
    assert delivered == CAPACITY
    assert delivered + (after.dropped - before.dropped) == emitted
    assert after.dropped == during.dropped
    assert after.delivered - before.delivered == CAPACITY + 1  # + the plug
    for emitter in emitters:
        got = per_emitter.get(emitter.ident, [])
        assert got == emitter.emitted[: len(got)], f"{emitter.ident}: delivered events are not the oldest"

    # Once drained the queue accepts events again.
    scope.event("after-release")
    assert subscribers.flush(timeout=WAIT)
    assert recorder.received[-1][1] == "after-release"
    stderr = noise.check([str(w.message) for w in recwarn])
    assert f"event queue full (capacity {CAPACITY})" in stderr


def test_delivery_racing_emission_counts_every_drop_exactly(
    restore_queue_capacity: None, no_stray_threads: None, noise: Any, recwarn: pytest.WarningsRecorder
) -> None:
    capacity, stalls, every = CAPACITY // 4, 8, CAPACITY // 2
    subscribers.configure(queue_capacity=capacity)
    recorder = Holdable(lambda delivered: delivered % every == 0 and delivered <= stalls * every)
    subscribers.register("stress-holdable", recorder)
    before = subscribers.stats()
    emitters, errors, stop = make_emitters(), [], threading.Event()
    threads = start_emitters(emitters, None, stop, errors)
    try:
        # Each stall lasts until the emitters, which never pause, have overflowed the queue at least once
        # more; in between, delivery runs flat out against them.
        for stall in range(stalls):
            assert recorder.held.wait(WAIT), f"stall {stall}: the subscriber never stalled"
            dropped_before = subscribers.stats().dropped
            deadline = time.monotonic() + WAIT
            while subscribers.stats().dropped == dropped_before:
                assert time.monotonic() < deadline, f"stall {stall}: the queue never overflowed"
                time.sleep(0.001)
            recorder.release()
    finally:
        stop.set()
        recorder.stop_holding()
        join_all(threads, errors)
    assert subscribers.flush(timeout=WAIT), "dispatcher did not drain"
    after = subscribers.stats()

    emitted = sum(len(e.emitted) for e in emitters)
    per_emitter = delivered_by_emitter(recorder.received)
    delivered = sum(map(len, per_emitter.values()))
    dropped = after.dropped - before.dropped
    assert recorder.holds == stalls
    assert dropped >= stalls
    assert delivered + dropped == emitted, f"{delivered} delivered + {dropped} dropped != {emitted} emitted"
    assert after.published - before.published == delivered
    assert after.delivered - before.delivered == delivered
    for emitter in emitters:
        got = per_emitter.get(emitter.ident, [])
        assert is_subsequence(got, emitter.emitted), f"{emitter.ident}: delivered out of emission order"
    noise.check([str(w.message) for w in recwarn])
