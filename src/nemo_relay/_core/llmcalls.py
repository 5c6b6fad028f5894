"""⑤ ⑧ LLM call lifecycles: start and end events, their sanitize transforms, codec annotations, history.

The start event records the request without credential headers, after the LLM sanitize-request
guardrails, plus the codec's annotation (re-decoded when a sanitizer rewrote the request). When the
agent that owns the call has already been shown its history (it is not "fresh"), the recorded
messages are projected to the system messages plus everything from the last user message on, so a
long conversation is not written out again at every call. The provider request is never changed.
The end event records the response after the sanitize-response guardrails and the response codec's
annotation. All of this runs on the publication path; failures omit the payload and are reported.
"""

from __future__ import annotations

import sys
from contextvars import copy_context

from nemo_relay._core import args as checks
from nemo_relay._core import oplog, registry
from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
from nemo_relay._core.calls import Call, end_time, ok_metadata, optional_json
from nemo_relay._core.context import owning_agent
from nemo_relay._core.dispatch import publish
from nemo_relay._core.errors import InternalError, JsonConversionError
from nemo_relay._core.events import ScopeEvent
from nemo_relay._core.handles import LLMHandle, ScopeHandle
from nemo_relay._core.ids import new_id, time_ns, timestamp_ns
from nemo_relay._core.jsonconv import copy_json, to_json
from nemo_relay._core.llmctx import LlmSanitizeRequestContext, LlmSanitizeResponseContext, identity_of
from nemo_relay._core.publish import report, resolve
from nemo_relay._core.types import LLMAttributes
from nemo_relay._core.values import LLMRequest

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.registry import View
    from nemo_relay._core.types import JsonValue

_LLM_ATTRS = LLMAttributes._NAMES
_SUB = registry.SUBSCRIBER
_PUB = registry.PUBLICATION
_LLM_REQ = registry.LLM_SANITIZE_REQUEST
_LLM_RESP = registry.LLM_SANITIZE_RESPONSE
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "anthropic-api-key", "x-goog-api-key"}
)

# Set by the observability plugin's `enable_full_payloads`: record whole histories at every call.
full_payloads = False


def visible_headers(headers: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """A copy of ``headers`` without credentials (events never carry them)."""
    return {k: copy_json(v) for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def llm_profile(handle: LLMHandle) -> dict[str, JsonValue]:
    """``category_profile`` of an LLM event: ``{"model_name": ...}`` or ``{}``."""
    return {} if handle._model_name is None else {"model_name": handle._model_name}


def take_freshness(top: ScopeHandle, parent: int) -> bool:
    """Whether the agent owning a call at ``parent`` is fresh (first call since push or compaction); clears it."""
    agent = owning_agent(top, parent)
    if agent is None:
        return True
    fresh = getattr(agent, "_fresh", False)
    agent._fresh = False
    return bool(fresh)


def open_llm(
    call: Call,
    request: LLMRequest,
    model_name: str | None,
    start: int,
    codec: object = None,
    annotated: AnnotatedLLMRequest | None = None,
) -> LLMHandle:
    """Create an LLM handle and emit its start event from ``request`` (credentials removed)."""
    view = call.view
    handle = LLMHandle(
        new_id(), call.name, call.attrs, call.parent, call.data, call.metadata, start, model_name, call.top
    )
    fresh = take_freshness(call.top, call.parent)
    chain = view[_LLM_REQ]
    if not view[_SUB] and not chain and not view[_PUB]:
        return handle
    event = ScopeEvent(
        handle._id, call.parent, start, call.name, "llm", "start", _LLM_ATTRS[call.attrs], None,
        None if call.metadata is None else copy_json(call.metadata), llm_profile(handle), view, copy_context(),
        call.top,
    )  # fmt: skip
    headers = visible_headers(request._headers)
    # An LLMRequest never hands out its content (its getters copy), so the event may share it.
    if chain or annotated is not None:
        # A shallow snapshot: the JSON form is built on the dispatcher, off the caller's path.
        snapshot = None if annotated is None else annotated._snapshot()
        event._xf = _LlmRequest(headers, request._content, codec, snapshot, not fresh and not full_payloads)
    else:
        event._data = {"headers": headers, "content": request._content}
    publish(event)
    return handle


def close_llm(
    call: Call,
    handle: LLMHandle,
    response: JsonValue,
    fallback: JsonValue,
    metadata: JsonValue,
    end: int,
    response_codec: object = None,
    annotated_response: JsonValue = None,
    manual: bool = False,
) -> None:
    """Emit an LLM end event; a null ``response`` falls back to ``fallback`` before sanitizing."""
    view = call.view
    chain = view[_LLM_RESP]
    if not view[_SUB] and not chain and not view[_PUB]:
        return
    payload = fallback if response is None and fallback is not None else response
    event = ScopeEvent(
        handle._id, handle._parent, end, handle._name, "llm", "end", _LLM_ATTRS[handle._attrs], None,
        metadata, llm_profile(handle), view, copy_context(), call.top,
    )  # fmt: skip
    if chain or response_codec is not None or annotated_response is not None:
        event._xf = _LlmResponse(copy_json(payload), response_codec, annotated_response, manual)
    else:
        event._data = copy_json(payload)
    publish(event)


class _LlmRequest:
    """Start transform: sanitize the request, attach (and maybe project) the codec annotation."""

    __slots__ = ("headers", "content", "codec", "annotation", "project")

    def __init__(
        self,
        headers: dict[str, JsonValue],
        content: JsonValue,
        codec: object,
        annotation: AnnotatedLLMRequest | None,
        project: bool,
    ) -> None:
        self.headers = headers
        self.content = content
        self.codec = codec
        self.annotation = annotation
        self.project = project

    def apply(self, event: ScopeEvent, view: View, loops: tuple[Any, ...]) -> None:
        request = LLMRequest._trusted(self.headers, self.content)
        sanitized = _sanitize_request(request, view[_LLM_REQ], LlmSanitizeRequestContext(self.codec), loops)
        if sanitized is None:
            event._data = None
            return
        annotation = None if self.annotation is None else self.annotation._to_json()
        if annotation is not None and sanitized is not request:
            annotation = _redecode(self.codec, sanitized)  # the sanitizer changed what was recorded
        content = sanitized._content
        if annotation is not None and self.project:
            projected = project_history(annotation)
            if projected is not None:
                encoded = _reencode(self.codec, projected, sanitized)
                if encoded is not None:
                    annotation, content = projected, encoded
        event._data = {"headers": copy_json(sanitized._headers), "content": copy_json(content)}
        if annotation is not None:
            event._profile["annotated_request"] = annotation  # type: ignore[index]


def _sanitize_request(
    request: LLMRequest, chain: tuple[Any, ...], context: LlmSanitizeRequestContext, loops: tuple[Any, ...]
) -> LLMRequest | None:
    for entry in chain:
        try:
            copy = LLMRequest._trusted(copy_json(request._headers), copy_json(request._content))  # type: ignore[arg-type]
            output = resolve(entry.callback(copy, context), entry, loops)
            if output is None:
                return None  # omitted on purpose: later sanitizers do not run
            if not isinstance(output, LLMRequest):
                raise TypeError(f"LLM request sanitizer must return LLMRequest or None, got {type(output).__name__}")
        except BaseException as exc:
            report(f"nemo_relay: Python LLM sanitize request callable failed: {_described(exc)}")
            _log_sanitizer("llm_request_sanitizer_failed", "LLM request", entry.name)
            return None
        request = output
    return request


def _redecode(codec: Any, request: LLMRequest) -> Any:
    try:
        annotated = codec.decode(request)
        return annotated._to_json() if isinstance(annotated, AnnotatedLLMRequest) else None
    except Exception as exc:
        _log_codec("llm_request_codec_decode_failed", "Re-decoding the sanitized request failed", exc)
        return None


def _reencode(codec: Any, projected: dict[str, JsonValue], request: LLMRequest) -> JsonValue | None:
    try:
        encoded = codec.encode(AnnotatedLLMRequest._from_json(projected), request)
        return copy_json(encoded._content) if isinstance(encoded, LLMRequest) else None
    except Exception:
        return None  # the full history is kept when the projection cannot be encoded


def project_history(annotation: dict[str, JsonValue]) -> dict[str, JsonValue] | None:
    """System messages plus everything from the last user message on; None when nothing changes."""
    messages = annotation.get("messages")
    if type(messages) is not list or not messages:
        return None
    roles = [m.get("role") if type(m) is dict else None for m in messages]
    if "user" in roles:
        last_user = len(roles) - 1 - roles[::-1].index("user")
        kept = [m for m, role in zip(messages[:last_user], roles[:last_user], strict=True) if role == "system"]
        projected = kept + messages[last_user:]
    else:
        projected = [m for m, role in zip(messages[:-1], roles[:-1], strict=True) if role == "system"] + messages[-1:]
    if len(projected) == len(messages):
        return None
    return {**annotation, "messages": projected}


class _LlmResponse:
    """End transform: sanitize the response, attach the response codec's annotation."""

    __slots__ = ("response", "codec", "annotated", "manual")

    def __init__(self, response: JsonValue, codec: object, annotated: JsonValue, manual: bool) -> None:
        self.response = response
        self.codec = codec
        self.annotated = annotated
        self.manual = manual

    def apply(self, event: ScopeEvent, view: View, loops: tuple[Any, ...]) -> None:
        value = self.response
        context = LlmSanitizeResponseContext(self.codec)
        changed = False
        for entry in view[_LLM_RESP]:
            try:
                output = resolve(entry.callback(copy_json(value), context), entry, loops)
                if output is None:
                    event._data = None  # omitted on purpose: later sanitizers do not run
                    return
                value = to_json(output)
                changed = True
            except BaseException as exc:
                report(f"nemo_relay: Python LLM sanitize response callable failed: {_described(exc)}")
                _log_sanitizer("llm_response_sanitizer_failed", "LLM response", entry.name)
                event._data = None
                return
        event._data = value
        if value is None:
            return
        annotation = self.annotated if not changed else None
        if annotation is None and self.codec is not None:
            annotation = decode_response(self.codec, value, self.manual)
        if annotation is not None:
            event._profile["annotated_response"] = annotation  # type: ignore[index]


def decode_response(codec: Any, response: JsonValue, manual: bool = False) -> dict[str, JsonValue] | None:
    """The response codec's annotation JSON, or None (failures are logged, never raised)."""
    try:
        try:
            builtin = sys.modules.get("nemo_relay._core.codecs.base")  # loaded if any built-in codec exists
            if builtin is not None and type(codec).decode_response is builtin.BuiltinCodec.decode_response:
                # A built-in codec (not overridden): the recorded response is converted JSON already.
                annotated = codec._decode_converted(response)
            else:
                annotated = codec.decode_response(response)
        except Exception as exc:
            if identity_of(codec).kind == "builtin":
                raise
            raise InternalError(f"Response codec decode_response() failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(annotated, AnnotatedLLMResponse):
            raise InternalError(
                "Response codec decode_response() returned unexpected type (expected AnnotatedLLMResponse): "
                f"{not_instance(annotated, 'AnnotatedLLMResponse')}"
            )
        return annotated._to_json()
    except Exception as exc:
        detail = str(exc) if isinstance(exc, InternalError) else f"internal error: {exc}"
        which = "manual" if manual else "managed"
        message = f"{which.capitalize()} LLM response annotation failed during queued publication: {detail}"
        oplog.log("error", "nemo_relay.runtime", f"{which}_llm_response_codec_failed", message)
        return None


def not_instance(value: object, expected: str) -> str:
    """``'<type>' object is not an instance of '<expected>'`` (the detail of wrong-return-type errors)."""
    return f"'{type(value).__name__}' object is not an instance of '{expected}'"


def _described(exc: BaseException) -> str:
    if isinstance(exc, JsonConversionError):
        return f"internal error: ValueError: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _log_sanitizer(kind: str, what: str, sanitizer: str) -> None:
    message = f"{what} sanitizer failed; omitting the observability payload"
    oplog.log("error", "nemo_relay.runtime", kind, message, sanitizer=sanitizer)


def _log_codec(kind: str, message: str, exc: BaseException) -> None:
    oplog.log("error", "nemo_relay.runtime", kind, f"{message}: {type(exc).__name__}: {exc}")


# --- the manual verbs -------------------------------------------------------------------------------------


def llm_call(
    name: str,
    request: LLMRequest,
    handle: ScopeHandle | None,
    attributes: LLMAttributes | None,
    data: object,
    metadata: object,
    model_name: str | None,
    timestamp: object,
) -> LLMHandle:
    """``llm.call``: validate, then open the call; the handle keeps the current stack for the end."""
    name = checks.text(name, "name")
    checks.expect(request, LLMRequest, "request")
    if handle is not None:
        checks.expect(handle, ScopeHandle, "handle")
    attrs = checks.bits(attributes, LLMAttributes)
    model = checks.optional_text(model_name, "model_name")
    data_json, metadata_json = optional_json(data), optional_json(metadata)
    start = time_ns() if timestamp is None else timestamp_ns(timestamp)
    return open_llm(Call(name, handle, attrs, data_json, metadata_json), request, model, start)


def llm_call_end(
    handle: LLMHandle,
    response: object,
    data: object,
    metadata: object,
    annotated_response: object,
    response_codec: object,
    timestamp: object,
) -> None:
    """``llm.call_end``: record the response of a manual LLM call (adds ``otel.status_code = OK``)."""
    checks.expect(handle, LLMHandle, "handle")
    response_json = to_json(response)
    data_json, metadata_json = optional_json(data), optional_json(metadata)
    annotation = _annotated_response_json(annotated_response)
    end = None if timestamp is None else timestamp_ns(timestamp)
    call = Call.at(handle._frame, handle._metadata)
    merged = ok_metadata(handle._metadata, metadata_json)
    end_ns = end_time(handle._start, end)
    close_llm(call, handle, response_json, data_json, merged, end_ns, response_codec, annotation, manual=True)


def _annotated_response_json(value: object) -> JsonValue:
    """``call_end``'s ``annotated_response`` (an object or a dict of its JSON form) as JSON; bad input raises."""
    if value is None:
        return None
    if isinstance(value, AnnotatedLLMResponse):
        return value._to_json()
    return AnnotatedLLMResponse._from_json(to_json(value))._to_json()  # type: ignore[arg-type]
