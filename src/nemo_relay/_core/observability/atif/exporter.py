"""``AtifExporter``: collect lifecycle events as a subscriber and export them as one ATIF v1.7 trajectory."""

from __future__ import annotations

import threading

from nemo_relay._core import args as _args
from nemo_relay._core.jsonconv import to_json
from nemo_relay._core.observability.atif import steps as _steps
from nemo_relay._core.observability.atif.model import AgentInfo, sorted_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.events import Event
    from nemo_relay._core.types import JsonValue

__all__ = ["AtifExporter"]

# Inside a running event loop the flush blocks that loop; an async subscriber resolved on it could
# never finish, so the wait is bounded there.
_LOOP_FLUSH_TIMEOUT = 10.0


def agent_info(
    agent_name: object,
    agent_version: object,
    model_name: object = None,
    tool_definitions: object = None,
    extra: object = None,
) -> AgentInfo:
    """Validated ``agent`` fields (``TypeError`` for wrong types, ``ValueError`` for non-JSON values)."""
    definitions: list[JsonValue] | None = None
    if tool_definitions is not None:
        _args.expect(tool_definitions, list, "tool_definitions")
        definitions = [to_json(item) for item in tool_definitions]  # type: ignore[attr-defined]
    return AgentInfo(
        _args.text(agent_name, "agent_name"),
        _args.text(agent_version, "agent_version"),
        _args.optional_text(model_name, "model_name"),
        definitions,
        None if extra is None else to_json(extra),
    )


def flush_subscribers() -> None:
    """Wait until queued events have been delivered (at once when called from a subscriber)."""
    from nemo_relay._core import aio, dispatch
    from nemo_relay._core.context import _publication_callback_var

    if dispatch.on_dispatcher_thread() or _publication_callback_var.get():
        return
    dispatch.wait_drained(_LOOP_FLUSH_TIMEOUT if aio.running_loop() is not None else None)


class AtifExporter:
    """Collects lifecycle events and exports them as an ATIF v1.7 trajectory.

    Register the exporter as a subscriber, run the agent, then call ``export()`` (a dict) or
    ``export_json()`` (compact JSON text). LLM calls become user and agent steps, tool calls become
    tool calls with observations, and agent scopes nested inside another agent scope become embedded
    ``subagent_trajectories``. Marks are not collected.

    Example:
        ```python
        exporter = AtifExporter("session-1", "my-agent", "1.0.0", model_name="gpt-4o")
        exporter.register("atif")
        # ... run the agent ...
        trajectory = exporter.export()
        exporter.deregister("atif")
        ```

    Args:
        session_id: The trajectory's ``session_id`` (and ``trajectory_id``).
        agent_name: ``agent.name``.
        agent_version: ``agent.version``.
        model_name: Default model, ``agent.model_name``.
        tool_definitions: Tool schemas, ``agent.tool_definitions`` (a list of JSON values).
        extra: Any JSON value, ``agent.extra``.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``tool_definitions`` or ``extra`` is not JSON-convertible.
    """

    __slots__ = ("_session_id", "_agent", "_lock", "_events")

    def __init__(
        self,
        session_id: str,
        agent_name: str,
        agent_version: str,
        *,
        model_name: str | None = None,
        tool_definitions: list[Any] | None = None,
        extra: Any = None,
    ) -> None:
        self._session_id = _args.text(session_id, "session_id")
        self._agent = agent_info(agent_name, agent_version, model_name, tool_definitions, extra)
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def __repr__(self) -> str:
        return f"AtifExporter(session_id={self._session_id!r}, agent_name={self._agent.name!r})"

    def register(self, name: str) -> None:
        """Register the exporter as a global subscriber named ``name``.

        Raises:
            RuntimeError: ``already exists: <name> subscriber already exists``.
        """
        from nemo_relay import subscribers

        subscribers.register(name, self._on_event)

    def deregister(self, name: str) -> bool:
        """Remove the subscriber named ``name``; True if one was removed."""
        from nemo_relay import subscribers

        return subscribers.deregister(name)

    def export(self) -> dict[str, Any]:
        """Deliver pending events, then return the trajectory as a dict (keys sorted)."""
        return sorted_json(self._trajectory())  # type: ignore[no-any-return]

    def export_json(self) -> str:
        """Deliver pending events, then return the trajectory as compact JSON text (ATIF field order)."""
        import json

        return json.dumps(self._trajectory(), separators=(",", ":"), ensure_ascii=False)

    def clear(self) -> None:
        """Forget every event collected so far."""
        with self._lock:
            self._events = []

    def _on_event(self, event: Event) -> None:
        if event.kind == "scope":  # marks never become steps
            with self._lock:
                self._events.append(event)

    def _trajectory(self) -> dict[str, Any]:
        flush_subscribers()
        with self._lock:
            events = list(self._events)
        return _steps.build(events, self._agent, self._session_id, self._session_id).to_json()
