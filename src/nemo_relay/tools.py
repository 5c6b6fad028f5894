"""Tool calls: managed execution through the middleware pipeline, or a manual start/end lifecycle.

``execute`` runs a tool through conditional guardrails, request intercepts and execution
intercepts, and records a ``tool`` start and end event; ``call``/``call_end`` only record. Tool calls
do not push scopes: events emitted inside a tool belong to the enclosing scope.
"""

from __future__ import annotations

from nemo_relay._core import aio as _aio
from nemo_relay._core import args as _args
from nemo_relay._core import calls as _calls
from nemo_relay._core import chain as _chain
from nemo_relay._core import managed as _managed
from nemo_relay._core import registry as _registry
from nemo_relay._core.handles import ScopeHandle, ToolHandle
from nemo_relay._core.jsonconv import copy_json as _copy_json
from nemo_relay._core.jsonconv import to_json as _to_json
from nemo_relay._core.types import Json, ToolAttributes
from nemo_relay._core.values import ToolExecutionResult

TYPE_CHECKING = False  # `typing` and `datetime` cost milliseconds at import; annotations do not need them
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable
    from datetime import datetime

__all__ = ["call", "call_end", "conditional_execution", "execute", "request_intercepts"]


def call(
    name: str,
    args: Json,
    *,
    handle: ScopeHandle | None = None,
    attributes: ToolAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    tool_call_id: str | None = None,
    timestamp: datetime | None = None,
) -> ToolHandle:
    """Record the start of a tool call you execute yourself (no middleware runs).

    Emits a ``tool`` start event whose ``data`` is ``args`` after the tool sanitize-request
    guardrails, plus a ``skill.load`` mark when the call reads an agent skill.

    Args:
        name: Tool name.
        args: JSON arguments (converted now; later mutation does not affect the event).
        handle: Parent scope; defaults to the current top.
        attributes: Tool flags (``ToolAttributes.REMOTE``).
        data: Kept on the handle; used as the end payload when the sanitized result is null.
        metadata: Start metadata, merged into the end metadata.
        tool_call_id: The model's tool-call id, recorded in ``category_profile.tool_call_id``.
        timestamp: Timezone-aware start time; defaults to now.

    Returns:
        The handle to pass to ``call_end``.

    Raises:
        ValueError: A payload is not JSON-convertible, or ``timestamp`` is naive.
        TypeError: An argument has the wrong type.
    """
    return _calls.tool_call(name, args, handle, attributes, data, metadata, tool_call_id, timestamp)


def call_end(
    handle: ToolHandle,
    result: ToolExecutionResult[Json],
    *,
    data: Json | None = None,
    metadata: Json | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record the end of a tool call started with ``call``.

    The end event's ``data`` is ``result.result`` after the tool sanitize-response guardrails (``data``
    when that is null); ``result.annotation`` becomes ``category_profile.tool_result_annotation``.
    Sanitizer failures are reported, never raised.

    Args:
        handle: The handle returned by ``call``.
        result: The tool's result.
        data: Fallback payload when the sanitized result is null.
        metadata: Merged over the start metadata.
        timestamp: Timezone-aware end time; defaults to now (after the start).
    """
    _calls.tool_call_end(handle, result, data, metadata, timestamp)


def execute(
    name: str,
    args: Json,
    func: Callable[[Json], ToolExecutionResult[Json] | Awaitable[ToolExecutionResult[Json]]],
    *,
    handle: ScopeHandle | None = None,
    attributes: ToolAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    tool_call_id: str | None = None,
) -> asyncio.Future[ToolExecutionResult[Json]]:
    """Run a tool through the managed pipeline; must be called inside a running event loop.

    Order: conditional-execution guardrails (a string verdict rejects the call), request intercepts,
    the tool start event, execution intercepts around ``func(args)``, the tool end event, then pending
    marks. The call starts at once on the caller's loop; await the returned future for the result.

    Args:
        name: Tool name.
        args: JSON arguments (converted now; conversion errors raise here).
        func: The tool: ``func(args)`` returns (or resolves to) a ``ToolExecutionResult``.
        handle: Parent scope; defaults to the current top.
        attributes: Tool flags.
        data: End payload of a failed call.
        metadata: Metadata of the start and end events (and of guardrail and rejection events).
        tool_call_id: The model's tool-call id.

    Returns:
        A future of the unsanitized ``ToolExecutionResult``.

    Raises:
        RuntimeError: No running event loop (raised here); at the await: ``guardrail rejected: <reason>``,
            ``internal error: <Type>: <message>`` when a callback raised, ``invalid argument: ...`` when a
            callback broke the contract (for example returned a raw dict).
        ValueError: ``args``, ``data`` or ``metadata`` is not JSON-convertible (raised here).
    """
    loop = _aio.require_loop("tools.execute()")
    if type(name) is not str:
        name = _args.text(name, "name")
    if not callable(func):  # checked inline: this runs on every call
        _args.function(func, "func")  # type: ignore[unreachable]  # untyped callers
    if handle is not None and type(handle) is not ScopeHandle:
        _args.expect(handle, ScopeHandle, "handle")
    attrs = 0 if attributes is None else _args.bits(attributes, ToolAttributes)
    if tool_call_id is not None and type(tool_call_id) is not str:
        tool_call_id = _args.text(tool_call_id, "tool_call_id")
    data_json = None if data is None else _to_json(data)
    metadata_json = None if metadata is None else _to_json(metadata)
    return _managed.execute_tool(  # type: ignore[no-any-return]
        loop, name, handle, attrs, data_json, metadata_json, args, func, tool_call_id
    )


def request_intercepts(name: str, args: Json) -> Json | Awaitable[Json]:
    """Run only the tool request intercepts and return the rewritten arguments.

    Outside an event loop the chain runs now and the result is returned; inside one, an awaitable is
    returned (and async intercepts are allowed).

    Raises:
        RuntimeError: An intercept raised (``internal error: <Type>: <message>``), or returned an
            awaitable outside an event loop.
    """
    name = _args.text(name, "name")
    call_ = _managed.standalone_call(name)
    flow = _chain.tool_requests(call_.view[_registry.TOOL_REQUEST_INTERCEPT], name, _to_json(args))
    return _managed.run_flow(flow)  # type: ignore[no-any-return]


def conditional_execution(name: str, args: Json) -> Awaitable[None] | None:
    """Run only the tool conditional-execution guardrails (recording their guardrail scope events).

    Returns None when every guardrail allows the call (an awaitable of None inside an event loop).

    Raises:
        RuntimeError: ``guardrail rejected: <reason>`` (no rejection mark is emitted), or a guardrail
            error.
    """
    name = _args.text(name, "name")
    args_json = _to_json(args)
    call_ = _managed.standalone_call(name)
    flow = _chain.conditions(
        call_.view[_registry.TOOL_CONDITIONAL_EXECUTION],
        call_.emitter(),
        "tool",
        name,
        lambda entry: entry.callback(name, _copy_json(args_json)),
    )
    return _managed.run_flow(_managed.rejecting(flow))  # type: ignore[no-any-return]
