"""Configuration objects of the standalone ATOF exporter and their validation.

``AtofExporterConfig``, ``AtofStreamSinkConfig`` and ``AtofExporterMode`` keep the reference's shape:
mutable objects whose setters check types (with the reference's ``TypeError`` texts) but not values;
values are checked when an ``AtofExporter`` is built from the config (``endpoint_problem``).
"""

from __future__ import annotations

import operator
import os
import re
import time

__all__ = ["AtofExporterConfig", "AtofExporterMode", "AtofStreamSinkConfig", "endpoint_problem", "strip_url"]


def _type_error(value: object, expected: str) -> TypeError:
    if value is None:
        return TypeError(f"'None' is not an instance of '{expected}'")
    return TypeError(f"'{type(value).__name__}' object is not an instance of '{expected}'")


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(value, "str")
    return value


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _type_error(value, "dict")
    return {_str(key): _str(item) for key, item in value.items()}


def _millis(value: object) -> int:
    number = operator.index(value)  # type: ignore[arg-type]  # its TypeError text is the reference's
    if number < 0:
        raise OverflowError("can't convert negative int to unsigned")
    if number > 2**64 - 1:
        raise OverflowError("int too big to convert")
    return number


def default_filename() -> str:
    """``nemo-relay-events-<UTC now>.jsonl``, the default ATOF file name."""
    return time.strftime("nemo-relay-events-%Y-%m-%d-%H.%M.%S.jsonl", time.gmtime())


class AtofExporterMode:
    """How ``AtofExporter`` opens its file: ``Append`` (keep existing lines) or ``Overwrite`` (truncate)."""

    __slots__ = ("_value", "_name")
    __hash__ = None  # type: ignore[assignment]  # like the reference: compared, never hashed

    Append: AtofExporterMode
    Overwrite: AtofExporterMode
    _value: int
    _name: str

    def __new__(cls, *args: object, **kwargs: object) -> AtofExporterMode:
        raise TypeError("cannot create 'AtofExporterMode' instances")

    @classmethod
    def _member(cls, value: int, name: str) -> AtofExporterMode:
        member = object.__new__(cls)
        member._value = value
        member._name = name
        return member

    def __int__(self) -> int:
        return self._value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AtofExporterMode):
            return self._value == other._value
        if isinstance(other, int) and not isinstance(other, bool):
            return self._value == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"AtofExporterMode.{self._name}"

    __str__ = __repr__


AtofExporterMode.Append = AtofExporterMode._member(0, "Append")
AtofExporterMode.Overwrite = AtofExporterMode._member(1, "Overwrite")


class _StreamFields:
    """The stream-endpoint fields shared by both config classes (type-checked on assignment)."""

    __slots__ = ("_url", "_transport", "_headers", "_header_env", "_timeout_millis", "_field_name_policy")

    def _init_stream(
        self,
        url: object,
        transport: object,
        headers: object,
        header_env: object,
        timeout_millis: object,
        field_name_policy: object,
    ) -> None:
        self._url = _str(url)
        self._transport = _str(transport)
        self._headers = {} if headers is None else _str_map(headers)
        self._header_env = {} if header_env is None else _str_map(header_env)
        self._timeout_millis = _millis(timeout_millis)
        self._field_name_policy = _str(field_name_policy)

    @property
    def url(self) -> str:
        """Endpoint URL: ``http(s)://`` for ``http_post``/``ndjson``, ``ws(s)://`` for ``websocket``."""
        return self._url

    @url.setter
    def url(self, value: str) -> None:
        self._url = _str(value)

    @property
    def transport(self) -> str:
        """``http_post`` (one POST per event), ``websocket`` or ``ndjson`` (one streaming POST)."""
        return self._transport

    @transport.setter
    def transport(self, value: str) -> None:
        self._transport = _str(value)

    @property
    def headers(self) -> dict[str, str]:
        """Extra request headers (a copy; assign a new dict to change them)."""
        return dict(self._headers)

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = _str_map(value)

    @property
    def header_env(self) -> dict[str, str]:
        """Header name -> environment variable holding its value, read when the exporter starts (a copy)."""
        return dict(self._header_env)

    @header_env.setter
    def header_env(self, value: dict[str, str]) -> None:
        self._header_env = _str_map(value)

    @property
    def timeout_millis(self) -> int:
        """Request timeout, and how long flush/shutdown wait for the endpoint, in milliseconds."""
        return self._timeout_millis

    @timeout_millis.setter
    def timeout_millis(self, value: int) -> None:
        self._timeout_millis = _millis(value)

    @property
    def field_name_policy(self) -> str:
        """``preserve``, or ``replace_dots`` (``.`` in object keys becomes ``_`` on the wire)."""
        return self._field_name_policy

    @field_name_policy.setter
    def field_name_policy(self, value: str) -> None:
        self._field_name_policy = _str(value)


class AtofStreamSinkConfig(_StreamFields):
    """Settings of one ATOF stream endpoint; every field stays settable after construction.

    Args:
        url: Endpoint URL.
        transport: ``"http_post"``, ``"websocket"`` or ``"ndjson"``.
        headers: Extra request headers; ``None`` means none.
        header_env: Header name -> environment variable name; ``None`` means none.
        timeout_millis: Request and drain timeout in milliseconds.
        field_name_policy: ``"preserve"`` or ``"replace_dots"``.
    """

    __slots__ = ()

    def __init__(
        self,
        url: str,
        *,
        transport: str = "http_post",
        headers: dict[str, str] | None = None,
        header_env: dict[str, str] | None = None,
        timeout_millis: int = 3000,
        field_name_policy: str = "preserve",
    ) -> None:
        self._init_stream(url, transport, headers, header_env, timeout_millis, field_name_policy)

    def __repr__(self) -> str:
        return f'<AtofStreamSinkConfig transport="{self._transport}" url="{self._url}">'


class AtofExporterConfig(_StreamFields):
    """Configuration of one ``AtofExporter`` sink: a JSONL file (``sink_type="file"``) or a stream.

    Created with defaults, then changed through its properties: ``sink_type`` (``"file"`` or
    ``"stream"``); for a file ``output_directory`` (default: the working directory at creation),
    ``filename`` (default ``nemo-relay-events-<UTC time>.jsonl``) and ``mode``; for a stream ``url``,
    ``transport``, ``headers``, ``header_env``, ``timeout_millis`` and ``field_name_policy``.
    """

    __slots__ = ("_sink_type", "_output_directory", "_mode", "_filename")

    def __init__(self) -> None:
        self._init_stream("", "http_post", None, None, 3000, "preserve")
        self._sink_type = "file"
        self._output_directory = os.getcwd()
        self._mode = AtofExporterMode.Append
        self._filename = default_filename()

    @property
    def sink_type(self) -> str:
        """``file`` or ``stream``."""
        return self._sink_type

    @sink_type.setter
    def sink_type(self, value: str) -> None:
        self._sink_type = _str(value)

    @property
    def output_directory(self) -> str:
        """Directory of the JSONL file (created if missing)."""
        return self._output_directory

    @output_directory.setter
    def output_directory(self, value: str) -> None:
        self._output_directory = _str(value)

    @property
    def filename(self) -> str:
        """JSONL file name, relative to ``output_directory`` (sub-directories allowed, ``..`` refused)."""
        return self._filename

    @filename.setter
    def filename(self, value: str) -> None:
        self._filename = _str(value)

    @property
    def mode(self) -> AtofExporterMode:
        """``AtofExporterMode.Append`` or ``AtofExporterMode.Overwrite``."""
        return self._mode

    @mode.setter
    def mode(self, value: AtofExporterMode) -> None:
        if not isinstance(value, AtofExporterMode):
            raise _type_error(value, "AtofExporterMode")
        self._mode = value

    def __repr__(self) -> str:
        return f'<AtofExporterConfig sink_type="{self._sink_type}">'


# --- validation of a stream endpoint (the reference's checks, wording and order) ---------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)
_C0_AND_SPACE = "".join(chr(c) for c in range(33))


def strip_url(url: str) -> str:
    """``url`` without the leading/trailing spaces and control characters a URL parser ignores."""
    return url.strip(_C0_AND_SPACE)


def endpoint_problem(config: _StreamFields) -> str | None:
    """Why the stream endpoint of ``config`` is unusable, or None (reads ``header_env`` variables)."""
    if config.timeout_millis == 0:
        return "endpoint timeout_millis must be greater than 0"
    problem = _url_problem(strip_url(config.url), config.transport)
    if problem is not None:
        return problem
    for name, value in config.headers.items():
        if not _TOKEN.fullmatch(name):
            return "invalid HTTP header name"
        if _BAD_VALUE.search(value):
            return "failed to parse header value"
    static = {name.lower() for name in config.headers}
    for name, variable in config.header_env.items():
        if not _TOKEN.fullmatch(name):
            return "invalid HTTP header name"
        if name.lower() in static:
            return f'header "{name}" cannot be configured in both headers and header_env'
        env_value = os.environ.get(variable)
        if env_value is None:
            return f'environment variable "{variable}" for header "{name}" is not set'
        if not env_value.strip():
            return f'environment variable "{variable}" for header "{name}" is blank'
        if _BAD_VALUE.search(env_value):
            return "failed to parse header value"
    return None


def _url_problem(url: str, transport: str) -> str | None:
    match = _SCHEME.fullmatch(url)
    if match is None:
        return "relative URL without a base"
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme in ("http", "https", "ws", "wss"):
        authority = re.split(r"[/?#\\]", rest.lstrip("/\\"), maxsplit=1)[0].rpartition("@")[2]
        if authority.startswith("["):
            host, _, tail = authority.partition("]")
            port = tail[1:] if tail.startswith(":") else ""
        else:
            host, _, port = authority.partition(":")
        if not host:
            return "empty host"
        if port and (not port.isdigit() or int(port) > 65535):
            return "invalid port number"
    allowed = ("ws", "wss") if transport == "websocket" else ("http", "https")
    if scheme not in allowed:
        return f'endpoint {transport} transport does not support URL scheme "{scheme}"'
    return None
