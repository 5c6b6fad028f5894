"""OCI Generative AI chat responses: ``ChatResult`` decoding and the stream aggregator."""

from __future__ import annotations

from nemo_relay._core.codecs.common import U64_MAX, as_object, loads, parse_json_or_text
from nemo_relay._core.codecs.oci_request import (
    COHERE,
    COHEREV2,
    GENERIC,
    LABEL,
    PROVIDER,
    call_source,
    decode_content,
    dialect_of,
    read_api_format,
)
from nemo_relay._core.errors import InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from nemo_relay._core.types import JsonObject, JsonValue

_RESPONSE_KEYS = {
    GENERIC: frozenset(("apiFormat", "choices", "usage")),
    COHERE: frozenset(("apiFormat", "text", "finishReason", "toolCalls", "usage")),
    COHEREV2: frozenset(("apiFormat", "id", "message", "finishReason", "usage")),
}
_ENVELOPE_RESPONSE_KEYS = frozenset(("modelId", "modelVersion", "chatResponse"))
_CHOICE_KEYS = frozenset(("index", "message", "finishReason"))
_MESSAGE_KEYS = frozenset(("role", "content", "toolCalls"))

_FINISH_REASONS = {
    "stop": "complete",
    "COMPLETE": "complete",
    "length": "length",
    "MAX_TOKENS": "length",
    "max_tokens": "length",
    "tool_calls": "tool_use",
    "TOOL_CALL": "tool_use",
    "content_filter": "content_filter",
}


def decode_response(response: JsonObject) -> tuple[JsonObject, JsonObject]:
    """``(named annotated-response fields, unknown keys)`` of an OCI ``ChatResult``."""
    body = response.get("chatResponse")
    known: JsonObject = {}
    extra: JsonObject = {}
    if type(body) is not dict:
        body = response  # a bare chatResponse: modelId and friends are unknown keys here
    api_format = read_api_format(body)
    api_specific: JsonObject = {"api": PROVIDER, "api_format": api_format}
    if body is not response:
        _copy_unknown(response, _ENVELOPE_RESPONSE_KEYS, extra)
        _decode_response_envelope(response, known, api_specific)
    dialect = dialect_of(api_format)
    _copy_unknown(body, _RESPONSE_KEYS[dialect], extra)
    if dialect == COHERE:
        _decode_cohere_result(body, known)
    elif dialect == COHEREV2:
        _decode_coherev2_result(body, known, extra)
    else:
        _decode_generic_result(body, known, extra)
    usage = _decode_usage(body.get("usage"))
    if usage is not None:
        known["usage"] = usage
    known["api_specific"] = api_specific
    return known, extra


# --- response decoding -----------------------------------------------------------------------------------------


def _copy_unknown(source: JsonObject, known: frozenset[str], into: JsonObject) -> None:
    for key, value in source.items():
        if key not in known:
            into[key] = copy_json(value)


def _decode_response_envelope(response: JsonObject, known: JsonObject, api_specific: JsonObject) -> None:
    model = response.get("modelId")
    if isinstance(model, str):
        known["model"] = model
    version = response.get("modelVersion")
    if isinstance(version, str):
        api_specific["model_version"] = version


def _decode_generic_result(body: JsonObject, known: JsonObject, extra: JsonObject) -> None:
    """GENERIC: the first of ``choices`` carries the message, tool calls and finish reason."""
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if type(choice) is not dict:
        return
    unknown: JsonObject = {}
    _copy_unknown(choice, _CHOICE_KEYS, unknown)
    if unknown:
        extra["choice"] = unknown
    message = choice.get("message")
    if type(message) is dict:
        _decode_result_message(message, known, extra)
    _set_finish_reason(choice.get("finishReason"), known)


def _decode_coherev2_result(body: JsonObject, known: JsonObject, extra: JsonObject) -> None:
    response_id = body.get("id")
    if isinstance(response_id, str):
        known["id"] = response_id
    message = body.get("message")
    if type(message) is dict:
        _decode_result_message(message, known, extra)
    _set_finish_reason(body.get("finishReason"), known)


def _decode_result_message(message: JsonObject, known: JsonObject, extra: JsonObject) -> None:
    """The assistant message of GENERIC/COHEREV2 results: text, tool calls, and its unknown keys."""
    unknown: JsonObject = {}
    _copy_unknown(message, _MESSAGE_KEYS, unknown)
    if unknown:
        extra["message"] = unknown
    content = decode_content(message.get("content"))
    if content is not None and content != []:
        known["message"] = content
    calls = _decode_result_tool_calls(message.get("toolCalls"), _generic_call_parts)
    if calls:
        known["tool_calls"] = calls


def _decode_cohere_result(body: JsonObject, known: JsonObject) -> None:
    text = body.get("text")
    if isinstance(text, str):
        known["message"] = text
    calls = _decode_result_tool_calls(body.get("toolCalls"), _cohere_call_parts)
    if calls:
        known["tool_calls"] = calls
    _set_finish_reason(body.get("finishReason"), known)


def _generic_call_parts(call: JsonObject) -> tuple[JsonValue, JsonValue]:
    """``(name, arguments)`` of a GENERIC/COHEREV2 call; string arguments are parsed when they are JSON."""
    source = call_source(call)
    arguments = source.get("arguments")
    if isinstance(arguments, str):
        return source.get("name"), parse_json_or_text(arguments, finite=False)
    return source.get("name"), copy_json(arguments)


def _cohere_call_parts(call: JsonObject) -> tuple[JsonValue, JsonValue]:
    return call.get("name"), copy_json(call.get("parameters"))


def _decode_result_tool_calls(
    raw: JsonValue, parts: Callable[[JsonObject], tuple[JsonValue, JsonValue]]
) -> list[JsonValue]:
    """``[{id, name, arguments}]``; entries without a string name are skipped, missing ids become ``call_<i>``."""
    if not isinstance(raw, list):
        return []
    out: list[JsonValue] = []
    for index, call in enumerate(raw):
        if type(call) is not dict:
            continue
        name, arguments = parts(call)
        if not isinstance(name, str):
            continue
        call_id = call.get("id")
        out.append(
            {"id": call_id if isinstance(call_id, str) else f"call_{index}", "name": name, "arguments": arguments}
        )
    return out


def _set_finish_reason(raw: JsonValue, known: JsonObject) -> None:
    if isinstance(raw, str):
        known["finish_reason"] = _FINISH_REASONS.get(raw) or {"unknown": raw}


def _decode_usage(raw: JsonValue) -> JsonObject | None:
    """OCI ``promptTokens`` already include cached tokens; ``promptTokensDetails.cachedTokens`` is the cache read."""
    if type(raw) is not dict:
        return None
    usage: JsonObject = {}
    for wire, name in (
        ("promptTokens", "prompt_tokens"),
        ("completionTokens", "completion_tokens"),
        ("totalTokens", "total_tokens"),
    ):
        if _is_count(raw.get(wire)):
            usage[name] = raw[wire]
    details = raw.get("promptTokensDetails")
    if type(details) is dict and _is_count(details.get("cachedTokens")):
        usage["cache_read_tokens"] = details["cachedTokens"]
    return usage


# --- streaming ---------------------------------------------------------------------------------------------------


class OCIStreamAggregator:
    """Folds streamed OCI chat events into the ``ChatResult`` a non-streamed call would have returned.

    Chunks are the parsed JSON of each server-sent event (a dict), or the raw event text (``"data: {...}"``,
    ``"[DONE]"`` and blank keep-alives are skipped). Assumed shapes, per format:

    * GENERIC: ``{"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": delta}],
      "toolCalls": [fragment, ...], "reasoningContent": delta}}``; a later event carries ``finishReason``, and
      with ``streamOptions.isIncludeUsage`` a last usage-only event ``{"usage": {...}}`` follows. Tool-call
      fragments with an ``id`` open (or re-open) a call; id-less fragments extend the call last opened at the
      same position; ``arguments`` strings concatenate.
    * COHERE: ``{"apiFormat": "COHERE", "text": delta}``; the final event (with ``finishReason``) repeats the
      full ``text`` and may carry ``toolCalls``, ``chatHistory``, ``citations``, ``usage``...
    * COHEREV2: ``{"apiFormat": "COHEREV2", "message": {"content": [{"type": "TEXT", "text": delta}],
      "toolCalls": [...]}}``, tool calls merged like GENERIC ones but nested under ``function``; the final event
      carries ``finishReason`` and ``usage``, and its message restates what came before (not a delta).

    An event that already is a whole ``ChatResult`` (has a ``chatResponse`` object) replaces the aggregate.
    """

    __slots__ = (
        "_active",
        "read_api_format",
        "_by_id",
        "_calls",
        "_cohere_calls",
        "_extra",
        "_finish",
        "_final_text",
        "_model",
        "_model_version",
        "_reasoning",
        "_text",
        "_usage",
        "_whole",
    )

    def __init__(self) -> None:
        self.read_api_format: str | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._final_text: str | None = None
        self._calls: list[JsonObject] = []
        self._by_id: dict[str, JsonObject] = {}
        self._active: dict[int, JsonObject] = {}
        self._cohere_calls: JsonValue = None
        self._finish: JsonValue = None
        self._usage: JsonValue = None
        self._model: JsonValue = None
        self._model_version: JsonValue = None
        self._extra: JsonObject = {}
        self._whole: JsonObject | None = None

    def add(self, chunk: JsonValue | bytes) -> None:
        """Fold one streamed event into the aggregate."""
        event = _stream_event(chunk)
        if event is None:
            return
        if type(event.get("chatResponse")) is dict:
            self._whole = as_object(copy_json(event))
            return
        self._note_common(event)
        dialect = dialect_of(self._format(event))
        if dialect == COHERE:
            self._add_cohere(event)
        else:
            self._add_chat(event, coherev2=dialect == COHEREV2)

    def result(self) -> JsonObject:
        """The aggregated response, shaped like a non-streamed OCI ``ChatResult``."""
        if self._whole is not None:
            return as_object(copy_json(self._whole))
        api_format = self.read_api_format or GENERIC
        dialect = dialect_of(api_format)
        if dialect == COHERE:
            body = self._cohere_body(api_format)
        elif dialect == COHEREV2:
            body = self._coherev2_body(api_format)
        else:
            body = self._generic_body(api_format)
        if self._usage is not None:
            body["usage"] = copy_json(self._usage)
        out: JsonObject = {"chatResponse": body}
        if self._model is not None:
            out["modelId"] = self._model
        if self._model_version is not None:
            out["modelVersion"] = self._model_version
        return out

    # -- folding ----------------------------------------------------------------------------------------------

    def _format(self, event: JsonObject) -> str:
        if self.read_api_format is None:
            declared = event.get("apiFormat")
            if isinstance(declared, str):
                self.read_api_format = declared.upper()
            elif isinstance(event.get("text"), str):
                self.read_api_format = COHERE  # only COHERE events carry top-level text
        return self.read_api_format or GENERIC

    def _note_common(self, event: JsonObject) -> None:
        if type(event.get("usage")) is dict:
            self._usage = copy_json(event["usage"])
        if isinstance(event.get("finishReason"), str):
            self._finish = event["finishReason"]
        if isinstance(event.get("modelId"), str):
            self._model = event["modelId"]
        if isinstance(event.get("modelVersion"), str):
            self._model_version = event["modelVersion"]

    def _add_chat(self, event: JsonObject, *, coherev2: bool) -> None:
        message = event.get("message")
        if type(message) is not dict:
            return
        repeat = coherev2 and "finishReason" in event  # COHEREV2's final event restates the message
        if not repeat:
            self._text.extend(_delta_texts(message.get("content")))
        reasoning = message.get("reasoningContent")
        if isinstance(reasoning, str):
            self._reasoning.append(reasoning)
        calls = message.get("toolCalls")
        if isinstance(calls, list) and not (repeat and self._calls):  # a repeat of calls already folded
            for position, fragment in enumerate(calls):
                if type(fragment) is dict:
                    self._merge_call(position, fragment)

    def _merge_call(self, position: int, fragment: JsonObject) -> None:
        source = call_source(fragment)
        call_id = fragment.get("id")
        if isinstance(call_id, str) and call_id:
            call = self._by_id.get(call_id)
            if call is None:
                call = self._open_call(call_id)
                self._by_id[call_id] = call
        else:
            call = self._active.get(position) or self._open_call(None)
        self._active[position] = call
        name, arguments = source.get("name"), source.get("arguments")
        if isinstance(name, str) and name and not call["name"]:
            call["name"] = name
        if isinstance(arguments, str):
            call["arguments"] = f"{call['arguments']}{arguments}"
        elif arguments is not None:
            call["arguments"] = copy_json(arguments)  # a complete, already-structured value

    def _open_call(self, call_id: str | None) -> JsonObject:
        call: JsonObject = {"id": call_id, "name": "", "arguments": ""}
        self._calls.append(call)
        return call

    def _add_cohere(self, event: JsonObject) -> None:
        text = event.get("text")
        if "finishReason" in event:
            if isinstance(text, str):
                self._final_text = text  # the final event repeats the whole text
            for key, value in event.items():
                if key not in _RESPONSE_KEYS[COHERE] and key not in ("pad", "index", "modelId", "modelVersion"):
                    self._extra[key] = copy_json(value)
        elif isinstance(text, str):
            self._text.append(text)
        if isinstance(event.get("toolCalls"), list):
            self._cohere_calls = copy_json(event["toolCalls"])  # COHERE sends whole calls, never fragments

    # -- building -----------------------------------------------------------------------------------------------

    def _chat_message(self, *, nested: bool) -> JsonObject:
        message: JsonObject = {"role": "ASSISTANT"}
        if self._text:
            message["content"] = [{"type": "TEXT", "text": "".join(self._text)}]
        if self._reasoning:
            message["reasoningContent"] = "".join(self._reasoning)
        if self._calls:
            message["toolCalls"] = [_stream_call(call, nested=nested) for call in self._calls]
        return message

    def _generic_body(self, api_format: str) -> JsonObject:
        choice: JsonObject = {"index": 0, "message": self._chat_message(nested=False)}
        if self._finish is not None:
            choice["finishReason"] = self._finish
        return {"apiFormat": api_format, "choices": [choice]}

    def _coherev2_body(self, api_format: str) -> JsonObject:
        body: JsonObject = {"apiFormat": api_format, "message": self._chat_message(nested=True)}
        if self._finish is not None:
            body["finishReason"] = self._finish
        return body

    def _cohere_body(self, api_format: str) -> JsonObject:
        text = self._final_text if self._final_text is not None else "".join(self._text)
        body = as_object(copy_json(self._extra))
        body["apiFormat"] = api_format
        body["text"] = text
        if self._cohere_calls is not None:
            body["toolCalls"] = copy_json(self._cohere_calls)
        if self._finish is not None:
            body["finishReason"] = self._finish
        return body


def _stream_event(chunk: JsonValue | bytes) -> JsonObject | None:
    """A chunk as an event object, or None for SSE sentinels and keep-alives."""
    if isinstance(chunk, (bytes, bytearray)):
        try:
            chunk = bytes(chunk).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError(f"{LABEL} stream event is not UTF-8: {exc}") from None
    if isinstance(chunk, str):
        text = chunk.strip()
        if text.startswith("data:"):
            text = text[5:].strip()
        if not text or text == "[DONE]":
            return None
        try:
            chunk = loads(text)
        except ValueError:
            raise InvalidArgumentError(f"{LABEL} stream event is not JSON: {text[:80]!r}") from None
    if type(chunk) is not dict:
        raise InvalidArgumentError(f"{LABEL} stream event must be a JSON object, got {type(chunk).__name__}")
    return chunk


def _delta_texts(content: JsonValue) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    texts: list[str] = []
    for part in content:
        text = part.get("text") if type(part) is dict and part.get("type") == "TEXT" else None
        if isinstance(text, str):
            texts.append(text)
    return texts


def _stream_call(call: JsonObject, *, nested: bool) -> JsonObject:
    out: JsonObject = {} if call["id"] is None else {"id": call["id"]}
    out["type"] = "FUNCTION"
    if nested:
        out["function"] = {"name": call["name"], "arguments": call["arguments"]}
    else:
        out["name"] = call["name"]
        out["arguments"] = call["arguments"]
    return out


def _is_count(value: JsonValue) -> bool:
    return type(value) is int and 0 <= value <= U64_MAX
