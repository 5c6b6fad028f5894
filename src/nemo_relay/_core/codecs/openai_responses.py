"""OpenAI Responses codec: ``/v1/responses`` bodies to the annotated view and back.

``input`` (a string or a list of items) becomes the annotation's ``messages``: message items keep
their role and typed parts (``input_text``/``output_text`` as ``text``, ``input_image`` as ``image``,
``input_file`` as ``file``), ``function_call`` items become ``tool_call`` messages with parsed
arguments, ``function_call_output`` items become ``tool_result`` messages, and everything else
(reasoning, item references, built-in tool calls, messages with ids or statuses) is kept whole as a
``provider_native`` component tagged ``openai_responses``. ``instructions`` maps to ``instructions``.

Encoding patches the original body the same way the Chat codec does (see ``openai_chat``).
"""

from __future__ import annotations

from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.codecs.common import (
    FieldReader,
    ResponseShape,
    as_list,
    as_object,
    check_api,
    json_equal,
    patch_extra,
    provider_native,
    set_or_drop,
    usage_json,
)
from nemo_relay._core.codecs.openai_common import (
    TEXT,
    cannot_encode,
    changed,
    decode_tool,
    decode_tool_choice,
    decoded_tool_call,
    dump_arguments,
    encode_tool,
    parse_arguments,
    patch_array,
    patch_exact,
    patch_sampling,
    patch_tool_choice,
    patch_tools,
    read_tools,
    reported_cost,
    unknown_reason,
)
from nemo_relay._core.errors import InvalidArgumentError

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.types import JsonObject, JsonValue

API = "OpenAI Responses"
PROVIDER = "openai_responses"
_SHAPE = ResponseShape(API, TEXT)

# Validated in the reference's order; each maps a body field to (reader kind, destination).
_TOP_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("instructions", "string", "top"),
    ("model", "string", "top"),
    ("temperature", "number", "params"),
    ("top_p", "number", "params"),
    ("max_output_tokens", "uint", "top"),
    ("tools", "tools", "tools"),
    ("store", "boolean", "top"),
    ("previous_response_id", "string", "top"),
    ("user", "string", "top"),
    ("service_tier", "string", "top"),
    ("parallel_tool_calls", "boolean", "top"),
    ("max_tool_calls", "uint", "top"),
    ("top_logprobs", "uint", "top"),
    ("stream", "boolean", "top"),
    ("background", "boolean", "api"),
    ("prompt_cache_key", "string", "api"),
    ("prompt_cache_retention", "string", "api"),
    ("safety_identifier", "string", "api"),
    ("reasoning", "object", "top"),
    ("include", "array", "top"),
    ("metadata", "object", "top"),
    ("context_management", "array", "api"),
    ("moderation", "object", "api"),
    ("prompt", "object", "api"),
    ("prompt_cache_options", "object", "api"),
    ("stream_options", "object", "api"),
    ("text", "object", "api"),
    ("truncation", "raw", "top"),
    ("conversation", "raw", "api"),
)
_API_KEYS = tuple(key for key, _, dest in _TOP_FIELDS if dest == "api")
_FIRST_CLASS = tuple(key for key, _, dest in _TOP_FIELDS if dest == "top" and key not in ("instructions", "model"))
# Stored untyped by the reference, so an explicit null survives decoding.
_UNTYPED = frozenset(("truncation", "conversation"))
_KNOWN_KEYS = frozenset(("input", "tool_choice", *(key for key, _, _ in _TOP_FIELDS)))
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")  # a tuple: roles may be unhashable JSON
_MESSAGE_KEYS = frozenset(("type", "role", "content"))
_RESPONSE_FIELDS = frozenset(
    ("id", "model", "output", "usage", "status", "incomplete_details", "reasoning", "store", "truncation",
     "previous_response_id", "service_tier")
)  # fmt: skip
_INCOMPLETE_REASONS: dict[str, str] = {"max_output_tokens": "length", "content_filter": "content_filter"}


class OpenAIResponsesCodec(BuiltinCodec):
    """Codec for OpenAI Responses API requests, responses and streamed response events."""

    __slots__ = ()

    _relay_builtin_id = "openai_responses"
    provider = "openai"
    _response_shape = _SHAPE
    _response_type = "struct RawResponsesResponse"

    def decode_parts(self, content: JsonObject, headers: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotation fields and ``extra`` (the unmapped body keys) of a Responses request body."""
        messages = _decode_input(content)
        return _assemble_request(content, messages, _read_fields(content))

    def encode_parts(
        self,
        annotation: JsonObject,
        extra: JsonObject,
        baseline: JsonObject,
        before_extra: JsonObject,
        content: JsonObject,
    ) -> JsonValue:
        """``content`` patched where the annotation's fields and ``extra`` differ from ``baseline``/``before_extra``."""
        new_api = check_api(annotation.get("api_specific"), PROVIDER, API)
        new_params, base_params = as_object(annotation.get("params")), as_object(baseline.get("params"))
        if new_params.get("stop") is not None:
            raise InvalidArgumentError(f"{API} does not support stop sequences")
        _patch_input(content, annotation, baseline)
        _patch_instructions(content, annotation, baseline)
        if changed(annotation, baseline, "model"):
            set_or_drop(content, "model", annotation.get("model"))
        _patch_params(content, annotation, baseline, new_params, base_params)
        patch_tools(content, annotation, baseline, _encode_tool)
        patch_tool_choice(content, annotation, baseline, PROVIDER, API, flat_function=True)
        for key in _FIRST_CLASS:
            if key != "max_output_tokens" and changed(annotation, baseline, key):
                set_or_drop(content, key, annotation.get(key))
        patch_exact(content, new_api, check_api(baseline.get("api_specific"), PROVIDER, API), _API_KEYS)
        patch_extra(content, extra, before_extra, json_equal)
        return content

    def decode_response_parts(self, response: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotated fields and the unknown top-level keys of a Responses ``response`` object."""
        return _decode_response(response)

    def stream_aggregator(self) -> ResponsesStreamAggregator:
        """A fresh aggregator folding streamed response events into the final ``response`` object."""
        return ResponsesStreamAggregator()


# --- request decode -------------------------------------------------------------------------------------


def _decode_input(content: JsonObject) -> list[JsonValue]:
    if "input" not in content:
        raise InvalidArgumentError(f"{API} request is missing input")
    raw = content["input"]
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{API} input must be a string or an array")
    return [_decode_item(item) for item in raw]


def _read_fields(content: JsonObject) -> dict[str, JsonValue]:
    reader = FieldReader(content, API)
    values: dict[str, JsonValue] = {}
    for key, kind, _ in _TOP_FIELDS:
        values[key] = read_tools(content, API, _decode_tool) if kind == "tools" else reader.read(key, kind)
    return values


def _decode_tool(tool: JsonValue) -> JsonValue:
    # A function tool is flat here; the Chat-style nested shape is accepted too.
    return decode_tool(tool, PROVIDER, API, flat_function=True)


def _assemble_request(
    content: JsonObject, messages: list[JsonValue], values: dict[str, JsonValue]
) -> tuple[JsonObject, JsonObject]:
    # (fields, extra): every unmapped body key is extra, also when named like an annotation field.
    out: JsonObject = {"messages": messages}
    for key in ("instructions", "model"):
        if values[key] is not None:
            out[key] = values[key]
    params = {key: values[key] for key in ("temperature", "top_p") if values[key] is not None}
    if values["max_output_tokens"] is not None:
        params["max_tokens"] = values["max_output_tokens"]  # the generic view of the same limit
    if params:
        out["params"] = params
    if values["tools"] is not None:
        out["tools"] = values["tools"]
    if "tool_choice" in content:
        out["tool_choice"] = decode_tool_choice(content["tool_choice"], PROVIDER, flat_function=True)
    for key in _FIRST_CLASS:
        if values[key] is not None or (key in _UNTYPED and key in content):
            out[key] = values[key]
    api_specific: JsonObject = {"api": PROVIDER}
    for key in _API_KEYS:
        if values[key] is not None or (key in _UNTYPED and key in content):
            api_specific[key] = values[key]
    out["api_specific"] = api_specific
    return out, {key: value for key, value in content.items() if key not in _KNOWN_KEYS}


def _decode_item(item: JsonValue) -> JsonValue:
    if not isinstance(item, dict):
        raise InvalidArgumentError(f"{API} input item must be an object")
    kind = item.get("type")
    if "role" in item or kind == "message":
        return _decode_message(item)
    if kind == "function_call":
        return _decode_function_call(item)
    if kind == "function_call_output":
        return _decode_function_output(item)
    return provider_native(PROVIDER, kind, item, "role")


def _decode_message(item: JsonObject) -> JsonValue:
    role = item.get("role")
    if role not in _MESSAGE_ROLES or not _MESSAGE_KEYS.issuperset(item):
        # Ids, statuses, names or unknown roles do not fit the view: keep the item whole.
        return provider_native(PROVIDER, "message", item, "role")
    if "content" not in item:
        raise InvalidArgumentError(f"{API} message is missing content")
    content = item["content"]
    if isinstance(content, list):
        return {"role": role, "content": [_decode_part(part) for part in content]}
    if not isinstance(content, str):
        raise InvalidArgumentError(f"{API} message content must be a string or array")
    return {"role": role, "content": content}


def _decode_part(part: JsonValue) -> JsonValue:
    if not isinstance(part, dict):
        raise InvalidArgumentError(f"{API} content part must be an object")
    kind = part.get("type")
    rest = {key: value for key, value in part.items() if key != "type"}
    if kind in ("input_text", "output_text"):
        if not isinstance(part.get("text"), str):
            raise InvalidArgumentError(f"{API} text part is missing text")
        return {"type": "text", **rest}
    if kind == "refusal":
        if not isinstance(part.get("refusal"), str):
            raise InvalidArgumentError(f"{API} refusal part is missing refusal")
        return {"type": "refusal", **rest}
    if kind == "input_image":
        return {"type": "image", "image": rest}
    if kind == "input_file":
        return {"type": "file", "file": rest}
    return provider_native(PROVIDER, kind, part, "type")


def _decode_function_call(item: JsonObject) -> JsonObject:
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str):
            raise InvalidArgumentError(f"{API} function_call is missing {key}")
    out: JsonObject = {"role": "tool_call"}
    _copy_item_id(item, out, "function_call")
    out.update(call_id=item["call_id"], name=item["name"], arguments=parse_arguments(str(item["arguments"])))
    out.update(_item_extra(item, ("type", "id", "call_id", "name", "arguments")))
    return out


def _decode_function_output(item: JsonObject) -> JsonObject:
    if not isinstance(item.get("call_id"), str):
        raise InvalidArgumentError(f"{API} function_call_output is missing call_id")
    if "output" not in item:
        raise InvalidArgumentError(f"{API} function_call_output is missing output")
    out: JsonObject = {"role": "tool_result"}
    _copy_item_id(item, out, "function_call_output")
    out.update(call_id=item["call_id"], output=item["output"])
    out.update(_item_extra(item, ("type", "id", "call_id", "output")))
    return out


def _copy_item_id(item: JsonObject, out: JsonObject, kind: str) -> None:
    item_id = item.get("id")
    if item_id is not None and not isinstance(item_id, str):
        raise InvalidArgumentError(f"{API} {kind} id must be a string or null")
    if item_id is not None:
        out["id"] = item_id


def _item_extra(item: JsonObject, owned: tuple[str, ...]) -> JsonObject:
    return {key: value for key, value in item.items() if key not in owned}


# --- request encode -------------------------------------------------------------------------------------


def _patch_input(content: JsonObject, annotation: JsonObject, baseline: JsonObject) -> None:
    new, base = as_list(annotation.get("messages")), as_list(baseline.get("messages"))
    if json_equal(new, base):
        return
    original = content.get("input")
    if isinstance(original, list):
        content["input"] = patch_array(original, base, new, _encode_item)
    elif _single_user_text(new):
        content["input"] = new[0]["content"]  # type: ignore[index,call-overload]  # string input stays a string
    else:
        content["input"] = [_encode_item(message, None) for message in new]


def _single_user_text(messages: list[JsonValue]) -> bool:
    if len(messages) != 1 or not isinstance(messages[0], dict):
        return False
    return messages[0].get("role") == "user" and isinstance(messages[0].get("content"), str)


def _encode_item(message: JsonValue, original: JsonValue) -> JsonValue:
    if not isinstance(message, dict):
        return message
    role = message.get("role")
    if role in _MESSAGE_ROLES and (role != "assistant" or message.get("content") is not None):
        # Assistant tool_calls and names have no place in a Responses message item.
        return {"type": "message", "role": role, "content": _encode_content(message.get("content"), str(role))}
    if role == "tool_call":
        return _encode_function_call(message)
    if role == "tool_result":
        out: JsonObject = {"type": "function_call_output"}
        if message.get("id") is not None:
            out["id"] = message["id"]
        out.update(call_id=message.get("call_id"), output=message.get("output"))
        out.update(_item_extra(message, ("role", "id", "call_id", "output")))
        return out
    if role == "provider_native" and message.get("provider") == PROVIDER:
        return message.get("value")
    raise cannot_encode("message", TEXT.message(message), API)


def _encode_function_call(message: JsonObject) -> JsonObject:
    out: JsonObject = {"type": "function_call"}
    if message.get("id") is not None:
        out["id"] = message["id"]
    out.update(
        call_id=message.get("call_id"), name=message.get("name"), arguments=dump_arguments(message.get("arguments"))
    )
    out.update(_item_extra(message, ("role", "id", "call_id", "name", "arguments")))
    return out


def _encode_content(content: JsonValue, role: str) -> JsonValue:
    if isinstance(content, list):
        return [_encode_part(part, role) for part in content]
    return content


def _encode_part(part: JsonValue, role: str) -> JsonValue:
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind == "text":
        rest = _item_extra(part, ("type", "text"))
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part.get("text"), **rest}
    if kind == "refusal" and role == "assistant":
        return {"type": "refusal", "refusal": part.get("refusal"), **_item_extra(part, ("type", "refusal"))}
    if kind in ("image", "file"):
        return _encode_media(part, str(kind))
    if kind == "image_url":
        image = part.get("image_url")
        image = image if isinstance(image, dict) else {}
        fields = {key: image[key] for key in ("detail",) if image.get(key) is not None}
        return {
            "type": "input_image",
            "image_url": image.get("url"),
            **fields,
            **_item_extra(part, ("type", "image_url")),
        }
    if kind == "provider_native" and part.get("provider") == PROVIDER:
        return part.get("value")
    raise cannot_encode("content part", TEXT.part(part), API)


def _encode_media(part: JsonObject, kind: str) -> JsonObject:
    body = part.get(kind)
    if not isinstance(body, dict):
        raise InvalidArgumentError(f"{API} {kind} content must be an object")
    fields = {key: value for key, value in body.items() if key != "type"}
    return {"type": f"input_{kind}", **fields, **_item_extra(part, ("type", kind))}


def _patch_instructions(content: JsonObject, annotation: JsonObject, baseline: JsonObject) -> None:
    if not changed(annotation, baseline, "instructions"):
        return
    instructions = annotation.get("instructions")
    if isinstance(instructions, list):
        raise InvalidArgumentError(f"{API} instructions cannot contain content parts")
    set_or_drop(content, "instructions", instructions)


def _patch_params(
    content: JsonObject, annotation: JsonObject, baseline: JsonObject, new: JsonObject, base: JsonObject
) -> None:
    patch_sampling(content, new, base)
    # The limit appears twice in the view; the dedicated field wins over ``params.max_tokens``.
    if changed(annotation, baseline, "max_output_tokens"):
        set_or_drop(content, "max_output_tokens", annotation.get("max_output_tokens"))
    elif changed(new, base, "max_tokens"):
        set_or_drop(content, "max_output_tokens", new.get("max_tokens"))


def _encode_tool(tool: JsonValue, original: JsonValue) -> JsonValue:
    # Flat, unless the caller nested the original's definition Chat-style: follow its shape.
    nested = isinstance(original, dict) and isinstance(original.get("function"), dict)
    return encode_tool(tool, PROVIDER, API, nested=nested)


# --- response decode ------------------------------------------------------------------------------------


def _decode_response(response: JsonObject) -> tuple[JsonObject, JsonObject]:
    shape = _SHAPE
    out: JsonObject = {}
    shape.copy_strings(response, ("id", "model"), out)
    status = shape.string(response.get("status"))
    output = shape.sequence(response.get("output"))
    usage = shape.struct(response.get("usage"), "RawResponsesUsage")
    api_specific: JsonObject = {"api": PROVIDER}
    if output is not None:
        api_specific["output_items"] = output
        _decode_output(output, out)
    if "message" not in out and isinstance(response.get("output_text"), str) and response["output_text"]:
        out["message"] = response["output_text"]  # the SDKs' convenience text, used when the items carry none
    reason = _finish_reason(status, response.get("incomplete_details"))
    if reason is not None:
        out["finish_reason"] = reason
    if usage is not None:
        out["usage"] = _decode_usage(usage, shape, api_specific)
    _response_api_fields(response, shape, status, api_specific)
    out["api_specific"] = api_specific
    return out, {key: value for key, value in response.items() if key not in _RESPONSE_FIELDS}


def _decode_output(output: list[JsonValue], out: JsonObject) -> None:
    texts: list[str] = []
    calls: list[JsonValue] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            texts.extend(_output_texts(item.get("content")))
        elif item.get("type") == "function_call":
            name = item.get("name")
            calls.append(
                decoded_tool_call(item.get("call_id"), name if isinstance(name, str) else "", item.get("arguments"))
            )
    if texts:
        out["message"] = "\n".join(texts)
    if calls:
        out["tool_calls"] = calls


def _output_texts(content: JsonValue) -> list[str]:
    if not isinstance(content, list):
        return []
    texts: list[str] = []
    for part in content:
        text = part.get("text") if isinstance(part, dict) and part.get("type") == "output_text" else None
        if isinstance(text, str):
            texts.append(text)
    return texts


def _finish_reason(status: str | None, details: JsonValue) -> JsonValue:
    if status is None:
        return None
    if status == "completed":
        return "complete"
    if status != "incomplete":
        return unknown_reason(status)
    reason = details.get("reason") if isinstance(details, dict) else None
    if not isinstance(reason, str):
        return unknown_reason(status)
    return _INCOMPLETE_REASONS.get(reason) or unknown_reason(reason)


def _decode_usage(usage: JsonObject, shape: ResponseShape, api_specific: JsonObject) -> JsonObject:
    prompt, completion, total = (shape.u64(usage.get(key)) for key in ("input_tokens", "output_tokens", "total_tokens"))
    cached = _token_details(usage, "input_tokens_details", "cached_tokens", shape, api_specific)
    _token_details(usage, "output_tokens_details", "reasoning_tokens", shape, api_specific)
    cost = reported_cost(usage, shape, allow_number=False)
    return usage_json(prompt, completion, total, cache_read=cached, cost=cost)


def _token_details(
    usage: JsonObject, key: str, count_key: str, shape: ResponseShape, api_specific: JsonObject
) -> int | None:
    struct = "RawInputTokensDetails" if key == "input_tokens_details" else "RawOutputTokensDetails"
    details = shape.struct(usage.get(key), struct)
    if details is None:
        return None
    count = shape.u64(details.get(count_key))
    kept = {k: v for k, v in details.items() if k != count_key}
    api_specific[key] = {count_key: count, **kept} if count is not None else kept
    return count


def _response_api_fields(
    response: JsonObject, shape: ResponseShape, status: str | None, api_specific: JsonObject
) -> None:
    store = shape.boolean(response.get("store"))
    strings = {key: shape.string(response.get(key)) for key in ("previous_response_id", "service_tier")}
    fields: JsonObject = {
        "status": status,
        "incomplete_details": response.get("incomplete_details"),
        "reasoning": response.get("reasoning"),
        "store": store,
        "truncation": response.get("truncation"),
        **strings,
    }
    api_specific.update({key: value for key, value in fields.items() if value is not None})


# --- streaming ------------------------------------------------------------------------------------------

_SNAPSHOT_EVENTS = frozenset(
    ("response.created", "response.in_progress", "response.queued", "response.completed", "response.incomplete",
     "response.failed")
)  # fmt: skip
_TERMINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))
_MAX_PART_GAP = 64  # content parts a stream may skip before a part event (see ``_add_part_event``)


class ResponsesStreamAggregator:
    """Folds streamed Responses events into the final ``response`` object.

    Response snapshots (``response.created`` ... ``response.completed``) give the envelope and, at the
    end, the authoritative output and usage. Output items are also assembled from their own events
    (``output_item.added``/``done``, text, refusal and function-argument deltas) so a stream cut short,
    or a terminal event without output, still yields what was produced. Events after the terminal one
    are ignored, as are non-object chunks.
    """

    __slots__ = ("_done", "_items", "_response")

    def __init__(self) -> None:
        self._response: JsonObject = {}
        self._items: dict[int, JsonObject] = {}
        self._done = False

    def add(self, event: JsonValue) -> None:
        """Fold one streamed event."""
        if self._done or not isinstance(event, dict):
            return
        kind = event.get("type")
        if not isinstance(kind, str):  # (any JSON value: a list would not even hash)
            if kind is None and event.get("object") == "response":
                self._response = dict(event)  # a whole response object passed through
            return
        snapshot = event.get("response")
        if kind in _SNAPSHOT_EVENTS and isinstance(snapshot, dict):
            self._response = dict(snapshot)
            self._done = kind in _TERMINAL_EVENTS
        else:
            self._add_item_event(kind, event)

    def _add_item_event(self, kind: str, event: JsonObject) -> None:
        index = event.get("output_index")
        if not isinstance(index, int):
            return
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = event.get("item")
            if isinstance(item, dict):
                self._items[index] = dict(item)
            return
        item = self._items.setdefault(index, {})
        if kind == "response.function_call_arguments.delta":
            _append(item, "arguments", event.get("delta"))
        elif kind == "response.function_call_arguments.done" and isinstance(event.get("arguments"), str):
            item["arguments"] = event["arguments"]
        else:
            self._add_part_event(kind, event, item)

    def _add_part_event(self, kind: str, event: JsonObject, item: JsonObject) -> None:
        position = event.get("content_index")
        content = item.get("content")
        known = len(content) if isinstance(content, list) else 0
        # Parts missed in between (dropped events) become empty placeholders; a position further out than
        # any stream could skip, or a negative one, is ignored rather than allocating without bound.
        if not isinstance(position, int) or not 0 <= position <= known + _MAX_PART_GAP:
            return
        if not isinstance(content, list):
            content = item["content"] = []
        while len(content) <= position:
            content.append({})
        part = content[position]
        if not isinstance(part, dict):
            return
        if kind in ("response.content_part.added", "response.content_part.done") and isinstance(
            event.get("part"), dict
        ):
            content[position] = dict(event["part"])  # type: ignore[arg-type]
        elif kind == "response.output_text.delta":
            part.setdefault("type", "output_text")
            _append(part, "text", event.get("delta"))
        elif kind == "response.output_text.done" and isinstance(event.get("text"), str):
            part["text"] = event["text"]
        elif kind == "response.refusal.delta":
            part.setdefault("type", "refusal")
            _append(part, "refusal", event.get("delta"))
        elif kind == "response.refusal.done" and isinstance(event.get("refusal"), str):
            part["refusal"] = event["refusal"]

    def result(self) -> JsonObject:
        """The aggregated ``response`` object, as the non-streamed API would return it."""
        out = dict(self._response)
        if self._items and not out.get("output"):
            out["output"] = [self._items[i] for i in sorted(self._items)]
        return out


def _append(target: JsonObject, key: str, fragment: JsonValue) -> None:
    if isinstance(fragment, str):
        current = target.get(key)
        target[key] = (current if isinstance(current, str) else "") + fragment
