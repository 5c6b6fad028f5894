"""Benchmark workloads, run inside the interpreter under test (ours or the reference wheel's).

Usage: python workloads.py [--quick | --smoke]
    -> prints one JSON object {"module": ..., "version": ..., "results": {...}, "peak_rss": bytes}

Standard library only, and only the public ``nemo_relay`` API, so the same file measures any
implementation. Two kinds of figures, both in microseconds:

* throughput (``µs/op``): ``n`` operations then a dispatcher flush, best of several repeats, so
  delivery cost is amortised into the figure;
* latency (``median µs``): the median time of one awaited managed call, measured call by call
  (delivery happens off the caller's path and shows up only in the tail).

The process's peak resident set size is reported too (``memory.py`` says why RSS, not tracemalloc).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import nemo_relay
from memory import peak_rss
from nemo_relay import (
    LLMRequest,
    ScopeType,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
    guardrails,
    intercepts,
    llm,
    scope,
    subscribers,
    tools,
)

Workload = Callable[[int], None]

# --- throughput workloads (sync) -------------------------------------------------------------------------


def _scope_push_pop(n: int) -> None:
    push, pop, kind = scope.push, scope.pop, ScopeType.Function
    for _ in range(n):
        pop(push("step", kind))
    subscribers.flush()


def _scope_block(n: int) -> None:
    block, kind = scope.scope, ScopeType.Function
    for _ in range(n):
        with block("step", kind):
            pass
    subscribers.flush()


def _mark(n: int) -> None:
    event = scope.event
    for _ in range(n):
        event("tick")
    subscribers.flush()


def _mark_with_data(n: int) -> None:
    event = scope.event
    payload: Any = {"step": 1, "tool": "search", "args": {"query": "weather in Paris", "limit": 5}}
    for _ in range(n):
        event("tick", data=payload)
    subscribers.flush()


def noop(_event: object) -> None:
    """A subscriber that does nothing: measures the runtime's delivery cost alone."""
    return None


def _with_subscriber(body: Workload) -> Workload:
    def run(n: int) -> None:
        subscribers.register("bench-noop", noop)
        try:
            body(n)
        finally:
            subscribers.deregister("bench-noop")

    return run


def atof_file_exporter() -> tuple[object, Callable[[], None]]:
    """An ``AtofExporter`` writing to a fresh temp file, registered; returns it and its cleanup."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="bench-atof-")
    config = nemo_relay.AtofExporterConfig()
    config.output_directory = directory
    config.filename = "events.jsonl"
    exporter = nemo_relay.AtofExporter(config)
    exporter.register("bench-atof")

    def close() -> None:
        exporter.deregister("bench-atof")
        exporter.shutdown()
        shutil.rmtree(directory, ignore_errors=True)

    return exporter, close


def _with_atof_file(body: Workload) -> Workload:
    # The exporter's force_flush waits for the dispatcher and the file: every mark is written.
    def run(n: int) -> None:
        exporter, close = atof_file_exporter()
        try:
            body(n)
            exporter.force_flush()  # type: ignore[attr-defined]
        finally:
            close()

    return run


# --- codec workloads ----------------------------------------------------------------------------------------


def _conversation(turns: int) -> list[Any]:
    messages: list[Any] = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Question {turn}: what changed in the report since yesterday?"})
        messages.append(
            {"role": "assistant", "content": f"Answer {turn}: three sections were rewritten and one added."}
        )
    return messages


_CHAT_MESSAGES: list[Any] = [{"role": "system", "content": "Be brief."}, *_conversation(10)][:20]
CHAT_20 = LLMRequest(
    {"content-type": "application/json"},
    {
        "model": "gpt-bench",
        "temperature": 0.2,
        "messages": _CHAT_MESSAGES,
    },
)
ANTHROPIC_20 = LLMRequest(
    {"content-type": "application/json"},
    {"model": "claude-bench", "max_tokens": 512, "system": "Be brief.", "messages": _conversation(10)},
)


def _round_trip(codec_name: str, request: LLMRequest) -> Workload:
    def run(n: int) -> None:
        from nemo_relay import codecs

        codec = getattr(codecs, codec_name)()
        decode, encode = codec.decode, codec.encode
        for _ in range(n):
            encode(decode(request), request)

    return run


_CODECS: dict[str, object] = {}


def _chat_codec() -> object:
    codec = _CODECS.get("chat")
    if codec is None:
        from nemo_relay import codecs

        codec = _CODECS["chat"] = codecs.OpenAIChatCodec()
    return codec


# An agent's request after a long session: 150 turns and 20 tool schemas, about 90 KiB of JSON. A provider
# function builds a request like this and reads its body on every call.
_LONG_CONVERSATION: Any = {
    "model": "gpt-bench",
    "temperature": 0.2,
    "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: " + "the quick brown fox " * 25}
        for i in range(150)
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "Looks things up in the knowledge base. " * 3,
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["query"],
                },
            },
        }
        for i in range(20)
    ],
}


def _long_request(n: int) -> None:
    headers = {"content-type": "application/json"}
    for _ in range(n):
        LLMRequest(headers, _LONG_CONVERSATION).content  # noqa: B018  # the read is the workload


THROUGHPUT: dict[str, tuple[Workload, int]] = {
    "scope push+pop, no subscriber": (_scope_push_pop, 20_000),
    "scope push+pop, 1 no-op subscriber": (_with_subscriber(_scope_push_pop), 20_000),
    "scope() block, 1 no-op subscriber": (_with_subscriber(_scope_block), 20_000),
    "mark, no subscriber": (_mark, 20_000),
    "mark, 1 no-op subscriber": (_with_subscriber(_mark), 20_000),
    "mark with 4-key payload, 1 no-op subscriber": (_with_subscriber(_mark_with_data), 20_000),
    "mark through ATOF file exporter (written, flushed)": (_with_atof_file(_mark), 20_000),
    "codec decode+encode, OpenAI chat, 20 messages": (_round_trip("OpenAIChatCodec", CHAT_20), 2_000),
    "codec decode+encode, Anthropic messages, 20 messages": (
        _round_trip("AnthropicMessagesCodec", ANTHROPIC_20),
        2_000,
    ),
    "LLMRequest with a 90 KiB conversation: build, then read the body": (_long_request, 500),
}


def measure_throughput(workload: Workload, n: int, repeats: int) -> float:
    """Best time per operation in microseconds."""
    workload(max(1, n // 10))  # warm up: start the dispatcher, fill caches
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        workload(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


# --- latency workloads (managed calls) -------------------------------------------------------------------

# Typed Any: the same file runs under the reference, so it cannot name our JSON aliases.
SMALL_ARGS: Any = {"query": "weather in Paris", "limit": 5}
# About 10 KiB of JSON: 120 records of a typical retrieval result (the hard case: about 850 values to check).
BIG_ARGS: Any = {"items": [{"id": i, "text": "x" * 40, "tags": ["a", "b"]} for i in range(120)]}
# About 10 KiB of JSON the other common way: a file-writing tool's document (a few values, one long text).
DOCUMENT_ARGS: Any = {
    "path": "reports/2026-11-quarterly.md",
    "mode": "overwrite",
    "content": "\n".join(
        f"{i:03d}. The quarterly numbers for region {i % 7} are in line with the forecast." for i in range(140)
    ),
}


def echo_tool(args: Any) -> ToolExecutionResult[Any]:
    """A tool that does nothing: measures the managed call's own cost."""
    return ToolExecutionResult({"ok": True})


async def _async_echo_tool(args: Any) -> ToolExecutionResult[Any]:
    return ToolExecutionResult({"ok": True})


def _provider(request: LLMRequest) -> Any:
    return {"id": "resp-1", "choices": [{"message": {"role": "assistant", "content": "Sunny."}}]}


REQUEST = LLMRequest(
    {"content-type": "application/json"},
    {"model": "bench-model", "messages": [{"role": "user", "content": "What is the weather in Paris?"}]},
)


def _install_four_middleware() -> Callable[[], None]:
    async def retry_free(name: str, args: Any, next_call: Callable[..., Any]) -> Any:
        downstream = await next_call(args)
        return ToolExecutionInterceptOutcome(downstream.result, annotation=downstream.annotation)

    guardrails.register_tool_conditional_execution("bench-allow", 0, lambda name, args: None)
    intercepts.register_tool_request("bench-request", 0, False, lambda name, args: args)
    guardrails.register_tool_sanitize_request("bench-sanitize", 0, lambda name, args: args)
    intercepts.register_tool_execution("bench-exec", 0, retry_free)

    def remove() -> None:
        guardrails.deregister_tool_conditional_execution("bench-allow")
        intercepts.deregister_tool_request("bench-request")
        guardrails.deregister_tool_sanitize_request("bench-sanitize")
        intercepts.deregister_tool_execution("bench-exec")

    return remove


LatencyCall = Callable[[], object]

LATENCY: dict[str, tuple[LatencyCall, bool, int]] = {
    # name: (one call, needs the 4 middleware, calls)
    "managed tool call (sync tool), 1 no-op subscriber": (
        lambda: tools.execute("search", SMALL_ARGS, echo_tool),
        False,
        20_000,
    ),
    "managed tool call (async tool), 1 no-op subscriber": (
        lambda: tools.execute("search", SMALL_ARGS, _async_echo_tool),
        False,
        20_000,
    ),
    "managed tool call + guardrail, request intercept, sanitizer, execution intercept": (
        lambda: tools.execute("search", SMALL_ARGS, echo_tool),
        True,
        10_000,
    ),
    "managed LLM call, 1 no-op subscriber": (lambda: llm.execute("chat", REQUEST, _provider), False, 20_000),
    "managed LLM call with OpenAIChatCodec, 20 messages": (
        lambda: llm.execute("chat", CHAT_20, _provider, codec=_chat_codec(), response_codec=_chat_codec()),
        False,
        5_000,
    ),
    "managed tool call with 10 KiB JSON arguments (120 records)": (
        lambda: tools.execute("bulk", BIG_ARGS, echo_tool),
        False,
        2_000,
    ),
    "managed tool call with 10 KiB JSON arguments (one document)": (
        lambda: tools.execute("write_file", DOCUMENT_ARGS, echo_tool),
        False,
        5_000,
    ),
}


async def _median_latency(call: LatencyCall, n: int) -> float:
    clock = time.perf_counter_ns
    for _ in range(max(50, n // 20)):  # warm up
        await call()  # type: ignore[misc]
    await subscribers.flush_async()
    gc.collect()
    samples = []
    for _ in range(n):
        start = clock()
        await call()  # type: ignore[misc]
        samples.append(clock() - start)
    await subscribers.flush_async()
    samples.sort()
    return samples[len(samples) // 2] / 1000


def measure_latency(call: LatencyCall, middleware: bool, n: int) -> float:
    """Median microseconds per awaited managed call, with one no-op subscriber registered."""
    subscribers.register("bench-noop", noop)
    remove = _install_four_middleware() if middleware else None
    try:
        return asyncio.run(_median_latency(call, n))
    finally:
        if remove is not None:
            remove()
        subscribers.deregister("bench-noop")


def measure_atof_latency(call: LatencyCall, n: int) -> float:
    """Median microseconds per awaited managed call with an ATOF file exporter registered (no other subscriber)."""
    _exporter, close = atof_file_exporter()
    try:
        return asyncio.run(_median_latency(call, n))
    finally:
        close()


ATOF_LATENCY: dict[str, tuple[LatencyCall, int]] = {
    "managed tool call with ATOF file exporter": (lambda: tools.execute("search", SMALL_ARGS, echo_tool), 20_000),
}


def _version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("nemo-relay")
    except metadata.PackageNotFoundError:
        return None  # a checkout on PYTHONPATH, not installed


def main(argv: list[str]) -> int:
    # --quick: rough numbers in seconds; --smoke: proves every workload runs, numbers meaningless.
    scale = 400 if "--smoke" in argv else 20 if "--quick" in argv else 1
    repeats = 5 if scale == 1 else 1
    results: dict[str, float | None] = {}
    for name, (workload, n) in THROUGHPUT.items():
        try:
            results[name] = measure_throughput(workload, max(5, n // scale), repeats)
        except (AttributeError, NotImplementedError, TypeError):
            results[name] = None  # this implementation lacks the API the workload needs

    def latency_calls(n: int) -> int:
        return n if scale == 1 else max(20, n // (2 * scale))

    for name, (call, middleware, n) in LATENCY.items():
        try:
            results[name] = measure_latency(call, middleware, latency_calls(n))
        except (AttributeError, NotImplementedError, TypeError):
            results[name] = None
    for name, (call, n) in ATOF_LATENCY.items():
        try:
            results[name] = measure_atof_latency(call, latency_calls(n))
        except (AttributeError, NotImplementedError, TypeError):
            results[name] = None
    payload = {"module": nemo_relay.__file__, "version": _version(), "results": results, "peak_rss": peak_rss()}
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
