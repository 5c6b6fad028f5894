"""Scopes, marks and metrics on the current scope stack.

A scope is a unit of agent work (an agent run, a function, a retriever call ...). Scopes nest on a
per-context stack; pushing emits a ``scope``/``start`` event and popping emits the matching ``end``
event. Marks are point-in-time events under the current scope.
"""

from __future__ import annotations

from contextlib import ContextDecorator

from nemo_relay._core import aio as _aio
from nemo_relay._core import lifecycle as _lifecycle
from nemo_relay._core.handles import ScopeHandle
from nemo_relay._core.metrics import MetricMeasurement
from nemo_relay._core.types import Json, LogSeverity, ScopeAttributes, ScopeType

TYPE_CHECKING = False  # `typing` and `datetime` cost milliseconds at import; annotations do not need them
if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from typing import Any

    from nemo_relay._core.types import DataSchema

__all__ = ["ScopeBlock", "event", "get_handle", "metric", "pop", "push", "scope"]


def get_handle() -> ScopeHandle:
    """Return the handle of the scope at the top of the current stack.

    On a fresh stack this is the hidden root (``name == "root"``), which emits no events and cannot be
    popped.

    Returns:
        A copy of the top handle; compare handles by ``uuid``.
    """
    return _lifecycle.get_handle()


def push(
    name: str,
    scope_type: ScopeType,
    *,
    handle: ScopeHandle | None = None,
    attributes: ScopeAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    input: Json | None = None,
    timestamp: datetime | None = None,
) -> ScopeHandle:
    """Push a new scope on the current stack and emit its start event.

    Args:
        name: Human-readable scope name.
        scope_type: What kind of component owns the scope.
        handle: Explicit parent; defaults to the current top. The scope is pushed either way.
        attributes: Scope flags (``ScopeAttributes.PARALLEL``, ``RELOCATABLE``).
        data: Kept on the handle only; never emitted.
        metadata: Stored on the handle and carried by the start event; merged into the end event.
        input: The start event's ``data``.
        timestamp: Timezone-aware start time; defaults to now.

    Returns:
        The new scope's handle; pass it to ``pop``.

    Raises:
        ValueError: A payload is not JSON-convertible, or ``timestamp`` is naive.
        TypeError: ``timestamp`` is not a ``datetime.datetime``, or an argument has the wrong type.
    """
    return _lifecycle.push(name, scope_type, handle, attributes, data, metadata, input, timestamp)


def pop(
    handle: ScopeHandle,
    *,
    output: Json | None = None,
    metadata: Json | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Pop the scope ``handle`` from the top of the current stack and emit its end event.

    Args:
        handle: The handle returned by ``push``; it must be the top of the current stack.
        output: The end event's ``data``.
        metadata: Shallow-merged over the start metadata for the end event.
        timestamp: Timezone-aware end time; defaults to now (always after the start).

    Raises:
        RuntimeError: ``not found: scope handle not found`` (already popped or another stack),
            ``invalid argument: scope handle is not at the top of the stack``, or
            ``invalid argument: root scope cannot be removed``. The stack is left unchanged.
        ValueError: A payload is not JSON-convertible, or ``timestamp`` is naive.
        TypeError: ``timestamp`` is not a ``datetime.datetime``.
    """
    _lifecycle.pop(handle, output, metadata, timestamp)


def event(
    name: str,
    *,
    handle: ScopeHandle | None = None,
    data: Json | None = None,
    data_schema: DataSchema | None = None,
    metadata: Json | None = None,
    severity: LogSeverity | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Emit a mark: a point-in-time event under ``handle`` or the current top scope.

    Args:
        name: Mark name. ``"compaction"`` also marks the owning agent's LLM history as fresh.
        handle: Parent scope; defaults to the current top.
        data: Mark payload.
        data_schema: ``{"name": str, "version": str}`` identifying the payload's schema.
        metadata: Mark metadata; must be an object (or None) when ``severity`` is given.
        severity: Written as ``metadata["nemo_relay.log.severity"]``.
        timestamp: Timezone-aware time; defaults to now.

    Raises:
        ValueError: Payload not JSON-convertible, malformed ``data_schema``, or naive ``timestamp``.
        RuntimeError: ``severity`` given with non-object metadata.
    """
    _lifecycle.mark(name, handle, data, data_schema, metadata, severity, timestamp)


def metric(
    name: str,
    measurements: Sequence[MetricMeasurement],
    *,
    handle: ScopeHandle | None = None,
    metadata: Json | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Emit a group of metric measurements as one mark (schema ``nemo.relay.metric_measurements/1``).

    The whole group is validated first; if any measurement is invalid nothing is emitted.

    Args:
        name: Mark name.
        measurements: One or more ``MetricMeasurement``.
        handle: Parent scope; defaults to the current top.
        metadata: Mark metadata.
        timestamp: Timezone-aware time; defaults to now.

    Raises:
        ValueError: ``invalid argument: measurements[i] ...`` naming the first problem found.
    """
    _lifecycle.metric(name, measurements, handle, metadata, timestamp)


def scope(
    name: str,
    scope_type: ScopeType,
    *,
    handle: ScopeHandle | None = None,
    attributes: ScopeAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    input: Json | None = None,
    timestamp: datetime | None = None,
    end_timestamp: datetime | None = None,
) -> ScopeBlock:
    """Push a scope for a ``with`` (or ``async with``) block and pop it on exit, recording the outcome.

    The end metadata gets ``otel.status_code`` ``"OK"``, or ``"ERROR"`` with ``otel.status_description``
    when the block raises (``"cancelled"`` for a cancellation without a message). The exception is
    re-raised. Arguments are those of ``push``; ``end_timestamp`` is the pop's ``timestamp``. The
    result also works as a decorator, opening a fresh scope for each call.

    Returns:
        A context manager whose ``__enter__`` pushes the scope and returns its handle.
    """
    return ScopeBlock(name, scope_type, handle, attributes, data, metadata, input, timestamp, end_timestamp)


class ScopeBlock(ContextDecorator):
    """Context manager returned by ``scope()``; entering it pushes the scope, leaving it pops it."""

    __slots__ = ("_args", "_end", "_handle")

    def __init__(self, *args: Any) -> None:
        self._args = args[:-1]
        self._end = args[-1]
        self._handle: ScopeHandle | None = None

    def __enter__(self) -> ScopeHandle:
        if self._handle is not None:
            raise RuntimeError("this scope() block is already open; call scope() again for a new scope")
        self._handle = _lifecycle.push(*self._args)
        return self._handle

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        opened, self._handle = self._handle, None
        if opened is None:
            return
        status = {"otel.status_code": "OK"} if exc is None else _failure_status(exc)
        _lifecycle.pop(opened, None, status, self._end)

    async def __aenter__(self) -> ScopeHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)

    def _recreate_cm(self) -> ScopeBlock:
        # Used when decorating a function: each call gets its own scope.
        return ScopeBlock(*self._args, self._end)


def _failure_status(exc: BaseException) -> dict[str, Json]:
    if isinstance(exc, Exception):
        description = str(exc)
    elif isinstance(exc, _aio.cancelled_error_type()):
        description = str(exc) or "cancelled"
    elif isinstance(exc, GeneratorExit):
        description = "generator closed before the scope finished"
    else:  # KeyboardInterrupt, SystemExit: still close the scope so the record stays well-formed
        description = str(exc) or type(exc).__name__
    return {"otel.status_code": "ERROR", "otel.status_description": description}
