"""The ``openinference`` projection: OpenInference semantic conventions (Arize Phoenix and friends).

Span name = event name; kinds as in ``full``. Every span gets ``openinference.span.kind`` (agent →
AGENT, tool → TOOL, llm → LLM, retriever → RETRIEVER, embedder → EMBEDDING, reranker → RERANKER,
guardrail → GUARDRAIL, evaluator → EVALUATOR, anything else → CHAIN), the Relay identity, ``metadata``
as JSON plus ``openinference.metadata.*``, and ``input.*`` / ``output.*`` values. LLM spans add the
flattened request and response messages, invocation parameters, tool schemas, token counts, finish
reason, cost and model; tool spans the tool name, call id and arguments. Attribute names come from
``openinference-semantic-conventions``.
"""

from __future__ import annotations

import json
from typing import Any

from openinference.semconv.trace import (
    MessageAttributes,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
    ToolAttributes,
    ToolCallAttributes,
)

from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay._core.observability.otel.common import Attributes, compact_json, push_top_level_json_attributes
from nemo_relay._core.observability.otel.projection_base import (
    CLIENT_TYPES,
    Projection,
    SpanPlan,
    data_of,
    end_output,
    metadata_of,
    profile_of,
    scope_identity,
    start_payload,
    without,
)
from nemo_relay._core.observability.otel.projection_llm import (
    PARAM_ORDER,
    arguments_json,
    cost_of,
    finish_reason,
    llm_request,
    llm_response,
    optimization_attributes,
    request_display,
    request_model,
    response_display,
    response_model,
    text_of,
    usage_of,
)

_KINDS = {
    "agent": OpenInferenceSpanKindValues.AGENT.value,
    "tool": OpenInferenceSpanKindValues.TOOL.value,
    "llm": OpenInferenceSpanKindValues.LLM.value,
    "retriever": OpenInferenceSpanKindValues.RETRIEVER.value,
    "embedder": OpenInferenceSpanKindValues.EMBEDDING.value,
    "reranker": OpenInferenceSpanKindValues.RERANKER.value,
    "guardrail": OpenInferenceSpanKindValues.GUARDRAIL.value,
    "evaluator": OpenInferenceSpanKindValues.EVALUATOR.value,
}
_CHAIN = OpenInferenceSpanKindValues.CHAIN.value
_JSON = OpenInferenceMimeTypeValues.JSON.value
_KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
_INPUT_MESSAGES = SpanAttributes.LLM_INPUT_MESSAGES
_OUTPUT_MESSAGES = SpanAttributes.LLM_OUTPUT_MESSAGES
_ROLE = MessageAttributes.MESSAGE_ROLE
_CONTENT = MessageAttributes.MESSAGE_CONTENT
_TOOL_CALL_ID = MessageAttributes.MESSAGE_TOOL_CALL_ID
_TOOL_CALLS = MessageAttributes.MESSAGE_TOOL_CALLS


def _metadata(attributes: Attributes, metadata: Any) -> None:
    if metadata is None:
        return
    attributes[SpanAttributes.METADATA] = compact_json(metadata)
    push_top_level_json_attributes(attributes, "openinference.metadata", metadata)


def _io(attributes: Attributes, value_key: str, mime_key: str, shown: tuple[str, str] | None) -> None:
    if shown is not None:
        attributes[value_key], attributes[mime_key] = shown


def _json_io(value: Any) -> tuple[str, str] | None:
    return None if value is None else (compact_json(value), _JSON)


def _text_or_json(content: Any) -> str:
    text = text_of(content) if isinstance(content, str) else None
    return text if text is not None else compact_json(content)


def _tool_results(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tool results of a user message that holds nothing else (expanded to one ``tool`` entry each)."""
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list) or not content:
        return None
    if all(isinstance(part, dict) and part.get("type") == "tool_result" for part in content):
        return content
    return None


def _input_messages(attributes: Attributes, request: dict[str, Any]) -> None:
    entries: list[dict[str, str]] = []
    instructions = text_of(request.get("instructions"))
    if instructions is not None:
        entries.append({_ROLE: "system", _CONTENT: instructions})
    for message in request.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        results = _tool_results(message)
        if results is not None:
            for part in results:
                entry = {_ROLE: "tool", _CONTENT: _text_or_json(part.get("content"))}
                if isinstance(part.get("tool_use_id"), str):
                    entry[_TOOL_CALL_ID] = part["tool_use_id"]
                entries.append(entry)
        elif role == "tool_result":  # an OpenAI Responses function-call output item
            entry = {_ROLE: "tool", _CONTENT: _text_or_json(message.get("output"))}
            if isinstance(message.get("call_id"), str):
                entry[_TOOL_CALL_ID] = message["call_id"]
            entries.append(entry)
        elif isinstance(role, str) and role != "provider_native":
            entry = {_ROLE: "assistant" if role == "tool_call" else role}
            text = text_of(message.get("content"))
            if text is not None:
                entry[_CONTENT] = text
            elif role == "tool" and message.get("content") is not None:
                entry[_CONTENT] = compact_json(message["content"])
            if role == "tool" and isinstance(message.get("tool_call_id"), str):
                entry[_TOOL_CALL_ID] = message["tool_call_id"]
            entries.append(entry)
    for index, entry in enumerate(entries):
        for key, value in entry.items():
            attributes[f"{_INPUT_MESSAGES}.{index}.{key}"] = value


def _tool_schema(tool: Any) -> str:
    # Function tools keep the OpenAI wire order (type, then name/description/parameters/strict).
    if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        function = tool["function"]
        ordered = {key: function[key] for key in ("name", "description", "parameters", "strict") if key in function}
        ordered.update((key, value) for key, value in sorted(function.items()) if key not in ordered)
        return json.dumps({"type": "function", "function": ordered}, separators=(",", ":"), ensure_ascii=False)
    return compact_json(tool)


def _request_attributes(attributes: Attributes, event: ScopeEvent, request: dict[str, Any]) -> None:
    _io(attributes, SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE, request_display(data_of(event)))
    params = request.get("params")
    if isinstance(params, dict) and params:
        ordered = {key: params[key] for key in PARAM_ORDER if key in params}
        parameters = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
        attributes[SpanAttributes.LLM_INVOCATION_PARAMETERS] = parameters
    _input_messages(attributes, request)
    for index, tool in enumerate(request.get("tools") or ()):
        attributes[f"{SpanAttributes.LLM_TOOLS}.{index}.{ToolAttributes.TOOL_JSON_SCHEMA}"] = _tool_schema(tool)


def _response_attributes(attributes: Attributes, event: ScopeEvent, response: dict[str, Any]) -> None:
    _io(
        attributes,
        SpanAttributes.OUTPUT_VALUE,
        SpanAttributes.OUTPUT_MIME_TYPE,
        response_display(data_of(event)),
    )
    usage = usage_of(response)
    for key, name in (
        ("prompt_tokens", SpanAttributes.LLM_TOKEN_COUNT_PROMPT),
        ("completion_tokens", SpanAttributes.LLM_TOKEN_COUNT_COMPLETION),
        ("total_tokens", SpanAttributes.LLM_TOKEN_COUNT_TOTAL),
        ("cache_read_tokens", SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ),
        ("cache_write_tokens", SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_WRITE),
    ):
        if type(usage.get(key)) is int:
            attributes[name] = usage[key]
    counted = type(usage.get("prompt_tokens")) is int and type(usage.get("completion_tokens")) is int
    if SpanAttributes.LLM_TOKEN_COUNT_TOTAL not in attributes and counted:
        attributes[SpanAttributes.LLM_TOKEN_COUNT_TOTAL] = usage["prompt_tokens"] + usage["completion_tokens"]
    cost = cost_of(response)
    if cost is not None and cost[1] == "USD":  # OpenInference costs are in US dollars
        attributes[SpanAttributes.LLM_COST_TOTAL] = cost[0]
    reason = finish_reason(response)
    if reason is not None:
        attributes[SpanAttributes.LLM_FINISH_REASON] = reason
    message = response.get("message")
    calls = [call for call in response.get("tool_calls") or () if isinstance(call, dict)]
    if message is not None or calls:
        prefix = f"{_OUTPUT_MESSAGES}.0."
        attributes[prefix + _ROLE] = "assistant"
        text = text_of(message)
        if text is not None:
            attributes[prefix + _CONTENT] = text
        for index, call in enumerate(calls):
            call_prefix = f"{prefix}{_TOOL_CALLS}.{index}."
            if isinstance(call.get("id"), str):
                attributes[call_prefix + ToolCallAttributes.TOOL_CALL_ID] = call["id"]
            if isinstance(call.get("name"), str):
                attributes[call_prefix + ToolCallAttributes.TOOL_CALL_FUNCTION_NAME] = call["name"]
            attributes[call_prefix + ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = arguments_json(
                call.get("arguments")
            )
    attributes.update(optimization_attributes(response))


class OpenInferenceProjection(Projection):
    """``type = "openinference"``."""

    name = "openinference"
    error_type_attribute = False

    def start(self, event: ScopeEvent, exclude: frozenset[str]) -> SpanPlan:
        category = event.category
        attributes: Attributes = {_KIND: _KINDS.get(category, _CHAIN)}
        attributes.update(scope_identity(event))
        kind = "client" if category in CLIENT_TYPES else "internal"
        if category == "llm":
            request = llm_request(event)
            model = request_model(event, request)
            if model is not None:
                attributes[SpanAttributes.LLM_MODEL_NAME] = model
            _request_attributes(attributes, event, request)
            return SpanPlan(event.name, kind, attributes, model)
        tool_call_id = profile_of(event).get("tool_call_id")
        if isinstance(tool_call_id, str):
            attributes[ToolCallAttributes.TOOL_CALL_ID] = tool_call_id
        _metadata(attributes, without(metadata_of(event), exclude))
        start_payload(attributes, event, exclude, metadata=False)
        data = data_of(event)
        if category == "tool":
            attributes[SpanAttributes.TOOL_NAME] = event.name
            attributes[ToolCallAttributes.TOOL_CALL_FUNCTION_NAME] = event.name
        _io(attributes, SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE, _json_io(data))
        if category == "tool" and data is not None:
            attributes[SpanAttributes.TOOL_PARAMETERS] = compact_json(data)
            attributes[ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = compact_json(data)
        return SpanPlan(event.name, kind, attributes, None)

    def end(self, event: ScopeEvent, state: Any, exclude: frozenset[str]) -> Attributes:
        attributes: Attributes = {}
        data = data_of(event)
        push_top_level_json_attributes(attributes, "nemo_relay.end.data", data)
        _metadata(attributes, without(metadata_of(event), exclude))
        end_output(attributes, event)
        if event.category == "llm":
            response = llm_response(event)
            _response_attributes(attributes, event, response)
            model = response_model(event, response, state)
            if model is not None:
                attributes[SpanAttributes.LLM_MODEL_NAME] = model
        else:
            _io(attributes, SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE, _json_io(data))
        return attributes

    def mark_tool(self, event: MarkEvent) -> Attributes:
        attributes: Attributes = {
            "nemo_relay.mark.projection": "tool",
            _KIND: OpenInferenceSpanKindValues.TOOL.value,
            SpanAttributes.TOOL_NAME: event.name,
            ToolCallAttributes.TOOL_CALL_FUNCTION_NAME: event.name,
        }
        _io(attributes, SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE, _json_io(data_of(event)))
        metadata = metadata_of(event)
        if metadata is not None:
            attributes[SpanAttributes.METADATA] = compact_json(metadata)
        return attributes

    def orphan(self) -> Attributes:
        return {_KIND: _CHAIN, "nemo_relay.mark.orphan": True}
