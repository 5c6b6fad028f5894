"""Fuzz plugin configuration parsing: ``plugin.validate`` documents, ``plugins.toml`` text, and the built-in
observability component's config (validation and activation parsing).

Rules (``nemo_relay.plugin`` docstrings, plugins spec):

* ``plugin.validate(config)`` raises only ``ValueError`` (not a plugin document, or not JSON-convertible:
  cycles and over-deep nesting included) and otherwise returns ``{"diagnostics": [...]}`` of well-formed
  ``ConfigDiagnostic`` dicts; a built-in's validation never crashes (no ``plugin.validate_failed``); every
  component of an unregistered kind is reported unless the policy ignores it.
* The observability config validator returns diagnostics for *any* JSON value, and the activation parser
  raises only ``ObservabilityConfigError`` (a ``ValueError``), always for a config with a type error. A config
  built with the typed ``nemo_relay.observability`` classes never has a type error.
* A discovered ``plugins.toml`` (any bytes) resolves to a document or fails with the documented
  ``invalid config: ...`` / ``serialization error: ...`` ``RuntimeError``; the resolved document validates.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fuzz_payloads import mutated
from fuzz_support import cyclic_values, fuzz_settings, nested_values, python_values, short_texts, texts
from hypothesis import event, given
from hypothesis import strategies as st

from nemo_relay import observability as obs
from nemo_relay import plugin
from nemo_relay._core.observability import config as obs_config
from nemo_relay._core.plugins import files, model
from nemo_relay._core.plugins import registry as plugin_registry

pytestmark = pytest.mark.timeout(120)

_DATA = Path(__file__).resolve().parent.parent / "observability" / "data"
sys.path.insert(0, str(_DATA))
import config_cases  # noqa: E402

sys.path.remove(str(_DATA))

ENV = dict(config_cases.ENV)
DIAGNOSTIC_KEYS = {"code", "component", "field", "level", "message"}


def _vocabulary(value: Any, keys: set[str], strings: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            keys.add(key)
            _vocabulary(item, keys, strings)
    elif isinstance(value, list):
        for item in value:
            _vocabulary(item, keys, strings)
    elif isinstance(value, str):
        strings.add(value)


_KEYS: set[str] = set()
_STRINGS: set[str] = set()
_vocabulary(config_cases.CASES, _KEYS, _STRINGS)
OBS_KEYS = sorted(_KEYS)
OBS_STRINGS = [
    *sorted(_STRINGS),
    "http://127.0.0.1:4318",
    "https://collector.example:4317/v1/traces",
    "grpc://x",
    "ws://x/events",
    "http://0x7f.1/",
    "http://[::1]:99999/",
    "http://%zz/",
    "http://ünïcode.example/",
    "{session_id}",
    "{metadata.user:anon}-{session_id}.json",
    "../escape-{session_id}",
    "{",
    "RELAY_SET",
    "RELAY_UNSET",
    "RELAY_BLANK",
    "bad header",
    "x-ok",
    "line\nbreak",
]

obs_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, 3, 4, 5, -1, 2**32, 2**64 - 1]),
    st.integers(-(2**20), 2**20),
    st.floats(),
    st.sampled_from(OBS_STRINGS),
    texts,
)
obs_keys = st.one_of(st.sampled_from(OBS_KEYS), short_texts)
obs_json = st.recursive(
    obs_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(obs_keys, inner, max_size=4)),
    max_leaves=10,
)
obs_configs = st.one_of(
    mutated(st.sampled_from(config_cases.CASES), values=obs_json, keys=obs_keys),
    mutated(st.sampled_from(config_cases.CASES), max_mutations=1, values=obs_json, keys=obs_keys),
    obs_json,
)
policies = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "unknown_component": st.sampled_from(model.BEHAVIORS),
            "unknown_field": st.sampled_from(model.BEHAVIORS),
            "unsupported_value": st.sampled_from(model.BEHAVIORS),
        }
    ),
)


def check_diagnostics(diagnostics: Any) -> None:
    assert isinstance(diagnostics, list)
    for diag in diagnostics:
        assert isinstance(diag, dict) and {"code", "level", "message"} <= set(diag) <= DIAGNOSTIC_KEYS, diag
        assert diag["level"] in ("warning", "error"), diag
        assert all(isinstance(value, str) for value in diag.values()), diag
        assert list(diag) == sorted(diag), "diagnostic keys are in the reference's (sorted) order"


# --- the observability component config -----------------------------------------------------------------------


@given(config=obs_configs, policy=policies)
@fuzz_settings(150)
def test_observability_config_validation_and_parsing(config: Any, policy: dict[str, str] | None) -> None:
    """Any JSON config gets diagnostics (never an exception); activation parsing raises only
    ``ObservabilityConfigError``, and always does for a config with a type error."""
    with mock.patch.dict(os.environ, ENV):
        for name in config_cases.UNSET_ENV:
            os.environ.pop(name, None)
        diagnostics = obs_config.validate(config, policy)
        check_diagnostics(diagnostics)
        type_error = any(d["code"] == "observability.invalid_plugin_config" for d in diagnostics)
        try:
            obs_config.parse(config)
        except obs_config.ObservabilityConfigError as exc:
            assert isinstance(exc, ValueError) and str(exc)
            event("parse refused the config")
        else:
            assert not type_error, "a config with a type error was parsed for activation"
            event("parsed")


_text_map = st.dictionaries(st.sampled_from(["x-a", "x-b", "bad header", ""]), st.sampled_from(OBS_STRINGS), max_size=2)
_millis = st.integers(0, 2**32)
typed_configs = st.builds(
    obs.ObservabilityConfig,
    version=st.sampled_from([3, 4, 5]),
    atof=st.one_of(
        st.none(),
        st.builds(
            obs.AtofConfig,
            enabled=st.booleans(),
            sinks=st.one_of(
                st.none(),
                st.lists(
                    st.one_of(
                        st.builds(
                            obs.AtofFileSinkConfig,
                            output_directory=st.one_of(st.none(), st.sampled_from(["out", "", "/tmp/x"])),
                            filename=st.one_of(st.none(), st.sampled_from(OBS_STRINGS)),
                            mode=st.sampled_from(["append", "overwrite"]),
                        ),
                        st.builds(
                            obs.AtofStreamSinkConfig,
                            url=st.sampled_from(OBS_STRINGS),
                            transport=st.sampled_from(["http_post", "websocket", "ndjson"]),
                            headers=_text_map,
                            header_env=_text_map,
                            timeout_millis=_millis,
                            field_name_policy=st.sampled_from(["preserve", "replace_dots"]),
                            name=st.one_of(st.none(), short_texts),
                        ),
                    ),
                    max_size=3,
                ),
            ),
        ),
    ),
    atif=st.one_of(
        st.none(),
        st.builds(
            obs.AtifConfig,
            enabled=st.booleans(),
            agent_name=texts,
            agent_version=st.one_of(st.none(), short_texts),
            filename_template=st.sampled_from(OBS_STRINGS),
            tool_definitions=st.one_of(st.none(), st.lists(st.dictionaries(short_texts, short_texts), max_size=2)),
            storage=st.one_of(
                st.none(),
                st.lists(
                    st.one_of(
                        st.builds(obs.HttpStorageConfig, endpoint=st.sampled_from(OBS_STRINGS), headers=_text_map),
                        st.builds(obs.S3StorageConfig, bucket=short_texts, region=st.one_of(st.none(), short_texts)),
                    ),
                    max_size=2,
                ),
            ),
        ),
    ),
    opentelemetry=st.one_of(
        st.none(),
        st.builds(
            obs.OpenTelemetrySectionConfig,
            enabled=st.booleans(),
            endpoints=st.lists(
                st.builds(
                    obs.OpenTelemetryEndpointConfig,
                    type=st.sampled_from(["full", "gen_ai", "openinference"]),
                    endpoint=st.sampled_from(OBS_STRINGS),
                    transport=st.sampled_from(["http_binary", "grpc"]),
                    headers=_text_map,
                    timeout_millis=_millis,
                    max_queue_size=st.one_of(st.none(), _millis),
                ),
                max_size=2,
            ),
            logs=st.one_of(
                st.none(),
                st.builds(
                    obs.OpenTelemetryLogSectionConfig,
                    enabled=st.booleans(),
                    minimum_severity=st.sampled_from(["trace", "debug", "info", "warn", "warning", "error"]),
                ),
            ),
            metrics=st.one_of(
                st.none(),
                st.builds(
                    obs.OpenTelemetryMetricSectionConfig,
                    enabled=st.booleans(),
                    temporality=st.sampled_from(["cumulative", "delta", "low_memory"]),
                ),
            ),
        ),
    ),
    enable_full_payloads=st.booleans(),
)


@given(config=typed_configs)
@fuzz_settings(40)
def test_typed_observability_configs_never_have_type_errors(config: obs.ObservabilityConfig) -> None:
    """The typed builder always produces a document of the right shape (values may still be unsupported)."""
    document = {"components": [obs.ComponentSpec(config).to_dict()]}
    with mock.patch.dict(os.environ, ENV):
        report = plugin.validate(document)
    check_diagnostics(report["diagnostics"])
    codes = {d["code"] for d in report["diagnostics"]}
    assert "observability.invalid_plugin_config" not in codes, report
    assert "plugin.validate_failed" not in codes, report


# --- plugin documents ------------------------------------------------------------------------------------------

kinds = st.one_of(st.just("observability"), st.sampled_from(["tagger", "", "Observability", "x.y"]), short_texts)
components = st.one_of(
    st.fixed_dictionaries(
        {"kind": kinds},
        optional={
            "enabled": st.one_of(st.booleans(), st.none(), obs_scalars),
            "config": st.one_of(obs_configs, st.none()),
        },
    ),
    st.builds(
        plugin.ComponentSpec,
        kind=kinds,
        enabled=st.booleans(),
        config=st.dictionaries(obs_keys, obs_json, max_size=3),
    ),
    obs_json,
)
documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "version": st.one_of(st.just(1), obs_scalars),
            "components": st.one_of(st.lists(components, max_size=3), obs_json),
            "policy": st.one_of(policies, obs_json),
        },
    ),
    st.builds(
        plugin.PluginConfig,
        version=st.one_of(st.just(1), st.integers(0, 3)),
        components=st.lists(components, max_size=3),
        policy=st.builds(
            plugin.ConfigPolicy,
            unknown_component=st.sampled_from(model.BEHAVIORS),
            unknown_field=st.sampled_from(model.BEHAVIORS),
            unsupported_value=st.sampled_from(model.BEHAVIORS),
        ),
    ),
    python_values(10),
    cyclic_values(),
    cyclic_values().map(lambda value: {"components": [{"kind": "observability", "config": {"extra": value}}]}),
    nested_values(200, 3000).map(lambda case: {"components": [{"kind": "x", "config": {"deep": case[1]}}]}),
)


@given(config=documents)
@fuzz_settings(150)
def test_plugin_validate_raises_only_value_errors(config: Any) -> None:
    """``plugin.validate`` returns well-formed diagnostics or raises ``ValueError``; built-in validation never
    crashes, and each component of an unregistered kind is reported (unless the policy ignores them)."""
    registered = set(plugin.list_kinds())
    with mock.patch.dict(os.environ, ENV):
        try:
            report = plugin.validate(config)
        except ValueError as exc:
            assert str(exc)
            event("refused the document")
            return
    event("validated")
    assert set(report) == {"diagnostics"}
    diagnostics = report["diagnostics"]
    check_diagnostics(diagnostics)
    assert not any(d["code"] == "plugin.validate_failed" for d in diagnostics), diagnostics
    document = model.to_document(config)  # (it parsed once, so it parses again)
    unknown = [c.kind for c in document.components if c.kind not in registered]
    reported = [d["component"] for d in diagnostics if d["code"] == "plugin.unknown_component"]
    assert reported == ([] if document.policy["unknown_component"] == "ignore" else unknown)


# --- plugins.toml ----------------------------------------------------------------------------------------------


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str | None:
    """TOML text for a JSON value (``None`` has no TOML form: the entry is left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_key(value)
    if isinstance(value, list):
        items = [text for text in map(_toml_value, value) if text is not None]
        return "[" + ", ".join(items) + "]"
    entries = [f"{_toml_key(k)} = {text}" for k, v in value.items() if (text := _toml_value(v)) is not None]
    return "{" + ", ".join(entries) + "}"


def to_toml(document: dict[str, Any]) -> str:
    lines = []
    for key, value in document.items():
        if key == "components" and isinstance(value, list) and all(isinstance(c, dict) for c in value):
            continue
        text = _toml_value(value)
        if text is not None:
            lines.append(f"{_toml_key(key)} = {text}")
    components = document.get("components")
    if isinstance(components, list) and all(isinstance(c, dict) for c in components):
        for component in components:
            lines.append("")
            lines.append("[[components]]")
            for key, value in component.items():
                text = _toml_value(value)
                if text is not None:
                    lines.append(f"{_toml_key(key)} = {text}")
    return "\n".join(lines) + "\n"


toml_documents = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.just(1), st.just(1), obs_scalars),
        "components": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"kind": kinds},
                    optional={"enabled": st.one_of(st.booleans(), obs_scalars), "config": obs_configs},
                ),
                max_size=3,
            ),
            obs_json,
        ),
        "policy": st.one_of(policies, obs_json),
    },
)


@st.composite
def toml_files(draw: st.DrawFn) -> bytes:
    text = to_toml(draw(toml_documents))
    edit = draw(st.sampled_from(["none", "none", "none", "truncate", "insert", "duplicate", "deep", "dotted"]))
    if edit == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif edit == "insert":
        position = draw(st.integers(0, len(text)))
        text = text[:position] + draw(st.sampled_from(list('[]{}="\n,.#\\\x00\x7f'))) + text[position:]
    elif edit == "duplicate" and text.strip():
        lines = text.splitlines()
        line = draw(st.sampled_from(lines))
        text = text + line + "\n"
    elif edit == "deep":
        depth = draw(st.sampled_from([10, 255, 256, 300, 5000, 100_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a = ", "}")]))
        text += "deep = " + opener * depth + "1" + closer * depth + "\n"
    elif edit == "dotted":
        depth = draw(st.sampled_from([10, 255, 256, 5000]))
        text += "a." * depth + "b = 1\n"
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and draw(st.booleans()):
        data = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff", b""])) + data + draw(st.sampled_from([b"", b"\xc3"]))
    return data


@given(data=toml_files(), overlay=st.one_of(st.just({}), toml_documents))
@fuzz_settings(120)
def test_plugins_toml_resolves_or_fails_as_documented(data: bytes, overlay: dict[str, Any]) -> None:
    """Any ``plugins.toml`` bytes, layered under a programmatic document, resolve to a document that validates,
    or fail with the documented ``invalid config: ...`` or ``serialization error: ...`` ``RuntimeError``."""
    try:
        programmatic = model.to_document(overlay)
    except ValueError:
        programmatic = model.to_document({})
    with tempfile.TemporaryDirectory() as home:
        path = Path(home, "nemo-relay", "plugins.toml")
        path.parent.mkdir()
        path.write_bytes(data)
        environment = {"XDG_CONFIG_HOME": home, **ENV}
        with mock.patch.dict(os.environ, environment), mock.patch.object(files, "SYSTEM_PATH", home + "/absent.toml"):
            try:
                document, diagnostics = files.resolve(programmatic)
            except (model.PluginConfigError, model.SerializationError) as exc:
                assert isinstance(exc, RuntimeError)
                assert str(exc).startswith(("invalid config: ", "serialization error: ")), str(exc)
                event("refused the file")
                return
            event("resolved")
            check_diagnostics(diagnostics)
            assert {d["code"] for d in diagnostics} <= {"plugin.configuration_inherited", "plugin.component_reenabled"}
            assert isinstance(document, model.Document)
            validated = plugin_registry.validate(document)
    check_diagnostics(validated)
    assert not any(d["code"] == "plugin.validate_failed" for d in validated), validated
