"""The plugin document: dataclasses, normalisation, and how malformed input is refused."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from nemo_relay import plugin
from nemo_relay.plugin import ComponentSpec, ConfigPolicy, DynamicPluginActivationSpec, PluginConfig


class Recorder:
    """A Python plugin that records the config its validate receives."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def validate(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        self.seen.append(config)
        return []

    def register(self, config: dict[str, Any], context: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Recorder:
    rec = Recorder()
    plugin.register("example", rec)
    return rec


def test_dataclass_defaults_and_to_dict() -> None:
    assert ConfigPolicy().to_dict() == {
        "unknown_component": "warn",
        "unknown_field": "warn",
        "unsupported_value": "error",
    }
    assert ComponentSpec("k").to_dict() == {"kind": "k", "enabled": True, "config": {}}
    assert PluginConfig().to_dict() == {"version": 1, "components": [], "policy": ConfigPolicy().to_dict()}
    for cls in (ConfigPolicy, ComponentSpec, PluginConfig, DynamicPluginActivationSpec):
        assert dataclasses.is_dataclass(cls) and hasattr(cls, "__slots__")
    # Mutable defaults are per instance.
    first, second = PluginConfig(), PluginConfig()
    first.components.append(ComponentSpec("x"))
    assert second.components == []


def test_plugin_config_mixes_specs_dicts_and_to_dict_objects() -> None:
    class Helper:
        def to_dict(self) -> dict[str, Any]:
            return {"kind": "helper", "enabled": True, "config": {"kept": None}}

    @dataclasses.dataclass
    class Nested:
        value: int = 3
        optional: str | None = None

    config = PluginConfig(
        components=[
            ComponentSpec("spec", config={"a": None, "items": [Nested()]}),
            {"kind": "raw", "enabled": None, "config": {"n": None, "deep": {"m": None}}},
            Helper(),
        ]
    )
    assert config.to_dict()["components"] == [
        {"kind": "spec", "enabled": True, "config": {"a": None, "items": [{"value": 3, "optional": None}]}},
        {"kind": "raw", "config": {"n": None, "deep": {"m": None}}},
        {"kind": "helper", "enabled": True, "config": {"kept": None}},
    ]


def test_dynamic_spec_to_dict_keeps_config_nulls() -> None:
    spec = DynamicPluginActivationSpec(
        plugin_id="example.plugin",
        kind="worker",
        manifest_ref="/plugins/relay-plugin.toml",
        environment_ref="env-1",
        config={"enabled": True, "top": None, "nested": {"x": None}, "items": [None, {"y": None}]},
    )
    assert spec.to_dict() == {
        "plugin_id": "example.plugin",
        "kind": "worker",
        "manifest_ref": "/plugins/relay-plugin.toml",
        "environment_ref": "env-1",
        "config": {"enabled": True, "top": None, "nested": {"x": None}, "items": [None, {"y": None}]},
    }
    assert "environment_ref" not in DynamicPluginActivationSpec("p", "rust_dynamic", "/m").to_dict()


def test_validate_strips_nulls_outside_component_config(recorder: Recorder) -> None:
    report = plugin.validate(
        {
            "version": None,
            "policy": {"unknown_component": None},
            "components": [
                {"kind": "example", "enabled": None, "config": {"top_level": None, "nested": {"value": None}}}
            ],
        }
    )
    assert report == {"diagnostics": []}
    assert recorder.seen == [{"top_level": None, "nested": {"value": None}}]
    assert plugin.validate({"version": None, "components": None, "policy": None}) == {"diagnostics": []}


def test_validate_accepts_plugin_config_and_converts_json_values(recorder: Recorder) -> None:
    config = PluginConfig(components=[ComponentSpec("example", config={"t": (1, 2), "nan": float("nan")})])
    assert plugin.validate(config) == {"diagnostics": []}
    assert recorder.seen == [{"t": [1, 2], "nan": None}]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"components": {}}, "invalid type: map, expected a sequence"),
        ({"components": [{"kind": 1}]}, "invalid type: integer `1`, expected a string"),
        ({"components": [{"config": {}}]}, "missing field `kind`"),
        ({"components": [{"kind": "x", "config": []}]}, "invalid type: sequence, expected a map"),
        ({"components": [{"kind": "x", "enabled": "yes"}]}, 'invalid type: string "yes", expected a boolean'),
        ({"components": [None]}, "invalid type: null, expected struct PluginComponentSpec"),
        ({"version": "1"}, 'invalid type: string "1", expected u32'),
        ({"version": -1}, "invalid value: integer `-1`, expected u32"),
        ({"version": True}, "invalid type: boolean `true`, expected u32"),
        ({"version": 1.0}, "invalid type: floating point `1.0`, expected u32"),
        ({"policy": {"unknown_component": "bad"}}, "unknown variant `bad`, expected one of `ignore`, `warn`, `error`"),
        ({"policy": 5}, "invalid type: integer `5`, expected struct ConfigPolicy"),
        (None, "invalid type: null, expected struct PluginConfig"),
        ({"components": [{"kind": "x", "config": {"k": object()}}]}, "Failed to convert to JSON"),
        ({"components": [{"kind": "x", "config": {1: 2}}]}, "Failed to convert to JSON"),
    ],
)
def test_malformed_documents_raise_value_error(config: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plugin.validate(config)


async def test_initialize_refuses_malformed_documents_the_same_way() -> None:
    with pytest.raises(ValueError, match="invalid type: map, expected a sequence"):
        await plugin.initialize({"components": {}})
    assert plugin.report() is None


def test_unknown_keys_are_ignored(recorder: Recorder) -> None:
    report = plugin.validate({"extra": 1, "components": [{"kind": "example", "bogus": 2}], "policy": {"x": 1}})
    assert report == {"diagnostics": []}


def test_import_nemo_relay_does_not_load_the_plugin_host() -> None:
    code = (
        "import sys, nemo_relay\n"
        "loaded = [m for m in sys.modules if m == 'nemo_relay.plugin' or m.startswith('nemo_relay._core.plugins')]\n"
        "assert not loaded, loaded\n"
        "from nemo_relay import plugin\n"
        "assert 'nemo_relay._core.observability.plugin' not in sys.modules  # built-ins load on first use\n"
        "assert 'tomllib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
