"""Package surface: stdlib-only import, exports and docstrings, compatibility names, run_sync, typing marker, errors."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import importlib.resources
import inspect
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import nemo_relay
from nemo_relay import ScopeType, errors, scope, subscribers

SRC = str(Path(nemo_relay.__file__).resolve().parents[1])
PUBLIC_MODULES = ["nemo_relay", "nemo_relay.scope", "nemo_relay.subscribers", "nemo_relay.scope_local",
                  "nemo_relay.errors", "nemo_relay.utils"]  # fmt: skip


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMO_RELAY_")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


# --- import footprint ---------------------------------------------------------------------------------

IMPORT_PROBE = """
import json, sys, threading
before = set(sys.modules)
import nemo_relay
loaded = sorted(set(sys.modules) - before)
print(json.dumps({"loaded": loaded, "threads": [t.name for t in threading.enumerate()]}))
"""


@pytest.mark.timeout(60)
def test_import_loads_only_the_standard_library():
    result = run_python(IMPORT_PROBE)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)["loaded"]
    assert "nemo_relay" in loaded
    foreign = sorted({name.split(".")[0] for name in loaded} - set(sys.stdlib_module_names) - {"nemo_relay"})
    assert foreign == [], f"import nemo_relay pulled in non-stdlib modules: {foreign}"


@pytest.mark.timeout(60)
def test_import_starts_no_thread():
    result = run_python(IMPORT_PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["threads"] == ["MainThread"]


@pytest.mark.timeout(60)
def test_import_is_quiet():
    result = run_python("import nemo_relay")
    assert result.returncode == 0
    assert result.stdout == result.stderr == ""


# --- exports and docstrings ---------------------------------------------------------------------------


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_name_in_all_exists_once(module_name):
    module = importlib.import_module(module_name)
    names = module.__all__
    assert len(names) == len(set(names)), "duplicate entries in __all__"
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []


def _documentable(value: object) -> bool:
    # Classes, functions and modules need a docstring; type aliases, TypeVars and ContextVars do not.
    return inspect.isclass(value) or inspect.isfunction(value) or inspect.ismodule(value)


def _own_doc(value: object) -> str | None:
    doc = value.__dict__.get("__doc__") if inspect.isclass(value) else getattr(value, "__doc__", None)
    return doc if isinstance(doc, str) else None


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_names_have_docstrings(module_name):
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    undocumented = [
        name
        for name in module.__all__
        if _documentable(getattr(module, name)) and not (_own_doc(getattr(module, name)) or "").strip()
    ]
    assert undocumented == []


def test_the_docstring_check_sees_classes_functions_and_modules():
    checked = {name for name in nemo_relay.__all__ if _documentable(getattr(nemo_relay, name))}
    assert {"ScopeType", "ScopeEvent", "get_scope_stack", "subscribers"} <= checked
    assert "Json" not in checked  # a type alias


def test_core_reference_names_are_exported():
    expected = {
        "scope",
        "scope_local",
        "subscribers",
        "ScopeStack",
        "PropagationContext",
        "create_scope_stack",
        "get_scope_stack",
        "scope_stack_active",
        "propagate_scope_to_thread",
        "set_thread_scope_stack",
        "use_scope_stack",
        "fork_asyncio_context",
        "capture_propagation_context",
        "capture_propagation_context_with_root",
        "capture_traceparent",
        "create_scope_stack_from_propagation",
        "ScopeType",
        "ScopeAttributes",
        "ToolAttributes",
        "LLMAttributes",
        "LogSeverity",
        "MetricKind",
        "MetricValueType",
        "MetricTemporality",
        "MetricMeasurement",
        "DataSchema",
        "ScopeEvent",
        "MarkEvent",
        "ScopeHandle",
        "Json",
        "JsonPrimitive",
        "JsonValue",
        "JsonObject",
        "UnsupportedBehavior",
    }
    assert expected <= set(nemo_relay.__all__)


@pytest.mark.parametrize(
    "name",
    ["runtime", "OpenAIChatCodec", "OpenAIResponsesCodec", "AnthropicMessagesCodec", "GeminiGenerateContentCodec"],
)
def test_names_the_reference_does_not_have_are_absent(name):
    assert not hasattr(nemo_relay, name)


def test_subscribers_exports_its_api():
    assert set(subscribers.__all__) == {
        "DispatcherStats",
        "configure",
        "deregister",
        "flush",
        "flush_async",
        "register",
        "stats",
    }
    assert inspect.iscoroutinefunction(subscribers.flush_async)


# --- compatibility names ------------------------------------------------------------------------------


def test_native_module_exposes_thread_binding_helpers():
    from nemo_relay import _native

    assert callable(_native.capture_thread_scope_stack)
    assert callable(_native.restore_thread_scope_stack)


def test_capture_and_restore_thread_binding_round_trip():
    from nemo_relay._native import capture_thread_scope_stack, restore_thread_scope_stack

    out: dict[str, object] = {}

    def worker() -> None:  # a new thread starts with an empty context and no binding
        out["active_before"] = nemo_relay.scope_stack_active()
        binding = capture_thread_scope_stack()
        stack = nemo_relay.create_scope_stack()
        nemo_relay.set_thread_scope_stack(stack)
        out["active_bound"] = nemo_relay.scope_stack_active()
        out["bound_is_stack"] = nemo_relay.propagate_scope_to_thread() is stack
        inner = capture_thread_scope_stack()
        restore_thread_scope_stack(binding)
        out["active_restored"] = nemo_relay.scope_stack_active()
        restore_thread_scope_stack(inner)
        out["rebound_is_stack"] = nemo_relay.propagate_scope_to_thread() is stack

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert out == {
        "active_before": False,
        "active_bound": True,
        "bound_is_stack": True,
        "active_restored": False,
        "rebound_is_stack": True,
    }


def test_scope_stack_var_is_the_scope_stack_context_variable():
    var = nemo_relay._scope_stack_var
    assert isinstance(var, contextvars.ContextVar)
    assert var.name == "scope_stack"
    sentinel = object()
    assert contextvars.Context().run(var.get, sentinel) is sentinel  # no default

    def install() -> bool:
        stack = nemo_relay.create_scope_stack()
        var.set(stack)
        handle = scope.push("via-var", ScopeType.Function)
        return nemo_relay.get_scope_stack() is stack and scope.get_handle().uuid == handle.uuid

    assert contextvars.Context().run(install) is True


def test_native_flush_is_a_module_level_name_of_subscribers():
    assert callable(subscribers._native_flush)
    assert subscribers._native_flush() is True


# --- utils.run_sync -----------------------------------------------------------------------------------


def test_run_sync_without_a_loop_shares_the_scope_stack():
    from nemo_relay.utils import run_sync

    stack = nemo_relay.get_scope_stack()
    handle = scope.push("outer", ScopeType.Agent)

    async def probe() -> tuple[bool, str]:
        await asyncio.sleep(0)
        return nemo_relay.get_scope_stack() is stack, scope.get_handle().uuid

    try:
        assert run_sync(probe()) == (True, handle.uuid)
    finally:
        scope.pop(handle)


async def test_run_sync_inside_a_running_loop_shares_the_scope_stack():
    from nemo_relay.utils import run_sync

    stack = nemo_relay.get_scope_stack()
    handle = scope.push("outer", ScopeType.Agent)
    caller = threading.get_ident()

    async def probe() -> tuple[bool, str, bool]:
        await asyncio.sleep(0)
        return nemo_relay.get_scope_stack() is stack, scope.get_handle().uuid, threading.get_ident() != caller

    try:
        assert run_sync(probe()) == (True, handle.uuid, True)
    finally:
        scope.pop(handle)


def test_run_sync_propagates_exceptions_and_context_values():
    from nemo_relay.utils import run_sync

    var: contextvars.ContextVar[str] = contextvars.ContextVar("test_run_sync_var", default="unset")
    var.set("caller")

    async def read() -> str:
        return var.get()

    async def fail() -> None:
        raise KeyError("inside")

    assert run_sync(read()) == "caller"
    with pytest.raises(KeyError, match="inside"):
        run_sync(fail())


# --- typing marker ------------------------------------------------------------------------------------


def test_py_typed_ships_in_the_package():
    marker = importlib.resources.files("nemo_relay").joinpath("py.typed")
    assert marker.is_file()


# --- errors -------------------------------------------------------------------------------------------

ERROR_TABLE = [
    ("AlreadyExistsError", RuntimeError, "already_exists", "already exists: "),
    ("NotFoundError", RuntimeError, "not_found", "not found: "),
    ("InvalidArgumentError", RuntimeError, "invalid_argument", "invalid argument: "),
    ("GuardrailRejectedError", RuntimeError, "guardrail_rejected", "guardrail rejected: "),
    ("InternalError", RuntimeError, "internal_error", "internal error: "),
    ("InvalidValueError", ValueError, "invalid_argument", "invalid argument: "),
    ("JsonConversionError", ValueError, "invalid_argument", "Failed to convert to JSON: "),
]


@pytest.mark.parametrize(("name", "base", "error_type", "prefix"), ERROR_TABLE)
def test_error_classes_keep_builtin_base_error_type_and_prefix(name, base, error_type, prefix):
    cls = getattr(errors, name)
    assert issubclass(cls, base)
    assert issubclass(cls, errors.RelayError)
    assert cls.error_type == error_type
    error = cls("detail")
    assert str(error) == prefix + "detail"
    assert error.error_type == error_type


def test_runtime_errors_share_a_base():
    for name in ("AlreadyExistsError", "NotFoundError", "InvalidArgumentError", "ScopeStackEmptyError",
                 "GuardrailRejectedError", "InternalError"):  # fmt: skip
        assert issubclass(getattr(errors, name), errors.RelayRuntimeError)
    assert issubclass(errors.RelayRuntimeError, RuntimeError)
    assert not issubclass(errors.InvalidValueError, RuntimeError)
    assert not issubclass(errors.JsonConversionError, RuntimeError)


def test_scope_stack_empty_error_default_message():
    error = errors.ScopeStackEmptyError()
    assert str(error) == "scope stack empty"
    assert error.error_type == "scope_stack_empty"
    assert isinstance(error, RuntimeError)


def test_guardrail_rejected_error_keeps_the_reason():
    error = errors.GuardrailRejectedError("not allowed")
    assert error.reason == "not allowed"
    assert str(error) == "guardrail rejected: not allowed"


def test_raised_errors_are_the_typed_classes():
    subscribers.register("dup", lambda event: None)
    with pytest.raises(errors.AlreadyExistsError) as dup:
        subscribers.register("dup", lambda event: None)
    assert dup.value.error_type == "already_exists"

    handle = scope.push("once", ScopeType.Function)
    scope.pop(handle)
    with pytest.raises(errors.NotFoundError, match=r"^not found: scope handle not found$") as missing:
        scope.pop(handle)
    assert missing.value.error_type == "not_found"

    with pytest.raises(errors.InvalidArgumentError, match="root scope cannot be removed") as root:
        scope.pop(scope.get_handle())
    assert root.value.error_type == "invalid_argument"

    with pytest.raises(errors.JsonConversionError, match=r"^Failed to convert to JSON: unsupported type object$") as js:
        scope.event("x", data=object())
    assert isinstance(js.value, ValueError)
    assert js.value.error_type == "invalid_argument"
