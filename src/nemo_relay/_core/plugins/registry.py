"""Plugin kinds: the kind -> plugin table, lazily loaded built-ins, Python plugins, and validation.

A plugin, as the host sees it, has ``kind``, ``allows_multiple_components()``,
``validate_with_policy(config, policy) -> [ConfigDiagnostic]`` and ``register(config, context)``.
Built-ins implement that directly and live in modules named by ``BUILTIN_MODULES`` (each exposes
``PLUGIN``); they are imported the first time kinds are listed, validated or activated, never at
``import nemo_relay``. User plugins registered with ``plugin.register`` are wrapped in ``PythonPlugin``.
"""

from __future__ import annotations

import threading

from nemo_relay._core import aio, jsonconv
from nemo_relay._core.plugins import model

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.plugins.context import ComponentContext

# kind -> module exposing PLUGIN. Later issues add adaptive, pii_redaction, pricing, nemo_guardrails.
BUILTIN_MODULES: dict[str, str] = {"observability": "nemo_relay._core.observability.plugin"}

_lock = threading.RLock()
_plugins: dict[str, Any] = {}  # kind -> plugin object (built-in or PythonPlugin)
_builtin_kinds: set[str] = set()
_absent: set[str] = set()  # built-in modules that do not exist in this installation


class PythonPlugin:
    """Adapts a user object with ``register`` (and optionally ``validate``) to the host's plugin shape.

    Python plugins never see the global policy, may appear in several components, and get a fresh
    copy of their component config on every call.
    """

    __slots__ = ("kind", "target")

    def __init__(self, kind: str, target: Any) -> None:
        self.kind = kind
        self.target = target

    def allows_multiple_components(self) -> bool:
        """Python plugins may be configured more than once."""
        return True

    def validate_with_policy(self, config: dict[str, Any], policy: dict[str, str]) -> list[dict[str, Any]]:
        """Run the object's ``validate``; any failure becomes one ``plugin.validate_failed`` error."""
        validate = getattr(self.target, "validate", None)
        if validate is None:
            return []
        kind = self.kind
        try:
            result = validate(config)  # the host passes a private copy
        except Exception as exc:
            return [self._failed(f"plugin '{kind}' validate failed: {model.type_name(exc)}: {exc}")]
        if aio.is_awaitable(result):
            aio.close_awaitable(result)
            return [
                self._failed(
                    f"plugin '{kind}' validate returned non-JSON diagnostics: TypeError: validate returned an "
                    "awaitable; Plugin.validate must be synchronous"
                )
            ]
        if result is None:
            return []
        try:
            data = jsonconv.to_json(result)
        except Exception as exc:
            problem = f"{model.type_name(exc)}: {exc}"
            return [self._failed(f"plugin '{kind}' validate returned non-JSON diagnostics: {problem}")]
        try:
            return model.parse_diagnostics(data)
        except model.DocumentError as exc:
            return [self._failed(f"plugin '{kind}' validate returned invalid diagnostics: {exc}")]

    def register(self, config: dict[str, Any], context: ComponentContext) -> None:
        """Run the object's ``register``; any exception becomes ``registration failed: <Type>: <message>``."""
        try:
            result = self.target.register(config, context)  # the host passes a private copy
        except Exception as exc:
            raise model.PluginRegistrationError(f"{model.type_name(exc)}: {exc}") from exc
        if aio.is_awaitable(result):
            aio.close_awaitable(result)
            raise model.PluginRegistrationError(
                f"plugin '{self.kind}' register returned an awaitable; Plugin.register must be synchronous: "
                "register callbacks directly and do async setup before plugin.initialize()"
            )

    def _failed(self, message: str) -> dict[str, Any]:
        return model.diagnostic("error", "plugin.validate_failed", message, component=self.kind)


# --- the table -------------------------------------------------------------------------------------------


def ensure_builtins() -> str | None:
    """Register every available built-in that is missing (again, after ``deregister``); the error text or None."""
    with _lock:
        for kind in BUILTIN_MODULES:
            problem = _ensure_builtin(kind)
            if problem is not None:
                return problem
    return None


def _ensure_builtin(kind: str) -> str | None:
    if kind in _plugins:
        return None
    module_name = BUILTIN_MODULES[kind]
    if module_name in _absent:
        return None
    import importlib  # deferred: only needed the first time built-ins are loaded

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            _absent.add(module_name)  # this installation has no such built-in: the kind is simply absent
            return None
        return f"{model.type_name(exc)}: {exc}"
    except Exception as exc:
        return f"{model.type_name(exc)}: {exc}"
    plugin = getattr(module, "PLUGIN", None)
    if plugin is None:
        return f"module '{module_name}' does not define PLUGIN for built-in plugin kind '{kind}'"
    _plugins[kind] = plugin
    _builtin_kinds.add(kind)
    return None


def register(kind: str, plugin: object) -> None:
    """Add a Python plugin under ``kind``.

    Raises:
        RuntimeError: ``registration failed: plugin '<kind>' is already registered`` (built-in kinds
            are always taken).
    """
    register_plugin(kind, PythonPlugin(kind, plugin))


def register_plugin(kind: str, plugin: object) -> None:
    """Add a host-shaped plugin object under ``kind`` (``PythonPlugin`` or a dynamic plugin adapter)."""
    with _lock:
        if kind in BUILTIN_MODULES:
            problem = _ensure_builtin(kind)
            if problem is not None:
                raise model.PluginRegistrationError(f"built-in plugin registration failed: {problem}")
        if kind in _plugins:
            raise model.PluginRegistrationError(f"plugin '{kind}' is already registered")
        _plugins[kind] = plugin


def deregister(kind: str) -> bool:
    """Remove ``kind``; active registrations stay until the next clear or replacement.

    A deregistered built-in comes back the next time kinds are listed, validated or activated.
    """
    with _lock:
        _builtin_kinds.discard(kind)
        return _plugins.pop(kind, None) is not None


def lookup(kind: str) -> Any:
    """The plugin registered under ``kind``, or None."""
    return _plugins.get(kind)


def kinds() -> list[str]:
    """Sorted registered kinds, built-ins included.

    Raises:
        RuntimeError: a built-in plugin module exists but could not be loaded.
    """
    problem = ensure_builtins()
    if problem is not None:
        raise model.PluginRegistrationError(f"built-in plugin registration failed: {problem}")
    with _lock:
        return sorted(_plugins)


def is_builtin(kind: str) -> bool:
    """Whether ``kind`` is currently served by a built-in plugin."""
    return kind in _builtin_kinds


# --- validation --------------------------------------------------------------------------------------------


def validate(document: model.Document) -> list[dict[str, Any]]:
    """Every diagnostic for ``document``: version, multiplicity, then each component in order."""
    problem = ensure_builtins()
    if problem is not None:
        return [
            model.diagnostic(
                "error", "plugin.builtin_registration_failed", f"built-in plugin registration failed: {problem}"
            )
        ]
    policy = document.policy
    diagnostics: list[dict[str, Any]] = []
    if document.version != 1:
        diag = model.policy_diagnostic(
            policy["unsupported_value"],
            "plugin.unsupported_config_version",
            f"plugin config version {document.version} is unsupported",
            field="version",
        )
        if diag is not None:
            diagnostics.append(diag)
    counts: dict[str, int] = {}
    for component in document.components:
        counts[component.kind] = counts.get(component.kind, 0) + 1
    for kind, count in counts.items():
        plugin = lookup(kind)
        if count > 1 and plugin is not None and not plugin.allows_multiple_components():
            diagnostics.append(
                model.diagnostic(
                    "error",
                    "plugin.duplicate_component",
                    f"plugin component kind '{kind}' may only appear once",
                    component=kind,
                )
            )
    for component in document.components:
        plugin = lookup(component.kind)
        if plugin is None:
            diag = model.policy_diagnostic(
                policy["unknown_component"],
                "plugin.unknown_component",
                f"plugin component kind '{component.kind}' is unsupported",
                component=component.kind,
            )
            if diag is not None:
                diagnostics.append(diag)
            continue
        diagnostics.extend(_validate_component(plugin, component, policy))
    return diagnostics


def _validate_component(plugin: Any, component: model.Component, policy: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(plugin, PythonPlugin):
        policy = model.apply_global_config_policy(policy, component.config.get("policy"))
    try:
        return list(plugin.validate_with_policy(jsonconv.copy_json(component.config), policy))
    except Exception as exc:  # a built-in's bug must surface as a diagnostic, not a crash
        return [
            model.diagnostic(
                "error",
                "plugin.validate_failed",
                f"plugin '{component.kind}' validate failed: {model.type_name(exc)}: {exc}",
                component=component.kind,
            )
        ]
