"""The ``gen_ai`` projection: OpenTelemetry GenAI semantic conventions (the v1.42-era snapshot).

Only agent, llm, tool, embedder and retriever scopes have GenAI meaning; other scopes become minimal
INTERNAL spans named after the event (parentage kept, no attributes). Marks are not traced and no
``nemo_relay.*`` attribute is emitted. Operation and span name: agent → ``invoke_agent <agent>``,
tool → ``execute_tool <tool>``, embedder → ``embeddings <model>``, retriever → ``retrieval <source>``,
llm → ``chat`` / ``text_completion`` / ``generate_content`` (from the event name) ``<model>``.

Scalar values (conversation id, provider, server, descriptions, ...) are looked up in the event's
``category_profile``, then ``metadata``, then ``data`` (and their ``usage`` / ``request`` /
``response`` sub-objects). Message content is recorded (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``) as JSON strings in the GenAI message schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nemo_relay._core.events import ScopeEvent
from nemo_relay._core.observability.otel.common import Attributes, compact_json
from nemo_relay._core.observability.otel.projection_base import (
    Projection,
    SpanPlan,
    data_of,
    metadata_of,
    profile_of,
)
from nemo_relay._core.observability.otel.projection_llm import (
    finish_reason,
    llm_request,
    llm_response,
    parsed_arguments,
    request_model,
    usage_of,
)

# GenAI attribute names (the conventions moved out of opentelemetry-semantic-conventions; see formats.md §4).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
CONVERSATION = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"

_OPERATIONS = {"agent": "invoke_agent", "tool": "execute_tool", "embedder": "embeddings", "retriever": "retrieval"}
_KINDS = {"agent": "internal", "tool": "internal", "llm": "client", "embedder": "client", "retriever": "client"}

# (substring of the lowercase event name, provider) — first match wins, so the specific ones go first.
_PROVIDER_HINTS = (
    ("azure_ai_inference", "azure.ai.inference"),
    ("azure_openai", "azure.ai.openai"),
    ("anthropic", "anthropic"),
    ("claude", "anthropic"),
    ("bedrock", "aws.bedrock"),
    ("cohere", "cohere"),
    ("deepseek", "deepseek"),
    ("gemini", "gcp.gemini"),
    ("vertex", "gcp.vertex_ai"),
    ("groq", "groq"),
    ("mistral", "mistral_ai"),
    ("openai", "openai"),
    ("gpt", "openai"),
    ("perplexity", "perplexity"),
)
_CODEC_PROVIDERS = {
    "openai_chat": "openai",
    "openai_responses": "openai",
    "anthropic_messages": "anthropic",
    "oci_genai": "oci.genai",
    "gemini_generate_content": "gcp.gemini",
}
_FINISH = {"complete": "stop", "length": "length", "tool_use": "tool_call", "content_filter": "content_filter"}
_SCALARS = (str, int, float, bool)

_CONVERSATION_KEYS = (CONVERSATION, "conversation_id", "session_id", "thread_id")
_PROVIDER_KEYS = (PROVIDER, "gen_ai.system", "provider_name", "provider")
_MODEL_KEYS = (REQUEST_MODEL, "model", "model_name")


def _sources(event: ScopeEvent) -> list[dict[str, Any]]:
    profile = {k: v for k, v in profile_of(event).items() if k not in ("annotated_request", "annotated_response")}
    found: list[dict[str, Any]] = []
    for source in (profile, metadata_of(event), data_of(event)):
        if isinstance(source, dict):
            found.append(source)
    for source in list(found):
        for sub in ("usage", "request", "response"):
            if isinstance(source.get(sub), dict):
                found.append(source[sub])
    return found


def lookup(event: ScopeEvent, keys: Iterable[str], kinds: tuple[type, ...] = _SCALARS) -> Any:
    """The first scalar found under any of ``keys`` in the profile, metadata or data of ``event``."""
    sources = _sources(event)
    for key in keys:
        for source in sources:
            value = source.get(key)
            if isinstance(value, kinds) and value is not None:
                return value
    return None


def _text_lookup(event: ScopeEvent, keys: Iterable[str]) -> str | None:
    value = lookup(event, keys, (str,))
    return value if isinstance(value, str) and value else None


def llm_operation(name: str) -> str:
    """``generate_content``, ``text_completion`` or ``chat``, from the LLM call's name."""
    lowered = name.lower()
    if "generate_content" in lowered or "generatecontent" in lowered:
        return "generate_content"
    if "completion" in lowered and "chat" not in lowered:
        return "text_completion"
    return "chat"


def provider_name(event: ScopeEvent, request: dict[str, Any] | None = None) -> str | None:
    """Explicit provider keys, else hints in the event name, else the codec (or payload shape)."""
    explicit = _text_lookup(event, _PROVIDER_KEYS)
    if explicit is not None:
        return explicit
    lowered = event.name.lower()
    for hint, provider in _PROVIDER_HINTS:
        if hint in lowered:
            return provider
    if request is None:
        return None
    api = request.get("api_specific")
    if isinstance(api, dict) and isinstance(api.get("api"), str):
        return _CODEC_PROVIDERS.get(api["api"])
    data = data_of(event)
    content = data.get("content") if isinstance(data, dict) else None
    if isinstance(content, dict):
        if isinstance(content.get("contents"), list):
            return "gcp.gemini"
        if isinstance(content.get("messages"), list):
            return "anthropic" if "anthropic_version" in content or "system" in content else "openai"
    return None


def _parts(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"content": content, "type": "text"}]
    if not isinstance(content, list):
        return [{"content": compact_json(content), "type": "text"}]
    parts: list[Any] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
            parts.append({"content": part["text"], "type": "text"})
        elif kind == "tool_use":
            parts.append(_tool_call(part.get("id"), part.get("name"), part.get("input")))
        elif kind == "tool_result":
            parts.append({"id": part.get("tool_use_id"), "response": part.get("content"), "type": "tool_call_response"})
        else:
            parts.append(part)  # media and provider parts pass through
    return parts


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"arguments": parsed_arguments(arguments), "name": name, "type": "tool_call"}
    if call_id is not None:
        call["id"] = call_id
    return call


def _message(message: dict[str, Any]) -> dict[str, Any] | None:
    role = message.get("role")
    if not isinstance(role, str) or role == "provider_native":
        return None
    if role == "tool":
        response = {"id": message.get("tool_call_id"), "response": message.get("content"), "type": "tool_call_response"}
        return {"parts": [response], "role": "tool"}
    if role == "tool_result":
        response = {"id": message.get("call_id"), "response": message.get("output"), "type": "tool_call_response"}
        return {"parts": [response], "role": "tool"}
    if role == "tool_call":
        return {
            "parts": [_tool_call(message.get("call_id"), message.get("name"), message.get("arguments"))],
            "role": "assistant",
        }
    parts = _parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            function = call["function"]
            parts.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
    if role == "user" and parts and all(isinstance(p, dict) and p.get("type") == "tool_call_response" for p in parts):
        role = "tool"  # a user turn that only returns tool results
    return {"parts": parts, "role": role}


def _llm_start(attributes: Attributes, event: ScopeEvent, request: dict[str, Any]) -> None:
    provider = provider_name(event, request)
    if provider is not None:
        attributes[PROVIDER] = provider
    _server(attributes, event)
    conversation = _text_lookup(event, _CONVERSATION_KEYS)
    if conversation is not None:
        attributes[CONVERSATION] = conversation
    model = request_model(event, request)
    if model is not None:
        attributes[REQUEST_MODEL] = model
    params = request.get("params")
    if isinstance(params, dict):
        for key, name in (
            ("temperature", "gen_ai.request.temperature"),
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("top_p", "gen_ai.request.top_p"),
        ):
            value = params.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[name] = value
        stop = params.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if isinstance(stop, list) and all(isinstance(item, str) for item in stop):
            attributes["gen_ai.request.stop_sequences"] = stop
    if request.get("stream") is True:
        attributes["gen_ai.request.stream"] = True
    instructions = request.get("instructions")
    if instructions is not None:
        attributes["gen_ai.system_instructions"] = compact_json(_parts(instructions))
    messages = [m for m in (_message(m) for m in request.get("messages") or () if isinstance(m, dict)) if m]
    if messages:
        attributes["gen_ai.input.messages"] = compact_json(messages)
    api = request.get("api_specific")
    if isinstance(api, dict):
        for key, name in (
            ("frequency_penalty", "gen_ai.request.frequency_penalty"),
            ("n", "gen_ai.request.choice.count"),
            ("presence_penalty", "gen_ai.request.presence_penalty"),
            ("seed", "gen_ai.request.seed"),
            ("top_k", "gen_ai.request.top_k"),
        ):
            value = api.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not (key == "n" and value == 1):
                attributes[name] = value


def _llm_end(attributes: Attributes, event: ScopeEvent) -> None:
    response = llm_response(event)
    if isinstance(response.get("id"), str):
        attributes["gen_ai.response.id"] = response["id"]
    if isinstance(response.get("model"), str):
        attributes["gen_ai.response.model"] = response["model"]
    reason = finish_reason(response)
    mapped = None if reason is None else _FINISH.get(reason, reason)
    if mapped is not None:
        attributes["gen_ai.response.finish_reasons"] = [mapped]
    parts = _parts(response.get("message"))
    for call in response.get("tool_calls") or ():
        if isinstance(call, dict):
            parts.append(_tool_call(call.get("id"), call.get("name"), call.get("arguments")))
    if parts:
        output: dict[str, Any] = {"parts": parts, "role": "assistant"}
        if mapped is not None:
            output["finish_reason"] = mapped
        attributes["gen_ai.output.messages"] = compact_json([output])
    usage = usage_of(response)
    for key, name in (
        ("prompt_tokens", "gen_ai.usage.input_tokens"),
        ("completion_tokens", "gen_ai.usage.output_tokens"),
        ("cache_read_tokens", "gen_ai.usage.cache_read.input_tokens"),
        ("cache_write_tokens", "gen_ai.usage.cache_creation.input_tokens"),
    ):
        if type(usage.get(key)) is int:
            attributes[name] = usage[key]


def _server(attributes: Attributes, event: ScopeEvent) -> None:
    address = _text_lookup(event, ("server.address", "server_address"))
    if address is not None:
        attributes["server.address"] = address
        port = lookup(event, ("server.port", "server_port"), (int,))
        if type(port) is int:
            attributes["server.port"] = port


def _qualified(operation: str, qualifier: Any) -> str:
    return f"{operation} {qualifier}" if isinstance(qualifier, str) and qualifier else operation


class GenAIProjection(Projection):
    """``type = "gen_ai"``."""

    name = "gen_ai"
    traces_marks = False
    applies_mappings = False
    session_identity = False

    def start(self, event: ScopeEvent, exclude: frozenset[str]) -> SpanPlan:
        category = event.category
        if category not in _KINDS:
            return SpanPlan(event.name, "internal", {})
        attributes: Attributes = {}
        if category == "llm":
            operation = llm_operation(event.name)
            attributes[OPERATION] = operation
            request = llm_request(event)
            _llm_start(attributes, event, request)
            return SpanPlan(_qualified(operation, attributes.get(REQUEST_MODEL)), "client", attributes)
        operation = _OPERATIONS[category]
        attributes[OPERATION] = operation
        qualifier: Any = None
        if category == "agent":
            conversation = _text_lookup(event, _CONVERSATION_KEYS)
            if conversation is not None:
                attributes[CONVERSATION] = conversation
            qualifier = _text_lookup(event, ("gen_ai.agent.name", "agent_name")) or event.name
            attributes["gen_ai.agent.name"] = qualifier
            description = _text_lookup(event, ("gen_ai.agent.description", "agent_description"))
            if description is not None:
                attributes["gen_ai.agent.description"] = description
            model = _text_lookup(event, _MODEL_KEYS)
            if model is not None:
                attributes[REQUEST_MODEL] = model
        elif category == "tool":
            qualifier = event.name
            attributes["gen_ai.tool.name"] = event.name
            tool_type = _text_lookup(event, ("gen_ai.tool.type", "tool_type"))
            if tool_type is not None:
                attributes["gen_ai.tool.type"] = tool_type
            call_id = profile_of(event).get("tool_call_id")
            if not isinstance(call_id, str):
                call_id = _text_lookup(event, ("gen_ai.tool.call.id", "tool_call_id"))
            if call_id is not None:
                attributes["gen_ai.tool.call.id"] = call_id
            description = _text_lookup(event, ("gen_ai.tool.description", "tool_description"))
            if description is not None:
                attributes["gen_ai.tool.description"] = description
        elif category == "retriever":
            qualifier = _text_lookup(
                event, ("gen_ai.data_source.id", "data_source_id", "index_name", "collection_name")
            )
            if qualifier is not None:
                attributes["gen_ai.data_source.id"] = qualifier
            model = _text_lookup(event, _MODEL_KEYS)
            if model is not None:
                attributes[REQUEST_MODEL] = model
            top_k = lookup(event, ("gen_ai.retrieval.top_k", "top_k"), (int, float))
            if isinstance(top_k, (int, float)) and not isinstance(top_k, bool):
                attributes["gen_ai.retrieval.top_k"] = top_k
        else:  # embedder
            provider = provider_name(event)
            if provider is not None:
                attributes[PROVIDER] = provider
            _server(attributes, event)
            qualifier = _text_lookup(event, _MODEL_KEYS)
            if qualifier is not None:
                attributes[REQUEST_MODEL] = qualifier
        return SpanPlan(_qualified(operation, qualifier), _KINDS[category], attributes)

    def end(self, event: ScopeEvent, state: Any, exclude: frozenset[str]) -> Attributes:
        attributes: Attributes = {}
        if event.category == "llm":
            _llm_end(attributes, event)
        elif event.category == "embedder":
            data = data_of(event)
            model = data.get("model") if isinstance(data, dict) else None
            if not isinstance(model, str):
                model = _text_lookup(event, ("gen_ai.response.model",))
            if model is not None:
                attributes["gen_ai.response.model"] = model
            tokens = lookup(event, ("prompt_tokens", "input_tokens", "gen_ai.usage.input_tokens"), (int,))
            if type(tokens) is int:
                attributes["gen_ai.usage.input_tokens"] = tokens
        return attributes
