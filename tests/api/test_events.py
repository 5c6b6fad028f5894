"""Delivered events: properties, the ATOF JSON form, ids and timestamps, immutability, and the JSON
conversion of payloads. Expected texts were checked against the reference wheel (nemo-relay 0.8.4)."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import time
import uuid
from collections import ChainMap, OrderedDict, UserDict, UserList, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from nemo_relay import (
    LogSeverity,
    MarkEvent,
    MetricKind,
    MetricMeasurement,
    MetricValueType,
    ScopeAttributes,
    ScopeEvent,
    ScopeType,
    scope,
)

SCOPE_KEYS = {
    "atof_version",
    "attributes",
    "category",
    "category_profile",
    "data",
    "data_schema",
    "kind",
    "metadata",
    "name",
    "parent_uuid",
    "scope_category",
    "timestamp",
    "uuid",
}
MARK_KEYS = {
    "atof_version",
    "category",
    "category_profile",
    "data",
    "data_schema",
    "kind",
    "metadata",
    "name",
    "parent_uuid",
    "timestamp",
    "uuid",
}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.(\d{3}|\d{6}|\d{9}))?\+00:00")
PREFIX = "Failed to convert to JSON: "


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def emit_mark(events: Any, **kwargs: Any) -> MarkEvent:
    scope.event("probe", **kwargs)
    (mark,) = events.flush()
    return mark


def scope_pair(events: Any, **push_kwargs: Any) -> tuple[ScopeEvent, ScopeEvent]:
    output = push_kwargs.pop("output", None)
    end_metadata = push_kwargs.pop("end_metadata", None)
    handle = scope.push(push_kwargs.pop("name", "outer"), push_kwargs.pop("scope_type", ScopeType.Agent), **push_kwargs)
    scope.pop(handle, output=output, metadata=end_metadata)
    start, end = events.flush()
    return start, end


# --- properties -----------------------------------------------------------------------------------------


class TestProperties:
    def test_scope_event_public_surface(self, events: Any) -> None:
        start, _ = scope_pair(events)
        assert isinstance(start, ScopeEvent)
        public = {n for n in dir(start) if not n.startswith("_")}
        assert public == SCOPE_KEYS | {"annotated_request", "annotated_response", "to_dict", "to_json"}

    def test_mark_event_public_surface(self, events: Any) -> None:
        mark = emit_mark(events)
        assert isinstance(mark, MarkEvent)
        public = {n for n in dir(mark) if not n.startswith("_")}
        assert public == MARK_KEYS | {"severity", "to_dict", "to_json"}

    def test_scope_event_values(self, events: Any) -> None:
        root = scope.get_handle()
        start, end = scope_pair(
            events,
            name="outer",
            attributes=ScopeAttributes(0b11),
            input={"in": 1},
            metadata={"m": 1},
            output=["out"],
            end_metadata={"e": 2},
        )
        assert start.kind == end.kind == "scope"
        assert start.atof_version == end.atof_version == "0.1"
        assert (start.scope_category, end.scope_category) == ("start", "end")
        assert start.name == end.name == "outer"
        assert start.category == end.category == "agent"
        assert start.attributes == end.attributes == ["parallel", "relocatable"]
        assert start.parent_uuid == end.parent_uuid == root.uuid
        assert start.uuid == end.uuid
        assert (start.data, end.data) == ({"in": 1}, ["out"])
        assert (start.metadata, end.metadata) == ({"m": 1}, {"m": 1, "e": 2})
        assert start.category_profile is None and end.category_profile is None
        assert start.data_schema is None and end.data_schema is None

    def test_plain_scope_events_have_no_llm_annotations(self, events: Any) -> None:
        start, end = scope_pair(events, scope_type=ScopeType.Llm)
        assert (start.annotated_request, start.annotated_response) == (None, None)
        assert (end.annotated_request, end.annotated_response) == (None, None)

    def test_mark_event_values(self, events: Any) -> None:
        handle = scope.push("parent", ScopeType.Function)
        scope.event(
            "probe",
            data={"d": 1},
            metadata={"m": 1},
            data_schema={"name": "s", "version": "2"},
            severity=LogSeverity.Debug,
        )
        scope.pop(handle)
        _, mark, _ = events.flush()
        assert mark.kind == "mark"
        assert mark.atof_version == "0.1"
        assert mark.name == "probe"
        assert mark.parent_uuid == handle.uuid
        assert mark.uuid != handle.uuid
        assert mark.data == {"d": 1}
        assert mark.metadata == {"m": 1, "nemo_relay.log.severity": "debug"}
        assert mark.data_schema == {"name": "s", "version": "2"}
        assert mark.severity is LogSeverity.Debug
        assert mark.category is None
        assert mark.category_profile is None

    def test_marks_have_no_scope_only_fields(self, events: Any) -> None:
        mark = emit_mark(events)
        assert not hasattr(mark, "scope_category")
        assert not hasattr(mark, "attributes")

    def test_default_repr_names_the_class(self, events: Any) -> None:
        start, _ = scope_pair(events)
        scope.event("m")
        mark = events.flush()[-1]
        assert "ScopeEvent" in repr(start)
        assert "MarkEvent" in repr(mark)


class TestReadOnly:
    @pytest.mark.parametrize(
        "field",
        sorted(SCOPE_KEYS),
    )
    def test_scope_event_properties_cannot_be_assigned(self, events: Any, field: str) -> None:
        start, _ = scope_pair(events)
        before = getattr(start, field)
        with pytest.raises(AttributeError):
            setattr(start, field, "changed")
        assert getattr(start, field) == before

    @pytest.mark.parametrize("field", sorted(MARK_KEYS | {"severity"}))
    def test_mark_event_properties_cannot_be_assigned(self, events: Any, field: str) -> None:
        mark = emit_mark(events, data={"d": 1})
        before = getattr(mark, field)
        with pytest.raises(AttributeError):
            setattr(mark, field, "changed")
        assert getattr(mark, field) == before

    def test_no_new_attributes_and_no_deletion(self, events: Any) -> None:
        start, _ = scope_pair(events)
        with pytest.raises(AttributeError):
            start.extra = 1  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            del start.name

    def test_mutating_returned_data_does_not_change_the_event(self, events: Any) -> None:
        # Several subscribers share one event; what one does with a returned value must not leak.
        mark = emit_mark(events, data={"a": [1]}, metadata={"m": {"n": 1}})
        mark.data["a"].append(2)
        mark.data["new"] = 1
        mark.metadata["m"]["n"] = 99
        assert mark.data == {"a": [1]}
        assert mark.metadata == {"m": {"n": 1}}

    def test_mutating_to_dict_does_not_change_the_event(self, events: Any) -> None:
        start, _ = scope_pair(events, input={"a": 1}, attributes=ScopeAttributes(1))
        record = start.to_dict()
        record["name"] = "changed"
        record["data"]["a"] = 99
        record["attributes"].append("x")
        assert start.name == "outer"
        assert start.data == {"a": 1}
        assert start.attributes == ["parallel"]
        assert start.to_dict()["data"] == {"a": 1}

    def test_attributes_list_is_a_copy(self, events: Any) -> None:
        start, _ = scope_pair(events, attributes=ScopeAttributes(1))
        start.attributes.append("x")
        assert start.attributes == ["parallel"]


# --- JSON form ------------------------------------------------------------------------------------------


class TestJsonForm:
    def test_scope_to_dict_keys_and_nulls(self, events: Any) -> None:
        start, end = scope_pair(events)
        for event in (start, end):
            record = event.to_dict()
            assert type(record) is dict
            assert set(record) == SCOPE_KEYS
            assert record["category_profile"] is None
            assert record["data"] is None
            assert record["data_schema"] is None
            assert record["metadata"] is None
            assert record["attributes"] == []
            assert record["kind"] == "scope"
            assert record["atof_version"] == "0.1"

    def test_mark_to_dict_keys_and_nulls(self, events: Any) -> None:
        record = emit_mark(events).to_dict()
        assert set(record) == MARK_KEYS
        assert record["category"] is None
        assert record["category_profile"] is None
        assert record["data"] is None
        assert record["data_schema"] is None
        assert record["metadata"] is None
        assert record["kind"] == "mark"

    def test_to_dict_matches_properties(self, events: Any) -> None:
        start, end = scope_pair(events, input={"i": 1}, metadata={"m": 1}, attributes=ScopeAttributes(2))
        scope.event("mark", data=[1], metadata={"k": "v"}, data_schema={"name": "n", "version": "1"})
        mark = events.flush()[-1]
        for event in (start, end, mark):
            record = event.to_dict()
            for key, value in record.items():
                assert getattr(event, key) == value, key

    def test_to_json_round_trips(self, events: Any) -> None:
        handle = scope.push("outer", ScopeType.Agent, input={"in": [1, 2.5, None, True]}, metadata={"m": "é"})
        scope.event("mark", data={"nested": {"b": 1, "a": {"d": 2, "c": 3}}}, severity=LogSeverity.Info)
        scope.metric("metric", [MetricMeasurement("n", MetricKind.Gauge, MetricValueType.F64, 1.5)])
        scope.pop(handle, output="done")
        events.flush()
        assert len(events) == 4
        for event in events:
            assert json.loads(event.to_json()) == event.to_dict()

    def test_to_json_is_compact_and_sorted_at_every_level(self, events: Any) -> None:
        scope.event(
            "sorted",
            data={"zeta": {"y": 1, "x": [{"b": 2, "a": 1}]}, "alpha": "é"},
            metadata={"z": 1, "a": 2},
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        )
        mark = events.flush()[0]
        expected = (
            '{"atof_version":"0.1","category":null,"category_profile":null,'
            '"data":{"alpha":"é","zeta":{"x":[{"a":1,"b":2}],"y":1}},"data_schema":null,"kind":"mark",'
            f'"metadata":{{"a":2,"z":1}},"name":"sorted","parent_uuid":"{mark.parent_uuid}",'
            f'"timestamp":"2026-01-01T00:00:00+00:00","uuid":"{mark.uuid}"}}'
        )
        assert mark.to_json() == expected

    def test_scope_to_json_literal(self, events: Any) -> None:
        handle = scope.push(
            "outer",
            ScopeType.Agent,
            attributes=ScopeAttributes(0b11),
            input={"in": 1},
            metadata={"m": 1},
            timestamp=datetime(2026, 1, 1, 0, 0, 3, 126456, tzinfo=UTC),
        )
        scope.pop(handle, timestamp=datetime(2026, 1, 1, 0, 0, 4, tzinfo=UTC))
        start, _ = events.flush()
        assert start.to_json() == (
            '{"atof_version":"0.1","attributes":["parallel","relocatable"],"category":"agent",'
            '"category_profile":null,"data":{"in":1},"data_schema":null,"kind":"scope",'
            f'"metadata":{{"m":1}},"name":"outer","parent_uuid":"{handle.parent_uuid}",'
            f'"scope_category":"start","timestamp":"2026-01-01T00:00:03.126456+00:00","uuid":"{handle.uuid}"}}'
        )

    def test_to_json_matches_sorted_compact_dump(self, events: Any) -> None:
        start, end = scope_pair(events, input={"b": {"d": [1, {"f": 1, "e": 2}], "c": None}, "a": "ü"})
        for event in (start, end):
            assert event.to_json() == json.dumps(
                event.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )


# --- ids ------------------------------------------------------------------------------------------------


class TestIds:
    def test_uuids_are_lowercase_v7(self, events: Any) -> None:
        start, end = scope_pair(events)
        scope.event("m")
        mark = events.flush()[-1]
        for text in (start.uuid, end.uuid, mark.uuid, start.parent_uuid, mark.parent_uuid):
            assert UUID_RE.fullmatch(text), text
            parsed = uuid.UUID(text)
            assert parsed.version == 7
            assert parsed.variant == uuid.RFC_4122
            assert str(parsed) == text

    def test_embedded_unix_time_is_the_emission_time(self, events: Any) -> None:
        before_ms = time.time_ns() // 1_000_000
        scope.event("m")
        after_ms = time.time_ns() // 1_000_000
        mark = events.flush()[0]
        assert before_ms <= uuid.UUID(mark.uuid).int >> 80 <= after_ms

    def test_uuids_are_time_ordered_and_unique(self, events: Any) -> None:
        emitted: list[str] = []
        for i in range(200):
            if i % 3 == 0:
                handle = scope.push(f"s{i}", ScopeType.Function)
                emitted.append(handle.uuid)
                scope.pop(handle)
            else:
                scope.event(f"m{i}")
        events.flush()
        ids = [e.uuid for e in events if e.kind == "mark" or e.scope_category == "start"]
        assert len(ids) == 200
        assert len(set(ids)) == 200
        assert ids == sorted(ids)
        assert [uuid.UUID(i).int for i in ids] == sorted(uuid.UUID(i).int for i in ids)

    def test_start_and_end_share_uuid_marks_have_their_own(self, events: Any) -> None:
        handle = scope.push("s", ScopeType.Agent)
        scope.event("inside")
        scope.pop(handle)
        start, mark, end = events.flush()
        assert start.uuid == end.uuid == handle.uuid
        assert mark.uuid not in (handle.uuid, scope.get_handle().uuid)
        assert mark.parent_uuid == handle.uuid


# --- timestamps -----------------------------------------------------------------------------------------


class TestTimestampFormat:
    @pytest.mark.parametrize(
        ("microsecond", "text"),
        [
            (0, "2026-01-01T00:00:03+00:00"),
            (500000, "2026-01-01T00:00:03.500+00:00"),
            (1000, "2026-01-01T00:00:03.001+00:00"),
            (120000, "2026-01-01T00:00:03.120+00:00"),
            (126456, "2026-01-01T00:00:03.126456+00:00"),
            (120, "2026-01-01T00:00:03.000120+00:00"),
            (1, "2026-01-01T00:00:03.000001+00:00"),
            (999999, "2026-01-01T00:00:03.999999+00:00"),
        ],
    )
    def test_fraction_digits_for_supplied_times(self, events: Any, microsecond: int, text: str) -> None:
        mark = emit_mark(events, timestamp=datetime(2026, 1, 1, 0, 0, 3, microsecond, tzinfo=UTC))
        assert mark.timestamp == text
        assert datetime.fromisoformat(mark.timestamp) == datetime(2026, 1, 1, 0, 0, 3, microsecond, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("moment", "text"),
        [
            (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00+00:00"),
            (datetime(1960, 5, 1, 12, 0, 0, 5, tzinfo=UTC), "1960-05-01T12:00:00.000005+00:00"),
            (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999+00:00"),
        ],
    )
    def test_extreme_supplied_times(self, events: Any, moment: datetime, text: str) -> None:
        assert emit_mark(events, timestamp=moment).timestamp == text

    def test_runtime_times_are_rfc3339_utc(self, events: Any) -> None:
        before = datetime.now(UTC).replace(microsecond=0)
        handle = scope.push("s", ScopeType.Agent)
        scope.event("m")
        scope.pop(handle)
        events.flush()
        for event in events:
            assert TIMESTAMP_RE.fullmatch(event.timestamp), event.timestamp
            assert "T" in event.timestamp
            parsed = datetime.fromisoformat(event.timestamp.replace("Z", "+00:00"))
            assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
            assert parsed >= before


# --- JSON conversion ------------------------------------------------------------------------------------


class IntLevel(enum.IntEnum):
    HIGH = 3


class StrColour(str, enum.Enum):  # noqa: UP042 - the mixin (not StrEnum) is the case that str() gets wrong
    RED = "red"


class PlainEnum(enum.Enum):
    A = 1


class MyFloat(float):
    pass


class MyInt(int):
    pass


class MyStr(str):
    pass


class MyDict(dict):  # type: ignore[type-arg]
    pass


class MyList(list):  # type: ignore[type-arg]
    pass


class ReadOnlyMapping(Mapping):  # type: ignore[type-arg]
    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclasses.dataclass
class Point:
    x: int
    tags: list[str]


@dataclasses.dataclass
class Node:
    child: Any = None


def _cyclic_dict() -> Any:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


def _cyclic_list() -> Any:
    items: list[Any] = []
    items.append(items)
    return items


def _cyclic_userdict() -> Any:
    d = UserDict()
    d["self"] = d
    return d


def _cyclic_userlist() -> Any:
    items = UserList()
    items.append(items)
    return items


def _cyclic_dataclass() -> Any:
    node = Node()
    node.child = node
    return node


def _cyclic_mixed() -> Any:
    outer: dict[str, Any] = {"items": []}
    outer["items"].append({"back": outer})
    return outer


def _cyclic_tuple() -> Any:
    inner: list[Any] = []
    outer = (inner,)
    inner.append(outer)
    return outer


def _nested_lists(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _nested_dicts(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def _shared() -> Any:
    leaf = [1]
    return {"a": leaf, "b": leaf, "c": [leaf, leaf], "d": {"e": leaf}}


ACCEPTED = [
    pytest.param("s", "s", id="str"),
    pytest.param(True, True, id="bool"),
    pytest.param(0, 0, id="zero"),
    pytest.param(-0.0, -0.0, id="negative-zero"),
    pytest.param(1e308, 1e308, id="large-float"),
    pytest.param((1, 2), [1, 2], id="tuple"),
    pytest.param({3}, [3], id="set"),
    pytest.param(frozenset([4]), [4], id="frozenset"),
    pytest.param(deque([1, 2]), [1, 2], id="deque"),
    pytest.param(range(3), [0, 1, 2], id="range"),
    pytest.param({"t": (1, (2, 3))}, {"t": [1, [2, 3]]}, id="nested-tuple"),
    pytest.param(float("nan"), None, id="nan"),
    pytest.param(float("inf"), None, id="inf"),
    pytest.param(float("-inf"), None, id="-inf"),
    pytest.param([float("nan"), 1.5], [None, 1.5], id="nan-in-list"),
    pytest.param({"v": float("inf")}, {"v": None}, id="inf-in-dict"),
    pytest.param(2**64 - 1, 2**64 - 1, id="u64-max"),
    pytest.param(-(2**63), -(2**63), id="i64-min"),
    pytest.param([2**63, -1], [2**63, -1], id="big-ints-in-list"),
    pytest.param(IntLevel.HIGH, 3, id="IntEnum"),
    pytest.param(StrColour.RED, "red", id="str-Enum"),
    pytest.param(enum.StrEnum("Mode", {"FAST": "fast"}).FAST, "fast", id="StrEnum"),
    pytest.param(MyFloat(1.5), 1.5, id="float-subclass"),
    pytest.param(MyFloat("nan"), None, id="float-subclass-nan"),
    pytest.param(MyInt(5), 5, id="int-subclass"),
    pytest.param(MyStr("q"), "q", id="str-subclass"),
    pytest.param(MyDict(a=1), {"a": 1}, id="dict-subclass"),
    pytest.param(MyList([1]), [1], id="list-subclass"),
    pytest.param(ReadOnlyMapping({"a": (1,)}), {"a": [1]}, id="Mapping"),
    pytest.param(OrderedDict([("b", 1), ("a", 2)]), {"a": 2, "b": 1}, id="OrderedDict"),
    pytest.param(defaultdict(int, {"a": 1}), {"a": 1}, id="defaultdict"),
    pytest.param(ChainMap({"a": 1}, {"b": 2}), {"a": 1, "b": 2}, id="ChainMap"),
    pytest.param(UserDict({"a": (1, 2)}), {"a": [1, 2]}, id="UserDict"),
    pytest.param(UserList([1, (2,)]), [1, [2]], id="UserList"),
    pytest.param(Point(1, ["a"]), {"x": 1, "tags": ["a"]}, id="dataclass"),
    pytest.param({"p": [Point(2, [])]}, {"p": [{"x": 2, "tags": []}]}, id="nested-dataclass"),
    pytest.param({MyStr("k"): 1}, {"k": 1}, id="str-subclass-key"),
    pytest.param({StrColour.RED: 1}, {"red": 1}, id="str-Enum-key"),
    pytest.param(_shared(), {"a": [1], "b": [1], "c": [[1], [1]], "d": {"e": [1]}}, id="shared-not-cyclic"),
    pytest.param(_nested_lists(256), _nested_lists(256), id="256-nested-lists"),
    pytest.param(_nested_dicts(256), _nested_dicts(256), id="256-nested-dicts"),
]

REJECTED = [
    pytest.param(object(), "unsupported type object", id="object"),
    pytest.param(b"ab", "invalid type: byte array, expected any valid JSON value", id="bytes"),
    pytest.param(bytearray(b"a"), "unexpected type: 'bytearray' object is not an instance of 'bytes'", id="bytearray"),
    pytest.param({1: 2}, "unexpected type: 'int' object is not an instance of 'str'", id="int-key"),
    pytest.param({True: 2}, "unexpected type: 'bool' object is not an instance of 'str'", id="bool-key"),
    pytest.param({None: 2}, "unexpected type: 'None' is not an instance of 'str'", id="None-key"),
    pytest.param({1.5: 2}, "unexpected type: 'float' object is not an instance of 'str'", id="float-key"),
    pytest.param({(1,): 2}, "unexpected type: 'tuple' object is not an instance of 'str'", id="tuple-key"),
    pytest.param({IntLevel.HIGH: 1}, "unexpected type: 'IntLevel' object is not an instance of 'str'", id="enum-key"),
    pytest.param({"a": [{"b": {1: 2}}]}, "unexpected type: 'int' object is not an instance of 'str'", id="deep-key"),
    pytest.param(_cyclic_dict(), "circular reference detected", id="cycle-dict"),
    pytest.param(_cyclic_list(), "circular reference detected", id="cycle-list"),
    pytest.param(_cyclic_userdict(), "circular reference detected", id="cycle-UserDict"),
    pytest.param(_cyclic_userlist(), "circular reference detected", id="cycle-UserList"),
    pytest.param(_cyclic_dataclass(), "circular reference detected", id="cycle-dataclass"),
    pytest.param(_cyclic_mixed(), "circular reference detected", id="cycle-dict-list-dict"),
    pytest.param(_cyclic_tuple(), "circular reference detected", id="cycle-through-tuple"),
    pytest.param(2**64, "JSON number out of range", id="above-u64"),
    pytest.param(-(2**63) - 1, "JSON number out of range", id="below-i64"),
    pytest.param([1, {"n": 2**70}], "JSON number out of range", id="nested-out-of-range"),
    pytest.param((i for i in range(2)), "unsupported type generator", id="generator"),
    pytest.param(PlainEnum.A, "unsupported type PlainEnum", id="plain-Enum"),
    pytest.param(1j, "unsupported type complex", id="complex"),
    pytest.param({"a": 1}.keys(), "unsupported type dict_keys", id="dict_keys"),
    pytest.param(len, "unsupported type builtin_function_or_method", id="builtin"),
    pytest.param({"ok": [1, object()]}, "unsupported type object", id="nested-object"),
]


class TestJsonConversion:
    @pytest.mark.parametrize(("value", "expected"), ACCEPTED)
    def test_accepted(self, events: Any, value: Any, expected: Any) -> None:
        mark = emit_mark(events, data=value)
        assert mark.data == expected
        assert type(mark.data) is type(expected)
        assert json.loads(mark.to_json())["data"] == expected

    @pytest.mark.parametrize(("value", "message"), REJECTED)
    def test_rejected(self, events: Any, value: Any, message: str) -> None:
        with pytest.raises(ValueError, match=exactly(PREFIX + message)):
            scope.event("probe", data=value)
        assert events.flush() == []

    def test_none_key_message_has_no_object_word(self) -> None:
        with pytest.raises(ValueError) as info:
            scope.event("probe", metadata={None: 1})
        assert "object" not in str(info.value)

    @pytest.mark.parametrize("depth", [257, 300])
    @pytest.mark.parametrize("build", [_nested_lists, _nested_dicts], ids=["lists", "dicts"])
    def test_nesting_limit(self, events: Any, depth: int, build: Callable[[int], Any]) -> None:
        with pytest.raises(ValueError) as info:
            scope.event("deep", data=build(depth))
        assert str(info.value).startswith(PREFIX + "payload nests deeper than ")
        assert events.flush() == []

    def test_runtime_usable_after_a_cycle_error(self, events: Any) -> None:
        with pytest.raises(ValueError, match="circular reference detected"):
            scope.event("bad", data=_cyclic_dict())
        shared = _shared()
        assert emit_mark(events, data=shared).data == {"a": [1], "b": [1], "c": [[1], [1]], "d": {"e": [1]}}


# Every payload slot goes through the same conversion; each callable returns nothing useful.
def _push(slot: str) -> Callable[[Any], Any]:
    return lambda value: scope.push("p", ScopeType.Agent, **{slot: value})


def _pop(slot: str) -> Callable[[Any], Any]:
    def call(value: Any) -> None:
        handle = scope.push("p", ScopeType.Agent)
        try:
            scope.pop(handle, **{slot: value})
        finally:
            if scope.get_handle().uuid == handle.uuid:
                scope.pop(handle)

    return call


SLOTS = {
    "push.data": _push("data"),
    "push.metadata": _push("metadata"),
    "push.input": _push("input"),
    "pop.output": _pop("output"),
    "pop.metadata": _pop("metadata"),
    "event.data": lambda value: scope.event("e", data=value),
    "event.metadata": lambda value: scope.event("e", metadata=value),
    "metric.metadata": lambda value: scope.metric(
        "m", [MetricMeasurement("n", MetricKind.Counter, MetricValueType.U64, 1)], metadata=value
    ),
}


class TestEverySlotConverts:
    @pytest.mark.parametrize("slot", sorted(SLOTS))
    @pytest.mark.parametrize(
        ("value", "message"),
        [
            pytest.param(object(), "unsupported type object", id="object"),
            pytest.param({"b": b"x"}, "invalid type: byte array, expected any valid JSON value", id="bytes"),
            pytest.param({1: 1}, "unexpected type: 'int' object is not an instance of 'str'", id="int-key"),
            pytest.param(_cyclic_list(), "circular reference detected", id="cycle"),
            pytest.param([2**64], "JSON number out of range", id="range"),
        ],
    )
    def test_errors(self, slot: str, value: Any, message: str) -> None:
        with pytest.raises(ValueError, match=exactly(PREFIX + message)):
            SLOTS[slot](value)
        assert scope.get_handle().name == "root"


class TestConversionHappensAtEmission:
    def test_push_payloads(self, events: Any) -> None:
        data, metadata, payload = {"d": [1]}, {"m": [1]}, {"i": [1]}
        handle = scope.push("s", ScopeType.Agent, data=data, metadata=metadata, input=payload)
        data["d"].append(2)
        metadata["m"].append(2)
        metadata["late"] = True
        payload["i"].append(2)
        assert handle.data == {"d": [1]}
        assert handle.metadata == {"m": [1]}
        scope.pop(handle)
        start, end = events.flush()
        assert start.data == {"i": [1]}
        assert start.metadata == {"m": [1]}
        assert end.metadata == {"m": [1]}

    def test_pop_payloads(self, events: Any) -> None:
        output, metadata = {"o": [1]}, {"e": [1]}
        handle = scope.push("s", ScopeType.Agent)
        scope.pop(handle, output=output, metadata=metadata)
        output["o"].append(2)
        metadata["e"].append(2)
        _, end = events.flush()
        assert end.data == {"o": [1]}
        assert end.metadata == {"e": [1]}

    def test_mark_payloads(self, events: Any) -> None:
        data, metadata = {"v": [1]}, {"w": [1]}
        scope.event("m", data=data, metadata=metadata, severity=LogSeverity.Warn)
        data["v"].append(2)
        metadata["w"].append(2)
        (mark,) = events.flush()
        assert mark.data == {"v": [1]}
        assert mark.metadata == {"w": [1], "nemo_relay.log.severity": "warn"}

    def test_metric_payloads(self, events: Any) -> None:
        attributes, metadata = {"model": "a"}, {"m": [1]}
        measurement = MetricMeasurement("n", MetricKind.Counter, MetricValueType.U64, 1, attributes=attributes)
        scope.metric("metric", [measurement], metadata=metadata)
        attributes["model"] = "b"
        metadata["m"].append(2)
        (mark,) = events.flush()
        assert mark.data["measurements"][0]["attributes"] == {"model": "a"}
        assert mark.metadata == {"m": [1]}

    def test_mutating_handle_metadata_does_not_reach_events(self, events: Any) -> None:
        handle = scope.push("s", ScopeType.Agent, metadata={"m": 1}, data={"d": 1})
        handle.metadata["leak"] = True
        handle.data["leak"] = True
        assert handle.metadata == {"m": 1}
        assert handle.data == {"d": 1}
        scope.pop(handle)
        start, end = events.flush()
        assert start.metadata == {"m": 1}
        assert end.metadata == {"m": 1}


def test_payloads_read_back_with_keys_sorted_at_every_level_like_the_reference(events: Any) -> None:
    """The reference's JSON maps are ordered by key: ``data``, ``metadata``, ``category_profile`` and
    ``to_dict()`` list keys sorted at every level, whatever order the caller used."""
    data = {"zeta": 1, "alpha": {"y": [{"d": 1, "c": 2}], "x": 2}, "mid": [3, {"b": 1, "a": 2}]}
    metadata = {"q": 1, "p": {"n": 1, "m": 2}}
    mark = emit_mark(events, data=data, metadata=metadata)

    def keys_sorted(value: Any) -> bool:
        if isinstance(value, dict):
            return list(value) == sorted(value) and all(keys_sorted(item) for item in value.values())
        if isinstance(value, list):
            return all(keys_sorted(item) for item in value)
        return True

    assert mark.data == data  # same content ...
    assert list(mark.data) == ["alpha", "mid", "zeta"]  # ... read back in key order
    assert keys_sorted(mark.data) and keys_sorted(mark.metadata) and keys_sorted(mark.to_dict())
    assert json.loads(mark.to_json()) == mark.to_dict()
    assert list(data) == ["zeta", "alpha", "mid"]  # the caller's object is untouched
