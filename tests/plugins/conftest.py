"""Plugin-test isolation: no real plugins.toml, a fake built-in, and nothing left active afterwards."""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nemo_relay import plugin
from nemo_relay._core.diagnostics import Teardown
from nemo_relay._core.plugins import activation, files, registry

FAKE_MODULE = "tests_plugins_fake_builtin"
_REAL_BUILTIN_MODULES = dict(registry.BUILTIN_MODULES)


class FakeBuiltin:
    """A built-in-shaped plugin (kind ``fake_builtin``, singleton) whose behaviour tests can steer.

    ``config`` keys understood by ``register``: ``subscriber`` (register one named like that),
    ``teardown`` (``"removed" | "delivery" | "not_removed" | "raise"``), ``diagnostic`` (record a
    runtime diagnostic with this code), ``fail`` (raise this message after registering).
    """

    kind = "fake_builtin"

    def __init__(self) -> None:
        self.validated: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.registered: list[dict[str, Any]] = []
        self.torn_down: list[float | None] = []
        self.events: list[Any] = []
        self.validate_result: list[dict[str, Any]] = []
        self.contexts: list[Any] = []

    def allows_multiple_components(self) -> bool:
        return False

    def validate_with_policy(self, config: dict[str, Any], policy: dict[str, str]) -> list[dict[str, Any]]:
        self.validated.append((config, policy))
        return list(self.validate_result)

    def register(self, config: dict[str, Any], context: Any) -> None:
        self.registered.append(config)
        self.contexts.append(context)
        if "subscriber" in config:
            context.register_subscriber(config["subscriber"], self.events.append)
        if "teardown" in config:
            context.add_teardown("shutdown", self._teardown(config["teardown"], context))
        if "diagnostic" in config:
            context.diagnostics.record(config["diagnostic"], "fake_builtin", "something was dropped", field="sink")
        if "fail" in config:
            raise RuntimeError(config["fail"])

    def _teardown(self, how: str, context: Any) -> Callable[[float | None], Teardown]:
        def shutdown(seconds_left: float | None) -> Teardown:
            self.torn_down.append(seconds_left)
            if how == "delivery":
                return Teardown.removed_with_error("2 events were not delivered")
            if how == "not_removed":
                return Teardown.not_removed("exporter thread is stuck")
            if how == "raise":
                raise OSError("disk full")
            return Teardown.removed()

        return shutdown


@pytest.fixture(autouse=True)
def _isolated_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Private config dirs, a private system file path, the fake built-in only, and a clean slate after."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(files, "SYSTEM_PATH", str(tmp_path / "etc" / "nemo-relay" / "plugins.toml"))
    module = types.ModuleType(FAKE_MODULE)
    module.PLUGIN = FakeBuiltin()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, FAKE_MODULE, module)
    monkeypatch.setattr(registry, "BUILTIN_MODULES", {"fake_builtin": FAKE_MODULE})
    saved = dict(registry._plugins)
    saved_builtins = set(registry._builtin_kinds)
    registry._plugins.clear()
    registry._builtin_kinds.clear()
    try:
        yield
    finally:
        activation.reset_for_tests()
        # A test may leave a failing teardown behind; its registrations are gone anyway.
        with contextlib.suppress(RuntimeError):
            plugin.clear(timeout=10)
        activation.reset_for_tests()
        registry._plugins.clear()
        registry._plugins.update(saved)
        registry._builtin_kinds.clear()
        registry._builtin_kinds.update(saved_builtins)


@pytest.fixture
def real_builtin_modules() -> dict[str, str]:
    """The built-in table as shipped (tests run against a fake one)."""
    return dict(_REAL_BUILTIN_MODULES)


@pytest.fixture
def fake_builtin() -> FakeBuiltin:
    """The fake built-in plugin behind kind ``fake_builtin``."""
    return sys.modules[FAKE_MODULE].PLUGIN  # type: ignore[no-any-return]


@pytest.fixture
def user_toml(tmp_path: Path) -> Callable[[str], Path]:
    """Write the user-level plugins.toml (``$XDG_CONFIG_HOME/nemo-relay/plugins.toml``)."""

    def write(text: str) -> Path:
        path = tmp_path / "xdg" / "nemo-relay" / "plugins.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def system_toml(tmp_path: Path) -> Callable[[str], Path]:
    """Write the system-level plugins.toml (higher precedence than the user file)."""

    def write(text: str) -> Path:
        path = Path(files.SYSTEM_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
