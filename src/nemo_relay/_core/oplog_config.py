"""Operational logging, configuration: the ``NEMO_RELAY_LOG*`` variables and the ``[logging]`` TOML table.

Turns the environment (and the configuration file it may name) into a validated ``_Settings``, with
the reference's error texts, before ``oplog_sinks`` opens any file. Also holds the level names and
limits the other ``oplog`` modules share.
"""

from __future__ import annotations

import os

from nemo_relay._core.codecs.rustfmt import float_display, printable_str

# Typing-only imports: `typing` alone costs milliseconds at interpreter start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

    from nemo_relay._core.oplog_toml import _Path

LEVELS: Final = ("error", "warn", "info", "debug", "trace")
"""Level names, most severe first."""

# Rank 1 is the most severe; a record is written when its rank <= the output's rank.
_RANK: Final = {name: rank for rank, name in enumerate(LEVELS, start=1)}

_INIT_PREFIX: Final = "failed to initialize NeMo Relay operational logging: invalid argument: "
_LEVEL_HINT: Final = "expected error, warn, info, debug, or trace"
_ENV_LEVEL: Final = "NEMO_RELAY_LOG"
_ENV_STDERR: Final = "NEMO_RELAY_LOG_STDERR"
_ENV_FORMAT: Final = "NEMO_RELAY_LOG_STDERR_FORMAT"
_ENV_CONFIG: Final = "NEMO_RELAY_LOG_CONFIG_PATH"

_MAX_QUEUE_CAPACITY: Final = 8192
_MAX_RETAINED_FILES: Final = 9
_DEFAULT_FLUSH_INTERVAL_MILLIS: Final = 1000  # the reference's sinks also appear after about a second


def _rotated_name(path: str, index: int) -> str:
    # `app.log` -> `app.1.log`, `app` -> `app.1` (what the reference's rotating sink writes).
    stem, extension = os.path.splitext(path)
    return f"{stem}.{index}{extension}"


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


def _parse_config_text(text: str) -> _Settings:
    import tomllib  # only configuration files pay for the TOML parser

    from nemo_relay._core.oplog_toml import _syntax_error_text

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


def _shape_error(text: str, path: _Path, at_key: bool, message: str) -> _InvalidArgument:
    from nemo_relay._core.oplog_toml import _shape_error_text  # only a bad configuration file pays for it

    return _InvalidArgument("invalid logging TOML: " + _shape_error_text(text, path, at_key, message))


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
        return f"floating point `{float_display(value)}`"
    if isinstance(value, str):
        return f"string {printable_str(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"  # tables and TOML dates/times


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
