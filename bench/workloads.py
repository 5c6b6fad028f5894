"""Benchmark workloads, run inside the interpreter under test (ours or the reference wheel's).

Usage: python workloads.py [--quick]   -> prints one JSON object {workload: microseconds per op}

Standard library only, and only the public ``nemo_relay`` API, so the same file measures any
implementation. Each workload runs ``n`` operations and then flushes the dispatcher, so delivery cost
is amortised into the figure; the best of several repeats is reported.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable

import nemo_relay
from nemo_relay import ScopeType, scope, subscribers

Workload = Callable[[int], None]


def _scope_push_pop(n: int) -> None:
    push, pop, kind = scope.push, scope.pop, ScopeType.Function
    for _ in range(n):
        pop(push("step", kind))
    subscribers.flush()


def _scope_block(n: int) -> None:
    block, kind = scope.scope, ScopeType.Function
    for _ in range(n):
        with block("step", kind):
            pass
    subscribers.flush()


def _mark(n: int) -> None:
    event = scope.event
    for _ in range(n):
        event("tick")
    subscribers.flush()


def _mark_with_data(n: int) -> None:
    event = scope.event
    payload = {"step": 1, "tool": "search", "args": {"query": "weather in Paris", "limit": 5}}
    for _ in range(n):
        event("tick", data=payload)
    subscribers.flush()


def _noop(_event: object) -> None:
    return None


def _with_subscriber(body: Workload) -> Workload:
    def run(n: int) -> None:
        subscribers.register("bench-noop", _noop)
        try:
            body(n)
        finally:
            subscribers.deregister("bench-noop")

    return run


WORKLOADS: dict[str, tuple[Workload, int]] = {
    "scope push+pop, no subscriber": (_scope_push_pop, 20_000),
    "scope push+pop, 1 no-op subscriber": (_with_subscriber(_scope_push_pop), 20_000),
    "scope() block, 1 no-op subscriber": (_with_subscriber(_scope_block), 20_000),
    "mark, no subscriber": (_mark, 20_000),
    "mark, 1 no-op subscriber": (_with_subscriber(_mark), 20_000),
    "mark with 4-key payload, 1 no-op subscriber": (_with_subscriber(_mark_with_data), 20_000),
}


def measure(workload: Workload, n: int, repeats: int) -> float:
    """Best time per operation in microseconds."""
    workload(max(1, n // 10))  # warm up: start the dispatcher, fill caches
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        workload(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    results: dict[str, float | None] = {}
    for name, (workload, n) in WORKLOADS.items():
        try:
            results[name] = measure(workload, n // 20 if quick else n, 1 if quick else 5)
        except (AttributeError, NotImplementedError, TypeError):
            results[name] = None  # this implementation lacks the API the workload needs
    print(json.dumps({"module": nemo_relay.__file__, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
