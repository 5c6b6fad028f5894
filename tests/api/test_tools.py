"""Tool calls: the manual lifecycle (``tools.call``/``call_end``), managed execution (``tools.execute``) with its
middleware (conditional guardrails, request intercepts, execution intercepts), cancellation, context variables,
scope-local middleware and the standalone helpers. Expected texts and event shapes were checked against the
reference wheel (nemo-relay 0.8.4)."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import inspect
import logging
import re
import warnings
from collections import UserDict, UserList
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import nemo_relay
from nemo_relay import (
    LogSeverity,
    MarkEvent,
    PendingMarkSpec,
    ScopeEvent,
    ScopeType,
    ToolAttributes,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
    ToolHandle,
    guardrails,
    intercepts,
    scope,
    scope_local,
    subscribers,
    tools,
)

try:
    from nemo_relay import errors as relay_errors
except ImportError:  # the reference wheel has no public error classes
    relay_errors = None

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ONE_US = timedelta(microseconds=1)
CONVERSION_ERROR = "Failed to convert to JSON: unsupported type object"
RAW_RESULT = (
    "invalid argument: tool execution callback must return ToolExecutionResult; return ToolExecutionResult(payload), "
    "not a raw dict: 'dict' object is not an instance of 'ToolExecutionResult'"
)
RAW_OUTCOME = (
    "invalid argument: tool execution intercept must return ToolExecutionInterceptOutcome; after await next(args), "
    "return ToolExecutionInterceptOutcome(result=downstream.result, annotation=downstream.annotation): "
    "'{}' object is not an instance of 'ToolExecutionInterceptOutcome'"
)
CIRCULAR = "internal error: ValueError: Failed to convert to JSON: circular reference detected"
UNEXPECTED_VERDICT = (
    "internal error: tool conditional guardrail returned unexpected type: TypeError: "
    "'int' object is not an instance of 'str'"
)
AWAITABLE_IN_SYNC = "internal error: awaitable Python middleware requires an async caller"
INACTIVE = "invalid argument: execution continuation is no longer active"
ALLOWED = {"allowed": True, "rejected": False}
GUARD_CANCELLED = {"allowed": False, "cancelled": True, "error": "guardrail evaluation cancelled"}
SHUTDOWN_NOISE = ("Event loop is closed", "Task was destroyed but it is pending", "was never awaited")

CALLER_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("tools_test_caller_var", default="unset")


# --- helpers ------------------------------------------------------------------------------------------------


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def when(event: Any) -> datetime:
    """The event timestamp as a UTC datetime (fraction truncated to microseconds)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(?:\+00:00|Z)", event.timestamp)
    assert match, event.timestamp
    fraction = (match.group(2) or "")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}+00:00")


def shape(evs: list[Any]) -> list[tuple[str, str]]:
    """(scope_category or "mark", name) pairs."""
    return [(getattr(e, "scope_category", None) or "mark", e.name) for e in evs]


async def drain(events: Any) -> list[Any]:
    await subscribers.flush_async()
    return list(events)


async def drain_at_least(events: Any, count: int, timeout: float = 10.0) -> list[Any]:
    """Drain until ``count`` events arrived (the reference emits end events of cancelled calls a little later)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    evs = await drain(events)
    while len(evs) < count and loop.time() < deadline:
        await asyncio.sleep(0.005)
        evs = await drain(events)
    return evs


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Yield to the loop until ``predicate()`` holds (a hang guard, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(0.001)


def echo(args: Any) -> ToolExecutionResult[Any]:
    return ToolExecutionResult({"echo": args})


async def follow_up(events: Any) -> None:
    """A plain managed call succeeds afterwards and records an OK start/end pair."""
    events.clear()
    result = await tools.execute("follow-up", {"n": 1}, echo, tool_call_id="call-next")
    assert result.result == {"echo": {"n": 1}}
    start, end = await drain(events)
    assert shape([start, end]) == [("start", "follow-up"), ("end", "follow-up")]
    assert start.uuid == end.uuid
    assert end.data == {"echo": {"n": 1}}
    assert end.metadata == {"otel.status_code": "OK"}
    assert end.category_profile == {"tool_call_id": "call-next"}


def sync_follow_up(events: Any) -> None:
    """A manual call still works afterwards (for tests without a running loop)."""
    events.flush().clear()
    handle = tools.call("follow-up", {"n": 1})
    tools.call_end(handle, ToolExecutionResult("ok"))
    start, end = events.flush()
    assert (start.uuid, start.data, end.data) == (handle.uuid, {"n": 1}, "ok")


def failed_metadata(description: str, exception_type: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata = {**extra, "otel.status_code": "ERROR", "otel.status_description": description}
    if description.startswith("invalid argument: "):
        metadata["error.type"] = "invalid_argument"
    else:
        metadata["error.type"] = "internal_error"
    if exception_type is not None:
        metadata["exception.type"] = exception_type
    return metadata


# --- manual lifecycle: tools.call / tools.call_end ---------------------------------------------------------------


def test_call_and_call_end_record_args_result_and_merged_metadata(events: Any) -> None:
    root = scope.get_handle()
    handle = tools.call("search", {"q": "relay"}, metadata={"source": "test"}, tool_call_id="call-1")
    tools.call_end(handle, ToolExecutionResult({"hits": 2}), metadata={"status": "done"})
    start, end = events.flush()
    assert isinstance(start, ScopeEvent) and isinstance(end, ScopeEvent)
    assert (start.kind, start.scope_category, end.kind, end.scope_category) == ("scope", "start", "scope", "end")
    assert start.name == end.name == "search"
    assert start.category == end.category == "tool"
    assert start.uuid == end.uuid == handle.uuid
    assert start.parent_uuid == end.parent_uuid == handle.parent_uuid == root.uuid
    assert start.data == {"q": "relay"}
    assert start.metadata == {"source": "test"}
    assert start.category_profile == end.category_profile == {"tool_call_id": "call-1"}
    assert start.attributes == end.attributes == []
    assert end.data == {"hits": 2}
    assert end.metadata == {"source": "test", "status": "done"}
    assert when(end) > when(start)


def test_call_without_tool_call_id_has_empty_profile(events: Any) -> None:
    handle = tools.call("t", [1, "two"])
    tools.call_end(handle, ToolExecutionResult("x"))
    start, end = events.flush()
    assert start.category_profile == end.category_profile == {}
    assert start.data == [1, "two"]
    assert start.metadata is None and end.metadata is None


@pytest.mark.parametrize(
    ("start_metadata", "end_metadata", "expected"),
    [
        (None, None, None),
        ({"a": 1}, None, {"a": 1}),
        (None, {"b": 2}, {"b": 2}),
        ({"a": 1, "b": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ("start", {"b": 2}, {"b": 2}),
    ],
    ids=["none", "start-only", "end-only", "end-wins", "non-dict-start"],
)
def test_call_end_metadata_is_a_shallow_merge_without_status(
    events: Any, start_metadata: Any, end_metadata: Any, expected: Any
) -> None:
    handle = tools.call("t", {}, metadata=start_metadata)
    tools.call_end(handle, ToolExecutionResult(1), metadata=end_metadata)
    start, end = events.flush()
    assert start.metadata == start_metadata
    assert end.metadata == expected


@pytest.mark.parametrize(
    ("tool_call_id", "annotation", "expected"),
    [
        (None, {"source": "provider"}, {"tool_result_annotation": {"source": "provider"}}),
        (
            "call-7",
            {"source": "provider"},
            {"tool_call_id": "call-7", "tool_result_annotation": {"source": "provider"}},
        ),
        ("call-7", None, {"tool_call_id": "call-7"}),
        (None, ["a", 1], {"tool_result_annotation": ["a", 1]}),
    ],
    ids=["annotation", "annotation-and-id", "no-annotation", "list-annotation"],
)
def test_call_end_annotation_becomes_tool_result_annotation(
    events: Any, tool_call_id: str | None, annotation: Any, expected: dict[str, Any]
) -> None:
    handle = tools.call("t", {}, tool_call_id=tool_call_id)
    tools.call_end(handle, ToolExecutionResult("r", annotation=annotation))
    start, end = events.flush()
    assert start.category_profile == ({} if tool_call_id is None else {"tool_call_id": tool_call_id})
    assert end.category_profile == expected
    assert end.data == "r"


def test_null_result_without_sanitizer_uses_data(events: Any) -> None:
    handle = tools.call("t", {"a": 1})
    tools.call_end(handle, ToolExecutionResult(None), data={"fallback": True})
    _, end = events.flush()
    assert end.data == {"fallback": True}


def test_null_sanitized_result_falls_back_to_data(events: Any) -> None:
    guardrails.register_tool_sanitize_response("null-out", 0, lambda name, result: None)
    handle = tools.call("t", {})
    tools.call_end(handle, ToolExecutionResult({"secret": 1}), data={"fallback": True})
    start, end = events.flush()
    assert start.data == {}
    assert end.data == {"fallback": True}


def test_non_null_sanitized_result_ignores_data(events: Any) -> None:
    guardrails.register_tool_sanitize_response("clean", 0, lambda name, result: {"clean": name, "keys": sorted(result)})
    handle = tools.call("t", {})
    tools.call_end(handle, ToolExecutionResult({"secret": 1}), data={"fallback": True})
    _, end = events.flush()
    assert end.data == {"clean": "t", "keys": ["secret"]}


def test_failed_response_sanitizer_omits_data_and_skips_fallback(events: Any) -> None:
    def broken(name: str, result: Any) -> Any:
        raise RuntimeError("sanitizer broke")

    guardrails.register_tool_sanitize_response("broken", 0, broken)
    handle = tools.call("t", {"a": 1})
    tools.call_end(handle, ToolExecutionResult({"secret": 1}), data={"fallback": True})
    start, end = events.flush()
    assert start.data == {"a": 1}
    assert end.data is None
    assert end.uuid == handle.uuid


def test_explicit_timestamps_round_trip(events: Any) -> None:
    start_at = datetime(2026, 1, 1, 1, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    end_at = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    handle = tools.call("read_file", {"path": "/skills/review/SKILL.md"}, timestamp=start_at)
    tools.call_end(handle, ToolExecutionResult(1), timestamp=end_at)
    start, mark, end = events.flush()
    assert start.timestamp == "2025-12-31T23:00:00.123456+00:00"
    assert mark.timestamp == start.timestamp
    assert end.timestamp == "2026-01-01T00:00:01+00:00"


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ("2026-01-01T00:00:00+00:00", TypeError, "timestamp must be a datetime.datetime object"),
        (datetime(2026, 1, 1), ValueError, "timestamp datetime must be timezone-aware"),
    ],
    ids=["str", "naive"],
)
def test_bad_timestamps_are_rejected_before_any_event(events: Any, bad: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=exactly(message)):
        tools.call("t", {}, timestamp=bad)
    assert events.flush() == []
    handle = tools.call("t", {})
    with pytest.raises(error, match=exactly(message)):
        tools.call_end(handle, ToolExecutionResult(1), timestamp=bad)
    tools.call_end(handle, ToolExecutionResult(2))
    assert [(e.scope_category, e.uuid, e.data) for e in events.flush()] == [
        ("start", handle.uuid, {}),
        ("end", handle.uuid, 2),
    ]


def test_tool_handle_properties_and_repr(events: Any) -> None:
    outer = scope.push("outer", ScopeType.Agent)
    handle = tools.call(
        "lookup",
        {"k": 1},
        attributes=ToolAttributes(ToolAttributes.REMOTE),
        data={"d": 1},
        metadata={"m": 1},
        tool_call_id="call-9",
    )
    assert isinstance(handle, ToolHandle)
    assert repr(handle) == f"ToolHandle(name='lookup', uuid='{handle.uuid}')"
    assert UUID_RE.fullmatch(handle.uuid)
    assert handle.name == "lookup"
    assert handle.parent_uuid == outer.uuid
    assert handle.data == {"d": 1}
    assert handle.metadata == {"m": 1}
    assert isinstance(handle.attributes, ToolAttributes)
    assert handle.attributes.is_remote
    assert not tools.call("plain", {}).attributes.is_remote
    scope.pop(outer)
    evs = events.flush()
    assert shape(evs) == [("start", "outer"), ("start", "lookup"), ("start", "plain"), ("end", "outer")]
    assert evs[1].attributes == ["remote"]
    assert evs[1].parent_uuid == outer.uuid
    assert evs[2].attributes == []


def test_call_with_explicit_parent_handle(events: Any) -> None:
    parent = scope.push("parent", ScopeType.Agent)
    child = scope.push("child", ScopeType.Function)
    handle = tools.call("t", {}, handle=parent)
    assert handle.parent_uuid == parent.uuid
    assert scope.get_handle().uuid == child.uuid  # tool calls push nothing
    tools.call_end(handle, ToolExecutionResult(None))
    scope.pop(child)
    scope.pop(parent)
    evs = events.flush()
    tool_events = [e for e in evs if e.category == "tool"]
    assert [e.parent_uuid for e in tool_events] == [parent.uuid, parent.uuid]


def test_call_converts_payloads_when_called(events: Any) -> None:
    args: dict[str, Any] = {"items": [1], "pair": ("a", 1)}
    metadata: dict[str, Any] = {"tags": ["a"]}
    handle = tools.call("t", args, metadata=metadata)
    args["items"].append(2)
    metadata["tags"].append("b")
    result: dict[str, Any] = {"rows": [1]}
    tools.call_end(handle, ToolExecutionResult(result))
    result["rows"].append(2)
    start, end = events.flush()
    assert start.data == {"items": [1], "pair": ["a", 1]}
    assert start.metadata == {"tags": ["a"]}
    assert handle.metadata == {"tags": ["a"]}
    assert end.data == {"rows": [1]}
    assert end.metadata == {"tags": ["a"]}


def test_call_rejects_unconvertible_payloads(events: Any) -> None:
    with pytest.raises(ValueError, match=exactly(CONVERSION_ERROR)):
        tools.call("t", {"x": object()})
    with pytest.raises(ValueError, match=exactly(CONVERSION_ERROR)):
        tools.call("t", {}, metadata=object())
    assert events.flush() == []
    handle = tools.call("t", {})
    with pytest.raises(TypeError, match="'dict' object is not an instance of 'ToolExecutionResult'"):
        tools.call_end(handle, {"raw": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=exactly(CONVERSION_ERROR)):
        tools.call_end(handle, ToolExecutionResult(object()))
    tools.call_end(handle, ToolExecutionResult("ok"))
    assert [(e.scope_category, e.data) for e in events.flush()] == [("start", {}), ("end", "ok")]


# --- skill-load marks -------------------------------------------------------------------------------------------


def test_structured_read_of_skill_file_emits_skill_load_mark(events: Any) -> None:
    handle = tools.call("read_file", {"path": "/skills/review/SKILL.md"})
    tools.call_end(handle, ToolExecutionResult("# Review"))
    evs = events.flush()
    assert shape(evs) == [("start", "read_file"), ("mark", "skill.load"), ("end", "read_file")]
    start, mark, end = evs
    assert isinstance(mark, MarkEvent)
    assert mark.kind == "mark"
    assert mark.parent_uuid == handle.uuid == start.uuid == end.uuid
    assert mark.uuid != handle.uuid
    assert mark.data == {"skill_name": "review"}
    assert mark.metadata == {"skill_load_source": "structured_read", "tool_name": "read_file"}
    assert mark.category is None and mark.category_profile is None
    assert mark.timestamp == start.timestamp


SKILL_CASES = [
    ("read_file", {"path": "/skills/review/SKILL.md", "offset": 0}, [("review", "structured_read")]),
    ("Read", {"file_path": "/a/x/skill.MD"}, [("x", "structured_read")]),
    ("mcp__fs__read_file", {"path": "/skills/r/SKILL.md"}, [("r", "structured_read")]),
    ("read_file", {"path": "/skills/review/SKILL.md", "limit": 10}, []),
    ("read_file", {"path": "/skills/review/SKILL.md", "offset": 5}, []),
    ("read_file", {"path": "/skills/review/README.md"}, []),
    ("read_file", {"path": "SKILL.md"}, []),
    ("read_file", {"path": "../SKILL.md"}, []),
    ("write_file", {"path": "/skills/review/SKILL.md"}, []),
    ("Skill", {"skill": "review"}, [("review", "skill_tool")]),
    ("Skill", {"name": " spaced "}, [("spaced", "skill_tool")]),
    ("skill", {"skill_name": "x"}, [("x", "skill_tool")]),
    ("Skill", {"command": "review"}, []),
    ("bash", {"command": "cat /home/me/.skills/deploy/SKILL.md"}, [("deploy", "shell_read")]),
    ("bash", {"cmd": "cat a/one/SKILL.md"}, [("one", "shell_read")]),
    ("exec_command", {"command": "cat a/one/SKILL.md"}, [("one", "shell_read")]),
    ("bash", {"command": "cat a/one/SKILL.md b/two/SKILL.md"}, [("one", "shell_read"), ("two", "shell_read")]),
    ("bash", {"command": "bash -c 'cat a/one/SKILL.md'"}, [("one", "shell_read")]),
    ("bash", {"command": "cat a/one/SKILL.md | grep x"}, []),
    ("bash", {"command": "cat a/one/SKILL.md; cat b/two/SKILL.md"}, []),
    ("bash", {"command": "cat a/one/SKILL.md && echo hi"}, []),
    ("bash", {"command": "cat a/one/SKILL.md > out"}, []),
    ("bash", {"command": "cat -n a/one/SKILL.md"}, []),
    ("shell", {"cmd": "head -n 5 a/one/SKILL.md"}, []),
    ("bash", {"command": "cat $(echo a/one/SKILL.md)"}, []),
]


@pytest.mark.parametrize(
    ("tool_name", "args", "expected"),
    SKILL_CASES,
    ids=[f"{i}-{case[0]}" for i, case in enumerate(SKILL_CASES)],
)
def test_skill_load_detection(events: Any, tool_name: str, args: Any, expected: list[tuple[str, str]]) -> None:
    handle = tools.call(tool_name, args)
    tools.call_end(handle, ToolExecutionResult(None))
    evs = events.flush()
    marks = [e for e in evs if e.name == "skill.load"]
    assert [(m.data["skill_name"], m.metadata["skill_load_source"]) for m in marks] == expected
    assert all(m.parent_uuid == handle.uuid and m.metadata["tool_name"] == tool_name for m in marks)
    assert shape(evs) == [("start", tool_name)] + [("mark", "skill.load")] * len(expected) + [("end", tool_name)]


@pytest.mark.parametrize(
    ("metadata", "marked"),
    [
        ({"nemo_relay.skill_load_handled": True}, False),
        ({"nemo_relay.skill_load_handled": False}, True),
        ({"unrelated": True}, True),
    ],
    ids=["handled", "not-handled", "unrelated-metadata"],
)
def test_skill_load_mark_suppressed_when_caller_handled_it(events: Any, metadata: Any, marked: bool) -> None:
    handle = tools.call("read_file", {"path": "/skills/review/SKILL.md"}, metadata=metadata)
    tools.call_end(handle, ToolExecutionResult(None))
    evs = events.flush()
    assert [e.name for e in evs].count("skill.load") == (1 if marked else 0)
    assert evs[0].metadata == metadata


async def test_managed_execute_emits_skill_load_for_intercepted_args(events: Any) -> None:
    intercepts.register_tool_request("redirect", 0, False, lambda name, args: {"path": "/skills/deploy/SKILL.md"})
    result = await tools.execute("read_file", {"path": "/tmp/notes.txt"}, lambda args: ToolExecutionResult("body"))
    assert result.result == "body"
    evs = await drain(events)
    assert shape(evs) == [("start", "read_file"), ("mark", "skill.load"), ("end", "read_file")]
    start, mark, end = evs
    assert start.data == {"path": "/skills/deploy/SKILL.md"}
    assert mark.parent_uuid == start.uuid == end.uuid
    assert mark.data == {"skill_name": "deploy"}
    assert mark.metadata == {"skill_load_source": "structured_read", "tool_name": "read_file"}
    assert mark.timestamp == start.timestamp


# --- managed execution ------------------------------------------------------------------------------------------


async def test_execute_sync_func_records_start_and_end(events: Any) -> None:
    outer = scope.push("agent", ScopeType.Agent)
    seen = []

    def func(args: Any) -> ToolExecutionResult[Any]:
        seen.append(args)
        return ToolExecutionResult({"sum": args["a"] + args["b"]})

    future = tools.execute("add", {"a": 1, "b": 2}, func, metadata={"m": 1}, tool_call_id="call-1")
    assert isinstance(future, asyncio.Future)
    result = await future
    assert isinstance(result, ToolExecutionResult)
    assert result.result == {"sum": 3}
    assert result.annotation is None
    assert seen == [{"a": 1, "b": 2}]
    assert scope.get_handle().uuid == outer.uuid
    scope.pop(outer)
    evs = await drain(events)
    assert shape(evs) == [("start", "agent"), ("start", "add"), ("end", "add"), ("end", "agent")]
    _, start, end, _ = evs
    assert start.uuid == end.uuid and UUID_RE.fullmatch(start.uuid)
    assert start.parent_uuid == end.parent_uuid == outer.uuid
    assert start.category == end.category == "tool"
    assert start.data == {"a": 1, "b": 2}
    assert start.metadata == {"m": 1}
    assert start.category_profile == end.category_profile == {"tool_call_id": "call-1"}
    assert end.data == {"sum": 3}
    assert end.metadata == {"m": 1, "otel.status_code": "OK"}
    assert when(end) > when(start)


async def test_execute_async_func_with_string_result_and_annotation(events: Any) -> None:
    async def func(args: Any) -> ToolExecutionResult[str]:
        await asyncio.sleep(0)
        return ToolExecutionResult(f"hello {args['who']}", annotation={"source": "provider"})

    result = await tools.execute("greet", {"who": "relay"}, func)
    assert result.result == "hello relay"
    assert result.annotation == {"source": "provider"}
    start, end = await drain(events)
    assert start.category_profile == {}
    assert start.metadata is None
    assert end.data == "hello relay"
    assert end.category_profile == {"tool_result_annotation": {"source": "provider"}}
    assert end.metadata == {"otel.status_code": "OK"}


async def test_execute_with_explicit_parent_handle_and_attributes(events: Any) -> None:
    parent = scope.push("parent", ScopeType.Agent)
    child = scope.push("child", ScopeType.Function)
    await tools.execute("t", {}, echo, handle=parent, attributes=ToolAttributes(ToolAttributes.REMOTE))
    scope.pop(child)
    scope.pop(parent)
    evs = await drain(events)
    start, end = [e for e in evs if e.category == "tool"]
    assert start.parent_uuid == end.parent_uuid == parent.uuid
    assert start.attributes == end.attributes == ["remote"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_execute_raw_dict_result_is_a_contract_error(events: Any, is_async: bool) -> None:
    def raw(args: Any) -> Any:
        return {"raw": args}

    async def araw(args: Any) -> Any:
        return {"raw": args}

    with pytest.raises(RuntimeError, match="must return ToolExecutionResult") as info:
        await tools.execute("t", {"x": 1}, araw if is_async else raw)
    assert str(info.value) == RAW_RESULT
    if relay_errors is not None:
        assert isinstance(info.value, relay_errors.InvalidArgumentError)
    start, end = await drain(events)
    assert start.uuid == end.uuid
    assert start.data == {"x": 1}
    assert end.data is None
    assert end.metadata == failed_metadata(RAW_RESULT)
    await follow_up(events)


@dataclass
class Node:
    label: str
    child: object = None


def cyclic_dict() -> Any:
    value: dict[str, Any] = {"label": "loop"}
    value["self"] = value
    return {"wrapper": [value]}


def cyclic_user_dict() -> Any:
    value = UserDict(label="loop")
    value["self"] = value
    return value


def cyclic_user_list() -> Any:
    value = UserList(["loop"])
    value.append(value)
    return value


def cyclic_dataclass() -> Any:
    node = Node("loop")
    node.child = node
    return node


@pytest.mark.parametrize(
    "make", [cyclic_dict, cyclic_user_dict, cyclic_user_list, cyclic_dataclass], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_execute_cyclic_result_raises_and_runtime_stays_usable(
    events: Any, make: Callable[[], Any], is_async: bool
) -> None:
    def func(args: Any) -> ToolExecutionResult[Any]:
        return ToolExecutionResult(make())

    async def afunc(args: Any) -> ToolExecutionResult[Any]:
        await asyncio.sleep(0)
        return ToolExecutionResult(make())

    with pytest.raises(RuntimeError, match="circular reference detected") as info:
        await tools.execute("t", {}, afunc if is_async else func)
    assert str(info.value) == CIRCULAR
    start, end = await drain(events)
    assert start.uuid == end.uuid
    assert end.data is None
    assert end.metadata == failed_metadata(CIRCULAR)
    await follow_up(events)


async def test_execute_shared_non_cyclic_subobjects_are_fine(events: Any) -> None:
    shared = {"v": [1]}
    value = {"a": shared, "b": [shared, shared], "c": UserList([shared]), "d": Node("n", shared)}
    expected = {
        "a": {"v": [1]},
        "b": [{"v": [1]}, {"v": [1]}],
        "c": [{"v": [1]}],
        "d": {"label": "n", "child": {"v": [1]}},
    }
    result = await tools.execute("t", {"s": shared, "again": shared}, lambda args: ToolExecutionResult(value))
    assert result.result == expected
    start, end = await drain(events)
    assert start.data == {"s": {"v": [1]}, "again": {"v": [1]}}
    assert end.data == expected
    assert end.metadata == {"otel.status_code": "OK"}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_failing_func_emits_exactly_start_and_error_end(events: Any, is_async: bool) -> None:
    def boom(args: Any) -> Any:
        raise ValueError("boom")

    async def aboom(args: Any) -> Any:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(RuntimeError, match="boom") as info:
        await tools.execute("t", {"x": 1}, aboom if is_async else boom, tool_call_id="call-err")
    assert str(info.value) == "internal error: ValueError: boom"
    if relay_errors is not None:
        assert isinstance(info.value, relay_errors.InternalError)
    evs = await drain(events)
    assert shape(evs) == [("start", "t"), ("end", "t")]
    start, end = evs
    assert start.uuid == end.uuid
    assert start.data == {"x": 1}
    assert end.data is None
    assert end.metadata == failed_metadata("internal error: ValueError: boom", "ValueError")
    assert end.metadata["error.type"] == "internal_error"
    assert end.metadata["exception.type"] == "ValueError"
    assert start.category_profile == end.category_profile == {"tool_call_id": "call-err"}
    await follow_up(events)


async def test_failed_end_uses_data_kwarg_and_call_metadata(events: Any) -> None:
    def boom(args: Any) -> Any:
        raise ValueError("boom")

    with pytest.raises(RuntimeError, match=exactly("internal error: ValueError: boom")):
        await tools.execute("t", {"x": 1}, boom, data={"partial": True}, metadata={"m": 1})
    start, end = await drain(events)
    assert start.metadata == {"m": 1}
    assert end.data == {"partial": True}
    assert end.metadata == failed_metadata("internal error: ValueError: boom", "ValueError", m=1)
    await follow_up(events)


async def test_successful_end_ignores_data_kwarg(events: Any) -> None:
    result = await tools.execute("t", {}, lambda args: ToolExecutionResult({"real": 1}), data={"partial": True})
    assert result.result == {"real": 1}
    _, end = await drain(events)
    assert end.data == {"real": 1}


def test_execute_requires_a_running_event_loop(events: Any) -> None:
    called = []
    with pytest.raises(RuntimeError, match=r"^no running event loop"):
        tools.execute("t", {}, lambda args: called.append(args) or ToolExecutionResult(1))
    assert called == []
    assert events.flush() == []
    sync_follow_up(events)


@pytest.mark.parametrize(
    "kwargs",
    [{"args": {"x": object()}}, {"metadata": object()}, {"data": object()}],
    ids=["args", "metadata", "data"],
)
async def test_execute_conversion_errors_raise_synchronously(events: Any, kwargs: dict[str, Any]) -> None:
    calls = []
    guardrails.register_tool_conditional_execution("watch", 0, lambda name, args: calls.append("guard"))
    call_kwargs = {"args": {"x": 1}, **kwargs}
    args = call_kwargs.pop("args")
    with pytest.raises(ValueError, match=exactly(CONVERSION_ERROR)):
        tools.execute("t", args, lambda a: calls.append("func") or ToolExecutionResult(1), **call_kwargs)
    assert calls == []
    assert await drain(events) == []
    assert guardrails.deregister_tool_conditional_execution("watch")
    await follow_up(events)


async def test_func_gets_a_private_copy_of_args_without_middleware(events: Any) -> None:
    caller_args: dict[str, Any] = {"items": [1]}
    seen = []

    async def func(args: Any) -> ToolExecutionResult[str]:
        await asyncio.sleep(0)
        seen.append(copy.deepcopy(args))
        args["items"].append("func")
        return ToolExecutionResult("done")

    future = tools.execute("t", caller_args, func)
    caller_args["items"].append("caller-later")
    await future
    assert seen == [{"items": [1]}]
    assert caller_args == {"items": [1, "caller-later"]}
    start, _ = await drain(events)
    assert start.data == {"items": [1]}


async def test_sync_func_mutating_args_does_not_touch_caller_args(events: Any) -> None:
    caller_args: dict[str, Any] = {"items": [1]}

    def func(args: Any) -> ToolExecutionResult[Any]:
        args["items"].append("func")
        return ToolExecutionResult(args)

    result = await tools.execute("t", caller_args, func)
    assert result.result == {"items": [1, "func"]}
    assert caller_args == {"items": [1]}


# --- conditional guardrails -------------------------------------------------------------------------------------


async def test_allowing_guardrail_records_a_guardrail_scope_before_the_tool(events: Any) -> None:
    outer = scope.push("agent", ScopeType.Agent)
    calls = []
    guardrails.register_tool_conditional_execution("allow-all", 0, lambda name, args: calls.append((name, args)))
    result = await tools.execute("lookup", {"k": 1}, echo, metadata={"m": 1}, tool_call_id="c1")
    assert result.result == {"echo": {"k": 1}}
    assert calls == [("lookup", {"k": 1})]
    scope.pop(outer)
    evs = await drain(events)
    assert shape(evs) == [
        ("start", "agent"),
        ("start", "allow-all"),
        ("end", "allow-all"),
        ("start", "lookup"),
        ("end", "lookup"),
        ("end", "agent"),
    ]
    _, g_start, g_end, t_start, t_end, _ = evs
    assert g_start.category == g_end.category == "guardrail"
    assert g_start.uuid == g_end.uuid != t_start.uuid
    assert g_start.parent_uuid == g_end.parent_uuid == t_start.parent_uuid == outer.uuid
    assert g_start.data == {"kind": "tool_conditional_execution", "target_name": "lookup"}
    assert g_end.data == ALLOWED
    assert g_start.metadata == g_end.metadata == {"m": 1}
    assert g_start.category_profile is None and g_end.category_profile is None
    assert g_start.attributes == g_end.attributes == []
    assert when(g_start) <= when(g_end) <= when(t_start) < when(t_end)
    assert t_start.category_profile == {"tool_call_id": "c1"}


async def test_rejecting_guardrail_stops_the_call(events: Any) -> None:
    outer = scope.push("agent", ScopeType.Agent)
    calls = []
    guardrails.register_tool_conditional_execution("g1-allow", 1, lambda n, a: calls.append("g1"))
    guardrails.register_tool_conditional_execution(
        "g2-reject", 2, lambda n, a: calls.append("g2") or f"no {n} {a['x']}"
    )
    guardrails.register_tool_conditional_execution("g3-never", 3, lambda n, a: calls.append("g3"))
    intercepts.register_tool_request("request", 0, False, lambda n, a: calls.append("request") or a)
    intercepts.register_tool_execution(
        "execution", 0, lambda n, a, nxt: calls.append("execution") or ToolExecutionInterceptOutcome(1)
    )

    def func(args: Any) -> ToolExecutionResult[int]:
        calls.append("func")
        return ToolExecutionResult(1)

    with pytest.raises(RuntimeError, match=exactly("guardrail rejected: no t 1")) as info:
        await tools.execute("t", {"x": 1}, func, metadata={"m": 1}, tool_call_id="c1")
    if relay_errors is not None:
        assert isinstance(info.value, relay_errors.GuardrailRejectedError)
    assert calls == ["g1", "g2"]
    scope.pop(outer)
    evs = await drain(events)
    assert shape(evs) == [
        ("start", "agent"),
        ("start", "g1-allow"),
        ("end", "g1-allow"),
        ("start", "g2-reject"),
        ("end", "g2-reject"),
        ("mark", "t"),
        ("end", "agent"),
    ]
    assert not [e for e in evs if e.category == "tool"]
    assert evs[2].data == ALLOWED
    assert evs[3].data == {"kind": "tool_conditional_execution", "target_name": "t"}
    assert evs[4].data == {"allowed": False, "rejected": True, "rejection_reason": "no t 1"}
    assert evs[3].uuid == evs[4].uuid
    assert all(e.metadata == {"m": 1} and e.parent_uuid == outer.uuid for e in evs[1:6])
    mark = evs[5]
    assert isinstance(mark, MarkEvent)
    assert mark.data == {"rejected": True, "rejection_reason": "no t 1"}
    assert mark.category is None and mark.category_profile is None
    assert guardrails.deregister_tool_conditional_execution("g2-reject")
    calls.clear()
    result = await tools.execute("t", {"x": 1}, func)
    assert result.result == 1
    assert calls == ["g1", "g3", "request", "execution"]


async def test_rejection_events_use_the_explicit_parent_handle(events: Any) -> None:
    parent = scope.push("parent", ScopeType.Agent)
    child = scope.push("child", ScopeType.Function)
    guardrails.register_tool_conditional_execution("deny", 0, lambda n, a: "denied")
    with pytest.raises(RuntimeError, match=exactly("guardrail rejected: denied")):
        await tools.execute("t", {}, echo, handle=parent)
    scope.pop(child)
    scope.pop(parent)
    evs = await drain(events)
    assert shape(evs) == [
        ("start", "parent"),
        ("start", "child"),
        ("start", "deny"),
        ("end", "deny"),
        ("mark", "t"),
        ("end", "child"),
        ("end", "parent"),
    ]
    g_start, g_end, mark = evs[2:5]
    assert g_start.parent_uuid == g_end.parent_uuid == mark.parent_uuid == parent.uuid
    assert g_start.metadata is None and g_end.metadata is None and mark.metadata is None


async def test_guardrail_returning_a_non_string_is_an_error(events: Any) -> None:
    called = []
    guardrails.register_tool_conditional_execution("weird", 0, lambda n, a: 123)
    with pytest.raises(RuntimeError, match="unexpected type") as info:
        await tools.execute("t", {}, lambda a: called.append(a) or ToolExecutionResult(1))
    assert str(info.value) == UNEXPECTED_VERDICT
    assert called == []
    evs = await drain(events)
    assert shape(evs) == [("start", "weird"), ("end", "weird")]
    assert evs[1].data == {"allowed": False, "error": UNEXPECTED_VERDICT}
    assert guardrails.deregister_tool_conditional_execution("weird")
    await follow_up(events)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_raising_guardrail_is_an_error(events: Any, is_async: bool) -> None:
    called = []

    def guard(name: str, args: Any) -> Any:
        raise RuntimeError("boom")

    async def aguard(name: str, args: Any) -> Any:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    guardrails.register_tool_conditional_execution("raiser", 0, aguard if is_async else guard)
    with pytest.raises(RuntimeError, match="RuntimeError: boom") as info:
        await tools.execute("t", {}, lambda a: called.append(a) or ToolExecutionResult(1))
    assert str(info.value) == "internal error: RuntimeError: boom"
    assert called == []
    evs = await drain(events)
    assert shape(evs) == [("start", "raiser"), ("end", "raiser")]
    assert evs[1].data == {"allowed": False, "error": "internal error: RuntimeError: boom"}
    assert guardrails.deregister_tool_conditional_execution("raiser")
    await follow_up(events)


async def test_guardrails_run_in_priority_then_name_order(events: Any) -> None:
    order = []
    for name, priority in [("b-equal", 0), ("last", 10), ("first", -5), ("a-equal", 0)]:
        guardrails.register_tool_conditional_execution(name, priority, lambda n, a, name=name: order.append(name))
    await tools.execute("t", {}, echo)
    assert order == ["first", "a-equal", "b-equal", "last"]
    evs = await drain(events)
    assert [e.name for e in evs if e.category == "guardrail" and e.scope_category == "start"] == order


async def test_async_guardrails_allow_and_reject(events: Any) -> None:
    async def allow(name: str, args: Any) -> None:
        await asyncio.sleep(0)

    async def deny(name: str, args: Any) -> str:
        await asyncio.sleep(0)
        return f"async no {args['x']}"

    guardrails.register_tool_conditional_execution("allow", 0, allow)
    result = await tools.execute("t", {"x": 1}, echo)
    assert result.result == {"echo": {"x": 1}}
    guardrails.register_tool_conditional_execution("deny", 1, deny)
    with pytest.raises(RuntimeError, match=exactly("guardrail rejected: async no 1")):
        await tools.execute("t", {"x": 1}, echo)
    evs = await drain(events)
    assert shape(evs) == [
        ("start", "allow"),
        ("end", "allow"),
        ("start", "t"),
        ("end", "t"),
        ("start", "allow"),
        ("end", "allow"),
        ("start", "deny"),
        ("end", "deny"),
        ("mark", "t"),
    ]
    assert evs[7].data == {"allowed": False, "rejected": True, "rejection_reason": "async no 1"}
    assert evs[8].data == {"rejected": True, "rejection_reason": "async no 1"}


async def test_guardrail_gets_a_copy_of_args(events: Any) -> None:
    def mutate(name: str, args: Any) -> None:
        args["guard"] = True

    guardrails.register_tool_conditional_execution("mutate", 0, mutate)
    caller_args = {"x": 1}
    result = await tools.execute("t", caller_args, echo)
    assert result.result == {"echo": {"x": 1}}
    assert caller_args == {"x": 1}


def test_standalone_conditional_execution_outside_a_loop(events: Any) -> None:
    outer = scope.push("agent", ScopeType.Agent)
    calls = []
    guardrails.register_tool_conditional_execution("allow", 0, lambda n, a: calls.append((n, a)))
    assert tools.conditional_execution("t", {"x": 1}) is None
    guardrails.register_tool_conditional_execution("deny", 1, lambda n, a: f"no {a['x']}")
    with pytest.raises(RuntimeError, match=exactly("guardrail rejected: no 1")):
        tools.conditional_execution("t", {"x": 1})
    assert calls == [("t", {"x": 1}), ("t", {"x": 1})]
    scope.pop(outer)
    evs = events.flush()
    assert shape(evs) == [
        ("start", "agent"),
        ("start", "allow"),
        ("end", "allow"),
        ("start", "allow"),
        ("end", "allow"),
        ("start", "deny"),
        ("end", "deny"),
        ("end", "agent"),
    ]
    guard_events = evs[1:7]
    assert all(e.parent_uuid == outer.uuid and e.metadata is None for e in guard_events)
    assert all(e.category == "guardrail" for e in guard_events)
    assert guard_events[-1].data == {"allowed": False, "rejected": True, "rejection_reason": "no 1"}


async def test_standalone_conditional_execution_inside_a_loop_returns_an_awaitable(events: Any) -> None:
    async def allow(name: str, args: Any) -> None:
        await asyncio.sleep(0)

    guardrails.register_tool_conditional_execution("allow", 0, allow)
    pending = tools.conditional_execution("t", {})
    assert inspect.isawaitable(pending)
    assert await pending is None
    guardrails.register_tool_conditional_execution("deny", 1, lambda n, a: "nope")
    pending = tools.conditional_execution("t", {})
    assert inspect.isawaitable(pending)
    with pytest.raises(RuntimeError, match=exactly("guardrail rejected: nope")):
        await pending
    evs = await drain(events)
    assert shape(evs) == [
        ("start", "allow"),
        ("end", "allow"),
        ("start", "allow"),
        ("end", "allow"),
        ("start", "deny"),
        ("end", "deny"),
    ]
    assert all(e.parent_uuid == scope.get_handle().uuid for e in evs)


def test_async_guardrail_outside_a_loop_is_an_error(events: Any) -> None:
    async def guard(name: str, args: Any) -> None:
        return None

    guardrails.register_tool_conditional_execution("async-guard", 0, guard)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match=exactly(AWAITABLE_IN_SYNC)):
            tools.conditional_execution("t", {})
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    evs = events.flush()
    assert shape(evs) == [("start", "async-guard"), ("end", "async-guard")]
    assert evs[1].data == {"allowed": False, "error": AWAITABLE_IN_SYNC}
    assert guardrails.deregister_tool_conditional_execution("async-guard")
    assert tools.conditional_execution("t", {}) is None


# --- request intercepts -----------------------------------------------------------------------------------------


async def test_request_intercept_in_place_mutation_reaches_func(events: Any) -> None:
    def add_flag(name: str, args: Any) -> Any:
        args["flag"] = name
        return args

    intercepts.register_tool_request("add-flag", 0, False, add_flag)
    seen = []
    result = await tools.execute("t", {"x": 1}, lambda a: seen.append(a) or ToolExecutionResult(a))
    assert seen == [{"x": 1, "flag": "t"}]
    assert result.result == {"x": 1, "flag": "t"}
    start, end = await drain(events)
    assert start.data == {"x": 1, "flag": "t"}
    assert end.data == {"x": 1, "flag": "t"}


async def test_request_intercept_mutation_does_not_touch_caller_args(events: Any) -> None:
    def mutate(name: str, args: Any) -> Any:
        args["tags"].append("request")
        return args

    intercepts.register_tool_request("mutate", 0, False, mutate)
    caller_args: dict[str, Any] = {"tags": ["caller"]}
    result = await tools.execute("t", caller_args, lambda a: ToolExecutionResult(a))
    assert result.result == {"tags": ["caller", "request"]}
    assert caller_args == {"tags": ["caller"]}


@pytest.mark.parametrize("break_chain", [False, True], ids=["continue", "break"])
async def test_request_chain_threads_args_and_break_chain_stops_it(events: Any, break_chain: bool) -> None:
    calls = []

    def first(name: str, args: Any) -> Any:
        calls.append(("first", dict(args)))
        return {**args, "first": True}

    def second(name: str, args: Any) -> Any:
        calls.append(("second", dict(args)))
        return {**args, "second": True}

    intercepts.register_tool_request("second", 2, False, second)
    intercepts.register_tool_request("first", 1, break_chain, first)
    result = await tools.execute("t", {"x": 1}, lambda a: ToolExecutionResult(a))
    if break_chain:
        assert calls == [("first", {"x": 1})]
        assert result.result == {"x": 1, "first": True}
    else:
        assert calls == [("first", {"x": 1}), ("second", {"x": 1, "first": True})]
        assert result.result == {"x": 1, "first": True, "second": True}
    start, _ = await drain(events)
    assert start.data == result.result


async def test_raising_request_intercept_fails_before_the_tool_starts(events: Any) -> None:
    called = []

    def raiser(name: str, args: Any) -> Any:
        raise RuntimeError("boom")

    intercepts.register_tool_request("raiser", 0, False, raiser)
    with pytest.raises(RuntimeError, match="RuntimeError: boom") as info:
        await tools.execute("t", {}, lambda a: called.append(a) or ToolExecutionResult(1))
    assert str(info.value) == "internal error: RuntimeError: boom"
    assert called == []
    assert await drain(events) == []
    assert intercepts.deregister_tool_request("raiser")
    await follow_up(events)


async def test_request_intercept_returning_non_json_is_an_error(events: Any) -> None:
    called = []
    intercepts.register_tool_request("bad", 0, False, lambda name, args: object())
    with pytest.raises(RuntimeError, match="unsupported type object") as info:
        await tools.execute("t", {}, lambda a: called.append(a) or ToolExecutionResult(1))
    assert str(info.value) == f"internal error: ValueError: {CONVERSION_ERROR}"
    assert called == []
    assert await drain(events) == []
    assert intercepts.deregister_tool_request("bad")
    await follow_up(events)


def test_standalone_request_intercepts_outside_a_loop(events: Any) -> None:
    assert tools.request_intercepts("t", {"x": 1}) == {"x": 1}
    intercepts.register_tool_request("stamp", 0, False, lambda name, args: {**args, "tool": name})
    assert tools.request_intercepts("t", {"x": 1}) == {"x": 1, "tool": "t"}

    def raiser(name: str, args: Any) -> Any:
        raise RuntimeError("boom")

    intercepts.register_tool_request("raiser", 1, False, raiser)
    with pytest.raises(RuntimeError, match=exactly("internal error: RuntimeError: boom")):
        tools.request_intercepts("t", {"x": 1})
    assert intercepts.deregister_tool_request("raiser")

    async def later(name: str, args: Any) -> Any:
        return args

    intercepts.register_tool_request("async", 2, False, later)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match=exactly(AWAITABLE_IN_SYNC)):
            tools.request_intercepts("t", {"x": 1})
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert events.flush() == []


async def test_standalone_request_intercepts_inside_a_loop(events: Any) -> None:
    async def stamp(name: str, args: Any) -> Any:
        await asyncio.sleep(0)
        return {**args, "async": name}

    intercepts.register_tool_request("stamp", 0, False, stamp)
    pending = tools.request_intercepts("t", {"x": 1})
    assert inspect.isawaitable(pending)
    assert await pending == {"x": 1, "async": "t"}

    def raiser(name: str, args: Any) -> Any:
        raise RuntimeError("boom")

    intercepts.register_tool_request("raiser", 1, False, raiser)
    with pytest.raises(RuntimeError, match=exactly("internal error: RuntimeError: boom")):
        await tools.request_intercepts("t", {"x": 1})
    assert await drain(events) == []


# --- execution intercepts ---------------------------------------------------------------------------------------


async def test_execution_intercept_can_replace_func(events: Any) -> None:
    called = []

    def replace(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        return ToolExecutionInterceptOutcome({"replaced": name, "args": args}, annotation={"by": "intercept"})

    intercepts.register_tool_execution("replace", 0, replace)
    result = await tools.execute("t", {"x": 1}, lambda a: called.append(a) or ToolExecutionResult(1))
    assert called == []
    assert isinstance(result, ToolExecutionResult)
    assert result.result == {"replaced": "t", "args": {"x": 1}}
    assert result.annotation == {"by": "intercept"}
    start, end = await drain(events)
    assert start.data == {"x": 1}
    assert end.data == {"replaced": "t", "args": {"x": 1}}
    assert end.category_profile == {"tool_result_annotation": {"by": "intercept"}}


async def test_forwarding_intercept_preserves_the_annotation(events: Any) -> None:
    downstream_seen = []

    async def forward(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        downstream = await next_call({**args, "forwarded": True})
        downstream_seen.append((type(downstream).__name__, downstream.result, downstream.annotation))
        return ToolExecutionInterceptOutcome(downstream.result, annotation=downstream.annotation)

    intercepts.register_tool_execution("forward", 0, forward)

    def provider(args: Any) -> ToolExecutionResult[Any]:
        return ToolExecutionResult({"got": args}, annotation={"source": "provider"})

    result = await tools.execute("t", {"x": 1}, provider, tool_call_id="call-f")
    expected = {"got": {"x": 1, "forwarded": True}}
    assert downstream_seen == [("ToolExecutionResult", expected, {"source": "provider"})]
    assert result.result == expected
    assert result.annotation == {"source": "provider"}
    start, end = await drain(events)
    assert start.data == {"x": 1}
    assert end.data == expected
    assert end.category_profile == {"tool_call_id": "call-f", "tool_result_annotation": {"source": "provider"}}


async def test_intercept_can_retry_by_awaiting_next_twice(events: Any) -> None:
    attempts = []
    errors = []

    def flaky(args: Any) -> ToolExecutionResult[Any]:
        attempts.append(args["attempt"])
        if args["attempt"] == 1:
            raise ValueError("transient")
        return ToolExecutionResult({"attempt": args["attempt"]})

    async def retry(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        try:
            downstream = await next_call({**args, "attempt": 1})
        except RuntimeError as exc:
            errors.append(str(exc))
            downstream = await next_call({**args, "attempt": 2})
        return ToolExecutionInterceptOutcome(downstream.result)

    intercepts.register_tool_execution("retry", 0, retry)
    result = await tools.execute("t", {}, flaky)
    assert attempts == [1, 2]
    assert errors == ["internal error: ValueError: transient"]
    assert result.result == {"attempt": 2}
    _, end = await drain(events)
    assert end.data == {"attempt": 2}
    assert end.metadata == {"otel.status_code": "OK"}


@pytest.mark.timeout(30)
async def test_intercept_fans_out_concurrent_next_calls(events: Any) -> None:
    started: list[int] = []
    all_started = asyncio.Event()

    async def func(args: Any) -> ToolExecutionResult[int]:
        started.append(args["i"])
        if len(started) == 3:
            all_started.set()
        await asyncio.wait_for(all_started.wait(), 10)  # every branch is in flight at once
        return ToolExecutionResult(args["i"] * 10)

    async def fan_out(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        results = await asyncio.gather(*(next_call({"i": i}) for i in range(3)))
        return ToolExecutionInterceptOutcome([r.result for r in results])

    intercepts.register_tool_execution("fan-out", 0, fan_out)
    result = await tools.execute("t", {}, func)
    assert result.result == [0, 10, 20]
    assert sorted(started) == [0, 1, 2]
    evs = await drain(events)
    assert shape(evs) == [("start", "t"), ("end", "t")]
    assert evs[1].data == [0, 10, 20]


async def test_pending_marks_follow_the_tool_end(events: Any) -> None:
    async def inner(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        downstream = await next_call(args)
        mark = PendingMarkSpec(
            "inner.mark",
            category="tool",
            category_profile={"tool_call_id": "zz", "extra": 1},
            data={"attempt": args["attempt"]},
            metadata={"m": 1},
            data_schema={"name": "example.mark", "version": "1"},
            severity=LogSeverity.Warn,
        )
        return ToolExecutionInterceptOutcome(downstream.result, [mark], annotation=downstream.annotation)

    async def outer(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        first = await next_call({"attempt": 1})
        second = await next_call({"attempt": 2})
        return ToolExecutionInterceptOutcome(
            [first.result, second.result], [PendingMarkSpec("outer.mark")], annotation=second.annotation
        )

    intercepts.register_tool_execution("inner", 10, inner)
    intercepts.register_tool_execution("outer", 1, outer)
    result = await tools.execute("t", {}, lambda a: ToolExecutionResult(a, annotation={"source": "provider"}))
    assert result.result == [{"attempt": 1}, {"attempt": 2}]
    assert result.annotation == {"source": "provider"}
    evs = await drain(events)
    assert shape(evs) == [
        ("start", "t"),
        ("end", "t"),
        ("mark", "inner.mark"),
        ("mark", "inner.mark"),
        ("mark", "outer.mark"),
    ]
    start, end, first, second, own = evs
    assert end.category_profile == {"tool_result_annotation": {"source": "provider"}}
    assert all(isinstance(m, MarkEvent) and m.parent_uuid == start.uuid == end.uuid for m in (first, second, own))
    assert [when(m) - when(end) for m in (first, second, own)] == [ONE_US, 2 * ONE_US, 3 * ONE_US]
    assert [first.data, second.data] == [{"attempt": 1}, {"attempt": 2}]
    assert first.category == "tool"
    assert first.category_profile == {"tool_call_id": "zz", "extra": 1}
    assert first.metadata == {"m": 1, "nemo_relay.log.severity": "warn"}
    assert first.data_schema == {"name": "example.mark", "version": "1"}
    assert first.severity == LogSeverity.Warn
    assert (own.category, own.category_profile, own.data, own.metadata, own.data_schema) == (
        None,
        None,
        None,
        None,
        None,
    )


async def test_pending_marks_are_discarded_on_error(events: Any) -> None:
    def inner(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        return ToolExecutionInterceptOutcome("inner", [PendingMarkSpec("inner.mark")])

    async def outer(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        await next_call(args)
        raise ValueError("after next")

    intercepts.register_tool_execution("inner", 10, inner)
    intercepts.register_tool_execution("outer", 1, outer)
    with pytest.raises(RuntimeError, match=exactly("internal error: ValueError: after next")):
        await tools.execute("t", {}, echo)
    evs = await drain(events)
    assert shape(evs) == [("start", "t"), ("end", "t")]
    assert evs[1].metadata == failed_metadata("internal error: ValueError: after next", "ValueError")
    assert evs[1].category_profile == {}


@pytest.mark.parametrize(
    ("returned", "type_name"),
    [({"raw": 1}, "dict"), (ToolExecutionResult(1), "ToolExecutionResult")],
    ids=["dict", "tool-execution-result"],
)
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_intercept_returning_wrong_type_is_a_contract_error(
    events: Any, returned: Any, type_name: str, is_async: bool
) -> None:
    def sync_intercept(name: str, args: Any, next_call: Any) -> Any:
        return returned

    async def async_intercept(name: str, args: Any, next_call: Any) -> Any:
        return returned

    intercepts.register_tool_execution("wrong", 0, async_intercept if is_async else sync_intercept)
    message = RAW_OUTCOME.format(type_name)
    with pytest.raises(RuntimeError, match="must return ToolExecutionInterceptOutcome") as info:
        await tools.execute("t", {}, echo)
    assert str(info.value) == message
    start, end = await drain(events)
    assert start.uuid == end.uuid
    assert end.data is None
    assert end.metadata == failed_metadata(message)
    assert intercepts.deregister_tool_execution("wrong")
    await follow_up(events)


async def test_raising_intercept_fails_the_call(events: Any) -> None:
    async def raiser(name: str, args: Any, next_call: Any) -> Any:
        raise KeyError("kk")

    intercepts.register_tool_execution("raiser", 0, raiser)
    with pytest.raises(RuntimeError, match=exactly("internal error: KeyError: 'kk'")):
        await tools.execute("t", {}, echo, tool_call_id="call-k")
    start, end = await drain(events)
    assert end.metadata == failed_metadata("internal error: KeyError: 'kk'", "KeyError")
    assert start.category_profile == end.category_profile == {"tool_call_id": "call-k"}
    assert intercepts.deregister_tool_execution("raiser")
    await follow_up(events)


async def test_next_called_after_the_intercept_returned_is_inactive(events: Any) -> None:
    stash = []
    called = []

    def keep(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        stash.append(next_call)
        return ToolExecutionInterceptOutcome("early")

    intercepts.register_tool_execution("keep", 0, keep)
    result = await tools.execute("t", {}, lambda a: called.append(a) or ToolExecutionResult(1))
    assert result.result == "early"
    with pytest.raises(RuntimeError, match="execution continuation is no longer active") as info:
        await stash[0]({"late": True})
    assert str(info.value) == INACTIVE
    await asyncio.sleep(0)
    assert called == []
    evs = await drain(events)
    assert shape(evs) == [("start", "t"), ("end", "t")]
    assert evs[1].data == "early"
    assert intercepts.deregister_tool_execution("keep")
    await follow_up(events)


async def test_lowest_priority_intercept_is_outermost(events: Any) -> None:
    order = []

    def layer(tag: str) -> Callable[..., Any]:
        async def intercept(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
            order.append(f"{tag}>")
            downstream = await next_call({**args, "path": [*args["path"], tag]})
            order.append(f"<{tag}")
            return ToolExecutionInterceptOutcome(downstream.result, annotation=downstream.annotation)

        return intercept

    intercepts.register_tool_execution("p10", 10, layer("p10"))
    intercepts.register_tool_execution("p1", 1, layer("p1"))

    def func(args: Any) -> ToolExecutionResult[Any]:
        order.append("func")
        return ToolExecutionResult(args["path"])

    result = await tools.execute("t", {"path": []}, func)
    assert order == ["p1>", "p10>", "func", "<p10", "<p1"]
    assert result.result == ["p1", "p10"]


async def test_next_branches_get_isolated_scope_stacks(events: Any) -> None:
    outer = scope.push("outer", ScopeType.Agent)
    seen: dict[str, Any] = {}

    async def func(args: Any) -> ToolExecutionResult[str]:
        branch = args["b"]
        handle = scope.push(f"branch-{branch}", ScopeType.Function)
        await asyncio.sleep(0.01)
        top = scope.get_handle()
        seen[branch] = (top.uuid == handle.uuid, top.name, top.parent_uuid)
        scope.event("inside", data=branch)
        scope.pop(handle)
        return ToolExecutionResult(branch)

    async def branches(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        seen["before"] = scope.get_handle().uuid
        results = await asyncio.gather(next_call({"b": "one"}), next_call({"b": "two"}))
        seen["after"] = scope.get_handle().uuid
        other = nemo_relay.create_scope_stack()
        with nemo_relay.use_scope_stack(other):
            seen["other_top"] = scope.get_handle().uuid
            third = await next_call({"b": "three"})
        seen["end"] = scope.get_handle().uuid
        return ToolExecutionInterceptOutcome([r.result for r in results] + [third.result])

    intercepts.register_tool_execution("branches", 0, branches)
    result = await tools.execute("t", {}, func)
    assert result.result == ["one", "two", "three"]
    assert seen["before"] == seen["after"] == seen["end"] == outer.uuid
    assert seen["other_top"] != outer.uuid
    assert seen["one"] == (True, "branch-one", outer.uuid)
    assert seen["two"] == (True, "branch-two", outer.uuid)
    assert seen["three"] == (True, "branch-three", seen["other_top"])
    assert scope.get_handle().uuid == outer.uuid
    scope.pop(outer)
    evs = await drain(events)
    starts = {e.name: e for e in evs if getattr(e, "scope_category", None) == "start"}
    marks = {e.data: e for e in evs if e.name == "inside"}
    for branch in ("one", "two", "three"):
        assert marks[branch].parent_uuid == starts[f"branch-{branch}"].uuid
    assert starts["t"].parent_uuid == outer.uuid


@pytest.mark.parametrize("with_intercept", [False, True], ids=["plain", "intercepted"])
async def test_propagation_context_inside_the_call_is_the_tool(events: Any, with_intercept: bool) -> None:
    outer = scope.push("outer", ScopeType.Agent)
    seen: dict[str, Any] = {}

    async def observe(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        seen["intercept"] = nemo_relay.capture_propagation_context().parent_uuid
        downstream = await next_call(args)
        return ToolExecutionInterceptOutcome(downstream.result)

    if with_intercept:
        intercepts.register_tool_execution("observe", 0, observe)

    def func(args: Any) -> ToolExecutionResult[int]:
        seen["func"] = nemo_relay.capture_propagation_context().parent_uuid
        seen["func_top"] = scope.get_handle().uuid
        scope.event("inside-func")
        return ToolExecutionResult(1)

    await tools.execute("t", {}, func)
    seen["after"] = nemo_relay.capture_propagation_context().parent_uuid
    scope.pop(outer)
    evs = await drain(events)
    assert shape(evs) == [("start", "outer"), ("start", "t"), ("mark", "inside-func"), ("end", "t"), ("end", "outer")]
    tool = evs[1]
    assert seen["func"] == tool.uuid
    if with_intercept:
        assert seen["intercept"] == tool.uuid
    assert seen["func_top"] == outer.uuid
    assert evs[2].parent_uuid == outer.uuid
    assert seen["after"] == outer.uuid


# --- cancellation -----------------------------------------------------------------------------------------------


def _register_blocking_stage(stage: str, cancelled: list[str], entered: list[asyncio.Event]) -> None:
    async def block(label: str) -> None:
        entered[0].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(label)
            raise

    async def guard(name: str, args: Any) -> None:
        await block("conditional")

    async def request(name: str, args: Any) -> Any:
        await block("request")
        return args

    async def execution(name: str, args: Any, next_call: Any) -> Any:
        await block("execution")
        return ToolExecutionInterceptOutcome(1)

    async def forward(name: str, args: Any, next_call: Any) -> Any:
        try:
            downstream = await next_call(args)
        except asyncio.CancelledError:
            cancelled.append("execution")
            raise
        return ToolExecutionInterceptOutcome(downstream.result)

    if stage == "conditional":
        guardrails.register_tool_conditional_execution("blocking", 0, guard)
    elif stage == "request":
        intercepts.register_tool_request("blocking", 0, False, request)
    elif stage == "execution":
        intercepts.register_tool_execution("blocking", 0, execution)
    elif stage == "next":
        intercepts.register_tool_execution("blocking", 0, forward)


def _blocking_func(stage: str, cancelled: list[str], entered: list[asyncio.Event], calls: list[Any]) -> Any:
    async def func(args: Any) -> ToolExecutionResult[int]:
        calls.append(args)
        if stage in ("func", "next"):
            entered[0].set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append("func")
                raise
        return ToolExecutionResult(1)

    return func


def _deregister_blocking_stage(stage: str) -> None:
    if stage == "conditional":
        assert guardrails.deregister_tool_conditional_execution("blocking")
    elif stage == "request":
        assert intercepts.deregister_tool_request("blocking")
    elif stage in ("execution", "next"):
        assert intercepts.deregister_tool_execution("blocking")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("stage", ["conditional", "request", "execution", "next", "func"])
async def test_cancelling_execute_cancels_the_pending_callback(events: Any, stage: str) -> None:
    cancelled: list[str] = []
    calls: list[Any] = []
    entered = [asyncio.Event()]
    _register_blocking_stage(stage, cancelled, entered)
    func = _blocking_func(stage, cancelled, entered, calls)
    future = tools.execute("t", {"x": 1}, func, metadata={"m": 1}, tool_call_id="call-c")
    await asyncio.wait_for(entered[0].wait(), 10)
    future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await future
    expected_cancelled = sorted({"next": ["execution", "func"]}.get(stage, [stage]))
    await eventually(lambda: sorted(cancelled) == expected_cancelled)
    assert sorted(cancelled) == expected_cancelled
    assert calls == ([{"x": 1}] if stage in ("func", "next") else [])
    evs = await drain_at_least(events, 0 if stage == "request" else 2)
    if stage == "conditional":
        assert shape(evs) == [("start", "blocking"), ("end", "blocking")]
        assert evs[0].uuid == evs[1].uuid
        assert evs[1].data == GUARD_CANCELLED
        assert evs[1].metadata == {"m": 1}
    elif stage == "request":
        assert evs == []
    else:
        assert shape(evs) == [("start", "t"), ("end", "t")]
        start, end = evs
        assert start.uuid == end.uuid
        assert end.data is None
        assert end.metadata == {
            "m": 1,
            "otel.status_code": "ERROR",
            "otel.status_description": "tool execution cancelled",
        }
        assert start.category_profile == end.category_profile == {"tool_call_id": "call-c"}
    _deregister_blocking_stage(stage)
    await follow_up(events)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("stage", ["conditional", "request", "execution", "next", "func"])
def test_loop_shutdown_with_a_pending_execute_is_clean(
    events: Any, stage: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    cancelled: list[str] = []
    calls: list[Any] = []
    entered: list[asyncio.Event] = []
    _register_blocking_stage(stage, cancelled, entered)
    func = _blocking_func(stage, cancelled, entered, calls)

    async def main() -> Any:
        entered.append(asyncio.Event())
        future = tools.execute("t", {"x": 1}, func, tool_call_id="call-s")
        await asyncio.wait_for(entered[0].wait(), 10)
        return future  # still pending when asyncio.run shuts the loop down

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        future = asyncio.run(main())
        del future
        gc.collect()
    expected_cancelled = {"next": ["execution", "func"]}.get(stage, [stage])
    assert sorted(cancelled) == sorted(expected_cancelled)
    assert calls == ([{"x": 1}] if stage in ("func", "next") else [])
    noise = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records] + [capfd.readouterr().err]
    for needle in SHUTDOWN_NOISE:
        assert not [text for text in noise if needle in text], needle
    evs = events.flush()
    tool_events = [e for e in evs if e.category == "tool"]
    if stage in ("conditional", "request"):
        assert tool_events == []
    else:
        assert shape(tool_events) == [("start", "t"), ("end", "t")]
        assert tool_events[1].metadata["otel.status_code"] == "ERROR"
        assert tool_events[0].category_profile == tool_events[1].category_profile == {"tool_call_id": "call-s"}
    _deregister_blocking_stage(stage)
    sync_follow_up(events)


# --- context variables ------------------------------------------------------------------------------------------


async def test_sync_middleware_sees_the_callers_context(events: Any) -> None:
    seen = []
    guardrails.register_tool_conditional_execution(
        "cond", 0, lambda n, a: seen.append(("conditional", CALLER_VAR.get()))
    )
    intercepts.register_tool_request("req", 0, False, lambda n, a: seen.append(("request", CALLER_VAR.get())) or a)

    def execution(name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        seen.append(("execution", CALLER_VAR.get()))
        return ToolExecutionInterceptOutcome(1)

    intercepts.register_tool_execution("exec", 0, execution)
    token = CALLER_VAR.set("caller")
    try:
        await tools.execute("t", {}, echo)
        assert seen == [("conditional", "caller"), ("request", "caller"), ("execution", "caller")]
        seen.clear()
        await tools.conditional_execution("t", {})
        await tools.request_intercepts("t", {})
        assert seen == [("conditional", "caller"), ("request", "caller")]
    finally:
        CALLER_VAR.reset(token)


def test_sync_standalone_helpers_see_the_callers_context(events: Any) -> None:
    seen = []
    guardrails.register_tool_conditional_execution(
        "cond", 0, lambda n, a: seen.append(("conditional", CALLER_VAR.get()))
    )
    intercepts.register_tool_request("req", 0, False, lambda n, a: seen.append(("request", CALLER_VAR.get())) or a)
    token = CALLER_VAR.set("sync-caller")
    try:
        assert tools.conditional_execution("t", {}) is None
        assert tools.request_intercepts("t", {}) == {}
    finally:
        CALLER_VAR.reset(token)
    assert seen == [("conditional", "sync-caller"), ("request", "sync-caller")]


@pytest.mark.parametrize("with_middleware", [False, True], ids=["plain", "with-middleware"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_contextvar_set_inside_func_does_not_leak(events: Any, is_async: bool, with_middleware: bool) -> None:
    def func(args: Any) -> ToolExecutionResult[str]:
        CALLER_VAR.set("inside")
        return ToolExecutionResult(CALLER_VAR.get())

    async def afunc(args: Any) -> ToolExecutionResult[str]:
        CALLER_VAR.set("inside")
        await asyncio.sleep(0)
        return ToolExecutionResult(CALLER_VAR.get())

    if with_middleware:
        intercepts.register_tool_request("noop", 0, False, lambda n, a: a)
    token = CALLER_VAR.set("caller")
    try:
        result = await tools.execute("t", {}, afunc if is_async else func)
        assert result.result == "inside"
        assert CALLER_VAR.get() == "caller"
    finally:
        CALLER_VAR.reset(token)


# --- scope-local middleware -------------------------------------------------------------------------------------


async def test_scope_local_tool_middleware_applies_only_inside_its_scope(events: Any) -> None:
    owner = scope.push("owner", ScopeType.Agent)
    calls = []
    scope_local.register_tool_conditional_execution(owner, "local-guard", 0, lambda n, a: calls.append("guard"))
    scope_local.register_tool_request(owner, "local-request", 0, False, lambda n, a: {**a, "local": True})
    scope_local.register_tool_execution(
        owner, "local-exec", 0, lambda n, a, nxt: ToolExecutionInterceptOutcome({"intercepted": a})
    )
    inside = await tools.execute("t", {"a": 1}, echo)
    assert inside.result == {"intercepted": {"a": 1, "local": True}}
    assert await tools.request_intercepts("t", {"a": 1}) == {"a": 1, "local": True}

    child = scope.push("child", ScopeType.Function)
    assert (await tools.execute("t", {"a": 2}, echo)).result == {"intercepted": {"a": 2, "local": True}}
    scope.pop(child)
    assert calls == ["guard", "guard"]

    with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
        elsewhere = await tools.execute("t", {"a": 3}, echo)
    assert elsewhere.result == {"echo": {"a": 3}}
    assert calls == ["guard", "guard"]

    scope.pop(owner)
    after = await tools.execute("t", {"a": 4}, echo)
    assert after.result == {"echo": {"a": 4}}
    assert await tools.request_intercepts("t", {"a": 4}) == {"a": 4}
    assert calls == ["guard", "guard"]
    with pytest.raises(RuntimeError, match=exactly(f"not found: scope {owner.uuid} not found")):
        scope_local.register_tool_request(owner, "late", 0, False, lambda n, a: a)

    evs = await drain(events)
    guard_starts = [e for e in evs if e.category == "guardrail" and e.scope_category == "start"]
    assert [e.name for e in guard_starts] == ["local-guard", "local-guard"]
    assert guard_starts[0].parent_uuid == owner.uuid
    assert guard_starts[1].parent_uuid == child.uuid


async def test_scope_local_tool_middleware_can_be_deregistered(events: Any) -> None:
    owner = scope.push("owner", ScopeType.Agent)
    scope_local.register_tool_request(owner, "local-request", 0, False, lambda n, a: {**a, "local": True})
    assert (await tools.execute("t", {}, echo)).result == {"echo": {"local": True}}
    assert scope_local.deregister_tool_request(owner, "local-request") is True
    assert scope_local.deregister_tool_request(owner, "local-request") is False
    assert (await tools.execute("t", {}, echo)).result == {"echo": {}}
    scope.pop(owner)
