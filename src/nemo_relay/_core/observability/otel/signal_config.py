"""Shared pieces of the manual log and metric configurations (``OpenTelemetryLogConfig`` and friends).

Setters check types the way the reference's native classes do (same exception types and texts), and
``check_endpoint_settings`` runs the checks the reference makes when a subscriber is built from a
configuration: endpoint, transport, headers, then the positive-value rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nemo_relay._core.types import type_name

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

_U64_MAX = 2**64 - 1
TRANSPORTS = ("http_binary", "grpc")
BUILD_ERROR = "failed to build the OTLP exporter: "


def check_str(value: object) -> str:
    """``value`` if it is a ``str``, else the reference's ``TypeError``."""
    if isinstance(value, str):
        return value
    if value is None:
        raise TypeError("'None' is not an instance of 'str'")
    raise TypeError(f"'{type_name(value)}' object is not an instance of 'str'")


def check_optional_str(value: object) -> str | None:
    """``None`` or a ``str``."""
    return None if value is None else check_str(value)


def check_u64(value: object) -> int:
    """A non-negative integer that fits in 64 bits (``bool`` counts as an integer, as in the reference)."""
    if not isinstance(value, int):
        raise TypeError(f"'{type_name(value)}' object cannot be interpreted as an integer")
    if value < 0:
        raise OverflowError("can't convert negative int to unsigned")
    if value > _U64_MAX:
        raise OverflowError("int too big to convert")
    return int(value)


def check_str_map(value: object, field: str) -> dict[str, str]:
    """A copy of a ``dict[str, str]``, else ``ValueError("<field> must be a dict[str, str]")``."""
    if type(value) is not dict or not all(type(k) is str and type(v) is str for k, v in value.items()):
        raise ValueError(f"{field} must be a dict[str, str]")
    return dict(value)


def check_instance(value: object, cls: type) -> Any:
    """``value`` if it is a ``cls``, else the reference's ``TypeError``."""
    if not isinstance(value, cls):
        if value is None:  # the reference words None differently
            raise TypeError(f"'None' is not an instance of '{cls.__name__}'")
        raise TypeError(f"'{type_name(value)}' object is not an instance of '{cls.__name__}'")
    return value


# URI pieces, checked the way the reference's URI parser sees them (no DNS, no port range check).
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=@]+)"
_AUTHORITY = re.compile(_HOST + r"(?::[0-9]*)?")
_AUTHORITY_FORM = re.compile(_HOST + r"(?::[0-9]*)?(?:/\S*)?")  # host:port/path without a scheme
_SCHEME_PATH = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")  # e.g. "dns:collector"


def _uri_problem(endpoint: str) -> str | None:
    if "://" in endpoint:
        rest = endpoint.split("://", 1)[1]
        if not rest:
            return "empty string"
        authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        if not authority:
            return "invalid format"
        return None if _AUTHORITY.fullmatch(authority) else "invalid authority"
    if _AUTHORITY_FORM.fullmatch(endpoint) or _SCHEME_PATH.fullmatch(endpoint):
        return None
    return "invalid authority"


def check_endpoint_settings(endpoint: str, transport: str, headers: Mapping[str, str], timeout_millis: int) -> None:
    """The checks common to log and metric subscribers, in the reference's order.

    Raises:
        ValueError: blank endpoint, or unknown transport.
        RuntimeError: invalid header, unparseable endpoint, or a zero timeout.
    """
    from nemo_relay._core.observability.otel.common import validate_headers

    if not endpoint.strip():
        raise ValueError("endpoint is required and must be nonblank")
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be 'http_binary' or 'grpc', got \"{transport}\"")
    for name in headers:
        if not name.strip() or name != name.strip():
            raise RuntimeError(
                f'invalid OTLP header "{name}": header name must be nonblank and have no surrounding whitespace'
            )
    validate_headers(headers)
    problem = _uri_problem(endpoint)
    if problem is not None:
        raise RuntimeError(f"{BUILD_ERROR}invalid URI {endpoint}. Reason {problem}")
    if timeout_millis <= 0:
        raise RuntimeError(f"{BUILD_ERROR}timeout must be greater than 0")


def require_positive(value: int, field: str) -> None:
    """``RuntimeError("failed to build the OTLP exporter: <field> must be greater than 0")`` when ``value`` is 0."""
    if value <= 0:
        raise RuntimeError(f"{BUILD_ERROR}{field} must be greater than 0")


class SignalConfigBase:
    """Fields every manual signal configuration has: destination, identity and request settings."""

    __slots__ = (
        "_endpoint",
        "_transport",
        "_headers",
        "_resource_attributes",
        "_service_name",
        "_service_namespace",
        "_service_version",
        "_instrumentation_scope",
        "_timeout_millis",
    )

    def __init__(self, endpoint: str) -> None:
        self._endpoint = check_str(endpoint)
        self._transport = "http_binary"
        self._headers: dict[str, str] = {}
        self._resource_attributes: dict[str, str] = {}
        self._service_name = "unknown_service"
        self._service_namespace: str | None = None
        self._service_version: str | None = None
        self._instrumentation_scope = "opentelemetry"
        self._timeout_millis = 3000

    @property
    def endpoint(self) -> str:
        """Collector URL; for ``http_binary`` a bare authority gains the signal path (``/v1/logs``...)."""
        return self._endpoint

    @endpoint.setter
    def endpoint(self, value: str) -> None:
        self._endpoint = check_str(value)

    @property
    def transport(self) -> str:
        """``"http_binary"`` (OTLP/HTTP protobuf, the default) or ``"grpc"``; checked when a subscriber is built."""
        return self._transport

    @transport.setter
    def transport(self, value: str) -> None:
        self._transport = check_str(value)

    @property
    def headers(self) -> dict[str, str]:
        """Request headers (gRPC metadata); a copy."""
        return dict(self._headers)

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = check_str_map(value, "headers")

    def set_header(self, key: str, value: str) -> None:
        """Add or replace one request header."""
        self._headers[check_str(key)] = check_str(value)

    @property
    def resource_attributes(self) -> dict[str, str]:
        """Extra resource attributes, after ``service.*``; a copy."""
        return dict(self._resource_attributes)

    @resource_attributes.setter
    def resource_attributes(self, value: dict[str, str]) -> None:
        self._resource_attributes = check_str_map(value, "resource_attributes")

    def set_resource_attribute(self, key: str, value: str) -> None:
        """Add or replace one resource attribute."""
        self._resource_attributes[check_str(key)] = check_str(value)

    @property
    def service_name(self) -> str:
        """Resource ``service.name`` (default ``"unknown_service"``)."""
        return self._service_name

    @service_name.setter
    def service_name(self, value: str) -> None:
        self._service_name = check_str(value)

    @property
    def service_namespace(self) -> str | None:
        """Resource ``service.namespace``, when set."""
        return self._service_namespace

    @service_namespace.setter
    def service_namespace(self, value: str | None) -> None:
        self._service_namespace = check_optional_str(value)

    @property
    def service_version(self) -> str | None:
        """Resource ``service.version``, when set."""
        return self._service_version

    @service_version.setter
    def service_version(self, value: str | None) -> None:
        self._service_version = check_optional_str(value)

    @property
    def instrumentation_scope(self) -> str:
        """Instrumentation scope name of the emitted records (default ``"opentelemetry"``)."""
        return self._instrumentation_scope

    @instrumentation_scope.setter
    def instrumentation_scope(self, value: str) -> None:
        self._instrumentation_scope = check_str(value)

    @property
    def timeout_millis(self) -> int:
        """OTLP request timeout in milliseconds (default 3000; must be > 0)."""
        return self._timeout_millis

    @timeout_millis.setter
    def timeout_millis(self, value: int) -> None:
        self._timeout_millis = check_u64(value)

    def __repr__(self) -> str:
        return f'<{type(self).__name__} transport="{self._transport}" endpoint="{self._endpoint}">'

    def _endpoint_settings(self, signal: str) -> Any:
        """Validate and convert to the ``SignalEndpointSettings`` the exporters take."""
        from nemo_relay._core.observability.otel.common import check_global_header_env, resolve_http_endpoint
        from nemo_relay._core.observability.settings import SignalEndpointSettings

        check_endpoint_settings(self._endpoint, self._transport, self._headers, self._timeout_millis)
        check_global_header_env(signal)
        url = resolve_http_endpoint(self._endpoint, signal) if self._transport == "http_binary" else self._endpoint
        return SignalEndpointSettings(
            index=0,
            endpoint=self._endpoint,
            url=url,
            transport=self._transport,
            headers=dict(self._headers),
            resource_attributes=dict(self._resource_attributes),
            service_name=self._service_name,
            service_namespace=self._service_namespace,
            service_version=self._service_version,
            instrumentation_scope=self._instrumentation_scope,
            timeout_millis=self._timeout_millis,
        )
