"""Large managed-tool payloads: the batched check of a frozen copy must agree with the item-by-item rules.

Arguments and results with more than a few dozen values take another path than small ones (``jsonconv.own``:
freeze with ``marshal``, then check the thawed copy a level at a time with C builtins, grouping record fields).
Each test puts one awkward value somewhere in a list of records and checks, through ``tools.execute``, that
the callback, the caller and the events see exactly what the small-payload rules give: the same conversion
(tuples to lists, subclasses to their plain value, NaN to null) or the same error text.
"""

from __future__ import annotations

import enum
import math
import re
from typing import Any

import pytest

from nemo_relay import ToolExecutionResult, subscribers, tools
from nemo_relay._core import jsonconv


@pytest.fixture(autouse=True, params=["batched", "item-by-item"])
def check_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with the batched check, and with the fallback an interpreter whose ``gc.get_referents``
    reports dicts differently would use."""
    if request.param == "item-by-item":
        monkeypatch.setattr(jsonconv, "_BATCHED", False)
    return str(request.param)


class Text(str):
    """A ``str`` subclass: converts to its plain string."""


class Level(enum.IntEnum):
    HIGH = 3


def records(count: int = 60) -> list[dict[str, Any]]:
    """Regular records: each field a uniform column (int, str, float, bool, None, list, dict)."""
    return [
        {
            "id": i,
            "name": f"row {i}",
            "score": i / 7,
            "ok": i % 2 == 0,
            "note": None,
            "tags": ["a", f"t{i}"],
            "meta": {"rank": i, "label": "x"},
        }
        for i in range(count)
    ]


async def run(args: Any) -> tuple[Any, Any, list[Any]]:
    """(what the callback received, what the caller got back, the start and end events' data)."""
    seen: list[Any] = []
    recorded: list[Any] = []
    name = "large-payload-recorder"

    def tool(received: Any) -> ToolExecutionResult[Any]:
        seen.append(received)
        return ToolExecutionResult(args)  # the same awkward value as the result

    subscribers.register(name, lambda event: recorded.append(event) if event.category == "tool" else None)
    try:
        result = await tools.execute("bulk", args, tool)
        await subscribers.flush_async()
    finally:
        subscribers.deregister(name)
    return seen[0], result.result, [event.data for event in recorded]


def assert_exact_types(value: Any) -> None:
    """Only plain JSON types, nothing subclassed, all the way down."""
    assert type(value) in (dict, list, str, int, float, bool, type(None)), type(value)
    if type(value) is dict:
        for key, item in value.items():
            assert type(key) is str
            assert_exact_types(item)
    elif type(value) is list:
        for item in value:
            assert_exact_types(item)


@pytest.mark.parametrize(
    ("field", "odd", "plain"),
    [
        ("tags", ("a", "b"), ["a", "b"]),  # a tuple in a column of lists
        ("name", Text("sub"), "sub"),  # a str subclass in a column of strings
        ("id", Level.HIGH, 3),  # an IntEnum in a column of ints
        ("id", True, True),  # a bool among ints stays a bool
        ("id", 2**63, 2**63),  # above the signed range, inside the unsigned one
        ("score", math.nan, None),  # NaN among floats
        ("score", -math.inf, None),
        ("score", 3, 3),  # an int among floats
        ("note", "text", "text"),
        ("meta", {"rank": (1, 2)}, {"rank": [1, 2]}),
        ("meta", {"set": frozenset({1})}, {"set": [1]}),
    ],
)
@pytest.mark.parametrize("position", [0, 31, 59])
async def test_convertible_values_convert_as_in_small_payloads(field: str, odd: Any, plain: Any, position: int) -> None:
    args = {"rows": records()}
    args["rows"][position][field] = odd
    expected = {"rows": records()}
    expected["rows"][position][field] = plain
    seen, result, (start, end) = await run(args)
    for value in (seen, result, start, end):
        assert value == expected or _same_with_nan(value, expected)
        assert_exact_types(value)
    assert args["rows"][position][field] is odd  # the caller's value is untouched


def _same_with_nan(got: Any, expected: Any) -> bool:
    return repr(got) == repr(expected)


@pytest.mark.parametrize(
    ("odd", "message"),
    [
        (b"raw", "invalid type: byte array, expected any valid JSON value"),
        (object(), "unsupported type object"),
        (2**64, "JSON number out of range"),
        (-(2**63) - 1, "JSON number out of range"),
        ({1: "a"}, "unexpected type: 'int' object is not an instance of 'str'"),
        ({None: "a"}, "unexpected type: 'None' is not an instance of 'str'"),
        ({(1,): "a"}, "unexpected type: 'tuple' object is not an instance of 'str'"),
        (1j, "unsupported type complex"),
    ],
)
@pytest.mark.parametrize("field", ["id", "name", "tags", "meta"])
async def test_refused_values_give_the_small_payload_error(odd: Any, message: str, field: str) -> None:
    small = {"value": odd}
    with pytest.raises(ValueError, match=f"^Failed to convert to JSON: {re.escape(message)}$"):
        tools.execute("small", small, lambda a: ToolExecutionResult(None))
    args = {"rows": records()}
    args["rows"][17][field] = odd
    with pytest.raises(ValueError, match=f"^Failed to convert to JSON: {re.escape(message)}$"):
        tools.execute("bulk", args, lambda a: ToolExecutionResult(None))
    seen, _, _ = await run({"rows": records()})  # the runtime is still usable
    assert seen == {"rows": records()}


async def test_a_dict_with_a_non_str_key_among_regular_records_is_refused() -> None:
    rows = records()
    rows[40] = {1: 0, "name": "row", "score": 0.5, "ok": True, "note": None, "tags": [], "meta": {}}  # same length
    with pytest.raises(ValueError, match="not an instance of 'str'"):
        tools.execute("bulk", rows, lambda a: ToolExecutionResult(None))


async def test_a_key_that_once_was_not_a_str_does_not_confuse_the_check() -> None:
    row: dict[Any, Any] = {"id": 1, 99: "gone"}
    del row[99]  # the dict keeps the key table a non-str key needed
    rows = records()
    rows[5] = row
    seen, result, (start, end) = await run(rows)
    assert seen[5] == result[5] == start[5] == end[5] == {"id": 1}


async def test_cycles_and_deep_nesting_in_large_payloads_are_refused() -> None:
    rows: list[Any] = records()
    rows[10]["tags"].append(rows)  # a cycle through the outer list
    with pytest.raises(ValueError, match="circular reference detected"):
        tools.execute("bulk", rows, lambda a: ToolExecutionResult(None))
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    rows = records()
    rows[3]["meta"] = deep
    with pytest.raises(ValueError, match="payload nests deeper than 256 levels"):
        tools.execute("bulk", rows, lambda a: ToolExecutionResult(None))


async def test_an_instance_dict_is_a_plain_payload() -> None:
    class Config:
        pass

    config = Config()
    for i in range(80):
        setattr(config, f"field_{i}", i)
    seen, result, (start, end) = await run(vars(config))
    expected = {f"field_{i}": i for i in range(80)}
    assert seen == result == start == end == expected
    assert type(seen) is dict


async def test_callback_and_caller_copies_of_a_large_payload_are_independent() -> None:
    caller_args = {"rows": records()}
    seen: list[Any] = []

    def tool(args: Any) -> ToolExecutionResult[Any]:
        args["rows"][0]["tags"].append("from-tool")
        seen.append(args)
        return ToolExecutionResult(args)

    recorded: list[Any] = []
    subscribers.register("independence", lambda e: recorded.append(e) if e.category == "tool" else None)
    try:
        result = await tools.execute("bulk", caller_args, tool)
        caller_args["rows"][1]["tags"].append("from-caller")
        await subscribers.flush_async()
    finally:
        subscribers.deregister("independence")
    assert caller_args["rows"][0]["tags"] == ["a", "t0"]
    assert seen[0]["rows"][1]["tags"] == ["a", "t1"]
    start, end = (event.data for event in recorded)
    assert start == {"rows": records()}
    assert end["rows"][0]["tags"] == ["a", "t0", "from-tool"]
    assert result.result["rows"][0]["tags"] == ["a", "t0", "from-tool"]
    assert result.result is not seen[0]


@pytest.mark.parametrize(
    "shape",
    [
        lambda rows: rows,  # the value itself is large
        lambda rows: {"rows": rows},  # a large part one level down (a conversation's messages)
        lambda rows: {"query": {"rows": rows, "limit": 5}},  # two levels down
        lambda rows: {"a": [{"b": {"c": rows}}]},  # deeper than the batched tries reach: item by item
    ],
)
async def test_marks_and_llm_requests_convert_large_parts_like_small_ones(shape: Any) -> None:
    from nemo_relay import LLMRequest, scope

    rows = records()
    rows[20]["tags"] = ("t", 1)  # converts to a list
    rows[33]["score"] = math.inf  # converts to null
    expected_rows = records()
    expected_rows[20]["tags"] = ["t", 1]
    expected_rows[33]["score"] = None
    recorded: list[Any] = []
    subscribers.register("marks", lambda e: recorded.append(e.data) if e.name == "large.mark" else None)
    try:
        scope.event("large.mark", data=shape(rows))
        await subscribers.flush_async()
    finally:
        subscribers.deregister("marks")
    assert recorded == [shape(expected_rows)]
    assert LLMRequest({}, shape(rows)).content == shape(expected_rows)
    rows[7]["meta"] = {3: "int key"}
    with pytest.raises(ValueError, match="not an instance of 'str'"):
        scope.event("large.mark", data=shape(rows))
    with pytest.raises(ValueError, match="not an instance of 'str'"):
        LLMRequest({}, shape(rows))
