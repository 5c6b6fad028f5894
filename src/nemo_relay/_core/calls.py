"""⑤ ⑧ Tool call lifecycles and the pieces every call shares: handles, start and end events, marks.

Used by the manual ``call``/``call_end`` verbs and by the managed pipeline. Payloads are copied at
emission (callers and callbacks may mutate theirs afterwards); sanitize chains run later, on the
dispatcher, as the event's transform. When nothing would observe an event it is not built at all.
"""

from __future__ import annotations

from contextvars import copy_context

from nemo_relay._core import args as checks
from nemo_relay._core import oplog, registry, skills
from nemo_relay._core.context import current
from nemo_relay._core.dispatch import publish
from nemo_relay._core.errors import JsonConversionError
from nemo_relay._core.events import SEVERITY_KEY, MarkEvent, ScopeEvent
from nemo_relay._core.handles import ScopeHandle, ToolHandle
from nemo_relay._core.ids import ONE_MICROSECOND_NS, new_id, time_ns, timestamp_ns
from nemo_relay._core.jsonconv import copy_json, peek, to_json
from nemo_relay._core.policy import error_metadata
from nemo_relay._core.publish import Failed, run_json_chain
from nemo_relay._core.registry import view_of
from nemo_relay._core.types import LLMAttributes, ToolAttributes
from nemo_relay._core.values import ToolExecutionResult

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.events import MarkEvent as Mark
    from nemo_relay._core.registry import View
    from nemo_relay._core.types import JsonValue
    from nemo_relay._core.values import PendingMarkSpec

_TOOL_ATTRS = TOOL_ATTRS = ToolAttributes._NAMES
_LLM_ATTRS = LLMAttributes._NAMES
_SUB = registry.SUBSCRIBER
_PUB = registry.PUBLICATION  # injectors or event sanitizers: tool and LLM events are processed for them
_TOOL_REQ = registry.TOOL_SANITIZE_REQUEST
_TOOL_RESP = registry.TOOL_SANITIZE_RESPONSE
_LLM_REQ = registry.LLM_SANITIZE_REQUEST
_LLM_RESP = registry.LLM_SANITIZE_RESPONSE
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "anthropic-api-key", "x-goog-api-key"}
)


def end_time(start: int, timestamp: int | None) -> int:
    """An explicit end time, else now but strictly after ``start`` (at least 1 µs)."""
    if timestamp is not None:
        return timestamp
    now = time_ns()
    return now if now >= start + ONE_MICROSECOND_NS else start + ONE_MICROSECOND_NS


def _merge(base: JsonValue, update: JsonValue) -> JsonValue:
    if update is None:
        return base
    if type(base) is dict and type(update) is dict:
        return {**base, **update}
    return update


def ok_metadata(handle_metadata: JsonValue, metadata: JsonValue) -> JsonValue:
    """End metadata of a successful call: start metadata, then the given one, then ``otel.status_code = OK``."""
    if handle_metadata is None and metadata is None:
        return {"otel.status_code": "OK"}
    merged = _merge(metadata, {"otel.status_code": "OK"})
    if type(merged) is dict:
        merged.pop("otel.status_description", None)
    return _merge(handle_metadata, merged)


# --- tools ----------------------------------------------------------------------------------------------


def tool_profile(handle: ToolHandle) -> dict[str, JsonValue]:
    """``category_profile`` of a tool event: ``{"tool_call_id": ...}`` or ``{}``."""
    return {} if handle._tool_call_id is None else {"tool_call_id": handle._tool_call_id}


class Call:
    """What a call resolved when it started: its parent, registrations (a view) and stack snapshot."""

    __slots__ = ("name", "parent", "view", "top", "metadata", "data", "attrs")

    def __init__(self, name: str, handle: ScopeHandle | None, attrs: int, data: JsonValue, metadata: JsonValue) -> None:
        top = current()._top  # ①
        self.name = name
        self.top = top
        self.parent = top._id if handle is None else handle._id
        self.view: View = view_of(top)  # ②
        self.attrs = attrs
        self.data = data
        self.metadata = metadata

    @classmethod
    def resolved(
        cls, name: str, top: ScopeHandle, parent: int, view: View, attrs: int, data: JsonValue, metadata: JsonValue
    ) -> Call:
        """A call whose stack top, parent and view the caller has already resolved."""
        call = cls.__new__(cls)
        call.name = name
        call.top = top
        call.parent = parent
        call.view = view
        call.attrs = attrs
        call.data = data
        call.metadata = metadata
        return call

    @classmethod
    def at(cls, frame: ScopeHandle, metadata: JsonValue) -> Call:
        """A call resolved against the stack snapshot ``frame`` (ends of manual calls use their start's stack)."""
        call = cls.__new__(cls)
        call.name = ""
        call.top = frame
        call.parent = frame._id
        call.view = view_of(frame)
        call.attrs = 0
        call.data = None
        call.metadata = metadata
        return call

    def emitter(self) -> Any:
        """Where this call's guardrail evaluations are recorded."""
        from nemo_relay._core.chain import Emitter

        return Emitter(self.parent, self.metadata, self.view, self.top)


def open_tool(call: Call, args: JsonValue, payload: Any, tool_call_id: str | None, start: int) -> ToolHandle:
    """Create a tool handle and emit its start event (plus ``skill.load`` marks).

    ``payload`` is the event's own snapshot of ``args`` (see ``jsonconv.own``): nothing else may hold it.
    """
    name, parent, attrs, metadata, view = call.name, call.parent, call.attrs, call.metadata, call.view
    snap = call.top
    handle = ToolHandle(new_id(), name, attrs, parent, call.data, metadata, start, tool_call_id)
    listening = view[_SUB]
    chain = view[_TOOL_REQ]
    if not listening and not chain and not view[_PUB]:  # nobody would see the event
        return handle
    profile: dict[str, JsonValue] = {} if tool_call_id is None else {"tool_call_id": tool_call_id}
    event = ScopeEvent(
        handle._id, parent, start, name, "tool", "start", _TOOL_ATTRS[attrs], None if chain else payload,
        None if metadata is None else copy_json(metadata), profile, view, copy_context(), snap,
    )  # fmt: skip
    if chain:
        event._xf = _ToolRequest(name, payload)
    publish(event)
    if listening and not (type(metadata) is dict and metadata.get(skills.HANDLED_KEY) is True):
        skill_marks(name, args, handle._id, start, view, snap)
    return handle


def skill_marks(name: str, args: JsonValue, tool_id: int, start: int, view: View, snap: ScopeHandle) -> None:
    """Emit the ``skill.load`` marks of a tool call that loads agent skills (usually none)."""
    for skill, source in skills.detect(name, args):
        publish(
            MarkEvent(
                new_id(), tool_id, start, "skill.load", {"skill_name": skill},
                {"skill_load_source": source, "tool_name": name}, None, view, copy_context(), snap,
            )
        )  # fmt: skip


def close_tool(
    call: Call,
    handle: ToolHandle,
    payload: Any,
    annotation: JsonValue,
    fallback: JsonValue,
    metadata: JsonValue,
    end: int,
) -> None:
    """Emit a tool end event; ``result`` is sanitized later, ``fallback`` replaces a null sanitized result.

    ``payload`` is the event's own snapshot of the result (``None`` for a null result).
    """
    view = call.view
    chain = view[_TOOL_RESP]
    if not view[_SUB] and not chain and not view[_PUB]:
        return
    call_id = handle._tool_call_id
    profile: dict[str, JsonValue] = {} if call_id is None else {"tool_call_id": call_id}
    if chain:
        data = None
    else:  # no sanitizer: a null result is replaced by the fallback right away
        data = copy_json(fallback) if payload is None else payload
    event = ScopeEvent(
        handle._id, handle._parent, end, handle._name, "tool", "end", _TOOL_ATTRS[handle._attrs], data,
        metadata, profile, view, copy_context(), call.top,
    )  # fmt: skip
    if chain:
        event._xf = _ToolResponse(handle._name, payload, copy_json(fallback))
    if annotation is not None:
        profile["tool_result_annotation"] = copy_json(annotation)
    publish(event)


def close_tool_failed(
    handle: ToolHandle, view: View, snap: ScopeHandle, metadata: JsonValue, end: int | None = None
) -> None:
    """Emit the end event of a failed or cancelled managed tool call (no sanitizing, no annotation)."""
    if not view[_SUB] and not view[_PUB]:
        return
    publish(
        ScopeEvent(
            handle._id, handle._parent, end_time(handle._start, end), handle._name, "tool", "end",
            _TOOL_ATTRS[handle._attrs], copy_json(handle._data), metadata, tool_profile(handle), view,
            copy_context(), snap,
        )
    )  # fmt: skip


class _ToolRequest:
    __slots__ = ("name", "args")

    def __init__(self, name: str, args: JsonValue) -> None:
        self.name = name
        self.args = args

    def apply(self, event: ScopeEvent, view: View, loops: tuple[Any, ...]) -> None:
        name = self.name
        try:
            event._data = run_json_chain(
                view[_TOOL_REQ], peek(self.args), lambda e, v: e.callback(name, v), loops, "tool sanitizer"
            )
        except Failed as failed:
            event._data = None
            _log_sanitizer("tool_request_sanitizer_failed", "Tool request", str(failed), tool_name=name)


class _ToolResponse:
    __slots__ = ("name", "result", "fallback")

    def __init__(self, name: str, result: JsonValue, fallback: JsonValue) -> None:
        self.name = name
        self.result = result
        self.fallback = fallback

    def apply(self, event: ScopeEvent, view: View, loops: tuple[Any, ...]) -> None:
        name = self.name
        try:
            data = run_json_chain(
                view[_TOOL_RESP], peek(self.result), lambda e, v: e.callback(name, v), loops, "tool sanitizer"
            )
        except Failed as failed:
            event._data = None  # a failed chain omits the payload; the fallback is not used
            _log_sanitizer("tool_response_sanitizer_failed", "Tool response", str(failed), tool_name=name)
            return
        event._data = self.fallback if data is None else data


def failure_metadata(error: BaseException) -> dict[str, JsonValue]:
    """End-event status of a call that failed with ``error`` (what the caller sees, see ``policy``).

    An interrupt (``KeyboardInterrupt``, ``SystemExit``) reaches the caller unchanged; like ``scope.scope``
    it is described by its message, else its type name, and typed by ``exception.type``.
    """
    if isinstance(error, Exception):
        return error_metadata(error)
    kind = type(error).__name__
    return {
        "otel.status_code": "ERROR",
        "otel.status_description": str(error) or kind,
        "error.type": "internal_error",
        "exception.type": kind,
    }


def _described(exc: BaseException) -> str:
    if isinstance(exc, JsonConversionError):
        return f"internal error: ValueError: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _log_sanitizer(kind: str, what: str, sanitizer: str, **fields: object) -> None:
    oplog.log(
        "error",
        "nemo_relay.runtime",
        kind,
        f"{what} sanitizer failed; omitting the observability payload",
        sanitizer=sanitizer,
        **fields,
    )


def emit_marks(marks: tuple[PendingMarkSpec, ...] | list[PendingMarkSpec], parent: int, first_ts: int,
               step: int, view: View, snap: ScopeHandle) -> None:  # fmt: skip
    """Emit pending marks under ``parent`` at ``first_ts``, ``first_ts + step`` ... (invalid ones are dropped)."""
    if not view[_SUB]:
        return
    for index, spec in enumerate(marks):
        metadata = spec._metadata
        if spec._severity is not None:
            if metadata is None:
                metadata = {}
            elif type(metadata) is not dict:
                oplog.log(
                    "warn",
                    "nemo_relay.runtime",
                    "pending_mark_dropped",
                    "Pending mark dropped: metadata must be a JSON object when severity is provided",
                    mark_name=spec._name,
                )
                continue
            metadata = {**metadata, SEVERITY_KEY: spec._severity.label}
        mark: Mark = MarkEvent(
            new_id(), parent, first_ts + index * step, spec._name, copy_json(spec._data), copy_json(metadata),
            None if spec._schema is None else dict(spec._schema), view, copy_context(), snap,
            spec._category, copy_json(spec._profile),  # type: ignore[arg-type]
        )  # fmt: skip
        publish(mark)


def rejection_mark(parent: int, name: str, reason: str, metadata: JsonValue, view: View, snap: ScopeHandle) -> None:
    """The mark a managed call emits when a conditional guardrail rejects it."""
    if view[_SUB]:
        publish(
            MarkEvent(
                new_id(), parent, time_ns(), name, {"rejected": True, "rejection_reason": reason},
                copy_json(metadata), None, view, copy_context(), snap,
            )
        )  # fmt: skip


# --- the manual verbs -------------------------------------------------------------------------------------


def tool_call(
    name: str,
    args: object,
    handle: ScopeHandle | None,
    attributes: ToolAttributes | None,
    data: object,
    metadata: object,
    tool_call_id: str | None,
    timestamp: object,
) -> ToolHandle:
    """``tools.call``: validate, then open the call under ``handle`` or the current top scope."""
    name = checks.text(name, "name")
    if handle is not None:
        checks.expect(handle, ScopeHandle, "handle")
    attrs = checks.bits(attributes, ToolAttributes)
    call_id = checks.optional_text(tool_call_id, "tool_call_id")
    args_json = to_json(args)
    data_json, metadata_json = optional_json(data), optional_json(metadata)
    start = time_ns() if timestamp is None else timestamp_ns(timestamp)
    # args_json is a private conversion nobody else holds: the event may keep it as its snapshot.
    return open_tool(Call(name, handle, attrs, data_json, metadata_json), args_json, args_json, call_id, start)


def tool_call_end(
    handle: ToolHandle, result: ToolExecutionResult[Any], data: object, metadata: object, timestamp: object
) -> None:
    """``tools.call_end``: record the result of a manual tool call (no ``otel.status_code`` is added)."""
    checks.expect(handle, ToolHandle, "handle")
    checks.expect(result, ToolExecutionResult, "result")
    result_json = to_json(result._result)
    annotation = optional_json(result._annotation)
    data_json, metadata_json = optional_json(data), optional_json(metadata)
    end = None if timestamp is None else timestamp_ns(timestamp)
    end_ns = end_time(handle._start, end)
    merged = _merge(handle._metadata, metadata_json)
    call = Call(handle._name, None, handle._attrs, None, None)  # the current stack's view decides delivery
    close_tool(call, handle, result_json, annotation, data_json, merged, end_ns)


def optional_json(value: object) -> JsonValue:
    return None if value is None else to_json(value)
