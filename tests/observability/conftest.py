"""Fixtures for exporter tests: real OTLP/HTTP receivers in child processes (see ``support/otlp_receiver.py``).

* ``otlp_receiver``: a receiver that stores everything (mode ``ok``);
* ``otlp_receiver_factory``: ``factory(mode="ok")`` starts more receivers (``ok``, ``error500``, ``hang``);
* ``failing_otlp_receiver`` / ``hanging_otlp_receiver``: receivers answering 500 / never answering;
* ``refused_endpoint``: a loopback URL nothing listens on.

Every receiver started here is stopped (its process killed if need be) at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from support.otlp_receiver import OtlpReceiver, closed_port_endpoint


@pytest.fixture
def otlp_receiver_factory() -> Iterator[Callable[..., OtlpReceiver]]:
    """Start receivers on demand; all of them are stopped when the test ends."""
    started: list[OtlpReceiver] = []

    def factory(mode: str = "ok") -> OtlpReceiver:
        receiver = OtlpReceiver.start(mode)
        started.append(receiver)
        return receiver

    try:
        yield factory
    finally:
        for receiver in started:
            receiver.stop()


@pytest.fixture
def otlp_receiver(otlp_receiver_factory: Callable[..., OtlpReceiver]) -> OtlpReceiver:
    """A receiver in mode ``ok`` (stores and acknowledges every export)."""
    return otlp_receiver_factory("ok")


@pytest.fixture
def failing_otlp_receiver(otlp_receiver_factory: Callable[..., OtlpReceiver]) -> OtlpReceiver:
    """A receiver answering every export with HTTP 500."""
    return otlp_receiver_factory("error500")


@pytest.fixture
def hanging_otlp_receiver(otlp_receiver_factory: Callable[..., OtlpReceiver]) -> OtlpReceiver:
    """A receiver that accepts exports and never answers."""
    return otlp_receiver_factory("hang")


@pytest.fixture
def refused_endpoint() -> str:
    """``http://127.0.0.1:<port>`` with nothing listening: connections are refused."""
    return closed_port_endpoint()
