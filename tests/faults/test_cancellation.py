"""Faults: asyncio cancellation and ``KeyboardInterrupt`` wherever user code runs in a managed call or a scope.

Every place a callback runs during ``tools.execute``, ``llm.execute`` and ``llm.stream_execute`` (the tool / provider
callback, stream iteration with its collector and finalizer, conditional guardrails, request intercepts, execution
and stream execution intercepts, sanitize guardrails) and ``scope.scope`` blocks is made to raise
``KeyboardInterrupt`` (from a plain function, from a coroutine before it first waits, after it waited) or to wait
forever and be cancelled (``task.cancel()``, ``asyncio.wait_for``, ``asyncio.timeout``, a failing ``TaskGroup``
sibling). Each case checks that

(a) the caller gets the exception unchanged (the same ``KeyboardInterrupt`` object, never chained to itself; a
    ``CancelledError``, or what asyncio turns it into: ``TimeoutError``, an ``ExceptionGroup`` of the sibling);
(b) the call and every scope opened are closed exactly once, the end event marking the failure: calls get
    ``otel.status_code = ERROR`` with ``"tool execution cancelled"`` / ``"LLM execution cancelled"`` (spec §3.3 and
    §3.5) or, for an interrupt, the description ``scope.scope`` uses (``"KeyboardInterrupt"``) plus ``error.type``
    and ``exception.type``; guardrails get their ``cancelled`` / ``error`` end data;
(c) the scope stack (and the active-call context variable) is as it was;
(d) no asyncio, ``warnings`` or unraisable-exception noise ("Task was destroyed but it is pending", "coroutine ...
    was never awaited", "Exception in callback", "exception was never retrieved"), no leftover pending task;
(e) the runtime still works afterwards: a following tool, LLM and stream call are delivered;
(f) subscribers receive every event (checked as exact sequences after ``flush``).

One asyncio rule shapes the interrupt cases: asyncio lets ``KeyboardInterrupt`` out of the task that raised it and
stops the loop. A callback that raises it before the managed call first waits runs on the caller's own task, so the
awaiting code gets it directly. Once the call has waited it continues in its own task (``execute`` returns a running
future), so the interrupt leaves ``asyncio.run`` (still the same object) and the awaiting code is cancelled by
``asyncio.run``'s shutdown: its scopes end as cancelled, the call itself records the interrupt. Stream iteration
always runs on the consumer's task, so interrupts raised while iterating reach the consumer directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import nemo_relay
from nemo_relay import (
    LLMRequest,
    LLMRequestInterceptOutcome,
    ScopeType,
    ToolExecutionResult,
    guardrails,
    intercepts,
    llm,
    scope,
    subscribers,
    tools,
    typed,
)
from nemo_relay._core.context import _active_event_var, current

pytestmark = pytest.mark.timeout(60)

REQUEST = LLMRequest({"x-app": "demo"}, {"messages": [{"role": "user", "content": "hi"}]})
META = {"m": 1}
KI_STATUS = {
    "otel.status_code": "ERROR",
    "otel.status_description": "KeyboardInterrupt",
    "error.type": "internal_error",
    "exception.type": "KeyboardInterrupt",
}
TOOL_CANCELLED = {"otel.status_code": "ERROR", "otel.status_description": "tool execution cancelled"}
LLM_CANCELLED = {"otel.status_code": "ERROR", "otel.status_description": "LLM execution cancelled"}
SCOPE_KI = {"otel.status_code": "ERROR", "otel.status_description": "KeyboardInterrupt"}
SCOPE_CANCELLED = {"otel.status_code": "ERROR", "otel.status_description": "cancelled"}
GUARD_KI = {"allowed": False, "error": "KeyboardInterrupt"}
GUARD_CANCELLED = {"allowed": False, "cancelled": True, "error": "guardrail evaluation cancelled"}
OK = {"otel.status_code": "OK"}
DROPPED = "stream dropped before clean completion"
NOISE = ("Task was destroyed", "never awaited", "Exception in callback", "never retrieved", "Exception ignored")


# --- observation helpers -----------------------------------------------------------------------------------------


def phase(event: Any) -> str:
    return getattr(event, "scope_category", "mark")


def shape(evs: list[Any]) -> list[tuple[str, str]]:
    return [(phase(e), e.name) for e in evs]


def stack_ids() -> list[str]:
    """The current scope stack, root first."""
    return [frame.uuid for frame in current()._handles()]


def assert_well_formed(evs: list[Any]) -> None:
    """Every scope (guardrail, tool and LLM scopes included) starts once and ends exactly once, after its start."""
    open_: dict[str, Any] = {}
    closed: set[str] = set()
    for event in evs:
        if phase(event) == "start":
            assert event.uuid not in open_ and event.uuid not in closed, f"{event.name} started twice"
            open_[event.uuid] = event
        elif phase(event) == "end":
            assert event.uuid in open_, f"{event.name} ended without being open (or twice)"
            assert event.timestamp >= open_.pop(event.uuid).timestamp
            closed.add(event.uuid)
    assert not open_, f"never closed: {[e.name for e in open_.values()]}"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def leftover_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still pending besides the caller (a pipeline, ``next`` branch or callback that outlived its call)."""
    me = asyncio.current_task()
    return [task for task in asyncio.all_tasks() if task is not me and not task.done()]


class Watch:
    """Runs ``asyncio.run(main())`` and fails on any asyncio, warnings, unraisable or stderr noise."""

    warmed = False

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
        self.caplog = caplog
        self.capsys = capsys
        self.stderr = ""
        caplog.set_level(logging.WARNING, logger="asyncio")

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        """The result of ``main()``, or the exception ``asyncio.run`` raised (``KeyboardInterrupt`` included)."""
        unraisable: list[Any] = []
        hook = sys.unraisablehook
        sys.unraisablehook = unraisable.append
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    outcome: Any = asyncio.run(main())
                except BaseException as exc:  # KeyboardInterrupt too: the test asserts on it
                    outcome = exc
                assert subscribers.flush(timeout=10)
                gc.collect()  # cheap: see ``_young_heap``
        finally:
            sys.unraisablehook = hook
        assert [str(w.message) for w in caught] == []
        assert [repr(u.exc_value) for u in unraisable] == []
        asyncio_records = [r.getMessage() for r in self.caplog.records if r.name.startswith("asyncio")]
        assert asyncio_records == []
        self.stderr = self.capsys.readouterr().err
        assert not [line for line in self.stderr.splitlines() if any(noise in line for noise in NOISE)]
        return outcome


@pytest.fixture(scope="module", autouse=True)
def _young_heap() -> Iterator[None]:
    """Freeze what exists before this module, so each ``gc.collect()`` (run after every case to surface "never
    awaited" warnings and unraisable errors) only scans what the cases allocate."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture
def watch(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], events: Any) -> Watch:
    if not Watch.warmed:  # the first calls import lazily loaded modules: keep that out of the timed cases
        Watch.warmed = True
        asyncio.run(follow_up())
        events.flush().clear()
    return Watch(caplog, capsys)


# --- well-behaved callbacks ----------------------------------------------------------------------------------------


def ignore(*args: Any) -> None:
    return None


def tool_ok(reached: list[str]) -> Callable[[Any], ToolExecutionResult[Any]]:
    def func(args: Any) -> ToolExecutionResult[Any]:
        reached.append("tool")
        return ToolExecutionResult({"ok": True})

    return func


def llm_ok(reached: list[str]) -> Callable[[LLMRequest], Any]:
    def func(request: LLMRequest) -> Any:
        reached.append("llm")
        return {"text": "hello"}

    return func


def producer(reached: list[str]) -> Callable[[LLMRequest], AsyncIterator[Any]]:
    async def func(request: LLMRequest) -> AsyncIterator[Any]:
        reached.append("stream")
        yield {"i": 0}
        yield {"i": 1}

    return func


FOLLOW_UP = [
    ("start", "after"),
    ("start", "t2"),
    ("end", "t2"),
    ("start", "l2"),
    ("end", "l2"),
    ("start", "s2"),
    ("mark", "llm.chunk"),
    ("mark", "llm.chunk"),
    ("end", "s2"),
    ("end", "after"),
]


async def follow_up() -> None:
    """(e) A tool, an LLM and a stream call, all fine, in a scope of their own."""
    with scope.scope("after", ScopeType.Function):
        result = await tools.execute("t2", {"b": 2}, tool_ok([]))
        response = await llm.execute("l2", REQUEST, llm_ok([]))
        stream = await llm.stream_execute("s2", REQUEST, producer([]), lambda chunk: None, lambda: {"done": True})
        chunks = [chunk async for chunk in stream]
    assert result.result == {"ok": True}
    assert response == {"text": "hello"}
    assert chunks == [{"i": 0}, {"i": 1}]


def assert_follow_up_delivered(evs: list[Any]) -> None:
    assert shape(evs) == FOLLOW_UP
    assert_well_formed(evs)
    assert all(e.metadata == OK for e in evs if phase(e) == "end")


# --- the misbehaving callback ----------------------------------------------------------------------------------------


class Fault:
    """A user callback that fails as ``mode`` says, recording what happened to it.

    ``sync`` raises ``KeyboardInterrupt`` from a plain function; ``async`` from a coroutine before its first wait;
    ``suspended`` after one wait; ``block`` waits until cancelled. ``stream`` is a producer that yields one chunk
    and then fails the same way.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.error = KeyboardInterrupt()
        self.entered = asyncio.Event()
        self.cancelled = False
        self.closed = False

    def __call__(self, *args: Any) -> Any:
        if self.mode == "sync":
            raise self.error
        return self._fail()

    async def _fail(self) -> Any:
        if self.mode == "suspended":
            await asyncio.sleep(0)
        elif self.mode == "block":
            self.entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        raise self.error

    def stream(self, *args: Any) -> _FaultyStream:
        return _FaultyStream(self)


class _FaultyStream:
    """Yields ``{"i": 0}``, then fails; a ``sync`` fault raises from ``__anext__`` itself."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.pulled = 0

    def __aiter__(self) -> _FaultyStream:
        return self

    def __anext__(self) -> Awaitable[Any]:
        self.pulled += 1
        if self.pulled == 1:
            return _value({"i": 0})
        if self.fault.mode == "sync":
            raise self.fault.error
        return self.fault._fail()

    async def aclose(self) -> None:
        self.fault.closed = True


async def _value(value: Any) -> Any:
    return value


# --- where the fault is injected -------------------------------------------------------------------------------------


def _registered(register: Callable[..., None], deregister: Callable[[str], bool], *args: Any) -> Callable[[], Any]:
    register("g", 0, *args)
    return lambda: deregister("g")


def _nothing(fault: Fault) -> Callable[[], Any]:
    return lambda: None


@dataclass(frozen=True)
class Site:
    id: str
    kind: str  # "tool", "llm" or "stream"
    records: str  # what the faulty call records: "guardrail", "nothing", "call" (start and end) or "chunks"
    install: Callable[[Fault], Callable[[], Any]] = _nothing
    chunks: int = 0  # llm.chunk marks before the fault
    consumer: bool = False  # the fault happens while the consumer iterates (on its task)
    reaches_func: bool = False  # the (well-behaved) tool / provider callback ran
    modes: tuple[str, ...] = ("sync", "async", "suspended", "block")


SITES = [
    Site("tool.func", "tool", "call"),
    Site(
        "tool.conditional",
        "tool",
        "guardrail",
        lambda f: _registered(
            guardrails.register_tool_conditional_execution, guardrails.deregister_tool_conditional_execution, f
        ),
    ),
    Site(
        "tool.request",
        "tool",
        "nothing",
        lambda f: _registered(intercepts.register_tool_request, intercepts.deregister_tool_request, False, f),
    ),
    Site(
        "tool.execution",
        "tool",
        "call",
        lambda f: _registered(intercepts.register_tool_execution, intercepts.deregister_tool_execution, f),
    ),
    Site("llm.provider", "llm", "call"),
    Site(
        "llm.conditional",
        "llm",
        "guardrail",
        lambda f: _registered(
            guardrails.register_llm_conditional_execution, guardrails.deregister_llm_conditional_execution, f
        ),
    ),
    Site(
        "llm.request",
        "llm",
        "nothing",
        lambda f: _registered(intercepts.register_llm_request, intercepts.deregister_llm_request, False, f),
    ),
    Site(
        "llm.execution",
        "llm",
        "call",
        lambda f: _registered(intercepts.register_llm_execution, intercepts.deregister_llm_execution, f),
    ),
    Site("stream.provider", "stream", "call"),  # func fails before returning the iterator
    Site(
        "stream.conditional",
        "stream",
        "guardrail",
        lambda f: _registered(
            guardrails.register_llm_conditional_execution, guardrails.deregister_llm_conditional_execution, f
        ),
    ),
    Site(
        "stream.request",
        "stream",
        "nothing",
        lambda f: _registered(intercepts.register_llm_request, intercepts.deregister_llm_request, False, f),
    ),
    Site(
        "stream.intercept",  # a stream execution intercept fails before returning an iterator
        "stream",
        "call",
        lambda f: _registered(intercepts.register_llm_stream_execution, intercepts.deregister_llm_stream_execution, f),
    ),
    Site(
        "stream.intercept_iterating",  # the iterator a stream execution intercept returned fails mid-stream
        "stream",
        "chunks",
        lambda f: _registered(
            intercepts.register_llm_stream_execution, intercepts.deregister_llm_stream_execution, f.stream
        ),
        chunks=1,
        consumer=True,
    ),
    Site("stream.producer", "stream", "chunks", chunks=1, consumer=True),  # the provider's iterator, mid-stream
    Site("stream.collector", "stream", "chunks", chunks=1, consumer=True, reaches_func=True),
    Site("stream.finalizer", "stream", "chunks", chunks=2, consumer=True, reaches_func=True, modes=("sync",)),
]
CALL_NAMES = {"tool": "t", "llm": "l", "stream": "s"}


async def invoke(site: Site, fault: Fault, reached: list[str]) -> Any:
    """The managed call of ``site``, with the fault where the site says."""
    if site.kind == "tool":
        func: Any = fault if site.id == "tool.func" else tool_ok(reached)
        return await tools.execute("t", {"a": 1}, func, metadata=META, tool_call_id="call-1")
    if site.kind == "llm":
        func = fault if site.id == "llm.provider" else llm_ok(reached)
        return await llm.execute("l", REQUEST, func, metadata=META, model_name="mdl")
    func = {"stream.provider": fault, "stream.producer": fault.stream}.get(site.id, producer(reached))
    collector = fault if site.id == "stream.collector" else (lambda chunk: None)
    finalizer = fault if site.id == "stream.finalizer" else (lambda: {"final": True})
    stream = await llm.stream_execute("s", REQUEST, func, collector, finalizer, metadata=META, model_name="mdl")
    return [chunk async for chunk in stream]


async def unit(site: Site, fault: Fault, seen: list[BaseException], reached: list[str]) -> Any:
    """What an application does: a managed call inside its own scope. Records what the awaiting code saw."""
    with scope.scope("outer", ScopeType.Agent):
        try:
            return await invoke(site, fault, reached)
        except BaseException as exc:
            seen.append(exc)
            raise


def check_records(evs: list[Any], site: Site, interrupted: bool, outer: dict[str, str]) -> None:
    """(b) + (f): the exact delivered sequence and how each end marks the failure."""
    name = CALL_NAMES[site.kind]
    middle: list[tuple[str, str]] = []
    if site.records == "guardrail":
        middle = [("start", "g"), ("end", "g")]
    elif site.records in ("call", "chunks"):
        middle = [("start", name), *[("mark", "llm.chunk")] * site.chunks, ("end", name)]
    assert shape(evs) == [("start", "outer"), *middle, ("end", "outer")]
    assert_well_formed(evs)
    assert evs[-1].metadata == outer
    if site.records == "guardrail":
        assert evs[2].data == (GUARD_KI if interrupted else GUARD_CANCELLED)
    if site.records in ("call", "chunks"):
        end = evs[-2]
        cancelled = TOOL_CANCELLED if site.kind == "tool" else LLM_CANCELLED
        assert end.metadata == {**META, **(KI_STATUS if interrupted else cancelled)}
        if site.kind == "tool":
            assert end.category_profile == {"tool_call_id": "call-1"}  # kept on failure and cancellation
            assert end.data is None
        else:
            assert end.category_profile["model_name"] == "mdl"
            final = None if site.records == "call" or site.id == "stream.finalizer" else {"final": True}
            assert end.data == final  # a cut-short stream still records the finalizer's output


def ki_cases() -> list[Any]:
    return [
        pytest.param(site, mode, id=f"{site.id}-{mode}") for site in SITES for mode in site.modes if mode != "block"
    ]


def cancel_cases() -> list[Any]:
    return [
        pytest.param(site, driver, id=f"{site.id}-{driver}")
        for site in SITES
        if "block" in site.modes
        for driver in ("cancel", "wait_for", "timeout", "taskgroup")
    ]


# --- KeyboardInterrupt, everywhere -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("site", "mode"), ki_cases())
def test_keyboard_interrupt_inside_a_managed_call(site: Site, mode: str, events: Any, watch: Watch) -> None:
    fault = Fault(mode)
    uninstall = site.install(fault)
    before = stack_ids()
    seen: list[BaseException] = []
    reached: list[str] = []
    inside: list[Any] = []

    async def main() -> None:
        try:
            await unit(site, fault, seen, reached)
        except KeyboardInterrupt:
            await settle()
            inside.extend([stack_ids(), _active_event_var.get(), leftover_tasks()])
            raise

    raised = watch.run(main)
    # (a) the very same interrupt leaves asyncio.run, unchained
    assert raised is fault.error
    assert raised.__cause__ is None
    direct = site.consumer or mode != "suspended"
    if direct:  # raised on the caller's task: the awaiting code gets it as is
        assert seen == [fault.error]
        assert inside == [before, None, []]  # (c) and no task left behind, checked on the live loop
    else:  # raised on the call's own task, after it waited: asyncio.run cancels the awaiting code on the way out
        assert [type(e) for e in seen] == [asyncio.CancelledError]
    assert reached == (["stream"] if site.reaches_func else [])
    # (c)
    assert stack_ids() == before
    assert _active_event_var.get() is None
    # (b) + (f)
    evs = list(events.flush())
    check_records(evs, site, interrupted=True, outer=SCOPE_KI if direct else SCOPE_CANCELLED)
    # (e) the same runtime, middleware removed, works and delivers
    uninstall()
    assert watch.run(follow_up) is None
    assert_follow_up_delivered(events.flush()[len(evs) :])
    assert stack_ids() == before


# --- cancellation, everywhere ----------------------------------------------------------------------------------------


async def drive(driver: str, site: Site, fault: Fault, seen: list[BaseException], reached: list[str]) -> None:
    """Cancel ``unit`` while ``fault`` waits, the way ``driver`` says; assert what the caller gets."""
    if driver == "cancel":
        task = asyncio.create_task(unit(site, fault, seen, reached))
        await fault.entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
    elif driver == "wait_for":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(unit(site, fault, seen, reached), timeout=0.03)
    elif driver == "timeout":
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as deadline:

                async def expire_once_waiting() -> None:
                    await fault.entered.wait()
                    deadline.reschedule(asyncio.get_running_loop().time())

                timer = asyncio.create_task(expire_once_waiting())
                try:
                    await unit(site, fault, seen, reached)
                finally:
                    timer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await timer
    else:

        async def sibling() -> None:
            await fault.entered.wait()
            raise ValueError("sibling failed")

        with pytest.raises(ExceptionGroup) as group_error:
            async with asyncio.TaskGroup() as group:
                group.create_task(unit(site, fault, seen, reached))
                group.create_task(sibling())
        assert [repr(e) for e in group_error.value.exceptions] == ["ValueError('sibling failed')"]


@pytest.mark.parametrize(("site", "driver"), cancel_cases())
def test_cancellation_inside_a_managed_call(site: Site, driver: str, events: Any, watch: Watch) -> None:
    fault = Fault("block")
    uninstall = site.install(fault)
    before = stack_ids()
    seen: list[BaseException] = []
    reached: list[str] = []

    async def main() -> list[Any]:
        await drive(driver, site, fault, seen, reached)
        await settle()
        return [stack_ids(), _active_event_var.get(), leftover_tasks()]

    # (a) as asserted in drive; the callback itself was cancelled where it waited; (c) (d) on the live loop
    assert watch.run(main) == [before, None, []]
    assert fault.entered.is_set() and fault.cancelled
    assert [type(e) for e in seen] == [asyncio.CancelledError]
    assert reached == (["stream"] if site.reaches_func else [])  # never called when the cancellation came first
    if site.id == "stream.producer":
        assert fault.closed  # the cancelled producer was closed before the end was recorded
    assert stack_ids() == before
    evs = list(events.flush())
    check_records(evs, site, interrupted=False, outer=SCOPE_CANCELLED)
    uninstall()
    assert watch.run(follow_up) is None
    assert_follow_up_delivered(events.flush()[len(evs) :])


# --- sanitize guardrails (they run on the dispatcher, not in the call) ---------------------------------------------


def _raising_sanitizer(mode: str) -> Callable[..., Any]:
    def sync(*args: Any) -> Any:
        raise KeyboardInterrupt

    async def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    async def cancelled(*args: Any) -> Any:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        await asyncio.sleep(0)

    return {"sync": sync, "async": interrupted, "cancelled": cancelled}[mode]


SANITIZERS = {
    "tool.request": (guardrails.register_tool_sanitize_request, guardrails.deregister_tool_sanitize_request, "t", 0),
    "tool.response": (guardrails.register_tool_sanitize_response, guardrails.deregister_tool_sanitize_response, "t", 1),
    "llm.request": (guardrails.register_llm_sanitize_request, guardrails.deregister_llm_sanitize_request, "l", 0),
    "llm.response": (guardrails.register_llm_sanitize_response, guardrails.deregister_llm_sanitize_response, "l", 1),
}


@pytest.mark.parametrize("mode", ["sync", "async", "cancelled"])
@pytest.mark.parametrize("family", list(SANITIZERS))
def test_interrupted_or_cancelled_sanitizer_fails_closed_and_the_call_goes_on(
    family: str, mode: str, events: Any, watch: Watch
) -> None:
    """A sanitizer runs on the publication path, not in the caller: its failure omits the payload and is reported;
    the call itself, its events and the dispatcher carry on."""
    register, deregister, name, failing_event = SANITIZERS[family]
    register("san", 0, _raising_sanitizer(mode))
    before = stack_ids()

    async def main() -> Any:
        with scope.scope("outer", ScopeType.Agent):
            if name == "t":
                result: Any = (await tools.execute("t", {"a": 1}, tool_ok([]), metadata=META)).result
            else:
                result = await llm.execute("l", REQUEST, llm_ok([]), metadata=META)
        await subscribers.flush_async()  # async sanitizers run on this loop
        await settle()
        return [result, leftover_tasks()]

    assert watch.run(main) in ([{"ok": True}, []], [{"text": "hello"}, []])
    failure = "CancelledError" if mode == "cancelled" else "KeyboardInterrupt"
    assert "callable failed: " + failure in watch.stderr
    evs = list(events.flush())
    assert shape(evs) == [("start", "outer"), ("start", name), ("end", name), ("end", "outer")]
    assert_well_formed(evs)
    assert evs[1 + failing_event].data is None  # failed closed: the unsanitized payload is not let through
    assert evs[2].metadata == {**META, **OK}
    assert stack_ids() == before
    deregister("san")
    assert watch.run(follow_up) is None
    assert_follow_up_delivered(events.flush()[len(evs) :])


# --- the typed wrappers -----------------------------------------------------------------------------------------------

TYPED_SITES = {
    "tool": Site("typed.tool", "tool", "call"),
    "llm": Site("typed.llm", "llm", "call"),
    "stream": Site("typed.stream", "stream", "chunks", chunks=1, consumer=True),
}


@pytest.mark.parametrize("mode", ["sync", "block"], ids=["keyboard-interrupt", "cancelled"])
@pytest.mark.parametrize("kind", list(TYPED_SITES))
def test_typed_wrappers(kind: str, mode: str, events: Any, watch: Watch) -> None:
    """``typed.tool_execute`` / ``llm_execute`` / ``llm_stream_execute`` wrap the callback in their own coroutine:
    the caller still gets the interrupt or the cancellation as is, and the call records it."""
    site = TYPED_SITES[kind]
    fault = Fault(mode)
    codec = typed.JsonPassthrough()
    before = stack_ids()
    seen: list[BaseException] = []

    async def call() -> None:
        with scope.scope("outer", ScopeType.Agent):
            try:
                if kind == "tool":
                    await typed.tool_execute("t", {"a": 1}, fault, codec, codec, metadata=META, tool_call_id="call-1")
                elif kind == "llm":
                    await typed.llm_execute("l", REQUEST, fault, codec, metadata=META, model_name="mdl")
                else:
                    final = {"final": True}
                    stream = await typed.llm_stream_execute(
                        "s", REQUEST, fault.stream, ignore, lambda: final, codec, codec, metadata=META, model_name="mdl"
                    )
                    async for _ in stream:
                        pass
            except BaseException as exc:
                seen.append(exc)
                raise

    async def main() -> list[Any]:
        if mode == "sync":
            with pytest.raises(KeyboardInterrupt):
                await call()
        else:
            task = asyncio.create_task(call())
            await fault.entered.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await settle()
        return [stack_ids(), leftover_tasks()]

    assert watch.run(main) == [before, []]
    if mode == "sync":
        assert seen == [fault.error] and fault.error.__cause__ is None
    else:
        assert [type(e) for e in seen] == [asyncio.CancelledError] and fault.cancelled
    evs = list(events.flush())
    check_records(evs, site, interrupted=mode == "sync", outer=SCOPE_KI if mode == "sync" else SCOPE_CANCELLED)


# --- scope blocks ----------------------------------------------------------------------------------------------------


def test_nested_sync_scope_blocks_close_on_keyboard_interrupt_without_a_loop(events: Any) -> None:
    before = stack_ids()
    error = KeyboardInterrupt()
    with (
        pytest.raises(KeyboardInterrupt) as info,
        scope.scope("a", ScopeType.Agent) as a,
        scope.scope("b", ScopeType.Function) as b,
        scope.scope("c", ScopeType.Tool),
    ):
        assert stack_ids()[-3:-1] == [a.uuid, b.uuid]
        raise error
    assert info.value is error and error.__cause__ is None
    assert stack_ids() == before
    evs = events.flush()
    assert shape(evs) == [("start", "a"), ("start", "b"), ("start", "c"), ("end", "c"), ("end", "b"), ("end", "a")]
    assert_well_formed(evs)
    assert [e.metadata for e in evs[3:]] == [SCOPE_KI] * 3


def test_decorated_function_scope_closes_on_keyboard_interrupt_every_call(events: Any) -> None:
    @scope.scope("decorated", ScopeType.Function)
    def work() -> None:
        raise KeyboardInterrupt

    before = stack_ids()
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            work()
        assert stack_ids() == before
    evs = events.flush()
    assert shape(evs) == [("start", "decorated"), ("end", "decorated")] * 2
    assert_well_formed(evs)
    assert evs[0].uuid != evs[2].uuid
    assert [e.metadata for e in evs if phase(e) == "end"] == [SCOPE_KI] * 2


def test_async_scope_blocks_and_a_managed_call_keep_the_cancel_message(events: Any, watch: Watch) -> None:
    """``task.cancel("shutdown")``: the caller's CancelledError carries the message and the scopes record it."""
    before = stack_ids()
    entered = asyncio.Event()

    async def tool(args: Any) -> Any:
        entered.set()
        await asyncio.Event().wait()

    async def work() -> None:
        async with scope.scope("a", ScopeType.Agent), scope.scope("b", ScopeType.Function):
            await tools.execute("t", {}, tool, tool_call_id="call-9")

    async def main() -> list[Any]:
        task = asyncio.create_task(work())
        await entered.wait()
        task.cancel("shutdown")
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        await settle()
        return [info.value.args, stack_ids(), leftover_tasks()]

    assert watch.run(main) == [("shutdown",), before, []]
    evs = events.flush()
    assert shape(evs) == [("start", "a"), ("start", "b"), ("start", "t"), ("end", "t"), ("end", "b"), ("end", "a")]
    assert_well_formed(evs)
    shutdown = {"otel.status_code": "ERROR", "otel.status_description": "shutdown"}
    assert [e.metadata for e in evs[3:]] == [TOOL_CANCELLED, shutdown, shutdown]
    assert evs[3].category_profile == {"tool_call_id": "call-9"}


@pytest.mark.parametrize("middleware", [False, True], ids=["fast-path", "pipeline"])
def test_a_callback_raising_cancelled_error_reaches_the_caller_with_its_message(
    middleware: bool, events: Any, watch: Watch
) -> None:
    """A sync tool that raises ``CancelledError("stop")`` itself: the caller sees a cancellation with that message."""
    if middleware:
        intercepts.register_tool_request("pass", 0, False, lambda name, args: args)

    def tool(args: Any) -> Any:
        raise asyncio.CancelledError("stop")

    async def main() -> list[Any]:
        future = tools.execute("t", {}, tool)
        with pytest.raises(asyncio.CancelledError) as info:
            await future
        return [future.cancelled(), info.value.args]

    assert watch.run(main) == [True, ("stop",)]
    evs = events.flush()
    assert shape(evs) == [("start", "t"), ("end", "t")]
    assert evs[1].metadata == TOOL_CANCELLED


# --- exact sequences for representative cases ----------------------------------------------------------------------


def test_exact_sequence_scope_inside_a_cancelled_tool(events: Any, watch: Watch) -> None:
    """The tool opens a scope and waits; cancelling the caller closes the tool's scope, the tool, then the caller's."""
    entered = asyncio.Event()
    before = stack_ids()

    async def tool(args: Any) -> Any:
        with scope.scope("inner", ScopeType.Function):
            entered.set()
            await asyncio.Event().wait()

    async def work() -> None:
        with scope.scope("outer", ScopeType.Agent):
            await tools.execute("t", {"q": 1}, tool, metadata=META, tool_call_id="call-1")

    async def main() -> list[Any]:
        task = asyncio.create_task(work())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        return [stack_ids(), leftover_tasks()]

    assert watch.run(main) == [before, []]
    outer, tool_start, inner, inner_end, tool_end, outer_end = evs = events.flush()
    assert shape(evs) == [
        ("start", "outer"),
        ("start", "t"),
        ("start", "inner"),
        ("end", "inner"),
        ("end", "t"),
        ("end", "outer"),
    ]
    assert_well_formed(evs)
    assert tool_start.parent_uuid == outer.uuid
    assert inner.parent_uuid == outer.uuid  # tool calls do not push scopes
    assert tool_start.data == {"q": 1}
    assert inner_end.metadata == SCOPE_CANCELLED
    assert tool_end.metadata == {**META, **TOOL_CANCELLED}
    assert tool_end.category_profile == {"tool_call_id": "call-1"}
    assert outer_end.metadata == SCOPE_CANCELLED


def test_exact_sequence_keyboard_interrupt_after_the_tool_waited(events: Any, watch: Watch) -> None:
    """The asyncio rule (module docstring): the tool's own scope and the tool record the interrupt, the caller's
    scope is cancelled by ``asyncio.run``'s shutdown, and ``asyncio.run`` raises the very same interrupt."""
    error = KeyboardInterrupt()
    seen: list[BaseException] = []
    before = stack_ids()

    async def tool(args: Any) -> Any:
        with scope.scope("inner", ScopeType.Function):
            await asyncio.sleep(0)
            raise error

    async def main() -> None:
        with scope.scope("outer", ScopeType.Agent):
            try:
                await tools.execute("t", {}, tool, tool_call_id="call-2")
            except BaseException as exc:
                seen.append(exc)
                raise

    assert watch.run(main) is error
    assert [type(e) for e in seen] == [asyncio.CancelledError]
    assert stack_ids() == before
    evs = events.flush()
    assert shape(evs) == [
        ("start", "outer"),
        ("start", "t"),
        ("start", "inner"),
        ("end", "inner"),
        ("end", "t"),
        ("end", "outer"),
    ]
    assert_well_formed(evs)
    assert [e.metadata for e in evs[3:]] == [SCOPE_KI, KI_STATUS, SCOPE_CANCELLED]
    assert evs[4].category_profile == {"tool_call_id": "call-2"}


def test_exact_sequence_stream_cancelled_while_iterating(events: Any, watch: Watch) -> None:
    entered = asyncio.Event()
    log: list[str] = []

    async def provider(request: LLMRequest) -> AsyncIterator[Any]:
        try:
            yield {"i": 0}
            entered.set()
            await asyncio.Event().wait()
            yield {"i": 1}
        finally:
            log.append("producer closed")

    async def consume() -> None:
        with scope.scope("outer", ScopeType.Agent):
            stream = await llm.stream_execute(
                "s", REQUEST, provider, lambda chunk: log.append("collected"), lambda: {"partial": True}
            )
            async for _ in stream:
                pass

    async def main() -> list[Any]:
        task = asyncio.create_task(consume())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        return leftover_tasks()

    assert watch.run(main) == []
    assert log == ["collected", "producer closed"]
    _, start, chunk, end, end_outer = evs = events.flush()
    assert shape(evs) == [("start", "outer"), ("start", "s"), ("mark", "llm.chunk"), ("end", "s"), ("end", "outer")]
    assert_well_formed(evs)
    assert chunk.parent_uuid == start.uuid and chunk.data == {"provider": "unknown", "chunk_index": 0}
    assert end.data == {"partial": True}
    assert end.metadata == LLM_CANCELLED
    assert end_outer.metadata == SCOPE_CANCELLED


def test_exact_sequence_guardrail_cancelled_by_a_timeout(events: Any, watch: Watch) -> None:
    async def guard(request: LLMRequest) -> None:
        await asyncio.Event().wait()

    guardrails.register_llm_conditional_execution("slow-guard", 0, guard)
    provider_calls: list[str] = []

    async def main() -> list[Any]:
        with scope.scope("outer", ScopeType.Agent):
            try:
                async with asyncio.timeout(0.02):
                    await llm.execute("l", REQUEST, llm_ok(provider_calls), metadata=META)
            except TimeoutError:
                pass
        await settle()
        return leftover_tasks()

    assert watch.run(main) == []
    assert provider_calls == []
    evs = events.flush()
    assert shape(evs) == [("start", "outer"), ("start", "slow-guard"), ("end", "slow-guard"), ("end", "outer")]
    assert_well_formed(evs)
    assert evs[1].data == {"kind": "llm_conditional_execution"}
    assert evs[2].data == GUARD_CANCELLED
    assert evs[3].metadata == OK  # the timeout was handled inside the scope


# --- task groups and many concurrent cancellations -----------------------------------------------------------------


def test_task_group_siblings_in_forked_contexts(events: Any, watch: Watch) -> None:
    """One sibling's tool fails; the other sibling's managed LLM call is cancelled by the group. Each records its
    own scope and call, and the parent's stack is untouched."""
    entered = asyncio.Event()
    before = stack_ids()

    async def slow(request: LLMRequest) -> Any:
        entered.set()
        await asyncio.Event().wait()

    def broken(args: Any) -> Any:
        raise ValueError("tool broke")

    async def waiting() -> None:
        with scope.scope("waiting", ScopeType.Agent):
            await llm.execute("slow-llm", REQUEST, slow)

    async def failing() -> None:
        await entered.wait()
        with scope.scope("failing", ScopeType.Agent):
            await tools.execute("broken-tool", {}, broken)

    async def main() -> list[Any]:
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as group:
                group.create_task(waiting(), context=nemo_relay.fork_asyncio_context())
                group.create_task(failing(), context=nemo_relay.fork_asyncio_context())
        await settle()
        return [[str(e) for e in info.value.exceptions], stack_ids(), leftover_tasks()]

    assert watch.run(main) == [["internal error: ValueError: tool broke"], before, []]
    evs = events.flush()
    assert_well_formed(evs)
    ends = {e.name: e.metadata for e in evs if phase(e) == "end"}
    assert ends == {
        "broken-tool": {
            "otel.status_code": "ERROR",
            "otel.status_description": "internal error: ValueError: tool broke",
            "error.type": "internal_error",
            "exception.type": "ValueError",
        },
        "failing": {"otel.status_code": "ERROR", "otel.status_description": "internal error: ValueError: tool broke"},
        "slow-llm": LLM_CANCELLED,
        "waiting": SCOPE_CANCELLED,
    }
    starts = {e.name: e for e in evs if phase(e) == "start"}
    assert starts["slow-llm"].parent_uuid == starts["waiting"].uuid
    assert starts["broken-tool"].parent_uuid == starts["failing"].uuid


def test_many_concurrent_calls_cancelled_at_every_stage(events: Any, watch: Watch) -> None:
    """60 concurrent calls (tool, LLM, stream) behind async middleware, cancelled at staggered moments by timeouts:
    each is closed exactly once, whatever stage it reached, and nothing is left behind."""

    async def guard(*args: Any) -> None:
        await asyncio.sleep(0.001)

    async def tool_intercept(name: str, args: Any, next_call: Any) -> Any:
        downstream = await next_call(args)
        return nemo_relay.ToolExecutionInterceptOutcome(downstream.result, annotation=downstream.annotation)

    async def llm_request(name: str, request: LLMRequest, annotated: Any) -> Any:
        await asyncio.sleep(0.001)
        return LLMRequestInterceptOutcome(request)

    guardrails.register_tool_conditional_execution("g", 0, guard)
    guardrails.register_llm_conditional_execution("g", 0, guard)
    intercepts.register_tool_execution("x", 0, tool_intercept)
    intercepts.register_llm_request("r", 0, False, llm_request)

    async def slow_tool(args: Any) -> Any:
        await asyncio.sleep(0.003)
        return ToolExecutionResult({"ok": True})

    async def slow_llm(request: LLMRequest) -> Any:
        await asyncio.sleep(0.003)
        return {"text": "late"}

    async def slow_stream(request: LLMRequest) -> AsyncIterator[Any]:
        for i in range(3):
            await asyncio.sleep(0.001)
            yield {"i": i}

    async def one(i: int) -> str:
        try:
            async with asyncio.timeout(0.0005 * (i % 12)):
                with scope.scope(f"job-{i}", ScopeType.Function):
                    if i % 3 == 0:
                        await tools.execute(f"tool-{i}", {"i": i}, slow_tool)
                    elif i % 3 == 1:
                        await llm.execute(f"llm-{i}", REQUEST, slow_llm)
                    else:
                        stream = await llm.stream_execute(f"s-{i}", REQUEST, slow_stream, ignore, ignore)
                        async for _ in stream:
                            pass
        except TimeoutError:
            return "timed out"
        return "done"

    async def main() -> list[Any]:
        # Each job in a forked context: concurrent tasks sharing one stack would interleave their scopes.
        jobs = [asyncio.create_task(one(i), context=nemo_relay.fork_asyncio_context()) for i in range(60)]
        outcomes = await asyncio.gather(*jobs)
        await settle()
        return [sorted(set(outcomes)), leftover_tasks()]

    before = stack_ids()
    outcomes, leftovers = watch.run(main)
    assert "timed out" in outcomes and leftovers == []
    assert stack_ids() == before
    evs = events.flush()
    assert_well_formed(evs)  # every scope, guardrail, tool and LLM call closed exactly once
    jobs = [e for e in evs if phase(e) == "end" and e.name.startswith("job-")]
    assert len(jobs) == 60
    # A stream whose caller is cancelled just as ``stream_execute`` resolves never reaches its consumer: it is
    # recorded as dropped when it is collected.
    allowed = {"tool": ("OK", "tool execution cancelled"), "llm": ("OK", "LLM execution cancelled", DROPPED)}
    for end in (e for e in evs if phase(e) == "end" and e.category in allowed):
        status = end.metadata["otel.status_description"] if end.metadata["otel.status_code"] == "ERROR" else "OK"
        assert status in allowed[end.category], end.metadata
