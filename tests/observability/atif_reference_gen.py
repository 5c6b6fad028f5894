"""Record the reference wheel's ATIF trajectories for ``atif_scenarios`` into ``fixtures/atif_reference``.

Run with the reference environment (``nemo-relay==0.8.4`` installed), from this directory::

    /path/to/reference/venv/bin/python atif_reference_gen.py

Each scenario runs through a fresh ``AtifExporter("sess-1", "probe-agent", "1.0.0")``; the exported
trajectory is normalised (``atif_scenarios.normalise``) and written as ``<scenario>.json``. The
plugin run (``atif_scenarios.plugin_run`` under the observability plugin) is written as
``plugin/files.json``. The files are data (the reference's observable output), regenerated whenever
the scenarios change.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from atif_scenarios import PLUGIN_ATIF, SCENARIOS, WALL_CLOCK, normalise, plugin_files, plugin_run

from nemo_relay import AtifExporter, subscribers

FIXTURES = Path(__file__).parent / "fixtures" / "atif_reference"


async def record(name: str) -> dict[str, object]:
    exporter = AtifExporter("sess-1", "probe-agent", "1.0.0")
    exporter.register("atif-reference")
    try:
        await SCENARIOS[name]()
        await subscribers.flush_async()
        return normalise(exporter.export(), name in WALL_CLOCK)  # type: ignore[no-any-return]
    finally:
        exporter.deregister("atif-reference")


async def record_plugin() -> list[object]:
    """The files the observability plugin writes for ``plugin_run`` (the open root flushed at teardown)."""
    import tempfile

    from nemo_relay import plugin
    from nemo_relay.observability import AtifConfig, ComponentSpec, ObservabilityConfig

    with tempfile.TemporaryDirectory() as directory:
        atif = AtifConfig(enabled=True, output_directory=directory, **PLUGIN_ATIF)
        await plugin.initialize(plugin.PluginConfig(components=[ComponentSpec(ObservabilityConfig(atif=atif))]))
        close = plugin_run()
        await subscribers.flush_async()
        await plugin.clear_async()
        close()
        # The whole set is normalised together, so a UUID keeps its number across files.
        return normalise(plugin_files(directory), wall_clock=False)  # type: ignore[no-any-return]


def main(names: list[str]) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in names or list(SCENARIOS):
        document = asyncio.run(record(name))
        (FIXTURES / f"{name}.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        print("recorded", name)
    if not names:
        documents = asyncio.run(record_plugin())
        (FIXTURES / "plugin" / "files.json").parent.mkdir(exist_ok=True)
        (FIXTURES / "plugin" / "files.json").write_text(json.dumps(documents, indent=1, sort_keys=True) + "\n")
        print("recorded the plugin run")


if __name__ == "__main__":
    main(sys.argv[1:])
