"""③ ④ Conditional guardrails and request intercepts, written once as flows.

A flow is a generator that yields what a user callback returned and gets the resolved value back,
so the same chain runs from sync code (``aio.drive_sync``) and async code (``aio.drive_async``).
Guardrail evaluations are recorded as guardrail scope start/end events around each callback.
"""

from __future__ import annotations

from contextvars import copy_context

from nemo_relay._core import aio, dispatch, registry
from nemo_relay._core.errors import InternalError, InvalidArgumentError, JsonConversionError
from nemo_relay._core.events import ScopeEvent
from nemo_relay._core.ids import new_id, time_ns
from nemo_relay._core.jsonconv import copy_json, to_json
from nemo_relay._core.policy import callback_failed, rethrow
from nemo_relay._core.values import LLMRequest, LLMRequestInterceptOutcome, PendingMarkSpec

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.aio import Flow
    from nemo_relay._core.handles import ScopeHandle
    from nemo_relay._core.registry import Entry, View
    from nemo_relay._core.types import JsonValue

_CANCELLED: dict[str, JsonValue] = {"allowed": False, "cancelled": True, "error": "guardrail evaluation cancelled"}


class Emitter:
    """Where a call's guardrail and lifecycle events go: its parent, metadata, view and stack snapshot."""

    __slots__ = ("parent", "metadata", "view", "snap", "listening")

    def __init__(self, parent: int, metadata: JsonValue, view: View, snap: ScopeHandle) -> None:
        self.parent = parent
        self.metadata = metadata
        self.view = view
        self.snap = snap
        self.listening = bool(view[registry.SUBSCRIBER])

    def guardrail(self, id_: int, name: str, phase: str, data: JsonValue) -> None:
        """Emit one guardrail scope event (only when someone subscribes)."""
        if self.listening:
            dispatch.publish(
                ScopeEvent(
                    id_, self.parent, time_ns(), name, "guardrail", phase, (), data,
                    copy_json(self.metadata), None, self.view, copy_context(), self.snap,
                )
            )  # fmt: skip


def _unexpected_verdict(kind: str, verdict: object) -> InternalError:
    label = "LLM" if kind == "llm" else kind
    return InternalError(
        f"{label} conditional guardrail returned unexpected type: TypeError: {_not_instance(verdict, 'str')}"
    )


def _not_instance(value: object, expected: str) -> str:
    # The reference's wording: "'None' is not ..." for None, "'int' object is not ..." otherwise.
    if value is None:
        return f"'None' is not an instance of '{expected}'"
    return f"'{type(value).__name__}' object is not an instance of '{expected}'"


def conditions(
    entries: tuple[Entry, ...], emitter: Emitter, kind: str, target: JsonValue, call: Any
) -> Flow[str | None]:
    """Run conditional guardrails in order; the first string verdict is the rejection reason.

    ``call(entry)`` invokes one guardrail; ``kind`` is ``"tool"`` or ``"llm"``. Errors stop the
    chain and propagate (after the guardrail's end event records them).
    """
    start_data: dict[str, JsonValue] = {"kind": f"{kind}_conditional_execution"}
    if target is not None:
        start_data["target_name"] = target
    cancelled = aio.cancelled_error_type()
    for entry in entries:
        guard_id = new_id()
        emitter.guardrail(guard_id, entry.name, "start", dict(start_data))
        try:
            verdict = yield call(entry)
            if verdict is not None and not isinstance(verdict, str):
                raise _unexpected_verdict(kind, verdict)
        except cancelled:
            emitter.guardrail(guard_id, entry.name, "end", dict(_CANCELLED))
            raise
        except BaseException as exc:
            error = callback_failed(exc)
            text = str(error) or type(error).__name__  # an interrupt (KeyboardInterrupt) has no message
            emitter.guardrail(guard_id, entry.name, "end", {"allowed": False, "error": text})
            rethrow(exc)
        if verdict is None:
            emitter.guardrail(guard_id, entry.name, "end", {"allowed": True, "rejected": False})
            continue
        reason = str(verdict)
        emitter.guardrail(guard_id, entry.name, "end", {"allowed": False, "rejected": True, "rejection_reason": reason})
        return reason
    return None


def tool_requests(entries: tuple[Entry, ...], name: str, args: JsonValue) -> Flow[JsonValue]:
    """Thread ``args`` through the tool request intercepts; ``break_chain`` stops after its entry."""
    for entry in entries:
        try:
            value = yield entry.callback(name, args)
        except BaseException as exc:
            rethrow(exc)
        try:
            args = to_json(value)
        except JsonConversionError as exc:
            raise InternalError(f"ValueError: {exc}") from None
        if entry.break_chain:
            break
    return args


class RequestChainResult:
    """The outcome of the LLM request chain: final request, codec annotation, pending marks."""

    __slots__ = ("request", "annotated", "marks")

    def __init__(self, request: LLMRequest, annotated: object, marks: list[PendingMarkSpec]) -> None:
        self.request = request
        self.annotated = annotated
        self.marks = marks


def llm_requests(
    entries: tuple[Entry, ...], name: str, request: LLMRequest, annotated: object, codec_active: bool
) -> Flow[RequestChainResult]:
    """Run the LLM request intercepts; with a codec, the annotation is the body authority."""
    marks: list[PendingMarkSpec] = []
    for entry in entries:
        try:
            outcome = yield entry.callback(name, request, annotated)
        except BaseException as exc:
            rethrow(exc, "LLM request intercept callable failed: ")
        if not isinstance(outcome, LLMRequestInterceptOutcome):
            raise InternalError(
                "LLM request intercept must return LLMRequestInterceptOutcome: "
                + _not_instance(outcome, "LLMRequestInterceptOutcome")
            )
        if codec_active:
            if outcome._request._content != request._content:
                raise InvalidArgumentError(
                    f"LLM request intercept '{entry.name}' changed request.content while a request codec is "
                    "active; modify annotated_request instead"
                )
            if outcome._annotated is None:
                raise InvalidArgumentError(
                    f"LLM request intercept '{entry.name}' omitted annotated_request while a request codec is active"
                )
            annotated = outcome._annotated
        request = outcome._request
        marks.extend(outcome._marks)
        if entry.break_chain:
            break
    return RequestChainResult(request, annotated, marks)
