"""⑤ ⑧ Opening and closing scopes and emitting marks: validate, change the stack, build the event, publish.

Validation happens before any state change. When nothing visible subscribes, plain scope and mark
events are not even built: the cost is the stack change alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import copy_context

from nemo_relay._core import args, dispatch, registry
from nemo_relay._core.context import ScopeStack, current, find_frame, owning_agent, pop_frame
from nemo_relay._core.errors import InvalidArgumentError, NotFoundError
from nemo_relay._core.events import SEVERITY_KEY, MarkEvent, ScopeEvent
from nemo_relay._core.handles import ScopeHandle
from nemo_relay._core.ids import ONE_MICROSECOND_NS, new_id, time_ns, timestamp_ns
from nemo_relay._core.jsonconv import to_json
from nemo_relay._core.metrics import METRIC_SCHEMA, measurement_data
from nemo_relay._core.types import JsonValue, LogSeverity, ScopeAttributes, ScopeType, type_name

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

_CATEGORY = tuple(t.category for t in ScopeType)
_SCOPE_ATTRS = ScopeAttributes._NAMES
_SUBSCRIBER = registry.SUBSCRIBER
_view_of = registry.view_of
_inherit = registry.inherit
_publish = dispatch.publish


def merge(base: JsonValue, update: JsonValue) -> JsonValue:
    """Shallow JSON merge: two objects merge (update wins), otherwise the non-null side, update first."""
    if update is None:
        return base
    if type(base) is dict and type(update) is dict:
        return {**base, **update}
    return update


def push(
    name: str,
    scope_type: ScopeType,
    handle: ScopeHandle | None = None,
    attributes: ScopeAttributes | None = None,
    data: Any = None,
    metadata: Any = None,
    input: Any = None,
    timestamp: Any = None,
) -> ScopeHandle:
    """Push a scope on the current stack and emit its start event."""
    name = args.text(name, "name")
    if type(scope_type) is not ScopeType:
        args.expect(scope_type, ScopeType, "scope_type")
    attrs = args.bits(attributes, ScopeAttributes)
    if handle is not None and type(handle) is not ScopeHandle:
        args.expect(handle, ScopeHandle, "handle")
    if data is not None:
        data = to_json(data)
    if metadata is not None:
        metadata = to_json(metadata)
    if input is not None:
        input = to_json(input)
    start = time_ns() if timestamp is None else timestamp_ns(timestamp)
    stack = current()
    with stack._lock:
        below = stack._top
        frame = ScopeHandle(
            new_id(), name, scope_type, attrs, below._id if handle is None else handle._id, data, metadata, start, below
        )
        stack._top = frame
    if scope_type is ScopeType.Agent:
        frame._fresh = True
    view = _inherit(frame, below)
    if view[_SUBSCRIBER]:
        _publish(
            ScopeEvent(
                frame._id, frame._parent, start, name, _CATEGORY[scope_type], "start", _SCOPE_ATTRS[attrs],
                input, metadata, None, view, copy_context(), frame,
            )
        )  # fmt: skip
    return frame


def pop(handle: ScopeHandle, output: Any = None, metadata: Any = None, timestamp: Any = None) -> None:
    """Pop ``handle`` (it must be the top of the current stack) and emit its end event."""
    if type(handle) is not ScopeHandle:
        args.expect(handle, ScopeHandle, "handle")
    if output is not None:
        output = to_json(output)
    if metadata is not None:
        metadata = to_json(metadata)
    end = None if timestamp is None else timestamp_ns(timestamp)
    frame = pop_frame(current(), handle._id)
    if end is None:
        end = time_ns()
        if end < frame._start + ONE_MICROSECOND_NS:
            end = frame._start + ONE_MICROSECOND_NS
    view = _view_of(frame)
    if view[_SUBSCRIBER]:
        _publish(
            ScopeEvent(
                frame._id, frame._parent, end, frame._name, _CATEGORY[frame._type], "end", _SCOPE_ATTRS[frame._attrs],
                output, merge(frame._metadata, metadata), None, view, copy_context(), frame,
            )
        )  # fmt: skip


def get_handle() -> ScopeHandle:
    """A detached copy of the current top handle."""
    return current()._top._copy()


def mark(
    name: str,
    handle: ScopeHandle | None = None,
    data: Any = None,
    data_schema: Any = None,
    metadata: Any = None,
    severity: LogSeverity | None = None,
    timestamp: Any = None,
) -> None:
    """Emit a mark under ``handle`` or the current top scope."""
    name = args.text(name, "name")
    if handle is not None and type(handle) is not ScopeHandle:
        args.expect(handle, ScopeHandle, "handle")
    if data is not None:
        data = to_json(data)
    schema = None if data_schema is None else _schema(data_schema)
    if metadata is not None:
        metadata = to_json(metadata)
    ts = time_ns() if timestamp is None else timestamp_ns(timestamp)
    if severity is not None:
        metadata = _with_severity(metadata, severity)
    emit_mark(current(), name, handle, data, schema, metadata, ts)


def emit_mark(
    stack: ScopeStack,
    name: str,
    handle: ScopeHandle | None,
    data: JsonValue,
    schema: dict[str, str] | None,
    metadata: JsonValue,
    ts: int,
) -> None:
    """Publish an already-validated mark; ``compaction`` marks refresh the owning agent's history."""
    top = stack._top
    parent = top._id if handle is None else handle._id
    if name == "compaction":
        agent = owning_agent(top, parent)
        if agent is not None:
            agent._fresh = True
    view = _view_of(top)
    if view[_SUBSCRIBER]:
        _publish(MarkEvent(new_id(), parent, ts, name, data, metadata, schema, view, copy_context(), top))


def metric(
    name: str,
    measurements: Any,
    handle: ScopeHandle | None = None,
    metadata: Any = None,
    timestamp: Any = None,
) -> None:
    """Validate a measurement group and emit it as one metric mark."""
    name = args.text(name, "name")
    if handle is not None and type(handle) is not ScopeHandle:
        args.expect(handle, ScopeHandle, "handle")
    if metadata is not None:
        metadata = to_json(metadata)
    ts = time_ns() if timestamp is None else timestamp_ns(timestamp)
    data = measurement_data(measurements)
    emit_mark(current(), name, handle, data, dict(METRIC_SCHEMA), metadata, ts)


def owner_frame(handle: object, what: str = "handle") -> ScopeHandle:
    """The live frame of ``handle`` on the current stack, for scope-local registration."""
    if type(handle) is not ScopeHandle:
        args.expect(handle, ScopeHandle, what)
    frame = find_frame(current()._top, handle._id)  # type: ignore[attr-defined]
    if frame is None:
        raise NotFoundError(f"scope {handle.uuid} not found")  # type: ignore[attr-defined]
    return frame


# --- argument checks ----------------------------------------------------------------------------------


def _with_severity(metadata: JsonValue, severity: object) -> JsonValue:
    args.expect(severity, LogSeverity, "severity")
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        raise InvalidArgumentError("mark metadata must be a JSON object when severity is provided")
    metadata[SEVERITY_KEY] = severity.label  # type: ignore[attr-defined]
    return metadata


def _schema(value: object) -> dict[str, str]:
    prefix = "data_schema must contain string name and version fields: "
    if not isinstance(value, Mapping):
        raise ValueError(f"{prefix}expected a mapping with `name` and `version`, got {type_name(value)}")
    schema: dict[str, str] = {}
    for field in ("name", "version"):
        if field not in value:
            raise ValueError(f"{prefix}missing field `{field}`")
        item = value[field]
        if not isinstance(item, str):
            raise ValueError(f"{prefix}invalid type for `{field}`: {type_name(item)}, expected a string")
        schema[field] = str(item)
    return schema
