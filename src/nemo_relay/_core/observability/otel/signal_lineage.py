"""Trace context of Relay scopes for signals that are not spans (log records).

Log records carry the trace and span id of the scope a mark was emitted under, using the same
deterministic ids as the trace exporter: a scope's span id is the low 64 bits of its UUID; a scope
whose parent is a known scope inherits that scope's trace id; a scope under a *propagated* parent
continues the propagated trace (trace id = propagated root UUID); any other scope starts its own
trace (trace id = its UUID). Scope events only maintain this lineage; they produce no records.

Ended scopes stay resolvable for ``completed_ttl`` measured on *event* time (a mark stamped within
the TTL after its scope's end still finds it), in a bounded LRU. The clock is the latest event
timestamp seen, so one event far in the future expires everything older, as in the reference.
"""

from __future__ import annotations

from collections import OrderedDict

from nemo_relay._core.context import emission_stack_root
from nemo_relay._core.ids import parse_id

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.events import MarkEvent, ScopeEvent

_LOW_64 = (1 << 64) - 1
MAX_COMPLETED = 4096
# Far above any real nesting or fan-out; past it the oldest open scope is forgotten (and reported)
# so that scopes that never end cannot grow this table without bound.
MAX_ACTIVE = 1 << 18

SpanContext = tuple[int, int]  # (trace id, span id)


class ScopeLineage:
    """Open and recently ended scopes → (trace id, span id); fed from the dispatcher thread only."""

    __slots__ = ("_active", "_completed", "_ttl_ns", "_clock", "max_active", "evicted")

    def __init__(self, completed_ttl_millis: int, max_active: int = MAX_ACTIVE) -> None:
        self._active: dict[int, SpanContext] = {}
        self._completed: OrderedDict[int, tuple[int, int, int]] = OrderedDict()  # id -> (trace, span, expiry)
        self._ttl_ns = completed_ttl_millis * 1_000_000
        self._clock = 0
        self.max_active = max_active
        self.evicted = 0  # open scopes forgotten because the table was full

    def observe(self, event: ScopeEvent) -> bool:
        """Track a scope start or end; returns False when an open scope had to be evicted."""
        ts = event._ts
        self._advance(ts)
        scope_id = event._id
        if event.scope_category == "end":
            context = self._active.pop(scope_id, None)
            if context is not None:
                self._completed[scope_id] = (context[0], context[1], ts + self._ttl_ns)
                self._completed.move_to_end(scope_id)
                if len(self._completed) > MAX_COMPLETED:
                    self._completed.popitem(last=False)
            return True
        parent = self._known(event._parent)
        trace_id = parent[0] if parent is not None else self._propagated_trace(event._parent)
        self._active[scope_id] = (scope_id if trace_id is None else trace_id, scope_id & _LOW_64)
        if len(self._active) > self.max_active:
            del self._active[next(iter(self._active))]
            self.evicted += 1
            return False
        return True

    def context_of(self, event: MarkEvent) -> SpanContext | None:
        """The trace context for a mark: its parent scope's, or the propagated parent's, else None."""
        self._advance(event._ts)
        parent_id = event._parent
        known = self._known(parent_id)
        if known is not None:
            return known
        trace_id = self._propagated_trace(parent_id)
        if trace_id is None or parent_id is None:
            return None
        return (trace_id, parent_id & _LOW_64)

    def _known(self, scope_id: int | None) -> SpanContext | None:
        if scope_id is None:
            return None
        context = self._active.get(scope_id)
        if context is not None:
            return context
        ended = self._completed.get(scope_id)
        if ended is None or ended[2] < self._clock:
            return None
        return (ended[0], ended[1])

    def _advance(self, ts: int) -> None:
        if ts <= self._clock:
            return
        self._clock = ts
        completed = self._completed
        while completed:
            key, (_, _, expiry) = next(iter(completed.items()))
            if expiry >= ts:
                break
            del completed[key]

    @staticmethod
    def _propagated_trace(parent_id: int | None) -> int | None:
        # The emitting stack's bottom records a propagated (root, parent) pair; a scope or mark whose
        # parent is that propagated parent continues the remote trace.
        root = emission_stack_root()
        if root is None or parent_id is None or root[1] is None or root[2] is None:
            return None
        if parse_id(root[2]) != parent_id:
            return None
        return parse_id(root[1])
