"""The spine: the managed tool and LLM pipelines, read top to bottom in the order a call flows.

    ① stack and parent resolved at call time      ⑤ start event (sanitized later, on the dispatcher)
    ② registrations resolved once (a view)         ⑥ execution intercepts, lowest priority outermost
    ③ conditional guardrails (may reject)          ⑦ the tool / provider callback
    ④ request intercepts                           ⑧ end event, then pending marks

Each call runs eagerly on the caller's thread and event loop (``aio.start``): a call whose
callbacks never suspend completes before ``execute`` returns, and only finished events are handed to
the dispatcher thread. The commonest call, a tool with no middleware and nothing processing its events,
takes a flat path in ``execute_tool`` that hands over just the events' fields (the dispatcher builds
the objects) and makes its ``Call`` and ``ToolHandle`` only if the tool fails or suspends.
"""

from __future__ import annotations

import contextlib
from contextvars import copy_context
from types import CoroutineType

from nemo_relay._core import aio, chain, registry, skills
from nemo_relay._core.annotated import AnnotatedLLMRequest
from nemo_relay._core.calls import (
    TOOL_ATTRS,
    Call,
    close_tool,
    close_tool_failed,
    emit_marks,
    end_time,
    failure_metadata,
    ok_metadata,
    open_tool,
    rejection_mark,
    skill_marks,
)
from nemo_relay._core.context import ScopeStack, _active_event_var, _override_var, bottom_and_first, current
from nemo_relay._core.dispatch import publish_scope_args
from nemo_relay._core.errors import GuardrailRejectedError, InternalError, InvalidArgumentError, JsonConversionError
from nemo_relay._core.handles import LLMHandle, ScopeHandle, ToolHandle
from nemo_relay._core.ids import ONE_MICROSECOND_NS, new_id_at, time_ns
from nemo_relay._core.jsonconv import bounded_size, copy_json, freeze, own, to_json
from nemo_relay._core.llmcalls import close_llm, not_instance, open_llm
from nemo_relay._core.llmctx import identity_of
from nemo_relay._core.policy import (
    call_llm_execution_intercept,
    call_llm_stream_intercept,
    call_tool_execution_intercept,
    callback_failed,
    rethrow,
)
from nemo_relay._core.propagation import traceparent
from nemo_relay._core.types import ScopeType
from nemo_relay._core.values import LLMRequest, ToolExecutionInterceptOutcome, ToolExecutionResult

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from nemo_relay._core.registry import Entry
    from nemo_relay._core.types import JsonValue
    from nemo_relay._core.values import PendingMarkSpec

_view_of = registry.view_of
_SKILL_SHAPES = skills.SHAPES
_TOOL_ATTRS = TOOL_ATTRS
_SUBSCRIBER = registry.SUBSCRIBER
_PUBLICATION = registry.PUBLICATION
_TOOL_CONDITION = registry.TOOL_CONDITIONAL_EXECUTION
_TOOL_REQUEST = registry.TOOL_REQUEST_INTERCEPT
_TOOL_EXECUTION = registry.TOOL_EXECUTION_INTERCEPT
_TOOL_SANITIZE_REQUEST = registry.TOOL_SANITIZE_REQUEST
_TOOL_SANITIZE_RESPONSE = registry.TOOL_SANITIZE_RESPONSE
_TOOL_RAW_RESULT = (
    "tool execution callback must return ToolExecutionResult; return ToolExecutionResult(payload), not a raw dict: "
)
_TOOL_RAW_OUTCOME = (
    "tool execution intercept must return ToolExecutionInterceptOutcome; after await next(args), return "
    "ToolExecutionInterceptOutcome(result=downstream.result, annotation=downstream.annotation): "
)
_INACTIVE = "execution continuation is no longer active"


def _merge(base: JsonValue, update: JsonValue) -> JsonValue:
    if update is None:
        return base
    if type(base) is dict and type(update) is dict:
        return {**base, **update}
    return update


def _cancelled_metadata(handle_metadata: JsonValue, metadata: JsonValue, description: str) -> JsonValue:
    return _merge(
        handle_metadata, _merge(metadata, {"otel.status_code": "ERROR", "otel.status_description": description})
    )


def _failed_metadata(handle_metadata: JsonValue, error: BaseException) -> JsonValue:
    return _merge(handle_metadata, failure_metadata(error))


def _json_result(value: object) -> JsonValue:
    try:
        return to_json(value)
    except JsonConversionError as exc:
        raise InternalError(f"ValueError: {exc}") from exc


def start(loop: Any, pipeline: Any) -> Any:
    """Run a pipeline coroutine eagerly in a private copy of the caller's context."""
    return aio.start(loop, pipeline, copy_context())


# --- tools ----------------------------------------------------------------------------------------------


def execute_tool(
    loop: Any,
    name: str,
    handle: ScopeHandle | None,
    attrs: int,
    data: JsonValue,
    metadata: JsonValue,
    args: object,
    func: Callable[..., Any],
    tool_call_id: str | None,
) -> Any:
    """Start a managed tool call; returns an ``asyncio.Future`` of its ``ToolExecutionResult``.

    With no guardrails or intercepts in the view and a ``func`` that does not suspend, the whole call
    completes here without creating a coroutine; otherwise ``tool_pipeline`` runs eagerly.
    """
    top = current()._top  # ①
    view = _view_of(top)  # ②
    parent = top._id if handle is None else handle._id
    payload: Any  # the event's snapshot: JSON, or a frozen blob for large values
    private, payload = own(args)  # validated now; callbacks and the event get their own copies
    if view[_TOOL_CONDITION] or view[_TOOL_REQUEST] or view[_TOOL_EXECUTION]:
        call = Call.resolved(name, top, parent, view, attrs, data, metadata)
        return aio.start(loop, tool_pipeline(call, private, func, tool_call_id), copy_context())
    if view[_TOOL_SANITIZE_REQUEST] or view[_TOOL_SANITIZE_RESPONSE] or view[_PUBLICATION]:
        call = Call.resolved(name, top, parent, view, attrs, data, metadata)
        return _tool_now(loop, call, open_tool(call, private, payload, tool_call_id, time_ns()), func, private)
    # The common case, written out flat: no middleware, no event processing. The events' fields go to the
    # dispatcher, and the call's ``Call`` and ``ToolHandle`` are made only if a failure or a suspension needs them.
    start = time_ns()
    id_ = new_id_at(start)
    listening = view[_SUBSCRIBER]
    if listening:
        flags = _TOOL_ATTRS[attrs]
        publish_scope_args(  # nothing processes these events (see above): the dispatcher builds them
            (
                id_, parent, start, name, "tool", "start", flags, payload,
                None if metadata is None else copy_json(metadata),
                {} if tool_call_id is None else {"tool_call_id": tool_call_id}, view, copy_context(), top,
            )
        )  # fmt: skip
        # ``SHAPES`` caches "this tool name never loads skills" (None): most calls stop at this lookup.
        if _SKILL_SHAPES.get(name, name) is not None and not (
            type(metadata) is dict and metadata.get(skills.HANDLED_KEY) is True
        ):
            skill_marks(name, private, id_, start, view, top)
    context = copy_context()
    future = loop.create_future()
    try:
        value = context.run(_invoke, id_, func, private)  # ⑦
        if type(value) is CoroutineType:  # an async tool: run it here until it first waits
            try:
                pending = context.run(value.send, None)
            except StopIteration as done:
                value = done.value
            else:
                value = aio.Continue(value, pending)
        if type(value) is ToolExecutionResult:
            annotation = None if value._annotation is None else _json_result(value._annotation)
            try:
                result, payload = own(value._result)
            except JsonConversionError as exc:
                raise InternalError(f"ValueError: {exc}") from exc
        else:
            annotation = _UNSETTLED
    except BaseException as exc:
        value, annotation = exc, _FAILED
    if annotation is _UNSETTLED or annotation is _FAILED:  # the general form takes over
        call = Call.resolved(name, top, parent, view, attrs, data, metadata)
        tool = ToolHandle(id_, name, attrs, parent, data, metadata, start, tool_call_id)
        if annotation is _FAILED:
            return _tool_failed(call, tool, future, value)
        return _tool_later(loop, call, tool, context, future, value)  # suspended, or not a result
    if listening:  # ⑧
        end = time_ns()
        if end < start + ONE_MICROSECOND_NS:
            end = start + ONE_MICROSECOND_NS
        profile: dict[str, JsonValue] = {} if tool_call_id is None else {"tool_call_id": tool_call_id}
        if annotation is not None:
            profile["tool_result_annotation"] = copy_json(annotation)
        publish_scope_args(
            (
                id_, parent, end, name, "tool", "end", flags, payload,
                # The call's metadata is both its start metadata and the end's update.
                {"otel.status_code": "OK"} if metadata is None else ok_metadata(metadata, metadata), profile,
                view, copy_context(), top,
            )
        )  # fmt: skip
    future.set_result(ToolExecutionResult(result, annotation))
    return future


# Markers in place of an annotation (which is JSON or None): "no result yet", "the tool raised".
_UNSETTLED: Any = object()
_FAILED: Any = object()


def _tool_now(loop: Any, call: Call, handle: ToolHandle, func: Callable[..., Any], args: JsonValue) -> Any:
    """⑦ ⑧ of a call whose events are processed (sanitizers, injectors): the general form."""
    context = copy_context()
    future = loop.create_future()
    try:
        value = context.run(_invoke, handle._id, func, args)  # ⑦
    except BaseException as exc:
        return _tool_failed(call, handle, future, exc)
    return _tool_later(loop, call, handle, context, future, value)


def _tool_later(loop: Any, call: Call, handle: ToolHandle, context: Any, future: Any, value: object) -> Any:
    """Finish a call whose tool returned ``value``: a result, an awaitable, or something invalid."""
    try:
        if type(value) is aio.Continue:  # suspended in the fast path of ``execute_tool``
            return aio.start(loop, _await_tool(call, handle, value), context)
        if type(value) is CoroutineType:  # an async tool: run it here until it first waits
            try:
                pending = context.run(value.send, None)
            except StopIteration as done:
                value = done.value
            else:
                return aio.start(loop, _await_tool(call, handle, aio.Continue(value, pending)), context)
        elif type(value) is not ToolExecutionResult and aio.is_awaitable(value):
            return aio.start(loop, _await_tool(call, handle, value), context)
        outcome = _tool_result(value)
    except BaseException as exc:
        return _tool_failed(call, handle, future, exc)
    future.set_result(_finish_tool(call, handle, outcome, ()))  # ⑧
    return future


def _tool_failed(call: Call, handle: ToolHandle, future: Any, exc: BaseException) -> Any:
    _fail_tool(call, handle, exc)
    return _settle_failed(future, exc)


def _settle_failed(future: Any, exc: BaseException) -> Any:
    """Settle the caller's future with what a callback's ``exc`` becomes for the caller (see ``policy``)."""
    error = callback_failed(exc)
    if isinstance(error, aio.cancelled_error_type()):
        future.cancel(error.args[0] if error.args else None)
    else:
        future.set_exception(error)
    return future


def _invoke(active: int, func: Callable[..., Any], argument: Any) -> Any:
    _active_event_var.set(active)  # runs inside the call's private context
    return func(argument)


async def _await_tool(call: Call, handle: ToolHandle, pending: Any) -> Any:
    try:
        outcome = _tool_result(await pending)
    except BaseException as exc:
        _fail_tool(call, handle, exc)
        rethrow(exc)
    return _finish_tool(call, handle, outcome, ())


async def tool_pipeline(call: Call, args: JsonValue, func: Callable[..., Any], tool_call_id: str | None) -> Any:
    """③ → ⑧ for one managed tool call with middleware; returns the unsanitized ``ToolExecutionResult``."""
    view, name = call.view, call.name
    guards = view[registry.TOOL_CONDITIONAL_EXECUTION]
    if guards:  # ③
        flow = chain.conditions(guards, call.emitter(), "tool", name, lambda e: e.callback(name, copy_json(args)))
        reason = await aio.drive_async(flow)
        if reason is not None:
            rejection_mark(call.parent, name, reason, call.metadata, view, call.top)
            raise GuardrailRejectedError(reason)
    requests = view[registry.TOOL_REQUEST_INTERCEPT]
    if requests:  # ④
        args = await aio.drive_async(chain.tool_requests(requests, name, args))
    handle = open_tool(call, args, freeze(args, bounded_size(args)), tool_call_id, time_ns())  # ⑤
    _active_event_var.set(handle._id)  # this context is the call's private copy
    try:
        result, annotation, marks = await _ToolChain(view[registry.TOOL_EXECUTION_INTERCEPT], handle, func).run(
            0, args
        )  # ⑥ ⑦
    except BaseException as exc:
        _fail_tool(call, handle, exc)
        rethrow(exc)
    # The outcome's result is a private conversion; the event still snapshots it before the caller sees it.
    return _finish_tool(call, handle, (result, freeze(result, bounded_size(result)), annotation), marks)  # ⑧


def _tool_result(value: object) -> tuple[JsonValue, Any, JsonValue]:
    """Check and convert what a tool callback returned."""
    if not isinstance(value, ToolExecutionResult):
        raise InvalidArgumentError(
            f"{_TOOL_RAW_RESULT}'{type(value).__name__}' object is not an instance of 'ToolExecutionResult'"
        )
    annotation = None if value._annotation is None else _json_result(value._annotation)
    try:
        result, payload = own(value._result)
    except JsonConversionError as exc:
        raise InternalError(f"ValueError: {exc}") from exc
    return result, payload, annotation


def _finish_tool(
    call: Call, handle: ToolHandle, outcome: tuple[JsonValue, Any, JsonValue], marks: Any
) -> ToolExecutionResult[JsonValue]:
    """Record the end (and pending marks) of a successful call; the caller gets a private result."""
    result, payload, annotation = outcome
    view = call.view
    if view[registry.SUBSCRIBER] or view[registry.TOOL_SANITIZE_RESPONSE] or view[registry.PUBLICATION]:
        end = time_ns()
        if end < handle._start + ONE_MICROSECOND_NS:
            end = handle._start + ONE_MICROSECOND_NS
        if handle._metadata is None and call.metadata is None:
            metadata: JsonValue = {"otel.status_code": "OK"}
        else:
            metadata = ok_metadata(handle._metadata, call.metadata)
        close_tool(call, handle, payload, annotation, None, metadata, end)
        if marks:
            emit_marks(marks, handle._id, end + ONE_MICROSECOND_NS, ONE_MICROSECOND_NS, view, call.top)
    return ToolExecutionResult(result, annotation)


def _fail_tool(call: Call, handle: ToolHandle, exc: BaseException) -> None:
    if isinstance(exc, aio.cancelled_error_type()):
        metadata = _cancelled_metadata(handle._metadata, call.metadata, "tool execution cancelled")
    else:
        metadata = _failed_metadata(handle._metadata, callback_failed(exc))
    close_tool_failed(handle, call.view, call.top, metadata)


if TYPE_CHECKING:
    _ToolOutcome = tuple[JsonValue, JsonValue, list[PendingMarkSpec]]  # result, annotation, pending marks


class _ToolChain:
    """The execution intercepts around a tool callback; ``run(i, args)`` runs layer ``i`` and below."""

    __slots__ = ("entries", "handle", "func")

    def __init__(self, entries: tuple[Entry, ...], handle: ToolHandle, func: Callable[..., Any]) -> None:
        self.entries = entries
        self.handle = handle
        self.func = func

    prepare = staticmethod(to_json)  # what ``next(args)`` accepts

    async def run(self, index: int, args: JsonValue) -> _ToolOutcome:
        if index == len(self.entries):
            return await self._callback(args)
        entry = self.entries[index]
        continuation = _Continuation(self, index + 1, _tool_branch)
        try:
            outcome = call_tool_execution_intercept(
                entry.callback, self.handle._name, args, self.handle._tool_call_id, continuation
            )
            if aio.is_awaitable(outcome):
                outcome = await outcome
        except BaseException as exc:
            continuation.settle()
            rethrow(exc)
        continuation.settle()
        if not isinstance(outcome, ToolExecutionInterceptOutcome):
            raise InvalidArgumentError(
                f"{_TOOL_RAW_OUTCOME}'{type(outcome).__name__}' object is not an instance of "
                "'ToolExecutionInterceptOutcome'"
            )
        return outcome._result, outcome._annotation, continuation.marks() + list(outcome._marks)

    async def _callback(self, args: JsonValue) -> _ToolOutcome:
        try:
            value = self.func(args)
            if aio.is_awaitable(value):
                value = await value
        except BaseException as exc:
            rethrow(exc)
        result, _, annotation = _tool_result(value)
        return result, annotation, []


def _tool_branch(outcome: _ToolOutcome, marks: list[PendingMarkSpec]) -> ToolExecutionResult[JsonValue]:
    result, annotation, downstream_marks = outcome
    marks.extend(downstream_marks)
    return ToolExecutionResult(result, annotation)


class _Continuation:
    """The ``next`` handed to an execution intercept: valid only while the intercept runs.

    Each call runs the layers below in an isolated snapshot of the caller's stack (pushes and pops in
    one branch are invisible to siblings and to the intercept). Downstream pending marks are kept in
    call order and prepended to the intercept's own.
    """

    __slots__ = ("_chain", "_index", "_wrap", "_active", "_calls", "_running")

    def __init__(self, chain_: Any, index: int, wrap: Callable[..., Any]) -> None:
        self._chain = chain_
        self._index = index
        self._wrap = wrap
        self._active = True
        self._calls: list[list[Any]] = []
        self._running: list[Any] = []

    def __call__(self, value: Any) -> Any:
        if not self._active:
            raise InvalidArgumentError(_INACTIVE)
        value = self._chain.prepare(value)
        marks: list[Any] = []
        self._calls.append(marks)
        branch = copy_context()
        branch.run(_override_var.set, ScopeStack(current()._top))
        future = aio.start(aio.require_loop("next()"), self._branch(value, marks), branch)
        if not future.done():
            self._running.append(future)
        return future

    async def _branch(self, value: Any, marks: list[Any]) -> Any:
        try:
            outcome = await self._chain.run(self._index, value)
        except aio.cancelled_error_type():
            if not self._active:  # cancelled because the intercept settled without waiting for us
                raise InvalidArgumentError(_INACTIVE) from None
            raise
        return self._wrap(outcome, marks)

    def settle(self) -> None:
        """The intercept returned or raised: later and unfinished ``next`` calls fail."""
        self._active = False
        for future in self._running:
            if not future.done():
                future.cancel()

    def marks(self) -> list[Any]:
        return [mark for call in self._calls for mark in call]


# --- LLM calls ------------------------------------------------------------------------------------------

_AGENT_ID_KEYS = ("codex_subagent_session_id", "subagent_session_id", "subagent_id", "session_id")


def _agent_id(frame: ScopeHandle) -> str:
    metadata = frame._metadata
    if type(metadata) is dict:
        for key in _AGENT_ID_KEYS:
            value = metadata.get(key)
            if isinstance(value, str):
                return value
    return frame._name


def with_dynamo_headers(request: LLMRequest, top: ScopeHandle) -> LLMRequest:
    """Add ``x-dynamo-session-id`` (innermost explicit Agent) and ``x-dynamo-parent-session-id`` (next one)."""
    agents: list[ScopeHandle] = []
    frame: ScopeHandle | None = top
    while frame is not None and frame._below is not None and len(agents) < 2:  # the stack root never counts
        if frame._type is ScopeType.Agent:
            agents.append(frame)
        frame = frame._below
    if not agents:
        return request
    headers = dict(request._headers)
    headers["x-dynamo-session-id"] = _agent_id(agents[0])
    if len(agents) > 1:
        headers["x-dynamo-parent-session-id"] = _agent_id(agents[1])
    else:
        headers.pop("x-dynamo-parent-session-id", None)
    return LLMRequest._trusted(headers, request._content)


def with_traceparent(request: LLMRequest, value: str) -> LLMRequest:
    """Replace any ``traceparent`` header (case-insensitively) with ``value``."""
    headers = {k: v for k, v in request._headers.items() if k.lower() != "traceparent"}
    headers["traceparent"] = value
    return LLMRequest._trusted(headers, request._content)


def llm_trace_root(top: ScopeHandle, llm_id: int) -> int:
    """Trace id of an LLM call: the propagated root, else the first scope under the root, else the call."""
    bottom, first = bottom_and_first(top)
    propagated: int | None = getattr(bottom, "_prop_root", None)
    if propagated is not None:
        return propagated
    return first._id if first is not None else llm_id


async def prepare_llm_request(call: Call, request: LLMRequest, codec: object) -> chain.RequestChainResult:
    """③ conditional guardrails and ④ request intercepts (with codec decode/encode) for an LLM call."""
    view, name = call.view, call.name
    guards = view[registry.LLM_CONDITIONAL_EXECUTION]
    if guards:  # ③
        reason = await aio.drive_async(
            chain.conditions(guards, call.emitter(), "llm", None, lambda e: e.callback(request))
        )
        if reason is not None:
            rejection_mark(call.parent, name, reason, call.metadata, view, call.top)
            raise GuardrailRejectedError(reason)
    annotated = None if codec is None else _decode(codec, request)  # ④
    requests = view[registry.LLM_REQUEST_INTERCEPT]
    if requests:
        prepared = await aio.drive_async(chain.llm_requests(requests, name, request, annotated, codec is not None))
    else:
        prepared = chain.RequestChainResult(request, annotated, [])
    prepared.request = with_dynamo_headers(prepared.request, call.top)
    if codec is not None:
        encoded = _encode(codec, prepared.annotated, prepared.request)
        headers = {**encoded._headers, **prepared.request._headers}  # intercept header edits win
        prepared.request = LLMRequest._trusted(headers, encoded._content)
    return prepared


def _codec_call(codec: Any, method: str, *args: Any) -> Any:
    """Call a codec method; a user codec's failure is reported as ``Codec <method>() failed: <Type>: <msg>``."""
    try:
        return getattr(codec, method)(*args)
    except Exception as exc:
        if identity_of(codec).kind == "builtin":
            raise  # built-in codecs raise the runtime's own errors
        raise InternalError(f"Codec {method}() failed: {type(exc).__name__}: {exc}") from exc


def _decode(codec: Any, request: LLMRequest) -> object:
    annotated = _codec_call(codec, "decode", request)
    if not isinstance(annotated, AnnotatedLLMRequest):
        raise InternalError(
            "Codec decode() returned unexpected type (expected AnnotatedLLMRequest): "
            f"{not_instance(annotated, 'AnnotatedLLMRequest')}"
        )
    return annotated


def _encode(codec: Any, annotated: object, request: LLMRequest) -> LLMRequest:
    encoded = _codec_call(codec, "encode", annotated, request)
    if not isinstance(encoded, LLMRequest):
        raise InternalError(
            f"Codec encode() returned unexpected type (expected LlmRequest): {not_instance(encoded, 'LLMRequest')}"
        )
    return encoded


def execute_llm(
    loop: Any, call: Call, request: LLMRequest, func: Callable[..., Any], model_name: str | None, codec: object,
    response_codec: object,
) -> Any:  # fmt: skip
    """Start a managed LLM call; returns an ``asyncio.Future`` of the provider's raw response.

    With no guardrails, intercepts or codec and a sync provider the call completes here without a
    coroutine; otherwise ``llm_pipeline`` runs eagerly.
    """
    view = call.view
    if (
        codec is not None
        or view[registry.LLM_CONDITIONAL_EXECUTION]
        or view[registry.LLM_REQUEST_INTERCEPT]
        or view[registry.LLM_EXECUTION_INTERCEPT]
    ):
        return aio.start(loop, llm_pipeline(call, request, func, model_name, codec, response_codec), copy_context())
    request = with_dynamo_headers(request, call.top)  # ④ (no intercepts)
    handle = _open(call, chain.RequestChainResult(request, None, []), model_name, None)  # ⑤
    provider_request = with_traceparent(request, traceparent(llm_trace_root(call.top, handle._id), handle._id))
    context = copy_context()
    future = loop.create_future()
    try:
        value = context.run(_invoke, handle._id, func, provider_request)  # ⑦
        if aio.is_awaitable(value):
            return aio.start(loop, _await_llm(call, handle, value, response_codec), context)
        response = _json_result(value)
    except BaseException as exc:
        _fail_llm(call, handle, exc)
        return _settle_failed(future, exc)
    _finish_llm(call, handle, response, response_codec)  # ⑧
    future.set_result(response)
    return future


async def _await_llm(call: Call, handle: LLMHandle, pending: Any, response_codec: object) -> JsonValue:
    try:
        response = _json_result(await pending)
    except BaseException as exc:
        _fail_llm(call, handle, exc)
        rethrow(exc)
    _finish_llm(call, handle, response, response_codec)
    return response


def _finish_llm(call: Call, handle: LLMHandle, response: JsonValue, response_codec: object) -> None:
    metadata = ok_metadata(handle._metadata, call.metadata)
    close_llm(call, handle, response, None, metadata, end_time(handle._start, None), response_codec)


def _fail_llm(call: Call, handle: LLMHandle, exc: BaseException) -> None:
    if isinstance(exc, aio.cancelled_error_type()):
        metadata = _cancelled_metadata(handle._metadata, call.metadata, "LLM execution cancelled")
    else:
        metadata = _failed_metadata(handle._metadata, callback_failed(exc))
    _close_failed(call, handle, metadata)


async def llm_pipeline(
    call: Call, request: LLMRequest, func: Callable[..., Any], model_name: str | None, codec: object,
    response_codec: object,
) -> JsonValue:  # fmt: skip
    """③ → ⑧ for one buffered managed LLM call with middleware or a codec; returns the raw response."""
    prepared = await prepare_llm_request(call, request, codec)
    handle = _open(call, prepared, model_name, codec)  # ⑤
    provider_request = with_traceparent(prepared.request, traceparent(llm_trace_root(call.top, handle._id), handle._id))
    _active_event_var.set(handle._id)
    try:
        response = await _LlmChain(call.view[registry.LLM_EXECUTION_INTERCEPT], handle, func).run(
            0, provider_request
        )  # ⑥ ⑦
    except BaseException as exc:
        _fail_llm(call, handle, exc)
        rethrow(exc)
    _finish_llm(call, handle, response, response_codec)  # ⑧
    return response


def _open(call: Call, prepared: chain.RequestChainResult, model_name: str | None, codec: object) -> LLMHandle:
    start = time_ns()
    annotated = prepared.annotated if isinstance(prepared.annotated, AnnotatedLLMRequest) else None
    handle = open_llm(call, prepared.request, model_name, start, codec, annotated)
    if prepared.marks:
        emit_marks(prepared.marks, handle._id, start + ONE_MICROSECOND_NS, 0, call.view, call.top)
    return handle


def _close_failed(call: Call, handle: LLMHandle, metadata: JsonValue) -> None:
    close_llm(call, handle, None, handle._data, metadata, end_time(handle._start, None))


class _LlmChain:
    """The execution intercepts around a provider callback (buffered calls)."""

    __slots__ = ("entries", "handle", "func")

    def __init__(self, entries: tuple[Entry, ...], handle: LLMHandle, func: Callable[..., Any]) -> None:
        self.entries = entries
        self.handle = handle
        self.func = func

    @staticmethod
    def prepare(request: object) -> LLMRequest:
        if not isinstance(request, LLMRequest):
            raise TypeError(f"'{type(request).__name__}' object is not an instance of 'LLMRequest'")
        return request

    async def run(self, index: int, request: LLMRequest) -> JsonValue:
        if index == len(self.entries):
            try:
                value = self.func(request)
                if aio.is_awaitable(value):
                    value = await value
            except BaseException as exc:
                rethrow(exc)
            return _json_result(value)
        continuation = _Continuation(self, index + 1, _llm_branch)
        try:
            value = call_llm_execution_intercept(
                self.entries[index].callback, self.handle._name, request, None, continuation
            )
            if aio.is_awaitable(value):
                value = await value
        except BaseException as exc:
            continuation.settle()
            rethrow(exc)
        continuation.settle()
        return _json_result(value)


def _llm_branch(outcome: JsonValue, marks: list[Any]) -> JsonValue:
    return outcome


# --- standalone helpers ---------------------------------------------------------------------------------


def run_flow(flow: Any) -> Any:
    """Run a middleware flow: directly without a running loop, else as an eagerly started future."""
    loop = aio.running_loop()
    if loop is None:
        return aio.drive_sync(flow)
    return aio.start(loop, aio.drive_async(flow), copy_context())


def standalone_call(name: str) -> Call:
    """A ``Call`` for the standalone helpers: parent = the current top, no metadata."""
    return Call(name, None, 0, None, None)


# --- LLM streams ----------------------------------------------------------------------------------------


async def stream_pipeline(
    call: Call, request: LLMRequest, func: Callable[..., Any], collector: Callable[..., Any],
    finalizer: Callable[[], Any], model_name: str | None, codec: object, response_codec: object = None,
) -> Any:  # fmt: skip
    """③ → ⑥ for a streamed LLM call; returns the ``LlmStream`` that records chunks and the end."""
    from nemo_relay._core.stream import LlmStream

    prepared = await prepare_llm_request(call, request, codec)
    handle = _open(call, prepared, model_name, codec)  # ⑤
    provider_request = with_traceparent(prepared.request, traceparent(llm_trace_root(call.top, handle._id), handle._id))
    _active_event_var.set(handle._id)
    streams = _StreamChain(call.view[registry.LLM_STREAM_EXECUTION_INTERCEPT], handle, func)
    try:
        source = await streams.run(0, provider_request)  # ⑥ ⑦ (the producer runs as chunks are pulled)
    except aio.cancelled_error_type():
        streams.settle()
        _close_failed(call, handle, _cancelled_metadata(handle._metadata, call.metadata, "LLM execution cancelled"))
        raise
    except BaseException as exc:
        streams.settle()
        _close_failed(call, handle, _failed_metadata(handle._metadata, callback_failed(exc)))
        rethrow(exc)
    # Chunks are pulled in this call's context, so the producer sees the LLM call as its parent.
    iterator = _ContextIterator(source, copy_context())
    return LlmStream(call, handle, iterator, collector, finalizer, streams.settle, response_codec)


class _StreamChain:
    """Stream execution intercepts; their ``next`` stays valid until the stream closes."""

    __slots__ = ("entries", "handle", "func", "continuations")

    def __init__(self, entries: tuple[Entry, ...], handle: LLMHandle, func: Callable[..., Any]) -> None:
        self.entries = entries
        self.handle = handle
        self.func = func
        self.continuations: list[_Continuation] = []

    prepare = staticmethod(_LlmChain.prepare)

    async def run(self, index: int, request: LLMRequest) -> Any:
        try:
            if index == len(self.entries):
                value = self.func(request)
            else:
                continuation = _Continuation(self, index + 1, _llm_branch)
                self.continuations.append(continuation)
                value = call_llm_stream_intercept(
                    self.entries[index].callback, self.handle._name, request, None, continuation
                )
            if aio.is_awaitable(value) and not hasattr(value, "__anext__"):
                value = await value
        except BaseException as exc:
            rethrow(exc)
        return value

    def settle(self) -> None:
        for continuation in self.continuations:
            continuation.settle()


class _ContextIterator:
    """Pulls chunks from ``source`` with every step of its ``__anext__`` run inside ``context``."""

    __slots__ = ("_source", "_context")

    def __init__(self, source: Any, context: Any) -> None:
        self._source = source
        self._context = context

    def __anext__(self) -> Any:
        return _InContext(self._context.run(lambda: self._source.__anext__()), self._context)

    def aclose(self) -> Any:
        close = getattr(self._source, "aclose", None)
        if close is None:
            return _done()
        return _InContext(self._context.run(close), self._context)


async def _done() -> None:
    return None


class _InContext:
    """Awaitable that steps another awaitable inside a given context (no token held across a yield)."""

    __slots__ = ("_awaitable", "_context")

    def __init__(self, awaitable: Any, context: Any) -> None:
        self._awaitable = awaitable
        self._context = context

    def __await__(self) -> Any:
        run = self._context.run
        steps = run(self._awaitable.__await__)
        sent: Any = None
        error: BaseException | None = None
        while True:
            try:
                pending = run(steps.send, sent) if error is None else run(steps.throw, error)
            except StopIteration as done:
                return done.value
            sent, error = None, None
            try:
                sent = yield pending
            except BaseException as exc:
                error = exc


def rejecting(flow: Any) -> Any:
    """Wrap a conditions flow so a rejection raises ``GuardrailRejectedError`` (standalone helpers)."""
    reason = yield from flow
    if reason is not None:
        raise GuardrailRejectedError(reason)
    return None


def standalone_llm_requests(call: Call, request: LLMRequest) -> Any:
    """Flow of ``llm.request_intercepts``: chain (no codec), Dynamo headers, then ``traceparent`` if any."""
    from nemo_relay._core.propagation import capture_traceparent
    from nemo_relay._core.values import LLMRequestInterceptOutcome

    prepared = yield from chain.llm_requests(call.view[registry.LLM_REQUEST_INTERCEPT], call.name, request, None, False)
    final = with_dynamo_headers(prepared.request, call.top)
    with contextlib.suppress(RuntimeError):  # no emitted scope to continue from: leave the header alone
        final = with_traceparent(final, capture_traceparent())
    return LLMRequestInterceptOutcome(final, None, prepared.marks)
