"""Operational logging (spec 6.4): environment variables, TOML config, record formats, file sinks.

Every test runs a fresh interpreter, because the logging state is per process and is configured
from the environment. The child loads ``nemo_relay._core.oplog`` without running the package
``__init__`` (which also initializes logging at import), so these tests pin the module on its own;
``test_package_import_*`` check the wiring through ``import nemo_relay``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SPEC = importlib.util.find_spec("nemo_relay")
assert _SPEC is not None and _SPEC.submodule_search_locations
_PACKAGE_DIR = _SPEC.submodule_search_locations[0]

# Stand-in parent packages, so importing the module does not run nemo_relay/__init__.py.
_PRELUDE = f"""
import os, sys, types
for _name, _sub in (("nemo_relay", ""), ("nemo_relay._core", "_core")):
    _module = types.ModuleType(_name)
    _module.__path__ = [os.path.join({_PACKAGE_DIR!r}, _sub)]
    sys.modules[_name] = _module
import nemo_relay._core.oplog as oplog
_IMPORTED_WITH_OPLOG = set(sys.modules)
import json
"""

_PREFIX = "failed to initialize NeMo Relay operational logging: invalid argument: "
_TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
_UUID7 = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_RECORD_KEYS = ["event", "fields", "level", "message", "root_relay_id", "target", "timestamp"]
_LOGGING_KEYS = "`level`, `stderr_enabled`, `stderr_format`, `flush_interval_millis`, `sinks`"
_SINK_KEYS = "`path`, `level`, `format`, `queue_capacity`, `max_file_size_bytes`, `retained_files`"


def _clean_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEMO_RELAY_LOG")}
    env.update(overrides)
    return env


def _run(code: str, cwd: Path, prelude: str = _PRELUDE, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=_clean_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _init_error(tmp_path: Path, **env: str) -> str | None:
    """The RuntimeError text init_from_env raises for this environment, or None."""
    result = _run(
        """
        try:
            oplog.init_from_env()
        except RuntimeError as exc:
            print(json.dumps(str(exc)))
        """,
        tmp_path,
        **env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def _config(tmp_path: Path, text: str, name: str = "logging.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def _config_error(tmp_path: Path, text: str) -> str | None:
    return _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=_config(tmp_path, text))


def _jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line]


# --- environment variables ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "detail"),
    [
        ({"NEMO_RELAY_LOG": ""}, "NEMO_RELAY_LOG must not be empty when set"),
        (
            {"NEMO_RELAY_LOG": "bogus"},
            "invalid logging level 'bogus'; expected error, warn, info, debug, or trace",
        ),
        # The value is trimmed and lower-cased before it is checked (and quoted).
        (
            {"NEMO_RELAY_LOG": "  Bogus "},
            "invalid logging level 'bogus'; expected error, warn, info, debug, or trace",
        ),
        ({"NEMO_RELAY_LOG": "   "}, "invalid logging level ''; expected error, warn, info, debug, or trace"),
        (
            {"NEMO_RELAY_LOG": "info,foo=debug"},
            "invalid logging level 'info,foo=debug'; expected error, warn, info, debug, or trace",
        ),
        ({"NEMO_RELAY_LOG_STDERR_FORMAT": ""}, "NEMO_RELAY_LOG_STDERR_FORMAT must not be empty when set"),
        ({"NEMO_RELAY_LOG_STDERR_FORMAT": " Text "}, "invalid logging format 'text'; expected human or jsonl"),
        ({"NEMO_RELAY_LOG_STDERR": ""}, "NEMO_RELAY_LOG_STDERR must not be empty when set"),
        ({"NEMO_RELAY_LOG_STDERR": "yes"}, "invalid NEMO_RELAY_LOG_STDERR value 'yes'; expected true or false"),
        ({"NEMO_RELAY_LOG_CONFIG_PATH": ""}, "NEMO_RELAY_LOG_CONFIG_PATH must not be empty when set"),
        ({"NEMO_RELAY_LOG_CONFIG_PATH": "rel.toml"}, "logging configuration path must be absolute: rel.toml"),
        ({"NEMO_RELAY_LOG_CONFIG_PATH": "/tmp"}, "logging configuration path must identify a .toml file: /tmp"),
        (
            {"NEMO_RELAY_LOG_CONFIG_PATH": "/x/logging.TOML"},
            "logging configuration path must identify a .toml file: /x/logging.TOML",
        ),
        (
            {"NEMO_RELAY_LOG_CONFIG_PATH": "/nonexistent/x.toml"},
            "failed to read logging configuration /nonexistent/x.toml: No such file or directory (os error 2)",
        ),
        (
            {"NEMO_RELAY_LOG": "info", "NEMO_RELAY_LOG_CONFIG_PATH": "rel.toml"},
            "NEMO_RELAY_LOG_CONFIG_PATH cannot be combined with NEMO_RELAY_LOG or NEMO_RELAY_LOG_STDERR"
            " or NEMO_RELAY_LOG_STDERR_FORMAT",
        ),
        # Emptiness is checked for every variable first, in this order: LOG, STDERR, FORMAT, CONFIG_PATH.
        (
            {"NEMO_RELAY_LOG": "bogus", "NEMO_RELAY_LOG_STDERR_FORMAT": ""},
            "NEMO_RELAY_LOG_STDERR_FORMAT must not be empty when set",
        ),
        ({"NEMO_RELAY_LOG": "", "NEMO_RELAY_LOG_CONFIG_PATH": ""}, "NEMO_RELAY_LOG must not be empty when set"),
        # Then the level, the stderr switch and the format, in that order.
        (
            {"NEMO_RELAY_LOG": "bad", "NEMO_RELAY_LOG_STDERR": "bad"},
            "invalid logging level 'bad'; expected error, warn, info, debug, or trace",
        ),
        (
            {"NEMO_RELAY_LOG_STDERR": "bad", "NEMO_RELAY_LOG_STDERR_FORMAT": "bad"},
            "invalid NEMO_RELAY_LOG_STDERR value 'bad'; expected true or false",
        ),
    ],
)
def test_bad_environment_raises_the_reference_text(tmp_path: Path, env: dict[str, str], detail: str) -> None:
    assert _init_error(tmp_path, **env) == _PREFIX + detail


def test_config_directory_is_reported_as_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=str(folder)) == (
        _PREFIX + f"failed to read logging configuration {folder}: Is a directory (os error 21)"
    )


def test_config_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe")
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=str(path)) == (
        _PREFIX + f"failed to read logging configuration {path}: stream did not contain valid UTF-8"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"NEMO_RELAY_LOG": "WARNING"},
        {"NEMO_RELAY_LOG": " Info "},
        {"NEMO_RELAY_LOG": "trace", "NEMO_RELAY_LOG_STDERR_FORMAT": "JSON"},
        {"NEMO_RELAY_LOG_STDERR": " TRUE"},
        {"NEMO_RELAY_LOG_STDERR": "0"},
    ],
)
def test_accepted_spellings(tmp_path: Path, env: dict[str, str]) -> None:
    assert _init_error(tmp_path, **env) is None


# --- TOML configuration ---------------------------------------------------------------------------


def test_config_without_logging_table(tmp_path: Path) -> None:
    path = _config(tmp_path, "[other]\nx = 1\n")
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=path) == (
        _PREFIX + f"invalid logging configuration in {path}: invalid argument: "
        "logging configuration requires a [logging] section"
    )


def test_unknown_logging_key_points_at_the_key(tmp_path: Path) -> None:
    path = _config(tmp_path, "[logging]\nlevel = 3\nbogus = 1\n")
    # Keys are checked in sorted order, so `bogus` is reported before the bad `level`.
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=path) == (
        _PREFIX + f"invalid logging configuration in {path}: invalid argument: invalid logging TOML: "
        "TOML parse error at line 3, column 1\n"
        "  |\n"
        "3 | bogus = 1\n"
        "  | ^^^^^\n"
        f"unknown field `bogus`, expected one of {_LOGGING_KEYS}\n"
    )


@pytest.mark.parametrize(
    ("text", "snippet"),
    [
        (
            "[logging]\nlevel=3\n",
            "TOML parse error at line 2, column 7\n  |\n2 | level=3\n  |       ^\n"
            "invalid type: integer `3`, expected a string\n",
        ),
        (
            '[logging]\nstderr_enabled="yes"\n',
            'TOML parse error at line 2, column 16\n  |\n2 | stderr_enabled="yes"\n  |                ^^^^^\n'
            'invalid type: string "yes", expected a boolean\n',
        ),
        (
            "[logging]\nflush_interval_millis=-1\n",
            "TOML parse error at line 2, column 23\n  |\n2 | flush_interval_millis=-1\n  |                       ^^\n"
            "invalid value: integer `-1`, expected u64\n",
        ),
        (
            "[logging]\nflush_interval_millis=1e3\n",
            "TOML parse error at line 2, column 23\n  |\n2 | flush_interval_millis=1e3\n  |                       ^^^\n"
            "invalid type: floating point `1000.0`, expected u64\n",
        ),
        (
            '[[logging.sinks]]\npath="/tmp/a.log"\nbogus=1\n',
            "TOML parse error at line 3, column 1\n  |\n3 | bogus=1\n  | ^^^^^\n"
            f"unknown field `bogus`, expected one of {_SINK_KEYS}\n",
        ),
        (
            '[logging]\nsinks = [{path="/tmp/a.log", queue_capacity="x"}]\n',
            "TOML parse error at line 2, column 45\n  |\n"
            '2 | sinks = [{path="/tmp/a.log", queue_capacity="x"}]\n'
            "  |                                             ^^^\n"
            'invalid type: string "x", expected usize\n',
        ),
        (
            "logging = 1\n",
            "TOML parse error at line 1, column 11\n  |\n1 | logging = 1\n  |           ^\n"
            "invalid type: integer `1`, expected struct RawLoggingConfig\n",
        ),
        (
            "[logging.foo]\n",
            "TOML parse error at line 1, column 10\n  |\n1 | [logging.foo]\n  |          ^^^\n"
            f"unknown field `foo`, expected one of {_LOGGING_KEYS}\n",
        ),
    ],
)
def test_wrong_types_point_at_the_value(tmp_path: Path, text: str, snippet: str) -> None:
    path = _config(tmp_path, text)
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=path) == (
        _PREFIX + f"invalid logging configuration in {path}: invalid argument: invalid logging TOML: " + snippet
    )


def test_malformed_toml_reports_line_and_column(tmp_path: Path) -> None:
    path = _config(tmp_path, "[logging\n")
    error = _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=path)
    assert error is not None
    # The last line is the parser's own wording, which differs from the reference's TOML crate.
    head, _, _ = error.rpartition("\n  |         ^\n")
    assert head == (
        _PREFIX + f"invalid logging configuration in {path}: invalid argument: invalid logging TOML: "
        "TOML parse error at line 1, column 9\n  |\n1 | [logging"
    )


@pytest.mark.parametrize(
    ("sink", "detail"),
    [
        ("level = 'info'", "logging sink requires path"),
        ("path = ''", "logging sink path must not be empty"),
        ("path = 'a.log'\nlevel = 'loud'", "invalid logging level 'loud'; expected error, warn, info, debug, or trace"),
        ("path = 'a.log'\nformat = 'xml'", "invalid logging format 'xml'; expected human or jsonl"),
        ("path = 'a.log'\nqueue_capacity = 0", "logging sink queue_capacity must be greater than 0"),
        (
            "path = 'a.log'\nqueue_capacity = 8193",
            "logging sink queue_capacity 8193 exceeds maximum 8192 entries per file sink",
        ),
        (
            "path = 'a.log'\nretained_files = 3",
            "logging sink max_file_size_bytes and retained_files must be configured together",
        ),
        (
            "path = 'a.log'\nmax_file_size_bytes = 100",
            "logging sink max_file_size_bytes and retained_files must be configured together",
        ),
        (
            "path = 'a.log'\nmax_file_size_bytes = 0\nretained_files = 10",
            "logging sink max_file_size_bytes must be greater than 0",
        ),
        (
            "path = 'a.log'\nmax_file_size_bytes = 100\nretained_files = 0",
            "logging sink retained_files must be greater than 0",
        ),
        (
            "path = 'a.log'\nmax_file_size_bytes = 100\nretained_files = 10",
            "logging sink retained_files 10 exceeds maximum 9 backup files per sink",
        ),
    ],
)
def test_bad_sink_entries(tmp_path: Path, sink: str, detail: str) -> None:
    path = _config(tmp_path, "[logging]\n[[logging.sinks]]\n" + sink + "\n")
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=path) == (
        _PREFIX + f"invalid logging configuration in {path}: invalid argument: {detail}"
    )


def test_duplicate_and_conflicting_sink_paths(tmp_path: Path) -> None:
    duplicate = _config(tmp_path, "[[logging.sinks]]\npath = 'a.log'\n[[logging.sinks]]\npath = 'x/../a.log'\n")
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=duplicate) == (
        _PREFIX + f"duplicate logging sink path {tmp_path / 'a.log'}"
    )
    conflict = _config(
        tmp_path,
        "[[logging.sinks]]\npath = 'b.log'\nmax_file_size_bytes = 10\nretained_files = 2\n"
        "[[logging.sinks]]\npath = 'b.2.log'\n",
    )
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=conflict) == (
        _PREFIX + f"logging sink path conflicts with another active or rotated file: {tmp_path / 'b.2.log'}"
    )


def test_unopenable_sink(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    path = _config(tmp_path, "[[logging.sinks]]\npath = 'taken'\n")
    assert _init_error(tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=path) == (
        _PREFIX + f"failed to open logging sink {tmp_path / 'taken'}: open file error: Is a directory (os error 21)"
    )


# --- record formats -------------------------------------------------------------------------------


def test_jsonl_record_shape(tmp_path: Path) -> None:
    result = _run(
        """
        oplog.init_from_env()
        oplog.log("warn", "nemo_relay.runtime", "thing_happened", "A thing happened", b=True, a=2, c="x y")
        print(oplog.root_relay_id())
        """,
        tmp_path,
        NEMO_RELAY_LOG="info",
        NEMO_RELAY_LOG_STDERR_FORMAT="jsonl",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    records = _jsonl(result.stderr)
    assert [list(record) for record in records] == [_RECORD_KEYS, _RECORD_KEYS]
    init, custom = records
    assert {key: init[key] for key in ("event", "fields", "level", "message", "target")} == {
        "event": "logging_initialized",
        "fields": {"file_sink_count": "0"},  # field values are always text, as in the reference
        "level": "info",
        "message": "Operational logging initialized",
        "target": "nemo_relay.logging",
    }
    assert custom["fields"] == {"a": "2", "b": "true", "c": "x y"}
    assert custom["level"] == "warn"
    assert custom["root_relay_id"] == init["root_relay_id"] == result.stdout.strip()
    assert re.fullmatch(_UUID7, str(init["root_relay_id"]))
    assert re.fullmatch(_TIMESTAMP, str(init["timestamp"]))
    # Sorted keys and compact separators, byte for byte.
    assert lines[1] == json.dumps(custom, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_human_record_shape(tmp_path: Path) -> None:
    result = _run(
        """
        oplog.init_from_env()
        oplog.log("error", "nemo_relay.runtime", "thing_failed", "It failed", zeta="last one", alpha=1)
        print(oplog.root_relay_id())
        """,
        tmp_path,
        NEMO_RELAY_LOG="info",
    )
    assert result.returncode == 0, result.stderr
    root = result.stdout.strip()[:8]
    init, custom = result.stderr.splitlines()
    assert re.fullmatch(
        _TIMESTAMP + f" INFO root={root} target=nemo_relay.logging event=logging_initialized "
        "file_sink_count=0 Operational logging initialized",
        init,
    )
    # Fields in key order, values unquoted.
    assert re.fullmatch(
        _TIMESTAMP + f" ERROR root={root} target=nemo_relay.runtime event=thing_failed alpha=1 zeta=last one It failed",
        custom,
    )


def test_levels_filter_and_enabled(tmp_path: Path) -> None:
    code = """
    oplog.init_from_env()
    for level in oplog.LEVELS:
        oplog.log(level, "t", "at_" + level, "m")
    oplog.log("loud", "t", "unknown_level", "m")
    print(json.dumps([oplog.enabled(level) for level in (*oplog.LEVELS, "loud")]))
    """
    expected = {  # configured level -> (events written, enabled() for error..trace and "loud")
        None: (["at_error"], [True, False, False, False, False, False]),
        "warn": (["at_error", "at_warn"], [True, True, False, False, False, False]),
        "debug": (
            ["logging_initialized", "at_error", "at_warn", "at_info", "at_debug"],
            [True, True, True, True, False, False],
        ),
    }
    for level, (events, enabled) in expected.items():
        env = {} if level is None else {"NEMO_RELAY_LOG": level}
        result = _run(code, tmp_path, NEMO_RELAY_LOG_STDERR_FORMAT="jsonl", **env)
        assert result.returncode == 0, result.stderr
        assert [record["event"] for record in _jsonl(result.stderr)] == events
        assert json.loads(result.stdout) == enabled


def test_disabled_levels_and_disabled_stderr_write_nothing(tmp_path: Path) -> None:
    code = """
    oplog.init_from_env()
    oplog.log("info", "t", "e", "m")
    oplog.log("debug", "t", "e", "m", huge="x" * 1000)
    oplog.shutdown()
    print(oplog.enabled("error"))
    """
    default = _run(code, tmp_path)
    assert (default.returncode, default.stderr, default.stdout) == (0, "", "True\n")
    silenced = _run(code, tmp_path, NEMO_RELAY_LOG="trace", NEMO_RELAY_LOG_STDERR="false")
    assert (silenced.returncode, silenced.stderr, silenced.stdout) == (0, "", "False\n")


def test_log_never_raises(tmp_path: Path) -> None:
    result = _run(
        """
        class Broken:
            def __str__(self):
                raise ValueError("no text")

        oplog.init_from_env()
        oplog.log("error", "t", "e", "m", value=Broken())
        sys.stderr = None
        oplog.log("error", "t", "e", "m")
        oplog.shutdown()
        print("survived")
        """,
        tmp_path,
    )
    assert (result.returncode, result.stdout) == (0, "survived\n"), result.stderr


def test_import_stays_cheap(tmp_path: Path) -> None:
    # json and tomllib load only when jsonl is written or a config file is read.
    result = _run(
        """
        heavy = ("asyncio", "json", "tomllib", "typing", "threading", "dataclasses")
        print(json.dumps(sorted(name for name in heavy if name in _IMPORTED_WITH_OPLOG)))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# --- file sinks -----------------------------------------------------------------------------------


def test_file_sinks_levels_formats_and_shutdown_record(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        """
        [logging]
        level = "info"
        stderr_enabled = false
        [[logging.sinks]]
        path = "logs/all.jsonl"
        [[logging.sinks]]
        path = "logs/human.log"
        format = "human"
        [[logging.sinks]]
        path = "logs/warn.jsonl"
        level = "warn"
        [[logging.sinks]]
        path = "logs/trace.jsonl"
        level = "trace"
        """,
    )
    result = _run(
        """
        oplog.init_from_env()
        oplog.log("warn", "nemo_relay.runtime", "slow", "Slow", millis=12)
        oplog.log("debug", "nemo_relay.runtime", "detail", "Detail")
        oplog.shutdown()
        oplog.shutdown()
        """,
        tmp_path,
        NEMO_RELAY_LOG_CONFIG_PATH=path,
    )
    assert (result.returncode, result.stderr) == (0, "")
    logs = tmp_path / "logs"  # parent directories are created; relative paths follow the working directory
    all_records = _jsonl((logs / "all.jsonl").read_text())
    assert [record["event"] for record in all_records] == ["logging_initialized", "slow", "logging_shutdown_started"]
    assert all_records[0]["fields"] == {"file_sink_count": "4"}
    assert {key: all_records[2][key] for key in ("fields", "level", "message", "target")} == {
        "fields": {},
        "level": "info",
        "message": "Operational logging shutdown started",
        "target": "nemo_relay.logging",
    }
    assert [record["event"] for record in _jsonl((logs / "warn.jsonl").read_text())] == ["slow"]
    # The global level is a ceiling: a trace sink under an info config gets no debug records.
    assert [record["event"] for record in _jsonl((logs / "trace.jsonl").read_text())] == [
        "logging_initialized",
        "slow",
        "logging_shutdown_started",
    ]
    human = (logs / "human.log").read_text().splitlines()
    assert re.fullmatch(
        _TIMESTAMP + r" WARN root=[0-9a-f]{8} target=nemo_relay\.runtime event=slow millis=12 Slow", human[1]
    )


def test_sinks_are_buffered_until_flush_or_interval(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        """
        [logging]
        level = "info"
        stderr_enabled = false
        flush_interval_millis = 50
        [[logging.sinks]]
        path = "a.log"
        """,
    )
    result = _run(
        """
        import time
        size = lambda: os.path.getsize("a.log")
        oplog.init_from_env()
        sizes = [size()]
        time.sleep(0.2)
        sizes.append(size())                       # no log call, so nothing checked the interval
        oplog.log("info", "t", "second", "m")      # past the interval: both records are written
        sizes.append(size())
        oplog.log("info", "t", "third", "m")       # within the interval again: buffered
        sizes.append(size())
        oplog.flush()
        sizes.append(size())
        print(json.dumps(sizes))
        """,
        tmp_path,
        NEMO_RELAY_LOG_CONFIG_PATH=path,
    )
    assert result.returncode == 0, result.stderr
    empty, still_empty, two, still_two, three = json.loads(result.stdout)
    assert empty == still_empty == 0
    assert 0 < two == still_two < three


def test_full_queue_is_written_out(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        """
        [logging]
        level = "info"
        stderr_enabled = false
        flush_interval_millis = 0
        [[logging.sinks]]
        path = "a.log"
        queue_capacity = 2
        """,
    )
    result = _run(
        """
        oplog.init_from_env()
        oplog.log("info", "t", "second", "m")
        before = os.path.getsize("a.log")
        oplog.log("info", "t", "third", "m")
        print(json.dumps([before, len(open("a.log").read().splitlines()), oplog.dropped_records()]))
        """,
        tmp_path,
        NEMO_RELAY_LOG_CONFIG_PATH=path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [0, 2, 0]


def test_size_based_rotation(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        """
        [logging]
        level = "info"
        stderr_enabled = false
        [[logging.sinks]]
        path = "r.log"
        max_file_size_bytes = 600
        retained_files = 2
        [[logging.sinks]]
        path = "plain"
        format = "human"
        max_file_size_bytes = 10
        retained_files = 3
        """,
    )
    result = _run(
        """
        oplog.init_from_env()
        for i in range(12):
            oplog.log("info", "t", "numbered", "m", n=f"{i:02d}")
        oplog.shutdown()
        """,
        tmp_path,
        NEMO_RELAY_LOG_CONFIG_PATH=path,
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".toml")
    assert names == ["plain", "plain.1", "plain.2", "plain.3", "r.1.log", "r.2.log", "r.log"]
    # Newest in r.log, then r.1.log, then r.2.log; older files were dropped; no file outgrows the limit.
    chunks = [(tmp_path / name).read_text() for name in ("r.2.log", "r.1.log", "r.log")]
    assert all(0 < len(chunk.encode()) <= 600 for chunk in chunks)
    records = [record for chunk in chunks for record in _jsonl(chunk)]
    assert records[-1]["event"] == "logging_shutdown_started"
    numbers = [int(str(record["fields"]["n"])) for record in records if record["event"] == "numbered"]  # type: ignore[index]
    assert len(numbers) >= 4
    assert numbers == list(range(12 - len(numbers), 12))
    # A record longer than the limit gets a file of its own.
    assert (tmp_path / "plain").read_text().count("\n") == 1
    assert "event=numbered n=11" in (tmp_path / "plain.1").read_text()


def test_existing_file_is_appended_and_counted(tmp_path: Path) -> None:
    (tmp_path / "r.log").write_text("x" * 590 + "\n")
    path = _config(
        tmp_path,
        """
        [logging]
        level = "info"
        stderr_enabled = false
        [[logging.sinks]]
        path = "r.log"
        max_file_size_bytes = 600
        retained_files = 1
        """,
    )
    result = _run("oplog.init_from_env()\noplog.shutdown()\n", tmp_path, NEMO_RELAY_LOG_CONFIG_PATH=path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.1.log").read_text().startswith("x" * 590 + "\n")


def test_records_after_shutdown_still_reach_the_file(tmp_path: Path) -> None:
    path = _config(tmp_path, '[logging]\nlevel = "info"\nstderr_enabled = false\n[[logging.sinks]]\npath = "a.log"\n')
    result = _run(
        """
        oplog.init_from_env()
        oplog.shutdown()
        oplog.log("info", "t", "late", "m")
        print(open("a.log").read().splitlines()[-1])
        """,
        tmp_path,
        NEMO_RELAY_LOG_CONFIG_PATH=path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event"] == "late"


def test_sink_whose_directory_disappears_does_not_raise(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        """
        [logging]
        level = "info"
        stderr_enabled = false
        [[logging.sinks]]
        path = "gone/a.log"
        [[logging.sinks]]
        path = "blocked/b.log"
        max_file_size_bytes = 10
        retained_files = 1
        """,
    )
    result = _run(
        """
        import shutil
        oplog.init_from_env()
        shutil.rmtree("gone")
        shutil.rmtree("blocked")
        open("blocked", "w").close()   # a file where the directory was: the sink cannot reopen
        for _ in range(3):
            oplog.log("info", "t", "e", "m")
            oplog.flush()
        oplog.shutdown()
        print(oplog.dropped_records() > 0)
        """,
        tmp_path,
        NEMO_RELAY_LOG_CONFIG_PATH=path,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "True\n", "")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_keeps_logging_without_duplicating_parent_records(tmp_path: Path) -> None:
    path = _config(tmp_path, '[logging]\nlevel = "info"\nstderr_enabled = false\n[[logging.sinks]]\npath = "a.log"\n')
    result = _run(
        """
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads in newer Pythons
        oplog.init_from_env()
        oplog.log("info", "t", "before_fork", "m")   # still buffered in the parent
        pid = os.fork()
        if pid == 0:
            oplog.log("info", "t", "in_child", "m")
            oplog.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        oplog.log("info", "t", "in_parent", "m")
        oplog.shutdown()
        """,
        tmp_path,
        NEMO_RELAY_LOG_CONFIG_PATH=path,
    )
    assert result.returncode == 0, result.stderr
    events = sorted(str(record["event"]) for record in _jsonl((tmp_path / "a.log").read_text()))
    assert events == sorted(["logging_initialized", "before_fork", "in_child", "in_parent", "logging_shutdown_started"])


# --- package wiring -------------------------------------------------------------------------------


def test_package_import_fails_on_bad_environment(tmp_path: Path) -> None:
    result = _run("import nemo_relay", tmp_path, prelude="", NEMO_RELAY_LOG="")
    assert result.returncode != 0
    assert result.stderr.rstrip().endswith("RuntimeError: " + _PREFIX + "NEMO_RELAY_LOG must not be empty when set")


def test_package_import_logs_initialized_and_shutdown(tmp_path: Path) -> None:
    result = _run(
        "import nemo_relay", tmp_path, prelude="", NEMO_RELAY_LOG="info", NEMO_RELAY_LOG_STDERR_FORMAT="jsonl"
    )
    assert result.returncode == 0, result.stderr
    events = [record["event"] for record in _jsonl(result.stderr)]
    assert events[0] == "logging_initialized"
    assert events[-1] == "logging_shutdown_started"  # from the atexit hook
