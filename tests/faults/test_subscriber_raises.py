"""Fault: a subscriber that raises on every event."""

from __future__ import annotations

import asyncio

import pytest

from nemo_relay import ScopeType, ToolExecutionResult, scope, subscribers, tools


class Boom(Exception):
    pass


def emit_everything() -> None:
    """A scope (start/end), a mark, and a managed tool call (its events go through the publication path)."""
    with scope.scope("work", ScopeType.Function):
        scope.event("mark")

        async def call() -> object:
            return await tools.execute("lookup", {"q": 1}, lambda args: ToolExecutionResult({"ok": True}))

        asyncio.run(call())


EXPECTED = ["work", "mark", "lookup", "lookup", "work"]


@pytest.mark.parametrize("error", [Boom("boom"), KeyboardInterrupt("interrupted")], ids=["exception", "base"])
def test_a_raising_subscriber_is_reported_and_skipped(error: BaseException, capfd: pytest.CaptureFixture[str]) -> None:
    """Caller: every emitting call returns normally; the subscriber's exception never reaches it, even a
    ``BaseException``. Recorded: one ``Event subscriber error: <Type>: <message>`` line on stderr and one
    ``stats().subscriber_errors`` count per failed call; the subscribers registered before and after the
    raising one still receive every event, in order, and the dispatcher keeps running."""
    before: list[str] = []
    after: list[str] = []

    def raising(event: object) -> None:
        raise error

    subscribers.register("before", lambda event: before.append(event.name))
    subscribers.register("raising", raising)
    subscribers.register("after", lambda event: after.append(event.name))
    errors_before = subscribers.stats().subscriber_errors

    emit_everything()  # would raise here if the failure leaked into the caller
    assert subscribers.flush(timeout=10)

    assert before == EXPECTED
    assert after == EXPECTED
    assert subscribers.stats().subscriber_errors - errors_before == len(EXPECTED)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("Event subscriber error")]
    assert lines == [f"Event subscriber error: {type(error).__name__}: {error}"] * len(EXPECTED)

    # Still delivering afterwards: the worker survived every failure.
    scope.event("later")
    assert subscribers.flush(timeout=10)
    assert after[-1] == "later"
