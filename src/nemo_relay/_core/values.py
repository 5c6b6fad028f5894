"""Values that cross the managed pipeline: tool results and outcomes, LLM requests, pending marks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nemo_relay._core.generic import Generic, TypeVar
from nemo_relay._core.jsonconv import FREEZE_ABOVE, Frozen, bounded_size, copy_json, to_json
from nemo_relay._core.types import JsonValue, LogSeverity, type_name

T = TypeVar("T")


class ToolExecutionResult(Generic[T]):
    """What a tool callback returns: the ``result`` and an optional opaque JSON ``annotation``."""

    __slots__ = ("_result", "_annotation")

    def __init__(self, result: T, annotation: JsonValue = None) -> None:
        self._result = result
        self._annotation = annotation

    @property
    def result(self) -> T:
        """The tool's result (any object here; it must be JSON-convertible when it crosses the runtime)."""
        return self._result

    @property
    def annotation(self) -> JsonValue:
        """Opaque JSON recorded as ``tool_result_annotation`` on the tool end event; None means none."""
        return self._annotation


class PendingMarkSpec:
    """A mark that middleware asks the runtime to emit once the call's lifecycle allows it."""

    __slots__ = ("_name", "_category", "_profile", "_data", "_metadata", "_schema", "_severity")

    def __init__(
        self,
        name: str,
        category: str | None = None,
        category_profile: JsonValue = None,
        data: JsonValue = None,
        metadata: JsonValue = None,
        data_schema: Mapping[str, str] | None = None,
        severity: LogSeverity | None = None,
    ) -> None:
        _expect_str(name, "name")
        if category is not None:
            _expect_str(category, "category")
        if severity is not None and not isinstance(severity, LogSeverity):
            raise TypeError(f"argument 'severity': '{type_name(severity)}' object is not an instance of 'LogSeverity'")
        profile = None if category_profile is None else to_json(category_profile)
        if profile is not None and type(profile) is not dict:
            raise TypeError(f"argument 'category_profile': '{type_name(category_profile)}' object is not a JSON object")
        self._name = str(name)
        self._category = category
        self._profile = profile
        self._data = None if data is None else to_json(data)
        self._metadata = None if metadata is None else to_json(metadata)
        self._schema = None if data_schema is None else _data_schema(data_schema)
        self._severity = severity

    @property
    def name(self) -> str:
        """Mark name."""
        return self._name

    @property
    def category(self) -> str | None:
        """Free-form mark category."""
        return self._category

    @property
    def category_profile(self) -> dict[str, JsonValue] | None:
        """Category-specific fields (unknown keys preserved)."""
        return copy_json(self._profile)  # type: ignore[return-value]

    @property
    def data(self) -> JsonValue:
        """Mark payload."""
        return copy_json(self._data)

    @property
    def metadata(self) -> JsonValue:
        """Mark metadata."""
        return copy_json(self._metadata)

    @property
    def data_schema(self) -> dict[str, str] | None:
        """``{"name", "version"}`` of the payload's schema."""
        return None if self._schema is None else dict(self._schema)

    @property
    def severity(self) -> LogSeverity | None:
        """Severity written to ``metadata["nemo_relay.log.severity"]`` on emission."""
        return self._severity

    def __repr__(self) -> str:
        return f"PendingMarkSpec(name={self._name!r})"


def _pending_marks(value: object, argument: str = "pending_marks") -> tuple[PendingMarkSpec, ...]:
    """Validated tuple of pending marks (``None`` and ``...`` mean none)."""
    if value is None or value is Ellipsis:
        return ()
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"argument '{argument}': expected a list of PendingMarkSpec, got {type_name(value)}")
    marks = tuple(value)
    for index, mark in enumerate(marks):
        if not isinstance(mark, PendingMarkSpec):
            raise TypeError(
                f"argument '{argument}[{index}]': '{type_name(mark)}' object is not an instance of 'PendingMarkSpec'"
            )
    return marks


class ToolExecutionInterceptOutcome:
    """What a tool execution intercept returns: the result, its annotation and marks to emit after the end."""

    __slots__ = ("_result", "_annotation", "_marks")

    def __init__(
        self,
        result: JsonValue,
        pending_marks: Iterable[PendingMarkSpec] | None = None,
        *,
        annotation: JsonValue = None,
    ) -> None:
        self._result = to_json(result)
        self._annotation = None if annotation is None else to_json(annotation)
        self._marks = _pending_marks(pending_marks)

    @property
    def result(self) -> JsonValue:
        """The (JSON) result handed upstream."""
        return self._result

    @property
    def annotation(self) -> JsonValue:
        """Annotation handed upstream; copy ``downstream.annotation`` here to preserve it."""
        return self._annotation

    @property
    def pending_marks(self) -> list[PendingMarkSpec]:
        """Marks emitted after the tool end event, parented to the tool call."""
        return list(self._marks)


class LLMRequest:
    """An immutable provider request: HTTP-style ``headers`` and a JSON ``content`` body.

    The getters return fresh copies; build a new request to change anything.
    """

    __slots__ = ("_headers", "_content", "_frozen")

    def __init__(self, headers: Mapping[str, JsonValue], content: JsonValue) -> None:
        self._headers: dict[str, JsonValue] = _converted_headers(headers)
        self._content = to_json(content)
        self._frozen: Frozen | bool | None = None  # the body's snapshot once read: False when small

    @classmethod
    def _trusted(cls, headers: dict[str, JsonValue], content: JsonValue) -> LLMRequest:
        # For values the runtime already converted: skips the validating copy.
        request = cls.__new__(cls)
        request._headers = headers
        request._content = content
        request._frozen = None
        return request

    @property
    def headers(self) -> dict[str, JsonValue]:
        """A copy of the headers."""
        return copy_json(self._headers)  # type: ignore[return-value]

    @property
    def content(self) -> JsonValue:
        """A copy of the body."""
        # A provider reads the body on every call, and a conversation can be 100 KiB: the first read of a
        # large body freezes it (the request never changes), and every read thaws a copy at C speed.
        frozen = self._frozen
        if frozen is None:
            frozen = self._frozen = Frozen(self._content) if bounded_size(self._content) > FREEZE_ABOVE else False
        if frozen is False:
            return copy_json(self._content)
        return frozen.thaw()  # type: ignore[union-attr]

    def with_headers(self, headers: Mapping[str, JsonValue]) -> LLMRequest:
        """A new request with ``headers`` and this body."""
        request = LLMRequest._trusted(_converted_headers(headers), self._content)  # the body never changes: shared
        request._frozen = self._frozen
        return request

    def with_content(self, content: JsonValue) -> LLMRequest:
        """A new request with this request's headers and ``content``."""
        return LLMRequest(self._headers, content)

    def __repr__(self) -> str:
        return "LLMRequest(...)"


def _converted_headers(headers: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    converted = to_json(headers)
    if type(converted) is not dict:
        raise TypeError(f"argument 'headers': '{type_name(headers)}' object is not an instance of 'dict'")
    return converted


class LLMRequestInterceptOutcome:
    """What an LLM request intercept returns: the request to continue with, plus optional annotation and marks."""

    __slots__ = ("_request", "_annotated", "_marks", "_contributions")

    def __init__(
        self,
        request: LLMRequest,
        annotated_request: object = None,
        pending_marks: Iterable[PendingMarkSpec] | None = None,
        optimization_contributions: Iterable[Mapping[str, JsonValue]] | None = None,
    ) -> None:
        if not isinstance(request, LLMRequest):
            raise TypeError(f"argument 'request': '{type_name(request)}' object is not an instance of 'LLMRequest'")
        self._request = request
        self._annotated = annotated_request
        self._marks = _pending_marks(pending_marks)
        contributions = [] if optimization_contributions is None else to_json(list(optimization_contributions))
        self._contributions: list[JsonValue] = contributions  # type: ignore[assignment]

    @property
    def request(self) -> LLMRequest:
        """The request the chain continues with (headers always come from here)."""
        return self._request

    @property
    def annotated_request(self) -> object:
        """The codec view of the request, when a codec is active (the body authority then)."""
        return self._annotated

    @property
    def pending_marks(self) -> list[PendingMarkSpec]:
        """Marks emitted right after the LLM start event."""
        return list(self._marks)

    @property
    def optimization_contributions(self) -> list[JsonValue]:
        """Optimisation notes recorded by adaptive plugins."""
        return copy_json(self._contributions)  # type: ignore[return-value]


def _expect_str(value: object, argument: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"argument '{argument}': '{type_name(value)}' object is not an instance of 'str'")


def _data_schema(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(value.get(k), str) for k in ("name", "version")):
        raise ValueError("data_schema must contain string name and version fields")
    return {"name": str(value["name"]), "version": str(value["version"])}
