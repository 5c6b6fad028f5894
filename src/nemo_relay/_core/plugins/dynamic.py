"""Manifest-backed plugins (native ``rust_dynamic`` libraries and gRPC ``worker`` processes).

``load_specs`` reads ``[[plugins.dynamic]]`` entries of a ``plugins.toml`` and the identity of each
referenced ``relay-plugin.toml`` (pure Python, no lifecycle state). ``activation_job`` performs the
host-side checks of a dynamic activation in the reference's order; loading native libraries or
starting workers is not implemented by this package, so a valid request ends with
``NotImplementedError`` (a ``RuntimeError``) and nothing registered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nemo_relay._core import jsonconv
from nemo_relay._core.plugins import activation, files, model

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

KINDS = ("rust_dynamic", "worker")
_ENTRY_KEYS = frozenset({"manifest", "config"})


class SpecRecord:
    """A checked activation spec: plugin id, kind, manifest reference, environment reference, config."""

    __slots__ = ("plugin_id", "kind", "manifest_ref", "environment_ref", "config")

    def __init__(
        self, plugin_id: str, kind: str, manifest_ref: str, environment_ref: str | None, config: dict[str, Any]
    ) -> None:
        self.plugin_id = plugin_id
        self.kind = kind
        self.manifest_ref = manifest_ref
        self.environment_ref = environment_ref
        self.config = config


# --- plugins.toml [[plugins.dynamic]] ----------------------------------------------------------------------


def load_specs(path: str | os.PathLike[str]) -> list[SpecRecord]:
    """Specs for every ``[[plugins.dynamic]]`` entry of ``path``, in file order.

    Raises:
        FileNotFoundError: ``path`` or a referenced manifest does not exist.
        ValueError: invalid TOML, unsupported version, a malformed entry or manifest, a duplicate id.
    """
    import tomllib  # deferred: only this helper and initialize() read TOML

    source = Path(path).resolve()
    try:
        document = tomllib.loads(source.read_bytes().decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"invalid plugin TOML in {source}: {exc}") from None
    version = document.get("version", 1)
    if type(version) is not int or version != 1:
        raise ValueError(f"plugin config version {version!r} in {source} is unsupported; expected 1")

    def invalid(message: str) -> ValueError:
        return ValueError(f"invalid dynamic plugin config in {source}: {message}")

    plugins = document.get("plugins", {})
    if not isinstance(plugins, dict):
        raise invalid("'plugins' must be a table")
    entries = plugins.get("dynamic", [])
    if not isinstance(entries, list):
        raise invalid("'plugins.dynamic' must be an array of tables")
    records: list[SpecRecord] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"plugins.dynamic[{index}]"
        if not isinstance(entry, dict):
            raise invalid(f"{where} must be a table")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise invalid(f"{where} has unknown fields: {', '.join(unknown)}")
        manifest = entry.get("manifest")
        if not isinstance(manifest, str) or not manifest.strip():
            raise invalid(f"{where}.manifest must be a non-empty string")
        manifest_path = (source.parent / manifest).resolve()
        plugin_id, kind = manifest_identity(manifest_path)
        config = entry.get("config", {})
        if not isinstance(config, dict):
            raise invalid(f"{where}.config must be a table")
        try:
            config = json.loads(json.dumps(config, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise invalid(f"{where}.config must contain JSON values: {exc}") from None
        if plugin_id in seen:
            raise ValueError(f"duplicate dynamic plugin id '{plugin_id}' in {source}")
        seen.add(plugin_id)
        records.append(SpecRecord(plugin_id, kind, str(manifest_path), None, config))
    return records


def manifest_identity(path: Path) -> tuple[str, str]:
    """``(plugin id, kind)`` from a ``relay-plugin.toml`` (only ``[plugin]`` is read here)."""
    import tomllib

    try:
        manifest = tomllib.loads(path.read_bytes().decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"invalid dynamic plugin manifest in {path}: {exc}") from None

    def invalid(message: str) -> ValueError:
        return ValueError(f"invalid dynamic plugin manifest in {path}: {message}")

    table = manifest.get("plugin")
    if not isinstance(table, dict):
        raise invalid("'plugin' must be a table")
    plugin_id = table.get("id")
    if not isinstance(plugin_id, str) or not plugin_id.strip():
        raise invalid("'plugin.id' must be a non-empty string")
    kind = table.get("kind")
    if kind not in KINDS:
        raise invalid("'plugin.kind' must be 'rust_dynamic' or 'worker'")
    return plugin_id.strip(), str(kind)


# --- host activation ---------------------------------------------------------------------------------------


def spec_record(item: object) -> SpecRecord:
    """Check one activation spec (already a plain dict, or anything else, which is refused)."""
    if not isinstance(item, dict):
        raise ValueError(model.unexpected(item, "struct DynamicPluginActivationSpec"))
    values: dict[str, Any] = {}
    for key in ("plugin_id", "kind", "manifest_ref", "environment_ref"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(model.unexpected(value, "a string"))
        if key == "kind" and value is not None and value not in KINDS:
            raise ValueError(f"unknown variant `{value}`, expected `rust_dynamic` or `worker`")
        values[key] = value
    config = item.get("config")
    if config is not None and not isinstance(config, dict):
        raise ValueError(model.unexpected(config, "a map"))
    for key in ("plugin_id", "kind", "manifest_ref"):
        if values[key] is None:
            raise ValueError(f"missing field `{key}`")
    return SpecRecord(
        values["plugin_id"],
        values["kind"],
        values["manifest_ref"],
        values["environment_ref"],
        jsonconv.to_json(config or {}),  # type: ignore[arg-type]
    )


def check_records(records: list[SpecRecord]) -> None:
    """A dynamic activation needs at least one spec, each with its own plugin id."""
    if not records:
        raise ValueError(
            "invalid config: dynamic plugin activation requires at least one dynamic plugin; use plugin "
            "initialization for a static-only configuration"
        )
    seen: set[str] = set()
    for record in records:
        if record.plugin_id in seen:
            raise ValueError(f"invalid config: duplicate dynamic plugin id '{record.plugin_id}'")
        seen.add(record.plugin_id)


def activation_job(document: model.Document, records: list[SpecRecord]) -> None:
    """The host-side steps of a dynamic activation, up to loading (runs on the plugin worker)."""
    activation.check_mutable()
    try:
        files.resolve(document)
    except (model.PluginConfigError, model.SerializationError) as exc:
        raise ValueError(str(exc)) from None
    if activation.is_active():
        raise model.PluginConflictError(
            "a static plugin configuration is already active; to combine static and dynamic plugins, provide the "
            "static components as the base configuration to dynamic plugin activation before calling plugin "
            "initialization"
        )
    # Natives load before workers; a missing manifest is reported before anything else happens.
    for kind, label in (("rust_dynamic", "native"), ("worker", "worker")):
        for record in records:
            if record.kind == kind and not os.path.exists(record.manifest_ref):
                raise FileNotFoundError(
                    f"not found: {label} plugin load failed: dynamic plugin manifest '{record.manifest_ref}' "
                    "does not exist"
                )
    first = records[0]
    raise NotImplementedError(
        f"cannot load {first.kind} plugin '{first.plugin_id}' from {first.manifest_ref}: this pure-Python "
        "nemo_relay does not load native (rust_dynamic) or worker plugins yet; implement the plugin in Python, "
        "add it with plugin.register(kind, plugin) and list it as a component in plugin.initialize(), or run it "
        "with the reference nemo-relay package"
    )
