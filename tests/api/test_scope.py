"""Scopes through the public API: types, attribute flags, the hidden root, push/pop, ``scope.scope``, marks
and explicit timestamps. Expected texts were checked against the reference wheel (nemo-relay 0.8.4)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

import nemo_relay
from nemo_relay import (
    LLMAttributes,
    LogSeverity,
    MetricKind,
    MetricMeasurement,
    MetricValueType,
    ScopeAttributes,
    ScopeType,
    ToolAttributes,
    scope,
    subscribers,
)

SEVERITY_KEY = "nemo_relay.log.severity"
NOT_FOUND = "not found: scope handle not found"
NOT_TOP = "invalid argument: scope handle is not at the top of the stack"
ROOT = "invalid argument: root scope cannot be removed"
TS_TYPE = "timestamp must be a datetime.datetime object"
TS_NAIVE = "timestamp datetime must be timezone-aware"
SEVERITY_NOT_OBJECT = "invalid argument: mark metadata must be a JSON object when severity is provided"
SCHEMA_PREFIX = "data_schema must contain string name and version fields: "

# member, int value, event category
SCOPE_TYPES = [
    (ScopeType.Agent, 0, "agent"),
    (ScopeType.Function, 1, "function"),
    (ScopeType.Tool, 2, "tool"),
    (ScopeType.Llm, 3, "llm"),
    (ScopeType.Retriever, 4, "retriever"),
    (ScopeType.Embedder, 5, "embedder"),
    (ScopeType.Reranker, 6, "reranker"),
    (ScopeType.Guardrail, 7, "guardrail"),
    (ScopeType.Evaluator, 8, "evaluator"),
    (ScopeType.Custom, 9, "custom"),
    (ScopeType.Unknown, 10, "unknown"),
]

SCOPE_TYPE_IDS = [category for _, _, category in SCOPE_TYPES]

# value, error type, exact message: every API that takes a timestamp rejects these the same way.
BAD_TIMESTAMPS = [
    pytest.param("2026-01-01T00:00:00+00:00", TypeError, TS_TYPE, id="str"),
    pytest.param(1767225600, TypeError, TS_TYPE, id="int"),
    pytest.param(1767225600.5, TypeError, TS_TYPE, id="float"),
    pytest.param(date(2026, 1, 1), TypeError, TS_TYPE, id="date"),
    pytest.param(datetime(2026, 1, 1, 12, 0, 0), ValueError, TS_NAIVE, id="naive"),
]


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def epoch_ns(ts: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 string, keeping all 9 fractional digits."""
    match = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(\+00:00)", ts)
    assert match, ts
    whole = datetime.fromisoformat(match[1] + match[3])
    fraction = (match[2] or "").ljust(9, "0")
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction)


def top_uuid() -> str:
    return scope.get_handle().uuid


def counter(value: int = 1) -> MetricMeasurement:
    return MetricMeasurement("requests", MetricKind.Counter, MetricValueType.U64, value)


class TestScopeType:
    @pytest.mark.parametrize(("member", "value", "category"), SCOPE_TYPES, ids=SCOPE_TYPE_IDS)
    def test_int_value_and_equality(self, member: ScopeType, value: int, category: str) -> None:
        assert int(member) == value
        assert member == value
        assert value == member

    @pytest.mark.parametrize(("member", "value", "category"), SCOPE_TYPES, ids=SCOPE_TYPE_IDS)
    def test_repr_and_str(self, member: ScopeType, value: int, category: str) -> None:
        expected = f"ScopeType.{category.capitalize()}"
        assert repr(member) == expected
        assert str(member) == expected

    def test_members_are_distinct(self) -> None:
        assert ScopeType.Agent != ScopeType.Tool
        assert len({int(m) for m, _, _ in SCOPE_TYPES}) == len(SCOPE_TYPES)

    @pytest.mark.parametrize(
        ("member", "text", "value"),
        [
            (LogSeverity.Trace, "LogSeverity.Trace", 0),
            (LogSeverity.Warn, "LogSeverity.Warn", 3),
            (LogSeverity.Error, "LogSeverity.Error", 4),
            (MetricKind.UpDownCounter, "MetricKind.UpDownCounter", 1),
            (MetricKind.Histogram, "MetricKind.Histogram", 3),
            (MetricValueType.F64, "MetricValueType.F64", 2),
        ],
    )
    def test_sibling_enums_follow_the_same_pattern(self, member: Any, text: str, value: int) -> None:
        assert repr(member) == text
        assert str(member) == text
        assert member == value

    @pytest.mark.parametrize(("member", "value", "category"), SCOPE_TYPES, ids=SCOPE_TYPE_IDS)
    def test_every_type_pushes_and_pops_with_its_category(
        self, events: Any, member: ScopeType, value: int, category: str
    ) -> None:
        handle = scope.push("typed", member)
        assert handle.scope_type is member
        assert scope.get_handle().scope_type is member
        scope.pop(handle)
        assert events.names() == [("start", "typed"), ("end", "typed")]
        assert [e.category for e in events] == [category, category]


class TestAttributeFlags:
    @pytest.mark.parametrize(
        ("cls", "name", "value"),
        [
            (ScopeAttributes, "PARALLEL", 0b01),
            (ScopeAttributes, "RELOCATABLE", 0b10),
            (ToolAttributes, "REMOTE", 0b01),
            (LLMAttributes, "STATEFUL", 0b01),
            (LLMAttributes, "STREAMING", 0b10),
        ],
    )
    def test_class_constants_are_plain_ints(self, cls: type, name: str, value: int) -> None:
        constant = getattr(cls, name)
        assert type(constant) is int
        assert constant == value
        assert cls(constant).value == value

    @pytest.mark.parametrize("cls", [ScopeAttributes, ToolAttributes, LLMAttributes])
    def test_default_is_empty(self, cls: type) -> None:
        assert cls().value == 0
        assert cls(value=0).value == 0

    @pytest.mark.parametrize(
        ("flags", "text"),
        [
            (ScopeAttributes(), "ScopeAttributes(ScopeAttributes(0x0))"),
            (ScopeAttributes(ScopeAttributes.PARALLEL), "ScopeAttributes(ScopeAttributes(PARALLEL))"),
            (ScopeAttributes(ScopeAttributes.RELOCATABLE), "ScopeAttributes(ScopeAttributes(RELOCATABLE))"),
            (ScopeAttributes(0b11), "ScopeAttributes(ScopeAttributes(PARALLEL | RELOCATABLE))"),
            (ToolAttributes(), "ToolAttributes(ToolAttributes(0x0))"),
            (ToolAttributes(ToolAttributes.REMOTE), "ToolAttributes(ToolAttributes(REMOTE))"),
            (LLMAttributes(), "LLMAttributes(LlmAttributes(0x0))"),
            (LLMAttributes(LLMAttributes.STREAMING), "LLMAttributes(LlmAttributes(STREAMING))"),
            (LLMAttributes(0b11), "LLMAttributes(LlmAttributes(STATEFUL | STREAMING))"),
        ],
    )
    def test_repr(self, flags: Any, text: str) -> None:
        assert repr(flags) == text

    @pytest.mark.parametrize(
        ("flags", "expected"),
        [
            (ScopeAttributes(0), {"is_parallel": False, "is_relocatable": False}),
            (ScopeAttributes(1), {"is_parallel": True, "is_relocatable": False}),
            (ScopeAttributes(2), {"is_parallel": False, "is_relocatable": True}),
            (ScopeAttributes(3), {"is_parallel": True, "is_relocatable": True}),
            (ToolAttributes(0), {"is_remote": False}),
            (ToolAttributes(1), {"is_remote": True}),
            (LLMAttributes(0), {"is_stateful": False, "is_streaming": False}),
            (LLMAttributes(1), {"is_stateful": True, "is_streaming": False}),
            (LLMAttributes(2), {"is_stateful": False, "is_streaming": True}),
            (LLMAttributes(3), {"is_stateful": True, "is_streaming": True}),
        ],
        ids=repr,
    )
    def test_is_properties(self, flags: Any, expected: dict[str, bool]) -> None:
        assert {name: getattr(flags, name) for name in expected} == expected

    def test_or_and_and_return_same_class(self) -> None:
        both = ScopeAttributes(ScopeAttributes.PARALLEL) | ScopeAttributes(ScopeAttributes.RELOCATABLE)
        assert type(both) is ScopeAttributes
        assert both.value == 0b11
        assert both.is_parallel and both.is_relocatable
        only = both & ScopeAttributes(ScopeAttributes.RELOCATABLE)
        assert type(only) is ScopeAttributes
        assert only.value == 0b10
        assert repr(only) == "ScopeAttributes(ScopeAttributes(RELOCATABLE))"
        assert (LLMAttributes(1) | LLMAttributes(2)).value == 3
        assert (ToolAttributes(1) & ToolAttributes(0)).value == 0

    @pytest.mark.parametrize(
        ("left", "right"),
        [
            (ScopeAttributes(1), ToolAttributes(1)),
            (ScopeAttributes(1), 1),
            (LLMAttributes(1), ScopeAttributes(1)),
        ],
    )
    def test_operators_reject_other_types(self, left: Any, right: Any) -> None:
        with pytest.raises(TypeError):
            left | right
        with pytest.raises(TypeError):
            left & right

    @pytest.mark.parametrize(
        ("flags", "value"),
        [
            (ScopeAttributes(8), 0),
            (ScopeAttributes(0b1101), 0b01),
            (ScopeAttributes(0xFF), 0b11),
            (ToolAttributes(0b10), 0),
            (ToolAttributes(0b11), 0b01),
            (LLMAttributes(0b110), 0b10),
        ],
        ids=repr,
    )
    def test_unknown_bits_are_truncated(self, flags: Any, value: int) -> None:
        assert flags.value == value

    def test_no_value_equality(self) -> None:
        first, second = ScopeAttributes(1), ScopeAttributes(1)
        assert first == first
        assert first != second
        assert first.value == second.value

    def test_constructor_rejects_non_int_and_negative(self) -> None:
        with pytest.raises(TypeError):
            ScopeAttributes("1")  # type: ignore[arg-type]
        with pytest.raises(OverflowError):
            ScopeAttributes(-1)

    @pytest.mark.parametrize(
        ("flags", "expected"),
        [
            (None, []),
            (ScopeAttributes(), []),
            (ScopeAttributes(ScopeAttributes.PARALLEL), ["parallel"]),
            (ScopeAttributes(ScopeAttributes.RELOCATABLE), ["relocatable"]),
            (ScopeAttributes(0b11), ["parallel", "relocatable"]),
        ],
        ids=repr,
    )
    def test_scope_attributes_reach_handle_and_events(
        self, events: Any, flags: ScopeAttributes | None, expected: list[str]
    ) -> None:
        handle = scope.push("flags", ScopeType.Function, attributes=flags)
        assert handle.attributes.value == (0 if flags is None else flags.value)
        assert type(handle.attributes) is ScopeAttributes
        scope.pop(handle)
        events.flush()
        assert [e.attributes for e in events] == [expected, expected]


class TestRoot:
    def test_fresh_stack_top_is_root(self) -> None:
        root = scope.get_handle()
        assert root.name == "root"
        assert root.scope_type is ScopeType.Agent
        assert root.parent_uuid is None
        assert root.data is None
        assert root.metadata is None
        assert root.attributes.value == 0
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", root.uuid)

    def test_root_is_stable_and_emits_nothing(self, events: Any) -> None:
        first, second = scope.get_handle(), scope.get_handle()
        assert first.uuid == second.uuid
        assert first != second  # no value equality: compare uuids
        assert events.flush() == []

    def test_each_stack_has_its_own_root(self) -> None:
        here = scope.get_handle().uuid
        with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
            other = scope.get_handle()
        assert other.name == "root"
        assert other.uuid != here
        assert scope.get_handle().uuid == here

    def test_root_cannot_be_popped(self, events: Any) -> None:
        root = scope.get_handle()
        with pytest.raises(RuntimeError, match=exactly(ROOT)):
            scope.pop(root)
        assert top_uuid() == root.uuid
        assert events.flush() == []

    def test_root_below_another_scope_is_not_at_top(self, events: Any) -> None:
        root = scope.get_handle()
        child = scope.push("child", ScopeType.Agent)
        with pytest.raises(RuntimeError, match=exactly(NOT_TOP)):
            scope.pop(root)
        assert top_uuid() == child.uuid
        scope.pop(child)
        assert events.names() == [("start", "child"), ("end", "child")]

    def test_top_level_scope_and_mark_point_at_root(self, events: Any) -> None:
        root = scope.get_handle()
        handle = scope.push("top", ScopeType.Agent)
        assert handle.parent_uuid == root.uuid
        scope.pop(handle)
        scope.event("at-root")
        events.flush()
        assert [e.parent_uuid for e in events] == [root.uuid] * 3


class TestPushPop:
    def test_lifo_nesting_and_parentage(self, events: Any) -> None:
        root = scope.get_handle()
        outer = scope.push("outer", ScopeType.Agent)
        inner = scope.push("inner", ScopeType.Function)
        assert outer.parent_uuid == root.uuid
        assert inner.parent_uuid == outer.uuid
        assert top_uuid() == inner.uuid
        scope.pop(inner)
        assert top_uuid() == outer.uuid
        scope.pop(outer)
        assert top_uuid() == root.uuid
        assert events.names() == [("start", "outer"), ("start", "inner"), ("end", "inner"), ("end", "outer")]
        start_outer, start_inner, end_inner, end_outer = events
        assert start_outer.uuid == end_outer.uuid == outer.uuid
        assert start_inner.uuid == end_inner.uuid == inner.uuid
        assert start_inner.parent_uuid == end_inner.parent_uuid == outer.uuid
        assert start_outer.parent_uuid == end_outer.parent_uuid == root.uuid

    def test_explicit_parent_handle_still_pushes(self, events: Any) -> None:
        root = scope.get_handle()
        outer = scope.push("outer", ScopeType.Agent)
        sibling = scope.push("sibling", ScopeType.Function, handle=root)
        assert sibling.parent_uuid == root.uuid
        assert top_uuid() == sibling.uuid
        grandchild = scope.push("grandchild", ScopeType.Function)
        assert grandchild.parent_uuid == sibling.uuid
        with pytest.raises(RuntimeError, match=exactly(NOT_TOP)):
            scope.pop(outer)
        scope.pop(grandchild)
        scope.pop(sibling)
        scope.pop(outer)
        events.flush()
        parents = {(e.scope_category, e.name): e.parent_uuid for e in events}
        assert parents[("start", "sibling")] == parents[("end", "sibling")] == root.uuid
        assert parents[("start", "grandchild")] == sibling.uuid

    def test_data_stays_on_the_handle_and_input_is_start_data(self, events: Any) -> None:
        handle = scope.push("work", ScopeType.Function, data={"secret": 1}, input={"question": "q"})
        assert handle.data == {"secret": 1}
        assert scope.get_handle().data == {"secret": 1}
        scope.pop(handle, output={"answer": 42})
        start, end = events.flush()
        assert start.data == {"question": "q"}
        assert end.data == {"answer": 42}
        assert "secret" not in start.to_json() + end.to_json()

    def test_no_input_or_output_gives_null_data(self, events: Any) -> None:
        handle = scope.push("plain", ScopeType.Function, data=[1, 2])
        scope.pop(handle)
        assert [e.data for e in events.flush()] == [None, None]

    @pytest.mark.parametrize("output", ["text", 7, 1.5, True, [1, "a"], {"k": {"n": None}}])
    def test_output_may_be_any_json(self, events: Any, output: Any) -> None:
        handle = scope.push("out", ScopeType.Function)
        scope.pop(handle, output=output)
        assert events.flush()[1].data == output

    def test_metadata_on_handle_and_start(self, events: Any) -> None:
        handle = scope.push("meta", ScopeType.Agent, metadata={"tenant": "a"})
        assert handle.metadata == {"tenant": "a"}
        scope.pop(handle)
        start, end = events.flush()
        assert start.metadata == {"tenant": "a"}
        assert end.metadata == {"tenant": "a"}

    @pytest.mark.parametrize(
        ("start", "end", "merged"),
        [
            ({"a": 1, "b": 1}, {"b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}),
            (None, {"b": 2}, {"b": 2}),
            ({"a": 1}, None, {"a": 1}),
            (None, None, None),
            ([1], [2], [2]),
            ({"a": 1}, [2], [2]),
            ([1], {"a": 1}, {"a": 1}),
            ("s", None, "s"),
            ({"a": {"x": 1}}, {"a": {"y": 2}}, {"a": {"y": 2}}),
            ({"a": 1}, {}, {"a": 1}),
        ],
        ids=["dict-dict", "none-dict", "dict-none", "none-none", "list-list", "dict-list", "list-dict", "str-none",
             "shallow", "dict-empty"],
    )  # fmt: skip
    def test_end_metadata_is_shallow_merge(self, events: Any, start: Any, end: Any, merged: Any) -> None:
        handle = scope.push("merge", ScopeType.Agent, metadata=start)
        scope.pop(handle, metadata=end)
        start_event, end_event = events.flush()
        assert start_event.metadata == start
        assert end_event.metadata == merged
        assert handle.metadata == start

    def test_start_and_end_share_identity_fields(self, events: Any) -> None:
        handle = scope.push("pair", ScopeType.Retriever, attributes=ScopeAttributes(1))
        scope.pop(handle)
        start, end = events.flush()
        for field in ("uuid", "parent_uuid", "name", "attributes", "category"):
            assert getattr(start, field) == getattr(end, field), field
        assert (start.scope_category, end.scope_category) == ("start", "end")

    def test_handle_properties_and_repr(self) -> None:
        parent = scope.push("parent", ScopeType.Agent)
        handle = scope.push(
            "outer",
            ScopeType.Evaluator,
            attributes=ScopeAttributes(ScopeAttributes.RELOCATABLE),
            data={"d": 1},
            metadata={"m": 2},
        )
        assert handle.name == "outer"
        assert handle.scope_type is ScopeType.Evaluator
        assert handle.attributes.is_relocatable and not handle.attributes.is_parallel
        assert handle.parent_uuid == parent.uuid
        assert handle.data == {"d": 1}
        assert handle.metadata == {"m": 2}
        assert repr(handle) == f"ScopeHandle(name='outer', uuid='{handle.uuid}')"
        assert "ScopeHandle" in repr(scope.get_handle())
        scope.pop(handle)
        scope.pop(parent)

    @pytest.mark.parametrize("field", ["uuid", "name", "scope_type", "attributes", "parent_uuid", "data", "metadata"])
    def test_handle_is_read_only(self, field: str) -> None:
        handle = scope.push("ro", ScopeType.Agent)
        with pytest.raises(AttributeError):
            setattr(handle, field, None)
        scope.pop(handle)

    def test_get_handle_copy_can_pop(self, events: Any) -> None:
        handle = scope.push("copy", ScopeType.Agent)
        copy = scope.get_handle()
        assert copy.uuid == handle.uuid
        scope.pop(copy)
        assert events.names() == [("start", "copy"), ("end", "copy")]


class TestPopErrors:
    def test_not_at_top_leaves_stack_unchanged(self, events: Any) -> None:
        outer = scope.push("outer", ScopeType.Agent)
        inner = scope.push("inner", ScopeType.Agent)
        with pytest.raises(RuntimeError, match=exactly(NOT_TOP)):
            scope.pop(outer, output={"x": 1})
        assert top_uuid() == inner.uuid
        assert events.names() == [("start", "outer"), ("start", "inner")]
        scope.pop(inner)
        scope.pop(outer)
        assert events.names()[2:] == [("end", "inner"), ("end", "outer")]

    def test_popping_twice_is_not_found(self, events: Any) -> None:
        handle = scope.push("once", ScopeType.Agent)
        scope.pop(handle)
        with pytest.raises(RuntimeError, match=exactly(NOT_FOUND)):
            scope.pop(handle)
        assert scope.get_handle().name == "root"
        assert events.names() == [("start", "once"), ("end", "once")]

    def test_handle_from_another_stack_is_not_found(self, events: Any) -> None:
        mine = scope.push("mine", ScopeType.Agent)
        with nemo_relay.use_scope_stack(nemo_relay.create_scope_stack()):
            other_root = scope.get_handle()
            with pytest.raises(RuntimeError, match=exactly(NOT_FOUND)):
                scope.pop(mine)
            assert scope.get_handle().uuid == other_root.uuid
        with pytest.raises(RuntimeError, match=exactly(NOT_FOUND)):
            scope.pop(other_root)
        assert top_uuid() == mine.uuid
        scope.pop(mine)
        assert events.names() == [("start", "mine"), ("end", "mine")]

    @pytest.mark.parametrize("bad", ["handle", 1, None, object()])
    def test_pop_rejects_non_handles(self, bad: Any) -> None:
        handle = scope.push("kept", ScopeType.Agent)
        with pytest.raises(TypeError):
            scope.pop(bad)
        assert top_uuid() == handle.uuid
        scope.pop(handle)


class TestArgumentTypes:
    @pytest.mark.parametrize(
        ("call", "message"),
        [
            pytest.param(
                lambda: scope.push(1, ScopeType.Agent),
                "argument 'name': 'int' object is not an instance of 'str'",
                id="push-name",
            ),
            pytest.param(
                lambda: scope.push("x", 0),
                "argument 'scope_type': 'int' object is not an instance of 'ScopeType'",
                id="push-scope_type",
            ),
            pytest.param(
                lambda: scope.push("x", ScopeType.Agent, attributes=1),
                "argument 'attributes': 'int' object is not an instance of 'ScopeAttributes'",
                id="push-attributes-int",
            ),
            pytest.param(
                lambda: scope.push("x", ScopeType.Agent, attributes=ToolAttributes(1)),
                "argument 'attributes': 'ToolAttributes' object is not an instance of 'ScopeAttributes'",
                id="push-attributes-other-flags",
            ),
            pytest.param(
                lambda: scope.push("x", ScopeType.Agent, handle="h"),
                "argument 'handle': 'str' object is not an instance of 'ScopeHandle'",
                id="push-handle",
            ),
            pytest.param(
                lambda: scope.pop("h"),
                "argument 'handle': 'str' object is not an instance of 'ScopeHandle'",
                id="pop-handle",
            ),
            pytest.param(
                lambda: scope.event(1),
                "argument 'name': 'int' object is not an instance of 'str'",
                id="event-name",
            ),
            pytest.param(
                lambda: scope.event("x", handle=1),
                "argument 'handle': 'int' object is not an instance of 'ScopeHandle'",
                id="event-handle",
            ),
            pytest.param(
                lambda: scope.event("x", severity="warn"),
                "argument 'severity': 'str' object is not an instance of 'LogSeverity'",
                id="event-severity",
            ),
            pytest.param(
                lambda: scope.metric(1, [counter()]),
                "argument 'name': 'int' object is not an instance of 'str'",
                id="metric-name",
            ),
            pytest.param(
                lambda: scope.metric("x", [counter()], handle=1),
                "argument 'handle': 'int' object is not an instance of 'ScopeHandle'",
                id="metric-handle",
            ),
            pytest.param(
                lambda: scope.scope(1, ScopeType.Agent).__enter__(),
                "argument 'name': 'int' object is not an instance of 'str'",
                id="scope-name",
            ),
        ],
    )
    def test_wrong_types_raise_type_error_without_side_effects(
        self, events: Any, call: Callable[[], Any], message: str
    ) -> None:
        before = top_uuid()
        with pytest.raises(TypeError, match=exactly(message)):
            call()
        assert top_uuid() == before
        assert events.flush() == []


class TestNoPartialState:
    @pytest.mark.parametrize("slot", ["data", "metadata", "input"])
    def test_failed_push_changes_nothing(self, events: Any, slot: str) -> None:
        before = top_uuid()
        with pytest.raises(ValueError, match=exactly("Failed to convert to JSON: unsupported type object")):
            scope.push("bad", ScopeType.Agent, **{slot: {"k": object()}})
        assert top_uuid() == before
        assert events.flush() == []

    @pytest.mark.parametrize("slot", ["output", "metadata"])
    def test_failed_pop_changes_nothing(self, events: Any, slot: str) -> None:
        handle = scope.push("kept", ScopeType.Agent)
        with pytest.raises(ValueError, match=exactly("Failed to convert to JSON: invalid type: byte array, expected "
                                                     "any valid JSON value")):  # fmt: skip
            scope.pop(handle, **{slot: [b"raw"]})
        assert top_uuid() == handle.uuid
        assert events.names() == [("start", "kept")]
        scope.pop(handle, output="done")
        assert events.names() == [("start", "kept"), ("end", "kept")]
        assert events[1].data == "done"

    @pytest.mark.parametrize("slot", ["data", "metadata"])
    def test_failed_event_emits_nothing(self, events: Any, slot: str) -> None:
        with pytest.raises(ValueError, match=exactly("Failed to convert to JSON: unsupported type object")):
            scope.event("bad", **{slot: object()})
        assert events.flush() == []


class TestScopeContextManager:
    def test_ok_exit(self, events: Any) -> None:
        with scope.scope("block", ScopeType.Function, input={"i": 1}, data={"d": 1}) as handle:
            assert top_uuid() == handle.uuid
            assert handle.name == "block"
            assert handle.data == {"d": 1}
        assert scope.get_handle().name == "root"
        start, end = events.flush()
        assert (start.scope_category, end.scope_category) == ("start", "end")
        assert start.uuid == end.uuid == handle.uuid
        assert start.data == {"i": 1}
        assert start.metadata is None
        assert end.metadata == {"otel.status_code": "OK"}

    def test_start_metadata_is_merged_into_end(self, events: Any) -> None:
        with scope.scope("block", ScopeType.Function, metadata={"a": 1}):
            pass
        start, end = events.flush()
        assert start.metadata == {"a": 1}
        assert end.metadata == {"a": 1, "otel.status_code": "OK"}

    def test_exception_marks_error_and_reraises(self, events: Any) -> None:
        with pytest.raises(ValueError, match="bad thing"), scope.scope("failing", ScopeType.Function):
            raise ValueError("bad thing")
        assert scope.get_handle().name == "root"
        _, end = events.flush()
        assert end.metadata == {"otel.status_code": "ERROR", "otel.status_description": "bad thing"}

    def test_error_status_overrides_start_keys(self, events: Any) -> None:
        metadata = {"otel.status_code": "X", "z": 1}
        with pytest.raises(KeyError), scope.scope("failing", ScopeType.Function, metadata=metadata):
            raise KeyError("k")
        _, end = events.flush()
        # str(KeyError("k")) is "'k'"
        assert end.metadata == {"otel.status_code": "ERROR", "otel.status_description": "'k'", "z": 1}

    def test_attributes_and_parent_handle(self, events: Any) -> None:
        root = scope.get_handle()
        outer = scope.push("outer", ScopeType.Agent)
        with scope.scope("inner", ScopeType.Tool, handle=root, attributes=ScopeAttributes(0b11)) as handle:
            assert handle.parent_uuid == root.uuid
        scope.pop(outer)
        events.flush()
        inner_events = [e for e in events if e.name == "inner"]
        assert [e.attributes for e in inner_events] == [["parallel", "relocatable"]] * 2
        assert [e.parent_uuid for e in inner_events] == [root.uuid] * 2

    @pytest.mark.parametrize(
        ("message", "description"),
        [(None, "cancelled"), ("shutdown", "shutdown")],
        ids=["no-message", "with-message"],
    )
    async def test_cancellation(self, events: Any, message: str | None, description: str) -> None:
        entered = asyncio.Event()

        async def worker() -> None:
            nemo_relay._scope_stack_var.set(nemo_relay.create_scope_stack())
            with scope.scope("cancelled", ScopeType.Agent):
                entered.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(worker())
        await entered.wait()
        task.cancel() if message is None else task.cancel(message)
        with pytest.raises(asyncio.CancelledError):
            await task
        await subscribers.flush_async()
        assert [(e.scope_category, e.name) for e in events] == [("start", "cancelled"), ("end", "cancelled")]
        assert events[1].metadata == {"otel.status_code": "ERROR", "otel.status_description": description}

    async def test_async_with(self, events: Any) -> None:
        async with scope.scope("async-block", ScopeType.Tool, metadata={"m": 1}) as handle:
            assert top_uuid() == handle.uuid
        assert scope.get_handle().name == "root"
        await subscribers.flush_async()
        assert [(e.scope_category, e.name) for e in events] == [("start", "async-block"), ("end", "async-block")]
        assert events[1].metadata == {"m": 1, "otel.status_code": "OK"}

    async def test_async_with_error(self, events: Any) -> None:
        with pytest.raises(RuntimeError, match="async boom"):
            async with scope.scope("async-block", ScopeType.Tool):
                raise RuntimeError("async boom")
        await subscribers.flush_async()
        assert events[1].metadata == {"otel.status_code": "ERROR", "otel.status_description": "async boom"}

    def test_decorator_opens_a_fresh_scope_per_call(self, events: Any) -> None:
        seen: list[str] = []

        @scope.scope("decorated", ScopeType.Function, metadata={"m": 1})
        def work(x: int) -> int:
            handle = scope.get_handle()
            assert handle.name == "decorated"
            seen.append(handle.uuid)
            return x * 2

        assert work(2) == 4
        assert work(3) == 6
        assert scope.get_handle().name == "root"
        assert len(set(seen)) == 2
        assert events.names() == [("start", "decorated"), ("end", "decorated")] * 2
        assert [e.uuid for e in events] == [seen[0], seen[0], seen[1], seen[1]]
        assert events[1].metadata == {"m": 1, "otel.status_code": "OK"}

    def test_decorator_records_errors(self, events: Any) -> None:
        @scope.scope("decorated", ScopeType.Function)
        def work() -> None:
            raise ValueError("nope")

        with pytest.raises(ValueError, match="nope"):
            work()
        assert events.flush()[1].metadata == {"otel.status_code": "ERROR", "otel.status_description": "nope"}

    def test_explicit_start_and_end_timestamps(self, events: Any) -> None:
        start_ts = utc(2026, 1, 1, 0, 0, 1, 250000)
        end_ts = datetime(2026, 1, 1, 22, 0, 2, 123457, tzinfo=timezone(timedelta(hours=-3)))
        with scope.scope("timed", ScopeType.Agent, timestamp=start_ts, end_timestamp=end_ts):
            pass
        start, end = events.flush()
        assert start.timestamp == "2026-01-01T00:00:01.250+00:00"
        assert end.timestamp == "2026-01-02T01:00:02.123457+00:00"

    @pytest.mark.parametrize(("bad", "error", "message"), BAD_TIMESTAMPS)
    def test_failing_push_pops_nothing(self, events: Any, bad: Any, error: type, message: str) -> None:
        ran = []
        with pytest.raises(error, match=exactly(message)), scope.scope("bad", ScopeType.Agent, timestamp=bad):
            ran.append(True)
        assert ran == []
        assert scope.get_handle().name == "root"
        assert events.flush() == []

    @pytest.mark.parametrize(("bad", "error", "message"), BAD_TIMESTAMPS)
    def test_failing_pop_propagates_and_keeps_scope(self, events: Any, bad: Any, error: type, message: str) -> None:
        with (
            pytest.raises(error, match=exactly(message)),
            scope.scope("stuck", ScopeType.Agent, end_timestamp=bad) as h,
        ):
            pass
        assert top_uuid() == h.uuid
        assert events.names() == [("start", "stuck")]
        scope.pop(h)
        assert events.names() == [("start", "stuck"), ("end", "stuck")]

    def test_failing_pop_after_body_error_chains_the_body_error(self, events: Any) -> None:
        with pytest.raises(TypeError, match=exactly(TS_TYPE)) as info:  # noqa: SIM117
            with scope.scope("stuck", ScopeType.Agent, end_timestamp="later") as handle:
                raise ValueError("inner")
        assert isinstance(info.value.__context__, ValueError)
        assert top_uuid() == handle.uuid
        scope.pop(handle)

    def test_scope_left_open_inside_block_makes_exit_fail(self, events: Any) -> None:
        with pytest.raises(RuntimeError, match=exactly(NOT_TOP)), scope.scope("outer", ScopeType.Agent):
            leaked = scope.push("leaked", ScopeType.Agent)
        assert top_uuid() == leaked.uuid
        assert events.names() == [("start", "outer"), ("start", "leaked")]


class TestMarks:
    def test_parent_is_top_handle_or_root(self, events: Any) -> None:
        root = scope.get_handle()
        scope.event("at-root")
        outer = scope.push("outer", ScopeType.Agent)
        scope.event("in-outer")
        scope.event("explicit-root", handle=root)
        assert top_uuid() == outer.uuid  # marks never change the stack
        scope.pop(outer)
        events.flush()
        marks = {e.name: e for e in events if e.kind == "mark"}
        assert marks["at-root"].parent_uuid == root.uuid
        assert marks["in-outer"].parent_uuid == outer.uuid
        assert marks["explicit-root"].parent_uuid == root.uuid

    def test_explicit_handle_may_be_a_popped_scope(self, events: Any) -> None:
        gone = scope.push("gone", ScopeType.Agent)
        scope.pop(gone)
        scope.event("late", handle=gone)
        assert events.flush()[-1].parent_uuid == gone.uuid

    def test_payload_fields(self, events: Any) -> None:
        scope.event(
            "log",
            data={"line": 1},
            data_schema={"name": "example.log", "version": "1"},
            metadata={"source": "python"},
            severity=LogSeverity.Warn,
        )
        (mark,) = events.flush()
        assert mark.kind == "mark"
        assert mark.name == "log"
        assert mark.data == {"line": 1}
        assert mark.data_schema == {"name": "example.log", "version": "1"}
        assert mark.severity is LogSeverity.Warn
        assert mark.metadata == {"source": "python", SEVERITY_KEY: "warn"}
        assert mark.category is None
        assert mark.category_profile is None
        assert "T" in mark.timestamp

    def test_bare_mark(self, events: Any) -> None:
        scope.event("bare")
        (mark,) = events.flush()
        assert (mark.data, mark.metadata, mark.data_schema, mark.severity) == (None, None, None, None)

    def test_extra_data_schema_keys_are_dropped(self, events: Any) -> None:
        scope.event("schema", data_schema={"name": "a", "version": "2", "extra": 1})
        assert events.flush()[0].data_schema == {"name": "a", "version": "2"}

    @pytest.mark.parametrize(
        ("schema", "exact"),
        [
            ({"name": "a"}, SCHEMA_PREFIX + "missing field `version`"),
            ({"version": "1"}, SCHEMA_PREFIX + "missing field `name`"),
            ({}, SCHEMA_PREFIX + "missing field `name`"),
            ({"name": 1, "version": "1"}, None),
            ({"name": "a", "version": 1}, None),
            ({"name": "a", "version": None}, None),
            ("x", None),
            ([1], None),
            (5, None),
        ],
        ids=repr,
    )
    def test_bad_data_schema(self, events: Any, schema: Any, exact: str | None) -> None:
        with pytest.raises(ValueError) as info:
            scope.event("schema", data_schema=schema)
        assert str(info.value).startswith(SCHEMA_PREFIX)
        if exact is not None:
            assert str(info.value) == exact
        assert events.flush() == []

    @pytest.mark.parametrize(
        ("severity", "label"),
        [
            (LogSeverity.Trace, "trace"),
            (LogSeverity.Debug, "debug"),
            (LogSeverity.Info, "info"),
            (LogSeverity.Warn, "warn"),
            (LogSeverity.Error, "error"),
        ],
    )
    @pytest.mark.parametrize("metadata", [None, {"a": 1}, {SEVERITY_KEY: "trace"}], ids=["none", "dict", "overwrite"])
    def test_severity_becomes_metadata_key(
        self, events: Any, severity: LogSeverity, label: str, metadata: dict[str, Any] | None
    ) -> None:
        scope.event("sev", metadata=metadata, severity=severity)
        (mark,) = events.flush()
        assert mark.metadata == {**(metadata or {}), SEVERITY_KEY: label}
        assert mark.severity is severity

    def test_severity_does_not_touch_callers_metadata(self, events: Any) -> None:
        metadata = {"a": 1}
        scope.event("sev", metadata=metadata, severity=LogSeverity.Info)
        assert metadata == {"a": 1}
        assert events.flush()[0].metadata == {"a": 1, SEVERITY_KEY: "info"}

    @pytest.mark.parametrize("metadata", [[1], "text", 1, True], ids=repr)
    def test_severity_needs_object_metadata(self, events: Any, metadata: Any) -> None:
        with pytest.raises(RuntimeError, match=exactly(SEVERITY_NOT_OBJECT)):
            scope.event("sev", metadata=metadata, severity=LogSeverity.Error)
        assert events.flush() == []

    def test_timestamp_checked_before_severity_metadata(self) -> None:
        # The reference validates the timestamp first.
        with pytest.raises(TypeError, match=exactly(TS_TYPE)):
            scope.event("sev", metadata=[1], severity=LogSeverity.Warn, timestamp="later")

    @pytest.mark.parametrize(
        ("label", "expected"),
        [
            ("trace", LogSeverity.Trace),
            ("debug", LogSeverity.Debug),
            ("info", LogSeverity.Info),
            ("warn", LogSeverity.Warn),
            ("warning", LogSeverity.Warn),
            ("WARN", LogSeverity.Warn),
            ("Warning", LogSeverity.Warn),
            ("Trace", LogSeverity.Trace),
            ("INFO", LogSeverity.Info),
            ("Error", LogSeverity.Error),
            ("bogus", None),
            ("", None),
            (1, None),
            (None, None),
        ],
        ids=repr,
    )
    def test_severity_is_parsed_from_metadata(self, events: Any, label: Any, expected: LogSeverity | None) -> None:
        scope.event("parsed", metadata={SEVERITY_KEY: label})
        assert events.flush()[0].severity is expected

    @pytest.mark.parametrize("metadata", [None, [1], "warn", {"other": "warn"}], ids=repr)
    def test_no_severity_without_the_key(self, events: Any, metadata: Any) -> None:
        scope.event("plain", metadata=metadata)
        assert events.flush()[0].severity is None


# name -> callable(ts) that passes ``ts`` as the timestamp of one API; each returns nothing useful.
TIMESTAMP_ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "push": lambda ts: scope.push("p", ScopeType.Agent, timestamp=ts),
    "event": lambda ts: scope.event("e", timestamp=ts),
    "metric": lambda ts: scope.metric("m", [counter()], timestamp=ts),
    "scope": lambda ts: scope.scope("s", ScopeType.Agent, timestamp=ts).__enter__(),
}


class TestTimestamps:
    def test_explicit_timestamps_round_trip(self, events: Any) -> None:
        handle = scope.push("t", ScopeType.Agent, timestamp=utc(2026, 1, 1, 0, 0, 3, 126456))
        scope.event("e", timestamp=utc(2026, 1, 1, 0, 0, 4))
        scope.metric("m", [counter()], timestamp=utc(2026, 1, 1, 0, 0, 4, 500000))
        scope.pop(handle, timestamp=utc(2026, 1, 1, 0, 0, 5, 1000))
        assert [e.timestamp for e in events.flush()] == [
            "2026-01-01T00:00:03.126456+00:00",
            "2026-01-01T00:00:04+00:00",
            "2026-01-01T00:00:04.500+00:00",
            "2026-01-01T00:00:05.001+00:00",
        ]

    def test_offsets_are_converted_to_utc(self, events: Any) -> None:
        india = timezone(timedelta(hours=5, minutes=30))
        pacific = timezone(timedelta(hours=-8))
        handle = scope.push("t", ScopeType.Agent, timestamp=datetime(2026, 1, 1, 5, 30, 3, 126456, tzinfo=india))
        scope.event("e", timestamp=datetime(2026, 3, 4, 5, 6, 7, 120000, tzinfo=pacific))
        scope.metric("m", [counter()], timestamp=datetime(2025, 12, 31, 23, 0, 0, tzinfo=timezone(timedelta(hours=-1))))
        scope.pop(handle, timestamp=datetime(2026, 1, 2, 0, 30, 0, 7, tzinfo=timezone(timedelta(hours=1))))
        assert [e.timestamp for e in events.flush()] == [
            "2026-01-01T00:00:03.126456+00:00",
            "2026-03-04T13:06:07.120+00:00",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T23:30:00.000007+00:00",
        ]

    def test_explicit_end_before_start_is_kept(self, events: Any) -> None:
        handle = scope.push("t", ScopeType.Agent, timestamp=utc(2030, 1, 1))
        scope.pop(handle, timestamp=utc(2020, 1, 1))
        assert [e.timestamp for e in events.flush()] == ["2030-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00"]

    def test_runtime_end_is_after_a_future_start(self, events: Any) -> None:
        handle = scope.push("t", ScopeType.Agent, timestamp=utc(2999, 1, 1))
        scope.pop(handle)
        assert events.flush()[1].timestamp == "2999-01-01T00:00:00.000001+00:00"

    def test_runtime_end_is_at_least_a_microsecond_after_start(self, events: Any) -> None:
        for _ in range(50):
            scope.pop(scope.push("fast", ScopeType.Agent))
        events.flush()
        for start, end in zip(events[::2], events[1::2], strict=True):
            assert start.uuid == end.uuid
            assert epoch_ns(end.timestamp) - epoch_ns(start.timestamp) >= 1000

    @pytest.mark.parametrize("api", sorted(TIMESTAMP_ENTRY_POINTS))
    @pytest.mark.parametrize(("bad", "error", "message"), BAD_TIMESTAMPS)
    def test_bad_timestamps_are_rejected_without_side_effects(
        self, events: Any, api: str, bad: Any, error: type, message: str
    ) -> None:
        before = top_uuid()
        with pytest.raises(error, match=exactly(message)):
            TIMESTAMP_ENTRY_POINTS[api](bad)
        assert top_uuid() == before
        assert events.flush() == []

    @pytest.mark.parametrize(("bad", "error", "message"), BAD_TIMESTAMPS)
    def test_bad_pop_timestamp_keeps_the_scope(self, events: Any, bad: Any, error: type, message: str) -> None:
        handle = scope.push("kept", ScopeType.Agent)
        with pytest.raises(error, match=exactly(message)):
            scope.pop(handle, timestamp=bad)
        assert top_uuid() == handle.uuid
        assert events.names() == [("start", "kept")]
        scope.pop(handle)

    def test_payload_errors_win_over_timestamp_errors(self) -> None:
        # Payloads are converted before the timestamp is checked (reference order).
        json_error = exactly("Failed to convert to JSON: unsupported type object")
        with pytest.raises(ValueError, match=json_error):
            scope.push("x", ScopeType.Agent, input=object(), timestamp="later")
        with pytest.raises(ValueError, match=json_error):
            scope.event("x", metadata=object(), timestamp="later")
        handle = scope.push("x", ScopeType.Agent)
        with pytest.raises(ValueError, match=json_error):
            scope.pop(handle, output=object(), timestamp="later")
        scope.pop(handle)
