"""The plugin document: normalisation of user input, typed parsing, policy merge, diagnostics, errors.

Input flows one way: ``normalize`` (dataclasses and ``to_dict()`` objects become plain data, ``None``
is dropped except inside component ``config``), then JSON conversion, then ``parse_document`` into a
``Document``. Parse errors read like the reference's (serde) messages, e.g.
``invalid type: map, expected a sequence`` or ``missing field `kind```.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass

from nemo_relay._core import jsonconv
from nemo_relay._core.codecs import rustfmt
from nemo_relay._core.errors import JsonConversionError, RelayError, RelayRuntimeError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.types import JsonValue

BEHAVIORS = ("ignore", "warn", "error")
DEFAULT_POLICY: dict[str, str] = {"unknown_component": "warn", "unknown_field": "warn", "unsupported_value": "error"}


# --- errors (message prefixes follow the reference's error kinds) ----------------------------------------


class PluginConfigError(RelayRuntimeError):
    """The plugin configuration (or a discovered ``plugins.toml``) is invalid."""

    error_type = "invalid_config"
    prefix = "invalid config: "


class PluginRegistrationError(RelayRuntimeError):
    """A plugin could not be registered, activated or torn down."""

    error_type = "registration_failed"
    prefix = "registration failed: "


class PluginConflictError(RelayRuntimeError):
    """The requested change conflicts with the current plugin state."""

    error_type = "conflict"
    prefix = "conflict: "


class SerializationError(RelayRuntimeError):
    """The layered configuration could not be read as a plugin document."""

    error_type = "serialization_error"
    prefix = "serialization error: "


class DocumentError(ValueError):
    """A value does not have the shape of a plugin document (serde-style message)."""


def type_name(exc: BaseException) -> str:
    """The exception type as callers see it: our typed errors show their builtin base (``RuntimeError``)."""
    if isinstance(exc, RelayError):
        for base in type(exc).__mro__:
            if base.__module__ == "builtins":
                return base.__name__
    return type(exc).__name__


# --- normalisation -----------------------------------------------------------------------------------------


def normalize(value: Any, preserve_nulls: bool = False) -> Any:
    """Plain data for ``value``: ``to_dict()`` objects and dataclasses become dicts, lists are walked.

    ``None`` values in dicts and dataclasses are dropped unless ``preserve_nulls``; everything under a
    key named ``config`` keeps its nulls (component configuration may use them on purpose).

    Raises:
        JsonConversionError: a container contains itself, or nests deeper than the JSON conversion allows
            (the same ``ValueError`` texts the conversion that follows would give).
    """
    return _normalize(value, preserve_nulls, set(), 0)


def _normalize(value: Any, preserve_nulls: bool, active: set[int], depth: int) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, (dict, type)):
        return to_dict()
    is_data = is_dataclass(value) and not isinstance(value, type)
    if not (is_data or isinstance(value, (list, tuple, dict))):
        return value
    if depth >= jsonconv.MAX_DEPTH:
        raise JsonConversionError(f"payload nests deeper than {jsonconv.MAX_DEPTH} levels; flatten it or pass a string")
    if id(value) in active:
        raise JsonConversionError("circular reference detected")
    active.add(id(value))
    depth += 1
    try:
        if is_data:
            return {
                f.name: _normalize(item, preserve_nulls, active, depth)
                for f in fields(value)
                if (item := getattr(value, f.name)) is not None or preserve_nulls
            }
        if isinstance(value, (list, tuple)):
            return [_normalize(item, preserve_nulls, active, depth) for item in value]
        return {
            key: _normalize(item, preserve_nulls or key == "config", active, depth)
            for key, item in value.items()
            if item is not None or preserve_nulls or key == "config"
        }
    finally:
        active.discard(id(value))


# --- the typed document ------------------------------------------------------------------------------------


class Component:
    """One component: ``kind``, ``enabled``, and its JSON ``config`` object."""

    __slots__ = ("kind", "enabled", "config")

    def __init__(self, kind: str, enabled: bool, config: dict[str, Any]) -> None:
        self.kind = kind
        self.enabled = enabled
        self.config = config

    def to_json(self) -> dict[str, Any]:
        """The component as the reference serialises it."""
        return {"kind": self.kind, "enabled": self.enabled, "config": jsonconv.copy_json(self.config)}


class Document:
    """A parsed plugin configuration: version, ordered components, global policy."""

    __slots__ = ("version", "components", "policy")

    def __init__(self, version: int, components: list[Component], policy: dict[str, str]) -> None:
        self.version = version
        self.components = components
        self.policy = policy


def to_document(config: object) -> Document:
    """Normalise, JSON-convert and parse user input (a ``PluginConfig`` or a dict).

    Raises:
        ValueError: the input is not JSON or not shaped like a plugin document.
    """
    return parse_document(jsonconv.to_json(normalize(config)))


def parse_document(data: JsonValue) -> Document:
    """Parse a JSON value into a ``Document``; unknown keys are ignored, as the reference does."""
    if not isinstance(data, dict):
        raise DocumentError(unexpected(data, "struct PluginConfig"))
    version = _u32(data["version"]) if data.get("version") is not None else 1
    raw_components = data.get("components")
    if raw_components is None:
        raw_components = []
    if not isinstance(raw_components, list):
        raise DocumentError(unexpected(raw_components, "a sequence"))
    components = [_parse_component(item) for item in raw_components]
    raw_policy = data.get("policy")
    policy = dict(DEFAULT_POLICY)
    if raw_policy is not None:
        if not isinstance(raw_policy, dict):
            raise DocumentError(unexpected(raw_policy, "struct ConfigPolicy"))
        for key in DEFAULT_POLICY:
            if raw_policy.get(key) is not None:
                policy[key] = behavior(raw_policy[key])
    return Document(version, components, policy)


def _parse_component(item: JsonValue) -> Component:
    if not isinstance(item, dict):
        raise DocumentError(unexpected(item, "struct PluginComponentSpec"))
    kind = item.get("kind")
    if kind is None:
        raise DocumentError("missing field `kind`")
    if not isinstance(kind, str):
        raise DocumentError(unexpected(kind, "a string"))
    enabled = item.get("enabled")
    if enabled is None:
        enabled = True
    elif not isinstance(enabled, bool):
        raise DocumentError(unexpected(enabled, "a boolean"))
    config = item.get("config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise DocumentError(unexpected(config, "a map"))
    return Component(kind, enabled, config)


def behavior(value: JsonValue) -> str:
    """An ``UnsupportedBehavior`` value."""
    if not isinstance(value, str):
        raise DocumentError(unexpected(value, "a string"))
    if value not in BEHAVIORS:
        raise DocumentError(f"unknown variant `{value}`, expected one of `ignore`, `warn`, `error`")
    return value


def _u32(value: JsonValue) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentError(unexpected(value, "u32"))
    if not 0 <= value <= 2**32 - 1:
        raise DocumentError(f"invalid value: integer `{value}`, expected u32")
    return value


def check_version(value: JsonValue) -> int:
    """A document ``version`` value (any u32; only 1 is supported, which validation reports)."""
    return _u32(value)


def unexpected(value: object, expected: str) -> str:
    """serde's ``invalid type: <what was found>, expected <what was wanted>``."""
    return f"invalid type: {describe(value)}, expected {expected}"


def describe(value: object) -> str:
    """serde's wording for a JSON value of the wrong type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        text = repr(value)
        return f"floating point `{text if '.' in text or 'e' in text else text + '.0'}`"
    if isinstance(value, str):
        return f"string {rustfmt.debug_str(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


# --- diagnostics -------------------------------------------------------------------------------------------


def diagnostic(
    level: str, code: str, message: str, *, component: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """A ``ConfigDiagnostic``; absent optional keys are omitted, keys in the reference's (sorted) order."""
    diag: dict[str, Any] = {"code": code}
    if component is not None:
        diag["component"] = component
    if field is not None:
        diag["field"] = field
    diag["level"] = level
    diag["message"] = message
    return diag


def policy_diagnostic(
    behavior: str, code: str, message: str, *, component: str | None = None, field: str | None = None
) -> dict[str, Any] | None:
    """A diagnostic at the level a policy behaviour asks for (``ignore`` gives None)."""
    if behavior == "ignore":
        return None
    return diagnostic("error" if behavior == "error" else "warning", code, message, component=component, field=field)


def parse_diagnostics(data: JsonValue) -> list[dict[str, Any]]:
    """Read a plugin's ``validate`` result (already JSON) as diagnostics; extra keys are ignored."""
    if not isinstance(data, list):
        raise DocumentError(unexpected(data, "a sequence"))
    parsed: list[dict[str, Any]] = []
    for item in data:
        if not isinstance(item, dict):
            raise DocumentError(unexpected(item, "struct ConfigDiagnostic"))
        level = item.get("level")
        if level is not None:
            if not isinstance(level, str):
                raise DocumentError(unexpected(level, "a string"))
            if level not in ("warning", "error"):
                raise DocumentError(f"unknown variant `{level}`, expected `warning` or `error`")
        values: dict[str, str | None] = {}
        for key in ("code", "message", "component", "field"):
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                raise DocumentError(unexpected(value, "a string"))
            values[key] = value
        for key in ("level", "code", "message"):
            if item.get(key) is None:
                raise DocumentError(f"missing field `{key}`")
        parsed.append(
            diagnostic(
                str(level),
                str(values["code"]),
                str(values["message"]),
                component=values["component"],
                field=values["field"],
            )
        )
    return parsed


def error_messages(diagnostics: list[dict[str, Any]]) -> list[str]:
    """Messages of the error-level diagnostics, in order."""
    return [diag["message"] for diag in diagnostics if diag.get("level") == "error"]


# --- policy ------------------------------------------------------------------------------------------------


def apply_global_config_policy(global_policy: dict[str, str], component_policy: object) -> dict[str, str]:
    """The policy a built-in validates with: a global value that is not the default wins, else the component's.

    ``component_policy`` is the component's own ``config["policy"]``; a malformed one contributes
    nothing here (the built-in reports it while validating its config).
    """
    own = component_policy if isinstance(component_policy, dict) else {}
    merged: dict[str, str] = {}
    for key, default in DEFAULT_POLICY.items():
        value = global_policy.get(key, default)
        if value == default:
            candidate = own.get(key)
            value = candidate if candidate in BEHAVIORS else default
        merged[key] = value
    return merged
