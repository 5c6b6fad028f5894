"""Run the benchmark workloads against this package and, optionally, the reference wheel, side by side.

    python bench/run.py                                   # this package only
    python bench/run.py --reference /path/to/venv/bin/python
    python bench/run.py --quick                           # a fast smoke run (numbers are rough)

``--reference`` names the interpreter of a separate virtual environment holding the reference wheel
(``python -m venv ref && ref/bin/pip install nemo-relay==0.8.4``). Both are measured in the same run,
each in its own subprocess; the table prints microseconds per operation and the ratio reference/ours
(above 1 means this package is faster). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
IMPORT_PROBE = "import time; t = time.perf_counter(); import nemo_relay; print(time.perf_counter() - t)"


def _env(ours: bool) -> dict[str, str]:
    # Bytecode caching on: import time should measure loading, not compiling.
    dropped = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMO_RELAY_") and k not in dropped}
    if ours:
        env["PYTHONPATH"] = str(SRC)  # measure this checkout even when it is not installed
    return env


def run_workloads(python: str, ours: bool, quick: bool) -> dict[str, float | None]:
    args = [python, str(HERE / "workloads.py")] + (["--quick"] if quick else [])
    done = subprocess.run(args, env=_env(ours), capture_output=True, text=True, check=False, cwd=HERE)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed under {python}:\n{done.stderr}")
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  measured {payload['module']}", file=sys.stderr)
    return dict(payload["results"])


def import_ms(python: str, ours: bool, runs: int) -> float:
    times = []
    for _ in range(runs + 1):  # the first run writes bytecode caches and is not counted
        done = subprocess.run(
            [python, "-c", IMPORT_PROBE], env=_env(ours), capture_output=True, text=True, check=True, cwd=HERE
        )
        times.append(float(done.stdout.strip()) * 1000)
    return statistics.median(times[1:])


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", metavar="PYTHON", help="interpreter of a venv with nemo-relay==0.8.4")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    runs = 3 if args.quick else 11
    print("measuring this package ...", file=sys.stderr)
    ours = run_workloads(sys.executable, True, args.quick)
    ours["import nemo_relay (ms)"] = import_ms(sys.executable, True, runs)
    ref: dict[str, float | None] = {}
    if args.reference:
        print("measuring the reference ...", file=sys.stderr)
        ref = run_workloads(args.reference, False, args.quick)
        ref["import nemo_relay (ms)"] = import_ms(args.reference, False, runs)

    width = max(len(name) for name in ours)
    header = f"{'workload':<{width}}  {'ours µs/op':>11}"
    if args.reference:
        header += f"  {'reference µs/op':>16}  {'ratio ref/ours':>14}"
    print(header)
    print("-" * len(header))
    for name, value in ours.items():
        line = f"{name:<{width}}  {_fmt(value):>11}"
        if args.reference:
            other = ref.get(name)
            ratio = other / value if other and value else None
            line += f"  {_fmt(other):>16}  {_fmt(ratio, 'x'):>14}"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"ours": ours, "reference": ref}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
