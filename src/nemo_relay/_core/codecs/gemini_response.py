"""Gemini ``generateContent`` responses: response decoding and the ``streamGenerateContent`` aggregator."""

from __future__ import annotations

from nemo_relay._core.codecs.common import ResponseShape, as_object, copy_object, provider_native, usage_json
from nemo_relay._core.codecs.gemini_request import (
    API,
    LABEL,
    PROVIDER,
    check_id,
    invalid,
    is_thought,
    part_kind,
    text_part,
    visible_content,
)
from nemo_relay._core.codecs.rustfmt import RustText, float_debug, json_str
from nemo_relay._core.errors import InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.types import JsonObject, JsonValue

SHAPE = ResponseShape("Gemini", RustText(json_str, float_debug))  # serde fragments quote strings as JSON
_FILTERED = frozenset(
    (
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    )
)
_BLOCKED = frozenset(("SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"))


# ======================================================================================================
# Response decoding
# ======================================================================================================


def decode_response(response: JsonObject) -> tuple[JsonObject, JsonObject]:
    """The annotated fields and the unknown top-level keys (``extra``) of a generateContent response body."""
    out: JsonObject = {}
    api: JsonObject = {"api": API}
    model, version = SHAPE.string(response.get("model")), SHAPE.string(response.get("modelVersion"))
    response_id, legacy_id = SHAPE.string(response.get("id")), SHAPE.string(response.get("responseId"))
    if (model or version) is not None:
        out["model"] = model if model is not None else version
    if (response_id or legacy_id) is not None:
        out["id"] = response_id if response_id is not None else legacy_id
    blocked = _block_reason(response)
    candidate = _first_candidate(response.get("candidates"))
    finish: str | None = None
    if candidate is not None:
        finish = _decode_candidate(candidate, out, api)
    usage = response.get("usageMetadata")
    if usage is not None:
        out["usage"] = _decode_usage(usage, api)
    reason = _finish_reason(finish, blocked, "tool_calls" in out)
    if reason is not None:
        out["finish_reason"] = reason
    if len(api) > 1:
        out["api_specific"] = api
    known = ("model", "modelVersion", "id", "responseId", "candidates", "usageMetadata")
    return out, {key: copy_json(value) for key, value in response.items() if key not in known}


def _block_reason(response: JsonObject) -> str | None:
    if "promptFeedback" not in response:
        return None
    feedback = response["promptFeedback"]
    if type(feedback) is not dict:
        raise invalid("response promptFeedback must be an object")
    reason = feedback.get("blockReason")
    if reason is not None and type(reason) is not str:
        raise invalid("response promptFeedback.blockReason must be a string")
    return reason


def _first_candidate(candidates: JsonValue) -> JsonObject | None:
    if candidates is None:
        return None
    if type(candidates) is not list:
        SHAPE.mismatch(candidates, "a sequence")
    for candidate in candidates:
        if type(candidate) is not dict:
            SHAPE.mismatch(candidate, "struct RawCandidate")
    return as_object(candidates[0]) if candidates else None


def _decode_candidate(candidate: JsonObject, out: JsonObject, api: JsonObject) -> str | None:
    finish = SHAPE.string(candidate.get("finishReason"))
    body = candidate.get("content")
    if body is not None:
        if type(body) is not dict:
            SHAPE.mismatch(body, "struct RawContent")
        parts = body.get("parts")
        if parts is not None:
            if type(parts) is not list:
                SHAPE.mismatch(parts, "a sequence")
            _decode_response_parts_into(parts, out)
    renamed = {
        "safetyRatings": "safety_ratings",
        "groundingMetadata": "grounding_metadata",
        "citationMetadata": "citation_metadata",
    }
    for key, value in candidate.items():
        if key not in ("content", "finishReason") and value is not None:
            api[renamed.get(key, key)] = copy_json(value)
    return finish


def _decode_response_parts_into(parts: list[JsonValue], out: JsonObject) -> None:
    visible: list[JsonValue] = []
    calls: list[JsonValue] = []
    for part in parts:
        if type(part) is not dict:
            raise InvalidArgumentError(f"{LABEL} response parts entry must be an object")
        if "functionResponse" in part:
            raise invalid("response parts must not contain functionResponse")
        if "functionCall" in part:
            calls.append(_response_call(part["functionCall"]))
        elif "text" in part:
            if type(part["text"]) is not str:
                raise InvalidArgumentError(f"{LABEL} response parts[].text must be a string")
            if not is_thought(part):
                visible.append(text_part(part))
        else:
            visible.append(provider_native(PROVIDER, part_kind(part), copy_json(part), "type"))
    if visible:
        out["message"] = visible_content(visible)
    if calls:
        out["tool_calls"] = calls


def _response_call(call: JsonValue) -> JsonObject:
    if type(call) is not dict:
        raise invalid("response functionCall must be an object")
    if "name" not in call:
        raise invalid("response functionCall is missing 'name'")
    name = call["name"]
    if type(name) is not str:
        raise invalid("response functionCall.name must be a string")
    if not name:
        raise invalid("response functionCall.name must be a non-empty string")
    if "args" in call and type(call["args"]) is not dict:
        raise invalid("response functionCall.args must be an object")
    check_id(call, "response functionCall")
    return {"id": call.get("id", name), "name": name, "arguments": copy_json(call.get("args", {}))}


def _decode_usage(usage: JsonValue, api: JsonObject) -> JsonObject:
    if type(usage) is not dict:
        SHAPE.mismatch(usage, "struct RawUsageMetadata")
    prompt, completion, total, cached, thoughts = (
        SHAPE.u64(usage.get(key))
        for key in (
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
            "cachedContentTokenCount",
            "thoughtsTokenCount",
        )
    )
    counted = [n for n in (prompt, completion, thoughts) if n is not None]
    if total is None and counted:
        # No reported total: thinking tokens are billed as output, so they count towards it.
        total = sum(counted)
    if thoughts is not None:
        api["thoughts_tokens"] = thoughts
    return usage_json(prompt, completion, total, cache_read=cached)


def _finish_reason(finish: str | None, blocked: str | None, has_calls: bool) -> JsonValue:
    if finish is None or finish == "FINISH_REASON_UNSPECIFIED":
        if blocked is not None and blocked != "BLOCK_REASON_UNSPECIFIED":
            return "content_filter" if blocked in _BLOCKED else {"unknown": blocked}
        return "tool_use" if has_calls else None
    if finish == "STOP":
        return "tool_use" if has_calls else "complete"
    if finish == "MAX_TOKENS":
        return "length"
    if finish in _FILTERED:
        return "content_filter"
    return {"unknown": finish}


# ======================================================================================================
# Streaming
# ======================================================================================================


def _stream_error(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Gemini streaming {detail}")


class GeminiStreamAggregator:
    """Folds ``streamGenerateContent`` chunks into the body a ``generateContent`` call would have returned.

    Text fragments of the single candidate are concatenated (thought text separately from answer text, a
    ``thoughtSignature`` kept on the part it arrived with), other parts are appended, and the last
    ``finishReason``, ``usageMetadata``, ``modelVersion`` and ``responseId`` win.
    """

    __slots__ = ("_parts", "_candidate", "_top", "_index", "_seen_candidate")

    def __init__(self) -> None:
        self._parts: list[JsonObject] = []
        self._candidate: JsonObject = {}
        self._top: JsonObject = {}
        self._index: int | None = None
        self._seen_candidate = False

    def add(self, chunk: JsonValue) -> None:
        """Fold one streamed chunk into the response."""
        if type(chunk) is not dict:
            raise _stream_error("chunk must be an object")
        for key in ("modelVersion", "responseId"):
            if key in chunk and type(chunk[key]) is not str:
                raise InvalidArgumentError(f"Gemini streaming event {key} must be a string")
        candidates = chunk.get("candidates")
        if candidates is not None:
            if type(candidates) is not list:
                raise _stream_error("candidates must be an array")
            if len(candidates) > 1:
                raise InvalidArgumentError("Gemini streaming chunks with multiple candidates are not supported")
            for candidate in candidates:
                self._add_candidate(candidate)
        for key, value in chunk.items():
            if key != "candidates":
                self._top[key] = copy_json(value)

    def result(self) -> JsonObject:
        """The aggregated response body."""
        out: JsonObject = {}
        if self._seen_candidate:
            candidate = {k: copy_json(v) for k, v in self._candidate.items()}
            parts: list[JsonValue] = [copy_json(p) for p in self._parts]
            candidate["content"] = {"role": "model", "parts": parts}
            out["candidates"] = [candidate]
        out.update(copy_object(self._top))
        return out

    def _add_candidate(self, candidate: JsonValue) -> None:
        if type(candidate) is not dict:
            raise _stream_error("candidate must be an object")
        self._check_index(candidate)
        self._seen_candidate = True
        finish = candidate.get("finishReason")
        if finish is not None and type(finish) is not str:
            raise _stream_error("candidate finishReason must be a string")
        body = candidate.get("content")
        if type(body) is dict:
            parts = body.get("parts")
            for part in parts if type(parts) is list else []:
                self._add_part(part)
        for key, value in candidate.items():
            if key != "content" and value is not None:
                self._candidate[key] = copy_json(value)

    def _check_index(self, candidate: JsonObject) -> None:
        if "index" not in candidate:
            return
        index = candidate["index"]
        if type(index) is not int or index < 0:
            raise _stream_error("candidate index must be an unsigned integer")
        if self._index is not None and index != self._index:
            raise _stream_error("candidate index changed across chunks")
        if index != 0:
            raise _stream_error("only supports candidate index 0")
        self._index = index

    def _add_part(self, part: JsonValue) -> None:
        if type(part) is not dict:
            raise _stream_error("parts entry must be an object")
        if "functionResponse" in part:
            raise _stream_error("response parts must not contain functionResponse")
        if "text" in part and type(part["text"]) is not str:
            raise _stream_error("parts[].text must be a string")
        last = self._parts[-1] if self._parts else None
        if last is not None and _joins(last, part):
            last["text"] = str(last["text"]) + str(part["text"])
            if "thoughtSignature" in part:
                last["thoughtSignature"] = copy_json(part["thoughtSignature"])
            return
        self._parts.append(copy_object(part))


def _joins(last: JsonObject, part: JsonObject) -> bool:
    """Whether a streamed text fragment continues the previous text part."""
    if "text" not in last or "text" not in part:
        return False
    if set(part) - {"text", "thought", "thoughtSignature"} or set(last) - {"text", "thought", "thoughtSignature"}:
        return False
    if is_thought(last) != is_thought(part):
        return False
    # A thought signature may ride on any fragment (often a trailing empty one); two different ones don't mix.
    return "thoughtSignature" not in last or "thoughtSignature" not in part
