"""Fuzz the ATOF JSON form of delivered events: ``to_dict()``/``to_json()`` and back.

There is no public event parser, so each event's JSON text is read back with ``json.loads`` and checked
against core-api §5.4/§5.5: the exact key set of its kind, keys sorted at every level of the compact text,
``json.loads(to_json()) == to_dict()`` with exact types (``1`` is not ``1.0`` or ``True``), properties equal
to their JSON fields, UUIDv7 ids, RFC 3339 UTC timestamps with 0/3/6/9 fractional digits, sorted and
deduplicated attributes. Then the values the program put in must come out unchanged: names, converted
payloads, explicit timestamps (exactly), shared start/end uuids, merged end metadata and end after start.

Inputs are random lifecycle programs (nested scopes, marks with schemas and severities, manual tool and
LLM calls, metric marks) with random names, payloads, metadata, attributes and timezone-aware times.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fuzz_support import fuzz_settings, json_values, model_json, same_json, short_texts, texts
from hypothesis import given
from hypothesis import strategies as st

from nemo_relay import (
    LLMAttributes,
    LLMRequest,
    LogSeverity,
    MetricKind,
    MetricMeasurement,
    MetricValueType,
    ScopeAttributes,
    ScopeType,
    ToolAttributes,
    ToolExecutionResult,
    llm,
    scope,
    subscribers,
    tools,
)
from nemo_relay._core.events import MarkEvent, ScopeEvent

pytestmark = pytest.mark.timeout(120)

Event = ScopeEvent | MarkEvent

SCOPE_KEYS = {
    "atof_version", "attributes", "category", "category_profile", "data", "data_schema", "kind", "metadata",
    "name", "parent_uuid", "scope_category", "timestamp", "uuid",
}  # fmt: skip
MARK_KEYS = SCOPE_KEYS - {"attributes", "scope_category"}
CATEGORIES = {"agent", "function", "llm", "tool", "retriever", "embedder", "reranker", "guardrail", "evaluator",
              "custom", "unknown"}  # fmt: skip
ATTRIBUTES = {"parallel", "relocatable", "stateful", "streaming", "remote"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.(\d{3}|\d{6}|\d{9}))?\+00:00$")
SEVERITY_KEY = "nemo_relay.log.severity"


# --- the generated program ------------------------------------------------------------------------------

payloads = st.one_of(st.none(), json_values(12, finite=False))
objects = st.one_of(st.none(), st.dictionaries(short_texts, json_values(6, finite=False), max_size=4))
names = st.one_of(texts, st.sampled_from(["", "scope", 'quote"d', "back\\slash", "line\nbreak", "ünï©ødé", "💥"]))
timestamps = st.one_of(
    st.none(),
    st.builds(
        lambda moment, minutes: moment.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes))),
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
        st.integers(-23 * 60 - 59, 23 * 60 + 59),
    ),
)
schemas = st.one_of(st.none(), st.fixed_dictionaries({"name": short_texts, "version": short_texts}))


@dataclass
class Op:
    """One step: ``kind`` plus its arguments; ``children`` run inside a pushed scope."""

    kind: str
    args: dict[str, Any]
    children: list[Op] = field(default_factory=list)


def _op(children: st.SearchStrategy[list[Op]]) -> st.SearchStrategy[Op]:
    scope_op = st.builds(
        lambda args, kids: Op("scope", args, kids),
        st.fixed_dictionaries(
            {
                "name": names,
                "scope_type": st.sampled_from(list(ScopeType)),
                "attributes": st.sampled_from([None, 0, 1, 2, 3]),
                "input": payloads,
                "metadata": objects,
                "timestamp": timestamps,
                "output": payloads,
                "end_metadata": objects,
                "end_timestamp": timestamps,
            }
        ),
        children,
    )
    mark_op = st.builds(
        lambda args: Op("mark", args),
        st.fixed_dictionaries(
            {
                "name": names,
                "data": payloads,
                "data_schema": schemas,
                "metadata": objects,
                "severity": st.one_of(st.none(), st.sampled_from(list(LogSeverity))),
                "timestamp": timestamps,
            }
        ),
    )
    tool_op = st.builds(
        lambda args: Op("tool", args),
        st.fixed_dictionaries(
            {
                "name": names,
                "args": payloads,
                "attributes": st.sampled_from([None, 0, 1]),
                "metadata": objects,
                "tool_call_id": st.one_of(st.none(), short_texts),
                "timestamp": timestamps,
                "result": payloads,
                "annotation": st.one_of(st.none(), json_values(4)),
                "end_metadata": objects,
                "end_timestamp": timestamps,
            }
        ),
    )
    llm_op = st.builds(
        lambda args: Op("llm", args),
        st.fixed_dictionaries(
            {
                "name": names,
                "headers": st.dictionaries(st.sampled_from(["x-fuzz", "content-type", "x-trace"]), short_texts),
                "content": payloads,
                "attributes": st.sampled_from([None, 0, 1, 2, 3]),
                "model_name": st.one_of(st.none(), short_texts),
                "metadata": objects,
                "timestamp": timestamps,
                "response": payloads,
                "end_metadata": objects,
                "end_timestamp": timestamps,
            }
        ),
    )
    metric_op = st.builds(
        lambda args: Op("metric", args),
        st.fixed_dictionaries(
            {
                "name": names,
                "value": st.integers(0, 2**63 - 1),
                "attributes": st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b", "c"]), short_texts)),
                "metadata": objects,
                "timestamp": timestamps,
            }
        ),
    )
    return st.one_of(mark_op, tool_op, llm_op, metric_op, scope_op)


programs = st.recursive(
    st.lists(_op(st.just([])), min_size=1, max_size=3),
    lambda inner: st.lists(_op(inner), min_size=1, max_size=3),
    max_leaves=8,
)


# --- running it and recording what each event must show ----------------------------------------------------


@dataclass
class Expected:
    """What one emitted event must carry (``None`` for ``timestamp``: runtime-chosen)."""

    kind: str
    name: str
    category: str | None
    phase: str | None
    data: Any
    metadata: Any
    timestamp: datetime | None
    attributes: list[str] | None = None
    data_schema: Any = None
    profile: Any = None


def _merge(start: Any, end: Any) -> Any:
    # core-api §2.4 shallow_merge
    if isinstance(start, dict) and isinstance(end, dict):
        return {**start, **end}
    return start if end is None else end


def _severity_metadata(metadata: Any, severity: LogSeverity | None) -> Any:
    if severity is None:
        return metadata
    return {**(metadata or {}), SEVERITY_KEY: severity.name.lower()}


def _attributes(flags: int | None, labels: tuple[str, ...]) -> list[str]:
    return sorted(label for bit, label in enumerate(labels) if flags is not None and flags >> bit & 1)


def run(program: list[Op], expected: list[Expected]) -> None:
    for op in program:
        a = op.args
        if op.kind == "scope":
            attrs = None if a["attributes"] is None else ScopeAttributes(a["attributes"])
            handle = scope.push(
                a["name"], a["scope_type"], attributes=attrs, input=a["input"], metadata=a["metadata"],
                timestamp=a["timestamp"],
            )  # fmt: skip
            labels = _attributes(a["attributes"], ("parallel", "relocatable"))
            category = a["scope_type"].name.lower()
            expected.append(
                Expected("scope", a["name"], category, "start", model_json(a["input"]), a["metadata"],
                         a["timestamp"], labels)
            )  # fmt: skip
            run(op.children, expected)
            scope.pop(handle, output=a["output"], metadata=a["end_metadata"], timestamp=a["end_timestamp"])
            expected.append(
                Expected("scope", a["name"], category, "end", model_json(a["output"]),
                         _merge(a["metadata"], a["end_metadata"]), a["end_timestamp"], labels)
            )  # fmt: skip
        elif op.kind == "mark":
            scope.event(
                a["name"], data=a["data"], data_schema=a["data_schema"], metadata=a["metadata"],
                severity=a["severity"], timestamp=a["timestamp"],
            )  # fmt: skip
            metadata = _severity_metadata(a["metadata"], a["severity"])
            expected.append(
                Expected("mark", a["name"], None, None, model_json(a["data"]), metadata, a["timestamp"],
                         data_schema=a["data_schema"])
            )  # fmt: skip
        elif op.kind == "tool":
            attrs = None if a["attributes"] is None else ToolAttributes(a["attributes"])
            handle = tools.call(
                a["name"], a["args"], attributes=attrs, metadata=a["metadata"], tool_call_id=a["tool_call_id"],
                timestamp=a["timestamp"],
            )  # fmt: skip
            result = ToolExecutionResult(a["result"], a["annotation"])
            tools.call_end(handle, result, metadata=a["end_metadata"], timestamp=a["end_timestamp"])
            labels = _attributes(a["attributes"], ("remote",))
            profile = {} if a["tool_call_id"] is None else {"tool_call_id": a["tool_call_id"]}
            end_profile = dict(profile)
            if a["annotation"] is not None:
                end_profile["tool_result_annotation"] = a["annotation"]
            expected.append(
                Expected("scope", a["name"], "tool", "start", model_json(a["args"]), a["metadata"], a["timestamp"],
                         labels, profile=profile)
            )  # fmt: skip
            expected.append(
                Expected("scope", a["name"], "tool", "end", model_json(a["result"]),
                         _merge(a["metadata"], a["end_metadata"]), a["end_timestamp"], labels, profile=end_profile)
            )  # fmt: skip
        elif op.kind == "llm":
            attrs = None if a["attributes"] is None else LLMAttributes(a["attributes"])
            request = LLMRequest(a["headers"], a["content"])
            handle = llm.call(
                a["name"], request, attributes=attrs, metadata=a["metadata"], model_name=a["model_name"],
                timestamp=a["timestamp"],
            )  # fmt: skip
            llm.call_end(handle, a["response"], metadata=a["end_metadata"], timestamp=a["end_timestamp"])
            labels = _attributes(a["attributes"], ("stateful", "streaming"))
            profile = {} if a["model_name"] is None else {"model_name": a["model_name"]}
            start_data = {"headers": a["headers"], "content": model_json(a["content"])}
            end_metadata = {**(_merge(a["metadata"], a["end_metadata"]) or {}), "otel.status_code": "OK"}
            expected.append(
                Expected("scope", a["name"], "llm", "start", start_data, a["metadata"], a["timestamp"], labels,
                         profile=profile)
            )  # fmt: skip
            expected.append(
                Expected("scope", a["name"], "llm", "end", model_json(a["response"]), end_metadata,
                         a["end_timestamp"], labels, profile=profile)
            )  # fmt: skip
        else:
            measurement = MetricMeasurement(
                "fuzz.metric", MetricKind.Counter, MetricValueType.U64, a["value"], attributes=a["attributes"]
            )
            scope.metric(a["name"], [measurement], metadata=a["metadata"], timestamp=a["timestamp"])
            expected.append(
                Expected("mark", a["name"], None, None, {"measurements": [measurement.to_dict()]}, a["metadata"],
                         a["timestamp"], data_schema={"name": "nemo.relay.metric_measurements", "version": "1"})
            )  # fmt: skip


@contextmanager
def recording() -> Iterator[list[Event]]:
    events: list[Event] = []
    name = f"fuzz-recorder-{uuid.uuid4()}"
    subscribers.register(name, events.append)
    try:
        yield events
        assert subscribers.flush(timeout=10), "dispatcher did not drain"
    finally:
        subscribers.deregister(name)


# --- checks -------------------------------------------------------------------------------------------------


def _sorted_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert keys == sorted(keys), f"keys not sorted in to_json(): {keys}"
    assert len(set(keys)) == len(keys), f"duplicate keys in to_json(): {keys}"
    return dict(pairs)


def _parse_timestamp(text: str) -> datetime:
    assert TIMESTAMP_RE.match(text), f"not an RFC 3339 UTC timestamp with 0/3/6/9 digits: {text!r}"
    if "." in text:
        digits = text[text.index(".") + 1 : text.index("+")]
        text = text.replace("." + digits, "." + digits[:6].ljust(6, "0"))  # fromisoformat reads microseconds
    return datetime.fromisoformat(text)


def check_atof(event: Event) -> dict[str, Any]:
    """The event's JSON form is well-formed ATOF and agrees with the event's properties; returns it parsed."""
    as_dict = event.to_dict()
    text = event.to_json()
    parsed = json.loads(text, object_pairs_hook=_sorted_pairs)
    assert same_json(parsed, as_dict), "json.loads(to_json()) != to_dict()"
    assert text == json.dumps(as_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=False), "not compact"
    assert set(parsed) == (SCOPE_KEYS if event.kind == "scope" else MARK_KEYS)
    assert parsed["kind"] == event.kind in ("scope", "mark")
    assert parsed["atof_version"] == event.atof_version == "0.1"
    assert UUID_RE.match(parsed["uuid"]) and parsed["uuid"] == event.uuid
    assert parsed["parent_uuid"] == event.parent_uuid
    assert parsed["parent_uuid"] is None or UUID_RE.match(parsed["parent_uuid"])
    assert parsed["timestamp"] == event.timestamp
    _parse_timestamp(parsed["timestamp"])
    assert parsed["name"] == event.name
    assert same_json(parsed["data"], event.data)
    assert same_json(parsed["metadata"], event.metadata)
    assert same_json(parsed["category_profile"], event.category_profile)
    assert parsed["category_profile"] is None or isinstance(parsed["category_profile"], dict)
    schema = parsed["data_schema"]
    assert schema == event.data_schema
    assert schema is None or (set(schema) == {"name", "version"} and all(isinstance(v, str) for v in schema.values()))
    assert parsed["category"] == event.category
    if event.kind == "scope":
        assert isinstance(event, ScopeEvent)
        assert parsed["scope_category"] == event.scope_category in ("start", "end")
        assert parsed["category"] in CATEGORIES
        attributes = parsed["attributes"]
        assert attributes == event.attributes == sorted(set(attributes))
        assert set(attributes) <= ATTRIBUTES
    return parsed  # type: ignore[no-any-return]


def check_expected(parsed: dict[str, Any], want: Expected) -> None:
    assert parsed["kind"] == want.kind
    assert parsed["name"] == want.name
    assert same_json(parsed["data"], want.data), f"data {parsed['data']!r} != {want.data!r}"
    if want.metadata is not None or parsed["metadata"] is not None:
        assert same_json(parsed["metadata"], model_json(want.metadata))
    if want.timestamp is not None:
        assert _parse_timestamp(parsed["timestamp"]) == want.timestamp, "explicit timestamp not preserved"
    if want.kind == "scope":
        assert parsed["category"] == want.category
        assert parsed["scope_category"] == want.phase
        assert parsed["attributes"] == want.attributes
    if want.data_schema is not None:
        assert parsed["data_schema"] == want.data_schema
    if want.profile is not None:
        assert parsed["category_profile"] == want.profile


@given(program=programs)
@fuzz_settings(100)
def test_event_json_round_trips_and_keeps_every_field(program: list[Op]) -> None:
    expected: list[Expected] = []
    with recording() as events:
        run(program, expected)
    assert len(events) == len(expected)
    starts: dict[str, dict[str, Any]] = {}
    for event, want in zip(events, expected, strict=True):
        parsed = check_atof(event)
        check_expected(parsed, want)
        if want.phase == "start":
            starts[parsed["uuid"]] = parsed
        elif want.phase == "end":
            start = starts.pop(parsed["uuid"])  # a start and its end share the uuid ...
            assert parsed["parent_uuid"] == start["parent_uuid"]  # ... and parent, name, category, attributes
            assert (parsed["name"], parsed["category"], parsed["attributes"]) == (
                start["name"],
                start["category"],
                start["attributes"],
            )
            if want.timestamp is None:
                end, begun = _parse_timestamp(parsed["timestamp"]), _parse_timestamp(start["timestamp"])
                assert end > begun, "an end without explicit time must come after its start"
    assert not starts, "a start event without its end"
    ids = [event.uuid for event in events if event.kind == "mark"]
    assert len(ids) == len(set(ids)), "marks need their own uuids"
