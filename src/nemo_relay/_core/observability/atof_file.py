"""The ATOF file sink: one JSON line per event, appended to a local file from the dispatcher thread.

Lines are batched and written with unbuffered ``os.write`` calls (never fsynced) whenever the dispatcher
runs out of events, at every flush barrier, past 64 KiB and at close: a reader sees every delivered event
once the dispatcher is idle, without any flush call, and a killed process leaves whole lines (at most a
torn last one). The first write error is kept: later events are dropped and counted, and
``force_flush``/``shutdown``/plugin teardown report it.

Opening follows the reference's hardening: the file must stay inside ``output_directory`` (no ``..``,
no absolute path elsewhere, no symlinked component or file), sub-directories are created ``0700``, and
the file is created or re-moded ``0600``.
"""

from __future__ import annotations

import os
import threading

from nemo_relay._core import dispatch, oplog

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.diagnostics import RuntimeDiagnostics

__all__ = ["FileSink", "open_output", "os_error_text"]

_TARGET = "nemo_relay.observability"
_COMPONENT = "atof"
_BATCH_BYTES = 64 * 1024  # write out early past this much, so a long burst does not grow the batch unbounded


def os_error_text(exc: OSError) -> str:
    """Rust's ``io::Error`` wording (``File too large (os error 27)``), which reference messages use."""
    if exc.errno is not None and exc.strerror:
        return f"{exc.strerror} (os error {exc.errno})"
    return str(exc)


class _Unsafe(Exception):
    """The configured location is refused (the message is the reason)."""


def open_output(directory: str, filename: str, overwrite: bool) -> tuple[str, int]:
    """Open the ATOF output file; returns ``(path, fd)``.

    Raises:
        RuntimeError: ``failed to open ATOF output file "<path>": <reason>``, as the reference words it.
    """
    path = os.path.join(directory, filename)
    try:
        fd = _open_confined(directory, filename, overwrite)
    except _Unsafe as exc:
        raise RuntimeError(f'failed to open ATOF output file "{path}": {exc}') from None
    except OSError as exc:
        raise RuntimeError(f'failed to open ATOF output file "{path}": {os_error_text(exc)}') from None
    return path, fd


def _open_confined(directory: str, filename: str, overwrite: bool) -> int:
    if ".." in _parts(directory):
        raise _Unsafe(f"observability directory '{directory}' contains unsafe traversal")
    relative = filename
    if os.path.isabs(filename):
        inside = _relative_inside(directory, filename)
        if inside is None:
            if not directory:
                raise _Unsafe("observability output must be a confined relative file path")
            raise _Unsafe(f"observability output '{filename}' is outside configured directory '{directory}'")
        relative = inside
    raw = relative.split(os.sep) if os.altsep is None else relative.replace(os.altsep, os.sep).split(os.sep)
    names = [part for part in raw if part not in ("", ".")]
    if not names or ".." in raw:
        raise _Unsafe("observability output must be a confined relative file path")
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    # O_APPEND in both modes: lines from a forked child or another writer never overwrite each other.
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | (os.O_TRUNC if overwrite else 0)
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_NOFOLLOW"):
        return _open_plain(directory, names, flags)  # no *at() calls here (Windows): best effort
    parent = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for name in names[:-1]:
            try:  # noqa: SIM105 - the directory may already exist
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            except OSError as exc:
                detail = f"refusing unsafe observability directory component '{name}': {os_error_text(exc)}"
                raise _Unsafe(detail) from None
            os.close(parent)
            parent = child
        last = names[-1]
        _check_target(parent, last, relative)
        fd = os.open(last, flags | os.O_NOFOLLOW, 0o600, dir_fd=parent)
    finally:
        os.close(parent)
    try:  # noqa: SIM105
        os.fchmod(fd, 0o600)  # an existing file may have been readable by others
    except OSError:
        pass
    return fd


def _check_target(parent: int, name: str, shown: str) -> None:
    import stat

    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise _Unsafe(f"refusing symlinked observability file '{shown}'")
    if not stat.S_ISREG(info.st_mode):
        raise _Unsafe(f"observability output '{shown}' is not a regular file")


def _open_plain(directory: str, names: list[str], flags: int) -> int:
    path = os.path.join(directory, *names)
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    return os.open(path, flags, 0o600)


def _parts(path: str) -> list[str]:
    return path.replace(os.altsep, os.sep).split(os.sep) if os.altsep else path.split(os.sep)


def _relative_inside(directory: str, path: str) -> str | None:
    # An absolute filename is accepted only when it names a file below the configured directory.
    if not directory:
        return None
    base = [p for p in _parts(directory) if p not in ("", ".")]
    full = [p for p in _parts(path) if p not in ("", ".")]
    if not os.path.isabs(directory) or full[: len(base)] != base or len(full) == len(base):
        return None
    return os.sep.join(full[len(base) :])


class FileSink:
    """One open ATOF output file; ``write`` runs on the dispatcher thread, the rest on any thread.

    Lines are batched: they are written out whenever the dispatcher runs out of events (an idle hook), at
    every flush barrier, when 64 KiB are pending, and at ``close`` - one system call per batch instead of
    one per event, so a burst costs the dispatcher (and the GIL the caller shares) far less.
    """

    __slots__ = ("path", "index", "_fd", "_lock", "_diagnostics", "error", "dropped", "closed", "_pending", "_size")

    def __init__(self, path: str, fd: int, index: int, diagnostics: RuntimeDiagnostics) -> None:
        self.path = path
        self.index = index
        self._fd = fd
        self._lock = threading.Lock()  # a concurrent shutdown must not close the fd under a write
        self._diagnostics = diagnostics
        self.error: OSError | None = None
        self.dropped = 0  # events not written because of ``error``
        self.closed = False
        self._pending: list[bytes] = []
        self._size = 0
        dispatch.add_idle_hook(self.flush_pending)

    @property
    def field(self) -> str:
        """Diagnostic field naming this sink (``sinks[<index>]``)."""
        return f"sinks[{self.index}]"

    def write(self, data: bytes) -> None:
        """Append one encoded line; after the first failure, count and drop instead."""
        with self._lock:
            if self.closed:
                return  # events after shutdown are ignored
            if self.error is not None:
                self.dropped += 1
                failed = False
            else:
                self._pending.append(data)
                self._size += len(data)
                if self._size < _BATCH_BYTES:
                    return
                lost = self._write_pending()
                if lost is None:
                    return
                self._report(True, lost)
                return
        self._report(failed)

    def flush_pending(self) -> None:
        """Write out the lines batched so far (the dispatcher calls this when it runs out of events)."""
        with self._lock:
            if not self._pending or self.closed or self.error is not None:
                return
            lost = self._write_pending()
        if lost is not None:
            self._report(True, lost)

    def _write_pending(self) -> int | None:
        """Write the batch; on the first failure, how many of its lines after the failing one were lost."""
        lines = self._pending
        self._pending = []
        self._size = 0
        view = memoryview(b"".join(lines))
        written = 0
        try:
            while view:
                count = os.write(self._fd, view)
                written += count
                view = view[count:]
        except OSError as exc:
            self.error = exc
            for line in lines:  # lines written whole before the failure are not lost
                if written < len(line):
                    break
                written -= len(line)
                lines = lines[1:]
            self.dropped += len(lines) - 1  # the failing line itself is counted by ``problem``
            return len(lines) - 1
        return None

    def _report(self, first: bool, batch_lost: int = 0) -> None:
        assert self.error is not None
        text = os_error_text(self.error)
        if first:
            message = f'failed to write ATOF output file "{self.path}": {text}'
            self._diagnostics.record("atof.file_write_failed", _COMPONENT, message, field=self.field)
            oplog.log(
                "error", _TARGET, "file_write_failed", "ATOF output file write failed; later events are dropped",
                exporter="atof", path=self.path, error=text,
            )  # fmt: skip
        dropped = batch_lost if first else 1  # lines batched behind the failing one share its fate
        if dropped:
            message = f'dropped events after ATOF output file "{self.path}" failed: {text}'
            self._diagnostics.record("atof.file_dropped", _COMPONENT, message, field=self.field, count=dropped)

    def problem(self) -> str | None:
        """What went wrong, for teardown messages (None when every event was written)."""
        if self.error is None:
            return None
        lost = self.dropped + 1
        return f'{self.field} (file "{self.path}"): {os_error_text(self.error)}; {lost} events not written'

    def close(self) -> None:
        """Write what is batched, then close the file; later writes are ignored. Idempotent."""
        dispatch.remove_idle_hook(self.flush_pending)
        self.flush_pending()
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:  # noqa: SIM105
                os.close(self._fd)
            except OSError:
                pass
