"""Typed wrappers over the JSON-only managed calls, and the value codecs they use.

The runtime and its middleware see JSON only. The wrappers here let your tool and provider code work
with Python objects instead: a ``Codec`` turns each typed value into JSON on the way into the runtime
and back into a typed value on the way out, so guardrails, intercepts and events still see JSON.

Example::

    from dataclasses import dataclass

    import nemo_relay
    from nemo_relay import typed

    @dataclass
    class Query:
        text: str

    @dataclass
    class Answer:
        words: int

    def count(query: Query) -> nemo_relay.ToolExecutionResult[Answer]:
        return nemo_relay.ToolExecutionResult(Answer(words=len(query.text.split())))

    result = await typed.tool_execute(
        "count", Query("two words"), count, typed.DataclassCodec(Query), typed.DataclassCodec(Answer)
    )
    assert result.result == Answer(words=2)

``pydantic`` is optional: ``PydanticCodec`` and ``BestEffortAnyCodec`` use any object that has
``model_dump``/``model_validate``, and nothing here imports pydantic.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import inspect
import io
import json
import pickle
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, overload

from nemo_relay import llm, tools
from nemo_relay._core.stream import LlmStream
from nemo_relay._core.types import Json, LLMAttributes, ToolAttributes
from nemo_relay._core.values import LLMRequest, ToolExecutionResult

if TYPE_CHECKING:
    from nemo_relay._core.handles import ScopeHandle
    from nemo_relay.codecs import LlmCodec, LlmResponseCodec

__all__ = [
    "BestEffortAnyCodec",
    "Codec",
    "DataclassCodec",
    "JsonPassthrough",
    "PydanticCodec",
    "llm_execute",
    "llm_stream_execute",
    "tool_execute",
]

T = TypeVar("T")
TArgs = TypeVar("TArgs")
TResult = TypeVar("TResult")
TResponse = TypeVar("TResponse")
TResponseChunk = TypeVar("TResponseChunk")


class _Dumpable(Protocol):
    def model_dump(self, *, mode: str = ...) -> Any: ...


class _Validating(Protocol):
    def model_validate(self, obj: Any, /) -> Any: ...


# --- value serialization ----------------------------------------------------------------------------------


def _dataclass_fields(instance: object) -> dict[str, Json]:
    """The fields of a dataclass instance as JSON, without the fields whose value is None."""
    serialized: dict[str, Json] = {}
    for field in dataclasses.fields(instance):  # type: ignore[arg-type]
        value = getattr(instance, field.name)
        if value is not None:
            serialized[field.name] = _serialize_value(value)
    return serialized


def _serialize_value(value: object) -> Json:
    """Best-effort JSON form of a field value.

    Dataclass instances become dicts of their non-None fields, lists and dicts are walked, objects with
    ``model_dump`` are dumped in JSON mode; anything else is returned as it is.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_fields(value)
    if isinstance(value, list):
        return [_serialize_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _serialize_value(item) for key, item in value.items()}
    if hasattr(value, "model_dump"):
        try:
            return cast(Json, cast(_Dumpable, value).model_dump(mode="json"))
        except Exception:
            pass  # a model_dump that fails leaves the value as it is
    return cast(Json, value)


def _qualified_name(cls: type[object]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --- type resolution for BestEffortAnyCodec -----------------------------------------------------------------

_runtime_types: weakref.WeakValueDictionary[str, type[object]] = weakref.WeakValueDictionary()


def _register_runtime_type(cls: type[object]) -> str:
    """Remember ``cls`` for this process and return its token, ``"<module>.<qualname>:<id>"``.

    The registry holds classes weakly: a token stops resolving once its class is garbage collected.
    """
    token = f"{_qualified_name(cls)}:{id(cls)}"
    _runtime_types[token] = cls
    return token


def _resolve_runtime_type(token: object) -> type[object] | None:
    """The class registered under ``token`` in this process, or None."""
    if not isinstance(token, str):
        return None
    cls = _runtime_types.get(token)
    return cls if isinstance(cls, type) else None


def _resolve_importable_type(path: object) -> type[object] | None:
    """The class named by the dotted ``path`` (``"package.module.Outer.Inner"``), found by importing.

    Every split between module and qualified name is tried, the longest module first. Names under
    ``<locals>`` cannot be imported and are skipped. Returns None when nothing resolves to a class.
    """
    if not isinstance(path, str) or not path:
        return None
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        attributes = parts[split:]
        if "<locals>" in attributes:
            continue
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
            for attribute in attributes:
                found = getattr(found, attribute)
        except (ImportError, AttributeError):
            continue
        if isinstance(found, type):
            return found
    return None


class _ContainersOnlyUnpickler(pickle.Unpickler):
    """Loads pickles of builtin containers and scalars; any other global is refused before it is loaded."""

    _ALLOWED = frozenset({("builtins", name) for name in ("dict", "frozenset", "list", "set", "tuple")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden")


_UNRESOLVED = object()


# --- codecs ---------------------------------------------------------------------------------------------------


class Codec(Generic[T]):
    """Converts values of type ``T`` to JSON and back; subclass it and override both methods."""

    def to_json(self, value: T) -> Json:
        """Convert ``value`` to JSON.

        Args:
            value: The typed value.

        Returns:
            Its JSON form.

        Raises:
            NotImplementedError: Always, in this base class.
        """
        raise NotImplementedError

    def from_json(self, data: Json) -> T:
        """Build a typed value from JSON.

        Args:
            data: The JSON form produced by ``to_json`` (possibly edited by middleware).

        Returns:
            The typed value.

        Raises:
            NotImplementedError: Always, in this base class.
        """
        raise NotImplementedError


class JsonPassthrough(Codec[Json]):
    """The identity codec, for values that already are JSON."""

    def to_json(self, value: Json) -> Json:
        """Return ``value`` itself.

        Args:
            value: A JSON value.

        Returns:
            The same object.
        """
        return value

    def from_json(self, data: Json) -> Json:
        """Return ``data`` itself.

        Args:
            data: A JSON value.

        Returns:
            The same object.
        """
        return data


class PydanticCodec(Codec[T]):
    """Codec for pydantic models, or any class with ``model_dump``/``model_validate``.

    Args:
        model_cls: The model class ``from_json`` validates into.
    """

    def __init__(self, model_cls: type[T]) -> None:
        self._model_cls = model_cls

    def to_json(self, value: T) -> Json:
        """Dump the model in JSON mode (``value.model_dump(mode="json")``).

        Args:
            value: A model instance.

        Returns:
            The dumped JSON.
        """
        return cast(Json, cast(_Dumpable, value).model_dump(mode="json"))

    def from_json(self, data: Json) -> T:
        """Validate ``data`` into the model class (``model_cls.model_validate(data)``).

        Args:
            data: The model's JSON form.

        Returns:
            A model instance.

        Raises:
            Exception: Whatever ``model_validate`` raises (pydantic's ``ValidationError``).
        """
        return cast(T, cast(_Validating, self._model_cls).model_validate(data))


class DataclassCodec(Codec[T]):
    """Codec for dataclasses.

    ``to_json`` serializes the fields recursively (nested dataclasses, lists, dicts and objects with
    ``model_dump``) and leaves out every field whose value is None. ``from_json`` calls
    ``dc_cls(**data)``: nested values stay JSON, so give nested fields a ``__post_init__`` if you need
    them rebuilt.

    Args:
        dc_cls: The dataclass ``from_json`` constructs.
    """

    def __init__(self, dc_cls: type[T]) -> None:
        self._dc_cls = dc_cls

    def to_json(self, value: T) -> Json:
        """Serialize a dataclass instance to a dict of its non-None fields.

        Args:
            value: A dataclass instance.

        Returns:
            The instance's fields as JSON.

        Raises:
            TypeError: ``value`` is not a dataclass instance.
        """
        return _dataclass_fields(value)

    def from_json(self, data: Json) -> T:
        """Construct the dataclass with ``data`` as keyword arguments.

        Args:
            data: A JSON object whose keys are field names.

        Returns:
            A dataclass instance.

        Raises:
            TypeError: ``data`` is not a mapping, or its keys do not match the fields.
        """
        return cast(Callable[..., T], self._dc_cls)(**cast(dict[str, Any], data))


class BestEffortAnyCodec(Codec[object]):
    """Codec for values of any type: it encodes every value somehow, and decodes what it safely can.

    ``to_json`` tries, in order: ``model_dump`` (tagged ``__nv_pydantic__``), a dataclass (tagged
    ``__nv_dataclass__``), the value itself when it survives a JSON round trip, a base64 pickle (tagged
    ``__nv_pickle__``), and finally ``str(value)`` (tagged ``__nv_fallback_str__``). Tagged forms are
    ``{"<tag>": "<module>.<qualname>", ..., "data": ...}``; model and dataclass tags also carry a
    ``__nv_runtime_type__`` token that resolves to the class within this process.

    ``from_json`` rebuilds models and dataclasses from the token, else from the class path (importing
    the module it names, so only decode data whose class paths you trust). Pickles are loaded with an
    unpickler that only knows the builtin ``dict``, ``frozenset``, ``list``, ``set`` and ``tuple``: a
    pickle naming any other class or function is refused before anything is called. Whatever cannot be
    rebuilt is returned as the raw JSON.
    """

    def to_json(self, value: object) -> Json:
        """Encode any value (see the class docstring for the order of attempts).

        Args:
            value: Any Python object.

        Returns:
            Plain JSON, or a tagged dict.
        """
        cls: type[object] = value.__class__  # as the object reports it (proxies may differ from type())
        if hasattr(value, "model_dump"):
            try:
                return _tagged("__nv_pydantic__", cls, lambda: cast(_Dumpable, value).model_dump(mode="json"))
            except Exception:
                pass  # not a usable model: try the next form
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _tagged("__nv_dataclass__", cls, lambda: _dataclass_fields(value))
        try:
            return cast(Json, json.loads(json.dumps(value)))
        except Exception:
            pass
        try:
            pickled = pickle.dumps(value)
        except Exception:
            return {"__nv_fallback_str__": _qualified_name(cls), "data": str(value)}
        return {"__nv_pickle__": _qualified_name(cls), "data": base64.b64encode(pickled).decode("ascii")}

    def from_json(self, data: Json) -> object:
        """Decode a value produced by ``to_json``.

        Args:
            data: Plain JSON, or a tagged dict with a ``"data"`` key.

        Returns:
            The rebuilt model or dataclass instance, the unpickled container, the fallback string, or
            ``data`` itself when it is not tagged or cannot be rebuilt.
        """
        if not isinstance(data, dict) or "data" not in data:
            return data
        for rebuild in (_rebuild_model, _rebuild_dataclass, _rebuild_pickle, _rebuild_string):
            value = rebuild(data)
            if value is not _UNRESOLVED:
                return value
        return data


def _tagged(tag: str, cls: type[object], dump: Callable[[], Any]) -> Json:
    """The tagged form of a model or dataclass: class path, runtime token, then ``dump()`` as ``data``.

    Built in that order, so the class is registered even when ``dump`` fails.
    """
    return {tag: _qualified_name(cls), "__nv_runtime_type__": _register_runtime_type(cls), "data": dump()}


def _rebuild_tagged(data: dict[str, Json], tag: str, build: Callable[[type[object], Json], object]) -> object:
    """``build(cls, payload)`` for the class a ``tag``-tagged value names; ``_UNRESOLVED`` if any step fails."""
    if tag not in data:
        return _UNRESOLVED
    try:
        cls = _resolve_runtime_type(data.get("__nv_runtime_type__")) or _resolve_importable_type(data[tag])
        if cls is not None:
            return build(cls, data["data"])
    except Exception:
        pass
    return _UNRESOLVED


def _rebuild_model(data: dict[str, Json]) -> object:
    def build(cls: type[object], payload: Json) -> object:
        if hasattr(cls, "model_validate"):
            return cast(_Validating, cls).model_validate(payload)
        return _UNRESOLVED

    return _rebuild_tagged(data, "__nv_pydantic__", build)


def _rebuild_dataclass(data: dict[str, Json]) -> object:
    def build(cls: type[object], payload: Json) -> object:
        if dataclasses.is_dataclass(cls) and isinstance(payload, dict):
            return cls(**payload)
        return _UNRESOLVED

    return _rebuild_tagged(data, "__nv_dataclass__", build)


def _rebuild_pickle(data: dict[str, Json]) -> object:
    payload = data["data"]
    if "__nv_pickle__" not in data or not isinstance(payload, str):
        return _UNRESOLVED
    try:
        raw = base64.b64decode(payload, validate=True)
        return _ContainersOnlyUnpickler(io.BytesIO(raw)).load()
    except Exception:
        return _UNRESOLVED


def _rebuild_string(data: dict[str, Json]) -> object:
    payload = data["data"]
    if "__nv_fallback_str__" in data and isinstance(payload, str):
        return payload
    return _UNRESOLVED


# --- typed managed calls ----------------------------------------------------------------------------------------


@overload
async def tool_execute(
    name: str,
    args: TArgs,
    func: Callable[[TArgs], Awaitable[ToolExecutionResult[TResult]]],
    args_codec: Codec[TArgs],
    result_codec: Codec[TResult],
    *,
    handle: ScopeHandle | None = None,
    attributes: ToolAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    tool_call_id: str | None = None,
) -> ToolExecutionResult[TResult]: ...


@overload
async def tool_execute(
    name: str,
    args: TArgs,
    func: Callable[[TArgs], ToolExecutionResult[TResult]],
    args_codec: Codec[TArgs],
    result_codec: Codec[TResult],
    *,
    handle: ScopeHandle | None = None,
    attributes: ToolAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    tool_call_id: str | None = None,
) -> ToolExecutionResult[TResult]: ...


async def tool_execute(
    name: str,
    args: TArgs,
    func: Callable[[TArgs], ToolExecutionResult[TResult] | Awaitable[ToolExecutionResult[TResult]]],
    args_codec: Codec[TArgs],
    result_codec: Codec[TResult],
    *,
    handle: ScopeHandle | None = None,
    attributes: ToolAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    tool_call_id: str | None = None,
) -> ToolExecutionResult[TResult]:
    """Run a tool with typed arguments and result through ``nemo_relay.tools.execute``.

    The arguments are encoded with ``args_codec`` before the pipeline starts, so guardrails, intercepts
    and the start event see JSON. Inside the pipeline the (possibly rewritten) JSON arguments are
    decoded again and passed to ``func``; its result is encoded with ``result_codec`` for the end event
    and decoded for you at the end. The annotation passes through unchanged.

    Args:
        name: Tool name.
        args: Typed arguments.
        func: The tool, sync or async: ``func(typed_args)`` returns a ``ToolExecutionResult`` whose
            ``result`` is typed.
        args_codec: Encodes and decodes the arguments.
        result_codec: Encodes and decodes the result.
        handle: Parent scope; defaults to the current top.
        attributes: Tool flags.
        data: End payload of a failed call.
        metadata: Metadata of the start and end events.
        tool_call_id: The model's tool-call id.

    Returns:
        The decoded result with its annotation.

    Raises:
        RuntimeError: As ``tools.execute``; ``func`` returning anything but a ``ToolExecutionResult``
            surfaces as ``internal error: TypeError: typed tool callback must return ToolExecutionResult``.
        ValueError: The encoded arguments are not JSON-convertible.
    """
    json_args = args_codec.to_json(args)

    async def run_json(raw_args: Json) -> ToolExecutionResult[Json]:
        outcome = func(args_codec.from_json(raw_args))
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if not isinstance(outcome, ToolExecutionResult):
            raise TypeError("typed tool callback must return ToolExecutionResult")
        return ToolExecutionResult(result_codec.to_json(outcome.result), outcome.annotation)

    raw = await tools.execute(
        name,
        json_args,
        run_json,
        handle=handle,
        attributes=attributes,
        data=data,
        metadata=metadata,
        tool_call_id=tool_call_id,
    )
    return ToolExecutionResult(result_codec.from_json(raw.result), raw.annotation)


@overload
async def llm_execute(
    name: str,
    request: LLMRequest,
    func: Callable[[LLMRequest], Awaitable[TResponse]],
    response_json_codec: Codec[TResponse],
    *,
    handle: ScopeHandle | None = None,
    attributes: LLMAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    model_name: str | None = None,
    codec: LlmCodec | None = None,
    response_codec: LlmResponseCodec | None = None,
) -> TResponse: ...


@overload
async def llm_execute(
    name: str,
    request: LLMRequest,
    func: Callable[[LLMRequest], TResponse],
    response_json_codec: Codec[TResponse],
    *,
    handle: ScopeHandle | None = None,
    attributes: LLMAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    model_name: str | None = None,
    codec: LlmCodec | None = None,
    response_codec: LlmResponseCodec | None = None,
) -> TResponse: ...


async def llm_execute(
    name: str,
    request: LLMRequest,
    func: Callable[[LLMRequest], TResponse | Awaitable[TResponse]],
    response_json_codec: Codec[TResponse],
    *,
    handle: ScopeHandle | None = None,
    attributes: LLMAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    model_name: str | None = None,
    codec: LlmCodec | None = None,
    response_codec: LlmResponseCodec | None = None,
) -> TResponse:
    """Run a buffered provider call with a typed response through ``nemo_relay.llm.execute``.

    ``func`` returns a typed response; it is encoded with ``response_json_codec`` for the execution
    intercepts and the end event, and the JSON the pipeline returns is decoded for you.

    Args:
        name: Call name.
        request: The provider request (JSON, as for ``llm.execute``).
        func: The provider call, sync or async: ``func(request)`` returns the typed response.
        response_json_codec: Encodes and decodes the response.
        handle: Parent scope; defaults to the current top.
        attributes: LLM flags.
        data: Fallback end payload of a failed call.
        metadata: Metadata of the start and end events.
        model_name: Recorded in ``category_profile.model_name``.
        codec: Request codec handed to ``llm.execute``; request intercepts then edit the annotated request.
        response_codec: Response codec for the end event's annotation.

    Returns:
        The decoded response.

    Raises:
        RuntimeError: As ``llm.execute``.
    """

    async def run_json(provider_request: LLMRequest) -> Json:
        response = func(provider_request)
        if inspect.isawaitable(response):
            response = await response
        return response_json_codec.to_json(cast(TResponse, response))

    raw = await llm.execute(
        name,
        request,
        run_json,
        handle=handle,
        attributes=attributes,
        data=data,
        metadata=metadata,
        model_name=model_name,
        codec=codec,
        response_codec=response_codec,
    )
    return response_json_codec.from_json(raw)


async def llm_stream_execute(
    name: str,
    request: LLMRequest,
    func: Callable[[LLMRequest], AsyncIterator[TResponseChunk]],
    collector: Callable[[TResponseChunk], None],
    finalizer: Callable[[], TResponse],
    chunk_json_codec: Codec[TResponseChunk],
    response_json_codec: Codec[TResponse],
    *,
    handle: ScopeHandle | None = None,
    attributes: LLMAttributes | None = None,
    data: Json | None = None,
    metadata: Json | None = None,
    model_name: str | None = None,
    codec: LlmCodec | None = None,
    response_codec: LlmResponseCodec | None = None,
) -> LlmStream:
    """Run a streaming provider call with typed chunks through ``nemo_relay.llm.stream_execute``.

    Each typed chunk ``func`` yields is encoded with ``chunk_json_codec``; ``collector`` receives it
    decoded again, and the finalizer's typed response is encoded with ``response_json_codec`` for the
    end event. The returned stream yields the JSON chunks, as stream intercepts left them.

    Args:
        name: Call name.
        request: The provider request.
        func: An async generator function (or any function returning an async iterator) of typed chunks.
        collector: Called with each decoded chunk.
        finalizer: Called when the stream ends; returns the typed response recorded on the end event.
        chunk_json_codec: Encodes and decodes chunks.
        response_json_codec: Encodes the finalizer's response.
        handle: Parent scope; defaults to the current top.
        attributes: LLM flags.
        data: Fallback end payload.
        metadata: Metadata of the start and end events.
        model_name: Recorded in ``category_profile.model_name``.
        codec: Request codec handed to ``llm.stream_execute``.
        response_codec: Response codec for the end event's annotation.

    Returns:
        The ``LlmStream`` of JSON chunks.

    Raises:
        RuntimeError: As ``llm.stream_execute``.
    """

    async def stream_json(provider_request: LLMRequest) -> AsyncIterator[Json]:
        async for chunk in func(provider_request):
            yield chunk_json_codec.to_json(chunk)

    def collect_json(chunk: Json) -> None:
        collector(chunk_json_codec.from_json(chunk))

    def finalize_json() -> Json:
        return response_json_codec.to_json(finalizer())

    return await llm.stream_execute(
        name,
        request,
        stream_json,
        collect_json,
        finalize_json,
        handle=handle,
        attributes=attributes,
        data=data,
        metadata=metadata,
        model_name=model_name,
        codec=codec,
        response_codec=response_codec,
    )
