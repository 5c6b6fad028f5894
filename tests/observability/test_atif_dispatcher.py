"""The plugin's ATIF dispatcher: trajectory roots, collected events, file names, shutdown, failures.

The dispatcher is driven the way the plugin drives it: ``on_event`` registered as a subscriber, then
subscribers flushed and ``shutdown`` called. Every written file is checked with the independent
validator and the strict checks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from atif_checks import check_trajectory
from atif_scenarios import Clock, chat_request, chat_response, manual_llm, manual_tool, user

from nemo_relay import ScopeType, llm, scope, subscribers
from nemo_relay._core.diagnostics import RuntimeDiagnostics, Teardown
from nemo_relay._core.observability.atif.dispatcher import AtifDispatcher
from nemo_relay._core.observability.settings import AtifSettings

TURN = {"nemo_relay_scope_role": "turn"}


class Harness:
    """One dispatcher registered as a subscriber, writing below ``directory``."""

    def __init__(self, directory: Path, name: str, **settings: Any) -> None:
        self.directory = directory
        self.diagnostics = RuntimeDiagnostics()
        settings.setdefault("output_directory", str(directory))
        self.dispatcher = AtifDispatcher(AtifSettings(**settings), self.diagnostics, "__ns__")
        self.name = name
        subscribers.register(name, self.dispatcher.on_event)
        self.teardown: Teardown | None = None

    def finish(self, timeout: float | None = 10) -> Teardown:
        """What the plugin does at teardown: drain the queue, stop delivery, shut the dispatcher down."""
        assert subscribers.flush(timeout=10)
        subscribers.deregister(self.name)
        self.teardown = self.dispatcher.shutdown(timeout)
        return self.teardown

    def files(self) -> dict[str, dict[str, Any]]:
        """Every trajectory file (relative path -> document), each validated."""
        out = {}
        for path in sorted(self.directory.rglob("*.json")):
            document = json.loads(path.read_text())
            check_trajectory(document)
            out[path.relative_to(self.directory).as_posix()] = document
        return out


@pytest.fixture
def atif(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**settings: Any) -> Harness:
        harness = Harness(tmp_path / "out", f"atif-dispatcher-{len(made)}", **settings)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        if harness.teardown is None:
            harness.finish()


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(event.get("scope_category", "mark"), event["name"]) for event in events]


# --- roots ------------------------------------------------------------------------------------------


def test_two_sequential_top_level_agents_give_two_files_and_nested_agents_stay_inside(
    atif: Callable[..., Harness],
) -> None:
    harness = atif(agent_name="bot", agent_version="3.1", tool_definitions=[{"name": "search"}], extra={"k": 1})
    c = Clock()
    first = scope.push("first", ScopeType.Agent, metadata={"session_id": "chat-7", "user_id": "ada"}, timestamp=c())
    manual_llm("chat", chat_request(user("q1")), chat_response(calls=[("t1", "search", {})]), c)
    manual_tool("search", {}, "hits", c, tool_call_id="t1")
    scope.event("checkpoint", data={"n": 1}, timestamp=c())
    nested = scope.push("helper", ScopeType.Agent, timestamp=c())
    manual_llm("help", chat_request(user("help")), chat_response("helped"), c)
    scope.pop(nested, timestamp=c())
    scope.pop(first, timestamp=c())
    second = scope.push("second", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("q2")), chat_response("a2"), c)
    scope.pop(second, timestamp=c())
    assert harness.finish().ok

    files = harness.files()
    assert sorted(files) == sorted([f"nemo-relay-atif-{first.uuid}.json", f"nemo-relay-atif-{second.uuid}.json"])
    one = files[f"nemo-relay-atif-{first.uuid}.json"]
    assert one["session_id"] == one["trajectory_id"] == first.uuid
    assert one["agent"] == {
        "name": "bot",
        "version": "3.1",
        "model_name": "unknown",
        "tool_definitions": [{"name": "search"}],
        "extra": {"k": 1},
    }
    assert [step["source"] for step in one["steps"]] == ["user", "agent", "agent"]  # the last one: "helper"
    assert [child["trajectory_id"] for child in one["subagent_trajectories"]] == [nested.uuid]
    assert one["extra"]["nemo_relay"] == {
        "session_id": "chat-7",
        "session_instance_id": first.parent_uuid,
        "user_id": "ada",
    }
    assert names(one["extra"]["observed_events"]) == [
        ("start", "first"),
        ("start", "chat"),
        ("end", "chat"),
        ("start", "search"),
        ("end", "search"),
        ("mark", "checkpoint"),
        ("start", "helper"),
        ("start", "help"),
        ("end", "help"),
        ("end", "helper"),
        ("end", "first"),
    ]
    two = files[f"nemo-relay-atif-{second.uuid}.json"]
    assert names(two["extra"]["observed_events"]) == [
        ("start", "second"),
        ("start", "chat"),
        ("end", "chat"),
        ("end", "second"),
    ]
    assert two["extra"]["nemo_relay"] == {"session_instance_id": second.parent_uuid}


def test_file_is_pretty_sorted_json_written_when_the_root_ends(atif: Callable[..., Harness]) -> None:
    harness = atif()
    root = scope.push("agent", ScopeType.Agent)
    scope.pop(root)
    assert subscribers.flush(timeout=10)
    path = harness.directory / f"nemo-relay-atif-{root.uuid}.json"
    text = path.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
    assert harness.finish().ok


def test_turn_scopes_are_roots_and_other_scopes_are_not(atif: Callable[..., Harness]) -> None:
    harness = atif()
    c = Clock()
    turn = scope.push("turn", ScopeType.Custom, metadata=TURN, timestamp=c())
    inner = scope.push("inner-agent", ScopeType.Agent, timestamp=c())  # below a turn: not a subagent
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    inner_turn = scope.push("inner-turn", ScopeType.Custom, metadata=TURN, timestamp=c())
    scope.pop(inner_turn, timestamp=c())
    scope.pop(inner, timestamp=c())
    scope.pop(turn, timestamp=c())
    plain = scope.push("plain-custom", ScopeType.Custom, timestamp=c())
    scope.pop(plain, timestamp=c())
    function = scope.push("function", ScopeType.Function, timestamp=c())
    agent_in_function = scope.push("agent-in-function", ScopeType.Agent, timestamp=c())
    scope.pop(agent_in_function, timestamp=c())
    scope.pop(function, timestamp=c())
    manual_llm("outside", chat_request(user("q")), chat_response("a"), c)
    assert harness.finish().ok

    files = harness.files()
    assert list(files) == [f"nemo-relay-atif-{turn.uuid}.json"]
    document = files[f"nemo-relay-atif-{turn.uuid}.json"]
    assert [step["source"] for step in document["steps"]] == ["user", "agent"]
    assert "subagent_trajectories" not in document


def test_a_top_level_agent_on_another_thread_is_a_root(atif: Callable[..., Harness]) -> None:
    harness = atif()
    roots: list[str] = []

    def worker() -> None:
        c = Clock()
        root = scope.push("thread-agent", ScopeType.Agent, timestamp=c())
        manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
        scope.pop(root, timestamp=c())
        roots.append(root.uuid)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert harness.finish().ok
    assert list(harness.files()) == [f"nemo-relay-atif-{roots[0]}.json"]


def test_still_open_root_is_written_as_a_partial_trajectory_at_shutdown(atif: Callable[..., Harness]) -> None:
    harness = atif()
    c = Clock()
    root = scope.push("long-running", ScopeType.Agent, timestamp=c())
    manual_llm("chat", chat_request(user("q")), chat_response("a"), c)
    llm.call("chat", chat_request(user("q2")), timestamp=c())  # never ends
    assert harness.finish().ok

    document = harness.files()[f"nemo-relay-atif-{root.uuid}.json"]
    assert [(step["source"], step["message"]) for step in document["steps"]] == [
        ("user", "q"),
        ("agent", "a"),
        ("user", "q2"),
    ]
    assert names(document["extra"]["observed_events"])[-1] == ("start", "chat")
    scope.pop(root, timestamp=c())  # after shutdown: ignored
    assert subscribers.flush(timeout=10)
    assert len(harness.files()) == 1


def test_repeated_delivery_of_an_event_is_collected_once(atif: Callable[..., Harness]) -> None:
    harness = atif()
    subscribers.deregister(harness.name)
    subscribers.register(
        harness.name, lambda event: (harness.dispatcher.on_event(event), harness.dispatcher.on_event(event))
    )
    root = scope.push("agent", ScopeType.Agent)
    scope.event("once")
    scope.pop(root)
    assert harness.finish().ok
    document = harness.files()[f"nemo-relay-atif-{root.uuid}.json"]
    assert names(document["extra"]["observed_events"]) == [("start", "agent"), ("mark", "once"), ("end", "agent")]


# --- destinations -----------------------------------------------------------------------------------


def test_filename_template_renders_metadata_with_fallback(atif: Callable[..., Harness]) -> None:
    harness = atif(filename_template="{metadata.team:-unassigned}/{metadata.run.kind:-any}/t-{session_id}.json")
    alpha = scope.push("a", ScopeType.Agent, metadata={"team": "alpha", "run": {"kind": "eval"}})
    scope.pop(alpha)
    bare = scope.push("b", ScopeType.Agent)
    scope.pop(bare)
    assert harness.finish().ok
    assert sorted(harness.files()) == sorted([f"alpha/eval/t-{alpha.uuid}.json", f"unassigned/any/t-{bare.uuid}.json"])


def test_render_failure_skips_the_trajectory_and_fails_teardown(atif: Callable[..., Harness]) -> None:
    harness = atif(filename_template="{metadata.atif_prefix:-unassigned}/trajectory-{session_id}.json")
    bad = scope.push("agent", ScopeType.Agent, metadata={"atif_prefix": 123})
    manual_llm("chat", chat_request(user("q")), chat_response("a"), Clock())
    scope.pop(bad)
    good = scope.push("agent", ScopeType.Agent, metadata={"atif_prefix": "ok"})
    scope.pop(good)
    teardown = harness.finish()

    assert list(harness.files()) == [f"ok/trajectory-{good.uuid}.json"]
    assert not (harness.directory / "unassigned").exists()
    (entry,) = harness.diagnostics.entries()
    assert entry["code"] == "atif.destination_render_failed"
    assert entry["field"] == "filename_template" and entry["session_id"] == bad.uuid
    assert "non-string" in entry["message"]
    assert teardown.status == Teardown.REMOVED_WITH_ERROR
    assert teardown.message == "ATIF runtime delivery failures: atif.destination_render_failed (1)"


def test_unwritable_directory_is_a_local_write_failure(atif: Callable[..., Harness], tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    harness = atif(output_directory=str(blocker / "sub"))
    for _ in range(2):
        root = scope.push("agent", ScopeType.Agent)
        scope.pop(root)
    teardown = harness.finish()

    entry = harness.diagnostics.get("atif.local_write_failed")
    assert entry is not None and entry["field"] == "output_directory" and entry["count"] == 2
    assert entry["session_id"] == root.uuid
    assert teardown.message == "ATIF runtime delivery failures: atif.local_write_failed (2)"


def test_output_directory_defaults_to_the_working_directory_at_activation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dispatcher = AtifDispatcher(AtifSettings(), RuntimeDiagnostics(), "ns")
    monkeypatch.chdir("/")
    subscribers.register("atif-cwd", dispatcher.on_event)
    try:
        root = scope.push("agent", ScopeType.Agent)
        scope.pop(root)
        assert subscribers.flush(timeout=10)
    finally:
        subscribers.deregister("atif-cwd")
    assert dispatcher.shutdown(5).ok
    assert (tmp_path / f"nemo-relay-atif-{root.uuid}.json").exists()


def test_shutdown_twice_reports_the_same_outcome(atif: Callable[..., Harness]) -> None:
    harness = atif()
    assert harness.finish().ok
    assert harness.dispatcher.shutdown(1).ok
