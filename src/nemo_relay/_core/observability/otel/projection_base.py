"""What the three trace projections share: event accessors, LLM normalisation, display text, marks.

A projection turns a scope start into a span plan (name, kind, start attributes, private state), a
scope end into end attributes, and a mark into attributes; the span lifecycle, parentage, status,
error typing, metadata promotion and attribute mappings live in ``traces``. Projections only read
events, never change them.

LLM requests and responses are read through ``projection_llm``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay._core.jsonconv import peek
from nemo_relay._core.observability.otel.common import Attributes, compact_json, push_top_level_json_attributes

METRIC_SCHEMA_NAME = "nemo.relay.metric_measurements"

# Scope types whose spans are CLIENT in the full and OpenInference projections (calls out of process).
CLIENT_TYPES = frozenset(("llm", "tool", "retriever", "embedder", "reranker"))


class SpanPlan(NamedTuple):
    """How to open a span: its name, kind (``"internal"``/``"client"``), start attributes and the
    projection's private state, handed back at the end."""

    name: str
    kind: str
    attributes: Attributes
    state: Any = None


# --- event accessors (read-only views; never mutated) -----------------------------------------------


def data_of(event: ScopeEvent | MarkEvent) -> Any:
    """The event's ``data`` without copying (read-only)."""
    return peek(event._data)


def metadata_of(event: ScopeEvent | MarkEvent) -> Any:
    """The event's ``metadata`` without copying (read-only)."""
    return event._metadata


def profile_of(event: ScopeEvent | MarkEvent) -> dict[str, Any]:
    """The event's ``category_profile`` (``{}`` when absent), without copying."""
    profile = event._profile
    return profile if isinstance(profile, dict) else {}


def meta_str(metadata: Any, key: str) -> str | None:
    """``metadata[key]`` when metadata is an object and the value a string."""
    if isinstance(metadata, dict):
        value = metadata.get(key)
        if isinstance(value, str):
            return value
    return None


def without(value: Any, exclude: frozenset[str]) -> Any:
    """``value`` minus the ``exclude`` keys when it is an object (promoted metadata keys)."""
    if exclude and isinstance(value, dict):
        return {key: item for key, item in value.items() if key not in exclude}
    return value


def is_metric_schema(event: MarkEvent) -> bool:
    """Whether the mark uses the reserved metric-measurement schema name (never traced)."""
    schema = event._schema
    return schema is not None and schema.get("name") == METRIC_SCHEMA_NAME


# --- shared attribute groups ------------------------------------------------------------------------


def scope_identity(event: ScopeEvent) -> Attributes:
    """``nemo_relay.uuid``, ``nemo_relay.parent_uuid`` (``""`` when none) and ``nemo_relay.scope_type``."""
    return {
        "nemo_relay.uuid": event.uuid,
        "nemo_relay.parent_uuid": event.parent_uuid or "",
        "nemo_relay.scope_type": event.category,
    }


def start_payload(attributes: Attributes, event: ScopeEvent, exclude: frozenset[str], *, metadata: bool) -> None:
    """``nemo_relay.handle_attributes``, ``nemo_relay.start.data.*`` / ``.metadata.*`` / ``.input.*``."""
    push_top_level_json_attributes(attributes, "nemo_relay.handle_attributes", list(event._attrs))
    data = data_of(event)
    push_top_level_json_attributes(attributes, "nemo_relay.start.data", data)
    if metadata:
        push_top_level_json_attributes(attributes, "nemo_relay.start.metadata", without(metadata_of(event), exclude))
    push_top_level_json_attributes(attributes, "nemo_relay.start.input", data)


def end_output(attributes: Attributes, event: ScopeEvent) -> None:
    """``nemo_relay.end.output.*`` and, on a successful tool end, ``nemo_relay.tool.result.annotation``."""
    push_top_level_json_attributes(attributes, "nemo_relay.end.output", data_of(event))
    annotation = profile_of(event).get("tool_result_annotation")
    if event.category == "tool" and annotation is not None and not is_error(metadata_of(event)):
        attributes["nemo_relay.tool.result.annotation"] = compact_json(annotation)


def is_error(metadata: Any) -> bool:
    """Whether end metadata reports ``otel.status_code == "ERROR"``."""
    return meta_str(metadata, "otel.status_code") == "ERROR"


def session_identity(metadata: Any, stack_root: str | None) -> Attributes:
    """``session.id``, ``user.id``, ``nemo_relay.agent.kind`` and ``nemo_relay.session.instance_id``."""
    attributes: Attributes = {}
    for key, name in (("session_id", "session.id"), ("user_id", "user.id"), ("agent_kind", "nemo_relay.agent.kind")):
        value = meta_str(metadata, key)
        if value is not None:
            attributes[name] = value
    if stack_root is not None:
        attributes["nemo_relay.session.instance_id"] = stack_root
    return attributes


def mark_attributes(event: MarkEvent, exclude: frozenset[str]) -> Attributes:
    """The mark attributes of the full and OpenInference projections (``nemo_relay.mark.*``)."""
    attributes: Attributes = {
        "nemo_relay.mark.uuid": event.uuid,
        "nemo_relay.mark.parent_uuid": event.parent_uuid or "",
    }
    push_top_level_json_attributes(attributes, "nemo_relay.mark.data", data_of(event))
    push_top_level_json_attributes(attributes, "nemo_relay.mark.metadata", without(metadata_of(event), exclude))
    if event._category is not None:
        attributes["nemo_relay.mark.category"] = event._category
    profile = event._profile
    if profile:
        push_top_level_json_attributes(attributes, "nemo_relay.mark.category_profile", profile)
    return attributes


# --- the projection interface ------------------------------------------------------------------------


class Projection:
    """One way of turning events into spans; ``traces`` drives it.

    ``exclude`` arguments name metadata keys that metadata promotion turned into top-level attributes:
    they are left out of the projection's own metadata attributes.
    """

    #: Endpoint ``type`` this projection implements.
    name = ""
    #: Marks become span events or spans (``gen_ai`` drops them).
    traces_marks = True
    #: ``attribute_mappings`` apply (full and OpenInference only).
    applies_mappings = True
    #: Trace roots and ``session.start`` marks carry the session identity.
    session_identity = True
    #: Failed spans carry an ``error.type`` attribute (OpenInference reports only the exception event).
    error_type_attribute = True

    def start(self, event: ScopeEvent, exclude: frozenset[str]) -> SpanPlan:
        """Name, kind and start attributes of the span a scope start opens."""
        raise NotImplementedError

    def end(self, event: ScopeEvent, state: Any, exclude: frozenset[str]) -> Attributes:
        """Attributes a scope end adds (``state`` is what ``start`` returned in its plan)."""
        raise NotImplementedError

    def mark(self, event: MarkEvent, exclude: frozenset[str]) -> Attributes:
        """Attributes of a mark, as a span event or a mark span."""
        return mark_attributes(event, exclude)

    def mark_tool(self, event: MarkEvent) -> Attributes:
        """Extra attributes of a mark projected as a tool span."""
        return {"nemo_relay.mark.projection": "tool"}

    def orphan(self) -> Attributes:
        """Extra attributes of a mark span that has no active parent span."""
        return {"nemo_relay.mark.orphan": True}
