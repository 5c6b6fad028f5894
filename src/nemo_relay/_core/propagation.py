"""Causal context across process and task boundaries: PropagationContext, traceparent, forked stacks."""

from __future__ import annotations

import contextvars

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
from nemo_relay._core.ids import id_str, parse_id, time_ns
from nemo_relay._core.types import ScopeType, type_name

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

_LOW_64 = (1 << 64) - 1


def _usable(value: int, field: str, error: type[Exception] = InvalidValueError) -> int:
    if value & _LOW_64 == 0:  # all-zero, or a zero span-id half: unusable as a W3C parent id
        raise error(f"propagation context {field} is not a usable Relay identifier")
    return value


def _parse(value: object, field: str) -> int:
    if not isinstance(value, str):
        raise TypeError(f"argument '{field}': '{type_name(value)}' object is not an instance of 'str'")
    return parse_id(value)


def _version(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    if not 0 <= value <= 0xFFFF:  # the wire format carries a u16
        raise OverflowError("out of range integral type conversion attempted")
    return int(value)


class PropagationContext:
    """Transport-neutral causal context: the parent scope (and optionally the trace root) to continue from."""

    __slots__ = ("_parent", "_root", "_version")

    def __init__(self, parent_uuid: str, root_uuid: str | None = None, version: int = 1) -> None:
        # Same order as the reference: parse both ids, then the version, then usability.
        version = _version(version)
        parent = _parse(parent_uuid, "parent_uuid")
        root = None if root_uuid is None else _parse(root_uuid, "root_uuid")
        self._init(parent, root, version)

    def _init(self, parent: int, root: int | None, version: int) -> None:
        if version != 1:
            raise InvalidValueError(f"unsupported propagation context version {version}; expected 1")
        self._parent = _usable(parent, "parent_uuid")
        self._root = None if root is None else _usable(root, "root_uuid")
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

        if not isinstance(text, str):
            raise TypeError(f"argument 'text': '{type_name(text)}' object is not an instance of 'str'")
        prefix = "invalid propagation context JSON: "
        try:
            raw = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
        except ValueError as exc:
            raise InvalidValueError(f"{prefix}{exc}") from None
        except RecursionError:  # arrays or objects nested past what the parser can descend
            raise InvalidValueError(f"{prefix}recursion limit exceeded") from None
        if not isinstance(raw, dict):
            raise InvalidValueError(f"{prefix}expected an object, got {_json_kind(raw)}")
        for field in ("version", "parent_uuid"):
            if field not in raw:
                raise InvalidValueError(f"{prefix}missing field `{field}`")
        version, parent, root = raw["version"], raw["parent_uuid"], raw.get("root_uuid")
        if type(version) is not int or not 0 <= version <= 0xFFFF:
            raise InvalidValueError(f"{prefix}invalid type: {_json_kind(version)}, expected u16 for `version`")
        ids: list[int | None] = []
        for field, value in (("parent_uuid", parent), ("root_uuid", root)):
            if value is None and field == "root_uuid":
                ids.append(None)
                continue
            if not isinstance(value, str):
                raise InvalidValueError(
                    f"{prefix}invalid type: {_json_kind(value)}, expected a UUID string for `{field}`"
                )
            try:
                ids.append(parse_id(value))
            except ValueError as exc:
                raise InvalidValueError(f"{prefix}UUID parsing failed: {exc}") from None
        context = PropagationContext.__new__(PropagationContext)
        context._init(ids[0], ids[1], version)  # type: ignore[arg-type]
        return context

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


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate field `{key}`")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")  # NaN / Infinity / -Infinity


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


def capture_propagation_context_with_root(root_uuid: str | None) -> PropagationContext:
    """``capture_propagation_context`` with an application-chosen trace root (``None``: rootless)."""
    root = None if root_uuid is None else _usable(_parse(root_uuid, "root_uuid"), "root_uuid", InvalidArgumentError)
    get_scope_stack()
    parent = _propagation_parent_var.get()
    parent_id = parse_id(parent) if parent is not None else _capture_parent()
    return PropagationContext._from_ids(parent_id, root)


def capture_traceparent() -> str:
    """W3C ``traceparent`` for the current Relay context (raises at a bare root)."""
    parent_text = _propagation_parent_var.get()
    if parent_text is not None:
        root_text = _propagation_root_var.get()
        return PropagationContext(parent_text, root_text or parent_text).to_traceparent()
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
