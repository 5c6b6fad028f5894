"""② Registrations: global tables, scope-local tables, and the resolved view a call or event sees.

Order is decided when something registers, not per call: each table keeps its entries sorted by
(priority, name) — lower priority runs first — and the merged view for a frame is cached on the frame
until any registration anywhere changes (one global version counter). The common case, nothing
registered, resolves to a shared empty view with one attribute read and one comparison.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from nemo_relay._core.aio import running_loop
from nemo_relay._core.errors import AlreadyExistsError, InvalidArgumentError
from nemo_relay._core.handles import ScopeHandle

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

# Families, in the reference's RuntimeRegistrationKind declaration order.
SUBSCRIBER = 0
EVENT_METADATA_INJECTOR = 1
MARK_SANITIZE = 2
SCOPE_SANITIZE_START = 3
SCOPE_SANITIZE_END = 4
TOOL_SANITIZE_REQUEST = 5
TOOL_SANITIZE_RESPONSE = 6
TOOL_CONDITIONAL_EXECUTION = 7
TOOL_REQUEST_INTERCEPT = 8
TOOL_EXECUTION_INTERCEPT = 9
LLM_SANITIZE_REQUEST = 10
LLM_SANITIZE_RESPONSE = 11
LLM_CONDITIONAL_EXECUTION = 12
LLM_REQUEST_INTERCEPT = 13
LLM_EXECUTION_INTERCEPT = 14
LLM_STREAM_EXECUTION_INTERCEPT = 15
FAMILY_COUNT = 16
# Extra slot of a view: whether injectors or event sanitizers make events need processing.
PUBLICATION = 16

FAMILY_KINDS: tuple[str, ...] = (
    "subscriber",
    "event_metadata_injector",
    "mark_sanitize_guardrail",
    "scope_sanitize_start_guardrail",
    "scope_sanitize_end_guardrail",
    "tool_sanitize_request_guardrail",
    "tool_sanitize_response_guardrail",
    "tool_conditional_execution_guardrail",
    "tool_request_intercept",
    "tool_execution_intercept",
    "llm_sanitize_request_guardrail",
    "llm_sanitize_response_guardrail",
    "llm_conditional_execution_guardrail",
    "llm_request_intercept",
    "llm_execution_intercept",
    "llm_stream_execution_intercept",
)


class Entry:
    """One registration: ``callback`` runs in ``(priority, name)`` order; ``break_chain`` stops after it.

    ``loop`` is the event loop running at registration, where the callback's coroutines run when the
    emitting loop is gone.
    """

    __slots__ = ("name", "priority", "callback", "break_chain", "loop")

    def __init__(self, name: str, priority: int, callback: Callable[..., Any], break_chain: bool = False) -> None:
        self.name = name
        self.priority = priority
        self.callback = callback
        self.break_chain = break_chain
        self.loop = running_loop()

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, priority={self.priority})"


class Table:
    """Entries of one family in one place (global, or one scope), kept in run order."""

    __slots__ = ("by_name", "ordered")

    def __init__(self) -> None:
        self.by_name: dict[str, Entry] = {}
        self.ordered: tuple[Entry, ...] = ()

    def add(self, family: int, entry: Entry) -> None:
        if entry.name in self.by_name:
            suffix = " subscriber already exists" if family == SUBSCRIBER else " already exists"
            raise AlreadyExistsError(f"{entry.name}{suffix}")
        self.by_name[entry.name] = entry
        self._reorder(family)

    def remove(self, family: int, name: str) -> bool:
        if self.by_name.pop(name, None) is None:
            return False
        self._reorder(family)
        return True

    def _reorder(self, family: int) -> None:
        entries = self.by_name.values()
        if family == SUBSCRIBER:
            self.ordered = tuple(entries)  # registration order; the reference leaves it unspecified
        else:
            self.ordered = tuple(sorted(entries, key=lambda e: (e.priority, e.name)))


class LocalRegistrations:
    """The tables owned by one scope; dropped with the scope when it is popped."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: list[Table | None] = [None] * FAMILY_COUNT


# A view is one tuple of entries per family, indexed by the family constants above, plus the
# PUBLICATION flag.
if TYPE_CHECKING:
    View = tuple[Any, ...]
EMPTY_VIEW: View = ((),) * FAMILY_COUNT + (False,)

_lock = threading.RLock()
_global: list[Table] = [Table() for _ in range(FAMILY_COUNT)]
_version = 0
_global_view: View = EMPTY_VIEW
_global_view_version = 0


def version() -> int:
    """Current registration version (bumped by every change)."""
    return _version


def _bump() -> None:
    global _version
    _version += 1


def register_global(family: int, entry: Entry) -> None:
    """Add a global registration; duplicate names raise ``AlreadyExistsError``."""
    with _lock:
        _global[family].add(family, entry)
        _bump()


def deregister_global(family: int, name: str) -> bool:
    """Remove a global registration; ``False`` when there was none by that name."""
    with _lock:
        removed = _global[family].remove(family, name)
        if removed:
            _bump()
        return removed


def global_entries(family: int) -> tuple[Entry, ...]:
    """Global entries of one family, in run order."""
    return _global[family].ordered


def register_local(frame: ScopeHandle, family: int, entry: Entry) -> None:
    """Add a registration owned by the scope ``frame`` (a frame on a live stack)."""
    with _lock:
        try:
            local = frame._locals
        except AttributeError:
            local = frame._locals = LocalRegistrations()
        table = local.tables[family]
        if table is None:
            table = local.tables[family] = Table()
        table.add(family, entry)
        _bump()


def deregister_local(frame: ScopeHandle, family: int, name: str) -> bool:
    """Remove a registration owned by ``frame``."""
    with _lock:
        try:
            table = frame._locals.tables[family]
        except AttributeError:
            return False
        if table is None or not table.remove(family, name):
            return False
        _bump()
        return True


def view_of(frame: ScopeHandle) -> View:
    """Everything visible from ``frame``: global entries, then each scope's own from root to ``frame``."""
    if _gates:
        return _resolve_gated(frame)
    try:
        if frame._view_version == _version:
            return frame._view  # type: ignore[return-value]
    except AttributeError:
        pass
    return _resolve(frame)


def inherit(frame: ScopeHandle, below: ScopeHandle) -> View:
    """View of a just-pushed ``frame`` (no registrations of its own yet): its parent frame's view."""
    if _gates:
        return _resolve_gated(below)  # gate verdicts may change at any time: nothing is cached
    current = _version  # read first: if it moves meanwhile, the cache is simply stale and recomputed
    view = view_of(below)
    frame._view = view
    frame._view_version = current
    return view


def _global_view_now() -> View:
    global _global_view, _global_view_version
    if _global_view_version != _version:
        _global_view = _with_flag([table.ordered for table in _global])
        _global_view_version = _version
    return _global_view


def _resolve(frame: ScopeHandle) -> View:
    with _lock:
        current = _version
        # Walk down to the nearest frame whose cache is still valid, then build upward from it.
        pending: list[ScopeHandle] = []
        node: ScopeHandle | None = frame
        base: View | None = None
        while node is not None:
            if getattr(node, "_view_version", -1) == current:
                base = node._view
                break
            pending.append(node)
            node = node._below
        if base is None:
            base = _global_view_now()
        for node in reversed(pending):
            local = getattr(node, "_locals", None)
            if local is not None:
                base = _extend(base, local)
            node._view = base
            node._view_version = current
        return base


def _extend(base: View, local: LocalRegistrations) -> View:
    chains = list(base[:FAMILY_COUNT])
    for family, table in enumerate(local.tables):
        if table is None or not table.ordered:
            continue
        merged = chains[family] + table.ordered
        if family == EVENT_METADATA_INJECTOR:
            merged = tuple(sorted(merged, key=lambda e: (e.priority, e.name)))
        elif family != SUBSCRIBER:
            merged = tuple(sorted(merged, key=lambda e: e.priority))  # stable: globals, outer, inner
        chains[family] = merged
    return _with_flag(chains)


def _with_flag(chains: list[tuple[Entry, ...]]) -> View:
    publication = bool(
        chains[EVENT_METADATA_INJECTOR]
        or chains[MARK_SANITIZE]
        or chains[SCOPE_SANITIZE_START]
        or chains[SCOPE_SANITIZE_END]
    )
    return (*chains, publication)


def clear_global() -> None:
    """Remove every global registration and gate (test and plugin-reset helper)."""
    with _lock:
        for table in _global:
            table.by_name.clear()
            table.ordered = ()
        _gates.clear()
        _bump()


# --- conditional middleware guardrails (gates) -------------------------------------------------------------


class Gate:
    """Temporarily hides the global registration ``target`` of some families while ``callback`` says so."""

    __slots__ = ("name", "families", "kinds", "target", "callback")

    def __init__(self, name: str, families: tuple[int, ...], kinds: Any, target: str, callback: Callable[..., Any]):
        self.name = name
        self.families = families
        self.kinds = kinds
        self.target = target
        self.callback = callback


_gates: dict[str, Gate] = {}


def add_gate(gate: Gate) -> None:
    """Install a gate; duplicate names raise ``AlreadyExistsError``."""
    global _gates
    if not gate.families:
        raise InvalidArgumentError("conditional middleware guardrail kinds must not be empty")
    with _lock:
        if gate.name in _gates:
            raise AlreadyExistsError(f"{gate.name} conditional middleware guardrail already exists")
        _gates = dict(sorted({**_gates, gate.name: gate}.items()))  # evaluated in gate-name order
        _bump()


def remove_gate(name: str) -> bool:
    """Remove a gate; False when there was none by that name."""
    global _gates
    with _lock:
        if name not in _gates:
            return False
        _gates = {k: v for k, v in _gates.items() if k != name}
        _bump()
        return True


def _gated_global_view() -> View:
    chains = [table.ordered for table in _global]
    for gate in tuple(_gates.values()):
        hit = [family for family in gate.families if gate.target in _global[family].by_name]
        if not hit:
            continue
        try:
            reason = gate.callback(gate.kinds, gate.target)
        except Exception as exc:  # a failing gate fails open
            from nemo_relay._core.publish import report

            report(f"nemo_relay: conditional middleware guardrail {gate.name!r} failed: {type(exc).__name__}: {exc}")
            continue
        if reason is not None:
            for family in hit:
                chains[family] = tuple(e for e in chains[family] if e.name != gate.target)
    return _with_flag(chains)


def _resolve_gated(frame: ScopeHandle) -> View:
    owners: list[LocalRegistrations] = []
    node: ScopeHandle | None = frame
    while node is not None:
        local = getattr(node, "_locals", None)
        if local is not None:
            owners.append(local)
        node = node._below
    view = _gated_global_view()
    for local in reversed(owners):  # gates never affect scope-local registrations
        view = _extend(view, local)
    return view


def global_registrations(families: set[int] | None = None) -> list[tuple[int, Entry]]:
    """Every global registration as ``(family, entry)``, sorted by family then name (gated ones included)."""
    with _lock:
        return [
            (family, table.by_name[name])
            for family, table in enumerate(_global)
            if families is None or family in families
            for name in sorted(table.by_name)
        ]
