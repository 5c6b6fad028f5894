"""Global plugin configuration from ``plugins.toml`` files, layered under the programmatic configuration.

Discovery (lowest precedence first): the user file ``$XDG_CONFIG_HOME/nemo-relay/plugins.toml``
(else ``$HOME/.config/...``), then the system file ``/etc/nemo-relay/plugins.toml``. Missing files are
skipped and a file reached twice (symlinks) loads once, at its higher-precedence position. Each file
is checked on its own (TOML, version, one component per kind) and its ``enabled = false`` components
are removed; then the files and finally the programmatic configuration are merged, higher layers
winning. ``validate()`` never reads files; ``initialize()`` does.
"""

from __future__ import annotations

import os
import sys

from nemo_relay._core import jsonconv, oplog
from nemo_relay._core.plugins import model

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

_FILE = ("nemo-relay", "plugins.toml")

if sys.platform == "win32":
    SYSTEM_PATH = os.path.join(os.environ.get("PROGRAMDATA") or "C:\\ProgramData", *_FILE)
else:
    SYSTEM_PATH = "/etc/nemo-relay/plugins.toml"

# Observability config lists that concatenate across layers (other nested lists replace); an explicitly
# empty list in a higher layer clears the lower one for the two signal endpoint lists.
_OBSERVABILITY_CONCAT = frozenset(
    {
        ("atof", "sinks"),
        ("atif", "storage"),
        ("opentelemetry", "endpoints"),
        ("opentelemetry", "traces"),
        ("opentelemetry", "logs", "endpoints"),
        ("opentelemetry", "metrics", "endpoints"),
    }
)
_CLEARED_BY_EMPTY = frozenset({("opentelemetry", "logs", "endpoints"), ("opentelemetry", "metrics", "endpoints")})


def user_path() -> str | None:
    """The user-level ``plugins.toml`` path (it may not exist), or None without a home directory."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg is not None:
        return os.path.join(xdg, *_FILE)
    home = os.environ.get("HOME")
    if not home and sys.platform == "win32":
        home = os.environ.get("USERPROFILE")
    return os.path.join(home, ".config", *_FILE) if home else None


def discovered_files() -> list[str]:
    """Existing ``plugins.toml`` files, lowest precedence first, physical duplicates removed."""
    present = [path for path in (user_path(), SYSTEM_PATH) if path and os.path.exists(path)]
    real = [os.path.realpath(path) for path in present]
    return [path for index, path in enumerate(present) if real[index] not in real[index + 1 :]]


def resolve(document: model.Document) -> tuple[model.Document, list[dict[str, Any]]]:
    """``document`` layered over the discovered files, plus the warnings that layering produced.

    Raises:
        PluginConfigError: a file cannot be read, is not TOML, has a bad version or repeats a kind.
        SerializationError: the merged configuration is not a valid plugin document.
    """
    paths = discovered_files()
    if not paths:
        return document, []
    base: dict[str, Any] = {}
    disabled_from: dict[str, str] = {}
    for path in paths:
        base = layer(base, _load(path, disabled_from))
    diagnostics: list[dict[str, Any]] = []
    for path in paths:
        message = f"inherited plugin configuration from discovered file: {path}"
        oplog.log("warn", "nemo_relay.plugin", "plugin.configuration_inherited", message)
        diagnostics.append(model.diagnostic("warning", "plugin.configuration_inherited", message))
    diagnostics.extend(_reenabled(document, base, disabled_from))
    merged = layer(base, _overlay(document))
    try:
        return model.parse_document(jsonconv.to_json(merged)), diagnostics
    except ValueError as exc:
        raise model.SerializationError(str(exc)) from None


def _load(path: str, disabled_from: dict[str, str]) -> dict[str, Any]:
    import tomllib  # deferred: only needed when a file exists

    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        detail = f"{exc.strerror} (os error {exc.errno})" if exc.errno else str(exc)
        raise model.PluginConfigError(f"failed to read {path}: {detail}") from None
    try:
        data: dict[str, Any] = _plain(tomllib.loads(raw.decode()), 0)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise model.PluginConfigError(f"invalid plugin TOML in {path}: {exc}") from None
    except (RecursionError, _TooDeep):  # (tomllib recurses on nested arrays and inline tables)
        detail = f"values nest deeper than {jsonconv.MAX_DEPTH} levels"
        raise model.PluginConfigError(f"invalid plugin TOML in {path}: {detail}") from None
    if "version" in data:
        try:
            version = model.check_version(data["version"])
        except model.DocumentError as exc:
            raise model.PluginConfigError(f"invalid plugin config version in {path}: {exc}") from None
        if version != 1:
            raise model.PluginConfigError(f"plugin config version {version} in {path} is unsupported; expected 1")
    components = data.get("components")
    if isinstance(components, list):
        seen: set[str] = set()
        repeated: set[str] = set()
        for component in components:
            kind = _kind(component)
            if kind is not None:
                (repeated if kind in seen else seen).add(kind)
        if repeated:
            raise model.PluginConfigError(
                f"duplicate plugin component kind in {path}: {', '.join(sorted(repeated))}; "
                "declare each kind once per plugins.toml"
            )
        kept = []
        for component in components:
            if isinstance(component, dict) and component.get("enabled") is False:
                # Removed: it neither disables lower layers nor contributes fields.
                kind = _kind(component)
                if kind is not None:
                    disabled_from[kind] = path  # the highest-precedence file wins
                continue
            kept.append(component)
        data["components"] = kept
    return data


class _TooDeep(Exception):
    """A TOML value nests deeper than a plugin document may (dotted keys nest without recursion limits)."""


def _plain(value: Any, depth: int) -> Any:
    # TOML dates and times have no JSON form: pass them on as their ISO 8601 text.
    if isinstance(value, (dict, list)) and depth >= jsonconv.MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, dict):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, depth + 1) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _kind(component: object) -> str | None:
    kind = component.get("kind") if isinstance(component, dict) else None
    return kind if isinstance(kind, str) else None


def _overlay(document: model.Document) -> dict[str, Any]:
    # The programmatic layer: defaults are dropped so they do not override the files.
    overlay: dict[str, Any] = {"components": [component.to_json() for component in document.components]}
    if document.version != 1:
        overlay["version"] = document.version
    policy = {key: value for key, value in document.policy.items() if value != model.DEFAULT_POLICY[key]}
    if policy:
        overlay["policy"] = policy
    return overlay


def _reenabled(document: model.Document, base: dict[str, Any], disabled_from: dict[str, str]) -> list[dict[str, Any]]:
    # A programmatic component re-enables a kind some file disabled, unless it lands on a file component
    # that explicitly says `enabled = true`.
    if not disabled_from:
        return []
    below = base.get("components")
    slots = _slots(below if isinstance(below, list) else [])
    seen: dict[str, int] = {}
    diagnostics = []
    for component in document.components:
        kind = component.kind
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        if not component.enabled or kind not in disabled_from:
            continue
        positions = slots.get(kind, [])
        if index < len(positions) and below[positions[index]].get("enabled") is True:  # type: ignore[index]
            continue
        diagnostics.append(
            model.diagnostic(
                "warning",
                "plugin.component_reenabled",
                f"programmatic configuration enabled plugin component '{kind}' and overrode enabled = false "
                f"from {disabled_from[kind]}",
                component=kind,
                field="enabled",
            )
        )
    return diagnostics


# --- merging -----------------------------------------------------------------------------------------------


def layer(lower: dict[str, Any], higher: dict[str, Any]) -> dict[str, Any]:
    """Merge ``higher`` over ``lower``: objects recursively, components by kind, other values replaced."""
    merged = dict(lower)
    for key, value in higher.items():
        below = merged.get(key)
        if key == "components" and isinstance(value, list) and isinstance(below, list):
            merged[key] = _layer_components(below, value)
        elif isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merge_plain(below, value)
        else:
            merged[key] = value
    return merged


def _slots(components: list[Any]) -> dict[str, list[int]]:
    slots: dict[str, list[int]] = {}
    for index, component in enumerate(components):
        kind = _kind(component)
        if kind is not None:
            slots.setdefault(kind, []).append(index)
    return slots


def _layer_components(lower: list[Any], higher: list[Any]) -> list[Any]:
    # The n-th higher component of kind K merges into the n-th lower one; the rest are appended.
    merged = list(lower)
    slots = _slots(lower)
    seen: dict[str, int] = {}
    for component in higher:
        kind = _kind(component)
        if kind is not None:
            index = seen.get(kind, 0)
            seen[kind] = index + 1
            positions = slots.get(kind, [])
            if index < len(positions):
                position = positions[index]
                merged[position] = _layer_component(merged[position], component, kind)
                continue
        merged.append(component)
    return merged


def _layer_component(lower: dict[str, Any], higher: dict[str, Any], kind: str) -> dict[str, Any]:
    merged = dict(lower)
    for key, value in higher.items():
        below = merged.get(key)
        if key == "config" and isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _layer_config(below, value, kind)
        elif isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merge_plain(below, value)
        else:
            merged[key] = value
    return merged


def _layer_config(lower: dict[str, Any], higher: dict[str, Any], kind: str) -> dict[str, Any]:
    merged = dict(lower)
    for key, value in higher.items():
        below = merged.get(key)
        if isinstance(value, list) and isinstance(below, list):
            merged[key] = value + below  # top-level lists concatenate, higher-precedence entries first
        elif isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merge_scoped(below, value, (key,), kind)
        else:
            merged[key] = value
    return merged


def _merge_scoped(lower: dict[str, Any], higher: dict[str, Any], path: tuple[str, ...], kind: str) -> dict[str, Any]:
    merged = dict(lower)
    for key, value in higher.items():
        below = merged.get(key)
        where = (*path, key)
        concatenates = kind == "observability" and where in _OBSERVABILITY_CONCAT
        if concatenates and isinstance(value, list) and isinstance(below, list):
            merged[key] = value + below if value or where not in _CLEARED_BY_EMPTY else []
        elif isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merge_scoped(below, value, where, kind)
        else:
            merged[key] = value
    return merged


def _merge_plain(lower: dict[str, Any], higher: dict[str, Any]) -> dict[str, Any]:
    merged = dict(lower)
    for key, value in higher.items():
        below = merged.get(key)
        merged[key] = _merge_plain(below, value) if isinstance(value, dict) and isinstance(below, dict) else value
    return merged
