"""Lifecycle events as delivered to subscribers, and their ATOF 0.1 JSON form.

Events are built on the caller's thread with integer ids and nanosecond timestamps; the strings
(uuids, RFC 3339 times) are made on first read, normally on the dispatcher thread. The ``_view``,
``_ctx`` and ``_snap`` slots carry what the dispatcher needs and are cleared once delivered.
"""

from __future__ import annotations

from contextvars import Context

from nemo_relay._core.ids import id_str, rfc3339
from nemo_relay._core.jsonconv import copy_json, copy_sorted, peek
from nemo_relay._core.types import JsonValue, LogSeverity

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from nemo_relay._core.handles import ScopeHandle
    from nemo_relay._core.registry import View

ATOF_VERSION = "0.1"
SEVERITY_KEY = "nemo_relay.log.severity"
_SEVERITIES = {
    "trace": LogSeverity.Trace,
    "debug": LogSeverity.Debug,
    "info": LogSeverity.Info,
    "warn": LogSeverity.Warn,
    "warning": LogSeverity.Warn,
    "error": LogSeverity.Error,
}


class _Event:
    __slots__ = (
        "_id",
        "_parent",
        "_ts",
        "_name",
        "_category",
        "_data",
        "_metadata",
        "_profile",
        "_schema",
        # Dispatch envelope, released after delivery.
        "_view",
        "_ctx",
        "_snap",
        "_xf",
        "_loop",
        # Text caches, filled on first read.
        "_uuid_text",
        "_ts_text",
    )

    kind: ClassVar[str]
    atof_version: ClassVar[str] = ATOF_VERSION

    if TYPE_CHECKING:
        _id: int
        _parent: int | None
        _ts: int
        _name: str
        _category: str | None
        _data: JsonValue
        _metadata: JsonValue
        _profile: dict[str, JsonValue] | None
        _schema: dict[str, str] | None
        _view: View | None
        _ctx: Context | None
        _snap: ScopeHandle | None
        _xf: Any
        _loop: Any
        _uuid_text: str
        _ts_text: str

    @property
    def uuid(self) -> str:
        """Event id; a scope's start and end share it."""
        try:
            return self._uuid_text
        except AttributeError:
            self._uuid_text = text = id_str(self._id)
            return text

    @property
    def parent_uuid(self) -> str | None:
        """Id of the containing scope when the event was emitted."""
        return None if self._parent is None else id_str(self._parent)

    @property
    def timestamp(self) -> str:
        """Wall-clock time of the event, RFC 3339 in UTC."""
        try:
            return self._ts_text
        except AttributeError:
            self._ts_text = text = rfc3339(self._ts)
            return text

    @property
    def name(self) -> str:
        """Human-readable label."""
        return self._name

    # Payload getters return copies: every subscriber shares one event, and none may change
    # what the others see.

    @property
    def data(self) -> JsonValue:
        """Application payload (scope input/output, tool args/result, mark data); a copy."""
        return copy_sorted(peek(self._data))

    @property
    def metadata(self) -> JsonValue:
        """Tracing and correlation envelope; a copy."""
        return copy_sorted(self._metadata)

    @property
    def category_profile(self) -> dict[str, JsonValue] | None:
        """Category-specific fields (``model_name``, ``tool_call_id``, ``subtype`` ...); a copy."""
        return copy_sorted(self._profile)  # type: ignore[return-value]

    @property
    def data_schema(self) -> dict[str, str] | None:
        """``{"name", "version"}`` of the schema ``data`` follows, if declared; a copy."""
        return None if self._schema is None else dict(self._schema)

    def to_json(self) -> str:
        """Compact ATOF 0.1 JSON with keys sorted at every level."""
        import json  # deferred: keeps `import nemo_relay` cheap

        return json.dumps(self._record(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        """The ATOF 0.1 record as a plain dict (a deep copy, keys sorted at every level like ``to_json()``)."""
        return copy_sorted(self._record())  # type: ignore[return-value]

    def _record(self) -> dict[str, Any]:
        raise NotImplementedError


class ScopeEvent(_Event):
    """Start or end of a scope, tool call, LLM call or guardrail evaluation."""

    __slots__ = ("_phase", "_attrs")
    kind: ClassVar[str] = "scope"

    def __init__(
        self,
        id_: int,
        parent: int | None,
        ts: int,
        name: str,
        category: str,
        phase: str,
        attrs: tuple[str, ...],
        data: JsonValue,
        metadata: JsonValue,
        profile: dict[str, JsonValue] | None,
        view: View | None,
        ctx: Context | None,
        snap: ScopeHandle | None,
        xf: Any = None,
    ) -> None:
        self._id = id_
        self._parent = parent
        self._ts = ts
        self._name = name
        self._category = category
        self._phase = phase
        self._attrs = attrs
        self._data = data
        self._metadata = metadata
        self._profile = profile
        self._schema = None
        self._view = view
        self._ctx = ctx
        self._snap = snap
        self._xf = xf

    @property
    def scope_category(self) -> str:
        """``"start"`` or ``"end"``."""
        return self._phase

    @property
    def category(self) -> str:
        """Closed vocabulary: agent, function, tool, llm, retriever, ... (see ``ScopeType``)."""
        return self._category  # type: ignore[return-value]

    @property
    def attributes(self) -> list[str]:
        """Sorted, deduplicated attribute flags (``parallel``, ``remote``, ``streaming`` ...)."""
        return list(self._attrs)

    @property
    def annotated_request(self) -> Any:
        """The codec view of an LLM start event's request (``category_profile.annotated_request``), else None."""
        value = None if self._profile is None else self._profile.get("annotated_request")
        if type(value) is not dict:
            return None
        from nemo_relay._core.annotated import AnnotatedLLMRequest

        try:
            return AnnotatedLLMRequest._from_json(copy_json(value))  # type: ignore[arg-type]
        except ValueError:
            return None  # an event sanitizer rewrote it into something else

    @property
    def annotated_response(self) -> Any:
        """The codec view of an LLM end event's response (``category_profile.annotated_response``), else None."""
        value = None if self._profile is None else self._profile.get("annotated_response")
        if type(value) is not dict:
            return None
        from nemo_relay._core.annotated import AnnotatedLLMResponse

        try:
            return AnnotatedLLMResponse._from_json(copy_json(value))  # type: ignore[arg-type]
        except ValueError:
            return None  # an event sanitizer rewrote it into something else

    def _record(self) -> dict[str, Any]:
        return {
            "atof_version": ATOF_VERSION,
            "attributes": list(self._attrs),
            "category": self._category,
            "category_profile": self._profile,
            "data": peek(self._data),
            "data_schema": self._schema,
            "kind": "scope",
            "metadata": self._metadata,
            "name": self._name,
            "parent_uuid": self.parent_uuid,
            "scope_category": self._phase,
            "timestamp": self.timestamp,
            "uuid": self.uuid,
        }


class MarkEvent(_Event):
    """A point-in-time event: explicit marks, metrics, rejections, chunks and pending marks."""

    __slots__ = ()
    kind: ClassVar[str] = "mark"

    def __init__(
        self,
        id_: int,
        parent: int | None,
        ts: int,
        name: str,
        data: JsonValue,
        metadata: JsonValue,
        schema: dict[str, str] | None,
        view: View | None,
        ctx: Context | None,
        snap: ScopeHandle | None,
        category: str | None = None,
        profile: dict[str, JsonValue] | None = None,
    ) -> None:
        self._id = id_
        self._parent = parent
        self._ts = ts
        self._name = name
        self._data = data
        self._metadata = metadata
        self._schema = schema
        self._view = view
        self._ctx = ctx
        self._snap = snap
        self._xf = None
        self._category = category
        self._profile = profile

    @property
    def category(self) -> str | None:
        """Optional category of the mark."""
        return self._category

    @property
    def severity(self) -> LogSeverity | None:
        """Severity parsed from ``metadata["nemo_relay.log.severity"]``, if present and known."""
        metadata = self._metadata
        if type(metadata) is dict:
            label = metadata.get(SEVERITY_KEY)
            if isinstance(label, str):
                return _SEVERITIES.get(label.lower())
        return None

    def _record(self) -> dict[str, Any]:
        return {
            "atof_version": ATOF_VERSION,
            "category": self._category,
            "category_profile": self._profile,
            "data": peek(self._data),
            "data_schema": self._schema,
            "kind": "mark",
            "metadata": self._metadata,
            "name": self._name,
            "parent_uuid": self.parent_uuid,
            "timestamp": self.timestamp,
            "uuid": self.uuid,
        }


Event = ScopeEvent | MarkEvent
