"""Smoke run of the benchmark harness (``bench/run.py --smoke``): it must run and write well-formed output.

No timing assertions: CI machines are shared and the smoke sizes are too small to mean anything. The run
includes a tiny soak so the soak code path is exercised too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SRC = BENCH.parent / "src"
NAMES_PROBE = "import json, workloads as w; print(json.dumps([*w.THROUGHPUT, *w.LATENCY, *w.ATOF_LATENCY]))"
# Rows run.py adds to the workload rows; values are positive.
EXTRA_POSITIVE = [
    "import nemo_relay (ms)",
    "import nemo_relay: RSS added (MiB)",
    "peak RSS of the workload process (MiB)",
    "soak: µs per managed call with ATOF file exporter + no-op subscriber",
]
# Growth may be zero or negative.
GROWTH = [
    "soak: RSS growth per 100k calls (MiB)",
    "soak: RSS last minus first checkpoint, per 100k calls (MiB)",
    "soak: traced Python heap growth per 100k calls (MiB)",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, list[str]]:
    """One smoke run of the harness against this package: its JSON, its Markdown and the workload names."""
    out = tmp_path_factory.mktemp("bench")
    json_path, md_path = out / "bench.json", out / "bench.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke", "--json", str(json_path), "--markdown", str(md_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = subprocess.run(
        [sys.executable, "-c", NAMES_PROBE],
        cwd=BENCH,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(json_path.read_text()), md_path.read_text(), json.loads(names.stdout)


def test_json_has_every_row_with_a_positive_number(smoke: tuple[dict[str, Any], str, list[str]]) -> None:
    document, _markdown, workloads = smoke
    assert len(workloads) >= 16
    assert document["reference"] == {}
    assert document["meta"]["mode"] == "smoke"
    assert document["meta"]["failures"] == []
    ours = document["ours"]
    for name in [*workloads, *EXTRA_POSITIVE]:
        assert isinstance(ours[name], float), name
        assert ours[name] > 0, name
    for name in GROWTH:
        assert isinstance(ours[name], float), name


def test_soak_wrote_every_event(smoke: tuple[dict[str, Any], str, list[str]]) -> None:
    details = smoke[0]["details"]
    for run in (details["ours soak"], details["ours traced soak"]):
        assert run["dropped_events"] == 0
        assert run["atof_lines_per_call"] == 2.0  # a start and an end event per call
        assert len(run["checkpoints"]) >= 3  # a slope and its standard error need three points
        assert isinstance(run["rss_growth_stderr_per_100k"], float)
    # CPython reports its pymalloc arenas, except while tracemalloc has wrapped the allocator.
    assert all(isinstance(point["arenas"], int) for point in details["ours soak"]["checkpoints"])
    assert isinstance(details["ours traced soak"]["traced_delta_per_100k"], float)


def test_soak_growth_is_a_slope_not_an_end_point_delta() -> None:
    """A leak's steady growth comes out in full; one late allocator step is not extrapolated as a leak."""
    sys.path.insert(0, str(BENCH))
    try:
        import soak
    finally:
        sys.path.remove(str(BENCH))
    leak = [{"calls": c, "rss": 1000 + 3 * c} for c in range(0, 1_000_001, 20_000)]
    growth = soak._growth(leak, "rss", 1_000_000, "rss")
    assert growth["rss_growth_per_100k"] == pytest.approx(300_000)
    assert growth["rss_delta_per_100k"] == pytest.approx(300_000)
    assert growth["rss_growth_stderr_per_100k"] == pytest.approx(0, abs=1e-6)
    mib = 1 << 20
    step = [{"calls": c, "rss": mib if c == 50_000 else 0} for c in range(0, 50_001, 5_000)]
    growth = soak._growth(step, "rss", 50_000, "rss")
    assert growth["rss_delta_per_100k"] == 2 * mib
    assert growth["rss_growth_per_100k"] < growth["rss_delta_per_100k"] / 2
    assert soak._growth(step, "traced", 50_000, "traced")["traced_growth_per_100k"] is None


def test_markdown_has_every_row_with_a_positive_number(smoke: tuple[dict[str, Any], str, list[str]]) -> None:
    _document, markdown, workloads = smoke
    lines = markdown.splitlines()
    assert lines[0] == "| workload | ours |"
    assert lines[1] == "|---|---:|"
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        label, value = (cell.strip() for cell in line.strip("|").split("|"))
        rows[label] = value
    expected = [*workloads, *(re.sub(r" \((ms|MiB)\)$", "", name) for name in EXTRA_POSITIVE)]
    for label in expected:
        number, unit = rows[label].split()
        assert float(number) > 0, label
        assert unit in {"µs", "ms", "MiB"}, label
    for name in GROWTH:
        float(rows[re.sub(r" \(MiB\)$", "", name)].split()[0])
    assert "**soak**: 2,000 awaited" in markdown
