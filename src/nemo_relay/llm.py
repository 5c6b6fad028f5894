"""LLM calls: managed execution (buffered or streaming) through the middleware pipeline, or manual.

``execute`` and ``stream_execute`` run a provider call through conditional guardrails, request
intercepts (with an optional codec), header injection (``x-dynamo-session-id``, ``traceparent``) and
execution intercepts, and record ``llm`` start and end events. Credential headers never appear in
events. ``call``/``call_end`` only record.
"""

from __future__ import annotations

from nemo_relay._core import aio as _aio
from nemo_relay._core import args as _args
from nemo_relay._core import calls as _calls
from nemo_relay._core import chain as _chain
from nemo_relay._core import llmcalls as _llmcalls
from nemo_relay._core import managed as _managed
from nemo_relay._core import registry as _registry
from nemo_relay._core.handles import LLMHandle, ScopeHandle
from nemo_relay._core.jsonconv import to_json as _to_json
from nemo_relay._core.stream import LlmStream
from nemo_relay._core.types import Json, LLMAttributes
from nemo_relay._core.values import LLMRequest, LLMRequestInterceptOutcome

TYPE_CHECKING = False  # `typing` and `datetime` cost milliseconds at import; annotations do not need them
if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
    from datetime import datetime

__all__ = ["LlmStream", "call", "call_end", "conditional_execution", "execute", "request_intercepts", "stream_execute"]


def call(
    name: str,
    request: LLMRequest,
    *,
    handle: ScopeHandle | None = None,
    attributes: LLMAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    model_name: str | None = None,
    timestamp: datetime | None = None,
) -> LLMHandle:
    """Record the start of an LLM call you make yourself (no middleware runs).

    The start event's ``data`` is ``{"headers", "content"}`` of ``request`` without credential headers,
    after the LLM sanitize-request guardrails.

    Args:
        name: Call name.
        request: The provider request.
        handle: Parent scope; defaults to the current top.
        attributes: LLM flags (``LLMAttributes.STREAMING`` ...).
        data: Kept on the handle; used as the end payload when the response is null.
        metadata: Start metadata, merged into the end metadata.
        model_name: Recorded in ``category_profile.model_name``.
        timestamp: Timezone-aware start time; defaults to now.

    Returns:
        The handle to pass to ``call_end``.
    """
    return _llmcalls.llm_call(name, request, handle, attributes, data, metadata, model_name, timestamp)


def call_end(
    handle: LLMHandle,
    response: Json,
    *,
    data: Json | None = None,
    metadata: Json | None = None,
    annotated_response: object | Mapping[str, Json] | None = None,
    response_codec: object | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record the end of an LLM call started with ``call`` (``otel.status_code`` ``"OK"`` is added).

    Sanitizer and codec failures are reported, never raised.

    Args:
        handle: The handle returned by ``call``.
        response: The provider response (``data`` is used when it is null).
        data: Fallback payload.
        metadata: Merged over the start metadata.
        annotated_response: A decoded view of the response, recorded as ``annotated_response``.
        response_codec: Decodes the (sanitized) response for the end event's annotation.
        timestamp: Timezone-aware end time; defaults to now (after the start).
    """
    _llmcalls.llm_call_end(handle, response, data, metadata, annotated_response, response_codec, timestamp)


def _call(
    name: object, request: object, handle: object, attributes: object, data: object, metadata: object,
    model_name: object,
) -> tuple[_calls.Call, str | None]:  # fmt: skip
    name = _args.text(name, "name")
    _args.expect(request, LLMRequest, "request")
    if handle is not None:
        _args.expect(handle, ScopeHandle, "handle")
    attrs = _args.bits(attributes, LLMAttributes)
    model = _args.optional_text(model_name, "model_name")
    data_json = None if data is None else _to_json(data)
    metadata_json = None if metadata is None else _to_json(metadata)
    return _calls.Call(name, handle, attrs, data_json, metadata_json), model  # type: ignore[arg-type]


def execute(
    name: str,
    request: LLMRequest,
    func: Callable[[LLMRequest], Json | Awaitable[Json]],
    *,
    handle: ScopeHandle | None = None,
    attributes: LLMAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    model_name: str | None = None,
    codec: object | None = None,
    response_codec: object | None = None,
) -> asyncio.Future[Json]:
    """Run a buffered provider call through the managed pipeline; must be called inside a running loop.

    Order: conditional guardrails, codec decode and request intercepts, Dynamo session headers, codec
    encode, the LLM start event (and request-intercept pending marks), ``traceparent`` injection,
    execution intercepts around ``func(request)``, the LLM end event.

    Args:
        name: Call name.
        request: The provider request.
        func: The provider call: ``func(request)`` returns (or resolves to) the JSON response.
        handle: Parent scope; defaults to the current top.
        attributes: LLM flags.
        data: Fallback end payload of a failed call.
        metadata: Metadata of the start and end events.
        model_name: Recorded in ``category_profile.model_name``.
        codec: Request codec (``decode``/``encode``); with one, intercepts edit the annotated request.
        response_codec: Decodes the response for the end event's annotation.

    Returns:
        A future of the raw response (unsanitized).

    Raises:
        RuntimeError: No running event loop (raised here); at the await: ``guardrail rejected: ...``,
            ``internal error: ...`` when a callback raised.
    """
    loop = _aio.require_loop("llm.execute()")
    _args.function(func, "func")
    call_, model = _call(name, request, handle, attributes, data, metadata, model_name)
    return _managed.execute_llm(loop, call_, request, func, model, codec, response_codec)  # type: ignore[no-any-return]


def stream_execute(
    name: str,
    request: LLMRequest,
    func: Callable[[LLMRequest], AsyncIterator[Json] | Awaitable[AsyncIterator[Json]]],
    collector: Callable[[Json], None],
    finalizer: Callable[[], Json],
    *,
    handle: ScopeHandle | None = None,
    attributes: LLMAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    model_name: str | None = None,
    codec: object | None = None,
    response_codec: object | None = None,
) -> asyncio.Future[LlmStream]:
    """Run a streaming provider call through the managed pipeline; must be called inside a running loop.

    Await the result for an ``LlmStream``; iterate it for the chunks. Each chunk emits an ``llm.chunk``
    mark and is passed (as a copy) to ``collector``. When the stream ends, ``finalizer()`` gives the end
    event's payload: OK when exhausted, ERROR with the exception type when the producer or collector
    fails, ERROR ``stream dropped before clean completion`` when it is closed or abandoned early.

    Raises:
        RuntimeError: No running event loop (raised here); at the await: guardrail rejections and
            errors raised before the stream was produced.
    """
    loop = _aio.require_loop("llm.stream_execute()")
    _args.function(func, "func")
    _args.function(collector, "collector")
    _args.function(finalizer, "finalizer")
    call_, model = _call(name, request, handle, attributes, data, metadata, model_name)
    pipeline = _managed.stream_pipeline(call_, request, func, collector, finalizer, model, codec, response_codec)
    return _managed.start(loop, pipeline)  # type: ignore[no-any-return]


def request_intercepts(
    name: str, request: LLMRequest
) -> LLMRequestInterceptOutcome | Awaitable[LLMRequestInterceptOutcome]:
    """Run only the LLM request intercepts (no codec), then header injection; pending marks are returned.

    Outside an event loop the outcome is returned now; inside one, an awaitable of it.
    """
    name = _args.text(name, "name")
    _args.expect(request, LLMRequest, "request")
    call_ = _managed.standalone_call(name)
    flow = _managed.standalone_llm_requests(call_, request)
    return _managed.run_flow(flow)  # type: ignore[no-any-return]


def conditional_execution(request: LLMRequest) -> Awaitable[None] | None:
    """Run only the LLM conditional-execution guardrails (recording their guardrail scope events).

    Raises:
        RuntimeError: ``guardrail rejected: <reason>`` (no rejection mark), or a guardrail error.
    """
    _args.expect(request, LLMRequest, "request")
    call_ = _managed.standalone_call("")
    flow = _chain.conditions(
        call_.view[_registry.LLM_CONDITIONAL_EXECUTION],
        call_.emitter(),
        "llm",
        None,
        lambda entry: entry.callback(request),
    )
    return _managed.run_flow(_managed.rejecting(flow))  # type: ignore[no-any-return]
