"""plugins.toml discovery and layering under the programmatic configuration (real files, real activation)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nemo_relay import plugin
from nemo_relay._core.plugins import files

WriteToml = Callable[[str], Path]


class Recorder:
    """Records the config each activation registers with (one entry per enabled component)."""

    def __init__(self) -> None:
        self.registered: list[dict[str, Any]] = []

    def register(self, config: dict[str, Any], context: Any) -> None:
        self.registered.append(config)


@pytest.fixture
def rec() -> Recorder:
    recorder = Recorder()
    plugin.register("rec", recorder)
    plugin.register("rec2", Recorder())
    return recorder


def inherited(path: Path | str) -> dict[str, str]:
    return {
        "code": "plugin.configuration_inherited",
        "level": "warning",
        "message": f"inherited plugin configuration from discovered file: {path}",
    }


def reenabled(path: Path | str, kind: str = "rec") -> dict[str, str]:
    return {
        "code": "plugin.component_reenabled",
        "component": kind,
        "field": "enabled",
        "level": "warning",
        "message": f"programmatic configuration enabled plugin component '{kind}' and overrode enabled = false from "
        f"{path}",
    }


async def test_no_files_means_no_warnings(rec: Recorder) -> None:
    assert await plugin.initialize({"components": [{"kind": "rec", "config": {"a": 1}}]}) == {"diagnostics": []}
    assert rec.registered == [{"a": 1}]


async def test_user_file_components_are_inherited_and_merged_with_code(rec: Recorder, user_toml: WriteToml) -> None:
    path = user_toml(
        "version = 1\n[[components]]\nkind = 'rec'\nconfig = { a = 1, l = [1, 2], n = { x = 1, l = [1] } }\n"
    )
    report = await plugin.initialize(
        {"components": [{"kind": "rec", "config": {"b": 2, "l": [3], "n": {"y": 2, "l": [2]}}}]}
    )
    assert report == {"diagnostics": [inherited(path)]}
    # Top-level config lists concatenate (code first); nested lists are replaced; objects merge.
    assert rec.registered == [{"a": 1, "b": 2, "l": [3, 1, 2], "n": {"l": [2], "x": 1, "y": 2}}]


async def test_file_only_components_are_activated(rec: Recorder, user_toml: WriteToml) -> None:
    path = user_toml("[[components]]\nkind = 'rec'\nconfig = { from_file = true }\n")
    assert await plugin.initialize({}) == {"diagnostics": [inherited(path)]}
    assert rec.registered == [{"from_file": True}]


async def test_code_nulls_override_file_values(rec: Recorder, user_toml: WriteToml) -> None:
    user_toml("[[components]]\nkind = 'rec'\nconfig = { a = 1, b = { c = 1 } }\n")
    await plugin.initialize({"components": [{"kind": "rec", "config": {"a": None, "b": {"c": None}}}]})
    assert rec.registered == [{"a": None, "b": {"c": None}}]


async def test_system_file_has_higher_precedence_than_user_file(
    rec: Recorder, user_toml: WriteToml, system_toml: WriteToml
) -> None:
    user = user_toml("[[components]]\nkind = 'rec'\nconfig = { a = 'user', l = ['u'], u = 1 }\n")
    system = system_toml("[[components]]\nkind = 'rec'\nconfig = { a = 'system', l = ['s'], s = 1 }\n")
    assert await plugin.initialize({}) == {"diagnostics": [inherited(user), inherited(system)]}
    assert rec.registered == [{"a": "system", "l": ["s", "u"], "s": 1, "u": 1}]


async def test_symlinked_duplicate_loads_once_at_the_higher_precedence_position(
    rec: Recorder, user_toml: WriteToml
) -> None:
    user = user_toml("[[components]]\nkind = 'rec'\nconfig = { l = ['u'] }\n")
    Path(files.SYSTEM_PATH).parent.mkdir(parents=True)
    os.symlink(user, files.SYSTEM_PATH)
    assert await plugin.initialize({}) == {"diagnostics": [inherited(files.SYSTEM_PATH)]}
    assert rec.registered == [{"l": ["u"]}]


def test_home_fallback_and_explicit_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert files.user_path() == str(tmp_path / "home" / ".config" / "nemo-relay" / "plugins.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")
    assert files.user_path() == os.path.join("relative", "nemo-relay", "plugins.toml")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("HOME")
    if os.name != "nt":
        assert files.user_path() is None


async def test_validate_never_reads_files(rec: Recorder, user_toml: WriteToml) -> None:
    user_toml("[[components]]\nkind = 'unknown-from-file'\n")
    assert plugin.validate({}) == {"diagnostics": []}


# --- enabled = false --------------------------------------------------------------------------------------


async def test_disabled_file_component_is_removed_and_code_reenabling_it_warns(
    rec: Recorder, user_toml: WriteToml
) -> None:
    path = user_toml("[[components]]\nkind = 'rec'\nenabled = false\nconfig = { a = 1 }\n")
    assert await plugin.initialize({}) == {"diagnostics": [inherited(path)]}
    assert rec.registered == []
    report = await plugin.initialize({"components": [{"kind": "rec", "config": {"b": 2}}]})
    assert report == {"diagnostics": [inherited(path), reenabled(path)]}
    assert rec.registered == [{"b": 2}]  # the disabled component contributed nothing


async def test_disabled_lower_file_does_not_disable_a_higher_one(
    rec: Recorder, user_toml: WriteToml, system_toml: WriteToml
) -> None:
    user = user_toml("[[components]]\nkind = 'rec'\nenabled = false\n")
    system = system_toml("[[components]]\nkind = 'rec'\nconfig = { a = 'system' }\n")
    report = await plugin.initialize({"components": [{"kind": "rec"}]})
    assert report == {"diagnostics": [inherited(user), inherited(system), reenabled(user)]}
    assert rec.registered == [{"a": "system"}]


@pytest.mark.parametrize(
    ("user", "system", "components", "warned_from"),
    [
        # The highest-precedence file that disabled the kind is named.
        ("enabled = false", "enabled = false", [{"kind": "rec"}], ["system"]),
        # Landing on a file component that explicitly says enabled = true is no re-enabling.
        ("enabled = true", "enabled = false", [{"kind": "rec"}], []),
        ("enabled = false", "enabled = true", [{"kind": "rec"}], []),
        # ... but a second code component of the kind has no file component to land on.
        ("enabled = true", "enabled = false", [{"kind": "rec"}, {"kind": "rec"}], ["system"]),
        ("enabled = false", "", [{"kind": "rec"}, {"kind": "rec"}], ["user", "user"]),
        ("enabled = false", "", [{"kind": "rec", "enabled": False}, {"kind": "rec2"}], []),
    ],
)
async def test_reenabled_warning_rules(
    rec: Recorder,
    user_toml: WriteToml,
    system_toml: WriteToml,
    user: str,
    system: str,
    components: list[dict[str, Any]],
    warned_from: list[str],
) -> None:
    paths = {"user": user_toml(f"[[components]]\nkind = 'rec'\n{user}\n")}
    if system:
        paths["system"] = system_toml(f"[[components]]\nkind = 'rec'\n{system}\n")
    report = await plugin.initialize({"components": components})
    warnings = [d for d in report["diagnostics"] if d["code"] == "plugin.component_reenabled"]
    assert warnings == [reenabled(paths[which]) for which in warned_from]


async def test_code_can_disable_a_file_component(rec: Recorder, user_toml: WriteToml) -> None:
    user_toml("[[components]]\nkind = 'rec'\nconfig = { a = 1 }\n")
    await plugin.initialize({"components": [{"kind": "rec", "enabled": False}]})
    assert rec.registered == []


async def test_components_pair_by_kind_and_position(rec: Recorder, user_toml: WriteToml) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def register(self, config: dict[str, Any], context: Any) -> None:
            seen.append((self.name, config))

    plugin.register("first", Named("first"))
    plugin.register("second", Named("second"))
    user_toml("[[components]]\nkind = 'second'\n[[components]]\nkind = 'first'\nconfig = { x = 1 }\n")
    await plugin.initialize(
        {"components": [{"kind": "first", "config": {"y": 2}}, {"kind": "first", "config": {"z": 3}}]}
    )
    # File order first, merged in place; unmatched code components are appended.
    assert seen == [("second", {}), ("first", {"x": 1, "y": 2}), ("first", {"z": 3})]


# --- policy and version layering -----------------------------------------------------------------------------


async def test_policy_layers_and_default_code_values_do_not_override_files(user_toml: WriteToml) -> None:
    user_toml("[policy]\nunknown_component = 'error'\n[[components]]\nkind = 'zz'\n")
    with pytest.raises(RuntimeError, match=r"^invalid config: plugin component kind 'zz' is unsupported$"):
        await plugin.initialize({"policy": {"unknown_component": "warn"}})  # the default: files win
    with pytest.raises(RuntimeError, match=r"^not found: plugin component 'zz' is not registered$"):
        await plugin.initialize({"policy": {"unknown_component": "ignore"}})  # non-default: code wins


async def test_code_version_other_than_one_survives_layering(user_toml: WriteToml) -> None:
    user_toml("version = 1\n")
    with pytest.raises(RuntimeError, match=r"^invalid config: plugin config version 2 is unsupported$"):
        await plugin.initialize({"version": 2})


async def test_observability_list_paths_concatenate_and_signal_lists_can_be_cleared() -> None:
    lower = {
        "components": [
            {
                "kind": "observability",
                "config": {
                    "atof": {"sinks": [{"f": "lower"}], "other": [1]},
                    "opentelemetry": {"logs": {"endpoints": [{"e": "lower"}]}, "metrics": {"endpoints": [{"m": 1}]}},
                },
            }
        ]
    }
    higher = {
        "components": [
            {
                "kind": "observability",
                "config": {
                    "atof": {"sinks": [{"f": "higher"}], "other": [2]},
                    "opentelemetry": {"logs": {"endpoints": []}, "metrics": {"endpoints": [{"m": 2}]}},
                },
            }
        ]
    }
    config = files.layer(lower, higher)["components"][0]["config"]
    assert config["atof"] == {"sinks": [{"f": "higher"}, {"f": "lower"}], "other": [2]}
    assert config["opentelemetry"] == {"logs": {"endpoints": []}, "metrics": {"endpoints": [{"m": 2}, {"m": 1}]}}
    # The same paths of any other kind are ordinary nested lists (replaced).
    for doc in (lower, higher):
        doc["components"][0]["kind"] = "custom"
    assert files.layer(lower, higher)["components"][0]["config"]["atof"]["sinks"] == [{"f": "higher"}]


# --- bad files ------------------------------------------------------------------------------------------------


BAD_VERSION = "invalid config: invalid plugin config version in {path}: "
SERDE = "serialization error: "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = 2\n", "invalid config: plugin config version 2 in {path} is unsupported; expected 1"),
        ("version = '1'\n", BAD_VERSION + 'invalid type: string "1", expected u32'),
        ("version = true\n", BAD_VERSION + "invalid type: boolean `true`, expected u32"),
        ("version = -3\n", BAD_VERSION + "invalid value: integer `-3`, expected u32"),
        ("x = [\n", "invalid config: invalid plugin TOML in {path}: "),
        (
            "[[components]]\nkind='b'\n[[components]]\nkind='a'\n[[components]]\nkind='b'\nenabled=false\n"
            "[[components]]\nkind='a'\n",
            "invalid config: duplicate plugin component kind in {path}: a, b; declare each kind once per plugins.toml",
        ),
        ("[[components]]\nconfig = {}\n", SERDE + "missing field `kind`"),
        ("components = [1]\n", SERDE + "invalid type: integer `1`, expected struct PluginComponentSpec"),
        ("[[components]]\nkind = 'rec'\nconfig = 5\n", SERDE + "invalid type: integer `5`, expected a map"),
        ("[[components]]\nkind = 'rec'\nenabled = 'x'\n", SERDE + 'invalid type: string "x", expected a boolean'),
        ("[policy]\nunknown_component = 'bogus'\n", SERDE + "unknown variant `bogus`"),
        ("policy = 5\n", SERDE + "invalid type: integer `5`, expected struct ConfigPolicy"),
    ],
)
async def test_bad_files_fail_initialize_before_anything_changes(
    rec: Recorder, user_toml: WriteToml, text: str, message: str
) -> None:
    await plugin.initialize({"components": [{"kind": "rec", "config": {"active": True}}]})
    path = user_toml(text)
    with pytest.raises(RuntimeError) as failure:
        await plugin.initialize({})
    assert str(failure.value).startswith(message.format(path=path))
    assert rec.registered == [{"active": True}]
    assert plugin.report() == {"diagnostics": []}  # the previous configuration is untouched


async def test_unreadable_file_is_a_hard_error(user_toml: WriteToml) -> None:
    path = user_toml("")
    path.unlink()
    path.mkdir()
    with pytest.raises(RuntimeError, match=rf"^invalid config: failed to read {path}: Is a directory \(os error 21\)$"):
        await plugin.initialize({})


async def test_ignored_sections_and_toml_dates(rec: Recorder, user_toml: WriteToml) -> None:
    user_toml(
        "[plugins]\n[[plugins.dynamic]]\nmanifest = 'x'\n[[components]]\nkind = 'rec'\n"
        "config = { when = 1979-05-27T07:32:00Z }\n"
    )
    await plugin.initialize({})
    assert rec.registered == [{"when": "1979-05-27T07:32:00+00:00"}]


async def test_an_inherited_file_is_also_logged(user_toml: WriteToml, capfd: pytest.CaptureFixture[str]) -> None:
    from nemo_relay._core import oplog

    oplog.init_from_env({"NEMO_RELAY_LOG": "warn"})
    try:
        path = user_toml("")
        await plugin.initialize({})
    finally:
        oplog.init_from_env({})
    assert f"inherited plugin configuration from discovered file: {path}" in capfd.readouterr().err
