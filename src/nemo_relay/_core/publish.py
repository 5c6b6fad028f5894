"""⑨ The publication path, run by the dispatcher for each event before delivery.

In order: the event's transform (tool/LLM sanitize chains, which decide its ``data``), then the
metadata injectors, then the event sanitizers, then the subscribers. Everything here observes: a
failing callback is reported and its payload omitted, never raised into the code that emitted the
event. Callbacks run in the emitter's copied context with the emission-time stack as the current
stack; async callbacks run on the emitter's loop (else the loop they were registered on, else a
private loop) while the dispatcher waits. Events emitted by a transform or sanitizer are delivered
right after the event being processed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextvars import ContextVar

from nemo_relay._core import aio, oplog, registry
from nemo_relay._core.context import _override_var, _publication_callback_var
from nemo_relay._core.errors import JsonConversionError
from nemo_relay._core.jsonconv import copy_json, thaw, to_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.events import MarkEvent, ScopeEvent
    from nemo_relay._core.handles import ScopeHandle
    from nemo_relay._core.registry import Entry, View
    from nemo_relay._core.types import JsonValue

    Event = ScopeEvent | MarkEvent

# Set while a transform or event sanitizer runs: events emitted then are delivered right after the
# event being processed instead of at the tail of the queue.
nested_sink: ContextVar[list[Any] | None] = ContextVar("nemo_relay_nested_sink", default=None)


class Failed(Exception):
    """A publication callback failed; its payload is omitted (the reason was already reported)."""


def report(line: str) -> None:
    """One line on stderr, never raising."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def resolve(value: Any, entry: Entry, loops: tuple[Any, ...]) -> Any:
    """The value of a callback result, awaiting it on an event loop when it is awaitable."""
    if not aio.is_awaitable(value):
        return value
    from contextvars import copy_context  # a context entered here cannot be entered by the loop's thread

    return aio.resolve_blocking(value, (*loops, entry.loop), copy_context())


def process(event: Event, view: View, snap: ScopeHandle | None, loops: tuple[Any, ...]) -> list[Any]:
    """Run ``event``'s transform, injectors and sanitizers inside its context; return events emitted meanwhile.

    The subscribers are called afterwards by the dispatcher, where its watchdog can see each call.
    """
    _override_var.set(snap)
    nested: list[Any] = []
    nested_sink.set(nested)
    _publication_callback_var.set(True)
    transform = event._xf
    if transform is not None:
        event._xf = None
        transform.apply(event, view, loops)
    subscribers = view[registry.SUBSCRIBER]
    # Plain events reach here only when someone subscribes; tool and LLM events always do.
    if subscribers or event._category in _ALWAYS_PROCESSED:
        if view[registry.EVENT_METADATA_INJECTOR]:
            _inject(event, view[registry.EVENT_METADATA_INJECTOR], loops)
        chain = view[_sanitizer_family(event)]
        if chain:
            _sanitize(event, chain, loops)
    # Subscribers are plain observers: their emissions go to the tail, and they may flush.
    nested_sink.set(None)
    _publication_callback_var.set(False)
    return nested


_subscriber_errors = 0


def subscriber_failed(exc: BaseException) -> None:
    """Report a subscriber exception (the reference's stderr line) and count it."""
    global _subscriber_errors
    _subscriber_errors += 1  # only the dispatcher thread delivers
    report(f"Event subscriber error: {type(exc).__name__}: {exc}")


def subscriber_error_count() -> int:
    """Subscriber calls that raised since start (or fork)."""
    return _subscriber_errors


def reset_counters() -> None:
    """Forget the counts (in a forked child)."""
    global _subscriber_errors
    _subscriber_errors = 0


_ALWAYS_PROCESSED = frozenset(("tool", "llm"))


def _sanitizer_family(event: Event) -> int:
    if event.kind == "mark":
        return registry.MARK_SANITIZE
    return registry.SCOPE_SANITIZE_START if event._phase == "start" else registry.SCOPE_SANITIZE_END  # type: ignore[union-attr]


# --- metadata injectors ---------------------------------------------------------------------------------


def _inject(event: Event, injectors: tuple[Entry, ...], loops: tuple[Any, ...]) -> None:
    if event._metadata is not None and type(event._metadata) is not dict:
        oplog.log(
            "warn",
            "nemo_relay.runtime",
            "event_metadata_injector_non_object_metadata",
            "Event metadata is not a JSON object; skipping metadata injection",
            event_name=event._name,
        )
        return
    for entry in injectors:
        try:
            output = to_json(resolve(entry.callback(event), entry, loops))  # tuples become lists, NaN null
        except BaseException as exc:
            _injector_log("event_metadata_injector_failed", entry, event, f"Event metadata injector failed: {exc}")
            continue
        problem = _injection_problem(output)
        if problem is not None:
            _injector_log(
                "event_metadata_injector_invalid_output",
                entry,
                event,
                f"Event metadata injector returned invalid attributes; omitting them: {problem}",
            )
            continue
        metadata = event._metadata
        fresh = {key: value for key, value in output.items() if metadata is None or key not in metadata}  # type: ignore[union-attr]
        if fresh:  # insert-only: the first writer wins; later injectors see what earlier ones added
            event._metadata = {**(metadata or {}), **fresh}


def _injector_log(kind: str, entry: Entry, event: Event, message: str) -> None:
    oplog.log("error", "nemo_relay.runtime", kind, message, event_name=event._name, injector=entry.name)


def _injection_problem(output: object) -> str | None:
    if not isinstance(output, Mapping):
        return f"expected a mapping of attributes, got {type(output).__name__}"
    for key, value in output.items():
        if not isinstance(key, str) or not _valid_key(key):
            return f"attribute key {key!r} must be dot-separated segments of letters, digits, '_' or '-'"
        if not _valid_attribute(value):
            return f"attribute `{key}` must be a primitive or homogeneous primitive list"
    return None


def _valid_key(key: str) -> bool:
    return all(
        segment and all(c.isascii() and (c.isalnum() or c in "_-") for c in segment) for segment in key.split(".")
    )


def _valid_attribute(value: object) -> bool:
    if isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return value - value == 0.0  # finite
    if isinstance(value, list):
        if all(isinstance(v, bool) for v in value) or all(isinstance(v, str) for v in value):
            return True
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and _valid_attribute(v) for v in value)
    return False


# --- event sanitizers ------------------------------------------------------------------------------------


def _sanitize(event: Event, chain: tuple[Entry, ...], loops: tuple[Any, ...]) -> None:
    for entry in chain:
        fields = {
            "data": thaw(event._data),
            "category_profile": copy_json(event._profile),
            "metadata": copy_json(event._metadata),
        }
        try:
            output = resolve(entry.callback(event, fields), entry, loops)
            if not isinstance(output, Mapping):
                raise TypeError(f"event sanitizer must return a mapping, got {type(output).__name__}")
            data = to_json(output.get("data"))
            profile = to_json(output.get("category_profile"))
            metadata = to_json(output.get("metadata"))
            if profile is not None and type(profile) is not dict:
                raise TypeError("category_profile must be a JSON object or None")
        except BaseException as exc:
            # Fail closed: a sanitizer that cannot run must not let the unsanitized payload through.
            event._data = event._profile = event._metadata = None
            report(f"nemo_relay: Python event sanitizer callable failed: {type(exc).__name__}: {exc}")
            return
        event._data, event._profile, event._metadata = data, profile, metadata


# --- helpers for transforms ------------------------------------------------------------------------------


def run_json_chain(
    chain: tuple[Entry, ...], value: JsonValue, call: Any, loops: tuple[Any, ...], what: str
) -> JsonValue:
    """Thread ``value`` through sanitizers that return JSON; raise ``Failed`` after reporting a failure."""
    for entry in chain:
        try:
            result = resolve(call(entry, copy_json(value)), entry, loops)
            value = to_json(result)
        except JsonConversionError as exc:
            report(f"nemo_relay: Python {what} callable failed: internal error: ValueError: {exc}")
            raise Failed(entry.name) from exc
        except BaseException as exc:
            report(f"nemo_relay: Python {what} callable failed: {type(exc).__name__}: {exc}")
            raise Failed(entry.name) from exc
    return value
