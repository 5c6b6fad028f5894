"""Run the benchmark suite against this package and, optionally, the reference wheel, side by side.

    python bench/run.py                                   # this package only, full sizes, with the soak
    python bench/run.py --reference /path/to/venv/bin/python --json bench/latest.json --markdown bench/latest.md
    python bench/run.py --quick                           # a fast run (numbers are rough, 50,000-call soak)
    python bench/run.py --smoke --no-soak                 # proves every workload runs (CI); numbers meaningless

``--reference`` names the interpreter of a separate virtual environment holding the reference wheel
(``python -m venv ref && ref/bin/pip install nemo-relay==0.8.4``). Both are measured in the same run,
each in its own subprocess running the same files (``workloads.py``, ``soak.py``: public API only).
The table gives microseconds per operation, import time, memory, the soak, and the ratio reference/ours
(above 1 means this package is faster or smaller). It is printed, written as README-ready Markdown
(``--markdown``; a full run defaults to ``bench/latest.md``, quick and smoke runs to ``bench/results/``
so they never overwrite the committed table) and, with ``--json``, as JSON. Standard library only.

The soak makes ``--soak-calls`` awaited managed tool calls (1,000,000 in a full run) with a no-op
subscriber and the ATOF file exporter, and reports the memory retained per 100,000 calls after a
warm-up: RSS for both implementations, and for this package also tracemalloc's count of live Python
allocations, from a second run (tracemalloc slows the calls down and inflates RSS), with the allocation
sites that grew most. Growth is the least-squares slope over all checkpoints after the warm-up, with the
raw last-minus-first difference alongside (``soak.py`` explains why: RSS moves in 1 MiB allocator steps).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
MIB = 1024 * 1024
GROWTH_TARGET_MIB = 1.0  # per 100,000 managed calls
# RSS wanders by one or two 1 MiB pymalloc arenas between checkpoints (see soak.py); over fewer calls than this
# such a step alone moves the slope by about the target (200,000-call runs ranged -0.3..+1.1 MiB per 100,000).
JUDGE_MIN_CALLS = 500_000
IMPORT_PROBE = (
    "import time; from memory import current_rss; r = current_rss(); t = time.perf_counter(); import nemo_relay; "
    "t = time.perf_counter() - t; r2 = current_rss(); print(t, None if r is None or r2 is None else r2 - r)"
)

# Row names double as JSON keys; the unit is in the name so the JSON needs no schema.
IMPORT_MS = "import nemo_relay (ms)"
IMPORT_RSS = "import nemo_relay: RSS added (MiB)"
PEAK_RSS = "peak RSS of the workload process (MiB)"
SOAK_US = "soak: µs per managed call with ATOF file exporter + no-op subscriber"
SOAK_RSS = "soak: RSS growth per 100k calls (MiB)"
SOAK_RSS_DELTA = "soak: RSS last minus first checkpoint, per 100k calls (MiB)"
SOAK_TRACED = "soak: traced Python heap growth per 100k calls (MiB)"
# Growth is near zero and may be negative, so a ratio of two growths means nothing.
NO_RATIO = {SOAK_RSS, SOAK_RSS_DELTA, SOAK_TRACED}
UNITS = {
    IMPORT_MS: "ms",
    IMPORT_RSS: "MiB",
    PEAK_RSS: "MiB",
    SOAK_RSS: "MiB",
    SOAK_RSS_DELTA: "MiB",
    SOAK_TRACED: "MiB",
}

Rows = dict[str, float | None]
T = TypeVar("T")


@dataclass(frozen=True)
class Mode:
    """Sizes of one kind of run."""

    name: str
    workload_flag: str | None  # passed to workloads.py
    import_runs: int
    soak_calls: int
    soak_warmup: int
    soak_every: int  # checkpoint interval
    soak_drain_every: int


MODES = {
    "full": Mode("full", None, 11, 1_000_000, 100_000, 20_000, 10_000),
    "quick": Mode("quick", "--quick", 3, 50_000, 20_000, 5_000, 10_000),
    "smoke": Mode("smoke", "--smoke", 1, 2_000, 1_000, 500, 1_000),
}


class Failed(Exception):
    """A measuring subprocess exited with an error."""


def _env(ours: bool) -> dict[str, str]:
    # Bytecode caching on: import time should measure loading, not compiling.
    dropped = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMO_RELAY_") and k not in dropped}
    if ours:
        env["PYTHONPATH"] = str(SRC)  # measure this checkout even when it is not installed
    return env


def _run_json(python: str, ours: bool, args: list[str]) -> dict[str, Any]:
    done = subprocess.run([python, *args], env=_env(ours), capture_output=True, text=True, check=False, cwd=HERE)
    if done.returncode != 0:
        raise Failed(f"{' '.join(args)} failed under {python}:\n{done.stderr}")
    payload: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return payload


def run_workloads(python: str, ours: bool, mode: Mode) -> tuple[Rows, dict[str, Any]]:
    """The workload rows plus the workload process's peak RSS; also the payload's module and version."""
    flags = [mode.workload_flag] if mode.workload_flag else []
    payload = _run_json(python, ours, [str(HERE / "workloads.py"), *flags])
    print(f"  measured {payload['module']}", file=sys.stderr)
    rows: Rows = dict(payload["results"])
    rows[PEAK_RSS] = payload["peak_rss"] / MIB
    return rows, {"module": payload["module"], "version": payload.get("version")}


def measure_import(python: str, ours: bool, runs: int) -> Rows:
    """Median import time and RSS added by ``import nemo_relay`` in a fresh interpreter."""
    times, added = [], []
    for _ in range(runs + 1):  # the first run writes bytecode caches and is not counted
        done = subprocess.run(
            [python, "-c", IMPORT_PROBE], env=_env(ours), capture_output=True, text=True, check=True, cwd=HERE
        )
        seconds, rss = done.stdout.split()
        times.append(float(seconds) * 1000)
        if rss != "None":
            added.append(int(rss) / MIB)
    return {IMPORT_MS: statistics.median(times[1:]), IMPORT_RSS: statistics.median(added[1:]) if added else None}


def run_soak(python: str, ours: bool, mode: Mode, calls: int, traced: bool) -> dict[str, Any]:
    """One soak subprocess; its JSON result."""
    args = [str(HERE / "soak.py"), "--calls", str(calls), "--warmup", str(mode.soak_warmup)]
    args += ["--every", str(min(mode.soak_every, calls)), "--drain-every", str(mode.soak_drain_every)]
    args += ["--tracemalloc"] if traced else []
    label = "with tracemalloc " if traced else ""
    print(f"  soak {label}({calls:,} calls) ...", file=sys.stderr)
    return _run_json(python, ours, args)


def soak_rows(plain: dict[str, Any] | None, traced: dict[str, Any] | None) -> Rows:
    """Soak rows from the plain run (time, RSS) and the tracemalloc run (traced heap)."""
    rows: Rows = {SOAK_US: None, SOAK_RSS: None, SOAK_RSS_DELTA: None, SOAK_TRACED: None}
    if plain is not None:
        rows[SOAK_US] = plain["us_per_call"]
        for row, key in ((SOAK_RSS, "rss_growth_per_100k"), (SOAK_RSS_DELTA, "rss_delta_per_100k")):
            rows[row] = None if plain[key] is None else plain[key] / MIB
    if traced is not None and traced["traced_growth_per_100k"] is not None:
        rows[SOAK_TRACED] = traced["traced_growth_per_100k"] / MIB
    return rows


def _ratio(name: str, ours: float | None, ref: float | None) -> float | None:
    if name in NO_RATIO or not ours or not ref or ours <= 0 or ref <= 0:
        return None
    return ref / ours


def _cell(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    unit = UNITS.get(name, "µs")
    if unit == "MiB" and name in NO_RATIO:
        return f"{value:+.3f} {unit}"  # signed: shrinking is as informative as growing
    return f"{value:.2f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def _label(name: str) -> str:
    # Units live in the value cells of the Markdown table.
    for suffix in (" (ms)", " (MiB)"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def print_table(ours: Rows, ref: Rows | None) -> None:
    """The plain-text table on stdout."""
    width = max(len(name) for name in ours)
    header = f"{'workload':<{width}}  {'ours':>12}"
    if ref is not None:
        header += f"  {'reference':>12}  {'ratio ref/ours':>14}"
    print(header)
    print("-" * len(header))
    for name, value in ours.items():
        line = f"{name:<{width}}  {_plain(name, value):>12}"
        if ref is not None:
            ratio = _ratio(name, value, ref.get(name))
            line += f"  {_plain(name, ref.get(name)):>12}  {'n/a' if ratio is None else f'{ratio:.2f}x':>14}"
        print(line)


def _plain(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if name in NO_RATIO else f"{value:.2f}"


def markdown(ours: Rows, ref: Rows | None, meta: dict[str, Any]) -> str:
    """A README-ready Markdown table followed by notes on what the memory and soak rows mean."""
    lines = ["| workload | ours | reference | ratio (reference/ours) |", "|---|---:|---:|---:|"]
    if ref is None:
        lines = ["| workload | ours |", "|---|---:|"]
    for name, value in ours.items():
        row = f"| {_label(name)} | {_cell(name, value)} |"
        if ref is not None:
            ratio = _ratio(name, value, ref.get(name))
            shown = "—" if name in NO_RATIO else "n/a" if ratio is None else f"{ratio:.2f}x"
            row += f" {_cell(name, ref.get(name))} | {shown} |"
        lines.append(row)
    soak = meta.get("soak_calls")
    soak_text = (
        f"- **soak**: {soak:,} awaited `tools.execute` calls (after a {meta['soak_warmup']:,}-call warm-up) with "
        "a no-op subscriber and `AtofExporter` writing every event to a temporary file; the dispatcher is "
        f"drained every {meta['soak_drain_every']:,} calls so its bounded queue never drops an event. µs per "
        "call includes delivery and file writes. A checkpoint every "
        f"{meta['soak_every']:,} calls drains, runs `gc.collect()` and reads the resident set size (RSS); "
        "**RSS growth** is the least-squares slope of RSS over the baseline (after the warm-up) and all "
        "checkpoints, per 100,000 calls, and **RSS last minus first checkpoint** the raw end-point difference "
        "scaled the same way (RSS moves in 1 MiB steps of CPython's small-object allocator, which the slope "
        "does not extrapolate from one step; see `bench/soak.py`). **Traced Python heap growth** is the slope "
        "of tracemalloc's live Python allocations, from a separate run of this package (tracemalloc cannot "
        "see the reference's Rust heap, so it is n/a there). "
        f"Target: at most {GROWTH_TARGET_MIB:g} MiB per 100,000 calls"
        + (
            "."
            if soak >= JUDGE_MIN_CALLS
            else f", judged only from {JUDGE_MIN_CALLS:,} calls: in a run this short the growth figures "
            "are within the noise of those steps."
        )
        + " Growth has no ratio: it is near zero and can be negative."
        if soak
        else "- **soak**: not run (`--no-soak`)."
    )
    lines += [
        "",
        f"Run: {meta['date']}, {meta['mode']} mode, CPython {meta['python']} on {meta['machine']} "
        f"({meta['cpus']} CPUs); whole benchmark {meta['seconds']:.0f} s.",
        "",
        "- Scope, mark and codec rows: throughput, µs per operation with delivery amortised (flush at the end), "
        f"{'best of 5' if meta['mode'] == 'full' else 'one repeat'}; **managed** rows: the median µs of one "
        "awaited call, with one no-op subscriber (or only the ATOF exporter, where named).",
        "- **import nemo_relay**: median over fresh interpreters, bytecode cached; **RSS added** is the "
        "process's resident set size after the import minus before it.",
        "- **peak RSS of the workload process**: `ru_maxrss` of the process that ran the scope, mark, codec "
        "and managed rows (interpreter included).",
        soak_text,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", metavar="PYTHON", help="interpreter of a venv with nemo-relay==0.8.4")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes, one repeat, 50,000-call soak")
    sizes.add_argument("--smoke", action="store_true", help="tiny sizes: proves everything runs (seconds)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="README-ready table (default: see above)")
    parser.add_argument("--no-soak", action="store_true", help="skip the soak")
    parser.add_argument("--soak-calls", type=int, metavar="N", help="soak size (default 1,000,000; quick 50,000)")
    args = parser.parse_args()

    started = time.perf_counter()
    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    soak_calls = 0 if args.no_soak else (args.soak_calls or mode.soak_calls)
    failures: list[str] = []
    details: dict[str, Any] = {}

    def attempt(what: str, measure: Callable[[], T]) -> T | None:
        # One failing measurement (for instance an API the reference lacks) should not lose the others.
        try:
            return measure()
        except (Failed, subprocess.CalledProcessError, ValueError) as exc:
            failures.append(what)
            stderr = getattr(exc, "stderr", None) or ""
            print(f"FAILED: {what}: {exc}\n{stderr}", file=sys.stderr)
            return None

    def measure(python: str, ours: bool, who: str) -> Rows:
        # tracemalloc sees only our heap (the reference's is mostly Rust), so only ours gets the traced soak.
        print(f"measuring {who} ...", file=sys.stderr)
        rows: Rows = {}
        found = attempt(f"{who} workloads", lambda: run_workloads(python, ours, mode))
        if found is not None:
            rows, details[who] = found
        peak = rows.pop(PEAK_RSS, None)  # listed after the import rows, next to the other memory figures
        rows.update(attempt(f"{who} import", lambda: measure_import(python, ours, mode.import_runs)) or {})
        rows[PEAK_RSS] = peak
        if soak_calls:
            plain = attempt(f"{who} soak", lambda: run_soak(python, ours, mode, soak_calls, False))
            traced = (
                attempt(f"{who} traced soak", lambda: run_soak(python, ours, mode, soak_calls, True)) if ours else None
            )
            details[f"{who} soak"] = plain
            if ours:
                details[f"{who} traced soak"] = traced
            rows.update(soak_rows(plain, traced))
        return rows

    ours = measure(sys.executable, True, "ours")
    ref = measure(args.reference, False, "reference") if args.reference else None

    seconds = time.perf_counter() - started
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode.name,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "seconds": seconds,
        "soak_calls": soak_calls,
        "soak_warmup": max(mode.soak_warmup, mode.soak_drain_every),
        "soak_every": min(mode.soak_every, soak_calls),
        "soak_drain_every": mode.soak_drain_every,
        "growth_target_mib_per_100k": GROWTH_TARGET_MIB,
        "failures": failures,
    }
    if ref is not None:  # a row either side lacks shows as n/a on that side
        ours = {name: ours.get(name) for name in {**ours, **ref}}
    print_table(ours, ref)
    print(f"\nwhole benchmark: {seconds:.1f} s", file=sys.stderr)
    _report_soak(details)

    default_md = HERE / "latest.md" if mode.name == "full" else HERE / "results" / f"latest-{mode.name}.md"
    md_path = Path(args.markdown) if args.markdown else default_md
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown(ours, ref, meta))
    print(f"wrote {md_path}", file=sys.stderr)
    if args.json:
        document = {"ours": ours, "reference": ref or {}, "meta": meta, "details": details}
        Path(args.json).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if failures else 0


def _report_soak(details: dict[str, Any]) -> None:
    """Say on stderr whether our growth is within target, and where it grows when it is not."""
    plain, traced = details.get("ours soak"), details.get("ours traced soak")
    if plain is None:
        return
    for run in (plain, traced):
        if run is not None and (run["dropped_events"] or run["atof_lines_per_call"] < 2):
            print(f"WARNING: soak lost events: {run['dropped_events']} dropped", file=sys.stderr)
    figures = [("ours", plain), ("ours traced", traced), ("reference", details.get("reference soak"))]
    for who, run in figures:
        if run is not None:  # the traced run's RSS includes tracemalloc's own tables: only its traced heap counts
            print(f"soak {who}: {_soak_summary(run, rss=run is not traced)}", file=sys.stderr)
    if plain["calls"] < JUDGE_MIN_CALLS:
        print(f"soak: {plain['calls']:,} calls are too few to judge growth against the target", file=sys.stderr)
        return
    growths = [plain["rss_growth_per_100k"], traced and traced["traced_growth_per_100k"]]
    if all(g is None or g <= GROWTH_TARGET_MIB * MIB for g in growths):
        print(f"soak: growth within {GROWTH_TARGET_MIB:g} MiB per 100,000 calls", file=sys.stderr)
        return
    print(f"soak: growth ABOVE {GROWTH_TARGET_MIB:g} MiB per 100,000 calls; top allocation sites:", file=sys.stderr)
    for site in (traced or {}).get("top_growth_sites", []):
        print(f"  {site['site']}: +{site['size_diff']:,} B in {site['count_diff']:+,} blocks", file=sys.stderr)


def _soak_summary(run: dict[str, Any], rss: bool) -> str:
    """One line: growth slope with its standard error, raw delta and the spread behind them."""

    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value / MIB:+.3f}"

    parts = []
    if rss:
        text = (
            f"RSS slope {mib(run['rss_growth_per_100k'])} ± {mib(run['rss_growth_stderr_per_100k'])} MiB/100k, "
            f"last-first {mib(run['rss_delta_per_100k'])} MiB/100k"
        )
        if run["rss_range"] is not None:
            low, high = run["rss_range"]
            text += f", range {(high - low) / MIB:.2f} MiB over {len(run['checkpoints'])} checkpoints"
        if run["arenas_range"] is not None:
            text += ", pymalloc arenas {}..{}".format(*run["arenas_range"])
        parts.append(text)
    if run["traced_growth_per_100k"] is not None:
        parts.append(
            f"traced heap slope {mib(run['traced_growth_per_100k'])} ± "
            f"{mib(run['traced_growth_stderr_per_100k'])} MiB/100k, last-first {mib(run['traced_delta_per_100k'])}"
        )
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
