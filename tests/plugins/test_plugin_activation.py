"""Activating plugin configurations: real effects, namespacing, rollback, replacement, report, clear."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from nemo_relay import (
    LLMRequest,
    LLMRequestInterceptOutcome,
    ScopeType,
    ToolExecutionResult,
    intercepts,
    llm,
    runtime_registrations,
    scope,
    subscribers,
    tools,
)
from nemo_relay import plugin as plugin_api
from nemo_relay._core.plugins import activation
from nemo_relay._native import list_runtime_registrations as native_listing
from nemo_relay.runtime_registrations import RuntimeRegistrationKind as Kind
from nemo_relay.runtime_registrations import RuntimeRegistrationOwnerKind as OwnerKind


class Scripted:
    """A Python plugin whose ``register`` runs ``steps(config, context)``."""

    def __init__(self, steps: Callable[[dict[str, Any], Any], None]) -> None:
        self.steps = steps
        self.calls: list[dict[str, Any]] = []

    def register(self, config: dict[str, Any], context: Any) -> None:
        self.calls.append(config)
        self.steps(config, context)


def register_kind(kind: str, steps: Callable[[dict[str, Any], Any], None]) -> Scripted:
    scripted = Scripted(steps)
    plugin_api.register(kind, scripted)
    return scripted


def echo(args: Any) -> ToolExecutionResult[Any]:
    return ToolExecutionResult(args)


def names() -> list[str]:
    return [identity.effective_name for identity in runtime_registrations.list_runtime_registrations()]


def tag_tool_args(config: dict[str, Any], context: Any) -> None:
    context.register_tool_request_intercept("tag", 10, False, lambda name, args: {**args, "tag": config["tag"]})


# --- real effects ---------------------------------------------------------------------------------------------


async def test_python_plugin_intercepts_rewrite_real_calls_until_clear() -> None:
    def steps(config: dict[str, Any], context: Any) -> None:
        priority = config["priority"]

        def add_header(name: str, request: LLMRequest, annotated: Any) -> LLMRequestInterceptOutcome:
            headers = {**request.headers, "x-python-plugin": f"priority:{priority}"}
            return LLMRequestInterceptOutcome(request.with_headers(headers))

        async def execution(name: str, request: LLMRequest, next_call: Any) -> Any:
            return await next_call(request.with_headers({**request.headers, "x-python-llm-exec": "1"}))

        def stream(request: LLMRequest, next_call: Any) -> Any:
            async def tagged() -> Any:
                async for chunk in await next_call(request):
                    yield {"tagged": chunk}

            return tagged()

        context.register_llm_request_intercept("headers", priority, False, add_header)
        context.register_llm_execution_intercept("exec", priority, execution)
        context.register_llm_stream_execution_intercept("stream", priority, stream)
        context.register_tool_request_intercept(
            "tool", priority, False, lambda name, args: {**args, "x-python-tool-plugin": True}
        )

    register_kind("python.test_plugin", steps)
    report = await plugin_api.initialize({"components": [{"kind": "python.test_plugin", "config": {"priority": 17}}]})
    assert report == {"diagnostics": []}

    result = await tools.execute("lookup", {"q": 1}, echo)
    assert result.result == {"q": 1, "x-python-tool-plugin": True}
    seen: list[dict[str, Any]] = []
    await llm.execute("chat", LLMRequest({}, {"messages": []}), lambda request: seen.append(request.headers) or {})
    assert seen[0]["x-python-plugin"] == "priority:17"
    assert seen[0]["x-python-llm-exec"] == "1"

    async def produce(request: LLMRequest) -> Any:
        yield 1
        yield 2

    collected: list[Any] = []
    stream = await llm.stream_execute("chat", LLMRequest({}, {}), produce, collected.append, lambda: None)
    assert [chunk async for chunk in stream] == [{"tagged": 1}, {"tagged": 2}]
    assert collected == [{"tagged": 1}, {"tagged": 2}]

    await plugin_api.clear_async()
    assert (await tools.execute("lookup", {"q": 1}, echo)).result == {"q": 1}
    assert names() == []


async def test_subscriber_receives_events_and_stops_after_clear() -> None:
    received: list[str] = []
    register_kind(
        "listener", lambda config, context: context.register_subscriber("sub", lambda e: received.append(e.name))
    )
    await plugin_api.initialize({"components": [{"kind": "listener"}]})
    scope.event("while-active")
    await subscribers.flush_async()
    await plugin_api.clear_async()
    scope.event("after-clear")
    await subscribers.flush_async()
    assert received == ["while-active"]


async def test_clear_delivers_queued_events_before_tearing_down() -> None:
    release = threading.Event()
    received: list[str] = []

    def slow(event: Any) -> None:
        release.wait(10)
        received.append(event.name)

    register_kind("slow", lambda config, context: context.register_subscriber("sub", slow))
    await plugin_api.initialize({"components": [{"kind": "slow"}]})
    for name in ("a", "b", "c"):
        scope.event(name)
    clearing = asyncio.ensure_future(plugin_api.clear_async())
    await asyncio.sleep(0)
    release.set()
    await clearing
    assert received == ["a", "b", "c"]


async def test_replacement_delivers_queued_events_to_the_previous_subscribers() -> None:
    release = threading.Event()
    received: list[str] = []

    def slow(event: Any) -> None:
        release.wait(10)
        received.append(event.name)

    register_kind("slow", lambda config, context: context.register_subscriber("sub", slow))
    await plugin_api.initialize({"components": [{"kind": "slow"}]})
    scope.event("queued")
    replacing = asyncio.ensure_future(plugin_api.initialize({"components": []}))
    await asyncio.sleep(0)
    release.set()
    await replacing
    assert received == ["queued"]
    assert names() == []


# --- namespacing ----------------------------------------------------------------------------------------------


async def test_registrations_are_namespaced_per_component_and_listed_with_their_owner() -> None:
    register_kind("mine", lambda config, context: context.register_subscriber("sub", lambda e: None))
    register_kind("a b/é", tag_tool_args)
    await plugin_api.initialize(
        {
            "components": [
                {"kind": "mine"},
                {"kind": "mine", "enabled": False},
                {"kind": "a b/é", "config": {"tag": 1}},
                {"kind": "mine"},
            ]
        }
    )
    assert names() == [
        "nemo-relay-plugin.v1.mine:1:sub",
        "nemo-relay-plugin.v1.mine:2:sub",  # ordinals count enabled components only
        "nemo-relay-plugin.v1.a%20b%2F%C3%A9:1:tag",
    ]
    identities = runtime_registrations.list_runtime_registrations([Kind.TOOL_REQUEST_INTERCEPT])
    assert [
        (i.kind, i.local_name, i.owner.kind, i.owner.plugin_kind, i.owner.component_ordinal) for i in identities
    ] == [(Kind.TOOL_REQUEST_INTERCEPT, "tag", OwnerKind.PLUGIN, "a b/é", 1)]
    assert native_listing(["subscriber"])[1] == {
        "effective_name": "nemo-relay-plugin.v1.mine:2:sub",
        "kind": "subscriber",
        "local_name": "sub",
        "owner": {"component_ordinal": 2, "kind": "plugin", "plugin_kind": "mine"},
    }


async def test_every_surface_registers_under_the_namespace_and_is_undone() -> None:
    def noop(*args: Any) -> None:
        return None

    def steps(config: dict[str, Any], context: Any) -> None:
        context.register_subscriber("s", noop)
        context.register_event_metadata_injector("s", 0, lambda event: {})
        context.register_mark_sanitize_guardrail("s", 0, noop)
        context.register_scope_sanitize_start_guardrail("s", 0, noop)
        context.register_scope_sanitize_end_guardrail("s", 0, noop)
        context.register_tool_sanitize_request_guardrail("s", 0, noop)
        context.register_tool_sanitize_response_guardrail("s", 0, noop)
        context.register_tool_conditional_execution_guardrail("s", 0, noop)
        context.register_tool_request_intercept("s", 0, False, noop)
        context.register_tool_execution_intercept("s", 0, noop)
        context.register_llm_sanitize_request_guardrail("s", 0, lambda payload, ctx: None)
        context.register_llm_sanitize_response_guardrail("s", 0, lambda payload, ctx: None)
        context.register_llm_conditional_execution_guardrail("s", 0, noop)
        context.register_llm_request_intercept("s", 0, True, noop)
        context.register_llm_execution_intercept("s", 0, noop)
        context.register_llm_stream_execution_intercept("s", 0, noop)
        context.register_conditional_middleware_guardrail("gate", {Kind.SUBSCRIBER}, "elsewhere", noop)

    register_kind("all", steps)
    await plugin_api.initialize({"components": [{"kind": "all"}]})
    identities = runtime_registrations.list_runtime_registrations()
    assert {i.kind for i in identities} == set(Kind)
    assert {i.effective_name for i in identities} == {"nemo-relay-plugin.v1.all:1:s"}
    await plugin_api.clear_async()
    assert names() == []
    # The gate went too: its name is free again.
    assert runtime_registrations.deregister_conditional_middleware_guardrail("nemo-relay-plugin.v1.all:1:gate") is False


async def test_context_gate_fails_open_and_goes_away_on_clear() -> None:
    received: list[str] = []
    kinds_seen: list[set[Any]] = []
    subscribers.register("target", lambda event: received.append(event.name))

    def gate(kinds: set[Any], name: str) -> str | None:
        kinds_seen.append(kinds)
        raise RuntimeError("gate is broken")

    register_kind(
        "gating",
        lambda config, context: context.register_conditional_middleware_guardrail(
            "g", {Kind.SUBSCRIBER}, "target", gate
        ),
    )
    await plugin_api.initialize({"components": [{"kind": "gating"}]})
    scope.event("one")
    await subscribers.flush_async()
    assert received == ["one"]
    assert kinds_seen and kinds_seen[0] == {Kind.SUBSCRIBER}
    await plugin_api.clear_async()
    calls = len(kinds_seen)
    scope.event("two")
    await subscribers.flush_async()
    assert received == ["one", "two"]
    assert len(kinds_seen) == calls


def test_context_refuses_late_registrations() -> None:
    saved: list[Any] = []
    register_kind("keep", lambda config, context: saved.append(context))
    asyncio.run(plugin_api.initialize({"components": [{"kind": "keep"}]}))
    with pytest.raises(RuntimeError, match="plugin context of component 'keep' is closed"):
        saved[0].register_subscriber("late", lambda event: None)
    assert names() == []


# --- failures roll back ---------------------------------------------------------------------------------------


async def test_register_failure_rolls_back_its_own_and_earlier_components() -> None:
    received: list[str] = []
    subscribers.register("target", lambda event: received.append(event.name))

    def first(config: dict[str, Any], context: Any) -> None:
        context.register_subscriber("sub", lambda event: None)
        context.register_conditional_middleware_guardrail("gate", {Kind.SUBSCRIBER}, "target", lambda k, n: "off")

    def second(config: dict[str, Any], context: Any) -> None:
        context.register_tool_request_intercept("tool", 0, False, lambda name, args: {"changed": True})
        raise RuntimeError("expected activation failure")

    register_kind("first", first)
    register_kind("second", second)
    with pytest.raises(RuntimeError, match=r"^registration failed: RuntimeError: expected activation failure$"):
        await plugin_api.initialize({"components": [{"kind": "first"}, {"kind": "second"}]})
    assert names() == ["target"]
    assert plugin_api.report() is None
    assert (await tools.execute("t", {"a": 1}, echo)).result == {"a": 1}
    scope.event("still-observed")  # the gate was rolled back too
    await subscribers.flush_async()
    assert received[-1] == "still-observed"


async def test_registration_errors_inside_register_abort_activation() -> None:
    def duplicate(config: dict[str, Any], context: Any) -> None:
        context.register_subscriber("s", lambda event: None)
        context.register_subscriber("s", lambda event: None)

    register_kind("dup", duplicate)
    with pytest.raises(
        RuntimeError,
        match=r"^registration failed: RuntimeError: already exists: nemo-relay-plugin\.v1\.dup:1:s subscriber "
        r"already exists$",
    ):
        await plugin_api.initialize({"components": [{"kind": "dup"}]})
    register_kind(
        "badgate",
        lambda config, context: context.register_conditional_middleware_guardrail(
            "g", {"nope"}, "x", lambda k, n: None
        ),
    )
    with pytest.raises(RuntimeError, match="registration failed: ValueError: unknown runtime registration kind: nope"):
        await plugin_api.initialize({"components": [{"kind": "badgate"}]})
    assert names() == []


async def test_async_register_is_refused(recwarn: pytest.WarningsRecorder) -> None:
    class AsyncRegister:
        async def register(self, config: Any, context: Any) -> None:
            context.register_subscriber("s", lambda event: None)

    plugin_api.register("async", AsyncRegister())
    with pytest.raises(RuntimeError, match="register must be synchronous"):
        await plugin_api.initialize({"components": [{"kind": "async"}]})
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


async def test_enabled_unknown_component_fails_at_activation_disabled_one_does_not() -> None:
    with pytest.raises(RuntimeError, match=r"^not found: plugin component 'nothere' is not registered$"):
        await plugin_api.initialize({"components": [{"kind": "nothere"}]})
    assert plugin_api.report() is None
    report = await plugin_api.initialize({"components": [{"kind": "nothere", "enabled": False}]})
    assert report == {
        "diagnostics": [
            {
                "code": "plugin.unknown_component",
                "component": "nothere",
                "level": "warning",
                "message": "plugin component kind 'nothere' is unsupported",
            }
        ]
    }


async def test_error_diagnostics_block_initialize_without_changing_anything() -> None:
    register_kind("tagger", tag_tool_args)
    await plugin_api.initialize({"components": [{"kind": "tagger", "config": {"tag": "old"}}]})
    with pytest.raises(
        RuntimeError,
        match=r"^invalid config: plugin config version 2 is unsupported; plugin component kind 'x' is unsupported$",
    ):
        await plugin_api.initialize(
            {"version": 2, "policy": {"unknown_component": "error"}, "components": [{"kind": "x"}]}
        )
    assert (await tools.execute("t", {}, echo)).result == {"tag": "old"}


# --- replacement ----------------------------------------------------------------------------------------------


async def test_initialize_replaces_the_active_configuration() -> None:
    register_kind("tagger", tag_tool_args)
    await plugin_api.initialize({"components": [{"kind": "tagger", "config": {"tag": "one"}}]})
    await plugin_api.initialize({"components": [{"kind": "tagger", "config": {"tag": "two"}}]})
    assert (await tools.execute("t", {}, echo)).result == {"tag": "two"}
    assert names() == ["nemo-relay-plugin.v1.tagger:1:tag"]


async def test_failed_replacement_restores_the_previous_configuration(fake_builtin: Any) -> None:
    register_kind("tagger", tag_tool_args)
    register_kind("broken", lambda config, context: (_ for _ in ()).throw(ValueError("no")))
    first = await plugin_api.initialize(
        {"components": [{"kind": "tagger", "config": {"tag": "kept"}}, {"kind": "fake_builtin", "config": {"x": 1}}]}
    )
    fake_builtin.contexts[0].diagnostics.record("fake.dropped", "fake_builtin", "dropped while active")
    report_before = plugin_api.report()
    assert report_before is not None and report_before["runtime_diagnostics"][0]["count"] == 1
    with pytest.raises(RuntimeError, match=r"^registration failed: ValueError: no$"):
        await plugin_api.initialize({"components": [{"kind": "tagger", "config": {"tag": "new"}}, {"kind": "broken"}]})
    assert (await tools.execute("t", {}, echo)).result == {"tag": "kept"}
    assert plugin_api.report() == report_before  # report and runtime diagnostics restored
    assert first == {"diagnostics": []}
    assert fake_builtin.registered == [{"x": 1}, {"x": 1}]  # registered again on restore


async def test_failed_restore_reports_both_errors() -> None:
    attempts: list[int] = []

    def flaky(config: dict[str, Any], context: Any) -> None:
        attempts.append(1)
        if len(attempts) > 1:
            raise RuntimeError("cannot come back")

    register_kind("flaky", flaky)
    register_kind("broken", lambda config, context: (_ for _ in ()).throw(ValueError("no")))
    await plugin_api.initialize({"components": [{"kind": "flaky"}]})
    with pytest.raises(
        RuntimeError,
        match=r"^registration failed: ValueError: no; previous plugin configuration could not be restored: "
        r"registration failed: RuntimeError: cannot come back$",
    ):
        await plugin_api.initialize({"components": [{"kind": "broken"}]})
    assert plugin_api.report() is None


# --- report and teardown outcomes -----------------------------------------------------------------------------


async def test_report_is_a_snapshot_with_runtime_diagnostics_when_recorded(fake_builtin: Any) -> None:
    report = await plugin_api.initialize({"components": [{"kind": "fake_builtin"}]})
    assert plugin_api.report() == report == {"diagnostics": []}
    fake_builtin.contexts[-1].diagnostics.record("fake.late", "fake_builtin", "late problem", session_id="s1")
    current = plugin_api.report()
    assert current == {
        "diagnostics": [],
        "runtime_diagnostics": [
            {
                "code": "fake.late",
                "component": "fake_builtin",
                "message": "late problem",
                "count": 1,
                "session_id": "s1",
            }
        ],
    }
    current["diagnostics"].append({"tampered": True})  # type: ignore[typeddict-item]
    assert plugin_api.report()["diagnostics"] == []  # type: ignore[index]
    assert fake_builtin.contexts[-1].namespace == "nemo-relay-plugin.v1.fake_builtin:1:"
    assert fake_builtin.contexts[-1].component == "fake_builtin"


async def test_delivery_failure_on_clear_is_reported_and_retained_then_cleared(fake_builtin: Any) -> None:
    await plugin_api.initialize(
        {"components": [{"kind": "fake_builtin", "config": {"teardown": "delivery", "diagnostic": "fake.dropped"}}]}
    )
    with pytest.raises(RuntimeError) as failure:
        await plugin_api.clear_async()
    assert str(failure.value) == (
        "registration failed: plugin teardown failed: fake_builtin registration "
        "'nemo-relay-plugin.v1.fake_builtin:1:shutdown' reported a delivery failure: 2 events were not delivered"
    )
    retained = plugin_api.report()
    assert retained is not None and retained["runtime_diagnostics"][0]["code"] == "fake.dropped"
    await plugin_api.clear_async()  # delivery failures do not block later changes
    assert plugin_api.report() is None
    assert await plugin_api.initialize({"components": [{"kind": "fake_builtin"}]}) == {"diagnostics": []}


async def test_failed_teardown_without_runtime_diagnostics_keeps_no_report(fake_builtin: Any) -> None:
    await plugin_api.initialize({"components": [{"kind": "fake_builtin", "config": {"teardown": "delivery"}}]})
    with pytest.raises(RuntimeError, match="reported a delivery failure"):
        await plugin_api.clear_async()
    assert plugin_api.report() is None


async def test_replacement_whose_teardown_fails_leaves_nothing_active(fake_builtin: Any) -> None:
    await plugin_api.initialize({"components": [{"kind": "fake_builtin", "config": {"teardown": "delivery"}}]})
    with pytest.raises(
        RuntimeError, match=r"^registration failed: previous plugin configuration could not be cleared: fake_builtin "
    ):
        await plugin_api.initialize({"components": []})
    assert plugin_api.report() is None
    assert await plugin_api.initialize({"components": []}) == {"diagnostics": []}


@pytest.mark.parametrize(
    ("how", "detail"), [("not_removed", "exporter thread is stuck"), ("raise", "OSError: disk full")]
)
async def test_callbacks_that_may_remain_disable_later_changes(fake_builtin: Any, how: str, detail: str) -> None:
    await plugin_api.initialize(
        {"components": [{"kind": "fake_builtin", "config": {"teardown": how, "subscriber": "s"}}]}
    )
    with pytest.raises(
        RuntimeError, match=f"'nemo-relay-plugin.v1.fake_builtin:1:shutdown' could not be removed: {detail}"
    ):
        await plugin_api.clear_async()
    assert names() == []  # the subscriber was still removed
    with pytest.raises(RuntimeError, match="plugin configuration mutations are disabled for this process"):
        await plugin_api.initialize({"components": []})
    with pytest.raises(RuntimeError, match="mutations are disabled"):
        await plugin_api.clear_async()


async def test_teardowns_run_in_reverse_order_with_the_time_left(
    fake_builtin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real = intercepts.deregister_tool_request
    monkeypatch.setattr(intercepts, "deregister_tool_request", lambda name: order.append("third") or real(name))

    def steps(config: dict[str, Any], context: Any) -> None:
        context.register_subscriber("first", lambda event: None)
        context.add_teardown("second", lambda left: order.append(f"second:{left is not None and 0 < left <= 7}"))
        context.register_tool_request_intercept("third", 0, False, lambda name, args: args)

    register_kind("ordered", steps)
    await plugin_api.initialize(
        {"components": [{"kind": "fake_builtin", "config": {"teardown": "removed"}}, {"kind": "ordered"}]}
    )
    await plugin_api.clear_async(timeout=7)
    assert order == ["third", "second:True"]
    assert fake_builtin.torn_down and 0 < fake_builtin.torn_down[0] <= 7


# --- clear ----------------------------------------------------------------------------------------------------


async def test_clear_refuses_to_block_a_running_loop() -> None:
    with pytest.raises(
        RuntimeError,
        match=r"^plugin\.clear\(\) cannot block a running asyncio event loop; use 'await plugin\.clear_async\(\)'$",
    ):
        plugin_api.clear()


def test_sync_clear_and_clear_with_nothing_active() -> None:
    plugin_api.clear()
    register_kind("tagger", tag_tool_args)
    asyncio.run(plugin_api.initialize({"components": [{"kind": "tagger", "config": {"tag": 1}}]}))
    plugin_api.clear()
    assert names() == []
    assert plugin_api.report() is None
    with pytest.raises(ValueError, match="positive"):
        plugin_api.clear(timeout=0)


async def test_concurrent_clears_share_one_teardown_and_survive_cancellation(fake_builtin: Any) -> None:
    release = threading.Event()
    calls: list[int] = []

    def blocking(left: float | None) -> None:
        calls.append(1)
        release.wait(10)

    register_kind("blocking", lambda config, context: context.add_teardown("stop", blocking))
    await plugin_api.initialize({"components": [{"kind": "blocking"}]})
    first = asyncio.ensure_future(plugin_api.clear_async())
    second = asyncio.ensure_future(plugin_api.clear_async())
    while not calls:
        await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not second.done()
    release.set()
    await second
    assert calls == [1]
    assert plugin_api.report() is None


async def test_a_teardown_that_overruns_its_deadline_fails_clear_and_blocks_changes_until_it_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(activation, "WAIT_GRACE", 0.05)
    release = threading.Event()
    register_kind("stuck", lambda config, context: context.add_teardown("stop", lambda left: release.wait(10)))
    await plugin_api.initialize({"components": [{"kind": "stuck"}]})
    with pytest.raises(RuntimeError, match=r"teardown did not finish within 0\.1s"):
        await plugin_api.clear_async(timeout=0.1)
    with pytest.raises(RuntimeError, match="plugin configuration is busy"):
        await plugin_api.initialize({"components": []})
    release.set()
    while not activation._overdue.done():  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
    assert await plugin_api.initialize({"components": []}) == {"diagnostics": []}


async def test_changes_from_inside_a_plugin_callback_are_refused() -> None:
    errors: list[str] = []

    def reentrant(config: dict[str, Any], context: Any) -> None:
        try:
            plugin_api.clear()
        except RuntimeError as exc:
            errors.append(str(exc))

    register_kind("reentrant", reentrant)
    await plugin_api.initialize({"components": [{"kind": "reentrant"}]})
    assert errors == [
        "plugin configuration cannot change from inside a plugin's validate, register or teardown callback; "
        "change it after plugin.initialize()/plugin.clear() has returned"
    ]


async def test_initialize_completes_even_if_the_caller_is_cancelled() -> None:
    release = threading.Event()
    register_kind("slow", lambda config, context: (release.wait(10), tag_tool_args(config, context)))
    task = asyncio.ensure_future(plugin_api.initialize({"components": [{"kind": "slow", "config": {"tag": "t"}}]}))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    while names() != ["nemo-relay-plugin.v1.slow:1:tag"]:  # the transaction still completes
        await asyncio.sleep(0.01)
    await plugin_api.clear_async()
    assert names() == []


# --- the context manager --------------------------------------------------------------------------------------


async def test_plugin_context_manager_initializes_and_clears() -> None:
    register_kind("tagger", tag_tool_args)
    config = {"components": [{"kind": "tagger", "config": {"tag": "cm"}}]}
    async with plugin_api.plugin(config) as report:
        assert report == {"diagnostics": []} == plugin_api.report()
        assert (await tools.execute("t", {}, echo)).result == {"tag": "cm"}
    assert plugin_api.report() is None
    with pytest.raises(KeyError):
        async with plugin_api.plugin(config):
            raise KeyError("body failed")
    assert names() == []
    async with plugin_api.plugin(config, clear_on_exit=False):
        pass
    assert names() == ["nemo-relay-plugin.v1.tagger:1:tag"]


async def test_agent_scope_events_reach_a_plugin_subscriber(fake_builtin: Any) -> None:
    await plugin_api.initialize({"components": [{"kind": "fake_builtin", "config": {"subscriber": "events"}}]})
    with scope.scope("agent", ScopeType.Agent):
        scope.event("step")
    await plugin_api.clear_async()
    assert [getattr(e, "scope_category", "mark") for e in fake_builtin.events] == ["start", "mark", "end"]
