"""Operational logging: the package's own diagnostics (not user telemetry).

Configured once from the environment (``init_from_env``), usually at import:

* ``NEMO_RELAY_LOG``                error | warn | info | debug | trace (default ``error``)
* ``NEMO_RELAY_LOG_STDERR``         true | false | 1 | 0 (default true)
* ``NEMO_RELAY_LOG_STDERR_FORMAT``  human | jsonl (default ``human``)
* ``NEMO_RELAY_LOG_CONFIG_PATH``    absolute path to a ``.toml`` file with a ``[logging]`` table;
  it replaces the three variables above and is the only way to add file sinks.

Records go to stderr synchronously and to file sinks through a bounded per-sink buffer that is
written out on ``flush()``, when ``flush_interval_millis`` has passed (checked on each ``log``
call, there is no background thread), when a buffer is full, and at ``shutdown()``.
The global level is a ceiling: a sink with a more verbose level still sees only what it admits.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from nemo_relay._core import ids

# Typing-only imports: `typing` alone costs milliseconds at interpreter start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from io import FileIO
    from typing import Final

__all__ = [
    "LEVELS",
    "dropped_records",
    "enabled",
    "flush",
    "init_from_env",
    "log",
    "reset_for_tests",
    "root_relay_id",
    "shutdown",
]

LEVELS: Final = ("error", "warn", "info", "debug", "trace")
"""Level names, most severe first."""

# Rank 1 is the most severe; a record is written when its rank <= the output's rank.
_RANK: Final = {name: rank for rank, name in enumerate(LEVELS, start=1)}
_UPPER: Final = {rank: name.upper() for name, rank in _RANK.items()}
_DISABLED: Final = 99  # unknown level names never pass any threshold

_INIT_PREFIX: Final = "failed to initialize NeMo Relay operational logging: invalid argument: "
_LEVEL_HINT: Final = "expected error, warn, info, debug, or trace"
_ENV_LEVEL: Final = "NEMO_RELAY_LOG"
_ENV_STDERR: Final = "NEMO_RELAY_LOG_STDERR"
_ENV_FORMAT: Final = "NEMO_RELAY_LOG_STDERR_FORMAT"
_ENV_CONFIG: Final = "NEMO_RELAY_LOG_CONFIG_PATH"

_MAX_QUEUE_CAPACITY: Final = 8192
_MAX_RETAINED_FILES: Final = 9
_DEFAULT_FLUSH_INTERVAL_MILLIS: Final = 1000  # the reference's sinks also appear after about a second

_LOGGING_TARGET: Final = "nemo_relay.logging"

_root_id_text = ids.id_str(ids.new_id())
_root_short = _root_id_text[:8]


# --- state ----------------------------------------------------------------------------------------
# `log` reads these module globals without the lock: each is replaced whole, never mutated in place.

_threshold = _RANK["error"]  # the most verbose rank any output accepts; 0 means nothing is written
_stderr_rank = _RANK["error"]  # 0 when stderr is disabled
_stderr_jsonl = False
_sinks: tuple[_FileSink, ...] = ()
_flush_interval_ns = _DEFAULT_FLUSH_INTERVAL_MILLIS * 1_000_000
_next_flush_ns = 0
_write_through = False  # after shutdown, sink records are written at once: nobody flushes later
_shut_down = False
_lock = _thread.allocate_lock()  # guards sink buffers and files; `threading` is not needed for a lock


# --- public API -----------------------------------------------------------------------------------


def enabled(level: str) -> bool:
    """Whether a record at ``level`` would be written anywhere (use it to skip building costly fields)."""
    return _RANK.get(level, _DISABLED) <= _threshold


def log(level: str, target: str, event: str, message: str, /, **fields: object) -> None:
    """Write one record to stderr and to every file sink whose level admits it; never raises.

    ``fields`` values are written as text (``True`` becomes ``true``), as the reference does.
    """
    rank = _RANK.get(level, _DISABLED)
    if rank > _threshold:
        return
    try:  # noqa: SIM105 - cheaper than contextlib.suppress on the hot path
        _emit(rank, level, target, event, message, fields)
    except Exception:  # diagnostics must never break the code they describe
        pass


def flush() -> None:
    """Write every buffered sink record to its file now; never raises."""
    global _next_flush_ns
    with _lock:
        for sink in _sinks:
            sink.flush()
        _next_flush_ns = time.monotonic_ns() + _flush_interval_ns


def shutdown() -> None:
    """Log ``logging_shutdown_started``, then flush and close the file sinks. Idempotent; meant for atexit."""
    global _shut_down, _write_through
    if _shut_down:
        return
    _shut_down = True
    log("info", _LOGGING_TARGET, "logging_shutdown_started", "Operational logging shutdown started")
    with _lock:
        for sink in _sinks:
            sink.flush()
            sink.close()
        # Later records (from other atexit hooks) still reach the files, one write each.
        _write_through = True


def init_from_env(environ: Mapping[str, str] = os.environ) -> None:
    """Configure logging from the ``NEMO_RELAY_LOG*`` variables; replaces any earlier configuration.

    Raises:
        RuntimeError: a variable or the configuration file is invalid, or a sink file cannot be opened.
            The text matches the reference's (``failed to initialize NeMo Relay operational logging: ...``).
    """
    settings = _settings_from_env(environ)
    sinks = _open_sinks(settings.sinks)
    _install(settings, sinks)
    log("info", _LOGGING_TARGET, "logging_initialized", "Operational logging initialized", file_sink_count=len(sinks))


def reset_for_tests() -> None:
    """Close sinks without a shutdown record and restore the defaults (error level, human stderr)."""
    _install(_Settings(), ())


def root_relay_id() -> str:
    """The per-process UUIDv7 written as ``root_relay_id`` in every record."""
    return _root_id_text


def dropped_records() -> int:
    """How many sink records were lost because their file could not be written."""
    return sum(sink.dropped for sink in _sinks)


# --- emitting -------------------------------------------------------------------------------------


def _emit(rank: int, level: str, target: str, event: str, message: str, fields: dict[str, object]) -> None:
    global _next_flush_ns
    now = time.time_ns()
    texts = {key: _field_text(value) for key, value in fields.items()}
    human: str | None = None
    jsonl: str | None = None
    if rank <= _stderr_rank:
        if _stderr_jsonl:
            jsonl = _format_jsonl(now, level, target, event, message, texts)
            line = jsonl
        else:
            human = _format_human(now, rank, target, event, message, texts)
            line = human
        stream = sys.stderr
        if stream is not None:
            try:  # noqa: SIM105 - hot path
                stream.write(line + "\n")
            except Exception:  # a closed stderr must not stop the file sinks
                pass
    if not _sinks:
        return
    with _lock:
        sinks = _sinks  # read under the lock: a concurrent init_from_env may have closed the old tuple
        for sink in sinks:
            if rank > sink.rank:
                continue
            if sink.jsonl:
                if jsonl is None:
                    jsonl = _format_jsonl(now, level, target, event, message, texts)
                sink.push(jsonl + "\n")
            else:
                if human is None:
                    human = _format_human(now, rank, target, event, message, texts)
                sink.push(human + "\n")
        if _write_through:
            for sink in sinks:
                sink.flush()
        elif _flush_interval_ns and time.monotonic_ns() >= _next_flush_ns:
            for sink in sinks:
                sink.flush()
            _next_flush_ns = time.monotonic_ns() + _flush_interval_ns


def _field_text(value: object) -> str:
    # The reference records every field as text; keep Rust's spelling for booleans.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _timestamp(ns: int) -> str:
    seconds, millis = divmod(ns // 1_000_000, 1000)
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"


def _format_human(ns: int, rank: int, target: str, event: str, message: str, fields: dict[str, str]) -> str:
    # Values are written raw, unquoted, in key order, like the reference.
    parts = [_timestamp(ns), _UPPER[rank], "root=" + _root_short, f"target={target}", f"event={event}"]
    parts.extend(f"{key}={fields[key]}" for key in sorted(fields))
    parts.append(str(message))
    return " ".join(parts)


def _format_jsonl(ns: int, level: str, target: str, event: str, message: str, fields: dict[str, str]) -> str:
    import json  # only jsonl output pays for it

    record = {
        "event": str(event),
        "fields": fields,
        "level": level,
        "message": str(message),
        "root_relay_id": _root_id_text,
        "target": str(target),
        "timestamp": _timestamp(ns),
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# --- file sinks -----------------------------------------------------------------------------------


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


def _rotated_name(path: str, index: int) -> str:
    # `app.log` -> `app.1.log`, `app` -> `app.1` (what the reference's rotating sink writes).
    stem, extension = os.path.splitext(path)
    return f"{stem}.{index}{extension}"


# --- configuration --------------------------------------------------------------------------------


# Plain slotted classes rather than dataclasses: `dataclasses` would add milliseconds to every import.


class _SinkSpec:
    """A validated ``[[logging.sinks]]`` entry (the path becomes absolute when the sinks are opened)."""

    __slots__ = ("jsonl", "max_file_size_bytes", "path", "queue_capacity", "rank", "retained_files")

    def __init__(
        self,
        path: str,
        rank: int,
        jsonl: bool,
        queue_capacity: int,
        max_file_size_bytes: int | None,
        retained_files: int | None,
    ) -> None:
        self.path = path
        self.rank = rank
        self.jsonl = jsonl
        self.queue_capacity = queue_capacity
        self.max_file_size_bytes = max_file_size_bytes
        self.retained_files = retained_files

    def rotated_paths(self) -> list[str]:
        """Backup file names, newest first (empty without rotation)."""
        return [_rotated_name(self.path, index) for index in range(1, (self.retained_files or 0) + 1)]


class _Settings:
    """Everything ``init_from_env`` decided, before any file is opened."""

    __slots__ = ("flush_interval_millis", "rank", "sinks", "stderr_enabled", "stderr_jsonl")

    def __init__(
        self,
        rank: int = _RANK["error"],
        stderr_enabled: bool = True,
        stderr_jsonl: bool = False,
        flush_interval_millis: int = _DEFAULT_FLUSH_INTERVAL_MILLIS,
        sinks: tuple[_SinkSpec, ...] = (),
    ) -> None:
        self.rank = rank
        self.stderr_enabled = stderr_enabled
        self.stderr_jsonl = stderr_jsonl
        self.flush_interval_millis = flush_interval_millis
        self.sinks = sinks


class _InvalidArgument(Exception):
    """Carries the text after ``invalid argument: `` until ``init_from_env`` adds the prefix."""


def _settings_from_env(environ: Mapping[str, str]) -> _Settings:
    try:
        return _parse_env(environ)
    except _InvalidArgument as exc:
        raise RuntimeError(_INIT_PREFIX + str(exc)) from None


def _parse_env(environ: Mapping[str, str]) -> _Settings:
    level = environ.get(_ENV_LEVEL)
    stderr = environ.get(_ENV_STDERR)
    stderr_format = environ.get(_ENV_FORMAT)
    config_path = environ.get(_ENV_CONFIG)
    for name, value in (
        (_ENV_LEVEL, level),
        (_ENV_STDERR, stderr),
        (_ENV_FORMAT, stderr_format),
        (_ENV_CONFIG, config_path),
    ):
        if value == "":
            raise _InvalidArgument(f"{name} must not be empty when set")
    if config_path is not None:
        if level is not None or stderr is not None or stderr_format is not None:
            raise _InvalidArgument(
                f"{_ENV_CONFIG} cannot be combined with {_ENV_LEVEL} or {_ENV_STDERR} or {_ENV_FORMAT}"
            )
        return _load_config_file(config_path)
    rank = _parse_level(level) if level is not None else _RANK["error"]
    stderr_enabled = _parse_bool(stderr) if stderr is not None else True
    jsonl = _parse_format(stderr_format) if stderr_format is not None else False
    return _Settings(rank=rank, stderr_enabled=stderr_enabled, stderr_jsonl=jsonl)


def _parse_level(text: str) -> int:
    name = text.strip().lower()
    if name == "warning":
        name = "warn"
    rank = _RANK.get(name)
    if rank is None:
        raise _InvalidArgument(f"invalid logging level '{name}'; {_LEVEL_HINT}")
    return rank


def _parse_format(text: str) -> bool:
    """True for jsonl (``json`` is accepted too), False for human."""
    name = text.strip().lower()
    if name in ("jsonl", "json"):
        return True
    if name == "human":
        return False
    raise _InvalidArgument(f"invalid logging format '{name}'; expected human or jsonl")


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _InvalidArgument(f"invalid {_ENV_STDERR} value '{value}'; expected true or false")


def _os_error_text(exc: OSError) -> str:
    # Rust's io::Error wording, which reference callers see.
    if exc.errno is not None and exc.strerror:
        return f"{exc.strerror} (os error {exc.errno})"
    return str(exc)


def _load_config_file(path: str) -> _Settings:
    if not os.path.isabs(path):
        raise _InvalidArgument(f"logging configuration path must be absolute: {path}")
    if os.path.splitext(path.rstrip("/"))[1] != ".toml":  # `.toml` alone has no extension, as in Rust
        raise _InvalidArgument(f"logging configuration path must identify a .toml file: {path}")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise _InvalidArgument(f"failed to read logging configuration {path}: {_os_error_text(exc)}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _InvalidArgument(
            f"failed to read logging configuration {path}: stream did not contain valid UTF-8"
        ) from None
    try:
        return _parse_config_text(text)
    except _InvalidArgument as exc:
        raise _InvalidArgument(f"invalid logging configuration in {path}: invalid argument: {exc}") from None


# The reference's serde field lists, in its order (used in "expected one of" messages).
_LOGGING_FIELDS: Final = {
    "level": "a string",
    "stderr_enabled": "a boolean",
    "stderr_format": "a string",
    "flush_interval_millis": "u64",
    "sinks": "a sequence",
}
_SINK_FIELDS: Final = {
    "path": "path string",
    "level": "a string",
    "format": "a string",
    "queue_capacity": "usize",
    "max_file_size_bytes": "u64",
    "retained_files": "usize",
}
_U64_MAX: Final = (1 << 64) - 1
_I64_MIN: Final = -(1 << 63)

_Path = tuple[str | int, ...]


def _parse_config_text(text: str) -> _Settings:
    import tomllib  # only configuration files pay for the TOML parser

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _InvalidArgument("invalid logging TOML: " + _syntax_error_text(text, str(exc))) from None
    if "logging" not in document:
        raise _InvalidArgument("logging configuration requires a [logging] section")
    logging = _check_shape(text, document)
    level = logging.get("level")
    rank = _parse_level(level) if isinstance(level, str) else _RANK["error"]
    stderr_format = logging.get("stderr_format")
    jsonl = _parse_format(stderr_format) if isinstance(stderr_format, str) else False
    stderr_enabled = logging.get("stderr_enabled")
    flush_interval = _optional_int(logging, "flush_interval_millis")
    entries = logging.get("sinks")
    sinks = (
        [_sink_spec(entry, rank) for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []
    )
    return _Settings(
        rank=rank,
        stderr_enabled=stderr_enabled if isinstance(stderr_enabled, bool) else True,
        stderr_jsonl=jsonl,
        flush_interval_millis=_DEFAULT_FLUSH_INTERVAL_MILLIS if flush_interval is None else flush_interval,
        sinks=tuple(sinks),
    )


def _check_shape(text: str, document: dict[str, object]) -> dict[str, object]:
    """Type-check ``[logging]`` as the reference's deserializer does: keys in sorted order, first error wins."""
    logging = document["logging"]
    if not isinstance(logging, dict):
        raise _shape_error(text, ("logging",), False, _unexpected(logging, "struct RawLoggingConfig"))
    _check_table(text, ("logging",), logging, _LOGGING_FIELDS)
    return logging


def _check_table(text: str, where: _Path, table: dict[str, object], fields: Mapping[str, str]) -> None:
    for key in sorted(table):
        expected = fields.get(key)
        if expected is None:
            names = ", ".join(f"`{name}`" for name in fields)
            raise _shape_error(text, (*where, key), True, f"unknown field `{key}`, expected one of {names}")
        value = table[key]
        problem = _type_problem(value, expected)
        if problem is not None:
            raise _shape_error(text, (*where, key), False, problem)
        if key == "sinks" and fields is _LOGGING_FIELDS:
            # Entries are checked where "sinks" falls in the key order, as the reference does.
            for index, entry in enumerate(value if isinstance(value, list) else []):
                if not isinstance(entry, dict):
                    message = _unexpected(entry, "struct RawFileLogSinkConfig")
                    raise _shape_error(text, (*where, key, index), False, message)
                _check_table(text, (*where, key, index), entry, _SINK_FIELDS)


def _type_problem(value: object, expected: str) -> str | None:
    if expected in ("a string", "path string"):
        ok = isinstance(value, str)
    elif expected == "a boolean":
        ok = isinstance(value, bool)
    elif expected == "a sequence":
        ok = isinstance(value, list)
    else:  # u64 / usize
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= _U64_MAX:
                return None
            if _I64_MIN <= value < 0:
                return f"invalid value: integer `{value}`, expected {expected}"
        ok = False
    return None if ok else _unexpected(value, expected)


def _unexpected(value: object, expected: str) -> str:
    return f"invalid type: {_describe(value)}, expected {expected}"


def _describe(value: object) -> str:
    # serde's `Unexpected` wording for a TOML value.
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        suffix = "" if _I64_MIN <= value <= _U64_MAX else " as i128"
        return f"integer `{value}`{suffix}"
    if isinstance(value, float):
        return f"floating point `{_rust_float(value)}`"
    if isinstance(value, str):
        return f"string {_rust_debug(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"  # tables and TOML dates/times


def _rust_float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" in text:
        import decimal

        text = format(decimal.Decimal(text), "f")
    return text if "." in text else text + ".0"


def _rust_debug(value: str) -> str:
    escapes = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"', "\0": "\\0"}
    out = []
    for char in value:
        if char in escapes:
            out.append(escapes[char])
        elif not char.isprintable() and char != " ":
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _sink_spec(entry: dict[str, object], global_rank: int) -> _SinkSpec:
    path = entry.get("path")
    if path is None:
        raise _InvalidArgument("logging sink requires path")
    assert isinstance(path, str)
    if path == "":
        raise _InvalidArgument("logging sink path must not be empty")
    level = entry.get("level")
    rank = _parse_level(level) if isinstance(level, str) else global_rank
    fmt = entry.get("format")
    jsonl = _parse_format(fmt) if isinstance(fmt, str) else True
    capacity = _optional_int(entry, "queue_capacity")
    if capacity is None:
        capacity = _MAX_QUEUE_CAPACITY
    elif capacity == 0:
        raise _InvalidArgument("logging sink queue_capacity must be greater than 0")
    elif capacity > _MAX_QUEUE_CAPACITY:
        raise _InvalidArgument(
            f"logging sink queue_capacity {capacity} exceeds maximum {_MAX_QUEUE_CAPACITY} entries per file sink"
        )
    max_bytes = _optional_int(entry, "max_file_size_bytes")
    retained = _optional_int(entry, "retained_files")
    if (max_bytes is None) != (retained is None):
        raise _InvalidArgument("logging sink max_file_size_bytes and retained_files must be configured together")
    if max_bytes == 0:
        raise _InvalidArgument("logging sink max_file_size_bytes must be greater than 0")
    if retained == 0:
        raise _InvalidArgument("logging sink retained_files must be greater than 0")
    if retained is not None and retained > _MAX_RETAINED_FILES:
        raise _InvalidArgument(
            f"logging sink retained_files {retained} exceeds maximum {_MAX_RETAINED_FILES} backup files per sink"
        )
    # The sink never logs more than the global level lets through.
    return _SinkSpec(path, min(rank, global_rank), jsonl, capacity, max_bytes, retained)


def _optional_int(entry: Mapping[str, object], key: str) -> int | None:
    value = entry.get(key)
    return value if isinstance(value, int) else None


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


def _install(settings: _Settings, sinks: tuple[_FileSink, ...]) -> None:
    global _threshold, _stderr_rank, _stderr_jsonl, _sinks, _flush_interval_ns, _next_flush_ns
    global _write_through, _shut_down
    with _lock:
        for old in _sinks:
            old.flush()
            old.close()
        _stderr_rank = settings.rank if settings.stderr_enabled else 0
        _stderr_jsonl = settings.stderr_jsonl
        _sinks = sinks
        _flush_interval_ns = settings.flush_interval_millis * 1_000_000
        _next_flush_ns = time.monotonic_ns() + _flush_interval_ns
        _write_through = False
        _shut_down = False
        _threshold = max([_stderr_rank, *(sink.rank for sink in sinks)])


# --- TOML error text ------------------------------------------------------------------------------
# tomllib reports no positions for values, so the reference's "TOML parse error at line L, column C"
# snippets are rebuilt from a small scanner over the (already valid) text.


def _shape_error(text: str, path: _Path, at_key: bool, message: str) -> _InvalidArgument:
    spans = _TomlSpans(text)
    span = (spans.keys if at_key else spans.values).get(path)
    if span is None:
        where = ".".join(f"[{part}]" if isinstance(part, int) else part for part in path).replace(".[", "[")
        return _InvalidArgument(f"invalid logging TOML: TOML parse error at `{where}`\n{message}\n")
    return _InvalidArgument("invalid logging TOML: " + _snippet(text, span[0], span[1], message))


def _syntax_error_text(text: str, error: str) -> str:
    import re

    match = re.search(r" \(at line (\d+), column (\d+)\)$", error)
    if match is not None:
        line, column = int(match.group(1)), int(match.group(2))
        start = 0
        for _ in range(line - 1):
            start = text.index("\n", start) + 1
        return _snippet(text, start + column - 1, start + column, error[: match.start()])
    if error.endswith(" (at end of document)"):
        return _snippet(text, len(text), len(text), error[: -len(" (at end of document)")])
    return f"TOML parse error\n{error}\n"


def _snippet(text: str, start: int, end: int, message: str) -> str:
    line_no = text.count("\n", 0, start) + 1
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    content = text[line_start : len(text) if line_end < 0 else line_end].rstrip("\r")
    column = start - line_start
    carets = max(1, min(end, line_start + len(content)) - start)
    gutter = " " * (len(str(line_no)) + 1)
    return (
        f"TOML parse error at line {line_no}, column {column + 1}\n"
        f"{gutter}|\n"
        f"{line_no} | {content}\n"
        f"{gutter}|{' ' * (column + 1)}{'^' * carets}\n"
        f"{message}\n"
    )


class _TomlSpans:
    """Character spans of every key and value in a TOML text, by path (array items by index)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.keys: dict[_Path, tuple[int, int]] = {}
        self.values: dict[_Path, tuple[int, int]] = {}
        self._arrays: dict[_Path, int] = {}
        try:  # noqa: SIM105
            self._document()
        except (IndexError, ValueError):
            pass  # best effort: partial spans still help

    def _document(self) -> None:
        text = self.text
        prefix: _Path = ()
        while True:
            self._skip(newlines=True)
            if self.pos >= len(text):
                return
            if text.startswith("[", self.pos):
                prefix = self._header()
            else:
                self._key_value(prefix)

    def _header(self) -> _Path:
        text = self.text
        start = self.pos
        array = text.startswith("[[", start)
        self.pos += 2 if array else 1
        segments = self._key()
        self._skip()
        self.pos += 2 if array else 1
        path: _Path = ()
        for index, (name, seg_start, seg_end) in enumerate(segments):
            path = (*path, name)
            self.keys.setdefault(path, (seg_start, seg_end))
            if index < len(segments) - 1:
                self.values.setdefault(path, (seg_start, seg_end))  # a table the header creates implicitly
                if path in self._arrays:
                    path = (*path, self._arrays[path])
        self.values.setdefault(path, (start, self.pos))
        if array:
            item = self._arrays.get(path, -1) + 1
            self._arrays[path] = item
            path = (*path, item)
            self.values.setdefault(path, (start, self.pos))
        return path

    def _key(self) -> list[tuple[str, int, int]]:
        import re

        text = self.text
        segments: list[tuple[str, int, int]] = []
        while True:
            self._skip()
            start = self.pos
            if text[start] in "\"'":
                quote = text[start]
                end = start + 1
                while text[end] != quote:
                    end += 2 if quote == '"' and text[end] == "\\" else 1
                self.pos = end + 1
                name = text[start + 1 : end]
            else:
                match = re.compile(r"[A-Za-z0-9_-]+").match(text, start)
                if match is None:
                    raise ValueError("not a key")
                self.pos = match.end()
                name = match.group()
            segments.append((name, start, self.pos))
            self._skip()
            if not text.startswith(".", self.pos):
                return segments
            self.pos += 1

    def _key_value(self, prefix: _Path) -> None:
        segments = self._key()
        path = prefix
        for index, (name, start, end) in enumerate(segments):
            path = (*path, name)
            self.keys.setdefault(path, (start, end))
            if index < len(segments) - 1:
                self.values.setdefault(path, (start, end))  # a dotted key's implicit table
        self._skip()
        self.pos += 1  # "="
        self._skip()
        self._value(path)

    def _value(self, path: _Path) -> None:
        import re

        text = self.text
        start = self.pos
        char = text[start]
        if char == "[":
            self.pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if text[self.pos] == "]":
                    self.pos += 1
                    break
                self._value((*path, index))
                index += 1
                self._skip(newlines=True)
                if text[self.pos] == ",":
                    self.pos += 1
        elif char == "{":
            self.pos += 1
            while True:
                self._skip()
                if text[self.pos] == "}":
                    self.pos += 1
                    break
                self._key_value(path)
                self._skip()
                if text[self.pos] == ",":
                    self.pos += 1
        elif text.startswith(('"""', "'''"), start):
            delimiter = text[start : start + 3]
            end = start + 3
            while not text.startswith(delimiter, end):
                end += 2 if delimiter == '"""' and text[end] == "\\" else 1
            end += 3
            for _ in range(2):  # up to two more quotes belong to the content
                if end < len(text) and text[end] == delimiter[0]:
                    end += 1
            self.pos = end
        elif char in "\"'":
            end = start + 1
            while text[end] != char:
                end += 2 if char == '"' and text[end] == "\\" else 1
            self.pos = end + 1
        else:
            match = re.compile(r"\d{4}-\d\d-\d\d[ Tt]\d\d:\d\d[^\s,\]}#]*|[^\s,\]}#]+").match(text, start)
            if match is None:
                raise ValueError("not a value")
            self.pos = match.end()
        self.values.setdefault(path, (start, self.pos))

    def _skip(self, newlines: bool = False) -> None:
        text = self.text
        blanks = " \t\r\n" if newlines else " \t"
        while self.pos < len(text):
            char = text[self.pos]
            if char in blanks:
                self.pos += 1
            elif char == "#" and newlines:
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return


# --- fork safety ----------------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at fork time; the parent still owns its pending lines.
    global _lock
    _lock = _thread.allocate_lock()
    for sink in _sinks:
        sink.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
