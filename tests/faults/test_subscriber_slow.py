"""Fault: a slow subscriber (blocked, but it will return) behind a bounded queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nemo_relay import ScopeType, scope, subscribers


@pytest.mark.timeout(60)
def test_a_slow_subscriber_never_slows_the_caller(blocker: Any, dispatcher_settings: Callable[..., None]) -> None:
    """Caller: every emitting call returns while the subscriber is still blocked, however large the backlog;
    ``flush(timeout)`` returns False (not drained) instead of waiting for it. Recorded: the bounded queue
    keeps the first ``queue_capacity`` events and refuses the newer ones, each counted in
    ``stats().dropped``; once the subscriber resumes, every kept event is delivered, in emission order, and
    ``flush`` reports drained."""
    dispatcher_settings(queue_capacity=20, stall_timeout=0)  # watchdog off: slow is not stuck
    after: list[str] = []
    subscribers.register("slow", blocker)
    subscribers.register("after", lambda event: after.append(event.name))
    scope.event("block")
    blocker.wait_entered()
    before = subscribers.stats()

    for index in range(50):
        scope.event(f"e{index}")
    with scope.scope("also-scopes", ScopeType.Function):
        pass
    assert not blocker.returned.is_set()  # the caller got here while the subscriber was still blocked
    assert subscribers.flush(timeout=0.05) is False

    during = subscribers.stats()
    assert during.queued == 20
    assert during.published - before.published == 20
    assert during.dropped - before.dropped == 32  # 30 marks and the scope's two events
    assert during.quarantined == before.quarantined

    blocker.release.set()
    assert subscribers.flush(timeout=10)
    assert after == ["block"] + [f"e{index}" for index in range(20)]
    assert blocker.seen == after
    final = subscribers.stats()
    assert final.queued == 0
    assert final.dropped == during.dropped
    assert final.delivered - before.delivered == 21  # "block" was in delivery when counting began
