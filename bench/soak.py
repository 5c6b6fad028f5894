"""Soak: many awaited managed tool calls with a no-op subscriber and the ATOF file exporter; retained memory growth.

Usage: python soak.py --calls N [--every K] [--drain-every D] [--tracemalloc] [--top T]  -> one JSON object

Runs inside the interpreter under test (ours or the reference wheel's), using only the public API.
The first ``every`` calls are a warm-up (caches, the dispatcher thread, the queue's high-water mark);
then ``calls`` measured calls follow, draining the dispatcher every ``drain-every`` calls (so its
bounded queue never drops an event), with a checkpoint every ``every`` calls: drain the exporter's file,
collect garbage, read the process's resident set size (RSS) and, with ``--tracemalloc``, the bytes
Python's allocator still holds. Growth per 100,000 calls is (last checkpoint - baseline) scaled to
100,000 calls: memory a leak would keep, not the transient queue.

With ``--tracemalloc`` the RSS figures include tracemalloc's own bookkeeping, so the runner takes RSS from a
run without it; the traced run also lists the allocation sites that grew most between the baseline and
the last checkpoint (``file:line``), which is where to look when the growth is above target.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import nemo_relay
from memory import current_rss, peak_rss
from nemo_relay import subscribers, tools
from workloads import SMALL_ARGS, atof_file_exporter, echo_tool, noop

HERE = Path(__file__).resolve().parent
PER = 100_000  # growth is reported per this many calls


def _line_count(path: str) -> int:
    count = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int) -> list[dict[str, Any]]:
    # Leave out tracemalloc's and the import system's own allocations: they are not the runtime's.
    ignore = (
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, "<unknown>"),
        tracemalloc.Filter(False, str(HERE / "*")),  # the checkpoints this script keeps
    )
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    sites = []
    for stat in diff[:top]:
        if stat.size_diff <= 0:
            break
        frame = stat.traceback[0]
        sites.append(
            {"site": f"{frame.filename}:{frame.lineno}", "size_diff": stat.size_diff, "count_diff": stat.count_diff}
        )
    return sites


async def _soak(calls: int, every: int, drain_every: int, traced: bool, top: int) -> dict[str, Any]:
    execute = tools.execute
    exporter, close = atof_file_exporter()
    subscribers.register("bench-noop", noop)
    path = str(exporter.path)  # type: ignore[attr-defined]

    async def run(n: int) -> None:
        for done in range(0, n, drain_every):
            for _ in range(min(drain_every, n - done)):
                await execute("search", SMALL_ARGS, echo_tool)
            # A tight loop of calls outruns the dispatcher's file writes; draining now and then keeps the queue
            # below its bound, so no event is dropped and every call's events are written. It also makes
            # delivery part of the measured cost, as in the throughput rows.
            await subscribers.flush_async()
        exporter.force_flush()  # type: ignore[attr-defined]

    def checkpoint(done: int) -> dict[str, Any]:
        gc.collect()
        point: dict[str, Any] = {"calls": done, "rss": current_rss()}
        if traced:
            point["traced"] = tracemalloc.get_traced_memory()[0]
        return point

    try:
        await run(every)  # warm-up
        baseline = checkpoint(0)
        before = tracemalloc.take_snapshot() if traced else None
        points = [baseline]
        busy = 0.0
        done = 0
        while done < calls:
            step = min(every, calls - done)
            start = time.perf_counter()
            await run(step)
            busy += time.perf_counter() - start
            done += step
            points.append(checkpoint(done))
        sites = _top_growth(before, tracemalloc.take_snapshot(), top) if before is not None else []
        lines = _line_count(path)
    finally:
        subscribers.deregister("bench-noop")
        close()

    last = points[-1]
    stats = getattr(subscribers, "stats", None)  # ours only: the reference has no dispatcher counters
    result: dict[str, Any] = {
        "module": nemo_relay.__file__,
        "calls": calls,
        "warmup_calls": every,
        "every": every,
        "drain_every": drain_every,
        "us_per_call": busy / calls * 1e6,
        "peak_rss": peak_rss(),
        "atof_lines_per_call": lines / (calls + every),
        "dropped_events": stats().dropped if stats is not None else None,
        "checkpoints": points,
        "rss_growth_per_100k": None,
        "traced_growth_per_100k": None,
        "top_growth_sites": sites,
    }
    if baseline["rss"] is not None and last["rss"] is not None:
        result["rss_growth_per_100k"] = (last["rss"] - baseline["rss"]) * PER / calls
    if traced:
        result["traced_growth_per_100k"] = (last["traced"] - baseline["traced"]) * PER / calls
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, required=True, help="measured calls after the warm-up")
    parser.add_argument("--every", type=int, default=PER, help="calls between checkpoints (and warm-up calls)")
    parser.add_argument("--drain-every", type=int, default=10_000, help="calls between dispatcher drains")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--top", type=int, default=10, help="allocation sites to list with --tracemalloc")
    args = parser.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    every = max(1, min(args.every, args.calls))
    result = asyncio.run(_soak(args.calls, every, max(1, args.drain_every), args.tracemalloc, args.top))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
