"""Runtime registration discovery and conditional middleware guardrails (gates)."""

from __future__ import annotations

import dataclasses
import enum
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nemo_relay import (
    ScopeType,
    _native,
    event_metadata,
    guardrails,
    intercepts,
    runtime_registrations,
    scope,
    scope_local,
    subscribers,
    tools,
)
from nemo_relay.runtime_registrations import (
    RuntimeRegistrationIdentity,
    RuntimeRegistrationKind,
    RuntimeRegistrationOwner,
    RuntimeRegistrationOwnerKind,
    list_runtime_registrations,
)

Kind = RuntimeRegistrationKind
register_gate = runtime_registrations.register_conditional_middleware_guardrail
deregister_gate = runtime_registrations.deregister_conditional_middleware_guardrail

KIND_VALUES = [
    "subscriber",
    "event_metadata_injector",
    "mark_sanitize_guardrail",
    "scope_sanitize_start_guardrail",
    "scope_sanitize_end_guardrail",
    "tool_sanitize_request_guardrail",
    "tool_sanitize_response_guardrail",
    "tool_conditional_execution_guardrail",
    "tool_request_intercept",
    "tool_execution_intercept",
    "llm_sanitize_request_guardrail",
    "llm_sanitize_response_guardrail",
    "llm_conditional_execution_guardrail",
    "llm_request_intercept",
    "llm_execution_intercept",
    "llm_stream_execution_intercept",
]


def _noop(*args: Any) -> None:
    return None


def _keep_fields(event: Any, fields: Any) -> Any:
    return fields


def _no_attributes(event: Any) -> dict[str, Any]:
    return {}


# kind -> registers ``name`` globally in that family
REGISTER = {
    Kind.SUBSCRIBER: lambda name: subscribers.register(name, _noop),
    Kind.EVENT_METADATA_INJECTOR: lambda name: event_metadata.register_injector(name, 0, _no_attributes),
    Kind.MARK_SANITIZE_GUARDRAIL: lambda name: guardrails.register_mark_sanitize(name, 0, _keep_fields),
    Kind.SCOPE_SANITIZE_START_GUARDRAIL: lambda name: guardrails.register_scope_sanitize_start(name, 0, _keep_fields),
    Kind.SCOPE_SANITIZE_END_GUARDRAIL: lambda name: guardrails.register_scope_sanitize_end(name, 0, _keep_fields),
    Kind.TOOL_SANITIZE_REQUEST_GUARDRAIL: lambda name: guardrails.register_tool_sanitize_request(name, 0, _noop),
    Kind.TOOL_SANITIZE_RESPONSE_GUARDRAIL: lambda name: guardrails.register_tool_sanitize_response(name, 0, _noop),
    Kind.TOOL_CONDITIONAL_EXECUTION_GUARDRAIL: lambda name: guardrails.register_tool_conditional_execution(
        name, 0, _noop
    ),
    Kind.TOOL_REQUEST_INTERCEPT: lambda name: intercepts.register_tool_request(name, 0, False, _noop),
    Kind.TOOL_EXECUTION_INTERCEPT: lambda name: intercepts.register_tool_execution(name, 0, _noop),
    Kind.LLM_SANITIZE_REQUEST_GUARDRAIL: lambda name: guardrails.register_llm_sanitize_request(name, 0, _noop),
    Kind.LLM_SANITIZE_RESPONSE_GUARDRAIL: lambda name: guardrails.register_llm_sanitize_response(name, 0, _noop),
    Kind.LLM_CONDITIONAL_EXECUTION_GUARDRAIL: lambda name: guardrails.register_llm_conditional_execution(
        name, 0, _noop
    ),
    Kind.LLM_REQUEST_INTERCEPT: lambda name: intercepts.register_llm_request(name, 0, False, _noop),
    Kind.LLM_EXECUTION_INTERCEPT: lambda name: intercepts.register_llm_execution(name, 0, _noop),
    Kind.LLM_STREAM_EXECUTION_INTERCEPT: lambda name: intercepts.register_llm_stream_execution(name, 0, _noop),
}


def listed(kinds: Any = None) -> list[tuple[str, str]]:
    return [(str(item.kind), item.local_name) for item in list_runtime_registrations(kinds)]


def tag(label: str) -> Any:
    def intercept(name: str, args: Any) -> Any:
        return {**args, label: True}

    return intercept


class Recorder:
    """A gate that records its calls and returns ``verdict``."""

    def __init__(self, verdict: str | None = "timer active") -> None:
        self.verdict = verdict
        self.calls: list[tuple[set[Any], str]] = []

    def __call__(self, kinds: set[Any], name: str) -> str | None:
        self.calls.append((kinds, name))
        return self.verdict


class Blocker:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, event: Any) -> None:
        if event.name == "block":
            self.entered.set()
            self.released.wait(30)

    def hold(self) -> None:
        scope.event("block")
        assert self.entered.wait(10), "dispatcher never reached the blocking mark"


@pytest.fixture
def blocker(events) -> Iterator[Blocker]:
    gate = Blocker()
    subscribers.register("test-blocker", gate)
    try:
        yield gate
    finally:
        gate.released.set()
        assert subscribers.flush(timeout=10)


# --- the types ------------------------------------------------------------------------------------------


def test_kind_is_a_str_enum_with_values_in_declaration_order():
    assert issubclass(Kind, enum.StrEnum)
    assert [member.value for member in Kind] == KIND_VALUES
    assert Kind.TOOL_REQUEST_INTERCEPT == "tool_request_intercept"
    assert str(Kind.SUBSCRIBER) == "subscriber"
    assert Kind("llm_stream_execution_intercept") is Kind.LLM_STREAM_EXECUTION_INTERCEPT
    assert [member.name for member in Kind] == [value.upper() for value in KIND_VALUES]


def test_owner_kind_values():
    assert issubclass(RuntimeRegistrationOwnerKind, enum.StrEnum)
    assert [(m.name, m.value) for m in RuntimeRegistrationOwnerKind] == [
        ("CORE", "core"),
        ("GLOBAL_API", "global_api"),
        ("PLUGIN", "plugin"),
    ]


def test_identity_and_owner_are_frozen_dataclasses():
    owner = RuntimeRegistrationOwner(RuntimeRegistrationOwnerKind.PLUGIN, "my-plugin", 2)
    identity = RuntimeRegistrationIdentity(Kind.SUBSCRIBER, "local", "effective", owner)
    assert [f.name for f in dataclasses.fields(RuntimeRegistrationOwner)] == [
        "kind",
        "plugin_kind",
        "component_ordinal",
    ]
    assert [f.name for f in dataclasses.fields(RuntimeRegistrationIdentity)] == [
        "kind",
        "local_name",
        "effective_name",
        "owner",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.local_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        owner.kind = RuntimeRegistrationOwnerKind.CORE  # type: ignore[misc]
    assert identity == RuntimeRegistrationIdentity(
        Kind.SUBSCRIBER,
        "local",
        "effective",
        RuntimeRegistrationOwner(RuntimeRegistrationOwnerKind.PLUGIN, "my-plugin", 2),
    )
    assert hash(identity) == hash(dataclasses.replace(identity))


# --- listing --------------------------------------------------------------------------------------------


def test_nothing_registered_lists_nothing():
    assert list_runtime_registrations() == []
    assert _native.list_runtime_registrations() == []


def test_lists_every_global_registration_sorted_by_kind_order_then_name():
    for kind in reversed(Kind):  # registration order must not matter
        REGISTER[kind]("zeta")
        REGISTER[kind]("alpha")
        REGISTER[kind]("Mid")
    items = list_runtime_registrations()
    assert [(str(i.kind), i.local_name) for i in items] == [
        (value, name) for value in KIND_VALUES for name in ("Mid", "alpha", "zeta")
    ]
    global_api = RuntimeRegistrationOwner(RuntimeRegistrationOwnerKind.GLOBAL_API, None, None)
    for item in items:
        assert isinstance(item, RuntimeRegistrationIdentity)
        assert isinstance(item.kind, Kind)
        assert item.effective_name == item.local_name
        assert item.owner == global_api
        assert item.owner.kind is RuntimeRegistrationOwnerKind.GLOBAL_API


def test_filter_by_kinds():
    for kind in Kind:
        REGISTER[kind](f"{kind.value}-entry")
    assert listed({Kind.TOOL_REQUEST_INTERCEPT, Kind.SUBSCRIBER}) == [
        ("subscriber", "subscriber-entry"),
        ("tool_request_intercept", "tool_request_intercept-entry"),
    ]
    assert listed([Kind.LLM_STREAM_EXECUTION_INTERCEPT]) == [
        ("llm_stream_execution_intercept", "llm_stream_execution_intercept-entry")
    ]
    assert listed(set()) == []
    assert len(listed()) == len(Kind)


def test_deregistered_entries_disappear():
    intercepts.register_tool_request("a", 0, False, tag("a"))
    intercepts.register_tool_request("b", 0, False, tag("b"))
    assert intercepts.deregister_tool_request("a")
    assert listed() == [("tool_request_intercept", "b")]


def test_scope_local_registrations_are_never_listed():
    intercepts.register_tool_request("global", 0, False, tag("global"))
    with scope.scope("owner", ScopeType.Agent) as owner:
        scope_local.register_tool_request(owner, "local", 0, False, tag("local"))
        scope_local.register_subscriber(owner, "local-subscriber", _noop)
        scope_local.register_event_metadata_injector(owner, "local-injector", 0, _no_attributes)
        assert listed() == [("tool_request_intercept", "global")]


def test_gated_registrations_are_still_listed():
    intercepts.register_tool_request("gated", 0, False, tag("gated"))
    register_gate("gate", {Kind.TOOL_REQUEST_INTERCEPT}, "gated", Recorder())
    assert tools.request_intercepts("tool", {}) == {}
    assert listed() == [("tool_request_intercept", "gated")]


def test_native_listing_returns_plain_dicts():
    subscribers.register("sub", _noop)
    intercepts.register_tool_request("req", 0, False, tag("req"))
    expected_owner = {"component_ordinal": None, "kind": "global_api", "plugin_kind": None}
    assert _native.list_runtime_registrations() == [
        {"effective_name": "sub", "kind": "subscriber", "local_name": "sub", "owner": expected_owner},
        {"effective_name": "req", "kind": "tool_request_intercept", "local_name": "req", "owner": expected_owner},
    ]
    (item,) = _native.list_runtime_registrations({"tool_request_intercept"})
    assert type(item) is dict
    assert type(item["kind"]) is str
    assert type(item["owner"]) is dict
    assert item["local_name"] == "req"
    assert _native.list_runtime_registrations(set()) == []


def test_native_listing_rejects_unknown_kind():
    with pytest.raises(ValueError, match=f"^{re.escape('unknown runtime registration kind: bogus')}$"):
        _native.list_runtime_registrations({"subscriber", "bogus"})


# --- conditional middleware guardrails (gates) -----------------------------------------------------------


def test_gate_with_a_reason_skips_the_targeted_request_intercept():
    intercepts.register_tool_request("target", 0, False, tag("target"))
    gate = Recorder("timer active")
    register_gate("timer", {Kind.TOOL_REQUEST_INTERCEPT}, "target", gate)
    assert tools.request_intercepts("tool", {}) == {}
    assert gate.calls == [({Kind.TOOL_REQUEST_INTERCEPT}, "target")]
    (kinds, _) = gate.calls[0]
    assert all(isinstance(kind, Kind) for kind in kinds)


def test_gate_only_hides_its_target():
    intercepts.register_tool_request("target", 0, False, tag("target"))
    intercepts.register_tool_request("other", 1, False, tag("other"))
    register_gate("timer", {Kind.TOOL_REQUEST_INTERCEPT}, "target", Recorder())
    assert tools.request_intercepts("tool", {}) == {"other": True}


def test_deregistering_the_gate_restores_the_intercept():
    intercepts.register_tool_request("target", 0, False, tag("target"))
    register_gate("timer", {Kind.TOOL_REQUEST_INTERCEPT}, "target", Recorder())
    assert tools.request_intercepts("tool", {}) == {}
    assert deregister_gate("timer") is True
    assert deregister_gate("timer") is False
    assert deregister_gate("never-registered") is False
    assert tools.request_intercepts("tool", {}) == {"target": True}


def test_gate_returning_none_keeps_the_intercept():
    intercepts.register_tool_request("target", 0, False, tag("target"))
    gate = Recorder(None)
    register_gate("allow", {Kind.TOOL_REQUEST_INTERCEPT}, "target", gate)
    assert tools.request_intercepts("tool", {}) == {"target": True}
    assert gate.calls == [({Kind.TOOL_REQUEST_INTERCEPT}, "target")]


def test_gates_are_re_evaluated_on_every_call():
    intercepts.register_tool_request("target", 0, False, tag("target"))
    gate = Recorder(None)
    register_gate("flip", {Kind.TOOL_REQUEST_INTERCEPT}, "target", gate)
    results = []
    for verdict in (None, "off", None, "off again"):
        gate.verdict = verdict
        results.append(tools.request_intercepts("tool", {}))
    assert results == [{"target": True}, {}, {"target": True}, {}]
    assert len(gate.calls) == 4


def test_raising_gate_fails_open_and_is_reported(capfd):
    intercepts.register_tool_request("target", 0, False, tag("target"))

    def broken(kinds: set[Any], name: str) -> str | None:
        raise ValueError("gate boom")

    register_gate("broken", {Kind.TOOL_REQUEST_INTERCEPT}, "target", broken)
    assert tools.request_intercepts("tool", {}) == {"target": True}
    assert "gate boom" in capfd.readouterr().err


def test_any_matching_gate_excludes_the_target():
    intercepts.register_tool_request("target", 0, False, tag("target"))
    register_gate("a-allow", {Kind.TOOL_REQUEST_INTERCEPT}, "target", Recorder(None))
    register_gate("b-deny", {Kind.TOOL_REQUEST_INTERCEPT}, "target", Recorder("deny"))
    assert tools.request_intercepts("tool", {}) == {}
    assert deregister_gate("b-deny")
    assert tools.request_intercepts("tool", {}) == {"target": True}


def test_empty_string_reason_still_excludes():
    intercepts.register_tool_request("target", 0, False, tag("target"))
    register_gate("empty", {Kind.TOOL_REQUEST_INTERCEPT}, "target", Recorder(""))
    assert tools.request_intercepts("tool", {}) == {}


def test_gates_never_affect_scope_local_registrations():
    gate = Recorder("off")
    register_gate("local-gate", {Kind.TOOL_REQUEST_INTERCEPT}, "shared", gate)
    with scope.scope("owner", ScopeType.Agent) as owner:
        scope_local.register_tool_request(owner, "shared", 0, False, tag("local"))
        assert tools.request_intercepts("tool", {}) == {"local": True}
        assert gate.calls == []  # no global registration by that name: nothing to ask about
        intercepts.register_tool_request("shared", 0, False, tag("global"))
        assert tools.request_intercepts("tool", {}) == {"local": True}  # the global one is gated, the local not


def test_gate_is_limited_to_its_kinds():
    intercepts.register_tool_request("x", 0, False, tag("x"))
    register_gate("marks-only", {Kind.MARK_SANITIZE_GUARDRAIL}, "x", Recorder("off"))
    assert tools.request_intercepts("tool", {}) == {"x": True}


def test_gate_over_several_kinds_receives_all_of_them():
    intercepts.register_tool_request("x", 0, False, tag("x"))
    gate = Recorder("off")
    register_gate("both", {Kind.SUBSCRIBER, Kind.TOOL_REQUEST_INTERCEPT}, "x", gate)
    assert tools.request_intercepts("tool", {}) == {}
    assert gate.calls == [({Kind.SUBSCRIBER, Kind.TOOL_REQUEST_INTERCEPT}, "x")]


def test_gates_apply_to_publication_registrations(events):
    delivered: list[str] = []
    subscribers.register("gated-subscriber", lambda event: delivered.append(event.name))
    guardrails.register_mark_sanitize("sanitizer", 0, lambda event, fields: {**fields, "data": "sanitized"})
    event_metadata.register_injector("injector", 0, lambda event: {"injected": True})
    switch = {"on": True}

    def gate(kinds: set[Any], name: str) -> str | None:
        return "off" if switch["on"] else None

    register_gate("g-sanitizer", {Kind.MARK_SANITIZE_GUARDRAIL}, "sanitizer", gate)
    register_gate("g-injector", {Kind.EVENT_METADATA_INJECTOR}, "injector", gate)
    register_gate("g-subscriber", {Kind.SUBSCRIBER}, "gated-subscriber", gate)
    scope.event("while-on", data="raw")
    switch["on"] = False
    scope.event("while-off", data="raw")
    events.flush()
    assert [(e.name, e.data, e.metadata) for e in events] == [
        ("while-on", "raw", None),
        ("while-off", "sanitized", {"injected": True}),
    ]
    assert delivered == ["while-off"]


@pytest.mark.timeout(30)
def test_gate_affects_only_future_snapshots(events, blocker):
    guardrails.register_mark_sanitize("sanitizer", 0, lambda event, fields: {**fields, "data": "sanitized"})
    blocker.hold()
    scope.event("queued", data="raw")
    register_gate("late", {Kind.MARK_SANITIZE_GUARDRAIL}, "sanitizer", Recorder("off"))
    scope.event("later", data="raw")
    blocker.released.set()
    events.flush()
    assert {e.name: e.data for e in events if e.name != "block"} == {"queued": "sanitized", "later": "raw"}


def test_duplicate_gate_name_raises_already_exists():
    register_gate("dup", {Kind.TOOL_REQUEST_INTERCEPT}, "a", Recorder())
    message = "already exists: dup conditional middleware guardrail already exists"
    with pytest.raises(RuntimeError, match=f"^{re.escape(message)}$"):
        register_gate("dup", {Kind.SUBSCRIBER}, "b", Recorder())
    assert deregister_gate("dup") is True


def test_gate_names_are_separate_from_registration_names():
    intercepts.register_tool_request("same", 0, False, tag("same"))
    register_gate("same", {Kind.TOOL_REQUEST_INTERCEPT}, "same", Recorder())
    assert tools.request_intercepts("tool", {}) == {}
    assert listed() == [("tool_request_intercept", "same")]


def test_gate_with_no_kinds_is_rejected():
    with pytest.raises(RuntimeError, match="must not be empty"):
        register_gate("nothing", set(), "target", Recorder())
    assert deregister_gate("nothing") is False
