"""Manifest-backed (dynamic) plugins: reading specs from plugins.toml and the host activation checks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nemo_relay import plugin
from nemo_relay.plugin import DynamicPluginActivationSpec, PluginConfig, PluginHostActivation


@pytest.fixture
def layout(tmp_path: Path) -> Callable[..., Path]:
    """Write ``plugins.toml`` (and optionally the manifest ``m/relay-plugin.toml``); return the plugins.toml path."""

    def write(plugins: str, manifest: str | None = "[plugin]\nid = ' example.plugin '\nkind = 'worker'\n") -> Path:
        if manifest is not None:
            (tmp_path / "m").mkdir(exist_ok=True)
            (tmp_path / "m" / "relay-plugin.toml").write_text(manifest)
        path = tmp_path / "plugins.toml"
        path.write_text(plugins)
        return path

    return write


ENTRY = "[[plugins.dynamic]]\nmanifest = 'm/relay-plugin.toml'\n"


def test_specs_are_read_in_file_order_with_resolved_manifests(layout: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "relay-plugin.toml").write_text("[plugin]\nid = 'second'\nkind = 'rust_dynamic'\n")
    path = layout(
        ENTRY + "[plugins.dynamic.config]\nmode = 'strict'\nnested = { enabled = true }\n"
        "[[plugins.dynamic]]\nmanifest = './n/../n/relay-plugin.toml'\n"
    )
    assert plugin.load_dynamic_plugin_activation_specs(str(path)) == [
        DynamicPluginActivationSpec(
            "example.plugin",
            "worker",
            str((tmp_path / "m" / "relay-plugin.toml").resolve()),
            None,
            {"mode": "strict", "nested": {"enabled": True}},
        ),
        DynamicPluginActivationSpec("second", "rust_dynamic", str((tmp_path / "n" / "relay-plugin.toml").resolve())),
    ]
    assert plugin.load_dynamic_plugin_activation_specs(layout("")) == []
    assert plugin.load_dynamic_plugin_activation_specs(layout("[plugins]\n")) == []


@pytest.mark.parametrize("version", ["true", "0", "2", "'1'"])
def test_unsupported_version(layout: Callable[..., Path], version: str) -> None:
    path = layout(f"version = {version}\n")
    value = {"true": True, "0": 0, "2": 2, "'1'": "1"}[version]
    with pytest.raises(ValueError) as failure:
        plugin.load_dynamic_plugin_activation_specs(path)
    assert str(failure.value) == f"plugin config version {value!r} in {path.resolve()} is unsupported; expected 1"


@pytest.mark.parametrize(
    ("plugins", "manifest", "message"),
    [
        ("plugins = 1\n", None, "'plugins' must be a table"),
        ("[plugins]\ndynamic = 1\n", None, "'plugins.dynamic' must be an array of tables"),
        ("[plugins]\ndynamic = {}\n", None, "'plugins.dynamic' must be an array of tables"),
        ("[plugins]\ndynamic = [1]\n", None, "plugins.dynamic[0] must be a table"),
        (ENTRY + "z = 1\nunsupported = 2\n", None, "plugins.dynamic[0] has unknown fields: unsupported, z"),
        ("[[plugins.dynamic]]\nmanifest = ''\n", None, "plugins.dynamic[0].manifest must be a non-empty string"),
        ("[[plugins.dynamic]]\n", None, "plugins.dynamic[0].manifest must be a non-empty string"),
        (ENTRY + "config = 1\n", "default", "plugins.dynamic[0].config must be a table"),
        (ENTRY + "config = { d = 1979-05-27T07:32:00Z }\n", "default", "config must contain JSON values"),
        (ENTRY, "plugin = 1\n", "'plugin' must be a table"),
        (ENTRY, "", "'plugin' must be a table"),
        (ENTRY, "[plugin]\nid = '  '\nkind = 'worker'\n", "'plugin.id' must be a non-empty string"),
        (ENTRY, "[plugin]\nid = 3\nkind = 'worker'\n", "'plugin.id' must be a non-empty string"),
        (ENTRY, "[plugin]\nid = 'a'\nkind = 'x'\n", "'plugin.kind' must be 'rust_dynamic' or 'worker'"),
    ],
)
def test_invalid_records(layout: Callable[..., Path], plugins: str, manifest: str | None, message: str) -> None:
    in_plugins_toml = manifest in (None, "default")
    path = layout(plugins) if in_plugins_toml else layout(plugins, manifest)
    where = "config" if in_plugins_toml else "manifest"
    with pytest.raises(ValueError) as failure:
        plugin.load_dynamic_plugin_activation_specs(path)
    text = str(failure.value)
    assert text.startswith(f"invalid dynamic plugin {where} in ")
    assert message in text


def test_invalid_toml_and_missing_files(layout: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"invalid plugin TOML in .*plugins\.toml: "):
        plugin.load_dynamic_plugin_activation_specs(layout("x = [\n"))
    with pytest.raises(ValueError, match=r"invalid dynamic plugin manifest in .*relay-plugin\.toml: "):
        plugin.load_dynamic_plugin_activation_specs(layout(ENTRY, "x = [\n"))
    with pytest.raises(FileNotFoundError) as missing:
        plugin.load_dynamic_plugin_activation_specs(
            layout("[[plugins.dynamic]]\nmanifest = 'nope/relay-plugin.toml'\n")
        )
    assert missing.value.filename == str((tmp_path / "nope" / "relay-plugin.toml").resolve())
    with pytest.raises(FileNotFoundError):
        plugin.load_dynamic_plugin_activation_specs(tmp_path / "absent.toml")


def test_duplicate_plugin_ids(layout: Callable[..., Path]) -> None:
    path = layout(ENTRY + "[[plugins.dynamic]]\nmanifest = 'm/../m/relay-plugin.toml'\n")
    with pytest.raises(ValueError) as failure:
        plugin.load_dynamic_plugin_activation_specs(path)
    assert str(failure.value) == f"duplicate dynamic plugin id 'example.plugin' in {path.resolve()}"


# --- initialize_with_dynamic_plugins ---------------------------------------------------------------------


async def test_empty_spec_list_is_refused_and_changes_nothing() -> None:
    with pytest.raises(ValueError, match="at least one dynamic plugin") as failure:
        await plugin.initialize_with_dynamic_plugins(PluginConfig(), [])
    assert str(failure.value) == (
        "invalid config: dynamic plugin activation requires at least one dynamic plugin; use plugin "
        "initialization for a static-only configuration"
    )
    assert plugin.report() is None
    assert await plugin.initialize(PluginConfig()) == {"diagnostics": []}


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (
            [DynamicPluginActivationSpec("a", "bogus", "/m")],  # type: ignore[arg-type]
            "unknown variant `bogus`, expected `rust_dynamic` or `worker`",
        ),
        ([{"plugin_id": "a", "kind": "bogus", "manifest_ref": "/m"}], "unknown variant `bogus`"),
        ([{"plugin_id": "a", "kind": "worker"}], "missing field `manifest_ref`"),
        ([DynamicPluginActivationSpec("a", "worker", "/m", config=[])], "invalid type: sequence, expected a map"),  # type: ignore[arg-type]
        ([5], "invalid type: integer `5`, expected struct DynamicPluginActivationSpec"),
        ([DynamicPluginActivationSpec("a", "worker", "/m")] * 2, "invalid config: duplicate dynamic plugin id 'a'"),
    ],
)
async def test_malformed_specs(specs: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        await plugin.initialize_with_dynamic_plugins(PluginConfig(), specs)


async def test_missing_manifest_is_file_not_found_and_nothing_is_left(tmp_path: Path) -> None:
    manifest = tmp_path / "relay-plugin.toml"
    manifest.write_text("[plugin]\nid = 'fixture_native'\nkind = 'rust_dynamic'\n")
    missing = str(tmp_path / "nope.toml")
    specs = [
        DynamicPluginActivationSpec("fixture_native", "rust_dynamic", str(manifest)),
        DynamicPluginActivationSpec("w", "worker", missing),
    ]
    with pytest.raises(FileNotFoundError) as failure:
        await plugin.initialize_with_dynamic_plugins(PluginConfig(), specs)
    assert (
        str(failure.value)
        == f"not found: worker plugin load failed: dynamic plugin manifest '{missing}' does not exist"
    )
    assert "fixture_native" not in plugin.list_kinds()
    assert plugin.report() is None


async def test_valid_request_explains_that_loading_is_not_supported(tmp_path: Path) -> None:
    manifest = tmp_path / "relay-plugin.toml"
    manifest.write_text("[plugin]\nid = 'example'\nkind = 'worker'\n")
    with pytest.raises(NotImplementedError) as failure:
        await plugin.initialize_with_dynamic_plugins(
            {}, [{"plugin_id": "example", "kind": "worker", "manifest_ref": str(manifest)}]
        )
    assert isinstance(failure.value, RuntimeError)
    assert f"cannot load worker plugin 'example' from {manifest}" in str(failure.value)
    assert "plugin.register(kind, plugin)" in str(failure.value)
    assert plugin.list_kinds() == ["fake_builtin"]
    assert plugin.report() is None


async def test_static_configuration_conflicts_with_dynamic_activation(tmp_path: Path) -> None:
    await plugin.initialize({})
    with pytest.raises(RuntimeError, match=r"^conflict: a static plugin configuration is already active; "):
        await plugin.initialize_with_dynamic_plugins(PluginConfig(), [DynamicPluginActivationSpec("a", "worker", "/m")])


async def test_bad_plugins_toml_is_a_value_error_here(user_toml: Callable[[str], Path]) -> None:
    path = user_toml("version = 2\n")
    with pytest.raises(ValueError, match=f"plugin config version 2 in {path} is unsupported"):
        await plugin.initialize_with_dynamic_plugins(PluginConfig(), [DynamicPluginActivationSpec("a", "worker", "/m")])


# --- PluginHostActivation ----------------------------------------------------------------------------------


class FakeHost:
    """Stands in for a loaded host: close() blocks until released and counts calls."""

    def __init__(self) -> None:
        self.report = {"diagnostics": []}
        self.is_active = True
        self.closes = 0
        self.release = threading.Event()

    def close(self) -> None:
        self.closes += 1
        self.release.wait(10)
        self.is_active = False


async def test_host_activation_close_is_shared_idempotent_and_cancellation_resistant() -> None:
    host = FakeHost()
    activation = PluginHostActivation(host)
    async with activation as entered:
        assert entered is activation
        assert activation.is_active and activation.report == {"diagnostics": []}
        first = asyncio.ensure_future(activation.close())
        second = asyncio.ensure_future(activation.close())
        await asyncio.sleep(0.05)
        assert not activation.is_active
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert not second.done()
        host.release.set()
        await second
    await activation.close()
    assert host.closes == 1
