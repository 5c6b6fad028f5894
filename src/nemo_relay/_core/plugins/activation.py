"""The active plugin configuration and the transactions that change it.

Every change (initialize, replace, restore, clear, dynamic activation) runs as one job on a single
daemon thread, ``nemo-relay-plugin``, so changes never interleave and a caller that is cancelled or
times out does not cut a transaction in half. Plugin ``validate``/``register`` callbacks run there.

* initialize: resolve files, validate (any error: nothing changes), deliver queued events, tear the
  previous configuration down, activate the new one; if that fails, activate the previous one again
  and re-raise.
* clear: the caller flushes queued events first (on its own loop for ``clear_async``, so async
  subscribers can finish), then the job tears everything down in reverse order within a deadline.
* A teardown that may leave callbacks registered disables all later changes for the process.
* The first activation installs the exit hook that tears the configuration down at interpreter exit,
  and (back on the caller's thread, see ``signals``) a SIGTERM handler that turns SIGTERM into that exit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from concurrent.futures import Future

from nemo_relay import subscribers
from nemo_relay._core import jsonconv
from nemo_relay._core.diagnostics import RuntimeDiagnostics
from nemo_relay._core.errors import NotFoundError, RelayError, RelayRuntimeError
from nemo_relay._core.plugins import files, model, registry
from nemo_relay._core.plugins.context import ComponentContext, describe_failures

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

DEFAULT_TEARDOWN_TIMEOUT = 30.0
# How much longer than the teardown deadline a caller waits for the job before giving up on it.
WAIT_GRACE = 5.0

MUTATIONS_DISABLED = (
    "plugin configuration mutations are disabled for this process because callbacks may remain registered; "
    "restart the process to configure plugins again"
)
CLEAR_ON_LOOP = "plugin.clear() cannot block a running asyncio event loop; use 'await plugin.clear_async()'"


class Active:
    """The active configuration: its document, report, runtime diagnostics and component contexts."""

    __slots__ = ("document", "diagnostics", "runtime", "contexts")

    def __init__(
        self,
        document: model.Document,
        diagnostics: list[dict[str, Any]],
        runtime: RuntimeDiagnostics,
        contexts: list[ComponentContext],
    ) -> None:
        self.document = document
        self.diagnostics = diagnostics
        self.runtime = runtime
        self.contexts = contexts

    def snapshot(self) -> dict[str, Any]:
        """The report as callers see it; ``runtime_diagnostics`` only when there are some."""
        report: dict[str, Any] = {"diagnostics": [dict(diag) for diag in self.diagnostics]}
        runtime = self.runtime.entries()
        if runtime:
            report["runtime_diagnostics"] = runtime
        return report


_active: Active | None = None
_retained: dict[str, Any] | None = None  # the report kept after a failed teardown
_disabled = False
_state_lock = threading.RLock()
_clear_future: Future[None] | None = None
_overdue: Future[Any] | None = None  # a job its caller stopped waiting for (still running)


# --- the serial worker -------------------------------------------------------------------------------------


class _Worker:
    """One daemon thread running jobs in submission order, each in its submitter's context."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Any, Callable[[], Any]]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="nemo-relay-plugin", daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        import contextvars

        future: Future[T] = Future()
        self._jobs.put((future, contextvars.copy_context(), fn))
        return future

    def _run(self) -> None:
        while True:
            future, context, fn = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = context.run(fn)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)


_worker: _Worker | None = None


def submit(fn: Callable[[], T]) -> Future[T]:
    """Queue a change; it runs after every change queued before it.

    Raises:
        RuntimeError: called from a plugin callback running a change, or a previous job overran its deadline.
    """
    global _worker, _overdue
    with _state_lock:
        if _worker is None:
            _worker = _Worker()
        if threading.current_thread() is _worker.thread:
            raise RuntimeError(
                "plugin configuration cannot change from inside a plugin's validate, register or teardown "
                "callback; change it after plugin.initialize()/plugin.clear() has returned"
            )
        if _overdue is not None:
            if not _overdue.done():
                raise RuntimeError(
                    "plugin configuration is busy: a plugin teardown outlived its deadline and is still running; "
                    "retry once it has returned"
                )
            _overdue = None
        return _worker.submit(fn)


def wait(future: Future[T], timeout: float | None) -> T:
    """Block for a job; after ``timeout`` seconds (``TimeoutError``) it is left running and later changes fail fast."""
    import concurrent.futures

    done, _ = concurrent.futures.wait([future], timeout)
    if not done:
        _mark_overdue(future)
        raise TimeoutError
    result = future.result()
    _install_signal_handler()
    return result


async def wait_async(future: Future[T], timeout: float | None) -> T:
    """Await a job without blocking the loop; neither cancelling the caller nor a timeout cancels the job."""
    import asyncio

    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()
    waiter.add_done_callback(_consume)

    def relay(done: Future[T]) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, waiter, done)

    future.add_done_callback(relay)
    if timeout is None:
        result = await asyncio.shield(waiter)
    else:
        finished, _ = await asyncio.wait({waiter}, timeout=timeout)
        if not finished:
            _mark_overdue(future)
            raise TimeoutError
        result = waiter.result()
    _install_signal_handler()
    return result


def _settle(waiter: Any, done: Future[Any]) -> None:
    if waiter.done():
        return
    error = done.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())


def _consume(waiter: Any) -> None:
    # The job's error was delivered (or nobody waits any more): never log it as unretrieved.
    if not waiter.cancelled():
        waiter.exception()


def _mark_overdue(future: Future[Any]) -> None:
    global _overdue
    with _state_lock:
        if not future.done():
            _overdue = future


def _after_fork_in_child() -> None:
    # The worker thread does not exist in the child; jobs queued in the parent never ran here.
    global _worker, _clear_future, _overdue, _state_lock
    _worker = None
    _clear_future = None
    _overdue = None
    _state_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- state read by the façade ------------------------------------------------------------------------------


def report() -> dict[str, Any] | None:
    """The active report, else the report kept after a failed teardown, else None."""
    active = _active
    if active is not None:
        return active.snapshot()
    retained = _retained
    return None if retained is None else jsonconv.copy_json(retained)  # type: ignore[return-value]


def is_active() -> bool:
    """Whether a configuration is active."""
    return _active is not None


def reset_for_tests() -> None:
    """Forget a retained report and re-enable changes (test isolation only; never clears registrations)."""
    global _retained, _disabled
    _retained = None
    _disabled = False


def check_mutable() -> None:
    """Refuse changes once a teardown may have left callbacks registered."""
    if _disabled:
        raise RuntimeError(MUTATIONS_DISABLED)


# --- jobs (run on the worker) ------------------------------------------------------------------------------


def initialize_job(document: model.Document) -> dict[str, Any]:
    """Resolve, validate and activate ``document``, replacing (and if needed restoring) the active one."""
    global _active, _retained
    check_mutable()
    resolved, diagnostics = files.resolve(document)
    diagnostics = diagnostics + registry.validate(resolved)
    errors = model.error_messages(diagnostics)
    if errors:
        raise model.PluginConfigError("; ".join(errors))
    previous = _active
    if previous is not None:
        deadline = time.monotonic() + DEFAULT_TEARDOWN_TIMEOUT
        # Events emitted under the previous configuration reach its subscribers before they go.
        subscribers.flush(timeout=DEFAULT_TEARDOWN_TIMEOUT)
        failures = _teardown(previous, deadline)
        if failures:
            raise model.PluginRegistrationError(
                f"previous plugin configuration could not be cleared: {'; '.join(failures)}"
            )
    try:
        active = activate(resolved, diagnostics, RuntimeDiagnostics())
    except Exception as error:
        if previous is None:
            raise
        try:
            restored = activate(previous.document, previous.diagnostics, previous.runtime)
        except Exception as again:
            raise RelayRuntimeError(f"{error}; previous plugin configuration could not be restored: {again}") from error
        _active = restored
        raise
    _active = active
    _retained = None
    _install_exit_hook()
    return active.snapshot()


_exit_hook_installed = False


def _install_exit_hook() -> None:
    # Installed after the first activation, so it runs before the exit hooks its exporters installed (LIFO).
    global _exit_hook_installed
    if not _exit_hook_installed:
        import atexit

        _exit_hook_installed = True
        atexit.register(clear_at_exit)


def _install_signal_handler() -> None:
    # Called on the caller's side of every job: jobs run on the plugin worker thread, and only the main
    # thread may set a signal handler. Once a configuration was activated, SIGTERM should run the exit hook.
    if _exit_hook_installed:
        from nemo_relay._core import signals

        signals.install()


def clear_at_exit() -> None:
    """At a normal interpreter exit: deliver queued events, then tear the active configuration down, so
    exporters finish their files and uploads (ATIF writes still-open trajectories) within the exit deadline
    (``NEMO_RELAY_EXIT_FLUSH_TIMEOUT``, default 10 s). Problems are reported on stderr, never raised."""
    from nemo_relay._core import dispatch
    from nemo_relay._core.publish import report as say

    if _active is None:
        return
    seconds = max(dispatch._exit_timeout, 0.001)
    deadline = time.monotonic() + seconds
    flushed = subscribers.flush(timeout=seconds)
    try:
        future = submit_clear(deadline, None if flushed else f"queued events not delivered within {seconds:g}s")
        wait(future, max(0.0, deadline - time.monotonic()) + 0.5)
    except TimeoutError:
        say(f"nemo_relay: plugin teardown did not finish within the {seconds:g}s exit deadline")
    except Exception as exc:
        say(f"nemo_relay: plugin teardown at exit: {exc}")


def clear_job(deadline: float, flush_error: str | None) -> None:
    """Tear the active configuration down (a no-op success when nothing is active)."""
    global _retained
    check_mutable()
    active = _active
    if active is None:
        _retained = None
        return
    failures = _teardown(active, deadline)
    if not failures and flush_error is None:
        return
    if failures:
        message = f"plugin teardown failed: {'; '.join(failures)}"
        if flush_error is not None:
            message += f"; subscriber flush also failed: {flush_error}"
    else:
        message = f"plugin teardown failed: subscriber flush failed: {flush_error}"
        _retained = active.snapshot() if active.runtime else None
    raise model.PluginRegistrationError(message)


def activate(document: model.Document, diagnostics: list[dict[str, Any]], runtime: RuntimeDiagnostics) -> Active:
    """Register every enabled component in order; on any failure undo what was registered and raise."""
    global _disabled
    contexts: list[ComponentContext] = []
    ordinals: dict[str, int] = {}
    try:
        for component in document.components:
            if not component.enabled:
                continue
            plugin = registry.lookup(component.kind)
            if plugin is None:
                raise NotFoundError(f"plugin component '{component.kind}' is not registered")
            ordinal = ordinals[component.kind] = ordinals.get(component.kind, 0) + 1
            context = ComponentContext(component.kind, ordinal, runtime)
            contexts.append(context)
            try:
                plugin.register(jsonconv.copy_json(component.config), context)
            finally:
                context.seal()
    except BaseException as exc:
        failures, may_remain = _rollback(contexts, time.monotonic() + DEFAULT_TEARDOWN_TIMEOUT)
        _disabled = _disabled or may_remain
        if not isinstance(exc, Exception):
            raise
        error: Exception = exc
        if not isinstance(exc, RelayError):
            error = model.PluginRegistrationError(f"{model.type_name(exc)}: {exc}")
        if failures:
            error = RelayRuntimeError(f"{error}; rollback also failed: {'; '.join(failures)}")
        if error is exc:
            raise
        raise error from exc
    return Active(document, diagnostics, runtime, contexts)


def _teardown(active: Active, deadline: float) -> list[str]:
    # Reverse-order rollback with the report still installed, then nothing is active.
    global _active, _retained, _disabled
    failures, may_remain = _rollback(active.contexts, deadline)
    _active = None
    _disabled = _disabled or may_remain
    _retained = active.snapshot() if failures and active.runtime else None
    return failures


def _rollback(contexts: list[ComponentContext], deadline: float | None) -> tuple[list[str], bool]:
    failures: list[str] = []
    may_remain = False
    for context in reversed(contexts):
        errors, remain = describe_failures(context.component, context.rollback(deadline))
        failures.extend(errors)
        may_remain = may_remain or remain
    return failures, may_remain


# --- callers' side -----------------------------------------------------------------------------------------


def teardown_seconds(timeout: object) -> float:
    """A teardown timeout argument: None for the default, else a positive number of seconds."""
    if timeout is None:
        return DEFAULT_TEARDOWN_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"argument 'timeout': expected a number of seconds, got {type(timeout).__name__}")
    if not 0 < timeout < float("inf"):
        raise ValueError(f"argument 'timeout': expected a positive, finite number of seconds, got {timeout!r}")
    return float(timeout)


def submit_clear(deadline: float, flush_error: str | None) -> Future[None]:
    """Queue a clear, or join the one already queued or running."""
    global _clear_future
    with _state_lock:
        current = _clear_future
        if current is not None and not current.done():
            return current
        future = submit(lambda: clear_job(deadline, flush_error))
        _clear_future = future
        return future


def overran(seconds: float) -> RuntimeError:
    """The error for a clear whose teardown did not finish in time."""
    return model.PluginRegistrationError(
        f"plugin teardown failed: teardown did not finish within {seconds:g}s; a teardown callback is still "
        "running (plugin changes fail until it returns)"
    )
