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

This module is the public face (state, API, record formatting); the variables and TOML file are read
by ``oplog_config`` (with ``oplog_toml`` for the reference's TOML error text), and the file sinks live
in ``oplog_sinks``.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from nemo_relay._core import ids
from nemo_relay._core.oplog_config import _DEFAULT_FLUSH_INTERVAL_MILLIS, _RANK, LEVELS, _Settings, _settings_from_env

# Typing-only imports: `typing` alone costs milliseconds at interpreter start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

    from nemo_relay._core.oplog_sinks import _FileSink

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

# Ranks come from oplog_config: 1 is the most severe, and a record is written when its rank <= the output's.
_UPPER: Final = {rank: name.upper() for name, rank in _RANK.items()}
_DISABLED: Final = 99  # unknown level names never pass any threshold

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
    sinks: tuple[_FileSink, ...] = ()
    if settings.sinks:
        from nemo_relay._core.oplog_sinks import _open_sinks  # only file sinks pay for it

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


# --- installing a configuration -------------------------------------------------------------------


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


# --- fork safety ----------------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at fork time; the parent still owns its pending lines.
    global _lock
    _lock = _thread.allocate_lock()
    for sink in _sinks:
        sink.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
