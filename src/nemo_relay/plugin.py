"""Plugins: validate a plugin configuration, activate it, inspect its report, and tear it down.

A plugin configuration lists *components*, each a plugin ``kind`` with its own ``config``. Built-in
plugins (``observability``) are available by kind; Python plugins join with ``register(kind,
plugin)``. ``initialize`` layers the configuration over the discovered ``plugins.toml`` files,
validates it, and activates every enabled component in order: each component's ``register`` receives
a ``PluginContext`` whose registrations are published under the component's namespace (e.g.
``nemo-relay-plugin.v1.my_kind:1:my_name``) and are undone, in reverse order, by ``clear`` or by the
next ``initialize``. Changes are transactional: after any failure nothing is half-installed.

Example::

    from nemo_relay import plugin

    class Tagger:
        def register(self, config, context):
            context.register_tool_request_intercept(
                "tag", 10, False, lambda name, args: {**args, "tag": config["tag"]}
            )

    plugin.register("tagger", Tagger())
    async with plugin.plugin({"components": [{"kind": "tagger", "config": {"tag": "a"}}]}) as report:
        ...  # tools.execute(...) now sees the tag
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, NotRequired, Protocol, TypedDict

from nemo_relay import subscribers as _subscribers
from nemo_relay._core import aio as _aio
from nemo_relay._core import args as _args
from nemo_relay._core.plugins import activation as _activation
from nemo_relay._core.plugins import dynamic as _dynamic
from nemo_relay._core.plugins import model as _model
from nemo_relay._core.plugins import registry as _registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Callable, Sequence
    from typing import Any

    from nemo_relay._core.aliases import (
        Event,
        EventMetadataInjectorCallback,
        EventSanitizeGuardrail,
        LlmConditionalExecutionGuardrail,
        LlmExecutionIntercept,
        LlmRequestIntercept,
        LlmSanitizeRequestGuardrail,
        LlmSanitizeResponseGuardrail,
        LlmStreamExecutionIntercept,
        ToolConditionalExecutionGuardrail,
        ToolExecutionIntercept,
        ToolRequestIntercept,
        ToolSanitizeGuardrail,
    )
    from nemo_relay._core.types import JsonObject
    from nemo_relay.runtime_registrations import ConditionalMiddlewareGuardrail, RuntimeRegistrationKind

__all__ = [
    "ComponentSpec",
    "ConfigDiagnostic",
    "ConfigPolicy",
    "ConfigReport",
    "DynamicPluginActivationSpec",
    "DynamicPluginKind",
    "Plugin",
    "PluginConfig",
    "PluginContext",
    "PluginHostActivation",
    "RuntimeDiagnostic",
    "UnsupportedBehavior",
    "clear",
    "clear_async",
    "deregister",
    "initialize",
    "initialize_with_dynamic_plugins",
    "list_kinds",
    "load_dynamic_plugin_activation_specs",
    "plugin",
    "register",
    "report",
    "validate",
]

UnsupportedBehavior = Literal["ignore", "warn", "error"]
"""What an unknown or unsupported configuration item produces: nothing, a warning, or an error."""

DynamicPluginKind = Literal["rust_dynamic", "worker"]
"""How a manifest-backed plugin is loaded: a native library or an out-of-process gRPC worker."""

_normalize = _model.normalize  # the reference's private name; config helpers of other modules use it


class ConfigDiagnostic(TypedDict):
    """One validation finding; ``component`` and ``field`` are present only when known."""

    level: Literal["warning", "error"]
    code: str
    message: str
    component: NotRequired[str]
    field: NotRequired[str]


class RuntimeDiagnostic(TypedDict):
    """A problem found while running (e.g. an export failure), aggregated by code, component and field."""

    code: str
    component: str
    message: str
    count: int
    field: NotRequired[str]
    session_id: NotRequired[str]


class ConfigReport(TypedDict):
    """Validation diagnostics; ``runtime_diagnostics`` appears only once something was recorded."""

    diagnostics: list[ConfigDiagnostic]
    runtime_diagnostics: NotRequired[list[RuntimeDiagnostic]]


@dataclass(slots=True)
class ConfigPolicy:
    """How unknown components, unknown fields and unsupported values are reported.

    Args:
        unknown_component: For components whose kind is not registered (default ``"warn"``).
        unknown_field: For unknown keys in built-in plugin configs (default ``"warn"``).
        unsupported_value: For unsupported values, e.g. a document version (default ``"error"``).
    """

    unknown_component: UnsupportedBehavior = "warn"
    unknown_field: UnsupportedBehavior = "warn"
    unsupported_value: UnsupportedBehavior = "error"

    def to_dict(self) -> dict[str, str]:
        """All three fields."""
        return {
            "unknown_component": self.unknown_component,
            "unknown_field": self.unknown_field,
            "unsupported_value": self.unsupported_value,
        }


@dataclass(slots=True)
class ComponentSpec:
    """One component of a plugin configuration.

    Args:
        kind: The registered plugin kind.
        enabled: Disabled components are validated but never registered.
        config: The component's JSON object (``None`` values are kept).
    """

    kind: str
    enabled: bool = True
    config: JsonObject = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "enabled", "config"}`` with dataclasses in ``config`` turned into dicts."""
        return {"kind": self.kind, "enabled": self.enabled, "config": _model.normalize(self.config, True)}


@dataclass(slots=True)
class PluginConfig:
    """A plugin configuration document.

    Args:
        version: Document version; only 1 is supported.
        components: Components in activation order: ``ComponentSpec``, other modules' component
            helpers (anything with ``to_dict()``), or plain dicts.
        policy: The global unsupported-configuration policy.
    """

    version: int = 1
    components: list[object] = field(default_factory=list)
    policy: ConfigPolicy = field(default_factory=ConfigPolicy)

    def to_dict(self) -> dict[str, Any]:
        """``{"version", "components", "policy"}`` as plain data."""
        return {
            "version": self.version,
            "components": [_model.normalize(component) for component in self.components],
            "policy": _model.normalize(self.policy),
        }


@dataclass(slots=True)
class DynamicPluginActivationSpec:
    """A manifest-backed plugin to activate with ``initialize_with_dynamic_plugins``.

    Args:
        plugin_id: The plugin id (it becomes the plugin kind).
        kind: ``"rust_dynamic"`` or ``"worker"``.
        manifest_ref: Path of the plugin's ``relay-plugin.toml``.
        environment_ref: Managed environment reference, if any.
        config: The component config (``None`` values are kept).
    """

    plugin_id: str
    kind: DynamicPluginKind
    manifest_ref: str
    environment_ref: str | None = None
    config: JsonObject = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data; ``environment_ref`` only when set."""
        data: dict[str, Any] = {
            "plugin_id": self.plugin_id,
            "kind": self.kind,
            "manifest_ref": self.manifest_ref,
            "config": _model.normalize(self.config, True),
        }
        if self.environment_ref is not None:
            data["environment_ref"] = self.environment_ref
        return data


class PluginContext(Protocol):
    """Component-scoped registration, handed to ``Plugin.register``.

    Each method registers globally at once, under the component's namespace plus ``name``; names
    only need to be unique within the component and surface. Everything is undone in reverse order
    when the configuration is cleared or replaced, or when ``register`` raises. Priorities: lower
    runs first. Use the context only while ``register`` runs.
    """

    def register_subscriber(self, name: str, callback: Callable[[Event], None]) -> None:
        """Receive every event (an observer; its exceptions are reported, not raised)."""
        ...

    def register_conditional_middleware_guardrail(
        self,
        name: str,
        kinds: set[RuntimeRegistrationKind],
        registration_name: str,
        guardrail: ConditionalMiddlewareGuardrail,
    ) -> None:
        """Switch off the global registration ``registration_name`` (an effective name) while it says so.

        Raises:
            ValueError: ``unknown runtime registration kind: <kind>``.
        """
        ...

    def register_event_metadata_injector(
        self, name: str, priority: int, callback: EventMetadataInjectorCallback
    ) -> None:
        """Add flat metadata to events (existing keys are kept)."""
        ...

    def register_mark_sanitize_guardrail(self, name: str, priority: int, callback: EventSanitizeGuardrail) -> None:
        """Rewrite the recorded fields of marks."""
        ...

    def register_scope_sanitize_start_guardrail(
        self, name: str, priority: int, callback: EventSanitizeGuardrail
    ) -> None:
        """Rewrite the recorded fields of scope start events."""
        ...

    def register_scope_sanitize_end_guardrail(self, name: str, priority: int, callback: EventSanitizeGuardrail) -> None:
        """Rewrite the recorded fields of scope end events."""
        ...

    def register_tool_sanitize_request_guardrail(
        self, name: str, priority: int, callback: ToolSanitizeGuardrail
    ) -> None:
        """Rewrite recorded tool arguments (the tool still gets the real ones)."""
        ...

    def register_tool_sanitize_response_guardrail(
        self, name: str, priority: int, callback: ToolSanitizeGuardrail
    ) -> None:
        """Rewrite recorded tool results (the caller still gets the real ones)."""
        ...

    def register_tool_conditional_execution_guardrail(
        self, name: str, priority: int, callback: ToolConditionalExecutionGuardrail
    ) -> None:
        """Block tool calls: ``callback(tool_name, args)`` returns a reason, or None to allow."""
        ...

    def register_llm_sanitize_request_guardrail(
        self, name: str, priority: int, callback: LlmSanitizeRequestGuardrail
    ) -> None:
        """Rewrite recorded LLM requests (None: no sanitized replacement)."""
        ...

    def register_llm_sanitize_response_guardrail(
        self, name: str, priority: int, callback: LlmSanitizeResponseGuardrail
    ) -> None:
        """Rewrite recorded LLM responses."""
        ...

    def register_llm_conditional_execution_guardrail(
        self, name: str, priority: int, callback: LlmConditionalExecutionGuardrail
    ) -> None:
        """Block LLM calls: ``callback(request)`` returns a reason, or None to allow."""
        ...

    def register_llm_request_intercept(
        self, name: str, priority: int, break_chain: bool, callback: LlmRequestIntercept
    ) -> None:
        """Rewrite the real LLM request; ``break_chain`` stops later request intercepts."""
        ...

    def register_llm_execution_intercept(self, name: str, priority: int, callback: LlmExecutionIntercept) -> None:
        """Wrap buffered LLM execution: ``callback(name, request, next_call)``."""
        ...

    def register_llm_stream_execution_intercept(
        self, name: str, priority: int, callback: LlmStreamExecutionIntercept
    ) -> None:
        """Wrap streamed LLM execution: ``callback(request, next_call)`` returns an async iterator."""
        ...

    def register_tool_request_intercept(
        self, name: str, priority: int, break_chain: bool, callback: ToolRequestIntercept
    ) -> None:
        """Rewrite the real tool arguments; ``break_chain`` stops later request intercepts."""
        ...

    def register_tool_execution_intercept(self, name: str, priority: int, callback: ToolExecutionIntercept) -> None:
        """Wrap tool execution: ``callback(name, args, next_call)``."""
        ...


class Plugin(Protocol):
    """A Python plugin: ``register`` is required.

    It may also define ``validate(plugin_config) -> list[ConfigDiagnostic] | None``, called by
    ``validate``/``initialize`` for each component of its kind with a private copy of the config.
    Its diagnostics are reported as returned; if it raises or returns something that is not a list
    of diagnostics, one ``plugin.validate_failed`` error is reported instead. (It is not part of
    the protocol so that plugins without it type-check.)
    """

    def register(self, plugin_config: JsonObject, context: PluginContext) -> None:
        """Register the component's callbacks through ``context`` (synchronously).

        If it raises, whatever it registered is rolled back and activation fails with
        ``RuntimeError("registration failed: <Type>: <message>")``.
        """
        ...


def validate(config: PluginConfig | JsonObject) -> ConfigReport:
    """Validate a configuration without activating it (``plugins.toml`` files are not read).

    Returns:
        ``{"diagnostics": [...]}``: for unknown components (per ``policy.unknown_component``), a
        version other than 1, repeated single-instance kinds, and every plugin's own findings.

    Raises:
        ValueError: ``config`` is not a plugin document (e.g. ``components`` is not a list).
    """
    document = _model.to_document(config)
    return {"diagnostics": _registry.validate(document)}  # type: ignore[typeddict-item]


async def initialize(config: PluginConfig | JsonObject) -> ConfigReport:
    """Layer ``config`` over the discovered ``plugins.toml`` files, validate it and activate it.

    An active configuration is replaced: it is torn down first, and activated again if the new one
    fails. Runs on the plugin worker thread; cancelling the caller does not interrupt it.

    Returns:
        The report: file warnings (``plugin.configuration_inherited``, ``plugin.component_reenabled``)
        followed by validation diagnostics.

    Raises:
        ValueError: ``config`` is not a plugin document.
        RuntimeError: ``invalid config: <error messages>`` (nothing changes), a discovered file is
            invalid, ``not found: plugin component '<kind>' is not registered``, or
            ``registration failed: ...`` when a plugin's ``register`` raises.
    """
    document = _model.to_document(config)
    future = _activation.submit(lambda: _activation.initialize_job(document))
    report: Any = await _activation.wait_async(future, None)
    return report  # type: ignore[no-any-return]


def clear(*, timeout: float | None = None) -> None:
    """Deliver queued events, then tear the active configuration down (a no-op when none is active).

    Args:
        timeout: Seconds the flush and teardown may take together (default 30).

    Raises:
        RuntimeError: Called on a thread running an event loop (use ``await clear_async()``), or
            ``registration failed: plugin teardown failed: ...``; ``report()`` then keeps the report
            if it has runtime diagnostics.
    """
    if _aio.running_loop() is not None:
        raise RuntimeError(_activation.CLEAR_ON_LOOP)
    seconds = _activation.teardown_seconds(timeout)
    deadline = time.monotonic() + seconds
    flushed = _subscribers.flush(timeout=seconds)
    future = _activation.submit_clear(deadline, None if flushed else _flush_timeout(seconds))
    try:
        _activation.wait(future, _wait_budget(deadline))
    except TimeoutError:
        raise _activation.overran(seconds) from None


async def clear_async(*, timeout: float | None = None) -> None:
    """Like ``clear``, without blocking the event loop; concurrent callers share one teardown.

    Queued events are delivered first (async subscribers run on this loop meanwhile). Cancelling the
    caller does not interrupt the teardown.

    Args:
        timeout: Seconds the flush and teardown may take together (default 30).
    """
    seconds = _activation.teardown_seconds(timeout)
    deadline = time.monotonic() + seconds
    flushed = await _subscribers.flush_async(timeout=seconds)
    future = _activation.submit_clear(deadline, None if flushed else _flush_timeout(seconds))
    try:
        await _activation.wait_async(future, _wait_budget(deadline))
    except TimeoutError:
        raise _activation.overran(seconds) from None


def _flush_timeout(seconds: float) -> str:
    return f"queued events were not delivered within {seconds:g}s"


def _wait_budget(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic()) + _activation.WAIT_GRACE


@asynccontextmanager
async def plugin(config: PluginConfig | JsonObject, *, clear_on_exit: bool = True) -> AsyncIterator[ConfigReport]:
    """``async with plugin(config) as report``: initialize on entry; flush and clear on exit.

    Args:
        config: The configuration to activate.
        clear_on_exit: Clear when the block exits (even on error).
    """
    report = await initialize(config)
    try:
        yield report
        await _subscribers.flush_async()
    finally:
        if clear_on_exit:
            await clear_async()


def report() -> ConfigReport | None:
    """The active configuration's report (with ``runtime_diagnostics`` once any were recorded).

    After a failed teardown whose report had runtime diagnostics, that report; otherwise None.
    A snapshot: nothing is validated again.
    """
    return _activation.report()  # type: ignore[return-value]


def list_kinds() -> list[str]:
    """Every registered plugin kind, sorted (built-ins included)."""
    return _registry.kinds()


def register(plugin_kind: str, plugin: Plugin) -> None:
    """Make a Python plugin available as ``plugin_kind``.

    Raises:
        RuntimeError: ``registration failed: plugin '<kind>' is already registered`` (built-in kinds
            are always taken).
        TypeError: ``plugin`` has no callable ``register``.
        ValueError: ``plugin_kind`` is empty.
    """
    kind = _args.text(plugin_kind, "plugin_kind")
    if not kind:
        raise ValueError("argument 'plugin_kind': expected a non-empty plugin kind")
    if not callable(getattr(plugin, "register", None)):
        raise TypeError(
            f"argument 'plugin': expected an object with a register(plugin_config, context) method, "
            f"got {type(plugin).__name__}"
        )
    _registry.register(kind, plugin)


def deregister(plugin_kind: str) -> bool:
    """Remove a plugin kind; its active registrations stay until the next clear or replacement.

    Returns:
        True if the kind was registered. A built-in kind comes back on the next list, validate or
        initialize.
    """
    return _registry.deregister(_args.text(plugin_kind, "plugin_kind"))


def load_dynamic_plugin_activation_specs(
    plugin_config_path: str | os.PathLike[str],
) -> list[DynamicPluginActivationSpec]:
    """Read the ``[[plugins.dynamic]]`` entries of a ``plugins.toml`` as activation specs, in file order.

    Each entry has ``manifest`` (relative to the file) and optional ``config``; the plugin id and kind
    come from the referenced ``relay-plugin.toml``.

    Raises:
        FileNotFoundError: The file or a manifest does not exist.
        ValueError: Invalid TOML, an unsupported ``version``, a malformed entry or manifest, or a
            duplicate plugin id.
    """
    return [
        DynamicPluginActivationSpec(record.plugin_id, record.kind, record.manifest_ref, None, record.config)  # type: ignore[arg-type]
        for record in _dynamic.load_specs(plugin_config_path)
    ]


async def initialize_with_dynamic_plugins(
    config: PluginConfig | JsonObject,
    dynamic_plugins: Sequence[DynamicPluginActivationSpec | JsonObject],
) -> PluginHostActivation:
    """Activate manifest-backed plugins on top of ``config`` (layered over ``plugins.toml`` files).

    The specs and base configuration are checked as the reference does, but loading native or worker
    plugins is not supported by this implementation yet: a valid request raises
    ``NotImplementedError`` and leaves nothing registered.

    Raises:
        ValueError: No specs, a duplicate plugin id, a malformed spec (``unknown variant ...``) or an
            invalid base configuration.
        FileNotFoundError: A manifest does not exist.
        RuntimeError: A static configuration is already active (``conflict: ...``), or
            ``NotImplementedError`` for a valid request.
    """
    document = _model.to_document(config)
    if isinstance(dynamic_plugins, (str, bytes, dict)) or not hasattr(dynamic_plugins, "__iter__"):
        raise ValueError(_model.unexpected(_model.normalize(dynamic_plugins), "a sequence"))
    records = [_dynamic.spec_record(_spec_data(item)) for item in dynamic_plugins]
    _dynamic.check_records(records)
    future = _activation.submit(lambda: _dynamic.activation_job(document, records))
    return PluginHostActivation(await _activation.wait_async(future, None))


def _spec_data(item: object) -> object:
    if isinstance(item, DynamicPluginActivationSpec):
        return item.to_dict()
    return _model.normalize(item) if isinstance(item, dict) else item


class PluginHostActivation:
    """A live dynamic plugin activation; ``close()`` it, or use it as ``async with activation:``."""

    __slots__ = ("_host", "_closing")

    def __init__(self, host: Any) -> None:
        self._host = host
        self._closing: Any = None

    @property
    def report(self) -> ConfigReport:
        """The activation's configuration report."""
        return self._host.report  # type: ignore[no-any-return]

    @property
    def is_active(self) -> bool:
        """False once teardown has begun."""
        return self._closing is None and bool(self._host.is_active)

    async def close(self) -> None:
        """Tear the activation down; idempotent, and concurrent callers share one teardown.

        Cancelling a waiting caller does not cancel the teardown.
        """
        if self._closing is None:
            self._closing = _activation.submit(self._host.close)
        await _activation.wait_async(self._closing, None)

    async def __aenter__(self) -> PluginHostActivation:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
