"""Provider-shaped payloads for the codec fuzz: recorded fixtures as seeds, structured generators, mutations.

A fuzz that only sends random JSON stops at each codec's first type check. Here inputs start from the
recorded provider payloads under ``tests/codecs/fixtures`` (requests, responses, stream chunks) and from
generated messages with provider roles, content parts and tool calls; ``mutated`` then rewrites a few
nodes (replace, delete, retype, insert a provider key, wrap in a list ...), so most inputs are *nearly*
valid and reach the deep decoding paths. Keys and strings are drawn from the vocabulary of the fixtures.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fuzz_support import I64_MIN, INT_EDGES, U64_MAX, short_texts, texts
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parent.parent / "codecs" / "fixtures"

# provider directory -> codec class name in nemo_relay.codecs
CODECS = {
    "openai_chat": "OpenAIChatCodec",
    "openai_responses": "OpenAIResponsesCodec",
    "anthropic": "AnthropicMessagesCodec",
    "oci": "OCIGenAIChatCodec",
    "gemini": "GeminiGenerateContentCodec",
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _corpus(provider: str) -> tuple[list[Any], list[Any], list[list[Any]]]:
    """(request bodies, response bodies, stream chunk lists) recorded for ``provider``."""
    requests: list[Any] = []
    responses: list[Any] = []
    streams: list[list[Any]] = []
    for path in sorted((FIXTURES / provider).glob("*.json")):
        data = _load(path)
        entries = data if isinstance(data, list) else [data]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            if isinstance(entry.get("request"), dict):
                requests.append(entry["request"])
            if "response" in entry:
                responses.append(entry["response"])
            for key in ("chunks", "events", "stream"):
                if isinstance(entry.get(key), list):
                    streams.append(entry[key])
    return requests, responses, streams


CORPUS = {provider: _corpus(provider) for provider in CODECS}


def _vocabulary() -> tuple[list[str], list[str]]:
    keys: set[str] = set()
    strings: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                keys.add(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) <= 40:
            strings.add(value)

    for requests, responses, streams in CORPUS.values():
        walk(requests)
        walk(responses)
        walk(streams)
    return sorted(keys), sorted(strings)


VOCAB_KEYS, VOCAB_STRINGS = _vocabulary()

ROLES = [
    "system",
    "user",
    "assistant",
    "tool",
    "developer",
    "function",
    "model",
    "USER",
    "ASSISTANT",
    "SYSTEM",
    "TOOL",
    "CHATBOT",
    "tool_call",
    "tool_result",
    "provider_native",
    "",
]
PART_TYPES = [
    "text",
    "image_url",
    "image",
    "input_text",
    "output_text",
    "input_image",
    "input_file",
    "file",
    "audio",
    "input_audio",
    "refusal",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "document",
    "function_call",
    "function_call_output",
    "message",
    "reasoning",
    "TEXT",
    "IMAGE",
    "DOCUMENT",
    "provider_native",
]


def _deep_json_text(depth: int) -> str:
    return "[" * depth + "]" * depth


# Strings a codec may try to parse: JSON texts (shallow and very deep), non-finite and huge numbers, blanks.
TRICKY_STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "{}",
            "[]",
            "null",
            "true",
            "0",
            "-0",
            "1.5",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            '{"a": NaN}',
            '{"a": 1e999}',
            '{"city": "Paris"}',
            '{"a": {"b": [1, 2, {"c": null}]}}',
            "[1, 2",
            '{"a":',
            "9" * 30,
            "9" * 5000,
            '"quoted"',
            "data: {}",
            "data: [DONE]",
            "\ufeff{}",
        ]
    ),
    st.integers(100, 3000).map(_deep_json_text),
    st.integers(100, 3000).map(lambda d: '{"a":' * d + "1" + "}" * d),
)

provider_strings = st.one_of(st.sampled_from(VOCAB_STRINGS), st.sampled_from(ROLES), TRICKY_STRINGS, texts)
provider_keys = st.one_of(st.sampled_from(VOCAB_KEYS), short_texts)
provider_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([i for i in INT_EDGES if I64_MIN <= i <= U64_MAX]),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    provider_strings,
)


def provider_json(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """JSON whose keys and strings come mostly from the providers' vocabulary."""
    return st.recursive(
        provider_scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(provider_keys, inner, max_size=4)),
        max_leaves=max_leaves,
    )


_part = st.fixed_dictionaries(
    {"type": st.sampled_from(PART_TYPES)},
    optional={
        "text": provider_strings,
        "image_url": st.one_of(provider_strings, st.fixed_dictionaries({"url": provider_strings})),
        "source": provider_json(4),
        "id": provider_strings,
        "name": provider_strings,
        "input": provider_json(4),
        "content": st.one_of(provider_strings, st.lists(provider_json(3), max_size=2)),
        "tool_use_id": provider_strings,
        "arguments": st.one_of(TRICKY_STRINGS, provider_json(3)),
        "call_id": provider_strings,
        "output": st.one_of(provider_strings, provider_json(3)),
        "thinking": provider_strings,
        "signature": provider_strings,
        "data": provider_strings,
    },
)
_tool_call = st.fixed_dictionaries(
    {},
    optional={
        "id": provider_strings,
        "type": st.sampled_from(["function", "FUNCTION", "custom", ""]),
        "function": st.fixed_dictionaries(
            {}, optional={"name": provider_strings, "arguments": st.one_of(TRICKY_STRINGS, provider_json(3))}
        ),
        "name": provider_strings,
        "arguments": st.one_of(TRICKY_STRINGS, provider_json(3)),
    },
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES)},
    optional={
        "content": st.one_of(st.none(), provider_strings, st.lists(_part, max_size=3)),
        "tool_calls": st.lists(_tool_call, max_size=2),
        "toolCalls": st.lists(_tool_call, max_size=2),
        "tool_call_id": provider_strings,
        "name": provider_strings,
        "parts": st.lists(
            st.one_of(
                st.fixed_dictionaries({"text": provider_strings}),
                st.fixed_dictionaries(
                    {"functionCall": st.fixed_dictionaries({"name": provider_strings, "args": provider_json(3)})}
                ),
                st.fixed_dictionaries(
                    {
                        "functionResponse": st.fixed_dictionaries(
                            {"name": provider_strings, "response": provider_json(3)}
                        )
                    }
                ),
                provider_json(3),
            ),
            max_size=3,
        ),
        "message": provider_strings,
        "type": st.sampled_from(PART_TYPES),
        "call_id": provider_strings,
        "output": st.one_of(provider_strings, provider_json(3)),
        "arguments": st.one_of(TRICKY_STRINGS, provider_json(3)),
    },
)
_messages = st.lists(_message, max_size=5)

# Top-level request fields of every provider, each with a plausible generator.
_REQUEST_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": provider_strings,
    "messages": _messages,
    "input": st.one_of(provider_strings, _messages),
    "contents": _messages,
    "system": st.one_of(provider_strings, st.lists(_part, max_size=2)),
    "instructions": st.one_of(provider_strings, st.lists(_part, max_size=2)),
    "systemInstruction": st.one_of(provider_json(4), st.fixed_dictionaries({"parts": st.lists(_part, max_size=2)})),
    "tools": st.lists(provider_json(6), max_size=3),
    "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required", "any"]), provider_json(4)),
    "max_tokens": provider_scalars,
    "temperature": provider_scalars,
    "top_p": provider_scalars,
    "stop": st.one_of(provider_strings, st.lists(provider_strings, max_size=3)),
    "stream": provider_scalars,
    "generationConfig": provider_json(6),
    "chatRequest": st.fixed_dictionaries(
        {"apiFormat": st.sampled_from(["GENERIC", "COHERE", "COHEREV2", "generic", "OTHER"])},
        optional={
            "messages": _messages,
            "message": provider_strings,
            "chatHistory": _messages,
            "preambleOverride": provider_strings,
            "tools": st.lists(provider_json(5), max_size=2),
            "toolResults": st.lists(provider_json(5), max_size=2),
            "maxTokens": provider_scalars,
        },
    ),
    "apiFormat": st.sampled_from(["GENERIC", "COHERE", "COHEREV2"]),
    "servingMode": provider_json(4),
}

generated_requests = st.fixed_dictionaries({}, optional={key: value for key, value in _REQUEST_FIELDS.items()})


# --- mutation ------------------------------------------------------------------------------------------------


def _slots(value: Any, out: list[tuple[Any, Any]]) -> None:
    # Every (container, key-or-index) slot of a JSON tree.
    if isinstance(value, dict):
        for key in list(value):
            out.append((value, key))
            _slots(value[key], out)
    elif isinstance(value, list):
        for index in range(len(value)):
            out.append((value, index))
            _slots(value[index], out)


_OPERATIONS = ("replace", "delete", "null", "retype", "insert", "wrap", "duplicate", "json_text")


@st.composite
def mutated(
    draw: st.DrawFn,
    seeds: st.SearchStrategy[Any],
    max_mutations: int = 4,
    values: st.SearchStrategy[Any] | None = None,
    keys: st.SearchStrategy[str] | None = None,
) -> Any:
    """A seed with up to ``max_mutations`` random edits (fresh copy; seeds are never changed).

    New values and keys come from ``values``/``keys`` (by default the providers' vocabulary).
    """
    values = provider_json(6) if values is None else values
    keys = provider_keys if keys is None else keys
    root = {"": copy.deepcopy(draw(seeds))}
    for _ in range(draw(st.integers(0, max_mutations))):
        slots: list[tuple[Any, Any]] = []
        _slots(root, slots)
        container, key = draw(st.sampled_from(slots))
        operation = draw(st.sampled_from(_OPERATIONS))
        current = container[key]
        if operation == "replace":
            container[key] = draw(values)
        elif operation == "delete" and container is not root:
            del container[key]
        elif operation == "null":
            container[key] = None
        elif operation == "retype":
            container[key] = draw(
                st.sampled_from(
                    [
                        [current],
                        {"value": current},
                        json.dumps(current),
                        1,
                        -1,
                        1.5,
                        True,
                        "",
                        [],
                        {},
                    ]
                )
            )
        elif operation == "insert" and isinstance(current, dict):
            current[draw(keys)] = draw(values)
        elif operation == "insert" and isinstance(current, list):
            current.insert(draw(st.integers(0, len(current))), draw(values))
        elif operation == "wrap":
            container[key] = [current, current] if draw(st.booleans()) else {draw(keys): current}
        elif operation == "duplicate" and isinstance(current, list) and current:
            current.append(copy.deepcopy(current[draw(st.integers(0, len(current) - 1))]))
        elif operation == "json_text":
            container[key] = draw(TRICKY_STRINGS)
    return root[""]


def request_bodies(provider: str) -> st.SearchStrategy[Any]:
    """Request contents for ``provider``: mutated recordings, mutated generated requests, and raw JSON."""
    recorded = CORPUS[provider][0]
    return st.one_of(
        mutated(st.sampled_from(recorded)),
        mutated(st.sampled_from(recorded)),
        mutated(generated_requests),
        provider_json(12),
    )


def response_bodies(provider: str) -> st.SearchStrategy[Any]:
    """Response bodies for ``provider``: mutated recordings plus raw provider-flavoured JSON."""
    recorded = CORPUS[provider][1]
    return st.one_of(mutated(st.sampled_from(recorded)), mutated(st.sampled_from(recorded)), provider_json(12))


def stream_chunks(provider: str) -> st.SearchStrategy[list[Any]]:
    """Stream chunk sequences for ``provider``: a recorded stream with mutated, dropped or repeated chunks."""
    recorded = CORPUS[provider][2]
    return st.one_of(
        mutated(st.sampled_from(recorded)).map(lambda chunks: chunks if isinstance(chunks, list) else [chunks]),
        st.lists(mutated(st.sampled_from([c for s in recorded for c in s])), max_size=6),
    )
