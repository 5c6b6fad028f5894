"""ATOF exporter, file sink and standalone API: exact lines, modes, confinement, errors, schema validation.

Expected shapes were captured from the reference wheel (nemo-relay 0.8.4) running the same script.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nemo_relay
from nemo_relay import AtofExporter, AtofExporterConfig, AtofExporterMode, AtofStreamSinkConfig, scope, subscribers
from nemo_relay._core.diagnostics import RuntimeDiagnostics
from nemo_relay._core.observability.atof import build_sinks
from nemo_relay._core.observability.settings import AtofFileSinkSettings

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3}|\.\d{6}|\.\d{9})?\+00:00")

# The reference's file for the scripted run below, with ids and timestamps masked.
REFERENCE_LINES = [
    '{"atof_version":"0.1","attributes":[],"category":"agent","category_profile":null,"data":null,'
    '"data_schema":null,"kind":"scope","metadata":{"service.name":"relay","session_id":"s-1"},"name":"planner",'
    '"parent_uuid":"<uuid0>","scope_category":"start","timestamp":"<ts>","uuid":"<uuid1>"}',
    '{"atof_version":"0.1","category":null,"category_profile":null,"data":{"note":"héllo \\"q\\"","ratio":0.25,'
    '"step":1},"data_schema":{"name":"demo.step","version":"1"},"kind":"mark","metadata":{"k":[1,null,true]},'
    '"name":"checkpoint","parent_uuid":"<uuid1>","timestamp":"<ts>","uuid":"<uuid2>"}',
    '{"atof_version":"0.1","attributes":[],"category":"agent","category_profile":null,"data":{"answer":42},'
    '"data_schema":null,"kind":"scope","metadata":{"service.name":"relay","session_id":"s-1"},"name":"planner",'
    '"parent_uuid":"<uuid0>","scope_category":"end","timestamp":"<ts>","uuid":"<uuid1>"}',
]


def _masked(text: str) -> list[str]:
    ids: dict[str, str] = {}
    text = UUID.sub(lambda m: ids.setdefault(m.group(0), f"<uuid{len(ids)}>"), text)
    return TIMESTAMP.sub("<ts>", text).splitlines()


def _file_exporter(
    directory: Path, filename: str = "events.jsonl", mode: AtofExporterMode | None = None
) -> AtofExporter:
    config = AtofExporterConfig()
    config.output_directory = str(directory)
    config.filename = filename
    if mode is not None:
        config.mode = mode
    return AtofExporter(config)


def _scripted_run() -> None:
    handle = scope.push("planner", nemo_relay.ScopeType.Agent, metadata={"session_id": "s-1", "service.name": "relay"})
    scope.event(
        "checkpoint",
        data={"step": 1, "note": 'héllo "q"', "ratio": 0.25},
        data_schema={"name": "demo.step", "version": "1"},
        metadata={"k": [1, None, True]},
    )
    scope.pop(handle, output={"answer": 42})


def test_scripted_run_writes_the_reference_lines(tmp_path: Path) -> None:
    exporter = _file_exporter(tmp_path, mode=AtofExporterMode.Overwrite)
    exporter.register("atof-test")
    try:
        _scripted_run()
    finally:
        exporter.shutdown()
        assert exporter.deregister("atof-test") is True
    assert exporter.path == str(tmp_path / "events.jsonl")
    text = Path(exporter.path).read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert _masked(text) == REFERENCE_LINES
    assert stat.S_IMODE(os.stat(exporter.path).st_mode) == 0o600
    for line in text.splitlines():  # every line is compact, sorted JSON
        assert json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"), ensure_ascii=False) == line


def test_lines_validate_against_the_independent_atof_schema(tmp_path: Path) -> None:
    nat_io = pytest.importorskip("nat.atof.io")
    exporter = _file_exporter(tmp_path)
    exporter.register("atof-schema")

    async def work() -> None:
        with scope.scope("agent", nemo_relay.ScopeType.Agent):
            await nemo_relay.tools.execute(
                "calc", {"x": 1}, lambda a: nemo_relay.ToolExecutionResult({"r": 2}), tool_call_id="call-1"
            )
            request = nemo_relay.LLMRequest({}, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            await nemo_relay.llm.execute("chat", request, lambda r: {"choices": []})
            scope.event("note", data=[1, "two", None])
        with scope.scope(
            "child",
            nemo_relay.ScopeType.Function,
            attributes=nemo_relay.ScopeAttributes(nemo_relay.ScopeAttributes.PARALLEL),
        ):
            pass

    try:
        asyncio.run(work())
    finally:
        exporter.shutdown()
        exporter.deregister("atof-schema")
    events = nat_io.read_jsonl(exporter.path)
    lines = Path(exporter.path).read_text(encoding="utf-8").splitlines()
    assert len(events) == len(lines) >= 8
    assert {e.kind for e in events} == {"scope", "mark"}
    assert {"agent", "tool", "llm"} <= {getattr(e, "category", None) for e in events}


def _sample_events() -> list[nemo_relay.ScopeEvent | nemo_relay.MarkEvent]:
    recorded: list[nemo_relay.ScopeEvent | nemo_relay.MarkEvent] = []
    subscribers.register("atof-sample", recorded.append)

    async def work() -> None:
        with scope.scope("agent", nemo_relay.ScopeType.Agent, metadata={"a.b": {"c.d": [1.5, -2, 10**18]}}):
            scope.event("big", data={"items": [{"id": i, "text": "x" * 30} for i in range(80)]})  # frozen payload
            scope.event("plain")
            scope.event("emoji", data="✓ \u2028 \x00 \ud7ff", metadata={"nemo_relay.log.severity": "warn"})
            await nemo_relay.tools.execute("t", {}, lambda a: nemo_relay.ToolExecutionResult(None), tool_call_id="id")

    try:
        asyncio.run(work())
        assert subscribers.flush(10)
    finally:
        subscribers.deregister("atof-sample")
    return recorded


def test_fast_serialiser_equals_to_json() -> None:
    from nemo_relay._core.observability.atof_wire import event_line

    events = _sample_events()
    assert len(events) >= 7
    for event in events:
        assert event_line(event) == event.to_json()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=12,
    )
)
def test_fast_serialiser_equals_to_json_for_any_payload(payload: object) -> None:
    from nemo_relay._core.observability.atof_wire import event_line

    recorded: list[nemo_relay.ScopeEvent | nemo_relay.MarkEvent] = []
    subscribers.register("atof-prop", recorded.append)
    try:
        scope.event("p", data=payload, metadata={"m": payload} if payload is not None else None)
        assert subscribers.flush(10)
    finally:
        subscribers.deregister("atof-prop")
    (event,) = recorded
    assert event_line(event) == event.to_json()


def test_append_keeps_lines_and_overwrite_truncates(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("old\n")
    path.chmod(0o644)
    appending = _file_exporter(tmp_path)  # Append is the default
    assert path.read_text() == "old\n"
    appending.register("atof-append")
    scope.event("one")
    appending.force_flush()
    appending.shutdown()
    appending.deregister("atof-append")
    lines = path.read_text().splitlines()
    assert lines[0] == "old" and json.loads(lines[1])["name"] == "one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # re-moded like the reference

    overwriting = _file_exporter(tmp_path, mode=AtofExporterMode.Overwrite)
    assert path.read_text() == ""  # truncated when the exporter is created
    overwriting.register("atof-overwrite")
    scope.event("two")
    overwriting.shutdown()
    overwriting.deregister("atof-overwrite")
    assert [json.loads(line)["name"] for line in path.read_text().splitlines()] == ["two"]


def test_file_holds_post_sanitizer_values(tmp_path: Path) -> None:
    def redact(event: object, fields: dict[str, object]) -> dict[str, object]:
        return {"data": {"secret": "[redacted]"}, "category_profile": None, "metadata": {"redacted": True}}

    nemo_relay.guardrails.register_mark_sanitize("atof-redact", 0, redact)
    exporter = _file_exporter(tmp_path)
    exporter.register("atof-sanitized")
    try:
        scope.event("login", data={"secret": "hunter2"}, metadata={"user": "u"})
    finally:
        exporter.shutdown()
        exporter.deregister("atof-sanitized")
        nemo_relay.guardrails.deregister_mark_sanitize("atof-redact")
    text = Path(exporter.path).read_text()
    assert "hunter2" not in text
    record = json.loads(text)
    assert record["data"] == {"secret": "[redacted]"} and record["metadata"] == {"redacted": True}


def test_events_after_shutdown_are_ignored_and_registration_is_unchanged(tmp_path: Path) -> None:
    exporter = _file_exporter(tmp_path)
    exporter.register("atof-late")
    scope.event("before")
    exporter.shutdown()
    scope.event("after")
    exporter.force_flush()
    exporter.shutdown()  # idempotent
    exporter.register("atof-late-2")  # allowed; the closed sink ignores events
    scope.event("after-2")
    assert subscribers.flush(10)
    assert [json.loads(x)["name"] for x in Path(exporter.path).read_text().splitlines()] == ["before"]
    with pytest.raises(RuntimeError, match="already exists"):
        exporter.register("atof-late")
    assert exporter.deregister("atof-late") is True
    assert exporter.deregister("atof-late-2") is True
    assert exporter.deregister("atof-late") is False


def test_force_flush_inside_a_callback_and_on_an_event_loop(tmp_path: Path) -> None:
    exporter = _file_exporter(tmp_path)
    exporter.register("atof-flush")
    seen: list[object] = []
    subscribers.register("atof-flush-cb", lambda e: seen.append(exporter.force_flush()))  # must not deadlock
    try:
        scope.event("x")
        assert subscribers.flush(10)

        async def on_loop() -> None:
            scope.event("y")
            exporter.force_flush()  # blocks briefly, like the reference (no loop error)

        asyncio.run(on_loop())
        assert len(Path(exporter.path).read_text().splitlines()) == 2
        assert seen == [None, None]
    finally:
        subscribers.deregister("atof-flush-cb")
        exporter.shutdown()
        exporter.deregister("atof-flush")


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("../escape.jsonl", "observability output must be a confined relative file path"),
        ("a/../b.jsonl", "observability output must be a confined relative file path"),
        ("", "observability output must be a confined relative file path"),
        ("/elsewhere/x.jsonl", "observability output '/elsewhere/x.jsonl' is outside configured directory"),
        ("link/x.jsonl", "refusing unsafe observability directory component 'link'"),
        ("file-link.jsonl", "refusing symlinked observability file 'file-link.jsonl'"),
        ("adir", "observability output 'adir' is not a regular file"),
    ],
)
def test_file_location_must_stay_confined(tmp_path: Path, filename: str, message: str) -> None:
    (tmp_path / "link").symlink_to(tmp_path.parent)
    (tmp_path / "real.jsonl").write_text("")
    (tmp_path / "file-link.jsonl").symlink_to(tmp_path / "real.jsonl")
    (tmp_path / "adir").mkdir()
    with pytest.raises(RuntimeError, match=re.escape("failed to open ATOF output file")) as caught:
        _file_exporter(tmp_path, filename)
    assert message in str(caught.value)


def test_nested_file_and_directories_are_created_private(tmp_path: Path) -> None:
    exporter = _file_exporter(tmp_path / "out", "run/1/events.jsonl")
    exporter.shutdown()
    assert exporter.path == str(tmp_path / "out" / "run/1/events.jsonl")
    assert stat.S_IMODE((tmp_path / "out" / "run").stat().st_mode) == 0o700
    inside = _file_exporter(tmp_path, str(tmp_path / "abs.jsonl"))  # absolute but inside: accepted
    inside.shutdown()
    assert Path(inside.path).exists()


WRITE_ERROR_SCRIPT = textwrap.dedent(
    """
    import json, resource, signal, sys
    import nemo_relay
    from nemo_relay import AtofExporter, AtofExporterConfig, scope
    from nemo_relay._core.diagnostics import RuntimeDiagnostics
    from nemo_relay._core.observability.atof import build_sinks
    from nemo_relay._core.observability.settings import AtofFileSinkSettings

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    config = AtofExporterConfig()
    config.output_directory = sys.argv[1]
    config.filename = "standalone.jsonl"
    exporter = AtofExporter(config)
    exporter.register("standalone")
    diagnostics = RuntimeDiagnostics()
    fanout = build_sinks([AtofFileSinkSettings(3, sys.argv[1], "plugin.jsonl")], diagnostics)
    nemo_relay.subscribers.register("plugin", fanout.deliver)
    resource.setrlimit(resource.RLIMIT_FSIZE, (700, resource.RLIM_INFINITY))
    for i in range(5):
        scope.event(f"mark{i}", data={"i": i})
    out = {"errors": []}
    for call in ("force_flush", "force_flush", "shutdown", "shutdown"):
        try:
            getattr(exporter, call)()
            out["errors"].append(None)
        except RuntimeError as exc:
            out["errors"].append(str(exc))
    out["flushed"] = fanout.force_flush(1.0)
    teardown = fanout.shutdown(1.0)
    out["teardown"] = [teardown.status, teardown.message]
    out["diagnostics"] = diagnostics.entries()
    print(json.dumps(out))
    """
)


def test_write_error_is_kept_reported_and_later_events_dropped(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes writes past 700 bytes fail with EFBIG, in a child process of its own.
    done = subprocess.run(
        [sys.executable, "-c", WRITE_ERROR_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    path = tmp_path / "standalone.jsonl"
    error = f'failed to flush ATOF output file "{path}": File too large (os error 27)'
    previous = f'previous ATOF export failed for "{path}": File too large (os error 27)'
    assert out["errors"] == [error, error, error, previous]  # the reference's messages
    assert path.stat().st_size == 700 and path.read_text().count("\n") == 2
    assert out["flushed"] is False
    status, message = out["teardown"]
    assert status == "removed_with_error"
    # The same 700-byte cap: two lines written, the third failed part-way, the last two dropped.
    assert "sinks[3]" in message and "File too large" in message and "3 events not written" in message
    codes = {entry["code"]: entry for entry in out["diagnostics"]}
    assert codes["atof.file_write_failed"]["count"] == 1
    assert codes["atof.file_write_failed"]["field"] == "sinks[3]"
    assert codes["atof.file_dropped"]["count"] == 2


def test_build_sinks_for_a_healthy_file_reports_removed(tmp_path: Path) -> None:
    diagnostics = RuntimeDiagnostics()
    fanout = build_sinks([AtofFileSinkSettings(0, str(tmp_path), "a.jsonl", "overwrite")], diagnostics)
    subscribers.register("atof-fanout", fanout.deliver)
    try:
        scope.event("m")
        assert subscribers.flush(10)
        assert fanout.force_flush(1.0) is True
    finally:
        subscribers.deregister("atof-fanout")
    assert fanout.shutdown(1.0).ok
    assert fanout.shutdown(1.0).ok  # idempotent
    assert not diagnostics
    assert json.loads((tmp_path / "a.jsonl").read_text())["name"] == "m"


def test_default_file_location_is_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = AtofExporterConfig()
    assert config.output_directory == str(tmp_path)
    assert re.fullmatch(r"nemo-relay-events-\d{4}-\d\d-\d\d-\d\d\.\d\d\.\d\d\.jsonl", config.filename)
    fanout = build_sinks([AtofFileSinkSettings(0)], RuntimeDiagnostics())
    fanout.shutdown(0)
    assert len(list(tmp_path.glob("nemo-relay-events-*.jsonl"))) == 1


# --- configuration objects -----------------------------------------------------------------------


def test_exporter_config_defaults_and_type_checked_setters(tmp_path: Path) -> None:
    config = AtofExporterConfig()
    assert (config.sink_type, config.url, config.transport, config.timeout_millis) == ("file", "", "http_post", 3000)
    assert (config.headers, config.header_env, config.field_name_policy) == ({}, {}, "preserve")
    assert config.mode == AtofExporterMode.Append
    assert repr(config) == '<AtofExporterConfig sink_type="file">'
    config.sink_type = "stream"
    assert str(config) == '<AtofExporterConfig sink_type="stream">'
    config.headers = {"a": "b"}
    config.headers["z"] = "ignored"  # the getter returns a copy
    assert config.headers == {"a": "b"}
    config.timeout_millis = 2**64 - 1
    cases: list[tuple[str, object, type[Exception], str]] = [
        ("sink_type", 1, TypeError, "'int' object is not an instance of 'str'"),
        ("output_directory", None, TypeError, "'None' is not an instance of 'str'"),
        ("mode", "overwrite", TypeError, "'str' object is not an instance of 'AtofExporterMode'"),
        ("headers", {"a": 1}, TypeError, "'int' object is not an instance of 'str'"),
        ("headers", [("a", "b")], TypeError, "'list' object is not an instance of 'dict'"),
        ("timeout_millis", -1, OverflowError, "can't convert negative int to unsigned"),
        ("timeout_millis", 2**64, OverflowError, "int too big to convert"),
        ("timeout_millis", 1.5, TypeError, "'float' object cannot be interpreted as an integer"),
    ]
    for name, value, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            setattr(config, name, value)
    with pytest.raises(TypeError):
        AtofExporterConfig(1)  # type: ignore[call-arg]


def test_mode_and_stream_sink_config_behave_like_the_reference() -> None:
    mode = AtofExporterMode
    assert (int(mode.Append), int(mode.Overwrite)) == (0, 1)
    assert repr(mode.Overwrite) == str(mode.Overwrite) == "AtofExporterMode.Overwrite"
    assert mode.Append == 0 and mode.Append != mode.Overwrite and mode.Append != "x"
    with pytest.raises(TypeError, match="cannot create 'AtofExporterMode' instances"):
        mode(0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        hash(mode.Append)
    sink = AtofStreamSinkConfig("http://x", headers=None, header_env=None)
    assert repr(sink) == '<AtofStreamSinkConfig transport="http_post" url="http://x">'
    assert (sink.headers, sink.header_env, sink.timeout_millis, sink.field_name_policy) == ({}, {}, 3000, "preserve")
    sink.transport = "bogus"  # values are only checked when an exporter is built
    assert sink.transport == "bogus"
    with pytest.raises(TypeError):
        AtofStreamSinkConfig("u", "websocket")  # type: ignore[misc]
    with pytest.raises(TypeError, match="'AtofStreamSinkConfig' object is not an instance of 'AtofExporterConfig'"):
        AtofExporter(sink)  # type: ignore[arg-type]
    assert repr(_file_exporter_shut()) == "<AtofExporter>"


def _file_exporter_shut() -> AtofExporter:
    config = AtofExporterConfig()
    config.sink_type = "stream"
    config.url = "http://127.0.0.1:9/x"
    exporter = AtofExporter(config)
    assert exporter.path is None
    exporter.shutdown()
    return exporter


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"sink_type": "bogus"}, ValueError, "sink_type must be 'file' or 'stream'"),
        ({"sink_type": "stream"}, ValueError, "stream sink requires url"),
        ({"url": "http://h", "transport": "bogus"}, ValueError, "endpoint transport must be 'http_post'"),
        ({"url": "http://h", "field_name_policy": "x"}, ValueError, "endpoint field_name_policy must be"),
        ({"url": "ftp://h", "timeout_millis": 0}, RuntimeError, "endpoint timeout_millis must be greater than 0"),
        ({"url": "ws://h/x"}, RuntimeError, 'endpoint http_post transport does not support URL scheme "ws"'),
        ({"url": "http://h", "transport": "websocket"}, RuntimeError, 'does not support URL scheme "http"'),
        ({"url": "not a url"}, RuntimeError, "relative URL without a base"),
        ({"url": "http://"}, RuntimeError, "empty host"),
        ({"url": "http://h:99999/"}, RuntimeError, "invalid port number"),
        ({"url": "http://h", "headers": {"bad name": "v"}}, RuntimeError, "invalid HTTP header name"),
        ({"url": "http://h", "headers": {"x": "a\nb"}}, RuntimeError, "failed to parse header value"),
        ({"url": "http://h", "header_env": {"auth": "ATOF_TEST_UNSET"}}, RuntimeError, '"ATOF_TEST_UNSET" for'),
        ({"url": "http://h", "header_env": {"auth": "ATOF_TEST_BLANK"}}, RuntimeError, "is blank"),
        (
            {"url": "http://h", "headers": {"Auth": "x"}, "header_env": {"auth": "ATOF_TEST_SET"}},
            RuntimeError,
            'header "auth" cannot be configured in both headers and header_env',
        ),
    ],
)
def test_stream_config_validation_messages(
    changes: dict[str, object], error: type[Exception], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATOF_TEST_UNSET", raising=False)
    monkeypatch.setenv("ATOF_TEST_BLANK", "  ")
    monkeypatch.setenv("ATOF_TEST_SET", "v")
    config = AtofExporterConfig()
    config.sink_type = "stream"
    for name, value in changes.items():
        setattr(config, name, value)
    with pytest.raises(error, match=re.escape(message)) as caught:
        AtofExporter(config)
    if error is RuntimeError:
        assert str(caught.value).startswith("invalid ATOF streaming endpoint: endpoints[0]: ")


def test_the_caller_is_unaffected_by_a_file_exporter(tmp_path: Path) -> None:
    exporter = _file_exporter(tmp_path)
    exporter.register("atof-caller")

    async def call() -> object:
        return await nemo_relay.tools.execute("echo", {"q": 1}, lambda a: nemo_relay.ToolExecutionResult(a))

    try:
        result = asyncio.run(call())
    finally:
        exporter.shutdown()
        exporter.deregister("atof-caller")
    assert result.result == {"q": 1}  # type: ignore[attr-defined]
    records = [json.loads(x) for x in Path(exporter.path).read_text().splitlines()]
    assert [(r["scope_category"], r["data"]) for r in records] == [("start", {"q": 1}), ("end", {"q": 1})]


def test_import_nemo_relay_does_not_load_the_exporter_or_optional_libraries() -> None:
    code = "import sys, nemo_relay; print(sorted(m for m in sys.modules if 'atof' in m or m.startswith('websockets')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
