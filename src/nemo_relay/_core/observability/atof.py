"""⑪ ATOF exporters: raw ATOF 0.1 events to a JSONL file and/or stream endpoints.

Two entry points share one implementation:

* the observability plugin calls ``build_sinks(settings, diagnostics)`` and registers the returned
  ``AtofFanout.deliver`` as one subscriber; teardown calls ``AtofFanout.shutdown``;
* ``AtofExporter(AtofExporterConfig)`` is the reference's standalone single-sink exporter.

Events reach ``deliver`` on the dispatcher thread, never on the caller's path. Each event is
serialised once (``atof_wire``); the file sink writes it at once, stream sinks queue it for their own
worker threads (``atof_streams``). Nothing raises into the dispatcher: problems are logged, counted in
``RuntimeDiagnostics`` and reported by ``force_flush``/``shutdown``.
"""

from __future__ import annotations

import os
import time

from nemo_relay._core import oplog
from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.atof_config import (
    AtofExporterConfig,
    AtofExporterMode,
    AtofStreamSinkConfig,
    default_filename,
    endpoint_problem,
    strip_url,
)
from nemo_relay._core.observability.atof_file import FileSink, open_output, os_error_text
from nemo_relay._core.observability.atof_streams import DEFAULT_QUEUE_CAPACITY, StreamSink
from nemo_relay._core.observability.atof_wire import event_line, replace_dots_line
from nemo_relay._core.observability.settings import AtofFileSinkSettings, AtofStreamSinkSettings

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Sequence

    from nemo_relay._core.events import MarkEvent, ScopeEvent

__all__ = [
    "AtofExporter",
    "AtofExporterConfig",
    "AtofExporterMode",
    "AtofFanout",
    "AtofStreamSinkConfig",
    "build_sinks",
]

_TARGET = "nemo_relay.observability"


# --- the fan-out subscriber --------------------------------------------------------------------------


class AtofFanout:
    """One subscriber feeding every configured sink; built by ``build_sinks``."""

    def __init__(self, files: list[FileSink], streams: list[StreamSink], diagnostics: RuntimeDiagnostics) -> None:
        self.files = tuple(files)
        self.streams = tuple(streams)
        self.diagnostics = diagnostics
        self._plain = tuple(s for s in streams if not s.replace_dots)
        self._dotted = tuple(s for s in streams if s.replace_dots)
        self._closed = False
        self._teardown: Teardown | None = None

    def deliver(self, event: ScopeEvent | MarkEvent) -> None:
        """Subscriber callback (dispatcher thread): serialise once, write the files, queue the streams."""
        if self._closed:
            return  # events after shutdown are ignored
        try:
            line = event_line(event)
            data = (line + "\n").encode("utf-8", "replace")
            for file in self.files:
                file.write(data)
            for sink in self._plain:
                sink.enqueue(line if sink.text_items else data)
            if self._dotted:
                dotted = replace_dots_line(line)
                dotted_data = (dotted + "\n").encode("utf-8", "replace")
                for sink in self._dotted:
                    sink.enqueue(dotted if sink.text_items else dotted_data)
        except Exception as exc:  # an observer never breaks the dispatcher
            self.diagnostics.record(
                "atof.serialize_failed", "atof", f"ATOF event could not be serialised: {type(exc).__name__}: {exc}"
            )
            oplog.log("error", _TARGET, "event_serialize_failed", "ATOF event could not be serialised", exporter="atof")

    def force_flush(self, timeout: float | None = None) -> bool:
        """Wait for the stream queues (at most ``timeout`` s, else each sink's ``timeout_millis``).

        File sinks write out their batched lines now. Returns True when every stream drained in time
        and no event has been lost by any sink so far. Call the dispatcher barrier
        (``subscribers.flush``, which also writes the files out) first to include events still queued there.
        """
        for file in self.files:
            file.flush_pending()
        start = time.monotonic()
        ok = all(sink.flush(start + (sink.timeout if timeout is None else timeout)) for sink in self.streams)
        return ok and all(file.error is None for file in self.files)

    def shutdown(self, timeout: float | None = None) -> Teardown:
        """Stop accepting events, drain and close every sink within its deadline; idempotent.

        Sinks shut down in parallel: each gets ``timeout`` seconds (default: its ``timeout_millis``)
        from this call. Returns ``Teardown.removed()`` when everything was delivered, else
        ``Teardown.removed_with_error`` naming each sink and what it lost.
        """
        if self._teardown is not None:
            return self._teardown
        self._closed = True
        start = time.monotonic()
        for sink in self.streams:
            sink.begin_shutdown()
        problems = [
            sink.finish_shutdown(start + (sink.timeout if timeout is None else timeout)) for sink in self.streams
        ]
        for file in self.files:
            file.close()
        problems = [file.problem() for file in self.files] + problems
        oplog.log("info", _TARGET, "exporter_shutdown", "ATOF exporter shut down", exporter="atof")
        found = [problem for problem in problems if problem]
        if found:
            self._teardown = Teardown.removed_with_error("ATOF delivery failures: " + "; ".join(found))
        else:
            self._teardown = Teardown.removed()
        return self._teardown


def build_sinks(
    sinks: Sequence[AtofFileSinkSettings | AtofStreamSinkSettings],
    diagnostics: RuntimeDiagnostics,
    *,
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
) -> AtofFanout:
    """Open every sink (files opened, ``header_env`` resolved now) and return their fan-out.

    Raises:
        RuntimeError: a file cannot be opened (``failed to open ATOF output file "<path>": ...``), a
            ``header_env`` variable is unset/blank, or a websocket sink lacks the ``websockets`` package.
            Sinks opened before the failure are closed again.
    """
    files: list[FileSink] = []
    streams: list[StreamSink] = []
    try:
        for settings in sinks:
            if isinstance(settings, AtofStreamSinkSettings):
                try:
                    headers = settings.resolve_headers()
                except ValueError as exc:
                    raise RuntimeError(f"invalid ATOF streaming endpoint: sinks[{settings.index}]: {exc}") from None
                streams.append(StreamSink(settings, headers, diagnostics, queue_capacity))
            else:
                directory = settings.output_directory if settings.output_directory is not None else os.getcwd()
                filename = settings.filename if settings.filename is not None else default_filename()
                path, fd = open_output(directory, filename, settings.mode == "overwrite")
                files.append(FileSink(path, fd, settings.index, diagnostics))
                oplog.log(
                    "info", _TARGET, "storage_access_validated", "ATOF storage access validated",
                    exporter="atof", permission="write", plugin_kind="observability", resource_kind="local_file",
                )  # fmt: skip
    except BaseException:
        AtofFanout(files, streams, diagnostics).shutdown(0)
        raise
    return AtofFanout(files, streams, diagnostics)


# --- the standalone exporter ---------------------------------------------------------------------------


def _standalone_fanout(config: AtofExporterConfig, diagnostics: RuntimeDiagnostics) -> AtofFanout:
    if config.sink_type == "file":
        mode = "overwrite" if config.mode == AtofExporterMode.Overwrite else "append"
        file = AtofFileSinkSettings(0, config.output_directory, config.filename, mode)
        return build_sinks([file], diagnostics)
    if config.sink_type != "stream":
        raise ValueError("sink_type must be 'file' or 'stream'")
    if not config.url:
        raise ValueError("stream sink requires url")
    if config.transport not in ("http_post", "websocket", "ndjson"):
        raise ValueError("endpoint transport must be 'http_post', 'websocket', or 'ndjson'")
    if config.field_name_policy not in ("preserve", "replace_dots"):
        raise ValueError("endpoint field_name_policy must be 'preserve' or 'replace_dots'")
    problem = endpoint_problem(config)
    if problem is not None:
        raise RuntimeError(f"invalid ATOF streaming endpoint: endpoints[0]: invalid ATOF streaming endpoint: {problem}")
    stream = AtofStreamSinkSettings(
        0,
        strip_url(config.url),
        transport=config.transport,
        headers=config.headers,
        header_env=config.header_env,
        timeout_millis=config.timeout_millis,
        field_name_policy=config.field_name_policy,
    )
    return build_sinks([stream], diagnostics)


class AtofExporter:
    """Single-sink ATOF exporter: writes every event as one JSON line to a file, or streams it.

    Register it as a subscriber, run the instrumented code, then ``shutdown()`` (which flushes).

    Args:
        config: The sink to open. A file is created (or truncated, in ``Overwrite`` mode) now, and
            ``header_env`` variables are read now.

    Raises:
        TypeError: ``config`` is not an ``AtofExporterConfig``.
        ValueError: ``sink_type``, ``transport`` or ``field_name_policy`` is unknown, or a stream has no URL.
        RuntimeError: The file cannot be opened, or the stream endpoint is invalid.
    """

    __slots__ = ("_fanout", "_path")

    def __init__(self, config: AtofExporterConfig) -> None:
        given: object = config  # checked at run time: callers may be untyped
        if not isinstance(given, AtofExporterConfig):
            what = "'None' is" if given is None else f"'{type(given).__name__}' object is"
            raise TypeError(f"{what} not an instance of 'AtofExporterConfig'")
        self._fanout = _standalone_fanout(config, RuntimeDiagnostics())
        self._path = self._fanout.files[0].path if self._fanout.files else None

    @property
    def path(self) -> str | None:
        """The JSONL file path, or ``None`` for a stream sink."""
        return self._path

    def register(self, name: str) -> None:
        """Register this exporter as a global subscriber named ``name``.

        Raises:
            RuntimeError: A subscriber with that name already exists.
        """
        from nemo_relay import subscribers

        subscribers.register(name, self._fanout.deliver)
        oplog.log("info", _TARGET, "exporter_registered", "ATOF exporter registered", exporter="atof", subscriber=name)

    def deregister(self, name: str) -> bool:
        """Remove the global subscriber ``name``; returns whether it existed."""
        from nemo_relay import subscribers

        return subscribers.deregister(name)

    def force_flush(self) -> None:
        """Deliver queued events, then flush the file or let the stream drain (up to its timeout).

        Outside subscriber and middleware callbacks this first waits for the dispatcher. A stream
        that does not drain in time is logged, not raised.

        Raises:
            RuntimeError: The file sink failed to write (the first error is kept and reported again).
        """
        _barrier()
        self._fanout.force_flush()
        self._raise_file_error()

    def shutdown(self) -> None:
        """``force_flush``, then close the sink; later events are ignored. Safe to call twice.

        Raises:
            RuntimeError: The file sink failed to write.
        """
        _barrier()
        closed_before = self._fanout._closed
        self._fanout.shutdown()
        self._raise_file_error(previous=closed_before)

    def _raise_file_error(self, previous: bool | None = None) -> None:
        for file in self._fanout.files:
            if file.error is not None:
                text = os_error_text(file.error)
                if file.closed if previous is None else previous:
                    raise RuntimeError(f'previous ATOF export failed for "{file.path}": {text}')
                raise RuntimeError(f'failed to flush ATOF output file "{file.path}": {text}')

    def __repr__(self) -> str:
        return "<AtofExporter>"


def _barrier() -> None:
    # Wait for the dispatcher, unless we are inside a callback (where waiting would deadlock). Like
    # the reference, this blocks even on an event-loop thread.
    from nemo_relay._core import dispatch
    from nemo_relay._core.context import _publication_callback_var

    if dispatch.on_dispatcher_thread() or _publication_callback_var.get():
        return
    dispatch.wait_drained(None)
