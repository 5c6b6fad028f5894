"""Pieces every OpenTelemetry signal (traces, logs, metrics) shares.

* Optional libraries: ``require`` imports an OpenTelemetry module or raises an ``ImportError`` that
  names the extra to install; nothing here imports OpenTelemetry at module load.
* Exporter plumbing: the process-global header rule (``check_global_header_env``), header validation
  and ``header_env`` resolution (``resolve_headers``), OTLP/HTTP endpoint completion
  (``resolve_http_endpoint``), batch-processor settings with the ``OTEL_BSP_*`` fallbacks
  (``batch_settings``), the exact resource (``build_resource``) and the OTLP exporter itself
  (``build_otlp_exporter``).
* Deterministic ids: a Relay event UUID maps to a span id (its low 64 bits) and, for a trace root, to
  a trace id (all 128 bits), so spans, span events and log records agree without sharing state.
* JSON to attributes: ``json_attribute`` converts one value, ``push_top_level_json_attributes``
  projects an object's top-level fields under a prefix, ``compact_json`` is the string form.
* Metadata promotion: ``validate_promotion_prefixes`` checks a prefix list, ``MetadataPromoter``
  copies matching metadata keys to attributes and counts what it refuses in runtime diagnostics.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from nemo_relay._core.diagnostics import RuntimeDiagnostics

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = [
    "INSTALL_HINT",
    "SIGNAL_PATHS",
    "AttributeValue",
    "Attributes",
    "BatchSettings",
    "MetadataPromoter",
    "batch_settings",
    "build_otlp_exporter",
    "build_resource",
    "check_global_header_env",
    "compact_json",
    "json_attribute",
    "push_top_level_json_attributes",
    "require",
    "resolve_headers",
    "resolve_http_endpoint",
    "span_id_of",
    "trace_id_of",
    "uuid_int",
    "validate_headers",
    "validate_promotion_prefixes",
]

INSTALL_HINT = "pip install 'nemo-relay-py[otel]'"
_GRPC_HINT = "pip install 'nemo-relay-py[otel-grpc]'"

AttributeValue: TypeAlias = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
"""An OpenTelemetry attribute value: a primitive or a homogeneous sequence of primitives."""

Attributes: TypeAlias = dict[str, AttributeValue]
"""Attributes being assembled for one span, span event or log record (insertion order kept)."""

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_LOW_64 = (1 << 64) - 1


# --- optional libraries -----------------------------------------------------------------------------


def require(module: str, *, grpc: bool = False, extra: str | None = None) -> ModuleType:
    """Import ``module`` (an OpenTelemetry or OpenInference module), or explain which extra installs it.

    ``extra`` names the package extra in the hint (default ``otel``, or ``otel-grpc`` with ``grpc``).

    Raises:
        ImportError: the library is missing; the message names the module and the ``pip install`` line.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if extra is not None:
            hint = f"pip install 'nemo-relay-py[{extra}]'"
        else:
            hint = _GRPC_HINT if grpc else INSTALL_HINT
        raise ImportError(
            f"OpenTelemetry export needs the optional library providing {module!r} ({exc}); install it with: {hint}"
        ) from exc


# --- exporter plumbing ------------------------------------------------------------------------------

SIGNAL_PATHS = {"traces": "/v1/traces", "logs": "/v1/logs", "metrics": "/v1/metrics"}
"""OTLP/HTTP path of each signal."""

_GLOBAL_HEADER_VARS = {
    "traces": "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "logs": "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
}


def check_global_header_env(signal: str) -> None:
    """Refuse to build an exporter while process-global OTLP header variables are set (non-empty).

    They would be sent to every endpoint, so credentials meant for one collector could leak to another;
    headers belong in the endpoint's ``headers`` / ``header_env``.

    Raises:
        RuntimeError: ``OTEL_EXPORTER_OTLP_HEADERS`` or the signal's own variable is non-empty.
    """
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", _GLOBAL_HEADER_VARS[signal]):
        if os.environ.get(name):
            raise RuntimeError(
                f"{name} is not supported because process-global OTLP headers can leak across endpoints; "
                "use the endpoint headers or header_env configuration"
            )


# RFC 9110 token characters for names; values: visible ASCII, obs-text, space and tab, no CR/LF/NUL.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def validate_headers(headers: Mapping[str, str]) -> None:
    """Check header names and values before they reach an HTTP or gRPC client.

    Raises:
        RuntimeError: ``invalid OTLP header "<name>": ...`` (the value itself is never echoed).
    """
    for name, value in headers.items():
        if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
            raise RuntimeError(f'invalid OTLP header "{name}": invalid HTTP header name')
        if not isinstance(value, str) or _HEADER_VALUE.fullmatch(value) is None:
            raise RuntimeError(f'invalid OTLP header "{name}": failed to parse header value')


def resolve_headers(headers: Mapping[str, str], header_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Static headers plus ``header_env`` (header name → environment variable) read now, validated.

    The environment is read once, at exporter construction: a later change of the variable does not
    affect a running exporter (the credential is snapshotted, never logged).

    Raises:
        RuntimeError: a variable is unset or blank, or a header is invalid.
    """
    resolved = dict(headers)
    for header, variable in (header_env or {}).items():
        value = os.environ.get(variable)
        if value is None or not value.strip():
            raise RuntimeError(f'OTLP header "{header}" needs environment variable {variable}, which is unset or blank')
        resolved[header] = value
    validate_headers(resolved)
    return resolved


def resolve_http_endpoint(endpoint: str, signal: str) -> str:
    """Complete a bare OTLP/HTTP authority with the signal path (``http://h:4318`` → ``.../v1/traces``).

    Only http(s) URLs whose path is empty change; an explicit ``/`` or any other path is kept as given,
    and a query string survives.
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return endpoint
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return endpoint
    # The raw text decides: "http://h:4318" gains the path, "http://h:4318/" is an explicit root.
    head = endpoint.split("#", 1)[0].split("?", 1)[0]
    if parts.path not in ("", "/") or head.endswith("/"):
        return endpoint
    return urlunsplit((parts.scheme, parts.netloc, SIGNAL_PATHS[signal], parts.query, parts.fragment))


class BatchSettings(NamedTuple):
    """Batch-processor sizes: explicit values, else ``OTEL_BSP_*``, else the SDK defaults."""

    max_queue_size: int
    max_export_batch_size: int
    scheduled_delay_millis: int


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        return default
    return value if value > 0 else default


def batch_settings(
    max_queue_size: int | None = None,
    max_export_batch_size: int | None = None,
    scheduled_delay_millis: int | None = None,
) -> BatchSettings:
    """Resolve batch sizes: explicit values win, then ``OTEL_BSP_*``, then 2048 / 512 / 5000 ms.

    Raises:
        ValueError: a size is not positive, or the batch is larger than the queue.
    """
    queue = max_queue_size if max_queue_size is not None else _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    batch = (
        max_export_batch_size if max_export_batch_size is not None else _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
    )
    delay = scheduled_delay_millis if scheduled_delay_millis is not None else _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000)
    if queue <= 0 or batch <= 0 or delay <= 0:
        raise ValueError("batch processor max_queue_size, max_export_batch_size and scheduled_delay_millis must be > 0")
    if batch > queue:
        raise ValueError("batch processor max_export_batch_size must not exceed max_queue_size")
    return BatchSettings(queue, batch, delay)


def build_resource(
    service_name: str,
    service_namespace: str | None = None,
    service_version: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
) -> Resource:
    """Exactly ``service.name``, ``service.namespace`` / ``service.version`` when set, then ``resource_attributes``.

    No SDK defaults (``telemetry.sdk.*``) and no ``OTEL_RESOURCE_ATTRIBUTES`` merge: what is configured
    is what the collector receives.
    """
    resources = require("opentelemetry.sdk.resources")
    attributes: dict[str, str] = {"service.name": service_name}
    if service_namespace is not None:
        attributes["service.namespace"] = service_namespace
    if service_version is not None:
        attributes["service.version"] = service_version
    attributes.update(resource_attributes or {})
    resource: Resource = resources.Resource(attributes)  # the constructor, not create(): no defaults merged
    return resource


_EXPORTER_MODULES = {
    ("traces", "http_binary"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("logs", "http_binary"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    ("metrics", "http_binary"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("metrics", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
}


def build_otlp_exporter(
    signal: str,
    transport: str,
    endpoint: str,
    headers: Mapping[str, str],
    timeout_millis: int,
    **extra: Any,
) -> Any:
    """An OTLP exporter for ``signal`` (``traces``/``logs``/``metrics``) over ``transport``.

    ``http_binary`` is OTLP/HTTP protobuf and completes a bare authority with the signal path; ``grpc``
    sends ``headers`` as metadata (plain text for ``http://`` endpoints). ``extra`` is passed to the
    exporter (e.g. ``preferred_temporality`` for metrics). Call ``check_global_header_env`` and
    ``resolve_headers`` first.

    Raises:
        ValueError: unknown transport or signal.
        ImportError: the exporter library is missing (names the extra to install).
    """
    try:
        module_name, class_name = _EXPORTER_MODULES[(signal, transport)]
    except KeyError:
        raise ValueError(f"transport must be 'http_binary' or 'grpc', got {transport!r}") from None
    module = require(module_name, grpc=transport == "grpc")
    cls = getattr(module, class_name)
    timeout = max(timeout_millis, 1) / 1000.0
    if transport == "http_binary":
        return cls(endpoint=resolve_http_endpoint(endpoint, signal), headers=dict(headers), timeout=timeout, **extra)
    lowered = endpoint.lower()
    # http:// is plain text, https:// is TLS; without a scheme the exporter's own default applies.
    insecure = True if lowered.startswith("http://") else False if lowered.startswith("https://") else None
    metadata = tuple((name.lower(), value) for name, value in headers.items())  # gRPC metadata keys are lowercase
    return cls(endpoint=endpoint, headers=metadata, timeout=timeout, insecure=insecure, **extra)


# --- deterministic ids ------------------------------------------------------------------------------


def uuid_int(uuid: str | int) -> int:
    """The 128-bit integer of a Relay UUID (hyphenated text or already an int)."""
    if isinstance(uuid, int):
        return uuid
    return int(uuid.replace("-", ""), 16)


def span_id_of(uuid: str | int) -> int:
    """Span id of a Relay event: the UUID's last 8 bytes."""
    return uuid_int(uuid) & _LOW_64


def trace_id_of(uuid: str | int) -> int:
    """Trace id of a trace rooted at a Relay scope (or of a propagated stack root): all 16 bytes."""
    return uuid_int(uuid)


# --- JSON to attributes -----------------------------------------------------------------------------


def compact_json(value: Any) -> str:
    """Compact JSON with sorted keys, as attribute strings carry nested values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_attribute(value: Any) -> AttributeValue | None:
    """One JSON value as an attribute value; None for null (the attribute is skipped).

    bool and str pass through; integers that fit i64 stay integers, larger ones become strings; floats
    stay floats; arrays and objects become compact JSON strings.
    """
    if value is None:
        return None
    t = type(value)
    if t is bool or t is str:
        return value  # type: ignore[no-any-return]
    if t is int:
        return value if _I64_MIN <= value <= _I64_MAX else str(value)
    if t is float:
        return value  # type: ignore[no-any-return]
    try:
        return compact_json(value)
    except (TypeError, ValueError):
        return str(value)


def push_top_level_json_attributes(attributes: Attributes, prefix: str, value: Any) -> None:
    """Project ``value`` under ``prefix``: an object's top-level fields become ``prefix.<key>``,
    anything else a single ``prefix`` attribute. Nulls are skipped at either level; fields are taken in
    sorted key order (as the reference, whose JSON objects are ordered maps)."""
    if isinstance(value, dict):
        for key, item in sorted(value.items()):
            converted = json_attribute(item)
            if converted is not None:
                attributes[f"{prefix}.{key}"] = converted
        return
    converted = json_attribute(value)
    if converted is not None:
        attributes[prefix] = converted


# --- metadata promotion -----------------------------------------------------------------------------

_PREFIX_SYNTAX = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
_GLOB = frozenset("*?[]")
_RESERVED_NAMESPACES = (
    "error.",
    "exception.",
    "gen_ai.",
    "input.",
    "llm.",
    "nemo_relay.",
    "openinference.",
    "output.",
    "server.",
    "service.",
    "session.",
    "tool.",
    "tool_call.",
    "user.",
)


def validate_promotion_prefixes(prefixes: Iterable[str]) -> list[str]:
    """Check a ``promote_metadata_prefixes`` list and return it as a list.

    A prefix is dot-separated segments of letters, digits, ``_`` or ``-`` with an optional trailing dot;
    globs, blanks and duplicates are refused.

    Raises:
        ValueError: the first bad prefix, with a message saying what is wrong with it.
    """
    seen: set[str] = set()
    checked: list[str] = []
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.strip():
            raise ValueError("metadata promotion prefix must not be blank")
        if any(char in _GLOB for char in prefix):
            raise ValueError(f'metadata promotion prefix "{prefix}" must be a literal prefix, not a glob')
        if _PREFIX_SYNTAX.fullmatch(prefix) is None:
            raise ValueError(
                f'metadata promotion prefix "{prefix}" must contain letter, number, underscore, or hyphen '
                "segments separated by single dots, with an optional trailing dot"
            )
        if prefix in seen:
            raise ValueError(f'metadata promotion prefix "{prefix}" is duplicated')
        seen.add(prefix)
        checked.append(prefix)
    return checked


def _reserved(key: str) -> bool:
    return key == "metadata" or key.startswith(_RESERVED_NAMESPACES)


def _promoted_value(value: Any) -> tuple[AttributeValue | None, str | None]:
    """``(attribute value, None)`` when ``value`` can be promoted, else ``(None, reason)``."""
    t = type(value)
    if t is str or t is bool or t is float:
        return value, None
    if t is int:
        if _I64_MIN <= value <= _I64_MAX:
            return value, None
        return None, "unsigned integer is larger than OTLP i64"
    if value is None:
        return None, "null values are not OTLP attributes"
    if t is list:
        return _promoted_array(value)
    return None, "object values are not supported"


def _promoted_array(items: list[Any]) -> tuple[AttributeValue | None, str | None]:
    # The first element decides the array's type; every element must share it (checked before ranges).
    if not items:
        return [], None  # an empty array is an empty string array
    first = items[0]
    if first is None:
        return None, "arrays of null are not OTLP attributes"
    if isinstance(first, (list, dict)):
        return None, "nested arrays and objects are not supported"
    mixed = "array values must have one primitive type"
    if type(first) is str or type(first) is bool:
        if any(type(item) is not type(first) for item in items):
            return None, mixed
        return list(items), None
    if any(type(item) not in (int, float) for item in items):
        return None, mixed
    if any(type(item) is int and not _I64_MIN <= item <= _I64_MAX for item in items):
        return None, "array contains an unsigned integer larger than OTLP i64"
    if all(type(item) is int for item in items):
        return list(items), None
    return [float(item) for item in items], None


class MetadataPromoter:
    """Copies metadata keys that start with a configured prefix to top-level attributes.

    Reserved keys (``metadata`` and the ``error.``, ``gen_ai.``, ``llm.``, ``nemo_relay.``, ...
    namespaces), nulls, objects, nested or mixed arrays and integers beyond i64 are refused; each
    refusal adds one to the runtime diagnostic ``otel.metadata_promotion_value_unsupported.<key>``
    (its message names the key and the reason, never the value). Keys already present on the target
    (projection-owned or mapping aliases) are skipped silently.
    """

    __slots__ = ("_prefixes", "_diagnostics", "_component", "_field")

    def __init__(
        self,
        prefixes: Sequence[str],
        diagnostics: RuntimeDiagnostics,
        component: str,
        field: str | None = None,
    ) -> None:
        self._prefixes = tuple(prefixes)
        self._diagnostics = diagnostics
        self._component = component
        self._field = field

    def __bool__(self) -> bool:
        return bool(self._prefixes)

    def matches(self, key: str) -> bool:
        """Whether ``key`` is selected by a prefix (literal, case-sensitive)."""
        return key.startswith(self._prefixes) if self._prefixes else False

    def promote(
        self,
        metadata: Any,
        existing: Collection[str] = (),
        *,
        on_reject: Callable[[str, str], None] | None = None,
    ) -> Attributes:
        """The promotable attributes of ``metadata`` (an object; anything else promotes nothing).

        ``existing`` holds keys the target already has; they are skipped. Refusals are recorded in the
        diagnostics (and passed to ``on_reject(key, reason)`` when given).
        """
        promoted: Attributes = {}
        if not self._prefixes or not isinstance(metadata, dict):
            return promoted
        for key, value in sorted(metadata.items()):  # sorted, as the reference's ordered maps
            if not key.startswith(self._prefixes):
                continue
            reason: str | None
            if _reserved(key):
                reason = "attribute key is reserved by Relay or an OpenTelemetry projection"
            else:
                if key in existing:
                    continue
                converted, reason = _promoted_value(value)
                if reason is None and converted is not None:
                    promoted[key] = converted
                    continue
            reason = reason or "unsupported value type"
            self._reject(key, reason)
            if on_reject is not None:
                on_reject(key, reason)
        return promoted

    def _reject(self, key: str, reason: str) -> None:
        self._diagnostics.record(
            f"otel.metadata_promotion_value_unsupported.{key}",
            self._component,
            f'OpenTelemetry metadata attribute "{key}" was not promoted: {reason}',
            field=self._field,
        )


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not bool)."""
    t = type(value)
    return t is int or (t is float and math.isfinite(value))
