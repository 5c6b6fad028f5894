"""Our ``AtifExporter`` against the reference wheel's trajectories for the same scripted runs.

``fixtures/atif_reference/<scenario>.json`` holds what ``nemo-relay`` 0.8.4 exported for each run in
``atif_scenarios`` (recorded by ``atif_reference_gen.py``). Every run here must export the same
document after normalisation (UUIDs numbered; wall-clock times masked), both as ``export()`` and as
``export_json()``, and every export must pass the independent validator and our strict checks.
``fixtures/atif_reference/plugin/files.json`` holds the files the reference's observability plugin
wrote for ``plugin_run``; the plugin's dispatcher must write the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from atif_checks import check_trajectory
from atif_scenarios import PLUGIN_ATIF, SCENARIOS, WALL_CLOCK, normalise, plugin_files, plugin_run

from nemo_relay import AtifExporter, subscribers
from nemo_relay._core.diagnostics import RuntimeDiagnostics
from nemo_relay._core.observability.atif.dispatcher import AtifDispatcher
from nemo_relay._core.observability.settings import AtifSettings

FIXTURES = Path(__file__).parent / "fixtures" / "atif_reference"


def _differences(ours: Any, reference: Any, path: str = "$") -> list[str]:
    if type(ours) is not type(reference):
        return [f"{path}: {json.dumps(ours)[:200]} != {json.dumps(reference)[:200]}"]
    if isinstance(ours, dict):
        out: list[str] = []
        for key in sorted(set(ours) | set(reference)):
            if key not in ours or key not in reference:
                out.append(f"{path}.{key}: only in {'ours' if key in ours else 'the reference'}")
            else:
                out += _differences(ours[key], reference[key], f"{path}.{key}")
        return out
    if isinstance(ours, list):
        out = [] if len(ours) == len(reference) else [f"{path}: {len(ours)} items != {len(reference)}"]
        for index, (a, b) in enumerate(zip(ours, reference, strict=False)):
            out += _differences(a, b, f"{path}[{index}]")
        return out
    return [] if ours == reference else [f"{path}: {ours!r} != {reference!r}"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_trajectory_matches_the_reference(name: str) -> None:
    exporter = AtifExporter("sess-1", "probe-agent", "1.0.0")
    exporter.register(f"atif-reference-{name}")
    try:
        await SCENARIOS[name]()
        exported = exporter.export()
        compact = exporter.export_json()
    finally:
        exporter.deregister(f"atif-reference-{name}")

    check_trajectory(exported)
    assert json.loads(compact) == exported
    reference = json.loads((FIXTURES / f"{name}.json").read_text())
    differences = _differences(normalise(exported, name in WALL_CLOCK), reference)
    assert not differences, "\n".join(differences[:20])


def test_every_scenario_has_a_reference_recording() -> None:
    recorded = {path.stem for path in FIXTURES.glob("*.json")}
    assert recorded == set(SCENARIOS)


def test_plugin_files_match_the_reference(tmp_path: Path) -> None:
    dispatcher = AtifDispatcher(AtifSettings(output_directory=str(tmp_path), **PLUGIN_ATIF), RuntimeDiagnostics(), "ns")
    subscribers.register("atif-reference-plugin", dispatcher.on_event)
    try:
        close = plugin_run()
        assert subscribers.flush(timeout=10)
    finally:
        subscribers.deregister("atif-reference-plugin")
    assert dispatcher.shutdown(10).ok
    close()

    documents = plugin_files(tmp_path)
    for document in documents:
        check_trajectory(document)
    reference = json.loads((FIXTURES / "plugin" / "files.json").read_text())
    differences = _differences(normalise(documents, wall_clock=False), reference)
    assert not differences, "\n".join(differences[:20])
