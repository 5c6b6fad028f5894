"""Fuzz the five built-in provider codecs with nearly-valid provider payloads.

The codecs raise on purpose only ``RelayError`` subclasses of ``RuntimeError`` (``invalid argument: ...``,
``internal error: <API> response decode: ...``) and, for values that are not JSON at all, the documented
``ValueError``. Everything else (``KeyError``, ``IndexError``, ``TypeError`` from an unhashable lookup,
``RecursionError`` on a deeply nested JSON string ...) is a bug. Inputs come from ``fuzz_payloads``: recorded
provider payloads with a few mutations, generated provider-shaped requests, and raw JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fuzz_payloads import CODECS, request_bodies, response_bodies, stream_chunks
from fuzz_support import fuzz_settings, json_values, model_outcome, python_values, short_texts, texts
from hypothesis import event, example, given
from hypothesis import strategies as st

from nemo_relay import AnnotatedLLMRequest, AnnotatedLLMResponse, LLMRequest, codecs
from nemo_relay._core.codecs.common import ANNOTATION_FIELDS
from nemo_relay._core.errors import JsonConversionError, RelayRuntimeError

pytestmark = pytest.mark.timeout(120)

PROVIDERS = sorted(CODECS)
RESPONSE_FIELDS = frozenset(
    ("id", "model", "message", "tool_calls", "finish_reason", "usage", "optimization_summary", "api_specific")
)


def _codec(provider: str) -> Any:
    return getattr(codecs, CODECS[provider])()


def _allowed(exc: BaseException) -> bool:
    # Deliberate codec errors are RelayRuntimeError (a RuntimeError); nothing else may escape.
    return isinstance(exc, RelayRuntimeError)


def _decode(provider: str, body: Any) -> AnnotatedLLMRequest | None:
    codec = _codec(provider)
    request = LLMRequest({}, body)  # provider payloads are JSON: construction must succeed
    try:
        return codec.decode(request)  # type: ignore[no-any-return]
    except Exception as exc:
        if not _allowed(exc):
            raise AssertionError(f"{type(exc).__name__} escaped {CODECS[provider]}.decode: {exc}") from exc
        assert str(exc), "a codec error needs a message"
        return None


@pytest.mark.parametrize("provider", PROVIDERS)
@fuzz_settings(60)
@given(data=st.data())
def test_decode_raises_only_codec_errors(provider: str, data: st.DataObject) -> None:
    """``decode`` on a nearly-valid request body returns an annotation or raises a codec ``RuntimeError``."""
    body = data.draw(request_bodies(provider), label="content")
    _decode(provider, body)


_REQUEST_SETTERS = ("store", "previous_response_id", "truncation", "reasoning", "include", "user", "metadata",
                    "service_tier", "parallel_tool_calls", "max_output_tokens", "max_tool_calls", "top_logprobs",
                    "stream")  # fmt: skip


def check_request_view(provider: str, body: Any) -> None:
    """A decoded annotation is a valid view: every field passes the public constructor and setters, its JSON
    form reads back through ``_from_json`` (a fixed point after one pass), and encoding it against an equal
    copy of the request (the full diff-and-patch path) gives the content back or a codec error."""
    annotated = _decode(provider, body)
    if annotated is None:
        return
    rebuilt = AnnotatedLLMRequest(
        annotated.messages, instructions=annotated.instructions, model=annotated.model, params=annotated.params,
        tools=annotated.tools, tool_choice=annotated.tool_choice, api_specific=annotated.api_specific,
        extra=annotated.extra,
    )  # fmt: skip
    for name in _REQUEST_SETTERS:
        setattr(rebuilt, name, getattr(annotated, name))
    if not ANNOTATION_FIELDS.intersection(annotated.extra):
        # (A provider key named like a field stays in ``extra``; the flattened JSON form is then ambiguous, as
        # the reference's is.)
        once = AnnotatedLLMRequest._from_json(json.loads(json.dumps(annotated._to_json())))._to_json()
        # One pass may drop nulls inside api_specific (as the reference does); after that it is a fixed point.
        assert AnnotatedLLMRequest._from_json(json.loads(json.dumps(once)))._to_json() == once
    codec = _codec(provider)
    try:
        encoded = codec.encode(annotated, LLMRequest({}, json.loads(json.dumps(body))))
    except Exception as exc:
        assert _allowed(exc), f"{type(exc).__name__} escaped {CODECS[provider]}.encode: {exc}"
    else:
        assert encoded.content == body


def check_response(provider: str, body: Any) -> None:
    """``decode_response`` gives a valid view (every field passes the public constructor; the JSON form
    round-trips) or raises a codec ``RuntimeError``."""
    codec = _codec(provider)
    try:
        annotated = codec.decode_response(body)
    except Exception as exc:
        if not _allowed(exc):
            raise AssertionError(f"{type(exc).__name__} escaped {CODECS[provider]}.decode_response: {exc}") from exc
        return
    assert isinstance(annotated, AnnotatedLLMResponse)
    AnnotatedLLMResponse(
        annotated.id, annotated.model, annotated.message, annotated.tool_calls, annotated.finish_reason,
        annotated.usage, annotated.api_specific, annotated.extra,
    )  # fmt: skip
    if not RESPONSE_FIELDS.intersection(annotated.extra):  # (see the request case: flattening is ambiguous)
        once = AnnotatedLLMResponse._from_json(json.loads(json.dumps(annotated._to_json())))._to_json()
        assert AnnotatedLLMResponse._from_json(json.loads(json.dumps(once)))._to_json() == once
    annotated.response_text()
    annotated.has_tool_calls()


def check_stream(provider: str, chunks: list[Any]) -> None:
    """Stream chunks fold into a JSON response body that decodes like any response, or fail with a codec error."""
    codec = _codec(provider)
    aggregator = codec.stream_aggregator()
    try:
        for chunk in chunks:
            aggregator.add(chunk)
        body = aggregator.result()
    except Exception as exc:
        if not _allowed(exc):
            raise AssertionError(f"{type(exc).__name__} escaped {CODECS[provider]} streaming: {exc}") from exc
        return
    json.dumps(body, allow_nan=False)
    check_response(provider, body)


@pytest.mark.parametrize("provider", PROVIDERS)
@fuzz_settings(40)
@given(data=st.data())
def test_decoded_annotations_are_valid_views(provider: str, data: st.DataObject) -> None:
    """See ``check_request_view``."""
    check_request_view(provider, data.draw(request_bodies(provider), label="content"))


@pytest.mark.parametrize("provider", PROVIDERS)
@fuzz_settings(60)
@given(data=st.data())
def test_decode_response_raises_only_codec_errors(provider: str, data: st.DataObject) -> None:
    """See ``check_response``."""
    check_response(provider, data.draw(response_bodies(provider), label="response"))


@pytest.mark.parametrize("provider", PROVIDERS)
@fuzz_settings(30)
@given(data=st.data())
def test_stream_aggregation_raises_only_codec_errors(provider: str, data: st.DataObject) -> None:
    """Arbitrary (mutated, dropped, repeated) stream chunks: see ``check_stream``."""
    check_stream(provider, data.draw(stream_chunks(provider), label="chunks"))


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# Inputs that once broke a codec (found by these properties), kept as fixed regression cases.
REGRESSIONS: list[tuple[str, str, Any]] = [
    # A body key named like an annotation field filled that field unvalidated (now it is ``extra``).
    ("request", "anthropic", {"messages": [], "instructions": [{"type": "text"}]}),
    ("request", "anthropic", {"messages": [], "store": "x", "params": 1}),
    ("request", "gemini", {"contents": [], "messages": "x", "instructions": 5}),
    ("request", "openai_chat", {"messages": [], "api_specific": "x", "params": {"q": 1}}),
    ("request", "openai_responses", {"input": [], "messages": 5}),
    # A Gemini text part with a ``type`` key became a part whose tag was overwritten.
    ("request", "gemini", {"contents": [{"role": "user", "parts": [{"inlineData": {}}, {"text": "a", "type": None}]}]}),
    # A response key named like a field was read as that field.
    ("response", "anthropic", {"finish_reason": False}),
    ("response", "gemini", {"finish_reason": {"1734": None}, "message": 5, "tool_calls": 1}),
    ("response", "openai_chat", {"finish_reason": "x", "usage": None, "api_specific": 1}),
    # Tool-call arguments holding deeply nested JSON text (kept as text from 128 levels, like serde_json).
    (
        "response",
        "oci",
        {
            "chatResponse": {
                "choices": [
                    {"message": {"role": "ASSISTANT", "toolCalls": [{"id": "a", "name": "b", "arguments": _deep(255)}]}}
                ]
            }
        },
    ),
    (
        "response",
        "openai_chat",
        {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "type": "function", "function": {"name": "b", "arguments": _deep(100_000)}}
                        ],
                    }
                }
            ]
        },
    ),
    # Unhashable event types, and part positions far out or negative.
    ("stream", "openai_responses", [{"type": [], "sequence_number": 0}]),
    (
        "stream",
        "openai_responses",
        [
            {"type": "response.output_text.delta", "output_index": 0, "content_index": 10**18, "delta": "x"},
            {"type": "response.output_text.delta", "output_index": 1, "content_index": -1, "delta": "y"},
        ],
    ),
    # Deeply nested JSON text as a stream event or tool input.
    ("stream", "oci", [_deep(100_000)]),
    (
        "stream",
        "anthropic",
        [
            {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "n"}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": _deep(100_000)},
            },
            {"type": "content_block_stop", "index": 0},
        ],
    ),
]


@pytest.mark.parametrize(
    ("kind", "provider", "value"), REGRESSIONS, ids=[f"{k}-{p}-{i}" for i, (k, p, _) in enumerate(REGRESSIONS)]
)
def test_regressions(kind: str, provider: str, value: Any) -> None:
    {"request": check_request_view, "response": check_response, "stream": check_stream}[kind](provider, value)


@pytest.mark.parametrize("provider", PROVIDERS)
@fuzz_settings(25)
@given(value=python_values(12))
@example(value={1: 2})  # (regressions: a non-str key, and a non-JSON value under a key a codec reads)
@example(value={"id": object()})
def test_decode_response_converts_python_values_first(provider: str, value: Any) -> None:
    """A response that is not JSON fails exactly as the documented conversion says (``ValueError("Failed to
    convert to JSON: ...")``), before any shape check; a convertible one decodes or fails with a codec error."""
    outcome, expected = model_outcome(value)
    codec = _codec(provider)
    try:
        codec.decode_response(value)
    except JsonConversionError as exc:
        assert (outcome, str(exc)) == ("error", expected)
    except RelayRuntimeError:
        assert outcome == "ok"
    else:
        assert outcome == "ok"


def _edit(annotated: AnnotatedLLMRequest, data: st.DataObject) -> None:
    """One edit an intercept could make, with a value the view accepts."""
    edit = data.draw(
        st.sampled_from(["model", "params", "instructions", "append", "drop", "reverse", "retext", "tools", "extra"]),
        label="edit",
    )
    messages = annotated.messages
    if edit == "model":
        annotated.model = data.draw(st.one_of(st.none(), texts), label="model")
    elif edit == "params":
        annotated.params = data.draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "temperature": st.floats(0, 2),
                    "max_tokens": st.integers(0, 2**32),
                    "top_p": st.floats(0, 1),
                    "stop": st.lists(texts, max_size=2),
                },
            ),
            label="params",
        )
    elif edit == "instructions":
        annotated.instructions = data.draw(st.one_of(st.none(), texts), label="instructions")
    elif edit == "append":
        role = data.draw(st.sampled_from(["user", "assistant", "system"]), label="role")
        annotated.messages = [*messages, {"role": role, "content": data.draw(texts, label="content")}]
    elif edit == "drop" and messages:
        del messages[data.draw(st.integers(0, len(messages) - 1), label="index")]
        annotated.messages = messages
    elif edit == "reverse":
        annotated.messages = messages[::-1]
    elif edit == "retext" and messages:
        index = data.draw(st.integers(0, len(messages) - 1), label="index")
        if messages[index].get("role") in ("user", "assistant", "system", "developer"):
            messages[index]["content"] = data.draw(texts, label="content")
            annotated.messages = messages
    elif edit == "tools":
        annotated.tools = None
    elif edit == "extra":
        extra = annotated.extra
        if extra and data.draw(st.booleans(), label="remove"):
            del extra[data.draw(st.sampled_from(sorted(extra)), label="key")]
        else:
            extra[data.draw(short_texts, label="key")] = data.draw(json_values(4), label="value")
        annotated.extra = extra


@pytest.mark.parametrize("provider", PROVIDERS)
@fuzz_settings(40)
@given(data=st.data())
def test_encoding_edited_views_raises_only_codec_errors(provider: str, data: st.DataObject) -> None:
    """Edits an intercept may make to a decoded view (through its validating setters) encode into a JSON
    request that decodes again, or fail with a codec ``RuntimeError``; the original request is untouched."""
    body = data.draw(request_bodies(provider), label="content")
    annotated = _decode(provider, body)
    if annotated is None:
        event("decode refused the request")
        return
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        _edit(annotated, data)
    original = LLMRequest({"x-fuzz": "1"}, body)
    snapshot = json.dumps(original.content, sort_keys=True)
    codec = _codec(provider)
    try:
        encoded = codec.encode(annotated, original)
    except Exception as exc:
        if not _allowed(exc):
            raise AssertionError(f"{type(exc).__name__} escaped {CODECS[provider]}.encode: {exc}") from exc
        event("encode refused the edit")
        return
    finally:
        assert json.dumps(original.content, sort_keys=True) == snapshot, "encode changed the original request"
    assert isinstance(encoded, LLMRequest) and encoded.headers == {"x-fuzz": "1"}
    json.dumps(encoded.content, allow_nan=False)
    event("encoded" if _decode(provider, encoded.content) is not None else "encoded; decode refused the result")
