"""Value vocabulary shared by every stage: JSON aliases, enums and attribute flags."""

from __future__ import annotations

import enum

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeAlias, TypedDict

JsonPrimitive: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = JsonPrimitive | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject: TypeAlias = dict[str, JsonValue]
Json: TypeAlias = JsonValue


if TYPE_CHECKING:

    class DataSchema(TypedDict):
        """Identifier of the schema that a mark's ``data`` follows."""

        name: str
        version: str


def __getattr__(name: str) -> Any:
    # Built on first use so that importing the package does not import `typing`.
    if name == "DataSchema":
        from typing import TypedDict

        class DataSchema(TypedDict):
            """Identifier of the schema that a mark's ``data`` follows."""

            name: str
            version: str

        DataSchema.__module__ = "nemo_relay"
        globals()["DataSchema"] = DataSchema
        return DataSchema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _ReprEnum(enum.IntEnum):
    # The reference renders members as ``ScopeType.Agent`` for both repr and str.
    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    __str__ = __repr__


class ScopeType(_ReprEnum):
    """Kind of component that owns a scope; compares equal to its integer value."""

    Agent = 0
    Function = 1
    Tool = 2
    Llm = 3
    Retriever = 4
    Embedder = 5
    Reranker = 6
    Guardrail = 7
    Evaluator = 8
    Custom = 9
    Unknown = 10

    @property
    def category(self) -> str:
        """The ATOF ``category`` string that events of this scope type carry."""
        return _CATEGORIES[self]


_CATEGORIES: tuple[str, ...] = tuple(member.name.lower() for member in ScopeType)


class LogSeverity(_ReprEnum):
    """Severity attached to a mark through ``metadata["nemo_relay.log.severity"]``."""

    Trace = 0
    Debug = 1
    Info = 2
    Warn = 3
    Error = 4

    @property
    def label(self) -> str:
        """Lowercase label written into mark metadata."""
        return self.name.lower()


class MetricKind(_ReprEnum):
    """Instrument kind of a metric measurement."""

    Counter = 0
    UpDownCounter = 1
    Gauge = 2
    Histogram = 3

    @property
    def label(self) -> str:
        """Snake-case label used in event payloads and messages."""
        return ("counter", "up_down_counter", "gauge", "histogram")[self]


class MetricValueType(_ReprEnum):
    """Numeric type of a metric measurement value."""

    U64 = 0
    I64 = 1
    F64 = 2

    @property
    def label(self) -> str:
        """Lowercase label used in event payloads and messages."""
        return self.name.lower()


class MetricTemporality(_ReprEnum):
    """Aggregation temporality preference for metric exporters."""

    Cumulative = 0
    Delta = 1
    LowMemory = 2


class _Flags:
    """Bit set with named flags; unknown bits are dropped, there is no equality by value."""

    __slots__ = ("_value",)

    # (constant name, bit, event attribute string), in bit order.
    _FLAGS: ClassVar[tuple[tuple[str, int, str], ...]] = ()
    _INNER: ClassVar[str] = ""
    _MASK: ClassVar[int] = 0
    _NAMES: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._MASK = 0
        for constant, bit, _ in cls._FLAGS:
            setattr(cls, constant, bit)
            cls._MASK |= bit
        # Precomputed sorted attribute strings for every bit combination: events read this table.
        cls._NAMES = tuple(
            tuple(sorted(label for _, bit, label in cls._FLAGS if value & bit)) for value in range(cls._MASK + 1)
        )

    def __init__(self, value: int = 0) -> None:
        if not isinstance(value, int):
            raise TypeError(f"{type(self).__name__}(value): expected an int bit mask, got {type(value).__name__!r}")
        if not 0 <= value < 2**64:
            raise OverflowError(f"{type(self).__name__}(value): bit mask must be in [0, 2**64), got {value}")
        self._value = value & self._MASK

    @property
    def value(self) -> int:
        """The bit mask as an ``int``."""
        return self._value

    def __or__(self, other: object) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self._value | other._value)

    def __and__(self, other: object) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self._value & other._value)

    def __repr__(self) -> str:
        names = [constant for constant, bit, _ in self._FLAGS if self._value & bit]
        inner = " | ".join(names) if names else "0x0"
        return f"{type(self).__name__}({self._INNER}({inner}))"

    def _labels(self) -> tuple[str, ...]:
        return self._NAMES[self._value]


class ScopeAttributes(_Flags):
    """Flags of a scope: ``PARALLEL`` (runs beside siblings) and ``RELOCATABLE`` (may move across tasks)."""

    __slots__ = ()
    _FLAGS = (("PARALLEL", 0b01, "parallel"), ("RELOCATABLE", 0b10, "relocatable"))
    _INNER = "ScopeAttributes"
    PARALLEL: ClassVar[int]
    RELOCATABLE: ClassVar[int]

    @property
    def is_parallel(self) -> bool:
        """Whether ``PARALLEL`` is set."""
        return bool(self._value & 0b01)

    @property
    def is_relocatable(self) -> bool:
        """Whether ``RELOCATABLE`` is set."""
        return bool(self._value & 0b10)


class ToolAttributes(_Flags):
    """Flags of a tool call: ``REMOTE`` (runs out of process)."""

    __slots__ = ()
    _FLAGS = (("REMOTE", 0b01, "remote"),)
    _INNER = "ToolAttributes"
    REMOTE: ClassVar[int]

    @property
    def is_remote(self) -> bool:
        """Whether ``REMOTE`` is set."""
        return bool(self._value & 0b01)


class LLMAttributes(_Flags):
    """Flags of an LLM call: ``STATEFUL`` (provider keeps state) and ``STREAMING`` (chunked output)."""

    __slots__ = ()
    _FLAGS = (("STATEFUL", 0b01, "stateful"), ("STREAMING", 0b10, "streaming"))
    _INNER = "LlmAttributes"
    STATEFUL: ClassVar[int]
    STREAMING: ClassVar[int]

    @property
    def is_stateful(self) -> bool:
        """Whether ``STATEFUL`` is set."""
        return bool(self._value & 0b01)

    @property
    def is_streaming(self) -> bool:
        """Whether ``STREAMING`` is set."""
        return bool(self._value & 0b10)


def type_name(value: object) -> str:
    """Name used in conversion messages: ``'None'`` for None, else the class name."""
    return "None" if value is None else type(value).__name__


def expect_instance(value: object, cls: type, argument: str) -> None:
    """Raise the reference's ``TypeError`` text when ``value`` is not a ``cls``."""
    if not isinstance(value, cls):
        raise TypeError(f"argument '{argument}': '{type_name(value)}' object is not an instance of '{cls.__name__}'")
