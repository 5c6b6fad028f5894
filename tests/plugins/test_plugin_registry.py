"""Plugin kinds and validation: built-ins, Python plugins, unknown and repeated components, policy."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from nemo_relay import plugin
from nemo_relay._core.plugins import registry


class Plain:
    def register(self, config: dict[str, Any], context: Any) -> None:
        pass


class Validating:
    """A Python plugin whose validate returns whatever the test puts in ``result``."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.result = result
        self.error = error

    def validate(self, config: dict[str, Any]) -> Any:
        if self.error is not None:
            raise self.error
        return self.result

    def register(self, config: dict[str, Any], context: Any) -> None:
        pass


def diagnostics_for(kind: str, plugin_object: Any, config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    plugin.register(kind, plugin_object)
    return plugin.validate({"components": [{"kind": kind, "config": config or {}}]})["diagnostics"]


# --- the kind table -------------------------------------------------------------------------------------


def test_list_kinds_is_sorted_and_includes_builtins_and_registered_kinds() -> None:
    assert plugin.list_kinds() == ["fake_builtin"]
    plugin.register("zeta", Plain())
    plugin.register("alpha", Plain())
    assert plugin.list_kinds() == ["alpha", "fake_builtin", "zeta"]
    assert plugin.deregister("zeta") is True
    assert plugin.deregister("zeta") is False
    assert plugin.list_kinds() == ["alpha", "fake_builtin"]


def test_duplicate_kind_is_refused() -> None:
    plugin.register("mine", Plain())
    with pytest.raises(RuntimeError, match=r"^registration failed: plugin 'mine' is already registered$"):
        plugin.register("mine", Plain())
    with pytest.raises(RuntimeError, match=r"^registration failed: plugin 'fake_builtin' is already registered$"):
        plugin.register("fake_builtin", Plain())


def test_register_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="plugin_kind"):
        plugin.register(3, Plain())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        plugin.register("", Plain())
    with pytest.raises(TypeError, match=r"register\(plugin_config, context\)"):
        plugin.register("nope", object())  # type: ignore[arg-type]


def test_deregistered_builtin_comes_back_on_next_use() -> None:
    assert plugin.deregister("fake_builtin") is False  # built-ins load lazily: nothing to remove yet
    assert plugin.list_kinds() == ["fake_builtin"]
    assert plugin.deregister("fake_builtin") is True
    assert "fake_builtin" not in registry._plugins
    assert plugin.list_kinds() == ["fake_builtin"]
    # A builtin kind cannot be taken over even while it is deregistered.
    plugin.deregister("fake_builtin")
    with pytest.raises(RuntimeError, match="already registered"):
        plugin.register("fake_builtin", Plain())


def test_missing_builtin_module_is_simply_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "BUILTIN_MODULES", {"ghost": "nemo_relay._core.no_such_module"})
    monkeypatch.setattr(registry, "_absent", set())
    assert plugin.list_kinds() == []
    report = plugin.validate({"components": [{"kind": "ghost"}]})
    assert report["diagnostics"][0]["code"] == "plugin.unknown_component"


def test_broken_builtin_module_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = types.ModuleType("tests_plugins_broken_builtin")  # no PLUGIN attribute
    monkeypatch.setitem(sys.modules, "tests_plugins_broken_builtin", broken)
    monkeypatch.setattr(registry, "BUILTIN_MODULES", {"broken": "tests_plugins_broken_builtin"})
    report = plugin.validate({})
    assert report == {
        "diagnostics": [
            {
                "code": "plugin.builtin_registration_failed",
                "level": "error",
                "message": "built-in plugin registration failed: module 'tests_plugins_broken_builtin' does not "
                "define PLUGIN for built-in plugin kind 'broken'",
            }
        ]
    }
    with pytest.raises(RuntimeError, match="built-in plugin registration failed"):
        plugin.list_kinds()


def test_real_builtin_table_names_only_existing_kinds(real_builtin_modules: dict[str, str]) -> None:
    assert real_builtin_modules == {"observability": "nemo_relay._core.observability.plugin"}


# --- validation algorithm --------------------------------------------------------------------------------


def test_unknown_components_follow_the_policy() -> None:
    config: dict[str, Any] = {"components": [{"kind": "nope"}, {"kind": "nope", "enabled": False}]}
    warning = {
        "code": "plugin.unknown_component",
        "component": "nope",
        "level": "warning",
        "message": "plugin component kind 'nope' is unsupported",
    }
    assert plugin.validate(config)["diagnostics"] == [warning, warning]  # disabled ones are validated too
    config["policy"] = {"unknown_component": "error"}
    assert [d["level"] for d in plugin.validate(config)["diagnostics"]] == ["error", "error"]
    config["policy"] = {"unknown_component": "ignore"}
    assert plugin.validate(config) == {"diagnostics": []}


def test_unsupported_version() -> None:
    expected = {
        "code": "plugin.unsupported_config_version",
        "field": "version",
        "level": "error",
        "message": "plugin config version 2 is unsupported",
    }
    assert plugin.validate({"version": 2}) == {"diagnostics": [expected]}
    assert plugin.validate({"version": 2, "policy": {"unsupported_value": "warn"}})["diagnostics"][0]["level"] == (
        "warning"
    )
    assert plugin.validate({"version": 2, "policy": {"unsupported_value": "ignore"}}) == {"diagnostics": []}


def test_singleton_builtin_may_appear_once_python_plugins_many_times() -> None:
    plugin.register("python.kind", Plain())
    report = plugin.validate(
        {
            "components": [{"kind": "fake_builtin"}, {"kind": "fake_builtin", "enabled": False}]
            + [{"kind": "python.kind"}] * 2
        }
    )
    assert report == {
        "diagnostics": [
            {
                "code": "plugin.duplicate_component",
                "component": "fake_builtin",
                "level": "error",
                "message": "plugin component kind 'fake_builtin' may only appear once",
            }
        ]
    }


def policy(unknown_component: str = "warn", unknown_field: str = "warn", unsupported_value: str = "error") -> Any:
    return {
        "unknown_component": unknown_component,
        "unknown_field": unknown_field,
        "unsupported_value": unsupported_value,
    }


@pytest.mark.parametrize(
    ("global_policy", "own_policy", "expected"),
    [
        ({}, None, policy()),
        ({}, {"unknown_field": "error"}, policy(unknown_field="error")),
        ({"unknown_field": "ignore"}, {"unknown_field": "error"}, policy(unknown_field="ignore")),
        # A global value equal to the default does not override the component's own.
        ({"unsupported_value": "error"}, {"unsupported_value": "warn"}, policy(unsupported_value="warn")),
        ({}, "not-a-table", policy()),
    ],
)
def test_builtins_validate_with_the_merged_policy(
    fake_builtin: Any, global_policy: dict[str, str], own_policy: Any, expected: dict[str, str]
) -> None:
    config = {} if own_policy is None else {"policy": own_policy}
    plugin.validate({"policy": global_policy, "components": [{"kind": "fake_builtin", "config": config}]})
    assert fake_builtin.validated == [(config, expected)]


def test_builtin_diagnostics_are_reported_and_a_raising_builtin_becomes_a_diagnostic(
    fake_builtin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    finding = {"code": "fake.bad", "component": "fake_builtin", "field": "x", "level": "warning", "message": "m"}
    fake_builtin.validate_result = [finding]
    assert plugin.validate({"components": [{"kind": "fake_builtin"}]}) == {"diagnostics": [finding]}

    def explode(config: Any, policy: Any) -> Any:
        raise KeyError("x")

    monkeypatch.setattr(fake_builtin, "validate_with_policy", explode)
    assert plugin.validate({"components": [{"kind": "fake_builtin"}]})["diagnostics"] == [
        {
            "code": "plugin.validate_failed",
            "component": "fake_builtin",
            "level": "error",
            "message": "plugin 'fake_builtin' validate failed: KeyError: 'x'",
        }
    ]


# --- Python plugin validate ------------------------------------------------------------------------------


def test_python_validate_diagnostics_are_passed_through() -> None:
    result = [
        {"level": "warning", "code": "plugin.python_validate_called", "message": "hi", "component": "mine"},
        ({"level": "error", "code": "c", "message": "m", "field": None, "extra": 1}),
    ]
    assert diagnostics_for("py", Validating(result)) == [
        {"code": "plugin.python_validate_called", "component": "mine", "level": "warning", "message": "hi"},
        {"code": "c", "level": "error", "message": "m"},
    ]


def test_python_validate_gets_a_private_copy_and_never_the_policy() -> None:
    seen: list[Any] = []

    class Mutating:
        def validate(self, config: dict[str, Any]) -> None:
            seen.append(dict(config))
            config["mutated"] = True

        def register(self, config: dict[str, Any], context: Any) -> None:
            pass

    plugin.register("mut", Mutating())
    plugin.validate({"policy": {"unknown_field": "error"}, "components": [{"kind": "mut", "config": {"a": 1}}] * 2})
    assert seen == [{"a": 1}, {"a": 1}]


INVALID = "plugin 'py' validate returned invalid diagnostics: "


@pytest.mark.parametrize(
    ("plugin_object", "message"),
    [
        (Validating(error=ValueError("boom")), "plugin 'py' validate failed: ValueError: boom"),
        (
            Validating([object()]),
            "plugin 'py' validate returned non-JSON diagnostics: ValueError: Failed to convert to JSON",
        ),
        (
            Validating([{"level": "info", "code": "c", "message": "m"}]),
            INVALID + "unknown variant `info`, expected `warning` or `error`",
        ),
        (Validating([{"level": "error", "code": "c"}]), INVALID + "missing field `message`"),
        (
            Validating({"level": "error", "code": "c", "message": "m"}),
            INVALID + "invalid type: map, expected a sequence",
        ),
        (
            Validating([{"level": "error", "code": 3, "message": "m"}]),
            INVALID + "invalid type: integer `3`, expected a string",
        ),
    ],
)
def test_python_validate_failures_become_one_error(plugin_object: Any, message: str) -> None:
    diags = diagnostics_for("py", plugin_object)
    assert len(diags) == 1
    assert diags[0]["code"] == "plugin.validate_failed"
    assert diags[0]["component"] == "py"
    assert diags[0]["level"] == "error"
    assert diags[0]["message"].startswith(message)


def test_python_validate_none_or_missing_means_no_findings() -> None:
    assert diagnostics_for("none", Validating(None)) == []
    assert diagnostics_for("plain", Plain()) == []


def test_async_validate_is_refused_without_a_never_awaited_warning(recwarn: pytest.WarningsRecorder) -> None:
    class AsyncValidate:
        async def validate(self, config: Any) -> list[Any]:
            return []

        def register(self, config: Any, context: Any) -> None:
            pass

    diags = diagnostics_for("async", AsyncValidate())
    assert "validate must be synchronous" in diags[0]["message"]
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
