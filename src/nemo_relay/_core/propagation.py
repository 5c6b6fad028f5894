"""Causal context across process and task boundaries: PropagationContext, traceparent, forked stacks."""

from __future__ import annotations

import contextvars
from typing import Any

from nemo_relay._core.context import (
    ScopeStack,
    _active_event_var,
    _override_var,
    _propagation_parent_var,
    _propagation_root_var,
    _scope_stack_var,
    current,
    get_scope_stack,
    root_handle,
    trace_root,
)
from nemo_relay._core.errors import InvalidArgumentError, InvalidValueError
from nemo_relay._core.handles import ScopeHandle
from nemo_relay._core.ids import id_hex, id_str, parse_id, time_ns
from nemo_relay._core.types import ScopeType, type_name

_LOW_64 = (1 << 64) - 1


def _usable(value: int, field: str) -> int:
    if value & _LOW_64 == 0:  # all-zero, or a zero span-id half: unusable as a W3C parent id
        raise InvalidValueError(f"propagation context {field} is not a usable Relay identifier")
    return value


def _parse(value: object, field: str) -> int:
    if not isinstance(value, str):
        raise TypeError(f"argument '{field}': '{type_name(value)}' object is not an instance of 'str'")
    return _usable(parse_id(value), field)


class PropagationContext:
    """Transport-neutral causal context: the parent scope (and optionally the trace root) to continue from."""

    __slots__ = ("_parent", "_root", "_version")

    def __init__(self, parent_uuid: str, root_uuid: str | None = None, version: int = 1) -> None:
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"'{type_name(version)}' object cannot be interpreted as an integer")
        parent = _parse(parent_uuid, "parent_uuid")
        root = None if root_uuid is None else _parse(root_uuid, "root_uuid")
        if version != 1:
            raise InvalidValueError(f"unsupported propagation context version {version}; expected 1")
        self._parent = parent
        self._root = root
        self._version = version

    @classmethod
    def _from_ids(cls, parent: int, root: int | None) -> PropagationContext:
        ctx = cls.__new__(cls)
        ctx._parent = _usable(parent, "parent_uuid")
        ctx._root = None if root is None else _usable(root, "root_uuid")
        ctx._version = 1
        return ctx

    @property
    def version(self) -> int:
        """Format version; always 1."""
        return self._version

    @property
    def parent_uuid(self) -> str:
        """The scope or managed call that new work continues from."""
        return id_str(self._parent)

    @property
    def root_uuid(self) -> str | None:
        """The trace root, or ``None`` for a rootless context."""
        return None if self._root is None else id_str(self._root)

    def to_json(self) -> str:
        """Compact JSON: ``{"version":1,"root_uuid":...,"parent_uuid":...}`` (root omitted when absent)."""
        root = "" if self._root is None else f'"root_uuid":"{id_str(self._root)}",'
        return f'{{"version":{self._version},{root}"parent_uuid":"{id_str(self._parent)}"}}'

    @staticmethod
    def from_json(text: str) -> PropagationContext:
        """Parse the form written by ``to_json``; unknown fields are ignored."""
        import json  # deferred: keeps `import nemo_relay` cheap

        if not isinstance(text, (str, bytes, bytearray)):
            raise TypeError(f"argument 'text': '{type_name(text)}' object is not an instance of 'str'")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise InvalidValueError(f"invalid propagation context JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidValueError(f"invalid propagation context JSON: expected an object, got {_json_kind(raw)}")
        for field in ("version", "parent_uuid"):
            if field not in raw:
                raise InvalidValueError(f"invalid propagation context JSON: missing field `{field}`")
        version, parent, root = raw["version"], raw["parent_uuid"], raw.get("root_uuid")
        if type(version) is not int or not 0 <= version <= 65535:
            raise InvalidValueError(
                f"invalid propagation context JSON: invalid type: {_json_kind(version)}, expected u16 for `version`"
            )
        for field, value in (("parent_uuid", parent), ("root_uuid", root)):
            if value is not None and not isinstance(value, str):
                raise InvalidValueError(
                    f"invalid propagation context JSON: invalid type: {_json_kind(value)}, expected a UUID string "
                    f"for `{field}`"
                )
        if parent is None:
            raise InvalidValueError("invalid propagation context JSON: `parent_uuid` must not be null")
        return PropagationContext(parent, root, version)

    def to_traceparent(self) -> str:
        """W3C ``traceparent``: the root as trace id, the parent's low 64 bits as span id."""
        if self._root is None:
            raise InvalidValueError("rootless propagation context cannot be converted to traceparent")
        return traceparent(self._root, self._parent)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PropagationContext):
            return NotImplemented
        return (self._parent, self._root, self._version) == (other._parent, other._root, other._version)

    def __hash__(self) -> int:
        return hash((self._parent, self._root, self._version))

    def __repr__(self) -> str:
        return f"PropagationContext(parent_uuid={self.parent_uuid!r}, root_uuid={self.root_uuid!r}, version=1)"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"number `{value}`"
    if isinstance(value, str):
        return f"string {value!r}"
    return "an array" if isinstance(value, list) else "an object"


def traceparent(root: int, parent: int) -> str:
    """``00-{root as 32 hex}-{parent low 64 bits as 16 hex}-01``."""
    return f"00-{root:032x}-{parent & _LOW_64:016x}-01"


def _capture_parent() -> int:
    active = _active_event_var.get()
    return active if active is not None else current()._top._id


def capture_propagation_context() -> PropagationContext:
    """The current parent (the running managed call, else the top scope) as a rootless context."""
    get_scope_stack()
    parent = _propagation_parent_var.get()
    if parent is not None:
        return PropagationContext(parent, _propagation_root_var.get())
    return PropagationContext._from_ids(_capture_parent(), None)


def capture_propagation_context_with_root(root_uuid: str) -> PropagationContext:
    """``capture_propagation_context`` with an application-chosen trace root."""
    root = _parse(root_uuid, "root_uuid")
    get_scope_stack()
    parent = _propagation_parent_var.get()
    parent_id = _parse(parent, "parent_uuid") if parent is not None else _capture_parent()
    return PropagationContext._from_ids(parent_id, root)


def capture_traceparent() -> str:
    """W3C ``traceparent`` for the current Relay context (raises at a bare root)."""
    stack = current()
    active = _active_event_var.get()
    parent = active if active is not None else stack._top._id
    root = trace_root(stack, active)
    if root is None:
        raise InvalidArgumentError("no emitted Relay scope is available for traceparent capture")
    return traceparent(root, parent)


def create_scope_stack_from_propagation(ctx: PropagationContext) -> ScopeStack:
    """A new stack whose top is the propagated parent; the propagated handles never emit events."""
    if not isinstance(ctx, PropagationContext):
        raise TypeError(f"argument 'ctx': '{type_name(ctx)}' object is not an instance of 'PropagationContext'")
    parent, root = ctx._parent, ctx._root
    if root is None:
        return ScopeStack(root_handle(parent, "propagated-root"))
    bottom = root_handle(root, "propagated-root")
    bottom._prop_root = root
    bottom._prop_parent = parent
    if root == parent:
        return ScopeStack(bottom)
    top = ScopeHandle(parent, "propagated-parent", ScopeType.Unknown, 0, root, None, None, time_ns(), bottom)
    return ScopeStack(top)


def fork_asyncio_context() -> contextvars.Context:
    """A copy of the current context with an isolated stack continuing from the current parent.

    Run a task in it (``loop.create_task(coro, context=ctx)`` or ``ctx.run``) so its scopes nest under
    the current scope without sharing the parent's mutable stack or its scope-local middleware.
    """
    stack = create_scope_stack_from_propagation(capture_propagation_context())
    child = contextvars.copy_context()
    child.run(_install, stack)
    return child


def _install(stack: ScopeStack) -> None:
    _scope_stack_var.set(stack)
    _override_var.set(None)


def trace_id_hex(stack: ScopeStack) -> str | None:
    """32-hex trace id of ``stack`` (its propagated root or first scope), if it has one."""
    root = trace_root(stack)
    return None if root is None else id_hex(root)
