"""The ``full`` projection: every Relay field, under ``nemo_relay.*`` attribute names.

Span name = event name; CLIENT for llm/tool/retriever/embedder/reranker scopes, else INTERNAL. Start
attributes carry the scope identity and top-level projections of the handle attributes, start data,
metadata and input; end attributes the end data, metadata, output, the tool-result annotation and,
for LLM calls, the model, cost and optimization summary.
"""

from __future__ import annotations

from typing import Any

from nemo_relay._core.events import ScopeEvent
from nemo_relay._core.observability.otel.common import Attributes, push_top_level_json_attributes
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
    cost_of,
    llm_request,
    llm_response,
    optimization_attributes,
    request_model,
    response_model,
)


class FullProjection(Projection):
    """``type = "full"``."""

    name = "full"

    def start(self, event: ScopeEvent, exclude: frozenset[str]) -> SpanPlan:
        attributes = scope_identity(event)
        tool_call_id = profile_of(event).get("tool_call_id")
        if isinstance(tool_call_id, str):
            attributes["nemo_relay.tool_call_id"] = tool_call_id
        start_payload(attributes, event, exclude, metadata=True)
        model = None
        if event.category == "llm":
            model = request_model(event, llm_request(event))
            if model is not None:
                attributes["nemo_relay.model_name"] = model
        kind = "client" if event.category in CLIENT_TYPES else "internal"
        return SpanPlan(event.name, kind, attributes, model)

    def end(self, event: ScopeEvent, state: Any, exclude: frozenset[str]) -> Attributes:
        attributes: Attributes = {}
        push_top_level_json_attributes(attributes, "nemo_relay.end.data", data_of(event))
        push_top_level_json_attributes(attributes, "nemo_relay.end.metadata", without(metadata_of(event), exclude))
        end_output(attributes, event)
        if event.category == "llm":
            response = llm_response(event)
            cost = cost_of(response)
            if cost is not None:
                attributes["nemo_relay.llm.cost.total"] = cost[0]
                attributes["nemo_relay.llm.cost.currency"] = cost[1]
            model = response_model(event, response, state)
            if model is not None:
                attributes["nemo_relay.model_name"] = model
            attributes.update(optimization_attributes(response))
        return attributes

    def mark_tool(self, event: Any) -> Attributes:
        return {"nemo_relay.mark.projection": "tool", "nemo_relay.scope_type": "tool"}
