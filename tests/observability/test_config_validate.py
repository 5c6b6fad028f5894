"""Table-driven checks of observability config validation against the reference's diagnostics.

Each document in ``data/config_cases.py`` was validated by the reference wheel; its diagnostics are
stored in ``data/config_cases.json`` (codes, components, fields, levels and exact messages, in order).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from nemo_relay._core.observability import config
from nemo_relay._core.observability.plugin import PLUGIN

_DATA = Path(__file__).with_name("data")
sys.path.insert(0, str(_DATA))
import config_cases as cases  # noqa: E402

sys.path.remove(str(_DATA))

_EXPECTED = json.loads((_DATA / "config_cases.json").read_text())


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cases.ENV.items():
        monkeypatch.setenv(name, value)
    for name in cases.UNSET_ENV:
        monkeypatch.delenv(name, raising=False)


def _unordered(diagnostics: list[dict[str, Any]]) -> bool:
    # The reference walks header maps in hash order: several header diagnostics have no fixed order.
    header_fields = [
        d for d in diagnostics if ".headers." in d.get("field", "") or ".header_env." in d.get("field", "")
    ]
    return len(header_fields) > 1


def _key(diagnostic: dict[str, Any]) -> str:
    return json.dumps(diagnostic, sort_keys=True)


@pytest.mark.parametrize(
    ("document", "expected"),
    list(zip(cases.CASES, _EXPECTED["cases"], strict=True)),
    ids=[f"case{index:03d}" for index in range(len(cases.CASES))],
)
def test_diagnostics_match_reference(document: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    got = config.validate(document, None)
    if _unordered(expected):
        assert sorted(map(_key, got)) == sorted(map(_key, expected))
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    list(zip(cases.POLICIES, _EXPECTED["policies"], strict=True)),
    ids=[f"{p['unknown_field']}-{p['unsupported_value']}" for p in cases.POLICIES],
)
def test_policy_levels_match_reference(policy: dict[str, str], expected: list[dict[str, Any]]) -> None:
    assert config.validate(dict(cases.POLICY_DOC, policy=policy), None) == expected


def test_effective_policy_argument_wins_over_the_components_own() -> None:
    # The plugin host hands validate_with_policy the merged policy; the config's own is not re-read.
    document = {"policy": {"unknown_field": "error"}, "zz": 1}
    merged = {"unknown_component": "warn", "unknown_field": "ignore", "unsupported_value": "error"}
    assert PLUGIN.validate_with_policy(document, merged) == []
    assert config.validate(document, None)[0]["level"] == "error"


def test_missing_policy_keys_default() -> None:
    assert config.validate({"zz": 1}, {})[0]["level"] == "warning"
    assert config.validate({"version": 7}, {"unknown_field": "error"})[0]["level"] == "error"


def test_none_config_is_empty_and_non_objects_are_type_errors() -> None:
    assert config.validate(None) == []
    (diag,) = config.validate([1])  # type: ignore[arg-type]
    assert diag["code"] == "observability.invalid_plugin_config"
    assert diag["message"].endswith("invalid type: sequence, expected a map")


def test_validation_reads_header_env_variables_now(monkeypatch: pytest.MonkeyPatch) -> None:
    document = {"atof": {"sinks": [{"type": "stream", "url": "http://x", "header_env": {"authorization": "TOKEN_X"}}]}}
    monkeypatch.delenv("TOKEN_X", raising=False)
    assert [d["field"] for d in config.validate(document)] == ["sinks[0].header_env.authorization"]
    monkeypatch.setenv("TOKEN_X", "Bearer relay-499")
    assert config.validate(document) == []


def test_messages_never_contain_credential_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_VAR", "  ")
    document = {
        "atof": {"sinks": [{"type": "stream", "url": "http://x", "header_env": {"a": "SECRET_VAR"}}]},
        "atif": {"storage": [{"type": "http", "endpoint": "http://x", "headers": {"authorization": "sekrit\x01"}}]},
    }
    diagnostics = config.validate(document)
    assert [d["field"] for d in diagnostics] == ["sinks[0].header_env.a", "storage[0].headers.authorization"]
    assert "sekrit" not in json.dumps(diagnostics)


def test_bad_v3_values_report_mode_and_template_fields() -> None:
    # Pinned by the reference's tests: both fields are reported for a bad version-3 document.
    document = {
        "version": 3,
        "atof": {"enabled": True, "sinks": [{"type": "file", "mode": "sideways"}]},
        "atif": {"enabled": True, "filename_template": "no-session.json"},
    }
    assert [d["field"] for d in config.validate(document)] == ["sinks[0].mode", "filename_template"]


def test_plugin_object_contract() -> None:
    assert PLUGIN.kind == "observability"
    assert PLUGIN.allows_multiple_components() is False
    assert PLUGIN.validate_with_policy({}, dict(config.DEFAULT_POLICY)) == []
