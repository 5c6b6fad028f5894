"""LLM calls as the projections read them: normalised request/response, model, usage, cost, display text.

LLM events are read through their codec views when a codec produced them
(``category_profile.annotated_request`` / ``annotated_response``); without one, the raw provider
payload is normalised leniently into the same shape (OpenAI Chat and Anthropic Messages layouts), so
model names, messages and token counts still appear. Display text (``input.value`` /
``output.value``) is always computed from the raw payloads, as the reference does.
"""

from __future__ import annotations

import json
from typing import Any

from nemo_relay._core.events import ScopeEvent
from nemo_relay._core.observability.otel.common import Attributes, compact_json
from nemo_relay._core.observability.otel.projection_base import data_of, profile_of

# The generation parameters of an annotated request, in the order they are reported.
PARAM_ORDER = ("temperature", "max_tokens", "top_p", "stop")


def llm_request(event: ScopeEvent) -> dict[str, Any]:
    """The start event's request in the annotated shape: the codec view, else a lenient reading of the
    raw content (``{}`` when nothing is recognisable)."""
    annotated = profile_of(event).get("annotated_request")
    if isinstance(annotated, dict):
        return annotated
    data = data_of(event)
    content = data.get("content") if isinstance(data, dict) else None
    return _raw_request(content) if isinstance(content, dict) else {}


def _raw_request(content: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {}
    model = content.get("model")
    if isinstance(model, str):
        request["model"] = model
    messages = content.get("messages")
    if isinstance(messages, list):
        request["messages"] = [m for m in messages if isinstance(m, dict) and isinstance(m.get("role"), str)]
    system = content.get("system")
    if isinstance(system, (str, list)):
        request["instructions"] = system
    params: dict[str, Any] = {}
    for key, aliases in (
        ("temperature", ("temperature",)),
        ("max_tokens", ("max_completion_tokens", "max_tokens")),
        ("top_p", ("top_p",)),
        ("stop", ("stop", "stop_sequences")),
    ):
        for alias in aliases:
            if content.get(alias) is not None:
                params[key] = content[alias]
                break
    if params:
        request["params"] = params
    if isinstance(content.get("stream"), bool):
        request["stream"] = content["stream"]
    if isinstance(content.get("tools"), list):
        request["tools"] = content["tools"]
    extras = {k: content[k] for k in ("n", "seed", "frequency_penalty", "presence_penalty", "top_k") if k in content}
    if extras:
        request["api_specific"] = extras
    return request


def llm_response(event: ScopeEvent) -> dict[str, Any]:
    """The end event's response in the annotated shape: the codec view, else a lenient reading of the
    raw data (OpenAI Chat choices, Anthropic content blocks, usage)."""
    annotated = profile_of(event).get("annotated_response")
    if isinstance(annotated, dict):
        return annotated
    data = data_of(event)
    return _raw_response(data) if isinstance(data, dict) else {}


_FINISH = {
    "stop": "complete",
    "end_turn": "complete",
    "stop_sequence": "complete",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_use",
    "tool_use": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}


def _raw_response(data: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {}
    for key in ("id", "model"):
        if isinstance(data.get(key), str):
            response[key] = data[key]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reason: Any = None
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        reason = choices[0].get("finish_reason")
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                texts.append(message["content"])
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    calls.append(
                        {
                            "id": call.get("id", ""),
                            "name": function.get("name", ""),
                            "arguments": function.get("arguments"),
                        }
                    )
    elif isinstance(data.get("content"), list):  # Anthropic Messages content blocks
        reason = data.get("stop_reason")
        for block in data["content"]:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif isinstance(block, dict) and block.get("type") == "tool_use":
                calls.append(
                    {"id": block.get("id", ""), "name": block.get("name", ""), "arguments": block.get("input")}
                )
    if texts:
        response["message"] = "".join(texts)
    if calls:
        response["tool_calls"] = calls
    if isinstance(reason, str):
        response["finish_reason"] = _FINISH.get(reason, {"unknown": reason})
    usage = _raw_usage(data.get("usage"))
    if usage:
        response["usage"] = usage
    return response


def _raw_usage(usage: Any) -> dict[str, Any]:
    if not isinstance(usage, dict):
        return {}
    counts: dict[str, Any] = {}

    def count(key: str) -> int | None:
        value = usage.get(key)
        return value if type(value) is int and value >= 0 else None

    read, write = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    details = usage.get("prompt_tokens_details")
    if read is None and isinstance(details, dict) and type(details.get("cached_tokens")) is int:
        read = details["cached_tokens"]
    prompt = count("prompt_tokens")
    if prompt is None and count("input_tokens") is not None:
        # Anthropic reports uncached input only; the convention counts every input token.
        prompt = (count("input_tokens") or 0) + (read or 0) + (write or 0)
    completion = count("completion_tokens")
    if completion is None:
        completion = count("output_tokens")
    total = count("total_tokens")
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    for key, value in (
        ("prompt_tokens", prompt),
        ("completion_tokens", completion),
        ("total_tokens", total),
        ("cache_read_tokens", read),
        ("cache_write_tokens", write),
    ):
        if value is not None:
            counts[key] = value
    return counts


def request_model(start: ScopeEvent, request: dict[str, Any]) -> str | None:
    """The model known at an LLM start: event ``model_name``, else the (normalised) request's model."""
    model = profile_of(start).get("model_name")
    if isinstance(model, str):
        return model
    model = request.get("model")
    return model if isinstance(model, str) else None


def response_model(end: ScopeEvent, response: dict[str, Any], start_model: str | None) -> str | None:
    """The model reported at an LLM end: response model, else event ``model_name``, else the start's."""
    model = response.get("model")
    if isinstance(model, str):
        return model
    model = profile_of(end).get("model_name")
    if isinstance(model, str):
        return model
    return start_model


def finish_reason(response: dict[str, Any]) -> str | None:
    """The annotated finish reason: ``complete``/``length``/``tool_use``/``content_filter`` or the raw text."""
    reason = response.get("finish_reason")
    if isinstance(reason, str):
        return reason
    if isinstance(reason, dict) and isinstance(reason.get("unknown"), str):
        return str(reason["unknown"])
    return None


def usage_of(response: dict[str, Any]) -> dict[str, Any]:
    """The response's usage object (``{}`` when absent)."""
    usage = response.get("usage")
    return usage if isinstance(usage, dict) else {}


def cost_of(response: dict[str, Any]) -> tuple[float, str] | None:
    """``(total, currency)`` of the response's cost estimate, when one is known."""
    cost = usage_of(response).get("cost")
    if isinstance(cost, dict) and isinstance(cost.get("total"), (int, float)) and not isinstance(cost["total"], bool):
        currency = cost.get("currency")
        return float(cost["total"]), currency if isinstance(currency, str) else "USD"
    return None


def optimization_attributes(response: dict[str, Any]) -> Attributes:
    """``nemo_relay.llm.optimization.*`` from the response's optimization summary, when there is one."""
    summary = response.get("optimization_summary")
    attributes: Attributes = {}
    if not isinstance(summary, dict):
        return attributes
    prefix = "nemo_relay.llm.optimization."

    def put(name: str, value: Any) -> None:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            attributes[prefix + name] = value

    for role in ("baseline_model", "effective_model"):
        model = summary.get(role)
        if isinstance(model, dict):
            put(role, model.get("model"))
    saved = summary.get("tokens_saved")
    if isinstance(saved, dict):
        put("prompt_tokens_saved", saved.get("prompt_tokens"))
        put("total_tokens_saved", saved.get("total_tokens"))
    for role in ("baseline", "actual"):
        cost = summary.get(f"{role}_cost")
        if isinstance(cost, dict):
            put(f"{role}_cost", cost.get("total"))
            put(f"{role}_cost_currency", cost.get("currency"))
            put(f"{role}_pricing_source", cost.get("pricing_source"))
            put(f"{role}_pricing_as_of", cost.get("pricing_as_of"))
    put("estimated_cost_saved", summary.get("estimated_cost_saved"))
    put("estimated_cost_saved_currency", summary.get("currency"))
    put("currency", summary.get("currency"))
    put("status", summary.get("status"))
    actual = summary.get("actual_cost")
    if isinstance(actual, dict):
        put("pricing_source", actual.get("pricing_source"))
        put("pricing_as_of", actual.get("pricing_as_of"))
    return attributes


# --- display text -----------------------------------------------------------------------------------


def text_of(content: Any) -> str | None:
    """The text of message content: a string, or the ``text`` parts of a part list joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text")
            if isinstance(part.get("text"), str)
        ]
        if texts:
            return "\n".join(texts)
    return None


def _requested_tools(message: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            function = call.get("function")
            name = function.get("name") if isinstance(function, dict) else call.get("name")
            if isinstance(name, str):
                names.append(name)
    content = message.get("content")
    if isinstance(content, list):
        names.extend(
            part["name"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "tool_use" and isinstance(part.get("name"), str)
        )
    return names


def messages_display(messages: Any) -> str | None:
    """``role: text`` per message, separated by blank lines; tool calls become ``Requested tools: ...``
    and tool results ``Tool result omitted``; messages with nothing to show are left out."""
    if not isinstance(messages, list):
        return None
    lines: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            continue
        role = message["role"]
        if role == "tool":
            lines.append(f"{role}: Tool result omitted")
            continue
        text = text_of(message.get("content"))
        if not text:
            tools = _requested_tools(message)
            text = f"Requested tools: {', '.join(tools)}" if tools else None
        if text:
            lines.append(f"{role}: {text}")
    return "\n\n".join(lines) if lines else None


_PROMPT_KEYS = ("prompt", "input", "text", "query", "question")


def request_display(data: Any) -> tuple[str, str] | None:
    """``(input.value, mime type)`` of an LLM start: the messages as text, else a plain prompt, else
    the JSON of the request without its headers."""
    content = data.get("content") if isinstance(data, dict) else None
    if isinstance(content, dict):
        text = messages_display(content.get("messages"))
        if text:
            return text, "text/plain"
        for key in _PROMPT_KEYS:
            if isinstance(content.get(key), str):
                return content[key], "text/plain"
    elif isinstance(content, str):
        return content, "text/plain"
    if data is None:
        return None
    shown = {key: value for key, value in data.items() if key != "headers"} if isinstance(data, dict) else data
    return compact_json(shown), "application/json"


def response_display(data: Any) -> tuple[str, str] | None:
    """``(output.value, mime type)`` of an LLM end, from the raw provider response: message text and
    requested tools (OpenAI Chat / Anthropic layouts), else a plain ``text``-like field, else JSON."""
    response = _raw_response(data) if isinstance(data, dict) else {}
    parts: list[str] = []
    text = text_of(response.get("message"))
    if text:
        parts.append(text)
    names = [call["name"] for call in response.get("tool_calls") or () if isinstance(call, dict) and call.get("name")]
    if names:
        parts.append(f"Requested tools: {', '.join(names)}")
    if parts:
        return "\n".join(parts), "text/plain"
    if isinstance(data, dict):
        for key in ("text", "content", "output_text", "answer"):
            if isinstance(data.get(key), str):
                return data[key], "text/plain"
    elif isinstance(data, str):
        return data, "text/plain"
    if data is None:
        return None
    return compact_json(data), "application/json"


def arguments_json(arguments: Any) -> str:
    """Tool-call arguments as a JSON string (strings are taken to be JSON already)."""
    return arguments if isinstance(arguments, str) else compact_json(arguments)


def parsed_arguments(arguments: Any) -> Any:
    """Tool-call arguments as a JSON value (a JSON string is parsed; anything unparsable is kept)."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments
