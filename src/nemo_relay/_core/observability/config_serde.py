"""Typed reading of the observability ``config`` document, with the reference's type-error texts.

The reference deserialises the component config into typed structures before any semantic check, and
a document that does not fit is reported as one ``observability.invalid_plugin_config`` diagnostic
whose message is the first type error met (keys are visited in sorted order). ``read`` reproduces
that pass and returns the document normalised: every struct is a dict with every field present
(defaults filled in), positional (list) forms turned into dicts, the ``endpoints`` alias resolved to
``traces`` and internal tags kept under ``type``. Semantic validation and ``parse`` only ever see that
normalised form.
"""

from __future__ import annotations

import unicodedata

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["ABSENT", "SerdeError", "debug_str", "describe", "read"]


class SerdeError(ValueError):
    """The document does not fit the typed schema; ``str()`` is the reference's message."""


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


#: Stands for a key that was not given at all (where even ``null`` would mean something).
ABSENT = _Absent()


# --- Rust-compatible renderings --------------------------------------------------------------


def debug_str(text: str) -> str:
    """``text`` rendered the way Rust's ``{:?}`` renders a ``str`` (quotes included)."""
    out = ['"']
    for char in text:
        if char in _DEBUG_ESCAPES:
            out.append(_DEBUG_ESCAPES[char])
        elif char == " " or not unicodedata.category(char).startswith(("C", "Z")):
            out.append(char)
        else:
            out.append(f"\\u{{{ord(char):x}}}")
    out.append('"')
    return "".join(out)


_DEBUG_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}


def _float_text(value: float) -> str:
    # Shortest round-trip digits laid out as the reference prints floats in type errors.
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    sign = "-" if str(value).startswith("-") else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + int(exp_text or 0)  # value == 0.<digits> * 10**point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return sign + "0.0"
    length = len(digits)
    if length <= point <= 16:
        return sign + digits + "0" * (point - length) + ".0"
    if 0 < point <= 16:
        return sign + digits[:point] + "." + digits[point:]
    if -5 < point <= 0:
        return sign + "0." + "0" * -point + digits
    exponent = point - 1
    body = digits if length == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{body}e{'+' if exponent >= 0 else ''}{exponent}"


def describe(value: object) -> str:
    """How a type error names the JSON value it found (``integer `5```, ``map`` ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{_float_text(value)}`"
    if isinstance(value, str):
        return f"string {debug_str(value)}"
    if isinstance(value, (list, tuple)):
        return "sequence"
    return "map"


def _invalid_type(value: object, expected: str) -> SerdeError:
    return SerdeError(f"invalid type: {describe(value)}, expected {expected}")


def _one_of(names: tuple[str, ...]) -> str:
    quoted = [f"`{name}`" for name in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} or {quoted[1]}"
    return "one of " + ", ".join(quoted)


# --- schema nodes ------------------------------------------------------------------------------


class _Node:
    __slots__ = ()

    def read(self, value: Any) -> Any:
        raise NotImplementedError


class _Bool(_Node):
    __slots__ = ()

    def read(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        raise _invalid_type(value, "a boolean")


class _Unsigned(_Node):
    __slots__ = ("name", "maximum")

    def __init__(self, name: str, bits: int) -> None:
        self.name = name
        self.maximum = 2**bits - 1

    def read(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= self.maximum:
                return value
            raise SerdeError(f"invalid value: integer `{value}`, expected {self.name}")
        raise _invalid_type(value, self.name)


class _Str(_Node):
    __slots__ = ("expected",)

    def __init__(self, expected: str = "a string") -> None:
        self.expected = expected

    def read(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        raise _invalid_type(value, self.expected)


class _Any(_Node):
    __slots__ = ()

    def read(self, value: Any) -> Any:
        return value


class _Opt(_Node):
    __slots__ = ("inner",)

    def __init__(self, inner: _Node) -> None:
        self.inner = inner

    def read(self, value: Any) -> Any:
        return None if value is None else self.inner.read(value)


class _Seq(_Node):
    __slots__ = ("item",)

    def __init__(self, item: _Node) -> None:
        self.item = item

    def read(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.item.read(element) for element in value]
        raise _invalid_type(value, "a sequence")


class _StrMap(_Node):
    __slots__ = ()

    def read(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise _invalid_type(value, "a map")
        return {key: _STR.read(value[key]) for key in sorted(value)}


class _UnitEnum(_Node):
    """A Rust enum of unit variants: a variant name, or a one-key map ``{name: null}``."""

    __slots__ = ("variants",)

    def __init__(self, *variants: str) -> None:
        self.variants = variants

    def _variant(self, name: str) -> str:
        if name not in self.variants:
            raise SerdeError(f"unknown variant `{name}`, expected {_one_of(self.variants)}")
        return name

    def read(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._variant(value)
        if isinstance(value, dict):
            if len(value) != 1:
                raise SerdeError("invalid value: map, expected map with a single key")
            ((name, content),) = value.items()
            variant = self._variant(name)
            if content is not None:
                raise _invalid_type(content, "unit")
            return variant
        raise _invalid_type(value, "string or map")


class _Struct(_Node):
    """A struct with defaults for every optional field; ``fields`` is in declaration order."""

    __slots__ = ("name", "fields", "aliases")

    def __init__(
        self, name: str, fields: Sequence[tuple[str, _Node, Any]], aliases: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.fields = fields  # (key, node, default); default _REQUIRED marks a required field
        self.aliases = aliases or {}

    def read(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self.read_map(value)
        if isinstance(value, (list, tuple)):
            return self.read_seq(list(value))
        raise _invalid_type(value, f"struct {self.name}")

    def read_map(self, value: dict[str, Any]) -> dict[str, Any]:
        nodes = {key: node for key, node, _ in self.fields}
        out: dict[str, Any] = {}
        for raw_key in sorted(value):
            key = self.aliases.get(raw_key, raw_key)
            node = nodes.get(key)
            if node is None:
                continue  # unknown keys are reported separately, never a type error
            if key in out:
                raise SerdeError(f"duplicate field `{key}`")
            out[key] = node.read(value[raw_key])
        return self._complete(out)

    def read_seq(self, items: list[Any], *, label: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for position, (key, node, default) in enumerate(self.fields):
            if position < len(items):
                out[key] = node.read(items[position])
            elif default is _REQUIRED:
                expected = label or f"struct {self.name}"
                raise SerdeError(f"invalid length {position}, expected {expected} with {len(self.fields)} elements")
        if len(items) > len(self.fields):
            raise SerdeError(f"invalid length {len(items)}, expected fewer elements in array")
        return self._complete(out)

    def _complete(self, out: dict[str, Any]) -> dict[str, Any]:
        for key, _, default in self.fields:
            if key not in out:
                if default is _REQUIRED:
                    raise SerdeError(f"missing field `{key}`")
                out[key] = default() if callable(default) else default
        return out


class _Tagged(_Node):
    """An internally tagged enum: a map whose ``type`` names the variant struct."""

    __slots__ = ("name", "tag", "variants")

    def __init__(self, name: str, tag: str, variants: dict[str, _Struct]) -> None:
        self.name = name
        self.tag = tag
        self.variants = variants

    def _variant(self, tag: Any) -> tuple[str, _Struct]:
        if not isinstance(tag, str):
            raise _invalid_type(tag, "variant identifier")
        struct = self.variants.get(tag)
        if struct is None:
            raise SerdeError(f"unknown variant `{tag}`, expected {_one_of(tuple(self.variants))}")
        return tag, struct

    def read(self, value: Any) -> Any:
        if isinstance(value, dict):
            if self.tag not in value:
                raise SerdeError(f"missing field `{self.tag}`")
            tag, struct = self._variant(value[self.tag])
            body = struct.read_map({k: v for k, v in value.items() if k != self.tag})
        elif isinstance(value, (list, tuple)):
            if not value:
                raise SerdeError(f"missing field `{self.tag}`")
            tag, struct = self._variant(value[0])
            body = struct.read_seq(list(value[1:]))
        else:
            raise _invalid_type(value, f"internally tagged enum {self.name}")
        return {self.tag: tag, **body}


_REQUIRED = object()
_BOOL = _Bool()
_U32 = _Unsigned("u32", 32)
_U64 = _Unsigned("u64", 64)
_USIZE = _Unsigned("usize", 64)
_STR = _Str()
_PATH = _Str("path string")
_ANY = _Any()
_MAP = _StrMap()
_BEHAVIOR = _UnitEnum("ignore", "warn", "error")


def _list(*items: Any) -> Any:
    return lambda: list(items)


_POLICY = _Struct(
    "ConfigPolicy",
    [
        ("unknown_component", _BEHAVIOR, "warn"),
        ("unknown_field", _BEHAVIOR, "warn"),
        ("unsupported_value", _BEHAVIOR, "error"),
    ],
)
_FILE_SINK = _Struct(
    "AtofFileSinkSectionConfig",
    [("output_directory", _Opt(_PATH), None), ("filename", _Opt(_STR), None), ("mode", _STR, "append")],
)
_STREAM_SINK = _Struct(
    "AtofStreamSinkSectionConfig",
    [
        ("url", _STR, _REQUIRED),
        ("transport", _STR, "http_post"),
        ("headers", _MAP, dict),
        ("header_env", _MAP, dict),
        ("timeout_millis", _U64, 3000),
        ("field_name_policy", _STR, "preserve"),
        ("name", _Opt(_STR), None),
    ],
)
_ATOF = _Struct(
    "AtofSectionConfig",
    [
        ("enabled", _BOOL, False),
        ("sinks", _Seq(_Tagged("AtofSinkSectionConfig", "type", {"file": _FILE_SINK, "stream": _STREAM_SINK})), list),
    ],
)
_HTTP_STORAGE = _Struct(
    "HttpStorageConfig",
    [
        ("endpoint", _STR, _REQUIRED),
        ("headers", _MAP, dict),
        ("header_env", _MAP, dict),
        ("timeout_millis", _U64, 3000),
    ],
)
_S3_STORAGE = _Struct(
    "S3StorageConfig",
    [("bucket", _STR, _REQUIRED)]
    + [
        (key, _Opt(_STR), None)
        for key in (
            "key_prefix",
            "access_key_id",
            "secret_access_key_var",
            "session_token_var",
            "region",
            "endpoint_url",
        )
    ]
    + [("allow_http", _Opt(_BOOL), None)],
)
_ATIF = _Struct(
    "AtifSectionConfig",
    [
        ("enabled", _BOOL, False),
        ("agent_name", _STR, "NeMo Relay"),
        ("agent_version", _STR, None),  # None: the exporter's default version (filled in by ``parse``)
        ("model_name", _STR, "unknown"),
        ("tool_definitions", _Opt(_Seq(_ANY)), None),
        ("extra", _ANY, None),
        ("output_directory", _Opt(_PATH), None),
        ("filename_template", _STR, "nemo-relay-atif-{session_id}.json"),
        ("storage", _Seq(_Tagged("AtifStorageConfig", "type", {"http": _HTTP_STORAGE, "s3": _S3_STORAGE})), list),
    ],
)
_EXPORT_FIELDS: list[tuple[str, _Node, Any]] = [
    ("transport", _STR, "http_binary"),
    ("service_name", _STR, "unknown_service"),
    ("service_namespace", _Opt(_STR), None),
    ("service_version", _Opt(_STR), None),
    ("instrumentation_scope", _STR, "opentelemetry"),
    ("timeout_millis", _U64, 3000),
    ("headers", _MAP, dict),
    ("header_env", _MAP, dict),
    ("resource_attributes", _MAP, dict),
]
_ENDPOINT = _Struct(
    "OpenTelemetryEndpointConfig",
    [
        ("type", _UnitEnum("full", "gen_ai", "openinference"), _REQUIRED),
        ("endpoint", _STR, _REQUIRED),
        ("mark_projection", _UnitEnum("inherit", "event", "tool"), "inherit"),
        ("mark_exclude_names", _Seq(_STR), _list("llm.chunk")),
        (
            "attribute_mappings",
            _Seq(_Struct("OtlpAttributeMapping", [("key", _STR, _REQUIRED), ("alias", _STR, _REQUIRED)])),
            list,
        ),
        ("promote_metadata_prefixes", _Seq(_STR), list),
        ("promote_resource_metadata_prefixes", _Seq(_STR), list),
        *_EXPORT_FIELDS,
        ("max_queue_size", _Opt(_USIZE), None),
        ("max_export_batch_size", _Opt(_USIZE), None),
        ("scheduled_delay_millis", _Opt(_U64), None),
        ("completed_span_context_ttl_millis", _Opt(_U64), None),
    ],
)
_SIGNAL_ENDPOINT = _Struct(
    "OpenTelemetrySignalEndpointConfig", [("endpoint", _STR, _REQUIRED), *_EXPORT_FIELDS, ("type", _ANY, ABSENT)]
)
_LOGS = _Struct(
    "OpenTelemetryLogSectionConfig",
    [
        ("enabled", _BOOL, False),
        ("endpoints", _Opt(_Seq(_SIGNAL_ENDPOINT)), None),
        ("minimum_severity", _STR, "info"),
        ("max_queue_size", _USIZE, 2048),
        ("max_export_batch_size", _USIZE, 512),
        ("scheduled_delay_millis", _U64, 1000),
        ("completed_span_context_ttl_millis", _U64, 60000),
    ],
)
_METRICS = _Struct(
    "OpenTelemetryMetricSectionConfig",
    [
        ("enabled", _BOOL, False),
        ("endpoints", _Opt(_Seq(_SIGNAL_ENDPOINT)), None),
        ("export_interval_millis", _U64, 60000),
        ("temporality", _STR, "cumulative"),
        ("max_instruments", _USIZE, 256),
        ("cardinality_limit", _USIZE, 2000),
    ],
)
_OTEL = _Struct(
    "OpenTelemetrySectionConfig",
    [
        ("enabled", _BOOL, False),
        ("traces", _Seq(_ENDPOINT), list),
        ("logs", _Opt(_LOGS), None),
        ("metrics", _Opt(_METRICS), None),
    ],
    aliases={"endpoints": "traces"},
)
_ROOT = _Struct(
    "ObservabilityPluginConfig",
    [
        ("version", _U32, 4),
        ("atof", _Opt(_ATOF), None),
        ("atif", _Opt(_ATIF), None),
        ("opentelemetry", _Opt(_OTEL), None),
        (
            "policy",
            _POLICY,
            lambda: {"unknown_component": "warn", "unknown_field": "warn", "unsupported_value": "error"},
        ),
        ("enable_full_payloads", _BOOL, False),
    ],
)


def read(config: dict[str, Any]) -> dict[str, Any]:
    """The normalised document, or ``SerdeError`` carrying the first type error."""
    result: dict[str, Any] = _ROOT.read_map(config)
    return result
