"""Managed LLM streams: one ``llm.chunk`` mark per chunk, the collector, and exactly one end event.

The stream closes its LLM call exactly once, whichever way it ends: exhausted (OK), a producer,
collector or finalizer error (ERROR with the exception type; interrupts such as ``KeyboardInterrupt``
too, and they reach the consumer unchanged), the consumer's task being cancelled while it waits for a
chunk or the collector (ERROR "LLM execution cancelled", like a cancelled ``llm.execute``), ``aclose()``
or being abandoned by its consumer (``break`` then garbage collection: ERROR "stream dropped before
clean completion"). The end event carries the finalizer's output (the partial response when the
stream was cut short). No context variable token is held across a ``yield``.
"""

from __future__ import annotations

import contextlib
from contextvars import copy_context

from nemo_relay._core import aio, registry
from nemo_relay._core.calls import end_time, failure_metadata
from nemo_relay._core.dispatch import publish
from nemo_relay._core.errors import InternalError, JsonConversionError
from nemo_relay._core.events import MarkEvent
from nemo_relay._core.ids import new_id, time_ns
from nemo_relay._core.jsonconv import copy_json, to_json
from nemo_relay._core.llmcalls import close_llm, decode_response
from nemo_relay._core.policy import callback_failed, rethrow
from nemo_relay._core.publish import report

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from nemo_relay._core.calls import Call
    from nemo_relay._core.handles import LLMHandle
    from nemo_relay._core.types import JsonValue

DROPPED = "stream dropped before clean completion"
CANCELLED = "LLM execution cancelled"


class LlmStream:
    """Async iterator over a managed LLM stream's chunks (``async for chunk in stream``).

    Call ``aclose()`` (idempotent) to stop early; the producer is closed and the call is recorded as
    dropped. Awaiting the stream returns itself.
    """

    __slots__ = (
        "_call", "_handle", "_source", "_collector", "_finalizer", "_settle", "_codec", "_index", "_done", "_loop",
    )  # fmt: skip

    def __init__(
        self,
        call: Call,
        handle: LLMHandle,
        source: Any,
        collector: Callable[[JsonValue], Any],
        finalizer: Callable[[], Any],
        settle: Callable[[], None],
        response_codec: object = None,
    ) -> None:
        self._call = call
        self._handle = handle
        self._source = source
        self._collector = collector
        self._finalizer = finalizer
        self._settle = settle
        self._codec = response_codec
        self._index = 0
        self._done = False
        self._loop = aio.running_loop()

    def __aiter__(self) -> LlmStream:
        return self

    def __await__(self) -> Generator[Any, None, LlmStream]:
        return _ready(self).__await__()

    async def __anext__(self) -> JsonValue:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            self._finish(None)
            raise
        except aio.cancelled_error_type():  # the consumer's task was cancelled while the producer ran
            try:
                await self._close_source()
            finally:
                self._finish(CANCELLED)
            raise
        except BaseException as exc:
            self._finish(exc)
            rethrow(exc)  # an interrupt unchanged (never chained to itself)
        try:
            chunk = to_json(chunk)
        except JsonConversionError as exc:
            error = InternalError(f"ValueError: {exc}")
            try:
                await self._close_source()
            finally:
                self._finish(error)
            raise error from exc
        self._mark(chunk)
        try:
            collected = self._collector(copy_json(chunk))
            if aio.is_awaitable(collected):
                await collected
        except BaseException as exc:
            try:
                await self._close_source()
            finally:
                self._finish(CANCELLED if isinstance(exc, aio.cancelled_error_type()) else exc)
            rethrow(exc)
        return chunk

    async def aclose(self) -> None:
        """Stop the stream: close the producer (waiting for it) and record the call as dropped."""
        if self._done:
            return
        try:
            await self._close_source()
        finally:
            self._finish(DROPPED)

    async def _close_source(self) -> None:
        close = getattr(self._source, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception as exc:  # a failing producer close must not hide the real outcome
                report(f"nemo_relay: closing the LLM stream producer failed: {type(exc).__name__}: {exc}")

    def _mark(self, chunk: JsonValue) -> None:
        call = self._call
        data = summarize_chunk(chunk)
        data["chunk_index"] = self._index
        self._index += 1
        if call.view[registry.SUBSCRIBER]:
            publish(
                MarkEvent(
                    new_id(), self._handle._id, time_ns(), "llm.chunk", data, None, None, call.view,
                    copy_context(), call.top,
                )
            )  # fmt: skip

    def _finish(self, outcome: BaseException | str | None) -> None:
        """Record the end exactly once: ``None`` is a clean end, a string a drop, an exception a failure.

        An interrupt raised by the finalizer is recorded as the outcome, then re-raised.
        """
        if self._done:
            return
        self._done = True
        self._settle()
        call, handle = self._call, self._handle
        interrupt = None
        try:
            data = self._final_data()
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: recorded as the outcome, then re-raised
            data = None
            outcome = interrupt = exc
        annotation = None
        if outcome == DROPPED and self._codec is not None and data is not None:
            # Decoded here (not on the dispatcher) because it decides the status.
            annotation = decode_response(self._codec, data)
            if _complete(annotation):
                outcome = None  # the provider said it was done: nothing was really dropped
        if outcome is None:
            metadata: JsonValue = {"otel.status_code": "OK"}
        elif isinstance(outcome, str):
            metadata = {"otel.status_code": "ERROR", "otel.status_description": outcome}
        else:
            metadata = failure_metadata(callback_failed(outcome))
        metadata = _merge(handle._metadata, _merge(call.metadata, metadata))
        end = end_time(handle._start, None)
        close_llm(call, handle, data, handle._data, metadata, end, self._codec, annotation)
        if interrupt is not None:
            raise interrupt

    def _final_data(self) -> JsonValue:
        """The finalizer's JSON output; None (reported) when it fails. Interrupts propagate."""
        try:
            value = self._finalizer()
            return to_json(value)
        except JsonConversionError as exc:
            report(f"nemo_relay: py_to_json failed in finalizer: ValueError: {exc}")
        except Exception as exc:
            report(f"nemo_relay: Python finalizer callable failed: {type(exc).__name__}: {exc}")
        return None

    def __del__(self) -> None:
        # Abandoned without aclose() (e.g. `break` out of `async for`): close the call exactly once.
        if self._done:
            return
        try:
            self._finish(DROPPED)
        except Exception:
            return
        close = getattr(self._source, "aclose", None)
        loop = self._loop
        if close is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_close_later, loop, close)


def _complete(annotation: JsonValue) -> bool:
    """Whether a decoded response carries an authoritative finish reason and usage."""
    return type(annotation) is dict and bool(annotation.get("finish_reason")) and bool(annotation.get("usage"))


async def _ready(stream: LlmStream) -> LlmStream:
    return stream


def _close_later(loop: Any, close: Callable[[], Any]) -> None:
    try:
        awaitable = close()
    except Exception:
        return
    if aio.is_awaitable(awaitable):
        loop.create_task(_swallow(awaitable))


async def _swallow(awaitable: Any) -> None:
    with contextlib.suppress(Exception):
        await awaitable


def _merge(base: JsonValue, update: JsonValue) -> JsonValue:
    if update is None:
        return base
    if type(base) is dict and type(update) is dict:
        return {**base, **update}
    return update


# --- chunk summaries --------------------------------------------------------------------------------------

_ANTHROPIC_EVENTS = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
     "message_stop", "ping"}
)  # fmt: skip


def summarize_chunk(chunk: JsonValue) -> dict[str, JsonValue]:
    """The ``llm.chunk`` mark payload: provider, event type, indices, finish reasons and usage when present."""
    if type(chunk) is not dict:
        return {"provider": "unknown"}
    kind = chunk.get("type")
    if chunk.get("object") == "chat.completion.chunk":
        return _openai_chat(chunk)
    if isinstance(kind, str) and kind.startswith("response."):
        return _openai_responses(chunk, kind)
    if isinstance(kind, str) and kind in _ANTHROPIC_EVENTS:
        return _anthropic(chunk, kind)
    return {"provider": "unknown"}


def _count(value: object) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _put_counts(target: dict[str, JsonValue], source: object, names: tuple[tuple[str, str], ...]) -> None:
    if type(source) is dict:
        for field, name in names:
            value = _count(source.get(field))
            if value is not None:
                target[name] = value


def _openai_chat(chunk: dict[str, JsonValue]) -> dict[str, JsonValue]:
    data: dict[str, JsonValue] = {"provider": "openai_chat_completions", "event_type": "chat.completion.chunk"}
    choices = chunk.get("choices")
    if type(choices) is list:
        indices: list[JsonValue] = []
        reasons: list[JsonValue] = []
        for choice in choices:
            if type(choice) is not dict:
                continue
            index = _count(choice.get("index"))
            if index is not None:
                indices.append(index)
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                reasons.append(
                    {"finish_reason": reason} if index is None else {"choice_index": index, "finish_reason": reason}
                )
        if indices:
            data["choice_indices"] = indices
        if reasons:
            data["finish_reasons"] = reasons
    usage: dict[str, JsonValue] = {}
    raw = chunk.get("usage")
    _put_counts(usage, raw, (("prompt_tokens", "prompt_tokens"), ("completion_tokens", "completion_tokens"),
                             ("total_tokens", "total_tokens")))  # fmt: skip
    if type(raw) is dict:
        _put_counts(usage, raw.get("prompt_tokens_details"), (("cached_tokens", "cache_read_tokens"),))
    if usage:
        data["usage"] = usage
    return data


def _openai_responses(chunk: dict[str, JsonValue], kind: str) -> dict[str, JsonValue]:
    data: dict[str, JsonValue] = {"provider": "openai_responses", "event_type": kind}
    indices: dict[str, JsonValue] = {}
    _put_counts(indices, chunk, (("output_index", "output_index"), ("content_index", "content_index")))
    if indices:
        data["indices"] = indices
    response = chunk.get("response")
    if type(response) is dict and isinstance(response.get("status"), str):
        data["status"] = response["status"]
    raw = chunk.get("usage")
    if type(raw) is not dict and type(response) is dict:
        raw = response.get("usage")  # a top-level usage wins over the nested one
    usage: dict[str, JsonValue] = {}
    _put_counts(usage, raw, (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens"),
                             ("total_tokens", "total_tokens")))  # fmt: skip
    if type(raw) is dict:
        _put_counts(usage, raw.get("input_tokens_details"), (("cached_tokens", "cache_read_tokens"),))
    if usage:
        data["usage"] = usage
    return data


def _anthropic(chunk: dict[str, JsonValue], kind: str) -> dict[str, JsonValue]:
    data: dict[str, JsonValue] = {"provider": "anthropic_messages", "event_type": kind}
    index = _count(chunk.get("index"))
    if index is not None:
        data["indices"] = {"index": index}
    delta = chunk.get("delta")
    message = chunk.get("message")
    for holder in (delta, message):
        if type(holder) is dict and isinstance(holder.get("stop_reason"), str):
            data["stop_reason"] = holder["stop_reason"]
            break
    raw = chunk.get("usage")
    if type(raw) is not dict and type(message) is dict:
        raw = message.get("usage")
    usage: dict[str, JsonValue] = {}
    _put_counts(usage, raw, (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens"),
                             ("cache_read_input_tokens", "cache_read_tokens"),
                             ("cache_creation_input_tokens", "cache_write_tokens")))  # fmt: skip
    if "prompt_tokens" in usage and "completion_tokens" in usage:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]  # type: ignore[operator]
    if usage:
        data["usage"] = usage
    return data
