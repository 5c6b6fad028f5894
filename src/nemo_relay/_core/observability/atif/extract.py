"""Reading ATIF fields out of LLM requests and responses, annotated (codec) or raw provider JSON.

Annotated views come first when an event carries them (``category_profile.annotated_request`` /
``annotated_response``); raw payloads are read in the shapes the common providers use: OpenAI chat
(``messages``, ``choices[0].message``), OpenAI Responses (``input``, ``output``), Anthropic Messages
(``type: "message"`` with content blocks) and a few flat conventions (``content``, ``answer``,
``prompt``). Whatever cannot be read as text becomes compact JSON text rather than being dropped.

Usage follows one convention whatever the source: ``prompt_tokens`` counts every input token, cached
ones included, and ``cached_tokens`` is the cached subset (cache reads plus cache writes).
"""

from __future__ import annotations

import json

from nemo_relay._core.observability.atif.model import Metrics, ToolCall, compact_json, content_parts, message_value
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

# Roles and Responses item types that mean "the model is being called back after doing something".
_CONTINUATION_ROLES = frozenset({"assistant", "tool", "function", "tool_call", "tool_result"})
_CONTINUATION_ITEMS = frozenset(
    {
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "computer_call_output",
        "local_shell_call_output",
        "mcp_call",
    }
)
_INPUT_TEXT_PARTS = frozenset({"input_text", "text"})
# Raw usage keys that feed the counted metrics; every other key is kept in ``metrics.extra``.
_USAGE_KEYS = frozenset(
    {
        "prompt_tokens",
        "completion_tokens",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "prompt_tokens_details",
        "input_tokens_details",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cost",
        "cost_usd",
    }
)


class _BadUsage(Exception):
    """A usage field has the wrong type: the provider's usage block is ignored as a whole."""


def unwrap_request(data: Any) -> Any:
    """The request body of an LLM start event (``data`` is ``{"content", "headers"}`` for managed calls)."""
    if type(data) is dict and "content" in data and set(data) <= {"content", "headers"}:
        return data["content"]
    return data


def _messages(value: object) -> list[Any] | None:
    return value if type(value) is list else None


def _is_user(message: object) -> bool:
    return type(message) is dict and message.get("role") == "user"


def _only_tool_results(content: object) -> bool:
    return (
        type(content) is list
        and bool(content)
        and all(type(part) is dict and part.get("type") == "tool_result" for part in content)
    )


def is_continuation(annotated: dict[str, Any] | None, request: Any) -> bool:
    """Whether the request calls the model back within a turn (its last entry is not a new user prompt)."""
    messages = _messages(annotated.get("messages")) if annotated is not None else None
    if messages is None and type(request) is dict:
        messages = _messages(request.get("messages"))
        if messages is None:
            items = _messages(request.get("input"))
            if items:
                last = items[-1]
                return type(last) is dict and last.get("type") in _CONTINUATION_ITEMS
            return False
    if not messages or type(messages[-1]) is not dict:
        return False
    last = messages[-1]
    role = last.get("role")
    if role == "user":
        return _only_tool_results(last.get("content"))
    return role in _CONTINUATION_ROLES


def user_message(annotated: dict[str, Any] | None, request: Any) -> JsonValue:
    """The newest user prompt of a request, else the whole request as JSON text."""
    if annotated is not None:
        for message in reversed(_messages(annotated.get("messages")) or []):
            if _is_user(message):
                return message_value(message.get("content"))
        return message_value(request)
    if type(request) is str:
        return request
    if type(request) is not dict:
        return message_value(request)
    messages = _messages(request.get("messages"))
    if messages is not None:
        for message in reversed(messages):
            if _is_user(message):
                return message_value(message.get("content"))
        return compact_json(request)
    items = request.get("input")
    if type(items) is str:
        return items
    if type(items) is list:
        for item in reversed(items):
            if _is_user(item):
                return _input_text(item.get("content"))
        return compact_json(request)
    prompt = request.get("prompt")
    if type(prompt) is str:
        return prompt
    return compact_json(request)


def _input_text(content: Any) -> JsonValue:
    if type(content) is list:
        texts = [
            part["text"]
            for part in content
            if type(part) is dict and part.get("type") in _INPUT_TEXT_PARTS and type(part.get("text")) is str
        ]
        if texts:
            return "\n".join(texts)
    return message_value(content)


# --- responses ----------------------------------------------------------------------------------


def _anthropic(response: dict[str, Any]) -> bool:
    return response.get("type") == "message" and type(response.get("content")) is list


def agent_message(annotated: dict[str, Any] | None, response: Any) -> JsonValue:
    """The assistant's text: the annotated message, else read from the raw response ("" for tool calls only)."""
    if annotated is not None:
        return message_value(annotated.get("message"))
    if type(response) is str:
        return response
    if type(response) is not dict:
        return compact_json(response)
    if _anthropic(response):
        return "\n".join(
            block["text"]
            for block in response["content"]
            if type(block) is dict and block.get("type") == "text" and type(block.get("text")) is str
        )
    if "content" in response:
        return message_value(response["content"])
    assistant = response.get("assistant_message")
    if type(assistant) is dict and "content" in assistant:
        return message_value(assistant["content"])
    message = _choice_message(response)
    if message is not None:
        if message.get("content") is not None:
            return message_value(message["content"])
        if message.get("tool_calls") or "content" in message:
            return ""
    for key in ("answer", "output_text"):
        if type(response.get(key)) is str:
            return response[key]  # type: ignore[no-any-return]
    texts = _output_texts(response.get("output"))
    if texts:
        return "\n".join(texts)
    return compact_json(response)


def _choice_message(response: dict[str, Any]) -> dict[str, Any] | None:
    choices = response.get("choices")
    if type(choices) is list and choices and type(choices[0]) is dict:
        message = choices[0].get("message")
        if type(message) is dict:
            return message
    return None


def _output_texts(output: object) -> list[str]:
    texts: list[str] = []
    if type(output) is list:
        for item in output:
            if type(item) is dict and type(item.get("content")) is list:
                for part in item["content"]:
                    if type(part) is dict and part.get("type") == "output_text" and type(part.get("text")) is str:
                        texts.append(part["text"])
    return texts


def tool_calls(response: Any) -> list[ToolCall]:
    """Tool calls in a raw response: OpenAI ``tool_calls``, Anthropic ``tool_use``, Responses ``function_call``."""
    if type(response) is not dict:
        return []
    raw: list[tuple[object, object, object]] = []  # (id, name, arguments)
    message = _choice_message(response)
    listed = message.get("tool_calls") if message is not None else None
    if type(listed) is not list:
        listed = response.get("tool_calls")
    if type(listed) is list:
        for item in listed:
            if type(item) is dict:
                function = item.get("function")
                if type(function) is dict:
                    raw.append((item.get("id"), function.get("name"), function.get("arguments")))
                else:
                    raw.append((item.get("id"), item.get("name"), item.get("arguments")))
    if _anthropic(response):
        for block in response["content"]:
            if type(block) is dict and block.get("type") == "tool_use":
                raw.append((block.get("id"), block.get("name"), block.get("input")))
    output = response.get("output")
    if type(output) is list:
        for item in output:
            if type(item) is dict and item.get("type") == "function_call":
                raw.append((item.get("call_id") or item.get("id"), item.get("name"), item.get("arguments")))
    calls: list[ToolCall] = []
    for index, (call_id, name, arguments) in enumerate(raw):
        name = name if type(name) is str else ""
        if type(call_id) is not str or not call_id:
            if not name:
                continue
            call_id = f"{name}:{index + 1}"  # providers that omit ids still get distinct ones
        calls.append(ToolCall(call_id, name, tool_arguments(arguments)))
    return calls


def tool_arguments(value: Any) -> JsonValue:
    """Tool-call arguments as a JSON object: decoded from text, wrapped when not an object."""
    if value is None:
        return {}
    if type(value) is str:
        try:
            value = json.loads(value)
        except ValueError:
            return {"raw": value}
    if type(value) is dict:
        return value
    return {"value": value}


def model_name(annotated: dict[str, Any] | None, response: Any, profile_model: Any, request: Any) -> str | None:
    """The model that answered: the response's, else the call's ``model_name``, else the requested one."""
    for candidate in (
        annotated.get("model") if annotated is not None else None,
        response.get("model") if type(response) is dict else None,
        profile_model,
        request.get("model") if type(request) is dict else None,
    ):
        if type(candidate) is str and candidate:
            return candidate
    return None


def reasoning_effort(annotated: dict[str, Any] | None, request: Any) -> JsonValue:
    """``reasoning_effort`` of the request (raw, or from the annotated request's parameters)."""
    sources: list[object] = [request]
    if annotated is not None:
        sources += [annotated.get("params"), annotated.get("api_specific")]
    for source in sources:
        if type(source) is dict:
            value = source.get("reasoning_effort")
            if type(value) is str or type(value) is int or type(value) is float:
                return value
    return None


def reasoning_content(response: Any) -> str | None:
    """Explicit reasoning text a response carries at top level (``reasoning``)."""
    if type(response) is dict and type(response.get("reasoning")) is str:
        return response["reasoning"]  # type: ignore[no-any-return]
    return None


# --- usage ----------------------------------------------------------------------------------------


def metrics(annotated: dict[str, Any] | None, response: Any) -> Metrics | None:
    """Step metrics: annotated usage first, raw provider usage for what it lacks and for ``extra``."""
    raw = _raw_usage(response)
    usage = annotated.get("usage") if annotated is not None else None
    out = Metrics()
    if type(usage) is dict:
        out.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        out.completion_tokens = _int_or_none(usage.get("completion_tokens"))
        read, write = _int_or_none(usage.get("cache_read_tokens")), _int_or_none(usage.get("cache_write_tokens"))
        if read is not None or write is not None:
            out.cached_tokens = (read or 0) + (write or 0)
        out.cost_usd = _usd(usage.get("cost"))
    if raw is not None:
        if out.prompt_tokens is None:
            out.prompt_tokens = raw.prompt_tokens
        if out.completion_tokens is None:
            out.completion_tokens = raw.completion_tokens
        if out.cached_tokens is None:
            out.cached_tokens = raw.cached_tokens
        if out.cost_usd is None:
            out.cost_usd = raw.cost_usd
        out.extra = raw.extra
    summary = annotated.get("optimization_summary") if annotated is not None else None
    if type(summary) is dict:
        out.extra = {**(out.extra or {}), "nemo_relay": {"optimization": summary}}
    return None if out.empty() else out


def _raw_usage(response: Any) -> Metrics | None:
    if type(response) is not dict or type(response.get("usage")) is not dict:
        return None
    usage: dict[str, Any] = response["usage"]
    try:
        prompt = _count(usage, "prompt_tokens")
        completion = _count(usage, "completion_tokens")
        input_tokens = _count(usage, "input_tokens")
        output_tokens = _count(usage, "output_tokens")
        cache_read = _count(usage, "cache_read_input_tokens")
        cache_write = _count(usage, "cache_creation_input_tokens")
        cached = _details(usage, "prompt_tokens_details")
        if cached is None:
            cached = _details(usage, "input_tokens_details")
        if cached is None:
            cached = _count(usage, "cached_tokens")
        cost = _raw_cost(usage)
    except _BadUsage:
        return None
    if cached is None and (cache_read is not None or cache_write is not None):
        cached = (cache_read or 0) + (cache_write or 0)
    if input_tokens is not None and _anthropic(response):
        # Anthropic reports cache reads and writes outside ``input_tokens``.
        prompt = input_tokens + (cache_read or 0) + (cache_write or 0)
    elif prompt is None:
        prompt = input_tokens
    extra = {key: value for key, value in usage.items() if key not in _USAGE_KEYS}
    return Metrics(
        prompt_tokens=prompt,
        completion_tokens=completion if completion is not None else output_tokens,
        cached_tokens=cached,
        cost_usd=cost,
        extra=extra or None,
    )


def _count(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise _BadUsage(key)
    return value


def _details(usage: dict[str, Any], key: str) -> int | None:
    details = usage.get(key)
    if details is None:
        return None
    if type(details) is not dict:
        raise _BadUsage(key)
    return _count(details, "cached_tokens")


def _raw_cost(usage: dict[str, Any]) -> float | None:
    cost = usage.get("cost")
    if cost is not None:
        if type(cost) is int or type(cost) is float:
            return float(cost)
        if type(cost) is not dict:
            raise _BadUsage("cost")
        return _usd(cost)
    value = usage.get("cost_usd")
    if value is None:
        return None
    if type(value) is not int and type(value) is not float:
        raise _BadUsage("cost_usd")
    return float(value)


def _usd(cost: object) -> float | None:
    """The total of a ``{total, currency}`` cost when it is in US dollars."""
    if type(cost) is not dict or cost.get("currency", "USD") != "USD":
        return None
    total = cost.get("total")
    return float(total) if type(total) is int or type(total) is float else None


def _int_or_none(value: object) -> int | None:
    return value if type(value) is int and value >= 0 else None


def observation_content(result: Any) -> tuple[JsonValue, JsonValue]:
    """``(content, tool_result)`` for a tool's result: text or content parts as content, else the raw value."""
    if type(result) is str:
        return result, None
    if type(result) is list:
        parts = content_parts(result)
        if parts is not None:
            return parts, None
    return None, result
