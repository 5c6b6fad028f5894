"""Typed wrappers and value codecs (``nemo_relay.typed``): every codec in both directions, the safety of
``BestEffortAnyCodec`` (its restricted unpickler and type resolution), the typed managed calls end to end, and the
module working without pydantic.

Encodings, tags, fallbacks and error texts were confirmed against the reference wheel (nemo-relay 0.8.4).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import gc
import inspect
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import nemo_relay
from nemo_relay import (
    LLMRequest,
    ScopeType,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
    intercepts,
    scope,
    subscribers,
    typed,
)
from nemo_relay.typed import BestEffortAnyCodec, Codec, DataclassCodec, JsonPassthrough, PydanticCodec

pytestmark = pytest.mark.timeout(60)

TYPE_ERROR = "typed tool callback must return ToolExecutionResult"


# --- fixtures and sample types ---------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: int | None = None


@dataclasses.dataclass
class Shape:
    name: str
    origin: Point
    corners: list[Point]
    labels: dict[str, Point]
    note: str | None = None
    extra: Any = None


@dataclasses.dataclass
class Query:
    text: str
    limit: int | None = None


@dataclasses.dataclass
class Answer:
    words: list[str]
    source: str | None = None


@dataclasses.dataclass
class Chunk:
    token: str


@dataclasses.dataclass
class Reply:
    text: str
    tokens: int | None = None


class DuckModel:
    """Has the pydantic surface (``model_dump``/``model_validate``) without pydantic."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.modes: list[str] = []

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        self.modes.append(mode)
        return {"value": self.value}

    @classmethod
    def model_validate(cls, data: Any) -> DuckModel:
        return cls(data["value"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DuckModel) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


class BrokenDump:
    """``model_dump`` exists but raises: the codecs fall through to the next encoding."""

    def model_dump(self, *, mode: str = "python") -> Any:
        raise ValueError("no dump")


@dataclasses.dataclass
class BrokenDumpDataclass:
    value: int

    def model_dump(self, *, mode: str = "python") -> Any:
        raise ValueError("no dump")


class Picklable:
    """A module-level class: pickles fine, but the restricted unpickler must refuse it."""

    def __init__(self, value: int) -> None:
        self.value = value


executed: list[str] = []


def record_execution(label: str) -> str:
    executed.append(label)
    return label


class Exploit:
    """Unpickling this calls ``record_execution`` (module global), unless the unpickler refuses it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (record_execution, ("exploit ran",))


class ShellExploit:
    """Unpickling this runs a shell command through ``os.system``, unless refused."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class EvalExploit:
    """``builtins.eval`` is a builtin, yet not one of the allowed containers."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, ("__import__('tests_typed_marker')",))


class Holder:
    """Has an attribute literally named ``<locals>``: import-path resolution must still not walk into it."""


setattr(Holder, "<locals>", SimpleNamespace(Point=Point))


def pickle_tag(value: object, qualname: str = "x.Y") -> dict[str, Any]:
    return {"__nv_pickle__": qualname, "data": base64.b64encode(pickle.dumps(value)).decode("ascii")}


def make_local_dataclass() -> type:
    @dataclasses.dataclass
    class Local:
        value: int

    return Local


@pytest.fixture(autouse=True)
def _reset_executed() -> None:
    executed.clear()


async def flush() -> None:
    assert await subscribers.flush_async(timeout=10), "dispatcher did not drain within 10 s"


def scopes(events: list[Any], category: str) -> list[Any]:
    return [e for e in events if getattr(e, "category", None) == category]


# --- module surface -------------------------------------------------------------------------------------------


def test_module_surface_and_docstrings():
    assert set(typed.__all__) == {
        "Codec",
        "JsonPassthrough",
        "PydanticCodec",
        "DataclassCodec",
        "BestEffortAnyCodec",
        "tool_execute",
        "llm_execute",
        "llm_stream_execute",
    }
    assert nemo_relay.typed is typed
    assert typed.tools is nemo_relay.tools
    assert typed.llm is nemo_relay.llm
    assert typed.__doc__
    for name in typed.__all__:
        obj = getattr(typed, name)
        assert inspect.getdoc(obj), name
        if isinstance(obj, type):
            for method in ("to_json", "from_json"):
                assert inspect.getdoc(getattr(obj, method)), f"{name}.{method}"
    for name in ("tool_execute", "llm_execute", "llm_stream_execute"):
        assert inspect.iscoroutinefunction(getattr(typed, name))


def test_typed_wrapper_signatures():
    tool = inspect.signature(typed.tool_execute)
    assert list(tool.parameters)[:5] == ["name", "args", "func", "args_codec", "result_codec"]
    keyword_only = [p.name for p in tool.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keyword_only == ["handle", "attributes", "data", "metadata", "tool_call_id"]

    buffered = inspect.signature(typed.llm_execute)
    assert list(buffered.parameters)[:4] == ["name", "request", "func", "response_json_codec"]
    keyword_only = [p.name for p in buffered.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keyword_only == ["handle", "attributes", "data", "metadata", "model_name", "codec", "response_codec"]

    streamed = inspect.signature(typed.llm_stream_execute)
    assert list(streamed.parameters)[:7] == [
        "name",
        "request",
        "func",
        "collector",
        "finalizer",
        "chunk_json_codec",
        "response_json_codec",
    ]
    keyword_only = [p.name for p in streamed.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keyword_only == ["handle", "attributes", "data", "metadata", "model_name", "codec", "response_codec"]


# --- Codec and JsonPassthrough ---------------------------------------------------------------------------


def test_codec_base_methods_raise_not_implemented():
    codec: Codec[int] = Codec()
    with pytest.raises(NotImplementedError):
        codec.to_json(1)
    with pytest.raises(NotImplementedError):
        codec.from_json(1)
    assert Codec[int] is not None  # subscriptable like any generic


def test_codec_subclass_is_used_by_the_wrappers_contract():
    class Upper(Codec[str]):
        def to_json(self, value: str) -> Any:
            return value.upper()

        def from_json(self, data: Any) -> str:
            return str(data).lower()

    codec = Upper()
    assert codec.to_json("abc") == "ABC"
    assert codec.from_json("ABC") == "abc"
    assert isinstance(codec, Codec)


@pytest.mark.parametrize("value", [None, 1, 2.5, "s", True, [1, {"a": None}], {"k": [1, 2]}])
def test_json_passthrough_returns_the_same_object(value):
    codec = JsonPassthrough()
    assert codec.to_json(value) is value
    assert codec.from_json(value) is value


def test_json_passthrough_does_not_validate():
    marker = object()
    assert JsonPassthrough().to_json(marker) is marker  # type: ignore[arg-type]


# --- PydanticCodec ------------------------------------------------------------------------------------------


def test_pydantic_codec_dumps_in_json_mode_and_validates():
    pydantic = pytest.importorskip("pydantic")

    class Event(pydantic.BaseModel):
        when: datetime.date
        tags: list[str] = pydantic.Field(default_factory=list)
        note: str | None = None

    codec = PydanticCodec(Event)
    value = Event(when=datetime.date(2024, 1, 2), tags=["a"])
    assert codec.to_json(value) == {"when": "2024-01-02", "tags": ["a"], "note": None}
    restored = codec.from_json({"when": "2024-01-02", "tags": ["a"]})
    assert isinstance(restored, Event)
    assert restored == value


def test_pydantic_codec_nested_models():
    pydantic = pytest.importorskip("pydantic")

    class Leaf(pydantic.BaseModel):
        n: int

    class Tree(pydantic.BaseModel):
        leaves: list[Leaf]

    codec = PydanticCodec(Tree)
    assert codec.to_json(Tree(leaves=[Leaf(n=1), Leaf(n=2)])) == {"leaves": [{"n": 1}, {"n": 2}]}
    assert codec.from_json({"leaves": [{"n": 3}]}).leaves[0] == Leaf(n=3)


def test_pydantic_codec_validation_errors_propagate():
    pydantic = pytest.importorskip("pydantic")

    class Strict(pydantic.BaseModel):
        n: int

    with pytest.raises(pydantic.ValidationError):
        PydanticCodec(Strict).from_json({"n": "not a number"})


def test_pydantic_codec_accepts_any_model_like_class():
    codec = PydanticCodec(DuckModel)
    value = DuckModel(4)
    assert codec.to_json(value) == {"value": 4}
    assert value.modes == ["json"]
    assert codec.from_json({"value": 5}) == DuckModel(5)


# --- DataclassCodec and _serialize_value ------------------------------------------------------------------------


def test_dataclass_codec_omits_none_fields():
    assert DataclassCodec(Point).to_json(Point(1)) == {"x": 1}
    assert DataclassCodec(Point).to_json(Point(1, 2)) == {"x": 1, "y": 2}


def test_dataclass_codec_falsy_values_are_kept():
    assert DataclassCodec(Point).to_json(Point(0, 0)) == {"x": 0, "y": 0}
    assert DataclassCodec(Answer).to_json(Answer([], "")) == {"words": [], "source": ""}


def test_dataclass_codec_recurses_into_dataclasses_lists_and_dicts():
    shape = Shape(
        name="square",
        origin=Point(0),
        corners=[Point(1, 2), Point(3)],
        labels={"a": Point(4), "b": Point(5, None)},
    )
    assert DataclassCodec(Shape).to_json(shape) == {
        "name": "square",
        "origin": {"x": 0},
        "corners": [{"x": 1, "y": 2}, {"x": 3}],
        "labels": {"a": {"x": 4}, "b": {"x": 5}},
    }


def test_dataclass_codec_none_inside_containers_is_kept():
    shape = Shape("s", Point(0), [], {}, extra={"keep": None, "list": [None, Point(1)]})
    assert DataclassCodec(Shape).to_json(shape)["extra"] == {"keep": None, "list": [None, {"x": 1}]}


def test_dataclass_codec_dumps_models_in_fields():
    model = DuckModel(7)
    shape = Shape("s", Point(0), [], {}, extra=[model])
    assert DataclassCodec(Shape).to_json(shape)["extra"] == [{"value": 7}]
    assert model.modes == ["json"]


def test_dataclass_codec_dumps_pydantic_fields():
    pydantic = pytest.importorskip("pydantic")

    class Stamp(pydantic.BaseModel):
        day: datetime.date

    shape = Shape("s", Point(0), [], {}, extra={"stamp": Stamp(day=datetime.date(2024, 5, 6))})
    assert DataclassCodec(Shape).to_json(shape)["extra"] == {"stamp": {"day": "2024-05-06"}}


def test_dataclass_codec_from_json_calls_the_constructor():
    assert DataclassCodec(Point).from_json({"x": 1, "y": 2}) == Point(1, 2)
    assert DataclassCodec(Point).from_json({"x": 1}) == Point(1)
    nested = DataclassCodec(Shape).from_json({"name": "s", "origin": {"x": 0}, "corners": [], "labels": {}})
    assert nested.origin == {"x": 0}  # nested values stay JSON: dc_cls(**data) only


def test_dataclass_codec_errors():
    with pytest.raises(TypeError, match="must be called with a dataclass type or instance"):
        DataclassCodec(Point).to_json({"x": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DataclassCodec(Point).from_json({"x": 1, "z": 2})
    with pytest.raises(TypeError):
        DataclassCodec(Point).from_json([1, 2])


def test_serialize_value_leaves_other_values_alone():
    serialize = typed._serialize_value
    assert serialize(3) == 3
    assert serialize(None) is None
    marker = object()
    assert serialize(marker) is marker
    tuple_value = (1, Point(1))
    assert serialize(tuple_value) is tuple_value  # only lists and dicts are walked
    broken = BrokenDump()
    assert serialize(broken) is broken  # a failing model_dump leaves the value as it is
    assert serialize(Point) is Point  # a dataclass *type* is not an instance
    assert serialize({"a": [Point(1, None)], "m": DuckModel(2)}) == {"a": [{"x": 1}], "m": {"value": 2}}


# --- BestEffortAnyCodec: encoding --------------------------------------------------------------------------------


def strip_token(encoded: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in encoded.items() if k != "__nv_runtime_type__"}


def test_best_effort_models_are_tagged_and_round_trip():
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(DuckModel(3))
    assert strip_token(encoded) == {"__nv_pydantic__": f"{__name__}.DuckModel", "data": {"value": 3}}
    assert encoded["__nv_runtime_type__"] == f"{__name__}.DuckModel:{id(DuckModel)}"
    assert list(encoded) == ["__nv_pydantic__", "__nv_runtime_type__", "data"]
    assert codec.from_json(encoded) == DuckModel(3)


def test_best_effort_pydantic_models_round_trip():
    pydantic = pytest.importorskip("pydantic")

    class Reading(pydantic.BaseModel):
        day: datetime.date
        value: float | None = None

    codec = BestEffortAnyCodec()
    encoded = codec.to_json(Reading(day=datetime.date(2024, 1, 2)))
    assert encoded["__nv_pydantic__"] == f"{__name__}.{Reading.__qualname__}"
    assert encoded["data"] == {"day": "2024-01-02", "value": None}
    restored = codec.from_json(encoded)
    assert isinstance(restored, Reading)
    assert restored.day == datetime.date(2024, 1, 2)


def test_best_effort_dataclasses_are_tagged_without_none_fields():
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(Shape("s", Point(1), [Point(2, 3)], {}))
    assert strip_token(encoded) == {
        "__nv_dataclass__": f"{__name__}.Shape",
        "data": {"name": "s", "origin": {"x": 1}, "corners": [{"x": 2, "y": 3}], "labels": {}},
    }
    assert encoded["__nv_runtime_type__"] == f"{__name__}.Shape:{id(Shape)}"
    assert codec.from_json(codec.to_json(Point(1))) == Point(1)


def test_best_effort_model_dump_wins_over_dataclass_and_failures_fall_through():
    codec = BestEffortAnyCodec()

    @dataclasses.dataclass
    class Both:
        n: int

        def model_dump(self, *, mode: str = "python") -> Any:
            return {"dumped": self.n}

    assert codec.to_json(Both(1))["__nv_pydantic__"].endswith("Both")
    assert codec.to_json(Both(1))["data"] == {"dumped": 1}
    broken = codec.to_json(BrokenDumpDataclass(2))
    assert "__nv_pydantic__" not in broken
    assert broken["__nv_dataclass__"] == f"{__name__}.BrokenDumpDataclass"
    assert codec.to_json(BrokenDump())["__nv_pickle__"] == f"{__name__}.BrokenDump"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("text", "text"),
        (3, 3),
        (2.5, 2.5),
        (True, True),
        ([1, "a", None], [1, "a", None]),
        ({"a": {"b": [1]}}, {"a": {"b": [1]}}),
        ((1, 2), [1, 2]),  # a JSON round trip turns tuples into lists
        ({1: "a"}, {"1": "a"}),  # ... and keys into strings
    ],
)
def test_best_effort_json_values_are_plain(value, expected):
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(value)
    assert encoded == expected
    assert codec.from_json(encoded) == expected


def test_best_effort_plain_json_is_a_copy():
    value = {"a": [1]}
    encoded = BestEffortAnyCodec().to_json(value)
    assert encoded == value
    assert encoded is not value


@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset({"a"}), b"bytes", {"nested": ({1}, (2, 3))}, [(1, {2})]],
    ids=["set", "frozenset", "bytes", "dict-with-set", "list-with-tuple-set"],
)
def test_best_effort_picklable_builtins_round_trip(value):
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(value)
    assert encoded["__nv_pickle__"] == f"builtins.{type(value).__qualname__}"
    assert set(encoded) == {"__nv_pickle__", "data"}
    assert pickle.loads(base64.b64decode(encoded["data"])) == value
    restored = codec.from_json(encoded)
    assert restored == value
    assert type(restored) is type(value)


def test_best_effort_custom_classes_pickle_but_are_never_unpickled():
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(Picklable(5))
    assert encoded["__nv_pickle__"] == f"{__name__}.Picklable"
    assert pickle.loads(base64.b64decode(encoded["data"])).value == 5  # a real pickle
    assert codec.from_json(encoded) == encoded  # refused: only builtin containers load


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        (datetime.date(2024, 1, 2), "datetime.date"),
        (bytearray(b"ab"), "builtins.bytearray"),
        (range(3), "builtins.range"),
    ],
)
def test_best_effort_other_classes_are_refused_too(value, tag):
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(value)
    assert encoded["__nv_pickle__"] == tag
    assert codec.from_json(encoded) is encoded


def test_best_effort_unpicklable_values_fall_back_to_str():
    codec = BestEffortAnyCodec()
    func = lambda: 1  # noqa: E731
    encoded = codec.to_json(func)
    assert encoded == {"__nv_fallback_str__": "builtins.function", "data": str(func)}
    assert codec.from_json(encoded) == str(func)

    local = make_local_dataclass()
    instance = SimpleNamespace(obj=local)  # namespace holding a class that cannot be pickled
    encoded = codec.to_json(instance)
    assert encoded == {"__nv_fallback_str__": "types.SimpleNamespace", "data": str(instance)}


@pytest.mark.parametrize(
    ("value", "tag", "qualname"),
    [
        (object(), "__nv_pickle__", "builtins.object"),
        (iter([1]), "__nv_pickle__", "builtins.list_iterator"),
        (Point, "__nv_pickle__", "builtins.type"),  # a dataclass *type* is not a dataclass instance
        (sys, "__nv_fallback_str__", "builtins.module"),
        ((x for x in []), "__nv_fallback_str__", "builtins.generator"),
    ],
)
def test_best_effort_never_raises_for_odd_values(value, tag, qualname):
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(value)
    assert set(encoded) == {tag, "data"}
    assert encoded[tag] == qualname
    decoded = codec.from_json(encoded)
    assert decoded == (str(value) if tag == "__nv_fallback_str__" else encoded)


def test_best_effort_infinity_survives_the_json_round_trip():
    assert BestEffortAnyCodec().to_json(float("inf")) == float("inf")


# --- BestEffortAnyCodec: decoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 1, "s", [1, 2], {"no_data": 1}, {"__nv_pickle__": "x"}])
def test_best_effort_untagged_values_pass_through(value):
    assert BestEffortAnyCodec().from_json(value) is value


@pytest.mark.parametrize(
    "raw",
    [
        {"data": 1},
        {"__nv_unknown__": "x", "data": {"a": 1}},
        {"__nv_pickle__": "x", "data": "!!! not base64"},
        {"__nv_pickle__": "x", "data": base64.b64encode(b"not a pickle").decode()},
        {"__nv_pickle__": "x", "data": 12},
        {"__nv_dataclass__": "nowhere.Nothing", "data": {}},
        {"__nv_dataclass__": f"{__name__}.Point", "data": [1]},
        {"__nv_dataclass__": f"{__name__}.Point", "data": {"z": 1}},
        {"__nv_dataclass__": f"{__name__}.DuckModel", "data": {"value": 1}},  # not a dataclass
        {"__nv_pydantic__": f"{__name__}.Point", "data": {"x": 1}},  # no model_validate
        {"__nv_pydantic__": "nowhere.Nothing", "data": {}},
        {"__nv_fallback_str__": "x", "data": 3},
    ],
)
def test_best_effort_failures_return_the_raw_dict(raw):
    assert BestEffortAnyCodec().from_json(raw) is raw


def test_best_effort_validation_failure_returns_the_raw_dict():
    pydantic = pytest.importorskip("pydantic")

    class Strict(pydantic.BaseModel):
        n: int

    codec = BestEffortAnyCodec()
    encoded = codec.to_json(Strict(n=1))
    encoded["data"] = {"n": "nope"}
    assert codec.from_json(encoded) is encoded


def test_best_effort_tags_are_tried_in_order():
    codec = BestEffortAnyCodec()
    both = {"__nv_pydantic__": f"{__name__}.DuckModel", "__nv_dataclass__": f"{__name__}.Point", "data": {"x": 5}}
    assert codec.from_json(both) == Point(5)  # the model fails to validate, the dataclass applies
    pickled = pickle_tag([1])
    assert codec.from_json({**pickled, "__nv_fallback_str__": "x"}) == [1]
    assert codec.from_json({"__nv_fallback_str__": "x", "data": "text"}) == "text"


# --- the restricted unpickler ------------------------------------------------------------------------------------


def test_restricted_unpickler_refuses_a_module_function_and_runs_nothing():
    payload = pickle_tag(Exploit())
    assert pickle.loads(base64.b64decode(payload["data"])) == "exploit ran"  # the payload is live ...
    executed.clear()
    assert BestEffortAnyCodec().from_json(payload) is payload  # ... and refused here
    assert executed == []


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle_tag(ShellExploit(f"touch {marker}"), "os.system")
    assert BestEffortAnyCodec().from_json(payload) is payload
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_builtins():
    sys.modules.pop("tests_typed_marker", None)
    payload = pickle_tag(EvalExploit())
    assert BestEffortAnyCodec().from_json(payload) is payload
    assert "tests_typed_marker" not in sys.modules


def test_restricted_unpickler_refuses_exploits_nested_in_containers():
    payload = pickle_tag({"items": [1, Exploit()]})
    assert BestEffortAnyCodec().from_json(payload) is payload
    assert executed == []


def test_restricted_unpickler_allows_every_listed_container():
    value: dict[str, Any] = {"d": {"l": [1.5, None, True]}, "t": (1, "a"), "s": {1, 2}, "f": frozenset({3})}
    assert BestEffortAnyCodec().from_json(pickle_tag({**value, "b": b"x"})) == {**value, "b": b"x"}
    for protocol in range(3, pickle.HIGHEST_PROTOCOL + 1):  # protocol 3 names set/frozenset as builtins globals
        encoded = {"__nv_pickle__": "builtins.dict", "data": base64.b64encode(pickle.dumps(value, protocol)).decode()}
        assert BestEffortAnyCodec().from_json(encoded) == value
    for protocol in range(3):  # Python 2 protocols name ``__builtin__.set``: not on the list, refused
        encoded = {"__nv_pickle__": "builtins.set", "data": base64.b64encode(pickle.dumps({1}, protocol)).decode()}
        assert BestEffortAnyCodec().from_json(encoded) is encoded


# --- runtime tokens and import paths -----------------------------------------------------------------------------


def test_runtime_token_format_and_resolution():
    token = typed._register_runtime_type(Point)
    assert token == f"{Point.__module__}.{Point.__qualname__}:{id(Point)}"
    assert typed._resolve_runtime_type(token) is Point
    assert typed._register_runtime_type(Point) == token  # stable


@pytest.mark.parametrize("token", [None, 1, "", "unknown.Type:1", f"{__name__}.Point:0"])
def test_runtime_token_unknown_values_resolve_to_none(token):
    assert typed._resolve_runtime_type(token) is None


def test_runtime_tokens_resolve_local_classes():
    local = make_local_dataclass()
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(local(3))
    assert "<locals>" in encoded["__nv_dataclass__"]
    assert encoded["__nv_runtime_type__"] == f"{local.__module__}.{local.__qualname__}:{id(local)}"
    restored = codec.from_json(encoded)
    assert type(restored) is local
    assert restored.value == 3


def test_runtime_tokens_are_weak():
    local = make_local_dataclass()
    token = typed._register_runtime_type(local)
    encoded = BestEffortAnyCodec().to_json(local(1))
    assert typed._resolve_runtime_type(token) is local
    del local
    gc.collect()
    assert typed._resolve_runtime_type(token) is None
    # the import path is under <locals>, so nothing resolves and the raw dict comes back
    assert BestEffortAnyCodec().from_json(encoded) is encoded


def test_import_path_is_used_when_the_token_is_unknown():
    codec = BestEffortAnyCodec()
    encoded = codec.to_json(Point(1, 2))
    encoded["__nv_runtime_type__"] = "stale.Point:1"
    assert codec.from_json(encoded) == Point(1, 2)
    del encoded["__nv_runtime_type__"]
    assert codec.from_json(encoded) == Point(1, 2)


def test_token_wins_over_the_import_path():
    local = make_local_dataclass()
    encoded = {"__nv_dataclass__": f"{__name__}.Point", "__nv_runtime_type__": typed._register_runtime_type(local)}
    encoded["data"] = {"value": 9}
    restored = BestEffortAnyCodec().from_json(encoded)
    assert type(restored) is local


def test_resolve_importable_type():
    resolve = typed._resolve_importable_type
    assert resolve("collections.OrderedDict") is __import__("collections").OrderedDict
    assert resolve("json.decoder.JSONDecoder") is __import__("json").decoder.JSONDecoder
    assert resolve(f"{__name__}.Point") is Point
    assert resolve(f"{__name__}.Holder") is Holder
    assert resolve("datetime.datetime") is datetime.datetime


@pytest.mark.parametrize(
    "path",
    [None, 3, "", "json", "os.path.join", "no_such_module_xyz.Thing", "collections.NoSuchThing", "a.<locals>.B"],
)
def test_resolve_importable_type_returns_none(path):
    assert typed._resolve_importable_type(path) is None


def test_resolve_importable_type_skips_locals():
    assert getattr(Holder, "<locals>").Point is Point  # walking the attributes would find a class ...
    assert typed._resolve_importable_type(f"{__name__}.Holder.<locals>.Point") is None  # ... but <locals> is skipped


# --- tool_execute ---------------------------------------------------------------------------------------------


async def test_tool_execute_round_trip_with_events(events):
    seen: list[Any] = []

    async def search(query: Query) -> ToolExecutionResult[Answer]:
        seen.append(query)
        return ToolExecutionResult(Answer(query.text.split()), annotation={"source": "index"})

    result = await typed.tool_execute(
        "search",
        Query("hello typed world"),
        search,
        DataclassCodec(Query),
        DataclassCodec(Answer),
        metadata={"request": 1},
        tool_call_id="call-1",
    )
    assert isinstance(result, ToolExecutionResult)
    assert result.result == Answer(["hello", "typed", "world"])
    assert result.annotation == {"source": "index"}
    assert seen == [Query("hello typed world")]

    await flush()
    start, end = scopes(events, "tool")
    assert start.scope_category == "start"
    assert start.name == "search"
    assert start.data == {"text": "hello typed world"}  # limit=None omitted
    assert start.metadata == {"request": 1}
    assert start.category_profile == {"tool_call_id": "call-1"}
    assert end.data == {"words": ["hello", "typed", "world"]}  # source=None omitted
    assert end.category_profile == {"tool_call_id": "call-1", "tool_result_annotation": {"source": "index"}}
    assert end.metadata == {"request": 1, "otel.status_code": "OK"}
    assert end.uuid == start.uuid


async def test_tool_execute_accepts_sync_functions():
    result = await typed.tool_execute(
        "double",
        4,
        lambda n: ToolExecutionResult(n * 2),
        JsonPassthrough(),
        JsonPassthrough(),
    )
    assert result.result == 8
    assert result.annotation is None


async def test_tool_execute_with_best_effort_codecs(events):
    result = await typed.tool_execute(
        "sets",
        {1, 2},
        lambda values: ToolExecutionResult(frozenset(v * 10 for v in values)),
        BestEffortAnyCodec(),
        BestEffortAnyCodec(),
    )
    assert result.result == frozenset({10, 20})
    await flush()
    start, end = scopes(events, "tool")
    assert start.data["__nv_pickle__"] == "builtins.set"
    assert end.data["__nv_pickle__"] == "builtins.frozenset"


async def test_tool_execute_with_pydantic_codecs(events):
    pydantic = pytest.importorskip("pydantic")

    class Args(pydantic.BaseModel):
        day: datetime.date

    class Out(pydantic.BaseModel):
        weekday: int

    result = await typed.tool_execute(
        "weekday",
        Args(day=datetime.date(2024, 1, 1)),
        lambda args: ToolExecutionResult(Out(weekday=args.day.isoweekday())),
        PydanticCodec(Args),
        PydanticCodec(Out),
    )
    assert result.result == Out(weekday=1)
    await flush()
    start, end = scopes(events, "tool")
    assert start.data == {"day": "2024-01-01"}
    assert end.data == {"weekday": 1}


async def test_tool_execute_function_sees_request_intercept_rewrites():
    intercepts.register_tool_request("limit", 0, False, lambda name, args: {**args, "limit": 3})
    seen: list[Query] = []

    def search(query: Query) -> ToolExecutionResult[Answer]:
        seen.append(query)
        return ToolExecutionResult(Answer(["x"] * (query.limit or 0)))

    result = await typed.tool_execute("search", Query("q"), search, DataclassCodec(Query), DataclassCodec(Answer))
    assert seen == [Query("q", 3)]
    assert result.result == Answer(["x", "x", "x"])


async def test_tool_execute_annotation_survives_a_json_execution_intercept(events):
    observed: list[Any] = []

    async def wrap(name, args, next_):
        observed.append(args)
        downstream = await next_(args)
        observed.append((downstream.result, downstream.annotation))
        return ToolExecutionInterceptOutcome(
            {**downstream.result, "source": "intercept"}, annotation=downstream.annotation
        )

    intercepts.register_tool_execution("wrap", 0, wrap)
    result = await typed.tool_execute(
        "search",
        Query("a b"),
        lambda q: ToolExecutionResult(Answer(q.text.split()), annotation={"score": 0.5, "tags": ["t"]}),
        DataclassCodec(Query),
        DataclassCodec(Answer),
    )
    assert observed == [{"text": "a b"}, ({"words": ["a", "b"]}, {"score": 0.5, "tags": ["t"]})]
    assert result.result == Answer(["a", "b"], source="intercept")
    assert result.annotation == {"score": 0.5, "tags": ["t"]}
    await flush()
    _, end = scopes(events, "tool")
    assert end.category_profile == {"tool_result_annotation": {"score": 0.5, "tags": ["t"]}}
    assert end.data == {"words": ["a", "b"], "source": "intercept"}


async def test_tool_execute_intercept_can_short_circuit():
    called: list[Any] = []
    intercepts.register_tool_execution(
        "cache", 0, lambda name, args, next_: ToolExecutionInterceptOutcome({"words": ["cached"]})
    )
    result = await typed.tool_execute(
        "search",
        Query("q"),
        lambda q: called.append(q) or ToolExecutionResult(Answer([])),
        DataclassCodec(Query),
        DataclassCodec(Answer),
    )
    assert called == []
    assert result.result == Answer(["cached"])


async def test_tool_execute_rejects_raw_returns(events):
    with pytest.raises(RuntimeError, match=TYPE_ERROR) as info:
        await typed.tool_execute("t", Query("x"), lambda q: {"raw": 1}, DataclassCodec(Query), JsonPassthrough())
    assert str(info.value) == f"internal error: TypeError: {TYPE_ERROR}"
    await flush()
    start, end = scopes(events, "tool")
    assert start.data == {"text": "x"}
    assert end.data is None
    assert end.metadata == {
        "otel.status_code": "ERROR",
        "otel.status_description": f"internal error: TypeError: {TYPE_ERROR}",
        "error.type": "internal_error",
        "exception.type": "TypeError",
    }


async def test_tool_execute_rejects_raw_returns_from_async_functions():
    async def raw(query: Query) -> Any:
        return Answer(["not wrapped"])

    with pytest.raises(RuntimeError, match=TYPE_ERROR):
        await typed.tool_execute("t", Query("x"), raw, DataclassCodec(Query), DataclassCodec(Answer))


async def test_tool_execute_function_errors_surface_like_tools_execute(events):
    def boom(query: Query) -> ToolExecutionResult[Answer]:
        raise ValueError("boom")

    with pytest.raises(RuntimeError, match="ValueError: boom"):
        await typed.tool_execute("t", Query("x"), boom, DataclassCodec(Query), DataclassCodec(Answer))
    await flush()
    assert scopes(events, "tool")[-1].metadata["exception.type"] == "ValueError"


async def test_tool_execute_args_encoding_errors_raise_before_any_event(events):
    with pytest.raises(TypeError, match="dataclass"):
        await typed.tool_execute(
            "t", {"not": "a dataclass"}, lambda q: ToolExecutionResult(None), DataclassCodec(Query), JsonPassthrough()
        )
    with pytest.raises(ValueError, match="Failed to convert to JSON"):
        await typed.tool_execute(
            "t", object(), lambda q: ToolExecutionResult(None), JsonPassthrough(), JsonPassthrough()
        )
    await flush()
    assert scopes(events, "tool") == []


async def test_tool_execute_forwards_the_scope_options(events):
    with scope.scope("agent", ScopeType.Agent) as agent:
        inner = scope.push("inner", ScopeType.Function)
        await typed.tool_execute(
            "t",
            1,
            lambda n: ToolExecutionResult(n),
            JsonPassthrough(),
            JsonPassthrough(),
            handle=agent,
            attributes=nemo_relay.ToolAttributes(nemo_relay.ToolAttributes.REMOTE),
        )
        scope.pop(inner)
    await flush()
    start, _ = scopes(events, "tool")
    assert start.parent_uuid == agent.uuid
    assert start.attributes == ["remote"]


async def test_tool_execute_passes_keywords_to_tools_execute(monkeypatch):
    captured: dict[str, Any] = {}

    async def fake_execute(name, args, func, **kwargs):
        captured.update(name=name, args=args, kwargs=kwargs)
        return await func(args)

    monkeypatch.setattr(typed.tools, "execute", fake_execute)
    handle = scope.get_handle()
    result = await typed.tool_execute(
        "t",
        Point(1),
        lambda p: ToolExecutionResult(Point(p.x + 1), "note"),
        DataclassCodec(Point),
        DataclassCodec(Point),
        handle=handle,
        data={"d": 1},
        metadata={"m": 1},
        tool_call_id="id-7",
    )
    assert result.result == Point(2)
    assert result.annotation == "note"
    assert captured["name"] == "t"
    assert captured["args"] == {"x": 1}
    assert captured["kwargs"] == {
        "handle": handle,
        "attributes": None,
        "data": {"d": 1},
        "metadata": {"m": 1},
        "tool_call_id": "id-7",
    }


# --- llm_execute ------------------------------------------------------------------------------------------------


async def test_llm_execute_round_trip_with_events(events):
    requests: list[LLMRequest] = []

    async def provider(request: LLMRequest) -> Reply:
        requests.append(request)
        return Reply("hello")

    request = LLMRequest({"x-id": "1"}, {"messages": [{"role": "user", "content": "hi"}]})
    reply = await typed.llm_execute(
        "chat", request, provider, DataclassCodec(Reply), model_name="m-1", metadata={"k": "v"}
    )
    assert reply == Reply("hello")
    assert requests[0].content == {"messages": [{"role": "user", "content": "hi"}]}
    await flush()
    start, end = scopes(events, "llm")
    assert start.data == {"headers": {"x-id": "1"}, "content": {"messages": [{"role": "user", "content": "hi"}]}}
    assert start.category_profile == {"model_name": "m-1"}
    assert end.data == {"text": "hello"}  # tokens=None omitted
    assert end.metadata == {"k": "v", "otel.status_code": "OK"}


async def test_llm_execute_accepts_sync_functions():
    reply = await typed.llm_execute("chat", LLMRequest({}, {}), lambda request: Reply("sync", 3), DataclassCodec(Reply))
    assert reply == Reply("sync", 3)


async def test_llm_execute_intercepts_see_json():
    seen: list[Any] = []

    async def wrap(name, request, next_):
        response = await next_(request)
        seen.append(response)
        return {**response, "tokens": 42}

    intercepts.register_llm_execution("wrap", 0, wrap)
    reply = await typed.llm_execute("chat", LLMRequest({}, {}), lambda request: Reply("hi"), DataclassCodec(Reply))
    assert seen == [{"text": "hi"}]
    assert reply == Reply("hi", 42)


async def test_llm_execute_with_best_effort_codec():
    reply = await typed.llm_execute("chat", LLMRequest({}, {}), lambda request: {"a", "b"}, BestEffortAnyCodec())
    assert reply == {"a", "b"}


async def test_llm_execute_errors_surface_like_llm_execute():
    def provider(request: LLMRequest) -> Reply:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError, match="RuntimeError: provider down"):
        await typed.llm_execute("chat", LLMRequest({}, {}), provider, DataclassCodec(Reply))


async def test_llm_execute_forwards_codecs_by_keyword(monkeypatch):
    captured: dict[str, Any] = {}

    async def fake_execute(*args, **kwargs):
        captured["args"] = args
        captured["kwargs"] = kwargs
        return await args[2](args[1])

    request_codec = object()
    response_codec = object()
    handle = scope.get_handle()
    monkeypatch.setattr(typed.llm, "execute", fake_execute)
    assert nemo_relay.llm.execute is fake_execute  # the wrapper looks llm.execute up at call time
    request = LLMRequest({}, {"q": 1})
    reply = await typed.llm_execute(
        "chat",
        request,
        lambda r: Reply("patched"),
        DataclassCodec(Reply),
        handle=handle,
        data={"d": 1},
        metadata={"m": 1},
        model_name="model",
        codec=request_codec,  # type: ignore[arg-type]
        response_codec=response_codec,  # type: ignore[arg-type]
    )
    assert reply == Reply("patched")
    assert captured["args"][:2] == ("chat", request)
    assert len(captured["args"]) == 3
    assert captured["kwargs"]["codec"] is request_codec
    assert captured["kwargs"]["response_codec"] is response_codec
    assert captured["kwargs"] == {
        "handle": handle,
        "attributes": None,
        "data": {"d": 1},
        "metadata": {"m": 1},
        "model_name": "model",
        "codec": request_codec,
        "response_codec": response_codec,
    }


async def test_llm_execute_codec_defaults_to_none(monkeypatch):
    captured: dict[str, Any] = {}

    async def fake_execute(name, request, func, **kwargs):
        captured.update(kwargs)
        return {"text": "x"}

    monkeypatch.setattr(typed.llm, "execute", fake_execute)
    assert await typed.llm_execute("chat", LLMRequest({}, {}), lambda r: None, DataclassCodec(Reply)) == Reply("x")
    assert captured["codec"] is None
    assert captured["response_codec"] is None


async def test_llm_execute_with_a_builtin_codec(events):
    from nemo_relay import codecs  # imported here: the built-in codecs are not needed by the rest

    seen: list[Any] = []

    def edit(name, request, annotated):
        seen.append(annotated.last_user_message())
        return nemo_relay.LLMRequestInterceptOutcome(request, annotated)

    intercepts.register_llm_request("edit", 0, False, edit)
    request = LLMRequest({}, {"model": "gpt", "messages": [{"role": "user", "content": "hello"}]})
    response = {
        "id": "r1",
        "model": "gpt",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    }
    result = await typed.llm_execute(
        "chat",
        request,
        lambda r: response,
        JsonPassthrough(),
        codec=codecs.OpenAIChatCodec(),
        response_codec=codecs.OpenAIChatCodec(),
    )
    assert result == response
    assert seen == ["hello"]
    await flush()
    start, end = scopes(events, "llm")
    assert start.annotated_request is not None
    assert end.annotated_response is not None


# --- llm_stream_execute -----------------------------------------------------------------------------------------


async def test_llm_stream_execute_round_trip_with_events(events):
    collected: list[Chunk] = []

    async def produce(request: LLMRequest):
        for token in ("hel", "lo"):
            yield Chunk(token)

    stream = await typed.llm_stream_execute(
        "stream",
        LLMRequest({}, {"prompt": "hi"}),
        produce,
        collected.append,
        lambda: Reply("".join(c.token for c in collected)),
        DataclassCodec(Chunk),
        DataclassCodec(Reply),
        model_name="m",
    )
    assert isinstance(stream, nemo_relay.llm.LlmStream)
    chunks = [chunk async for chunk in stream]
    assert chunks == [{"token": "hel"}, {"token": "lo"}]  # the stream yields JSON ...
    assert collected == [Chunk("hel"), Chunk("lo")]  # ... the collector gets typed chunks
    await flush()
    start, end = scopes(events, "llm")
    marks = [e for e in events if e.kind == "mark" and e.name == "llm.chunk"]
    assert [m.data["chunk_index"] for m in marks] == [0, 1]
    assert all(m.parent_uuid == start.uuid for m in marks)
    assert end.data == {"text": "hello"}
    assert end.metadata == {"otel.status_code": "OK"}
    assert end.category_profile == {"model_name": "m"}


async def test_llm_stream_execute_stream_intercepts_see_json():
    seen: list[Any] = []

    async def wrap(request, next_):
        source = await next_(request)

        async def relay():
            async for chunk in source:
                seen.append(chunk)
                yield {"token": chunk["token"].upper()}

        return relay()

    intercepts.register_llm_stream_execution("upper", 0, wrap)
    collected: list[Chunk] = []

    async def produce(request: LLMRequest):
        yield Chunk("a")
        yield Chunk("b")

    stream = await typed.llm_stream_execute(
        "stream",
        LLMRequest({}, {}),
        produce,
        collected.append,
        lambda: Reply("done"),
        DataclassCodec(Chunk),
        DataclassCodec(Reply),
    )
    assert [chunk async for chunk in stream] == [{"token": "A"}, {"token": "B"}]
    assert seen == [{"token": "a"}, {"token": "b"}]
    assert collected == [Chunk("A"), Chunk("B")]


async def test_llm_stream_execute_collector_errors_end_the_stream(events):
    async def produce(request: LLMRequest):
        yield Chunk("a")

    def collector(chunk: Chunk) -> None:
        raise RuntimeError("collector broke")

    stream = await typed.llm_stream_execute(
        "stream",
        LLMRequest({}, {}),
        produce,
        collector,
        lambda: Reply(""),
        DataclassCodec(Chunk),
        DataclassCodec(Reply),
    )
    with pytest.raises(RuntimeError, match="collector broke"):
        await stream.__anext__()
    await flush()
    _, end = scopes(events, "llm")
    assert end.metadata["otel.status_code"] == "ERROR"
    assert end.metadata["exception.type"] == "RuntimeError"


async def test_llm_stream_execute_chunk_encoding_errors_end_the_stream():
    async def produce(request: LLMRequest):
        yield "not a dataclass"

    stream = await typed.llm_stream_execute(
        "stream",
        LLMRequest({}, {}),
        produce,
        lambda chunk: None,
        lambda: Reply(""),
        DataclassCodec(Chunk),
        DataclassCodec(Reply),
    )
    with pytest.raises(RuntimeError, match="dataclass"):
        await stream.__anext__()


async def test_llm_stream_execute_forwards_codecs_by_keyword(monkeypatch):
    captured: dict[str, Any] = {}
    sentinel = object()

    async def fake_stream_execute(*args, **kwargs):
        captured["args"] = args
        captured["kwargs"] = kwargs
        return sentinel

    request_codec = object()
    monkeypatch.setattr(typed.llm, "stream_execute", fake_stream_execute)
    request = LLMRequest({}, {})
    result = await typed.llm_stream_execute(
        "stream",
        request,
        lambda r: None,  # type: ignore[arg-type,return-value]
        lambda chunk: None,
        lambda: None,
        JsonPassthrough(),
        JsonPassthrough(),
        model_name="m",
        codec=request_codec,  # type: ignore[arg-type]
    )
    assert result is sentinel
    assert captured["args"][:2] == ("stream", request)
    assert len(captured["args"]) == 5
    assert captured["kwargs"]["codec"] is request_codec
    assert captured["kwargs"]["response_codec"] is None
    assert captured["kwargs"]["model_name"] == "m"

    # the wrapped callbacks translate through the codecs
    _, _, func, collector, finalizer = captured["args"]
    assert inspect.isasyncgenfunction(func)
    assert finalizer() is None
    collector({"a": 1})


async def test_llm_stream_execute_wrapped_callbacks_use_the_codecs(monkeypatch):
    captured: dict[str, Any] = {}

    async def fake_stream_execute(name, request, func, collector, finalizer, **kwargs):
        captured.update(func=func, collector=collector, finalizer=finalizer)

    collected: list[Chunk] = []

    async def produce(request: LLMRequest):
        yield Chunk("z")

    monkeypatch.setattr(typed.llm, "stream_execute", fake_stream_execute)
    await typed.llm_stream_execute(
        "stream",
        LLMRequest({}, {}),
        produce,
        collected.append,
        lambda: Reply("final", 1),
        DataclassCodec(Chunk),
        DataclassCodec(Reply),
    )
    assert [chunk async for chunk in captured["func"](LLMRequest({}, {}))] == [{"token": "z"}]
    captured["collector"]({"token": "q"})
    assert collected == [Chunk("q")]
    assert captured["finalizer"]() == {"text": "final", "tokens": 1}


# --- without pydantic -------------------------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(nemo_relay.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=60
    )


def test_importing_typed_does_not_import_pydantic():
    done = run_python(
        """
        import sys
        import nemo_relay.typed
        assert "pydantic" not in sys.modules, "pydantic imported"
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_typed_works_when_pydantic_is_not_importable():
    done = run_python(
        """
        import asyncio, dataclasses, sys

        class BlockPydantic:
            def find_spec(self, name, path=None, target=None):
                if name == "pydantic" or name.startswith("pydantic."):
                    raise ImportError("pydantic is blocked")
                return None

        sys.meta_path.insert(0, BlockPydantic())
        sys.modules.pop("pydantic", None)
        try:
            import pydantic  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("pydantic still importable")

        import nemo_relay
        from nemo_relay import ToolExecutionResult, typed

        @dataclasses.dataclass
        class P:
            x: int
            y: int | None = None

        assert typed.DataclassCodec(P).to_json(P(1)) == {"x": 1}
        assert typed.DataclassCodec(P).from_json({"x": 2}) == P(2)
        assert typed.JsonPassthrough().to_json([1]) == [1]

        codec = typed.BestEffortAnyCodec()
        assert codec.from_json(codec.to_json(P(3))) == P(3)
        assert codec.from_json(codec.to_json({1, 2})) == {1, 2}
        assert codec.to_json({"a": 1}) == {"a": 1}
        assert codec.to_json(lambda: 0)["__nv_fallback_str__"] == "builtins.function"

        class Duck:
            def __init__(self, v): self.v = v
            def model_dump(self, mode="python"): return {"v": self.v}
            @classmethod
            def model_validate(cls, data): return cls(data["v"])

        assert typed.PydanticCodec(Duck).from_json(typed.PydanticCodec(Duck).to_json(Duck(5))).v == 5

        async def main():
            result = await typed.tool_execute(
                "t", P(1), lambda p: ToolExecutionResult(P(p.x + 1)), typed.DataclassCodec(P), typed.DataclassCodec(P)
            )
            assert result.result == P(2)

        asyncio.run(main())
        assert "pydantic" not in sys.modules or sys.modules["pydantic"] is None
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_typed_works_with_pydantic_set_to_none():
    done = run_python(
        """
        import sys
        sys.modules["pydantic"] = None
        from nemo_relay import typed
        codec = typed.BestEffortAnyCodec()
        assert codec.from_json(codec.to_json(frozenset({1}))) == frozenset({1})
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
