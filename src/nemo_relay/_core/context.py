"""① Which scope stack is current, and the stack itself.

Resolution order for "the current stack":
  1. an override installed for callbacks (the emission-time snapshot) or by ``use_scope_stack``;
  2. the ``_scope_stack_var`` ContextVar (copied into asyncio tasks, so tasks created after a stack
     exists share it);
  3. an explicit per-thread binding from ``set_thread_scope_stack``;
  4. otherwise a new stack with a fresh root is created and stored in the ContextVar.

A stack is a mutable top pointer over immutable frames (``ScopeHandle._below``), guarded by a lock so
threads that share a propagated stack cannot lose a push or pop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from nemo_relay._core.errors import InvalidArgumentError, NotFoundError
from nemo_relay._core.handles import ScopeHandle
from nemo_relay._core.ids import id_hex, id_str, new_id, time_ns
from nemo_relay._core.types import ScopeType, type_name


class ScopeStack:
    """An isolated scope stack; opaque to callers."""

    __slots__ = ("_top", "_lock", "__weakref__")

    def __init__(self, top: ScopeHandle) -> None:
        self._top = top
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "<ScopeStack>"

    def _handles(self) -> list[ScopeHandle]:
        """Frames from the root (index 0) to the top."""
        frames: list[ScopeHandle] = []
        frame: ScopeHandle | None = self._top
        while frame is not None:
            frames.append(frame)
            frame = frame._below
        frames.reverse()
        return frames


def root_handle(id_: int | None = None, name: str = "root") -> ScopeHandle:
    """A stack bottom: an Agent scope that is never emitted and never popped."""
    root = ScopeHandle(new_id() if id_ is None else id_, name, ScopeType.Agent, 0, None, None, None, time_ns(), None)
    root._fresh = True
    return root


def new_stack() -> ScopeStack:
    """A fresh stack holding only a new root."""
    return ScopeStack(root_handle())


# The ContextVar is the source of truth for a context; reference-compatible code sets it directly.
_scope_stack_var: ContextVar[ScopeStack] = ContextVar("scope_stack")
# Holds a ScopeStack, or a ScopeHandle snapshot that is turned into a stack on first use.
# Typed view of ``_scope_stack_var.get`` for the "unset" probe.
_stack_in_context: Callable[[None], ScopeStack | None] = _scope_stack_var.get
_override_var: ContextVar[ScopeStack | ScopeHandle | None] = ContextVar("nemo_relay_stack_override", default=None)
# Id of the managed tool/LLM call whose intercepts or callback are running (propagation parent).
_active_event_var: ContextVar[int | None] = ContextVar("nemo_relay_active_event", default=None)
_propagation_parent_var: ContextVar[str | None] = ContextVar("nemo_relay_propagation_parent", default=None)
_propagation_root_var: ContextVar[str | None] = ContextVar("nemo_relay_propagation_root", default=None)
# True while a queued publication callback (a tool/LLM sanitizer) runs on the emitter's loop.
_publication_callback_var: ContextVar[bool] = ContextVar("nemo_relay_publication_callback", default=False)


class _ThreadSlot(threading.local):
    stack: ScopeStack | None = None
    explicit: bool = False


_thread_slot = _ThreadSlot()


class ThreadScopeStackBinding:
    """A captured per-thread binding: the stack and whether it was bound explicitly."""

    __slots__ = ("stack", "explicit")

    def __init__(self, stack: ScopeStack | None, explicit: bool) -> None:
        self.stack = stack
        self.explicit = explicit

    def __repr__(self) -> str:
        return f"ThreadScopeStackBinding(explicit={self.explicit})"


def current() -> ScopeStack:
    """The stack that scope, tool, LLM and mark calls use in this context."""
    override = _override_var.get()
    if override is not None:
        if type(override) is ScopeStack:
            return override
        snapshot = ScopeStack(override)  # type: ignore[arg-type]
        _override_var.set(snapshot)
        return snapshot
    found = _stack_in_context(None)
    if found is not None:
        return found
    slot = _thread_slot
    if slot.explicit and slot.stack is not None:
        return slot.stack
    stack = new_stack()
    _scope_stack_var.set(stack)
    return stack


def get_scope_stack() -> ScopeStack:
    """The context's stack, created and stored in the ContextVar when there is none."""
    stack = _stack_in_context(None)
    if stack is None:
        stack = new_stack()
        _scope_stack_var.set(stack)
    slot = _thread_slot
    if not slot.explicit:
        slot.stack = stack
    return stack


def scope_stack_active() -> bool:
    """Whether a stack is bound: ContextVar, override, or explicit thread binding."""
    if _stack_in_context(None) is not None or _override_var.get() is not None:
        return True
    return _thread_slot.explicit


def set_thread_scope_stack(stack: ScopeStack) -> None:
    """Bind ``stack`` to the current OS thread (used when the context has no stack)."""
    _expect_stack(stack, "stack")
    _thread_slot.stack = stack
    _thread_slot.explicit = True


def propagate_scope_to_thread() -> ScopeStack:
    """The current stack, for handing to ``set_thread_scope_stack`` in another thread."""
    stack = _stack_in_context(None)
    if stack is not None:
        return stack
    override = _override_var.get()
    if override is not None:
        return current()
    if _thread_slot.explicit and _thread_slot.stack is not None:
        return _thread_slot.stack
    raise RuntimeError(
        "no active scope stack in current context; call nemo_relay.get_scope_stack() or nemo_relay.scope.push() first"
    )


def capture_thread_binding() -> ThreadScopeStackBinding:
    """Snapshot of this thread's binding, for ``restore_thread_binding``."""
    return ThreadScopeStackBinding(_thread_slot.stack, _thread_slot.explicit)


def restore_thread_binding(binding: ThreadScopeStackBinding) -> None:
    """Restore a binding captured by ``capture_thread_binding``."""
    if not isinstance(binding, ThreadScopeStackBinding):
        raise TypeError(
            f"argument 'binding': '{type_name(binding)}' object is not an instance of 'ThreadScopeStackBinding'"
        )
    _thread_slot.stack = binding.stack
    _thread_slot.explicit = binding.explicit


@contextmanager
def use_scope_stack(stack: ScopeStack) -> Iterator[ScopeStack]:
    """Make ``stack`` current for the ``with`` block, then restore every previous binding."""
    _expect_stack(stack, "stack")
    binding = capture_thread_binding()
    stack_token = _scope_stack_var.set(stack)
    override_token = _override_var.set(None)
    root = trace_root(stack)
    root_token = _propagation_root_var.set(None if root is None else id_hex(root))
    try:
        yield stack
    finally:
        _propagation_root_var.reset(root_token)
        _override_var.reset(override_token)
        _scope_stack_var.reset(stack_token)
        restore_thread_binding(binding)


def _expect_stack(stack: object, argument: str) -> None:
    if type(stack) is not ScopeStack:
        raise TypeError(f"argument '{argument}': '{type_name(stack)}' object is not an instance of 'ScopeStack'")


# --- frames -----------------------------------------------------------------------------------------


def pop_frame(stack: ScopeStack, handle_id: int) -> ScopeHandle:
    """Remove the top frame if it is ``handle_id``; otherwise raise and leave the stack unchanged."""
    with stack._lock:
        top = stack._top
        if top._id == handle_id and top._below is not None:
            stack._top = top._below
            return top
        frame: ScopeHandle | None = top
        while frame is not None:
            if frame._id == handle_id:
                if frame is top:
                    raise InvalidArgumentError("root scope cannot be removed")
                raise InvalidArgumentError("scope handle is not at the top of the stack")
            frame = frame._below
    raise NotFoundError("scope handle not found")


def find_frame(top: ScopeHandle, handle_id: int) -> ScopeHandle | None:
    """The frame with ``handle_id`` at or below ``top``."""
    frame: ScopeHandle | None = top
    while frame is not None:
        if frame._id == handle_id:
            return frame
        frame = frame._below
    return None


def bottom_and_first(top: ScopeHandle) -> tuple[ScopeHandle, ScopeHandle | None]:
    """The stack's root frame and the frame just above it (``stack[1]``), if any."""
    first: ScopeHandle | None = None
    frame = top
    while frame._below is not None:
        first = frame
        frame = frame._below
    return frame, first


def trace_root(stack: ScopeStack, active: int | None = None) -> int | None:
    """Trace root id: the propagated root, else ``stack[1]``, else the active managed call."""
    bottom, first = bottom_and_first(stack._top)
    propagated: int | None = getattr(bottom, "_prop_root", None)
    if propagated is not None:
        return propagated
    if first is not None:
        return first._id
    return active


def owning_agent(top: ScopeHandle, parent_id: int) -> ScopeHandle | None:
    """Nearest Agent frame at or below the frame ``parent_id`` (the root counts as an Agent)."""
    frame = find_frame(top, parent_id)
    while frame is not None:
        if frame._type is ScopeType.Agent:
            return frame
        frame = frame._below
    return None


def emission_stack_root() -> tuple[str, str | None, str | None] | None:
    """Inside a subscriber call: the root of the stack the event was emitted on, as
    ``(root uuid, propagated root uuid or None, propagated parent uuid or None)``; None elsewhere.

    Exporters use it to tell top-level scopes (whose parent is this root) from nested ones, and to
    parent spans under a propagated remote parent.
    """
    override = _override_var.get()
    if override is None:
        return None
    top = override._top if type(override) is ScopeStack else override
    bottom, _ = bottom_and_first(top)  # type: ignore[arg-type]
    prop_root: int | None = getattr(bottom, "_prop_root", None)
    prop_parent: int | None = getattr(bottom, "_prop_parent", None)
    return (
        id_str(bottom._id),
        None if prop_root is None else id_str(prop_root),
        None if prop_parent is None else id_str(prop_parent),
    )
