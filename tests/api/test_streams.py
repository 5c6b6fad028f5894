"""Managed LLM streams (``llm.stream_execute``): chunks, ``llm.chunk`` marks, the collector and finalizer, the end
event for every way a stream can finish, stream execution intercepts and invalid producers.

Expected payloads and messages were confirmed against the reference wheel (nemo-relay 0.8.4). Intended
differences: the reference prefetches chunks ahead of the consumer (ours does not), ``await stream`` returns the
stream (the 0.8.4 wheel lacks ``__await__``), and non-callable arguments raise ``TypeError`` at call time.
"""

from __future__ import annotations

import asyncio
import gc
import re

import pytest

import nemo_relay
from nemo_relay import (
    LLMAttributes,
    LLMRequest,
    LLMRequestInterceptOutcome,
    PendingMarkSpec,
    ScopeType,
    guardrails,
    intercepts,
    llm,
    scope,
    subscribers,
)

INACTIVE = "invalid argument: execution continuation is no longer active"
DROPPED = {"otel.status_code": "ERROR", "otel.status_description": "stream dropped before clean completion"}
OK = {"otel.status_code": "OK"}

pytestmark = pytest.mark.timeout(30)


# --- helpers ----------------------------------------------------------------------------------------------


def hex_of(uuid: str) -> str:
    return uuid.replace("-", "")


def phase(event: object) -> str:
    return getattr(event, "scope_category", "mark")


async def delivered(events) -> list:
    await subscribers.flush_async()
    return list(events)


def call_events(evs: list, name: str = "stream") -> list:
    return [e for e in evs if e.name == name and getattr(e, "category", None) == "llm"]


def chunk_marks(evs: list) -> list:
    return [e for e in evs if e.name == "llm.chunk" and phase(e) == "mark"]


def request(headers=None, content=None) -> LLMRequest:
    return LLMRequest({} if headers is None else headers, {"messages": []} if content is None else content)


def producer(*chunks):
    async def produce(req):
        for chunk in chunks:
            yield chunk

    return produce


def ignore(chunk) -> None:
    return None


async def open_stream(func, collector=ignore, finalizer=lambda: None, **kwargs):
    return await llm.stream_execute(
        "stream", kwargs.pop("req", None) or request(), func, collector, finalizer, **kwargs
    )


class Closing:
    """An async iterator over ``items`` that records being closed (and waits a step while closing)."""

    def __init__(self, items, log):
        self.items = list(items)
        self.log = log

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)

    async def aclose(self):
        await asyncio.sleep(0)
        self.log.append("closed")


# --- chunks, collector, marks -------------------------------------------------------------------------------------


CHUNKS = [{"delta": "he"}, {"delta": "llo", "n": [1, 2]}, "text", 5, 2.5, None, [1, {"a": True}]]


async def test_chunks_are_yielded_unchanged_and_collected_once_each(events):
    collected = []
    stream = await open_stream(producer(*CHUNKS), collected.append, lambda: {"count": len(collected)})
    assert [chunk async for chunk in stream] == CHUNKS
    assert collected == CHUNKS
    _, end = call_events(await delivered(events))
    assert end.data == {"count": len(CHUNKS)}
    assert end.metadata == OK


async def test_collector_receives_a_copy(events):
    first = {"delta": "a", "nested": {"k": [1]}}

    def mutate(chunk):
        chunk["delta"] = "mutated"
        if "nested" in chunk:
            chunk["nested"]["k"].append(2)

    stream = await open_stream(producer(first, {"delta": "b"}), mutate)
    got = [chunk async for chunk in stream]
    assert got == [{"delta": "a", "nested": {"k": [1]}}, {"delta": "b"}]
    assert first == {"delta": "a", "nested": {"k": [1]}}


async def test_one_chunk_mark_per_chunk_then_the_end(events):
    stream = await open_stream(producer(*CHUNKS), model_name="m", metadata={"k": 1})
    async for _ in stream:
        pass
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == (
        [("stream", "start")] + [("llm.chunk", "mark")] * len(CHUNKS) + [("stream", "end")]
    )
    start, end = evs[0], evs[-1]
    assert start.uuid == end.uuid
    assert start.data == {"headers": {}, "content": {"messages": []}}
    assert start.category_profile == end.category_profile == {"model_name": "m"}
    assert end.metadata == {"k": 1, "otel.status_code": "OK"}
    marks = chunk_marks(evs)
    assert [m.data for m in marks] == [{"chunk_index": i, "provider": "unknown"} for i in range(len(CHUNKS))]
    for mark in marks:
        assert mark.parent_uuid == start.uuid
        assert mark.category is None and mark.category_profile is None and mark.metadata is None
    assert len({m.uuid for m in marks}) == len(CHUNKS)


async def test_streaming_attributes_are_recorded(events):
    stream = await open_stream(producer(1), attributes=LLMAttributes(LLMAttributes.STREAMING))
    async for _ in stream:
        pass
    start, end = call_events(await delivered(events))
    assert start.attributes == end.attributes == ["streaming"]


SUMMARIES = [
    (
        "openai-chat",
        {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": "hi"}}, {"index": 1, "delta": {}, "finish_reason": "stop"}],
        },
        {
            "provider": "openai_chat_completions",
            "event_type": "chat.completion.chunk",
            "choice_indices": [0, 1],
            "finish_reasons": [{"choice_index": 1, "finish_reason": "stop"}],
        },
    ),
    (
        "openai-chat-usage",
        {
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        },
        {
            "provider": "openai_chat_completions",
            "event_type": "chat.completion.chunk",
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        },
    ),
    (
        "openai-chat-partial-usage",
        {"object": "chat.completion.chunk", "choices": [{"delta": {}}], "usage": {"prompt_tokens": 3}},
        {"provider": "openai_chat_completions", "event_type": "chat.completion.chunk", "usage": {"prompt_tokens": 3}},
    ),
    (
        "openai-chat-null-finish-reason",
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "finish_reason": None}]},
        {"provider": "openai_chat_completions", "event_type": "chat.completion.chunk", "choice_indices": [0]},
    ),
    (
        "openai-chat-bare",
        {"object": "chat.completion.chunk", "id": "c1", "model": "gpt"},
        {"provider": "openai_chat_completions", "event_type": "chat.completion.chunk"},
    ),
    (
        "openai-chat-finish-without-index",
        {"object": "chat.completion.chunk", "choices": [{"finish_reason": "stop"}]},
        {
            "provider": "openai_chat_completions",
            "event_type": "chat.completion.chunk",
            "finish_reasons": [{"finish_reason": "stop"}],
        },
    ),
    (
        "openai-chat-cached-tokens",
        {
            "object": "chat.completion.chunk",
            "usage": {"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2}},
        },
        {
            "provider": "openai_chat_completions",
            "event_type": "chat.completion.chunk",
            "usage": {"prompt_tokens": 1, "cache_read_tokens": 2},
        },
    ),
    (
        "openai-chat-invalid-counts",
        {
            "object": "chat.completion.chunk",
            "usage": {"prompt_tokens": True, "completion_tokens": -1, "total_tokens": 3.5},
        },
        {"provider": "openai_chat_completions", "event_type": "chat.completion.chunk"},
    ),
    (
        "openai-chat-invalid-indices",
        {"object": "chat.completion.chunk", "choices": [{"index": 0}, "x", {"index": -3}, {"index": 1.5}]},
        {"provider": "openai_chat_completions", "event_type": "chat.completion.chunk", "choice_indices": [0]},
    ),
    (
        "choices-without-object",
        {"choices": [{"index": 2, "finish_reason": "length"}]},
        {"provider": "unknown"},
    ),
    (
        "openai-chat-completion-object",
        {"object": "chat.completion", "choices": [{"index": 0}]},
        {"provider": "unknown"},
    ),
    (
        "openai-responses-delta",
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 1, "delta": "x"},
        {
            "provider": "openai_responses",
            "event_type": "response.output_text.delta",
            "indices": {"output_index": 0, "content_index": 1},
        },
    ),
    (
        "openai-responses-summary-index",
        {"type": "response.reasoning_summary_text.delta", "output_index": 2, "summary_index": 3},
        {
            "provider": "openai_responses",
            "event_type": "response.reasoning_summary_text.delta",
            "indices": {"output_index": 2},
        },
    ),
    (
        "openai-responses-completed",
        {
            "type": "response.completed",
            "response": {"status": "completed", "usage": {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11}},
        },
        {
            "provider": "openai_responses",
            "event_type": "response.completed",
            "status": "completed",
            "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
        },
    ),
    (
        "openai-responses-cached-tokens",
        {
            "type": "response.completed",
            "response": {
                "usage": {"input_tokens": 5, "output_tokens": 6, "input_tokens_details": {"cached_tokens": 1}}
            },
        },
        {
            "provider": "openai_responses",
            "event_type": "response.completed",
            "usage": {"prompt_tokens": 5, "completion_tokens": 6, "cache_read_tokens": 1},
        },
    ),
    (
        "openai-responses-top-level-usage",
        {"type": "response.completed", "usage": {"input_tokens": 5}},
        {"provider": "openai_responses", "event_type": "response.completed", "usage": {"prompt_tokens": 5}},
    ),
    (
        "openai-responses-created",
        {"type": "response.created", "response": {"id": "r"}},
        {"provider": "openai_responses", "event_type": "response.created"},
    ),
    (
        "responses-prefix-only",
        {"type": "responses.x"},
        {"provider": "unknown"},
    ),
    (
        "anthropic-message-start",
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 9, "output_tokens": 1}}},
        {
            "provider": "anthropic_messages",
            "event_type": "message_start",
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        },
    ),
    (
        "anthropic-message-start-input-only",
        {"type": "message_start", "message": {"usage": {"input_tokens": 9}}},
        {"provider": "anthropic_messages", "event_type": "message_start", "usage": {"prompt_tokens": 9}},
    ),
    (
        "anthropic-cache-tokens",
        {
            "type": "message_start",
            "message": {
                "usage": {
                    "input_tokens": 9,
                    "output_tokens": 0,
                    "cache_creation_input_tokens": 4,
                    "cache_read_input_tokens": 5,
                }
            },
        },
        {
            "provider": "anthropic_messages",
            "event_type": "message_start",
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 0,
                "total_tokens": 9,
                "cache_read_tokens": 5,
                "cache_write_tokens": 4,
            },
        },
    ),
    (
        "anthropic-content-block-start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"provider": "anthropic_messages", "event_type": "content_block_start", "indices": {"index": 0}},
    ),
    (
        "anthropic-content-block-delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "h"}},
        {"provider": "anthropic_messages", "event_type": "content_block_delta", "indices": {"index": 0}},
    ),
    (
        "anthropic-message-delta",
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}},
        {
            "provider": "anthropic_messages",
            "event_type": "message_delta",
            "stop_reason": "end_turn",
            "usage": {"completion_tokens": 15},
        },
    ),
    (
        "anthropic-message-delta-total",
        {"type": "message_delta", "usage": {"input_tokens": 2, "output_tokens": 15, "total_tokens": 100}},
        {
            "provider": "anthropic_messages",
            "event_type": "message_delta",
            "usage": {"prompt_tokens": 2, "completion_tokens": 15, "total_tokens": 17},
        },
    ),
    (
        "anthropic-stop-reason-in-message",
        {
            "type": "message_start",
            "message": {"stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2}},
        },
        {
            "provider": "anthropic_messages",
            "event_type": "message_start",
            "stop_reason": "end_turn",
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
    ),
    (
        "anthropic-message-stop",
        {"type": "message_stop"},
        {"provider": "anthropic_messages", "event_type": "message_stop"},
    ),
    (
        "anthropic-ping",
        {"type": "ping"},
        {"provider": "anthropic_messages", "event_type": "ping"},
    ),
    (
        "anthropic-error-event",
        {"type": "error", "error": {"type": "overloaded_error"}},
        {"provider": "unknown"},
    ),
    ("unknown-type", {"type": "other"}, {"provider": "unknown"}),
    ("plain-object", {"a": 1}, {"provider": "unknown"}),
    ("string", "text", {"provider": "unknown"}),
    ("number", 5, {"provider": "unknown"}),
    ("null", None, {"provider": "unknown"}),
    ("list", [1, 2], {"provider": "unknown"}),
]


@pytest.mark.parametrize(("chunk", "summary"), [case[1:] for case in SUMMARIES], ids=[case[0] for case in SUMMARIES])
async def test_chunk_mark_summaries(events, chunk, summary):
    stream = await open_stream(producer(chunk, chunk))
    assert [c async for c in stream] == [chunk, chunk]
    marks = chunk_marks(await delivered(events))
    assert [m.data for m in marks] == [{**summary, "chunk_index": 0}, {**summary, "chunk_index": 1}]


# --- how a stream ends -------------------------------------------------------------------------------------------


async def test_exhaustion_records_the_finalizer_output(events):
    finalized = []

    def finalizer():
        finalized.append(True)
        return {"text": "hello"}

    stream = await open_stream(producer("he", "llo"), finalizer=finalizer, metadata={"k": 1})
    assert await stream.__anext__() == "he"
    assert await stream.__anext__() == "llo"
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    await stream.aclose()  # after a clean end: nothing more is recorded
    assert finalized == [True]
    evs = await delivered(events)
    _, end = call_events(evs)
    assert evs[-1] is end
    assert end.data == {"text": "hello"}
    assert end.metadata == {"k": 1, "otel.status_code": "OK"}


async def test_null_finalizer_output_falls_back_to_data(events):
    stream = await open_stream(producer(1), finalizer=lambda: None, data={"fallback": True})
    async for _ in stream:
        pass
    _, end = call_events(await delivered(events))
    assert end.data == {"fallback": True}
    assert end.metadata == OK


async def test_response_sanitizer_applies_to_the_finalizer_output(events):
    guardrails.register_llm_sanitize_response("wrap", 1, lambda resp, ctx: {"sanitized": resp})
    stream = await open_stream(producer(1), finalizer=lambda: "full text")
    async for _ in stream:
        pass
    _, end = call_events(await delivered(events))
    assert end.data == {"sanitized": "full text"}


async def test_async_response_sanitizer_runs_during_finalization(events):
    loop = asyncio.get_running_loop()
    seen = []

    async def sanitize(resp, ctx):
        await asyncio.sleep(0)
        seen.append(asyncio.get_running_loop() is loop)
        return {"async": resp}

    guardrails.register_llm_sanitize_response("async", 1, sanitize)
    stream = await open_stream(producer(1), finalizer=lambda: "done")
    async for _ in stream:
        pass
    _, end = call_events(await delivered(events))
    assert end.data == {"async": "done"}
    assert seen == [True]


async def test_producer_error_mid_stream(events):
    async def failing(req):
        yield {"a": 1}
        raise ValueError("stream boom")

    stream = await open_stream(failing, finalizer=lambda: {"partial": True}, metadata={"m": 1})
    assert await stream.__anext__() == {"a": 1}
    with pytest.raises(RuntimeError, match="stream boom") as info:
        await stream.__anext__()
    assert str(info.value) == "internal error: ValueError: stream boom"
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("stream", "start"), ("llm.chunk", "mark"), ("stream", "end")]
    end = evs[-1]
    assert end.data == {"partial": True}
    assert end.metadata == {
        "m": 1,
        "otel.status_code": "ERROR",
        "otel.status_description": "internal error: ValueError: stream boom",
        "error.type": "internal_error",
        "exception.type": "ValueError",
    }


async def test_non_json_chunk_fails_the_stream(events):
    stream = await open_stream(producer({"a": 1}, object(), 3), finalizer=lambda: "fin")
    assert await stream.__anext__() == {"a": 1}
    with pytest.raises(RuntimeError) as info:
        await stream.__anext__()
    assert str(info.value) == "internal error: ValueError: Failed to convert to JSON: unsupported type object"
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    evs = await delivered(events)
    assert len(chunk_marks(evs)) == 1
    end = evs[-1]
    assert end.data == "fin"
    assert end.metadata == {
        "otel.status_code": "ERROR",
        "otel.status_description": "internal error: ValueError: Failed to convert to JSON: unsupported type object",
        "error.type": "internal_error",
    }


async def test_aclose_closes_the_producer_and_records_a_drop(events):
    log = []

    async def produce(req):
        try:
            for i in range(10):
                yield {"i": i}
        finally:
            await asyncio.sleep(0)
            log.append("finally")

    stream = await open_stream(produce, finalizer=lambda: {"fin": 1}, metadata={"m": 1})
    assert await stream.__anext__() == {"i": 0}
    assert await stream.__anext__() == {"i": 1}
    await stream.aclose()
    assert log == ["finally"]  # the producer finished closing before aclose returned
    await stream.aclose()
    assert log == ["finally"]
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [
        ("stream", "start"),
        ("llm.chunk", "mark"),
        ("llm.chunk", "mark"),
        ("stream", "end"),
    ]
    assert evs[-1].data == {"fin": 1}
    assert evs[-1].metadata == {"m": 1, **DROPPED}


async def test_aclose_waits_for_a_custom_iterator_close(events):
    log = []
    stream = await open_stream(lambda req: Closing([1, 2, 3], log), finalizer=lambda: "partial")
    assert await stream.__anext__() == 1
    await stream.aclose()
    assert log == ["closed"]
    _, end = call_events(await delivered(events))
    assert end.data == "partial"
    assert end.metadata == DROPPED


async def test_abandoned_stream_is_recorded_once_as_dropped(events):
    stream = await open_stream(producer(0, 1, 2, 3, 4), finalizer=lambda: "partial")
    async for _ in stream:
        break
    del stream
    gc.collect()
    ends: list = []
    for _ in range(500):  # the drop may be recorded asynchronously; wait for it (bounded)
        ends = [e for e in call_events(await delivered(events)) if phase(e) == "end"]
        if ends:
            break
        await asyncio.sleep(0.01)
    for _ in range(5):
        await asyncio.sleep(0)
    evs = await delivered(events)
    ends = [e for e in call_events(evs) if phase(e) == "end"]
    assert len(ends) == 1
    assert ends[0].data == "partial"
    assert ends[0].metadata == DROPPED
    assert evs[-1] is ends[0]


async def test_finalizer_raising_omits_the_end_data(events, capfd):
    def finalizer():
        raise KeyError("fin")

    stream = await open_stream(producer(1, 2), finalizer=finalizer)
    assert [c async for c in stream] == [1, 2]
    _, end = call_events(await delivered(events))
    assert end.data is None
    assert end.metadata == OK
    assert "nemo_relay: Python finalizer callable failed: KeyError: 'fin'" in capfd.readouterr().err


async def test_finalizer_returning_non_json_omits_the_end_data(events, capfd):
    stream = await open_stream(producer(1), finalizer=lambda: object())
    assert [c async for c in stream] == [1]
    _, end = call_events(await delivered(events))
    assert end.data is None
    assert end.metadata == OK
    assert "finalizer" in capfd.readouterr().err


@pytest.mark.parametrize("result", ["raises", "non-json"])
async def test_failed_finalizer_falls_back_to_data(events, result):
    def finalizer():
        if result == "raises":
            raise KeyError("fin")
        return object()

    stream = await open_stream(producer(1), finalizer=finalizer, data={"fallback": 1})
    assert [c async for c in stream] == [1]
    _, end = call_events(await delivered(events))
    assert end.data == {"fallback": 1}
    assert end.metadata == OK


@pytest.mark.parametrize("error", [ValueError("coll"), RuntimeError("coll")], ids=["ValueError", "RuntimeError"])
async def test_collector_failure_ends_the_stream(events, error):
    log = []

    def collector(chunk):
        raise error

    stream = await open_stream(lambda req: Closing([1, 2, 3], log), collector, finalizer=lambda: "f")
    with pytest.raises(RuntimeError) as info:
        await stream.__anext__()
    assert str(info.value) == f"internal error: {type(error).__name__}: coll"
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("stream", "start"), ("llm.chunk", "mark"), ("stream", "end")]
    assert evs[-1].data == "f"
    assert evs[-1].metadata == {
        "otel.status_code": "ERROR",
        "otel.status_description": f"internal error: {type(error).__name__}: coll",
        "error.type": "internal_error",
        "exception.type": type(error).__name__,
    }


async def test_await_stream_returns_the_stream_itself(events):
    stream = await open_stream(producer(1))
    assert await stream is stream
    assert stream.__aiter__() is stream
    assert [c async for c in stream] == [1]


# --- invalid producers and early failures --------------------------------------------------------------------


class Empty:
    def __aiter__(self):
        return self

    async def __anext__(self):
        raise StopAsyncIteration


class Broken:
    def __aiter__(self):
        return self

    async def __anext__(self):
        raise KeyError("direct")


async def test_invalid_iterator_fails_on_the_first_anext(events):
    stream = await open_stream(lambda req: object(), finalizer=lambda: "f")
    with pytest.raises(RuntimeError, match="__anext__") as info:
        await stream.__anext__()
    assert str(info.value) == "internal error: AttributeError: 'object' object has no attribute '__anext__'"
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("stream", "start"), ("stream", "end")]
    assert evs[-1].data == "f"
    assert evs[-1].metadata["exception.type"] == "AttributeError"
    assert evs[-1].metadata["otel.status_code"] == "ERROR"


async def test_sync_generator_is_not_an_async_iterator(events):
    def sync_gen(req):
        yield 1

    stream = await open_stream(sync_gen)
    with pytest.raises(RuntimeError, match="'generator' object has no attribute '__anext__'"):
        await stream.__anext__()


async def test_immediately_exhausted_iterator_is_an_empty_stream(events):
    stream = await open_stream(lambda req: Empty(), finalizer=lambda: "f")
    assert [c async for c in stream] == []
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("stream", "start"), ("stream", "end")]
    assert evs[-1].data == "f"
    assert evs[-1].metadata == OK


async def test_direct_anext_error_propagates_its_message(events):
    stream = await open_stream(lambda req: Broken(), finalizer=lambda: "f")
    with pytest.raises(RuntimeError, match=r"^internal error: KeyError: 'direct'$"):
        await stream.__anext__()
    _, end = call_events(await delivered(events))
    assert end.metadata["exception.type"] == "KeyError"


def _sync_failing(req):
    raise ValueError("sync func")


async def _async_failing(req):
    await asyncio.sleep(0)
    raise ValueError("async func")


@pytest.mark.parametrize(
    ("func", "message"),
    [(_sync_failing, "sync func"), (_async_failing, "async func")],
    ids=["sync", "async"],
)
async def test_func_errors_surface_at_the_await(events, func, message):
    finalized = []
    with pytest.raises(RuntimeError, match=rf"^internal error: ValueError: {message}$"):
        await open_stream(func, finalizer=lambda: finalized.append(1))
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("stream", "start"), ("stream", "end")]
    assert evs[-1].data is None
    assert evs[-1].metadata == {
        "otel.status_code": "ERROR",
        "otel.status_description": f"internal error: ValueError: {message}",
        "error.type": "internal_error",
        "exception.type": "ValueError",
    }
    assert finalized == []


async def test_async_func_may_return_an_iterator(events):
    async def func(req):
        await asyncio.sleep(0)
        return producer(1, 2)(req)

    stream = await open_stream(func, finalizer=lambda: "f")
    assert [c async for c in stream] == [1, 2]
    _, end = call_events(await delivered(events))
    assert end.metadata == OK


def test_stream_execute_requires_a_running_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        llm.stream_execute("stream", request(), producer(1), ignore, lambda: None)


@pytest.mark.parametrize("position", [2, 3, 4], ids=["func", "collector", "finalizer"])
async def test_non_callable_arguments_are_rejected(events, position):
    args = ["stream", request(), producer(1), ignore, lambda: None]
    args[position] = 5
    with pytest.raises(TypeError):
        llm.stream_execute(*args)
    assert await delivered(events) == []


async def test_guardrail_rejection_stops_the_stream_before_it_starts(events):
    called = []
    guardrails.register_llm_conditional_execution("deny", 1, lambda req: "no streaming")
    with pytest.raises(RuntimeError, match=r"^guardrail rejected: no streaming$"):
        await open_stream(lambda req: called.append(1), metadata={"m": 1})
    assert called == []
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("deny", "start"), ("deny", "end"), ("stream", "mark")]
    assert evs[-1].data == {"rejected": True, "rejection_reason": "no streaming"}
    assert evs[-1].metadata == {"m": 1}


async def test_request_intercepts_and_pending_marks_apply_to_streams(events):
    seen = {}

    def edit(name, req, annotated):
        return LLMRequestInterceptOutcome(LLMRequest(req.headers | {"x": "1"}, "edited"), None, [PendingMarkSpec("pm")])

    async def produce(req):
        seen["headers"] = req.headers
        seen["content"] = req.content
        yield 1

    intercepts.register_llm_request("edit", 1, False, edit)
    stream = await open_stream(produce)
    assert [c async for c in stream] == [1]
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [
        ("stream", "start"),
        ("pm", "mark"),
        ("llm.chunk", "mark"),
        ("stream", "end"),
    ]
    start = evs[0]
    assert start.data == {"headers": {"x": "1"}, "content": "edited"}
    assert evs[1].parent_uuid == start.uuid
    assert seen == {
        "headers": {"x": "1", "traceparent": f"00-{hex_of(start.uuid)}-{hex_of(start.uuid)[-16:]}-01"},
        "content": "edited",
    }


@pytest.mark.parametrize("yields_before_cancel", [0, 3], ids=["before-the-task-ran", "while-suspended"])
async def test_cancelled_before_the_stream_exists(events, yields_before_cancel):
    started = asyncio.Event()

    async def slow(req):
        started.set()
        await asyncio.sleep(60)

    future = llm.stream_execute("stream", request(), slow, ignore, lambda: "f", metadata={"m": 1})
    await started.wait()
    for _ in range(yields_before_cancel):
        await asyncio.sleep(0)
    future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await future
    for _ in range(3):
        await asyncio.sleep(0)
    _, end = call_events(await delivered(events))
    assert end.data is None
    assert end.metadata == {"m": 1, "otel.status_code": "ERROR", "otel.status_description": "LLM execution cancelled"}


# --- the producer's context -------------------------------------------------------------------------------------


async def test_producer_runs_as_the_llm_call(events):
    seen = {}

    async def produce(req):
        seen["parent"] = nemo_relay.capture_propagation_context().parent_uuid
        seen["tp"] = nemo_relay.capture_traceparent()
        seen["header"] = req.headers["traceparent"]
        yield 1
        seen["parent_later"] = nemo_relay.capture_propagation_context().parent_uuid

    stream = await open_stream(produce)
    assert [c async for c in stream] == [1]
    start, _ = call_events(await delivered(events))
    llm_hex = hex_of(start.uuid)
    assert seen == {
        "parent": start.uuid,
        "tp": f"00-{llm_hex}-{llm_hex[-16:]}-01",
        "header": f"00-{llm_hex}-{llm_hex[-16:]}-01",
        "parent_later": start.uuid,
    }


async def test_traceparent_root_is_the_first_scope_for_nested_streams(events):
    seen = {}

    async def produce(req):
        seen["header"] = req.headers["traceparent"]
        yield 1

    with scope.scope("agent", ScopeType.Agent) as agent, scope.scope("fn", ScopeType.Function):
        stream = await open_stream(produce, req=request({"TraceParent": "caller"}))
        assert [c async for c in stream] == [1]
    start, _ = call_events(await delivered(events))
    assert seen["header"] == f"00-{hex_of(agent.uuid)}-{hex_of(start.uuid)[-16:]}-01"
    assert start.data["headers"] == {"TraceParent": "caller", "x-dynamo-session-id": "agent"}


async def test_end_is_the_last_event_even_with_marks_from_the_producer(events):
    async def produce(req):
        scope.event("inside", data={"n": 1})
        yield 1
        scope.event("inside", data={"n": 2})
        yield 2

    stream = await open_stream(produce)
    assert [c async for c in stream] == [1, 2]
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [
        ("stream", "start"),
        ("inside", "mark"),
        ("llm.chunk", "mark"),
        ("inside", "mark"),
        ("llm.chunk", "mark"),
        ("stream", "end"),
    ]


# --- stream execution intercepts ---------------------------------------------------------------------------------


async def test_stream_intercept_wraps_the_downstream_lazily(events):
    seen = {}
    saved = {}

    def intercept(req, nxt):
        saved["next"] = nxt

        async def wrapper():
            inner = await nxt(LLMRequest(req.headers, {"via": "intercept"}))
            async for chunk in inner:
                yield {"wrapped": chunk}
            yield {"extra": True}

        return wrapper()

    async def produce(req):
        seen["content"] = req.content
        seen["traceparent"] = "traceparent" in req.headers
        yield 1
        yield 2

    intercepts.register_llm_stream_execution("wrap", 1, intercept)
    collected = []
    stream = await open_stream(produce, collected.append, finalizer=lambda: len(collected))
    assert seen == {}  # nothing ran yet: the intercept's generator calls next only when consumed
    chunks = [c async for c in stream]
    assert chunks == [{"wrapped": 1}, {"wrapped": 2}, {"extra": True}]
    assert collected == chunks
    assert seen == {"content": {"via": "intercept"}, "traceparent": True}
    with pytest.raises(RuntimeError, match=re.escape(INACTIVE)):
        await saved["next"](request())
    evs = await delivered(events)
    assert len(chunk_marks(evs)) == 3
    assert evs[-1].data == 3
    assert evs[-1].metadata == OK


async def test_async_stream_intercept_may_return_the_downstream_iterator(events):
    order = []

    def layer(tag):
        async def intercept(req, nxt):
            order.append(tag)
            return await nxt(LLMRequest(req.headers, [*req.content, tag]))

        return intercept

    seen = []

    async def produce(req):
        seen.append(req.content)
        yield "chunk"

    intercepts.register_llm_stream_execution("p10", 10, layer("p10"))
    intercepts.register_llm_stream_execution("p1", 1, layer("p1"))
    stream = await open_stream(produce, req=request(content=[]))
    assert [c async for c in stream] == ["chunk"]
    assert order == ["p1", "p10"]
    assert seen == [["p1", "p10"]]


async def test_stream_intercept_can_replace_the_stream(events):
    called = []
    intercepts.register_llm_stream_execution("replace", 1, lambda req, nxt: producer("a", "b")(req))
    stream = await open_stream(lambda req: called.append(1))
    assert [c async for c in stream] == ["a", "b"]
    assert called == []


async def test_next_after_the_stream_closed_fails(events):
    saved = {}

    def intercept(req, nxt):
        saved["next"] = nxt
        saved["request"] = req

        async def wrapper():
            inner = await nxt(req)
            async for chunk in inner:
                yield chunk

        return wrapper()

    intercepts.register_llm_stream_execution("keep", 1, intercept)
    stream = await open_stream(producer(1, 2, 3))
    assert await stream.__anext__() == 1
    await stream.aclose()
    with pytest.raises(RuntimeError, match=re.escape(INACTIVE)):
        await saved["next"](saved["request"])


def _raising_intercept(req, nxt):
    raise KeyError("si")


async def _async_raising_intercept(req, nxt):
    await asyncio.sleep(0)
    raise KeyError("si")


@pytest.mark.parametrize("intercept", [_raising_intercept, _async_raising_intercept], ids=["sync", "async"])
async def test_stream_intercept_errors_surface_at_the_await(events, intercept):
    intercepts.register_llm_stream_execution("bad", 1, intercept)
    with pytest.raises(RuntimeError, match=r"^internal error: KeyError: 'si'$"):
        await open_stream(producer(1), finalizer=lambda: "f")
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("stream", "start"), ("stream", "end")]
    assert evs[-1].data is None
    assert evs[-1].metadata["exception.type"] == "KeyError"
    assert evs[-1].metadata["error.type"] == "internal_error"


@pytest.mark.parametrize(
    ("made", "outcome"),
    [(lambda: object(), "invalid"), (Empty, "empty"), (Broken, "broken")],
    ids=["invalid", "empty", "broken"],
)
async def test_stream_intercept_iterators_behave_like_func_iterators(events, made, outcome):
    intercepts.register_llm_stream_execution("it", 1, lambda req, nxt: made())
    stream = await open_stream(producer(1), finalizer=lambda: "f")
    if outcome == "empty":
        assert [c async for c in stream] == []
    else:
        expected = "__anext__" if outcome == "invalid" else r"^internal error: KeyError: 'direct'$"
        with pytest.raises(RuntimeError, match=expected):
            await stream.__anext__()
    evs = await delivered(events)
    assert [(e.name, phase(e)) for e in evs] == [("stream", "start"), ("stream", "end")]
    assert (evs[-1].metadata["otel.status_code"] == "OK") is (outcome == "empty")
