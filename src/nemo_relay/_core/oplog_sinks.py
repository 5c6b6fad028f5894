"""Operational logging, file sinks: buffered, optionally rotating log files and opening them at init.

``_open_sinks`` turns the ``_SinkSpec`` entries of ``oplog_config`` into open ``_FileSink`` objects (or
raises the reference's ``RuntimeError``); ``oplog`` then pushes formatted lines into them under its lock.
Only a configuration file that declares sinks loads this module.
"""

from __future__ import annotations

import os

from nemo_relay._core.oplog_config import _INIT_PREFIX, _os_error_text

# Typing-only imports: `typing` alone costs milliseconds at interpreter start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from io import FileIO

    from nemo_relay._core.oplog_config import _SinkSpec


class _FileSink:
    """One log file: a bounded line buffer, lazy (re)opening, and optional size-based rotation."""

    __slots__ = ("_buffer", "_file", "_size", "capacity", "dropped", "jsonl", "max_bytes", "path", "rank", "rotated")

    def __init__(self, spec: _SinkSpec) -> None:
        self.path = spec.path
        self.rank = spec.rank
        self.jsonl = spec.jsonl
        self.capacity = spec.queue_capacity
        self.max_bytes = spec.max_file_size_bytes
        self.rotated = spec.rotated_paths()
        self.dropped = 0
        self._buffer: list[str] = []
        self._file: FileIO | None = None
        self._size = 0

    def open(self, make_dirs: bool = True) -> None:
        """Open for appending, creating parent directories unless told not to; raises ``OSError``."""
        if make_dirs:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # Unbuffered: every write reaches the OS at once, so a forked child never inherits pending bytes.
        handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open across calls
        self._file = handle
        self._size = os.fstat(handle.fileno()).st_size

    def push(self, line: str) -> None:
        """Buffer one line; a full buffer is written out first, so the buffer stays bounded."""
        if len(self._buffer) >= self.capacity:
            self.flush()
        self._buffer.append(line)

    def flush(self) -> None:
        """Write the buffer; on I/O failure drop it, count the loss and reopen on the next flush."""
        if not self._buffer:
            return
        lines, self._buffer = self._buffer, []
        written = 0
        try:
            if self._file is None:
                self.open()
            chunk: list[bytes] = []
            pending = 0
            for line in lines:
                data = line.encode("utf-8", "backslashreplace")
                size = self._size + pending
                if self.max_bytes is not None and size > 0 and size + len(data) > self.max_bytes:
                    self._write(chunk, pending)
                    written += len(chunk)
                    chunk, pending = [], 0
                    self._rotate()
                chunk.append(data)
                pending += len(data)
            self._write(chunk, pending)
            written += len(chunk)
        except (OSError, ValueError):
            self.dropped += len(lines) - written
            self.close()

    def close(self) -> None:
        """Close the file quietly; the next flush reopens it."""
        handle, self._file = self._file, None
        if handle is not None:
            try:  # noqa: SIM105 - contextlib costs an import
                handle.close()
            except OSError:
                pass

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's pending lines (the parent writes them) and reopen lazily."""
        self._buffer = []
        self.close()

    def _write(self, chunk: list[bytes], size: int) -> None:
        if not chunk:
            return
        handle = self._file
        if handle is None:
            self.open()
            handle = self._file
            assert handle is not None
        view = memoryview(b"".join(chunk))
        while view:
            count = handle.write(view)
            if not count:  # no progress (None would mean a non-blocking fd): give up rather than spin
                raise OSError("log file accepted no bytes")
            view = view[count:]
        self._size += size

    def _rotate(self) -> None:
        # path.(N-1) -> path.N, ..., path -> path.1; os.replace drops the oldest.
        self.close()
        sources = [self.path, *self.rotated[:-1]]
        for source, destination in reversed(list(zip(sources, self.rotated, strict=True))):
            try:  # noqa: SIM105
                os.replace(source, destination)
            except FileNotFoundError:
                pass
        self.open()


def _open_sinks(specs: tuple[_SinkSpec, ...]) -> tuple[_FileSink, ...]:
    """Resolve, de-duplicate and open every sink, or raise the reference's ``RuntimeError``."""
    active: set[str] = set()
    claimed: set[str] = set()  # active and rotated file names
    resolved: list[_SinkSpec] = []
    for spec in specs:
        try:
            path = os.path.abspath(spec.path)  # relative paths are relative to the working directory
        except OSError as exc:
            raise RuntimeError(
                _INIT_PREFIX + f"failed to resolve relative logging path {spec.path}: {_os_error_text(exc)}"
            ) from None
        spec.path = path
        if path in active:
            raise RuntimeError(_INIT_PREFIX + f"duplicate logging sink path {path}")
        names = (path, *spec.rotated_paths())
        for name in names:
            if name in claimed:
                detail = f"logging sink path conflicts with another active or rotated file: {name}"
                raise RuntimeError(_INIT_PREFIX + detail)
        active.add(path)
        claimed.update(names)
        resolved.append(spec)
    sinks: list[_FileSink] = []
    try:
        for spec in resolved:
            sink = _FileSink(spec)
            _open_strict(sink, spec)
            sinks.append(sink)
    except RuntimeError:
        for sink in sinks:
            sink.close()
        raise
    return tuple(sinks)


def _open_strict(sink: _FileSink, spec: _SinkSpec) -> None:
    if spec.max_file_size_bytes is not None:
        try:
            sink.open()
        except OSError as exc:
            raise RuntimeError(
                _INIT_PREFIX + f"failed to open rotating logging sink {spec.path}: {_os_error_text(exc)}"
            ) from None
        return
    try:
        os.makedirs(os.path.dirname(spec.path) or ".", exist_ok=True)
    except FileExistsError:
        pass  # a file in the way; opening below reports it as "Not a directory"
    except OSError as exc:
        raise RuntimeError(
            _INIT_PREFIX + f"failed to open logging sink {spec.path}: create directory error: {_os_error_text(exc)}"
        ) from None
    try:
        sink.open(make_dirs=False)
    except OSError as exc:
        raise RuntimeError(
            _INIT_PREFIX + f"failed to open logging sink {spec.path}: open file error: {_os_error_text(exc)}"
        ) from None
