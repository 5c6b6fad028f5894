"""Provider-neutral views of an LLM request and response: ``AnnotatedLLMRequest`` / ``AnnotatedLLMResponse``.

Codecs decode provider payloads into these views; request intercepts edit them; events record their JSON
form (``category_profile.annotated_request`` / ``annotated_response``). Each object stores its validated JSON
form and hands out copies, so mutating what a getter returned never changes the annotation.

Validation follows the reference's data model, which is a set of serde types. A few consequences that are
observable and therefore reproduced here:

* every JSON object produced has its keys sorted (the reference stores objects in ordered maps);
* errors are reported for the first offending entry in input order, then for missing fields in declaration
  order, with serde's wording (``missing field `x```, ``invalid type: integer `1`, expected a string`` ...);
* request inputs are read the way the reference reads Python objects (integer keys address fields by
  position, sequences fill structs positionally, ``None`` is a "unit value"); response inputs are first
  converted to JSON and then read as JSON (``None`` is "null").

The serde-style readers live in ``annotated_serde``, the data model built from them in ``annotated_schema``.
"""

from __future__ import annotations

from _collections_abc import Mapping, Sequence

from nemo_relay._core.annotated_schema import (
    _API_SPECIFIC_REQUEST,
    _API_SPECIFIC_RESPONSE,
    _FINISH_REASONS,
    _MESSAGE,
    _RESPONSE_TOOL_CALL,
    _TOOL,
    _USAGE,
    _de_content,
    _de_finish_reason,
    _de_optimization_summary,
    _de_tool_choice,
)
from nemo_relay._core.annotated_serde import (
    _buffer,
    _de_any,
    _de_str,
    _DeError,
    _describe,
    _invalid_type,
    _is_sequence,
    _noted,
    _py_bool,
    _py_f64,
    _py_str,
    _py_u64,
    _unexpected,
    _vec,
)
from nemo_relay._core.codecs.rustfmt import printable_str as _rust_str
from nemo_relay._core.errors import JsonConversionError
from nemo_relay._core.jsonconv import copy_json, to_json
from nemo_relay._core.types import JsonValue

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.annotated_serde import _De

__all__ = [
    "AnnotatedLLMRequest",
    "AnnotatedLLMResponse",
    "is_annotated_request",
    "is_annotated_response",
]

_MESSAGES_PREFIX = "invalid messages: each dict must include a 'role' key (user/system/assistant/tool): "
_INSTRUCTIONS_PREFIX = "invalid instructions: expected a string or content-part list: "
_API_SPECIFIC_CTOR_PREFIX = "invalid api_specific: expected a tagged request object: "


# --- request field readers (constructor, setters and _from_json share them) --------------------------------


def _read_messages(value: object, trusted: bool = False) -> list[JsonValue]:
    try:
        if trusted and type(value) is list:
            # Plain JSON needs no buffering: reading it directly reports the same errors.
            return [_MESSAGE(item, False) for item in value]
        if not _is_sequence(value):
            raise _DeError(f"unexpected type: {_describe(value)} is not an instance of 'Sequence'")
        return [_MESSAGE.raw(item) for item in value]  # type: ignore[attr-defined]
    except _DeError as exc:
        raise ValueError(f"{_MESSAGES_PREFIX}{exc}") from None


def _read_instructions(value: object) -> JsonValue:
    try:
        return _de_content(_buffer(value), False)
    except _DeError as exc:
        raise ValueError(f"{_INSTRUCTIONS_PREFIX}{exc}") from None


def _read_params(value: object) -> dict[str, JsonValue]:
    """``params`` (temperature, max_tokens, top_p, stop); unknown keys are dropped without inspection."""
    try:
        if not isinstance(value, Mapping):
            raise _DeError(f"unexpected type: {_describe(value)} is not an instance of 'Mapping'")
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _DeError("dict keys must have type str")
            if key not in ("temperature", "max_tokens", "top_p", "stop") or item is None:
                continue
            if key == "max_tokens":
                try:
                    out[key] = _py_u64(item)
                except (TypeError, OverflowError) as exc:
                    raise _DeError(f"{type(exc).__name__}: {exc}") from None
            elif key == "stop":
                # Any sequence is read item by item, so a bare string becomes its characters.
                if not _is_sequence(item):
                    raise _DeError(f"unexpected type: {_describe(item)} is not an instance of 'Sequence'")
                stops: list[JsonValue] = []
                for stop in item:
                    if not isinstance(stop, str):
                        raise _DeError(f"unexpected type: {_describe(stop)} is not an instance of 'str'")
                    stops.append(str.__str__(stop))
                out[key] = stops
            else:
                try:
                    number = _py_f64(item)
                except (TypeError, OverflowError) as exc:
                    raise _DeError(f"{type(exc).__name__}: {exc}") from None
                out[key] = number if number - number == 0.0 else None
        return dict(sorted(out.items()))
    except _DeError as exc:
        raise ValueError(f"invalid params: {exc}") from None


def _read_tools(value: object, trusted: bool = False) -> list[JsonValue]:
    try:
        if trusted and type(value) is list:
            return [_TOOL(item, False) for item in value]
        if not _is_sequence(value):
            raise _DeError(f"unexpected type: {_describe(value)} is not an instance of 'Sequence'")
        return [_TOOL.raw(item) for item in value]  # type: ignore[attr-defined]
    except _DeError as exc:
        raise ValueError(f"invalid tools: {exc}") from None


def _read_tool_choice(value: object) -> JsonValue:
    try:
        return _de_tool_choice(_buffer(value), False)
    except _DeError as exc:
        raise ValueError(f"invalid tool_choice: {exc}") from None


def _read_api_specific(value: object, prefix: str = "invalid api_specific: ") -> JsonValue:
    try:
        return _API_SPECIFIC_REQUEST.raw(value)
    except _DeError as exc:
        raise ValueError(f"{prefix}{exc}") from None


def _read_object(value: object, name: str) -> dict[str, JsonValue]:
    """A free-form JSON object (``extra``): sorted keys, conversion errors as the reference words them."""
    if not isinstance(value, Mapping):
        raise ValueError(f"invalid {name}: unexpected type: {_describe(value)} is not an instance of 'Mapping'")
    return _sorted_json(_to_json_or_raise(value, f"invalid {name}: "))  # type: ignore[return-value]


def _read_value(value: object, name: str) -> JsonValue:
    return _sorted_json(_to_json_or_raise(value, f"invalid {name}: "))


def _to_json_or_raise(value: object, prefix: str) -> JsonValue:
    try:
        return to_json(value)
    except JsonConversionError as exc:
        raise ValueError(f"{prefix}{exc.detail}") from None


def _sorted_json(value: JsonValue) -> JsonValue:
    """A copy of converted JSON with every object's keys sorted (the reference's canonical order)."""
    if type(value) is dict:
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if type(value) is list:
        return [_sorted_json(item) for item in value]
    return value


# Top-level request fields that the constructor does not take but properties and the JSON form carry.
_REQUEST_STR_FIELDS = ("previous_response_id", "user", "service_tier")
_REQUEST_BOOL_FIELDS = ("store", "parallel_tool_calls", "stream")
_REQUEST_U64_FIELDS = ("max_output_tokens", "max_tool_calls", "top_logprobs")
_REQUEST_VALUE_FIELDS = ("truncation", "reasoning", "include", "metadata")


def _read_request_field(name: str, value: object, trusted: bool = False) -> JsonValue:
    """Validate one top-level request field as its setter does (``value`` is not None).

    ``trusted`` marks plain JSON input (``_from_json``), which can skip the buffering copy.
    """
    if name == "messages":
        return _read_messages(value, trusted)
    if name == "instructions":
        return _read_instructions(value)
    if name == "model" or name in _REQUEST_STR_FIELDS:
        return _py_str(value)
    if name == "params":
        return _read_params(value)
    if name == "tools":
        return _read_tools(value, trusted)
    if name == "tool_choice":
        return _read_tool_choice(value)
    if name == "api_specific":
        return _read_api_specific(value)
    if name in _REQUEST_BOOL_FIELDS:
        return _py_bool(value)
    if name in _REQUEST_U64_FIELDS:
        return _py_u64(value)
    return _read_value(value, name)


_REQUEST_FIELDS = frozenset(
    (
        "messages",
        "instructions",
        "model",
        "params",
        "tools",
        "tool_choice",
        "api_specific",
        *_REQUEST_STR_FIELDS,
        *_REQUEST_BOOL_FIELDS,
        *_REQUEST_U64_FIELDS,
        *_REQUEST_VALUE_FIELDS,
    )
)


# --- text helpers ------------------------------------------------------------------------------------------


def _first_text(content: JsonValue) -> str | None:
    """The text of a string content, else of its first text part."""
    if type(content) is str:
        return content
    if type(content) is list:
        for part in content:
            if type(part) is dict and part.get("type") == "text":
                return part["text"]  # type: ignore[return-value]
    return None


def _rust_option(value: str | None) -> str:
    return "None" if value is None else f"Some({_rust_str(value)})"


# --- public classes ----------------------------------------------------------------------------------------


class AnnotatedLLMRequest:
    """Provider-neutral view of an LLM request, as produced by a codec and seen by request intercepts.

    Holds normalised ``messages`` plus optional ``instructions``, ``model``, ``params``, ``tools``,
    ``tool_choice``, tagged ``api_specific`` fields and unknown top-level ``extra`` fields. Getters return
    copies; assign a new value to change a field (assignments are validated like the constructor's arguments).
    """

    __slots__ = ("_data", "_extra", "_origin")

    _data: dict[str, JsonValue]
    _extra: dict[str, JsonValue]
    # (codec class, request content) when a built-in codec decoded this view and nothing was assigned since:
    # encoding it back into that same content is then the identity, which the codec can skip.
    _origin: tuple[type, JsonValue] | None

    def __new__(
        cls,
        messages: Sequence[Mapping[str, JsonValue]],
        *,
        instructions: str | Sequence[Mapping[str, JsonValue]] | None = None,
        model: str | None = None,
        params: Mapping[str, JsonValue] | None = None,
        tools: Sequence[Mapping[str, JsonValue]] | None = None,
        tool_choice: str | Mapping[str, JsonValue] | None = None,
        api_specific: Mapping[str, JsonValue] | None = None,
        extra: Mapping[str, JsonValue] | None = None,
    ) -> AnnotatedLLMRequest:
        """Build a request view; raises ``ValueError`` (``TypeError`` for ``model``) on invalid input."""
        # Same order of checks as the reference: typed arguments first, then the structured ones.
        data: dict[str, JsonValue] = {}
        try:
            model_name = _py_str(model)
        except TypeError as exc:
            raise _noted(exc, "model") from None
        data["messages"] = _read_messages(messages)
        if params is not None:
            data["params"] = _read_params(params)
        if instructions is not None:
            data["instructions"] = _read_instructions(instructions)
        if model_name is not None:
            data["model"] = model_name
        if tools is not None:
            data["tools"] = _read_tools(tools)
        if tool_choice is not None:
            data["tool_choice"] = _read_tool_choice(tool_choice)
        if api_specific is not None:
            data["api_specific"] = _read_api_specific(api_specific, _API_SPECIFIC_CTOR_PREFIX)
        self = object.__new__(cls)
        self._extra = {} if extra is None else _read_object(extra, "extra")
        self._data = data
        self._origin = None
        return self

    def __copy__(self) -> AnnotatedLLMRequest:
        clone = object.__new__(type(self))
        clone._data = copy_json(self._data)  # type: ignore[assignment]
        clone._extra = copy_json(self._extra)  # type: ignore[assignment]
        clone._origin = self._origin
        return clone

    def __deepcopy__(self, memo: dict[int, object]) -> AnnotatedLLMRequest:
        return self.__copy__()

    def _snapshot(self) -> AnnotatedLLMRequest:
        """A frozen-in-time view sharing this one's values: cheap, because values are never changed in place
        (getters copy, assignments replace), so later assignments to ``self`` cannot reach the snapshot."""
        clone = object.__new__(type(self))
        clone._data = dict(self._data)
        clone._extra = dict(self._extra)
        clone._origin = None
        return clone

    def _set(self, name: str, value: object) -> None:
        self._origin = None
        if value is None:
            if name == "messages":
                _read_messages(value)  # raises: messages cannot be cleared
            self._data.pop(name, None)
            return
        try:
            self._data[name] = _read_request_field(name, value)
        except (TypeError, OverflowError) as exc:
            raise _noted(exc, "value") from None

    @property
    def messages(self) -> list[dict[str, JsonValue]]:
        """Normalised messages: dicts tagged by ``role``."""
        return copy_json(self._data.get("messages"))  # type: ignore[return-value]

    @messages.setter
    def messages(self, value: Sequence[Mapping[str, JsonValue]]) -> None:
        self._set("messages", value)

    @property
    def instructions(self) -> str | list[dict[str, JsonValue]] | None:
        """Provider-level instructions: a string, a list of content parts, or None."""
        return copy_json(self._data.get("instructions"))  # type: ignore[return-value]

    @instructions.setter
    def instructions(self, value: str | Sequence[Mapping[str, JsonValue]] | None) -> None:
        self._set("instructions", value)

    @property
    def model(self) -> str | None:
        """Model name, if known."""
        return copy_json(self._data.get("model"))  # type: ignore[return-value]

    @model.setter
    def model(self, value: str | None) -> None:
        self._set("model", value)

    @property
    def params(self) -> dict[str, JsonValue] | None:
        """Generation parameters (``temperature``, ``max_tokens``, ``top_p``, ``stop``), if any."""
        return copy_json(self._data.get("params"))  # type: ignore[return-value]

    @params.setter
    def params(self, value: Mapping[str, JsonValue] | None) -> None:
        self._set("params", value)

    @property
    def tools(self) -> list[dict[str, JsonValue]] | None:
        """Tool declarations (``function`` or ``provider_native``), if any."""
        return copy_json(self._data.get("tools"))  # type: ignore[return-value]

    @tools.setter
    def tools(self, value: Sequence[Mapping[str, JsonValue]] | None) -> None:
        self._set("tools", value)

    @property
    def tool_choice(self) -> str | dict[str, JsonValue] | None:
        """Tool-selection directive: ``auto``/``none``/``required`` or a dict, if any."""
        return copy_json(self._data.get("tool_choice"))  # type: ignore[return-value]

    @tool_choice.setter
    def tool_choice(self, value: str | Mapping[str, JsonValue] | None) -> None:
        self._set("tool_choice", value)

    @property
    def api_specific(self) -> dict[str, JsonValue] | None:
        """Provider-specific request fields tagged by ``api``, if any."""
        return copy_json(self._data.get("api_specific"))  # type: ignore[return-value]

    @api_specific.setter
    def api_specific(self, value: Mapping[str, JsonValue] | None) -> None:
        self._set("api_specific", value)

    @property
    def store(self) -> bool | None:
        """Whether the provider should store the response, if set."""
        return copy_json(self._data.get("store"))  # type: ignore[return-value]

    @store.setter
    def store(self, value: bool | None) -> None:
        self._set("store", value)

    @property
    def previous_response_id(self) -> str | None:
        """Id of the previous response in a stateful conversation, if set."""
        return copy_json(self._data.get("previous_response_id"))  # type: ignore[return-value]

    @previous_response_id.setter
    def previous_response_id(self, value: str | None) -> None:
        self._set("previous_response_id", value)

    @property
    def truncation(self) -> JsonValue:
        """Truncation strategy (any JSON value), if set."""
        return copy_json(self._data.get("truncation"))

    @truncation.setter
    def truncation(self, value: JsonValue) -> None:
        self._set("truncation", value)

    @property
    def reasoning(self) -> JsonValue:
        """Reasoning configuration (any JSON value), if set."""
        return copy_json(self._data.get("reasoning"))

    @reasoning.setter
    def reasoning(self, value: JsonValue) -> None:
        self._set("reasoning", value)

    @property
    def include(self) -> JsonValue:
        """Additional outputs to include (any JSON value), if set."""
        return copy_json(self._data.get("include"))

    @include.setter
    def include(self, value: JsonValue) -> None:
        self._set("include", value)

    @property
    def user(self) -> str | None:
        """End-user identifier, if set."""
        return copy_json(self._data.get("user"))  # type: ignore[return-value]

    @user.setter
    def user(self, value: str | None) -> None:
        self._set("user", value)

    @property
    def metadata(self) -> JsonValue:
        """Request metadata (any JSON value), if set."""
        return copy_json(self._data.get("metadata"))

    @metadata.setter
    def metadata(self, value: JsonValue) -> None:
        self._set("metadata", value)

    @property
    def service_tier(self) -> str | None:
        """Service tier, if set."""
        return copy_json(self._data.get("service_tier"))  # type: ignore[return-value]

    @service_tier.setter
    def service_tier(self, value: str | None) -> None:
        self._set("service_tier", value)

    @property
    def parallel_tool_calls(self) -> bool | None:
        """Whether parallel tool calls are allowed, if set."""
        return copy_json(self._data.get("parallel_tool_calls"))  # type: ignore[return-value]

    @parallel_tool_calls.setter
    def parallel_tool_calls(self, value: bool | None) -> None:
        self._set("parallel_tool_calls", value)

    @property
    def max_output_tokens(self) -> int | None:
        """Output token limit, if set."""
        return copy_json(self._data.get("max_output_tokens"))  # type: ignore[return-value]

    @max_output_tokens.setter
    def max_output_tokens(self, value: int | None) -> None:
        self._set("max_output_tokens", value)

    @property
    def max_tool_calls(self) -> int | None:
        """Tool call limit, if set."""
        return copy_json(self._data.get("max_tool_calls"))  # type: ignore[return-value]

    @max_tool_calls.setter
    def max_tool_calls(self, value: int | None) -> None:
        self._set("max_tool_calls", value)

    @property
    def top_logprobs(self) -> int | None:
        """Number of most likely tokens to return log-probabilities for, if set."""
        return copy_json(self._data.get("top_logprobs"))  # type: ignore[return-value]

    @top_logprobs.setter
    def top_logprobs(self, value: int | None) -> None:
        self._set("top_logprobs", value)

    @property
    def stream(self) -> bool | None:
        """Whether the response is streamed, if set."""
        return copy_json(self._data.get("stream"))  # type: ignore[return-value]

    @stream.setter
    def stream(self, value: bool | None) -> None:
        self._set("stream", value)

    @property
    def extra(self) -> dict[str, JsonValue]:
        """Unknown top-level request fields (flattened into the JSON form)."""
        return copy_json(self._extra)  # type: ignore[return-value]

    @extra.setter
    def extra(self, value: Mapping[str, JsonValue]) -> None:
        self._extra = _read_object(value, "extra")
        self._origin = None

    def _messages(self) -> list[dict[str, JsonValue]]:
        return self._data["messages"]  # type: ignore[return-value]  # validated: a list of message dicts

    def system_prompt(self) -> str | None:
        """The first text of ``instructions``, else of the first system or developer message that has text."""
        text = _first_text(self._data.get("instructions"))
        if text is not None:
            return text
        for message in self._messages():
            if message.get("role") in ("system", "developer"):
                text = _first_text(message.get("content"))
                if text is not None:
                    return text
        return None

    def last_user_message(self) -> str | None:
        """The text of the last user message that has text."""
        for message in reversed(self._messages()):
            if message.get("role") == "user":
                text = _first_text(message.get("content"))
                if text is not None:
                    return text
        return None

    def has_tool_calls(self) -> bool:
        """Whether a message calls a tool: assistant ``tool_calls`` or ``tool_use`` parts, or a ``tool_call`` item."""
        for message in self._messages():
            role = message.get("role")
            if role == "tool_call":
                return True
            if role == "assistant":
                if message.get("tool_calls"):
                    return True
                content = message.get("content")
                if type(content) is list and any(
                    type(part) is dict and part.get("type") == "tool_use" for part in content
                ):
                    return True
        return False

    def __repr__(self) -> str:
        model = _py_str(self._data.get("model"))
        return f"<AnnotatedLLMRequest messages={len(self._messages())} model={_rust_option(model)}>"

    @classmethod
    def _from_json(cls, data: dict[str, JsonValue]) -> AnnotatedLLMRequest:
        """Build from the JSON form; unknown top-level keys become ``extra``. Raises ``ValueError``."""
        candidate: object = data  # stored events may hold any JSON value here
        if not isinstance(candidate, Mapping):
            detail = f"invalid type: {_unexpected(data, True)}, expected struct AnnotatedLlmRequest"
            raise ValueError(f"invalid annotated_request: {detail}")
        if "messages" not in data:
            raise ValueError("invalid annotated_request: missing field `messages`")
        fields: dict[str, JsonValue] = {}
        extra: dict[str, JsonValue] = {}
        for key, value in data.items():
            if key not in _REQUEST_FIELDS:
                extra[key] = value
            elif value is not None or key == "messages":
                try:
                    fields[key] = _read_request_field(key, value, True)
                except (TypeError, OverflowError) as exc:
                    raise ValueError(f"invalid {key}: {exc}") from None
        self = object.__new__(cls)
        self._data = fields
        self._extra = _read_object(extra, "extra")
        self._origin = None
        return self

    @classmethod
    def _from_codec(cls, data: dict[str, JsonValue], extra: dict[str, JsonValue] | None = None) -> AnnotatedLLMRequest:
        """Build from JSON a built-in codec produced: already in normal form, so it is not validated again.

        Unknown top-level keys of ``data`` become ``extra``; ``extra``, when given, is taken as is. The view may
        share values with ``data`` (the view never changes a value in place; getters copy).
        """
        fields: dict[str, JsonValue] = {}
        unknown: dict[str, JsonValue] = {}
        for key, value in data.items():
            if key not in _REQUEST_FIELDS:
                unknown[key] = value
            elif value is not None:
                fields[key] = value
        fields.setdefault("messages", [])
        self = object.__new__(cls)
        self._data = fields
        self._extra = unknown if extra is None else extra
        self._origin = None
        return self

    def _to_json(self) -> dict[str, JsonValue]:
        """The JSON form recorded on events: absent fields omitted, ``extra`` flattened in (it wins on clashes)."""
        merged = dict(self._data)
        merged.update(self._extra)
        return {key: copy_json(merged[key]) for key in sorted(merged)}


def _response_value(value: object, name: str, de: _De) -> JsonValue:
    """A response constructor argument: converted to JSON first, then read as JSON."""
    converted = _to_json_or_raise(value, f"invalid {name}: ValueError: Failed to convert to JSON: ")
    try:
        return de(converted, True)
    except _DeError as exc:
        raise ValueError(f"invalid {name}: {exc}") from None


_RESPONSE_FIELDS: dict[str, _De] = {
    "id": _de_str,
    "model": _de_str,
    "message": _de_content,
    "tool_calls": _vec(_RESPONSE_TOOL_CALL),
    "finish_reason": _de_finish_reason,
    "usage": _USAGE,
    "optimization_summary": _de_optimization_summary,
    "api_specific": _API_SPECIFIC_RESPONSE,
}


class AnnotatedLLMResponse:
    """Provider-neutral view of an LLM response, as produced by a response codec.

    Read-only: ``id``, ``model``, ``message`` (a string or content parts), ``tool_calls``
    (``{id, name, arguments}``), ``finish_reason``, ``usage``, ``optimization_summary``, ``api_specific``
    and unknown top-level ``extra`` fields. Getters return copies.
    """

    __slots__ = ("_data", "_extra")

    _data: dict[str, JsonValue]
    _extra: dict[str, JsonValue]

    def __new__(
        cls,
        id: str | None = None,
        model: str | None = None,
        message: JsonValue = None,
        tool_calls: Sequence[Mapping[str, JsonValue]] | None = None,
        finish_reason: str | Mapping[str, JsonValue] | None = None,
        usage: Mapping[str, JsonValue] | None = None,
        api_specific: Mapping[str, JsonValue] | None = None,
        extra: Mapping[str, JsonValue] | None = None,
    ) -> AnnotatedLLMResponse:
        """Build a response view; raises ``ValueError`` (``TypeError`` for ``id``/``model``) on invalid input.

        ``finish_reason`` accepts any string (``complete``/``length``/``tool_use``/``content_filter``, else
        it is kept as an unknown reason) or the JSON form (``"complete"``, ``{"unknown": "raw"}``).
        """
        data: dict[str, JsonValue] = {}
        try:
            response_id = _py_str(id)
        except TypeError as exc:
            raise _noted(exc, "id") from None
        try:
            model_name = _py_str(model)
        except TypeError as exc:
            raise _noted(exc, "model") from None
        if response_id is not None:
            data["id"] = response_id
        if model_name is not None:
            data["model"] = model_name
        if message is not None:
            data["message"] = _response_value(message, "message", _de_content)
        if tool_calls is not None:
            data["tool_calls"] = _response_value(tool_calls, "tool_calls", _RESPONSE_FIELDS["tool_calls"])
        if finish_reason is not None:
            if isinstance(finish_reason, str):
                reason = str.__str__(finish_reason)
                data["finish_reason"] = reason if reason in _FINISH_REASONS else {"unknown": reason}
            else:
                data["finish_reason"] = _response_value(finish_reason, "finish_reason", _de_finish_reason)
        if usage is not None:
            data["usage"] = _response_value(usage, "usage", _USAGE)
        if api_specific is not None:
            data["api_specific"] = _response_value(api_specific, "api_specific", _API_SPECIFIC_RESPONSE)
        self = object.__new__(cls)
        self._extra = {} if extra is None else _response_extra(extra)
        self._data = data
        return self

    @property
    def id(self) -> str | None:
        """Provider response id, if present."""
        return self._data.get("id")  # type: ignore[return-value]

    @property
    def model(self) -> str | None:
        """Model that served the response, if present."""
        return self._data.get("model")  # type: ignore[return-value]

    @property
    def message(self) -> JsonValue:
        """Primary assistant content: a string, a list of content parts, or None."""
        return copy_json(self._data.get("message"))

    @property
    def tool_calls(self) -> list[dict[str, JsonValue]] | None:
        """Tool calls requested by the model (``{id, name, arguments}``), if present."""
        return copy_json(self._data.get("tool_calls"))  # type: ignore[return-value]

    @property
    def finish_reason(self) -> str | None:
        """Normalised finish reason (``complete``/``length``/``tool_use``/``content_filter``) or the raw unknown one."""
        reason = self._data.get("finish_reason")
        if type(reason) is dict:
            return reason["unknown"]  # type: ignore[return-value]
        return reason  # type: ignore[return-value]

    @property
    def usage(self) -> dict[str, JsonValue] | None:
        """Token usage (prompt/completion/total and cache-read/cache-write token counts, ``cost``), if present."""
        return copy_json(self._data.get("usage"))  # type: ignore[return-value]

    @property
    def optimization_summary(self) -> dict[str, JsonValue] | None:
        """Close-time optimization accounting, if present."""
        return copy_json(self._data.get("optimization_summary"))  # type: ignore[return-value]

    @property
    def api_specific(self) -> dict[str, JsonValue] | None:
        """Provider-specific response fields tagged by ``api``, if present."""
        return copy_json(self._data.get("api_specific"))  # type: ignore[return-value]

    @property
    def extra(self) -> dict[str, JsonValue]:
        """Unknown top-level response fields (flattened into the JSON form)."""
        return copy_json(self._extra)  # type: ignore[return-value]

    def response_text(self) -> str | None:
        """The message text: the string itself, else the first text part."""
        return _first_text(self._data.get("message"))

    def has_tool_calls(self) -> bool:
        """Whether the response requests at least one tool call."""
        return bool(self._data.get("tool_calls"))

    def __repr__(self) -> str:
        return (
            f"<AnnotatedLLMResponse id={_rust_option(self._data.get('id'))} "  # type: ignore[arg-type]
            f"model={_rust_option(self._data.get('model'))}>"  # type: ignore[arg-type]
        )

    @classmethod
    def _from_json(cls, data: dict[str, JsonValue]) -> AnnotatedLLMResponse:
        """Build from the JSON form; unknown top-level keys become ``extra``.

        Raises ``ValueError("invalid annotated_response: ...")`` for the first problem in input order.
        """
        try:
            if type(data) is not dict:
                if not isinstance(data, Mapping):
                    raise _invalid_type(data, "struct AnnotatedLlmResponse", True)
                data = dict(data)
            fields: dict[str, JsonValue] = {}
            extra: dict[str, JsonValue] = {}
            # The reference reads the JSON object in key order, so the first error is the first by key.
            for key, value in sorted(data.items()):
                de = _RESPONSE_FIELDS.get(key)
                if de is None:
                    extra[key] = _de_any(value, True)
                elif value is not None:
                    fields[key] = de(value, True)
        except _DeError as exc:
            raise ValueError(f"invalid annotated_response: {exc}") from None
        self = object.__new__(cls)
        self._data = fields
        self._extra = dict(sorted(extra.items()))
        return self

    @classmethod
    def _from_parts(cls, fields: dict[str, JsonValue], extra: dict[str, JsonValue]) -> AnnotatedLLMResponse:
        """Build from a codec's decoded ``fields`` and the response's unknown top-level keys, kept apart.

        A provider key named like a field (a Gemini ``finish_reason`` key) stays in ``extra``, as in the
        reference. Raises ``ValueError("invalid annotated_response: ...")`` for a field the codec got wrong.
        """
        try:
            data = {
                key: _RESPONSE_FIELDS[key](value, True) for key, value in sorted(fields.items()) if value is not None
            }
            unknown = {key: _de_any(value, True) for key, value in sorted(extra.items())}
        except _DeError as exc:
            raise ValueError(f"invalid annotated_response: {exc}") from None
        self = object.__new__(cls)
        self._data = data
        self._extra = unknown
        return self

    def _to_json(self) -> dict[str, JsonValue]:
        """The JSON form recorded on events: absent fields omitted, ``extra`` flattened in (it wins on clashes)."""
        merged = dict(self._data)
        merged.update(self._extra)
        return {key: copy_json(merged[key]) for key in sorted(merged)}


def _response_extra(value: object) -> dict[str, JsonValue]:
    converted = _to_json_or_raise(value, "invalid extra: ValueError: Failed to convert to JSON: ")
    if type(converted) is not dict:
        raise ValueError(f"invalid extra: {_invalid_type(converted, 'a map', True)}")
    return _sorted_json(converted)  # type: ignore[return-value]


def is_annotated_request(value: object) -> bool:
    """Whether ``value`` is an ``AnnotatedLLMRequest``."""
    return isinstance(value, AnnotatedLLMRequest)


def is_annotated_response(value: object) -> bool:
    """Whether ``value`` is an ``AnnotatedLLMResponse``."""
    return isinstance(value, AnnotatedLLMResponse)
