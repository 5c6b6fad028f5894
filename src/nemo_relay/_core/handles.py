"""Handles: the identity of an open scope, tool call or LLM call.

A ``ScopeHandle`` is also the frame of its scope stack: ``_below`` links to the scope under it, so a
stack is a persistent linked list and a snapshot is one reference to its top handle. Frames never
change shape after the push; only a stack's top pointer moves.
"""

from __future__ import annotations

from nemo_relay._core.ids import id_str
from nemo_relay._core.jsonconv import copy_json
from nemo_relay._core.types import JsonValue, LLMAttributes, ScopeAttributes, ScopeType, ToolAttributes

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.registry import LocalRegistrations, View


class ScopeHandle:
    """Read-only identity of a scope on a scope stack (compare handles by ``uuid``)."""

    __slots__ = (
        "_id",
        "_name",
        "_type",
        "_attrs",
        "_parent",
        "_data",
        "_metadata",
        "_start",
        "_below",
        # Set lazily; read with try/except so construction stays cheap.
        "_locals",
        "_view",
        "_view_version",
        "_fresh",
        "_prop_root",
        "_prop_parent",
    )

    if TYPE_CHECKING:
        _locals: LocalRegistrations
        _view: View | None
        _view_version: int
        _fresh: bool
        _prop_root: int | None
        _prop_parent: int | None

    def __init__(
        self,
        id_: int,
        name: str,
        scope_type: ScopeType,
        attrs: int,
        parent: int | None,
        data: JsonValue,
        metadata: JsonValue,
        start_ns: int,
        below: ScopeHandle | None,
    ) -> None:
        self._id = id_
        self._name = name
        self._type = scope_type
        self._attrs = attrs
        self._parent = parent
        self._data = data
        self._metadata = metadata
        self._start = start_ns
        self._below = below

    @property
    def uuid(self) -> str:
        """UUIDv7 of the scope, shared by its start and end events."""
        return id_str(self._id)

    @property
    def name(self) -> str:
        """Name given at push."""
        return self._name

    @property
    def scope_type(self) -> ScopeType:
        """The scope's ``ScopeType``."""
        return self._type

    @property
    def attributes(self) -> ScopeAttributes:
        """The scope's attribute flags."""
        return ScopeAttributes(self._attrs)

    @property
    def parent_uuid(self) -> str | None:
        """UUID of the parent scope; ``None`` only for a stack's root."""
        return None if self._parent is None else id_str(self._parent)

    @property
    def data(self) -> JsonValue:
        """The ``data`` given at push (kept on the handle, never emitted); a copy."""
        return copy_json(self._data)

    @property
    def metadata(self) -> JsonValue:
        """The ``metadata`` given at push; a copy."""
        return copy_json(self._metadata)

    def __repr__(self) -> str:
        return f"ScopeHandle(name={self._name!r}, uuid={self.uuid!r})"

    def _copy(self) -> ScopeHandle:
        """A detached copy (no frame links) for callers that ask for "the current handle"."""
        return ScopeHandle(
            self._id, self._name, self._type, self._attrs, self._parent, self._data, self._metadata, self._start, None
        )


class _CallHandle:
    """Shared shape of tool and LLM call handles (they are not stack frames)."""

    __slots__ = ("_id", "_name", "_attrs", "_parent", "_data", "_metadata", "_start")

    _KIND = ""

    def __init__(
        self, id_: int, name: str, attrs: int, parent: int | None, data: JsonValue, metadata: JsonValue, start_ns: int
    ) -> None:
        self._id = id_
        self._name = name
        self._attrs = attrs
        self._parent = parent
        self._data = data
        self._metadata = metadata
        self._start = start_ns

    @property
    def uuid(self) -> str:
        """UUIDv7 of the call, shared by its start and end events."""
        return id_str(self._id)

    @property
    def name(self) -> str:
        """Call name (the tool or model call label)."""
        return self._name

    @property
    def parent_uuid(self) -> str | None:
        """UUID of the scope the call belongs to."""
        return None if self._parent is None else id_str(self._parent)

    @property
    def data(self) -> JsonValue:
        """The ``data`` given at the call (a copy); used as the end payload fallback."""
        return copy_json(self._data)

    @property
    def metadata(self) -> JsonValue:
        """The ``metadata`` given at the call (a copy)."""
        return copy_json(self._metadata)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, uuid={self.uuid!r})"


class ToolHandle(_CallHandle):
    """Read-only identity of an open tool call (from ``tools.call``); pass it to ``tools.call_end``."""

    __slots__ = ("_tool_call_id",)

    def __init__(
        self,
        id_: int,
        name: str,
        attrs: int,
        parent: int | None,
        data: JsonValue,
        metadata: JsonValue,
        start_ns: int,
        tool_call_id: str | None,
    ) -> None:
        self._id = id_  # assigned here rather than via super(): this runs on every tool call
        self._name = name
        self._attrs = attrs
        self._parent = parent
        self._data = data
        self._metadata = metadata
        self._start = start_ns
        self._tool_call_id = tool_call_id

    @property
    def attributes(self) -> ToolAttributes:
        """The call's tool flags."""
        return ToolAttributes(self._attrs)


class LLMHandle(_CallHandle):
    """Read-only identity of an open LLM call (from ``llm.call``); pass it to ``llm.call_end``."""

    __slots__ = ("_model_name", "_frame")

    def __init__(
        self,
        id_: int,
        name: str,
        attrs: int,
        parent: int | None,
        data: JsonValue,
        metadata: JsonValue,
        start_ns: int,
        model_name: str | None,
        frame: ScopeHandle,
    ) -> None:
        self._id = id_
        self._name = name
        self._attrs = attrs
        self._parent = parent
        self._data = data
        self._metadata = metadata
        self._start = start_ns
        self._model_name = model_name
        self._frame = frame  # the stack top when the call started: end events use its view

    @property
    def attributes(self) -> LLMAttributes:
        """The call's LLM flags."""
        return LLMAttributes(self._attrs)
