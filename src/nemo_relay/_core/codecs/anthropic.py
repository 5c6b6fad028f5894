"""The built-in Anthropic Messages codec (``POST /v1/messages``).

Request side: ``system`` becomes ``instructions``; ``max_tokens``/``temperature``/``top_p``/``stop_sequences``
become ``params``; ``top_k``, ``thinking`` and the other Anthropic-only knobs go to ``api_specific``; content
blocks map to annotation parts (``image``/``document`` keep their payload under ``image``/``file``), and every
block, tool or message the annotation cannot express travels as a ``provider_native`` component tagged
``anthropic_messages``. Encoding patches the original body field by field, so untouched bytes stay put;
message, tool and block arrays are patched by value identity (see ``patch_array``).

Response side: text blocks join into ``message``, ``tool_use`` blocks become ``tool_calls``, and ``usage``
follows the package's one usage convention (see ``nemo_relay.codecs``): ``prompt_tokens`` counts every input
token, cached included. Anthropic's ``input_tokens`` excludes cache reads and writes, so they are added back
(``input + cache_read + cache_write``) and also reported on their own as ``cache_read_tokens`` and
``cache_write_tokens``. The reference keeps Anthropic's raw ``input_tokens`` here instead.
"""

from __future__ import annotations

from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.codecs.common import (
    FieldReader,
    ResponseShape,
    as_object,
    check_api,
    copy_object,
    cost_breakdown,
    loads,
    match_by_value,
    multiple_edits_error,
    objects,
    param_value,
    patch_extra,
    provider_native,
    same_json,
    set_or_drop,
    usage_json,
)
from nemo_relay._core.codecs.rustfmt import RustText, control_str, float_debug, json_str
from nemo_relay._core.errors import InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from nemo_relay._core.types import JsonObject, JsonValue

__all__ = ["AnthropicMessagesCodec", "AnthropicStreamAggregator"]

API = "anthropic_messages"
_LABEL = "Anthropic Messages"
# Error texts: serde fragments quote strings as JSON; Debug output escapes only control characters.
_SERDE = RustText(json_str, float_debug)
_SHAPE = ResponseShape(_LABEL, _SERDE)
_DEBUG = RustText(control_str, float_debug)

# Annotation fields an Anthropic body has no place for: they must stay absent (or come from body `extra`).
_FOREIGN_FIELDS = (
    "store",
    "previous_response_id",
    "truncation",
    "reasoning",
    "include",
    "user",
    "max_output_tokens",
    "max_tool_calls",
    "top_logprobs",
)
# Body keys the codec maps; the rest of the body is `extra`.
_KNOWN_BODY_KEYS = frozenset(
    (
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "service_tier",
        "thinking",
        "cache_control",
        "container",
        "inference_geo",
        "output_config",
        "anthropic-user-profile-id",
        "tools",
        "tool_choice",
    )
)
# api_specific key -> body key.
_API_KEYS = {
    "cache_control": "cache_control",
    "container": "container",
    "inference_geo": "inference_geo",
    "output_config": "output_config",
    "thinking": "thinking",
    "top_k": "top_k",
    "user_profile_id": "anthropic-user-profile-id",
}
# Optional Anthropic-only body fields: (body key, expected kind, api_specific key); top_k is handled apart.
_API_FIELDS = (
    ("thinking", "object", "thinking"),
    ("cache_control", "object", "cache_control"),
    ("container", "string", "container"),
    ("inference_geo", "string", "inference_geo"),
    ("output_config", "object", "output_config"),
    ("anthropic-user-profile-id", "string", "user_profile_id"),
)
_MESSAGE_ROLES = ("user", "assistant", "system")
_FINISH_REASONS = {"end_turn": "complete", "max_tokens": "length", "tool_use": "tool_use"}


class AnthropicMessagesCodec(BuiltinCodec):
    """Request and response codec for the Anthropic Messages API."""

    __slots__ = ()

    _relay_builtin_id = "anthropic_messages"
    provider = API
    _response_shape = _SHAPE
    _response_type = "struct RawAnthropicResponse"

    def decode_parts(self, content: JsonObject, headers: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotation fields and ``extra`` of an Anthropic Messages request body (``headers`` are not consulted)."""
        return decode_request(content)

    def encode_parts(
        self,
        fields: JsonObject,
        extra: JsonObject,
        before_fields: JsonObject,
        before_extra: JsonObject,
        content: JsonObject,
    ) -> JsonValue:
        """``content`` patched wherever the annotation differs from the decode of ``content``."""
        return encode_request(fields, extra, before_fields, before_extra, content)

    def decode_response_parts(self, response: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotated fields and the unknown top-level keys of an Anthropic Messages response body."""
        return decode_response(response)

    def stream_aggregator(self) -> AnthropicStreamAggregator:
        """A fresh aggregator folding Messages streaming events into the final message body."""
        return AnthropicStreamAggregator()


# ======================================================================================================
# Request decoding
# ======================================================================================================


def _invalid(detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{_LABEL} {detail}")


def decode_request(content: JsonObject) -> tuple[JsonObject, JsonObject]:
    """The annotation fields and ``extra`` (the unmapped body keys) of an Anthropic Messages request body."""
    if "messages" not in content:
        raise _invalid("request is missing messages")
    raw_messages = content["messages"]
    if type(raw_messages) is not list:
        raise _invalid("messages must be an array")
    roles = _MESSAGE_ROLES
    messages: list[JsonValue] = [
        # A plain text turn is already in normal form: shared as is (neither the request body nor the view
        # ever changes a value in place), and checked inline, one call less per message.
        m
        if type(m) is dict
        and len(m) == 2
        and type(m.get("content")) is str
        and type(role := m.get("role")) is str
        and role in roles
        else _decode_message(m)
        for m in raw_messages
    ]
    out: JsonObject = {"messages": messages}
    if "system" in content:
        out["instructions"] = _decode_content(content["system"])
    _decode_scalars(content, out)
    if "tools" in content:
        tools = content["tools"]
        if type(tools) is not list:
            raise _invalid("tools must be an array")
        out["tools"] = [_decode_tool(t) for t in tools]
    if "tool_choice" in content:
        _decode_tool_choice(content["tool_choice"], out)
    # Unknown body keys ride along as `extra`, also when named like an annotation field.
    extra = {key: copy_json(value) for key, value in content.items() if key not in _KNOWN_BODY_KEYS}
    return out, extra


def _decode_scalars(content: JsonObject, out: JsonObject) -> None:
    fields = FieldReader(content, _LABEL)
    model = fields.string("model")
    if model is not None:
        out["model"] = model
    params: JsonObject = {}
    max_tokens = fields.uint("max_tokens")
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        number = fields.number(key)
        if number is not None:
            params[key] = number
    stop = _decode_stop_sequences(content.get("stop_sequences"))
    if stop is not None:
        params["stop"] = stop
    if params:
        out["params"] = params
    api: JsonObject = {"api": API}
    top_k = fields.uint("top_k")
    stream = fields.boolean("stream")
    metadata = fields.object("metadata")
    service_tier = fields.string("service_tier")
    for key, kind, api_key in _API_FIELDS:
        if content.get(key) is not None:  # absent or null reads as unset: nothing to check (the usual case)
            api[api_key] = copy_json(fields.read(key, kind))
    if top_k is not None:
        api["top_k"] = top_k
    out["api_specific"] = api
    for key, value in (("stream", stream), ("metadata", metadata), ("service_tier", service_tier)):
        if value is not None:
            out[key] = copy_json(value)


def _decode_stop_sequences(value: JsonValue) -> JsonValue:
    if value is None:
        return None
    prefix = "invalid Anthropic stop_sequences value: "
    if type(value) is not list:
        raise InvalidArgumentError(prefix + _SERDE.error(value, "a sequence"))
    for item in value:
        if type(item) is not str:
            raise InvalidArgumentError(prefix + _SERDE.error(item, "a string"))
    return list(value)


def _decode_message(message: JsonValue) -> JsonObject:
    if type(message) is not dict:
        raise _invalid("message must be an object")
    role = message.get("role")
    if type(role) is not str:
        raise _invalid("message is missing role")
    if "content" not in message:
        raise _invalid("message is missing content")
    if len(message) != 2:
        # Keys beside role and content have no annotation slot: the whole message travels natively.
        return provider_native(API, role, copy_json(message), "role")
    content = _decode_content(message["content"])
    if role not in _MESSAGE_ROLES:
        return provider_native(API, role, copy_json(message), "role")
    return {"role": role, "content": content}


def _decode_content(content: JsonValue) -> JsonValue:
    if type(content) is str:
        return content
    if type(content) is not list:
        raise _invalid("content must be a string or an array")
    return [_decode_block(block) for block in content]


def _decode_block(block: JsonValue) -> JsonObject:
    if type(block) is not dict:
        raise _invalid("content block must be an object")
    kind = block.get("type")
    if kind == "text":
        if type(block.get("text")) is not str:
            raise InvalidArgumentError("Anthropic text block is missing text")
        return copy_object(block)
    if kind in ("image", "document"):
        payload = {k: copy_json(v) for k, v in block.items() if k != "type"}
        slot = "image" if kind == "image" else "file"
        return {"type": slot, slot: payload}
    if kind == "tool_use":
        _check_tool_use(block)
        return copy_object(block)
    if kind == "tool_result":
        _check_tool_result(block)
        part = copy_object(block)
        if part.get("is_error", False) is None:
            del part["is_error"]  # a null flag is the same as none in the annotation
        return part
    return provider_native(API, kind, copy_json(block), "type")


def _check_tool_use(block: JsonObject) -> None:
    for key in ("id", "name"):
        if type(block.get(key)) is not str:
            raise InvalidArgumentError(f"Anthropic tool_use block is missing {key}")
    if "input" not in block:
        raise InvalidArgumentError("Anthropic tool_use block is missing input")


def _check_tool_result(block: JsonObject) -> None:
    if type(block.get("tool_use_id")) is not str:
        raise InvalidArgumentError("Anthropic tool_result block is missing tool_use_id")
    if "content" not in block:
        raise InvalidArgumentError("Anthropic tool_result block is missing content")
    if block.get("is_error") is not None and type(block["is_error"]) is not bool:
        raise InvalidArgumentError("Anthropic tool_result is_error must be a boolean")


def _decode_tool(tool: JsonValue) -> JsonObject:
    if type(tool) is not dict:
        raise _invalid("tool must be an object")
    if "type" in tool:
        kind = tool["type"]
        return provider_native(API, kind, copy_json(tool), "type")
    for key, wording in (("name", "a string"), ("description", "a string"), ("strict", "a boolean")):
        value = tool.get(key)
        ok = value is None or (type(value) is bool if key == "strict" else type(value) is str)
        if not ok:
            raise _invalid(f"tool {key} must be {wording} or null")
    if type(tool.get("name")) is not str or "input_schema" not in tool:
        return provider_native(API, "unknown", copy_json(tool), "type")
    function: JsonObject = {"name": tool["name"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = copy_json(tool["input_schema"])
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    extra = {k: copy_json(v) for k, v in tool.items() if k not in ("name", "description", "input_schema", "strict")}
    return {"type": "function", "function": function, **extra}


def _decode_tool_choice(choice: JsonValue, out: JsonObject) -> None:
    if type(choice) is not dict or type(choice.get("type")) is not str:
        out["tool_choice"] = provider_native(API, "unknown", copy_json(choice))
        return
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None:
        if type(disable) is not bool:
            raise _invalid("tool_choice disable_parallel_tool_use must be a boolean or null")
        out["parallel_tool_calls"] = not disable
    kind = str(choice["type"])
    modes = {"auto": "auto", "any": "required", "none": "none"}
    if kind in modes:
        out["tool_choice"] = modes[kind]
    elif kind == "tool" and type(choice.get("name")) is str:
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        out["tool_choice"] = provider_native(API, kind, copy_json(choice))


# ======================================================================================================
# Request encoding
# ======================================================================================================


def encode_request(
    annotation: JsonObject, extra: JsonObject, baseline: JsonObject, before_extra: JsonObject, content: JsonObject
) -> JsonObject:
    """``content`` patched wherever the annotation's fields and ``extra`` differ from ``baseline`` and
    ``before_extra`` (the decode of ``content``)."""
    api = check_api(annotation.get("api_specific"), API, _LABEL)
    if any(annotation.get(name) is not None for name in _FOREIGN_FIELDS):
        raise InvalidArgumentError(f"request contains fields that cannot be encoded for {_LABEL}")
    if _changed(annotation, baseline, "model"):
        set_or_drop(content, "model", annotation.get("model"))
    _patch_params(annotation.get("params"), baseline.get("params"), content)
    if _changed(annotation, baseline, "instructions"):
        system = annotation.get("instructions")
        set_or_drop(content, "system", None if system is None else _encode_content(system))
    if _changed(annotation, baseline, "messages"):
        content["messages"] = _encode_messages(annotation, baseline, content)
    if _changed(annotation, baseline, "tools"):
        _patch_tools(annotation, baseline, content)
    _patch_tool_choice(annotation, baseline, content)
    for key in ("metadata", "stream", "service_tier"):
        if _changed(annotation, baseline, key):
            set_or_drop(content, key, copy_json(annotation.get(key)))
    _patch_api_specific(api, baseline.get("api_specific"), content)
    patch_extra(content, extra, before_extra, same_json)
    return content


def _changed(annotation: JsonObject, baseline: JsonObject, key: str) -> bool:
    return not same_json(annotation.get(key), baseline.get(key))


def _patch_params(new: JsonValue, old: JsonValue, content: JsonObject) -> None:
    new_params: JsonObject = new if type(new) is dict else {}
    old_params: JsonObject = old if type(old) is dict else {}
    for key, body_key in (
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop", "stop_sequences"),
    ):
        value = new_params.get(key)
        if not same_json(value, old_params.get(key)):
            set_or_drop(content, body_key, param_value(key, value))


def patch_array(
    new: list[JsonObject],
    old: list[JsonObject],
    raw: list[JsonValue],
    encode: Callable[[JsonObject], JsonValue],
    paired: Callable[[JsonObject, JsonObject], None] | None = None,
) -> list[JsonValue]:
    """An edited array: items equal to a baseline item keep that item's original bytes, the rest are encoded.

    Equality is the only identity array items have, so an edit that leaves two or more new items *and* two
    or more baseline items unmatched cannot tell which original each replaces: that is refused. A lone
    replacement (one unmatched on each side) is handed to ``paired`` for nested checks.
    """
    matches, removed = match_by_value(new, old, same_json)
    added = [k for k, found in enumerate(matches) if found is None]
    if len(added) > 1 and len(removed) > 1:
        raise multiple_edits_error()
    if paired is not None and len(added) == 1 and len(removed) == 1:
        paired(new[added[0]], old[removed[0]])
    return [raw[m] if m is not None and m < len(raw) else encode(item) for item, m in zip(new, matches, strict=True)]


def _encode_messages(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> list[JsonValue]:
    raw = content.get("messages")
    return patch_array(
        objects(annotation.get("messages")),
        objects(baseline.get("messages")),
        raw if type(raw) is list else [],
        _encode_message,
        _check_paired_message,
    )


def _check_paired_message(new: JsonObject, old: JsonObject) -> None:
    # A message edited in place has its block list patched the same way (blocks have no identity either).
    new_content, old_content = new.get("content"), old.get("content")
    if type(new_content) is list and type(old_content) is list:
        patch_array(objects(new_content), objects(old_content), [], lambda part: None)


def _encode_message(message: JsonObject) -> JsonValue:
    role = message.get("role")
    if role == "provider_native" and message.get("provider") == API:
        return copy_json(message.get("value"))
    if role not in _MESSAGE_ROLES:
        raise InvalidArgumentError(f"message {_DEBUG.message(message)} cannot be encoded for {_LABEL}")
    content = message.get("content")
    # Anthropic has no `name` and carries tool calls as blocks; an absent body becomes an empty block list.
    return {"role": role, "content": [] if content is None else _encode_content(content)}


def _encode_content(content: JsonValue) -> JsonValue:
    if type(content) is list:
        return [_encode_part(part) for part in objects(content)]
    return copy_json(content)


def _encode_part(part: JsonObject) -> JsonValue:
    kind = part.get("type")
    if kind in ("text", "tool_use", "tool_result"):
        return copy_json(part)
    if kind in ("image", "file"):
        slot = str(kind)
        payload = part.get(slot)
        if type(payload) is not dict:
            noun = "image" if slot == "image" else "document"
            raise InvalidArgumentError(f"Anthropic {noun} payload must be an object")
        block: JsonObject = {"type": "image" if slot == "image" else "document"}
        block.update(copy_object(payload))
        block.update({k: copy_json(v) for k, v in part.items() if k not in ("type", slot)})
        return block
    if kind == "provider_native" and part.get("provider") == API:
        return copy_json(part.get("value"))
    raise InvalidArgumentError(f"content part {_DEBUG.part(part)} cannot be encoded for {_LABEL}")


def _patch_tools(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    new = annotation.get("tools")
    if new is None:
        content.pop("tools", None)
        return
    raw = content.get("tools")
    content["tools"] = patch_array(
        objects(new), objects(baseline.get("tools")), raw if type(raw) is list else [], _encode_tool
    )


def _encode_tool(tool: JsonObject) -> JsonValue:
    if tool.get("type") == "provider_native":
        if tool.get("provider") == API:
            return copy_json(tool.get("value"))
        raise InvalidArgumentError(f"tool {_DEBUG.native(tool)} cannot be encoded for {_LABEL}")
    function = as_object(tool.get("function"))
    out: JsonObject = {"name": copy_json(function.get("name"))}
    if function.get("description") is not None:
        out["description"] = function["description"]
    if "parameters" in function:
        out["input_schema"] = copy_json(function["parameters"])
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    known = ("name", "description", "parameters", "strict")
    out.update({k: copy_json(v) for k, v in function.items() if k not in known})
    out.update({k: copy_json(v) for k, v in tool.items() if k not in ("type", "function")})
    return out


def _patch_tool_choice(annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> None:
    choice = annotation.get("tool_choice")
    parallel = annotation.get("parallel_tool_calls")
    if not _changed(annotation, baseline, "tool_choice"):
        if not _changed(annotation, baseline, "parallel_tool_calls"):
            return
        raw = content.get("tool_choice")
        if type(raw) is dict:
            # Only the parallelism flag moved: touch just that key of the original directive.
            set_or_drop(raw, "disable_parallel_tool_use", None if parallel is None else not parallel)
            return
        if "tool_choice" in content:
            return
    if choice is None and parallel is None:
        content.pop("tool_choice", None)
        return
    encoded = _encode_tool_choice(choice)
    if parallel is not None and type(encoded) is dict:
        encoded["disable_parallel_tool_use"] = not parallel
    content["tool_choice"] = encoded


def _encode_tool_choice(choice: JsonValue) -> JsonValue:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if type(choice) is dict and "function" in choice:
        function = as_object(choice["function"])
        return {"type": "tool", "name": copy_json(function.get("name"))}
    if type(choice) is dict and choice.get("provider") == API:
        return copy_json(choice.get("value"))
    provider = choice.get("provider") if type(choice) is dict else choice
    raise InvalidArgumentError(f"tool choice for {provider} cannot be encoded for {_LABEL}")


def _patch_api_specific(new: JsonValue, old: JsonValue, content: JsonObject) -> None:
    new_api: JsonObject = new if type(new) is dict else {}
    old_api: JsonObject = old if type(old) is dict else {}
    for key, body_key in _API_KEYS.items():
        value = new_api.get(key)
        if not same_json(value, old_api.get(key)):
            set_or_drop(content, body_key, copy_json(value))


# ======================================================================================================
# Response decoding
# ======================================================================================================


def decode_response(response: JsonObject) -> tuple[JsonObject, JsonObject]:
    """The annotated fields and the unknown top-level keys (``extra``) of an Anthropic Messages response body."""
    out: JsonObject = {}
    api: JsonObject = {"api": API}
    _SHAPE.copy_strings(response, ("id", "model"), out)
    for body_key, api_key in (
        ("type", "object_type"),
        ("role", "role"),
        ("stop_reason", "stop_reason"),
        ("stop_sequence", "stop_sequence"),
        ("service_tier", "service_tier"),
    ):
        value = _SHAPE.string(response.get(body_key))
        if value is not None:
            api[api_key] = value
    if response.get("container") is not None:
        api["container"] = copy_json(response["container"])
    blocks = response.get("content")
    if blocks is not None:
        if type(blocks) is not list:
            _SHAPE.mismatch(blocks, "a sequence")
        api["content_blocks"] = copy_json(blocks)
        _decode_response_blocks(blocks, out)
    stop_reason = api.get("stop_reason")
    if stop_reason is not None:
        out["finish_reason"] = _FINISH_REASONS.get(str(stop_reason)) or {"unknown": stop_reason}
    usage = response.get("usage")
    if usage is not None:
        out["usage"] = _decode_usage(usage)
    out["api_specific"] = api
    known = ("id", "model", "type", "role", "stop_reason", "stop_sequence", "service_tier", "container", "content")
    extra = {key: copy_json(item) for key, item in response.items() if key not in known and key != "usage"}
    return out, extra


def _decode_response_blocks(blocks: list[JsonValue], out: JsonObject) -> None:
    texts: list[str] = []
    calls: list[JsonValue] = []
    for block in blocks:
        if type(block) is not dict:
            continue
        if block.get("type") == "text" and type(block.get("text")) is str:
            texts.append(str(block["text"]))
        elif (
            block.get("type") == "tool_use"
            and type(block.get("id")) is str
            and type(block.get("name")) is str
            and "input" in block
        ):
            calls.append({"id": block["id"], "name": block["name"], "arguments": copy_json(block["input"])})
    if texts:
        out["message"] = "\n".join(texts)
    if calls:
        out["tool_calls"] = calls


def _decode_usage(usage: JsonValue) -> JsonObject:
    if type(usage) is not dict:
        _SHAPE.mismatch(usage, "struct RawAnthropicUsage")
    prompt, completion, cache_read, cache_write = (
        _SHAPE.u64(usage.get(key))
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    if prompt is not None:
        # One convention for every provider: prompt tokens include cached ones (Anthropic reports them apart).
        prompt += (cache_read or 0) + (cache_write or 0)
    total = prompt + completion if prompt is not None and completion is not None else None
    cost = _usage_cost(usage.get("cost_usd"), usage.get("cost"))
    return usage_json(prompt, completion, total, cache_read=cache_read, cache_write=cache_write, cost=cost)


def _usage_cost(cost_usd: JsonValue, cost: JsonValue) -> JsonObject | None:
    """Provider-reported cost: ``cost_usd`` (a number, USD) wins for the total; ``cost`` may break it down."""
    total = _SHAPE.f64(cost_usd)
    if cost is None:
        return None if total is None else {"total": total, "currency": "USD", "source": "provider_reported"}
    if type(cost) is not dict:
        _SHAPE.mismatch(cost, "struct RawUsageCost")
    reported, amounts, labels = cost_breakdown(cost, _SHAPE)
    if total is None:
        total = reported
    if total is None:
        return None
    currency = labels.pop("currency", "USD")
    return {"total": total, "currency": currency, **amounts, **labels, "source": "provider_reported"}


# ======================================================================================================
# Streaming
# ======================================================================================================


class AnthropicStreamAggregator:
    """Folds Messages streaming events into the body a non-streamed call would have returned.

    ``message_start`` seeds the message, ``content_block_*`` events build the blocks (text, thinking and
    signature deltas append; ``input_json_delta`` fragments are parsed into ``input`` when the block stops),
    and ``message_delta`` sets the stop reason and updates ``usage``. An ``error`` event becomes the result.
    """

    __slots__ = ("_message", "_blocks", "_partial", "_error")

    def __init__(self) -> None:
        self._message: JsonObject = {}
        self._blocks: dict[int, JsonObject] = {}
        self._partial: dict[int, list[str]] = {}
        self._error: JsonObject | None = None

    def add(self, chunk: JsonValue) -> None:
        """Fold one streamed event into the message."""
        if type(chunk) is not dict:
            raise InvalidArgumentError(f"{_LABEL} stream event must be a JSON object")
        kind = chunk.get("type")
        if kind == "message_start":
            self._start(chunk.get("message"))
        elif kind == "content_block_start":
            block = chunk.get("content_block")
            self._blocks[self._index(chunk)] = copy_object(as_object(block))
        elif kind == "content_block_delta":
            self._delta(self._index(chunk), chunk.get("delta"))
        elif kind == "content_block_stop":
            self._finish_block(self._index(chunk))
        elif kind == "message_delta":
            self._message_delta(chunk)
        elif kind == "error":
            self._error = copy_object(chunk)

    def result(self) -> JsonObject:
        """The aggregated message body (or the error event, when the stream reported one)."""
        if self._error is not None:
            return copy_object(self._error)
        for index in list(self._partial):
            self._finish_block(index)
        message: JsonObject = {k: copy_json(v) for k, v in self._message.items()}
        message["content"] = [copy_json(self._blocks[i]) for i in sorted(self._blocks)]
        return message

    @staticmethod
    def _index(chunk: JsonObject) -> int:
        index = chunk.get("index")
        if type(index) is not int or index < 0:
            raise InvalidArgumentError(f"{_LABEL} stream event index must be a non-negative integer")
        return index

    def _start(self, message: JsonValue) -> None:
        if type(message) is not dict:
            raise InvalidArgumentError(f"{_LABEL} message_start event is missing message")
        self._message = copy_object(message)
        for index, block in enumerate(objects(message.get("content"))):
            self._blocks[index] = copy_object(block)

    def _delta(self, index: int, delta: JsonValue) -> None:
        if type(delta) is not dict:
            return
        block = self._blocks.setdefault(index, {})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
        elif kind == "input_json_delta":
            self._partial.setdefault(index, []).append(str(delta.get("partial_json") or ""))
        elif kind == "thinking_delta":
            block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
        elif kind == "signature_delta":
            block["signature"] = str(block.get("signature") or "") + str(delta.get("signature") or "")
        elif kind == "citations_delta":
            citations = block.get("citations")
            block["citations"] = [*(citations if type(citations) is list else []), copy_json(delta.get("citation"))]

    def _finish_block(self, index: int) -> None:
        fragments = self._partial.pop(index, None)
        if fragments is None:
            return
        text = "".join(fragments)
        block = self._blocks.setdefault(index, {})
        try:
            block["input"] = loads(text) if text.strip() else {}
        except ValueError:
            raise InvalidArgumentError(
                f"{_LABEL} stream block {index} has tool input that is not valid JSON: {text}"
            ) from None

    def _message_delta(self, chunk: JsonObject) -> None:
        delta = chunk.get("delta")
        if type(delta) is dict:
            self._message.update(copy_object(delta))
        usage = chunk.get("usage")
        if type(usage) is dict:
            # message_delta usage counters are cumulative: they replace what message_start reported.
            merged = self._message.get("usage")
            merged_usage = copy_object(as_object(merged))
            merged_usage.update({k: copy_json(v) for k, v in usage.items() if v is not None})
            self._message["usage"] = merged_usage
