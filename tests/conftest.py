"""Shared fixtures: every test gets its own scope stack, no leftover registrations, and a drained queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import nemo_relay
from nemo_relay import subscribers
from nemo_relay._core import registry
from nemo_relay._core.context import _override_var, _scope_stack_var
from nemo_relay._core.events import MarkEvent, ScopeEvent
from nemo_relay._native import capture_thread_scope_stack, restore_thread_scope_stack

Event = ScopeEvent | MarkEvent


@pytest.fixture(autouse=True)
def _isolated_runtime() -> Iterator[None]:
    """A fresh stack for the test's context; global registrations and thread bindings restored afterwards."""
    binding = capture_thread_scope_stack()
    token = _scope_stack_var.set(nemo_relay.create_scope_stack())
    override = _override_var.set(None)
    try:
        yield
    finally:
        subscribers.flush(timeout=10)
        _override_var.reset(override)
        _scope_stack_var.reset(token)
        restore_thread_scope_stack(binding)
        registry.clear_global()


class Recorder(list[Event]):
    """A list that a subscriber appends to; ``flush()`` drains the dispatcher before you read it."""

    def __call__(self, event: Event) -> None:
        self.append(event)

    def flush(self) -> Recorder:
        assert subscribers.flush(timeout=10), "dispatcher did not drain within 10 s"
        return self

    def names(self) -> list[tuple[str, str]]:
        """(kind or scope_category, name) pairs, in delivery order."""
        self.flush()
        return [(getattr(e, "scope_category", "mark"), e.name) for e in self]


@pytest.fixture
def events() -> Iterator[Recorder]:
    """Record every event emitted during the test (a uniquely named global subscriber)."""
    recorder = Recorder()
    name = f"test-recorder-{uuid.uuid4()}"
    subscribers.register(name, recorder)
    try:
        yield recorder
    finally:
        subscribers.flush(timeout=10)
        subscribers.deregister(name)
