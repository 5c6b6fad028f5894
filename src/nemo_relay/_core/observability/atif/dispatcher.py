"""The observability plugin's ATIF dispatcher: one trajectory file per top-level agent or turn.

A scope start is a trajectory root when it is an agent scope, or a custom scope whose metadata says
``nemo_relay_scope_role == "turn"``, and it sits directly on the root of the stack it was emitted on
(a top-level scope). Every later event under a root (found through a scope-to-root map kept as scopes
start and end) is collected for it; when the root ends, its trajectory is built, serialised with the
collected ATOF events in ``extra.observed_events``, and delivered. Roots still open at shutdown are
delivered as partial trajectories.

Delivery: with no remote storage, the file is written to the output directory at once; otherwise the
upload worker sends it to every remote target and keeps a local recovery copy when all of them fail.
Failures are runtime diagnostics; ``shutdown`` reports them as ``Teardown.removed_with_error``.
"""

from __future__ import annotations

import threading

from nemo_relay._core.context import emission_stack_root
from nemo_relay._core.diagnostics import Teardown
from nemo_relay._core.observability.atif import steps as _steps
from nemo_relay._core.observability.atif import storage as _storage
from nemo_relay._core.observability.atif.model import AgentInfo, sorted_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.diagnostics import RuntimeDiagnostics
    from nemo_relay._core.events import Event
    from nemo_relay._core.observability.settings import AtifSettings
    from nemo_relay._core.types import JsonValue

__all__ = ["AtifDispatcher"]

COMPONENT = "observability"
RENDER_FAILED = "atif.destination_render_failed"
SERIALIZATION_FAILED = "atif.serialization_failed"
TURN_ROLE_KEY = "nemo_relay_scope_role"


class _Root:
    """What is collected for one open trajectory root."""

    __slots__ = ("uuid", "filename", "correlation", "events", "seen", "scopes")

    def __init__(self, uuid: str, filename: str, correlation: dict[str, JsonValue]) -> None:
        self.uuid = uuid
        self.filename = filename
        self.correlation = correlation
        self.events: list[Event] = []
        self.seen: set[tuple[str, str, str | None]] = set()  # (kind, uuid, phase): each event once
        self.scopes: set[str] = {uuid}  # open scopes routed to this root

    def add(self, event: Event, phase: str | None) -> None:
        key = (event.kind, event.uuid, phase)
        if key not in self.seen:
            self.seen.add(key)
            self.events.append(event)


def _is_root_candidate(event: Event) -> bool:
    category = event.category
    if category == "agent":
        return True
    if category != "custom":
        return False
    metadata = event._metadata  # read without copying: most custom scopes are not turns
    return type(metadata) is dict and metadata.get(TURN_ROLE_KEY) == "turn"


def _text(metadata: JsonValue, key: str) -> str | None:
    value = metadata.get(key) if type(metadata) is dict else None
    return value if type(value) is str else None


def payload(trajectory: dict[str, Any], events: list[Event], correlation: dict[str, JsonValue]) -> bytes:
    """Pretty, key-sorted JSON of a trajectory whose ``extra`` gains ``observed_events`` and correlation ids."""
    import json

    extra = trajectory.get("extra")
    merged: dict[str, Any] = dict(extra) if type(extra) is dict else {}
    if extra is not None and type(extra) is not dict:
        merged["trajectory_extra"] = extra
    merged["observed_events"] = [event.to_dict() for event in events]
    merged["nemo_relay"] = correlation
    document = {**trajectory, "extra": merged}
    return json.dumps(sorted_json(document), indent=2, ensure_ascii=False).encode()


class AtifDispatcher:
    """Splits the event stream into trajectory roots and delivers one ATIF file per root.

    ``on_event`` is the subscriber callback (it must run inside the subscriber call, on the dispatcher
    thread, so the emitting stack's root is known); ``shutdown`` writes still-open roots as partial
    trajectories and reports delivery failures. Flush the subscriber queue before ``shutdown``:
    events delivered after it are ignored.

    Args:
        settings: The validated ATIF section (``output_directory`` None: the working directory now).
        diagnostics: Where runtime diagnostics are recorded (component ``observability``).
        namespace: The component's registration prefix. Routing needs only the one global
            subscriber, so no per-root scope-local subscribers are registered under it.

    Raises:
        ImportError: S3 storage is configured but boto3 is missing (the message names the extra).
        ValueError: An HTTP ``header_env`` variable is unset, or an S3 endpoint is plain HTTP
            without ``allow_http``.
    """

    def __init__(self, settings: AtifSettings, diagnostics: RuntimeDiagnostics, namespace: str) -> None:
        from nemo_relay._core.observability.config_template import render_filename

        self._render = render_filename
        self._namespace = namespace
        self._diagnostics = diagnostics
        self._agent = AgentInfo(
            settings.agent_name,
            settings.agent_version,
            settings.model_name,
            None if settings.tool_definitions is None else list(settings.tool_definitions),
            settings.extra,
        )
        self._template = settings.filename_template
        self._local = _storage.LocalTarget(settings.resolve_output_directory())  # cwd at activation
        targets = _storage.remote_targets(settings.storage)
        self._uploads = _storage.UploadWorker(targets, self._local, self._report) if targets else None
        self._lock = threading.Lock()
        self._roots: dict[str, _Root] = {}
        self._owner: dict[str, _Root] = {}  # open scope uuid -> its root
        self._failures: dict[str, int] = {}  # diagnostic code -> count, for the teardown message
        self._failures_lock = threading.Lock()  # reports come from the dispatcher and upload threads
        self._closed = False
        self._fatal: str | None = None

    # --- events ---------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Route one event to its trajectory root (a new root when it is a top-level agent or turn)."""
        phase: str | None = getattr(event, "scope_category", None)
        finished: _Root | None = None
        with self._lock:
            if self._closed:
                return
            if phase == "start":
                root = self._owner.get(event.parent_uuid)  # type: ignore[arg-type]
                if root is None:
                    if not _is_root_candidate(event):
                        return
                    root = self._open_root(event)
                    if root is None:
                        return
                else:
                    self._owner[event.uuid] = root
                    root.scopes.add(event.uuid)
                root.add(event, phase)
            elif phase == "end":
                root = self._owner.get(event.uuid)
                if root is None:
                    return
                root.add(event, phase)
                if event.uuid == root.uuid:
                    finished = self._close_root(root)
                else:
                    del self._owner[event.uuid]
                    root.scopes.discard(event.uuid)
            else:  # a mark: kept in observed_events, never a step
                root = self._owner.get(event.parent_uuid)  # type: ignore[arg-type]
                if root is None:
                    return
                root.add(event, None)
        if finished is not None:
            self._deliver(finished)

    def _open_root(self, event: Event) -> _Root | None:
        stack = emission_stack_root()
        if stack is None or event.parent_uuid != stack[0]:
            return None  # nested under something this exporter does not follow
        session_id = event.uuid
        metadata = event.metadata
        try:
            filename = self._render(self._template, session_id, metadata if type(metadata) is dict else None)
        except ValueError as error:
            self._report(RENDER_FAILED, "filename_template", str(error), session_id)
            return None  # this trajectory cannot be named: it is skipped
        correlation: dict[str, JsonValue] = {}
        for key, value in (
            ("session_id", _text(metadata, "session_id")),
            ("session_instance_id", stack[0]),
            ("user_id", _text(metadata, "user_id")),
        ):
            if value is not None:
                correlation[key] = value
        root = _Root(session_id, filename, correlation)
        self._roots[session_id] = root
        self._owner[session_id] = root
        return root

    def _close_root(self, root: _Root) -> _Root:
        del self._roots[root.uuid]
        for scope in root.scopes:
            if self._owner.get(scope) is root:
                del self._owner[scope]
        return root

    # --- delivery -------------------------------------------------------------------------------

    def _deliver(self, root: _Root) -> None:
        if self._fatal is not None:
            return  # serialisation broke once: nothing more is written
        try:
            trajectory = _steps.build(root.events, self._agent, root.uuid, root.uuid).to_json()
            body = payload(trajectory, root.events, root.correlation)
        except (TypeError, ValueError, RecursionError) as error:
            self._fatal = f"ATIF trajectory serialization failed: {error}"
            self._report(SERIALIZATION_FAILED, "atif", self._fatal, root.uuid)
            return
        if self._uploads is not None:
            self._uploads.submit(root.filename, root.uuid, body)
            return
        try:
            self._local.write(root.filename, body)
        except OSError as error:
            message = f"could not write ATIF trajectory '{root.filename}': {error}"
            self._report(_storage.LOCAL_WRITE_FAILED, "output_directory", message, root.uuid)

    def _report(self, code: str, field: str, message: str, session_id: str) -> None:
        self._diagnostics.record(code, COMPONENT, message, field=field, session_id=session_id)
        with self._failures_lock:
            self._failures[code] = self._failures.get(code, 0) + 1

    # --- teardown -------------------------------------------------------------------------------

    def shutdown(self, timeout: float | None = None) -> Teardown:
        """Stop collecting, deliver every still-open root as a partial trajectory, wait for uploads.

        Waits at most ``timeout`` seconds for remote uploads (None: until done); what is not uploaded
        by then is kept as a local recovery copy and reported. Subscribers should be flushed first.
        """
        with self._lock:
            if self._closed:
                return self._outcome()
            self._closed = True
            still_open = list(self._roots.values())
            self._roots.clear()
            self._owner.clear()
        for root in still_open:
            self._deliver(root)
        if self._uploads is not None:
            self._uploads.shutdown(timeout)
        return self._outcome()

    def _outcome(self) -> Teardown:
        with self._failures_lock:
            failures = list(self._failures.items())
        if not failures:
            return Teardown.removed()
        summary = ", ".join(f"{code} ({count})" for code, count in failures)
        return Teardown.removed_with_error(f"ATIF runtime delivery failures: {summary}")
