"""Fuzz the eager JSON conversion of payloads at every public entry point that takes one.

The rule (core-api §8 "JSON conversion", README "payloads nested deeper than 256 levels"): a payload either
converts to the JSON value ``fuzz_support.model_json`` predicts (tuples/sets/sequences become lists,
mappings and dataclasses dicts, str/int/float subclasses and enums their plain value, NaN/inf null) and
that value is what the event (and, for managed tools, the callback) sees, or the call raises
``ValueError("Failed to convert to JSON: <detail>")`` with the detail the model predicts, before anything
is emitted. Nothing else may escape: no ``RecursionError`` on deep or cyclic input, no ``TypeError`` from
an odd key. Lone surrogates are left out (a known divergence: the reference refuses them, see the report).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fuzz_support import (
    MAX_DEPTH,
    cyclic_values,
    fuzz_settings,
    json_values,
    model_outcome,
    nested_values,
    odd_keys,
    python_values,
    same_json,
    short_texts,
    texts,
)
from hypothesis import given
from hypothesis import strategies as st

from nemo_relay import LLMRequest, ScopeType, ToolExecutionResult, scope, subscribers, tools
from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay.errors import JsonConversionError

pytestmark = pytest.mark.timeout(120)

Event = ScopeEvent | MarkEvent


@contextmanager
def recording() -> Iterator[list[Event]]:
    """Every event emitted inside the block, delivered by the time the block ends."""
    events: list[Event] = []
    name = f"fuzz-recorder-{uuid.uuid4()}"
    subscribers.register(name, events.append)
    try:
        yield events
        assert subscribers.flush(timeout=10), "dispatcher did not drain"
    finally:
        subscribers.deregister(name)


# Each entry point takes the payload, emits what it emits, and returns the values the runtime recorded for
# it (event payloads, and what a managed tool's callback received). Handles are closed on success.


def _event_data(value: Any) -> list[Any]:
    with recording() as events:
        scope.event("fuzz.mark", data=value)
    return [event.data for event in events]


def _event_metadata(value: Any) -> list[Any]:
    with recording() as events:
        scope.event("fuzz.mark", metadata=value)
    return [event.metadata for event in events]


def _scope_input(value: Any) -> list[Any]:
    with recording() as events:
        handle = scope.push("fuzz.scope", ScopeType.Function, input=value)
        scope.pop(handle)
    return [events[0].data]  # the end event carries the (absent) output


def _scope_output(value: Any) -> list[Any]:
    handle = scope.push("fuzz.scope", ScopeType.Function)
    with recording() as events:
        try:
            scope.pop(handle, output=value)
        except BaseException:
            scope.pop(handle)  # a refused payload leaves the scope on the stack
            raise
    return [event.data for event in events]


def _handle_data(value: Any) -> list[Any]:
    handle = scope.push("fuzz.scope", ScopeType.Function, data=value)
    scope.pop(handle)
    return [handle.data]


def _tool_call(value: Any) -> list[Any]:
    with recording() as events:
        handle = tools.call("fuzz.tool", value)
        tools.call_end(handle, ToolExecutionResult("done"))
    return [events[0].data]


def _tool_execute(value: Any) -> list[Any]:
    seen: list[Any] = []

    def tool(args: Any) -> ToolExecutionResult[Any]:
        seen.append(args)
        return ToolExecutionResult(args)

    async def run() -> None:
        await tools.execute("fuzz.tool", value, tool)

    with recording() as events:
        asyncio.run(run())
    start, end = (event for event in events if isinstance(event, ScopeEvent) and event.category == "tool")
    return [seen[0], start.data, end.data]


def _llm_request(value: Any) -> list[Any]:
    return [LLMRequest({}, value).content]


ENTRY_POINTS: dict[str, Callable[[Any], list[Any]]] = {
    "scope.event(data=)": _event_data,
    "scope.event(metadata=)": _event_metadata,
    "scope.push(input=)": _scope_input,
    "scope.pop(output=)": _scope_output,
    "scope.push(data=)": _handle_data,
    "tools.call(args)": _tool_call,
    "tools.execute(args)": _tool_execute,
    "LLMRequest(content)": _llm_request,
}


def _check(entry: str, value: Any) -> None:
    outcome, expected = model_outcome(value)
    try:
        recorded = ENTRY_POINTS[entry](value)
    except JsonConversionError as exc:
        assert outcome == "error", f"{entry} refused a convertible value: {exc}"
        assert str(exc) == expected
        assert isinstance(exc, ValueError)
        return
    assert outcome == "ok", f"{entry} accepted a value the conversion must refuse ({expected})"
    assert recorded, f"{entry} recorded nothing"
    for got in recorded:
        assert same_json(got, expected), f"{entry} recorded {got!r}, expected {expected!r}"


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@given(value=python_values(20))
@fuzz_settings(40)
def test_payload_conversion_matches_the_documented_rules(entry: str, value: Any) -> None:
    """Arbitrary Python values (JSON, convertible, and not) convert exactly as documented, or are refused
    with the documented ``ValueError`` text."""
    _check(entry, value)


@pytest.mark.parametrize("entry", ["scope.event(data=)", "tools.call(args)", "LLMRequest(content)"])
@given(value=cyclic_values())
@fuzz_settings(30)
def test_cycles_are_refused(entry: str, value: Any) -> None:
    """A container that contains itself (through lists, dicts, ``UserDict``/``UserList`` or dataclasses) is
    refused with ``circular reference detected`` (or an earlier conversion error), never a ``RecursionError``."""
    outcome, expected = model_outcome(value)
    assert outcome == "error"
    with pytest.raises(JsonConversionError) as info:
        ENTRY_POINTS[entry](value)
    assert str(info.value) == expected


@pytest.mark.parametrize("entry", ["scope.event(data=)", "tools.call(args)", "LLMRequest(content)"])
@given(case=nested_values(min_depth=MAX_DEPTH - 60, max_depth=3000))
@fuzz_settings(20)
def test_deep_nesting_is_refused_not_crashed(entry: str, case: tuple[int, Any]) -> None:
    """Nesting up to the documented limit converts; deeper nesting is refused with the documented message
    (no ``RecursionError``, whatever mix of containers)."""
    depth, value = case
    assert (model_outcome(value)[0] == "ok") == (depth <= MAX_DEPTH)  # (the model agrees with the README)
    _check(entry, value)


@given(value=json_values(40, finite=True))
@fuzz_settings(100)
def test_plain_json_round_trips_exactly(value: Any) -> None:
    """Plain JSON passes through unchanged (types included) and survives a JSON text round trip."""
    (got,) = _event_data(value)
    assert same_json(got, value)
    assert same_json(json.loads(json.dumps(got, allow_nan=False)), value)


# Columns that make a level of records regular, so the batched check of large payloads groups them by field.
_COLUMNS = [
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-1000, 1000),
    texts,
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(texts, max_size=3),
    st.dictionaries(short_texts, st.integers(-5, 5), max_size=3),
]


@st.composite
def large_payloads(draw: st.DrawFn) -> Any:
    """A list (or an object holding a list) of 20-70 records with uniform columns, and a few awkward values
    (anything ``python_values`` makes, or an odd key) dropped at random places."""
    keys = draw(st.lists(short_texts, min_size=1, max_size=5, unique=True))
    columns = {key: draw(st.sampled_from(_COLUMNS)) for key in keys}
    rows: list[Any] = [{key: draw(column) for key, column in columns.items()} for _ in range(draw(st.integers(20, 70)))]
    for _ in range(draw(st.integers(0, 3))):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        if draw(st.booleans()):
            row[draw(st.sampled_from(keys))] = draw(python_values(4))
        else:
            row[draw(odd_keys)] = draw(python_values(2))
    return rows if draw(st.booleans()) else {"rows": rows, "count": len(rows)}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@given(value=large_payloads())
@fuzz_settings(30)
def test_large_payloads_convert_like_small_ones(entry: str, value: Any) -> None:
    """Large payloads (copied with ``marshal`` and checked in batches on the copy) follow the same rules as small
    ones at every entry point: what is recorded (and what a managed tool's callback receives) is the documented
    conversion, or the call raises the documented error."""
    _check(entry, value)
