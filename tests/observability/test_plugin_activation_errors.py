"""An observability configuration that validates but cannot start (an unwritable ATOF directory) fails
``plugin.initialize`` with the reference's message and leaves nothing installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemo_relay import plugin, runtime_registrations


async def test_an_unwritable_atof_directory_fails_activation_and_installs_nothing(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    config = {
        "components": [
            {
                "kind": "observability",
                "config": {
                    "atof": {"enabled": True, "sinks": [{"type": "file", "output_directory": str(blocked)}]},
                    "atif": {"enabled": True, "output_directory": str(tmp_path)},
                },
            }
        ]
    }
    with pytest.raises(RuntimeError, match=r"^registration failed: failed to (create|open) ATOF output") as info:
        await plugin.initialize(config)
    assert "RuntimeError:" not in str(info.value)
    assert plugin.report() is None
    owners = {item.owner.plugin_kind for item in runtime_registrations.list_runtime_registrations()}
    assert "observability" not in owners
