"""URL handling for observability endpoints: WHATWG-style parsing, OTLP path completion, destinations.

The reference validates and compares endpoint URLs with a WHATWG URL parser, so ``" http://h"``,
``"http:h"`` and ``"http://ex%41mple"`` are all valid and ``"http://h:99999"`` is not. ``parse``
follows the WHATWG algorithm closely enough for endpoints (special schemes in full, other schemes
structurally) and reports failures with the reference's messages (``invalid port number`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Url",
    "UrlError",
    "canonical_destination",
    "complete_signal_path",
    "parse",
]

_SPECIAL_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "file": None}
_FORBIDDEN_HOST = frozenset("\0\t\n\r #/:<>?@[\\]^|")
_FORBIDDEN_DOMAIN = _FORBIDDEN_HOST | frozenset("%\x7f") | frozenset(chr(c) for c in range(0x20))
_C0 = frozenset(chr(c) for c in range(0x20))
_FRAGMENT_SET = _C0 | frozenset(' "<>`')
_QUERY_SET = _C0 | frozenset(' "#<>')
_SPECIAL_QUERY_SET = _QUERY_SET | frozenset("'")
_PATH_SET = _QUERY_SET | frozenset("?`{}^")
_USERINFO_SET = _PATH_SET | frozenset("/:;=@[\\]|")


class UrlError(ValueError):
    """The string is not a URL; ``str()`` is the reference's reason (e.g. ``invalid port number``)."""


@dataclass(frozen=True, slots=True)
class Url:
    """A parsed URL. ``port`` is None when absent or the scheme's default; ``host`` is serialised."""

    scheme: str
    username: str = ""
    password: str = ""
    host: str | None = None
    host_kind: str = ""  # "domain" | "ipv4" | "ipv6" | "opaque" | "" (no host)
    port: int | None = None
    path: str = ""
    query: str | None = None
    fragment: str | None = None

    @property
    def special(self) -> bool:
        """Whether the scheme is one of WHATWG's special schemes (http, https, ws, wss, ftp, file)."""
        return self.scheme in _SPECIAL_PORTS

    def port_or_default(self) -> int | None:
        """The explicit port, else the scheme's well-known port."""
        return self.port if self.port is not None else _SPECIAL_PORTS.get(self.scheme)

    def with_path(self, path: str) -> Url:
        """A copy with ``path`` (already serialised) in place of the current one."""
        return Url(self.scheme, self.username, self.password, self.host, self.host_kind, self.port, path,
                   self.query, self.fragment)  # fmt: skip

    def serialize(self) -> str:
        """The URL string."""
        out = [self.scheme, ":"]
        if self.host is not None:
            out.append("//")
            if self.username or self.password:
                out.append(self.username)
                if self.password:
                    out.append(":" + self.password)
                out.append("@")
            out.append(self.host)
            if self.port is not None:
                out.append(f":{self.port}")
        out.append(self.path)
        if self.query is not None:
            out.append("?" + self.query)
        if self.fragment is not None:
            out.append("#" + self.fragment)
        return "".join(out)


def _encode(text: str, unsafe: frozenset[str]) -> str:
    out: list[str] = []
    for char in text:
        if char in unsafe or ord(char) > 0x7E:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append(char)
    return "".join(out)


def _percent_decode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    out = bytearray()
    index = 0
    while index < len(raw):
        byte = raw[index]
        if byte == 0x25 and _is_hex(raw[index + 1 : index + 3]):
            out.append(int(raw[index + 1 : index + 3], 16))
            index += 3
        else:
            out.append(byte)
            index += 1
    return bytes(out)


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(chr(b) in "0123456789abcdefABCDEF" for b in pair)


def _ipv4_number(part: str) -> int | None:
    if not part:
        return None
    base, digits = 10, "0123456789"
    if part[:2] in ("0x", "0X"):
        part, base, digits = part[2:], 16, "0123456789abcdefABCDEF"
    elif len(part) > 1 and part[0] == "0":
        part, base, digits = part[1:], 8, "01234567"
    if not part:
        return 0
    return int(part, base) if all(char in digits for char in part) else None


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if last and all(c.isdigit() and c.isascii() for c in last):
        return True
    return last[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in last[2:])


def _parse_ipv4(host: str) -> str:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        raise UrlError("invalid IPv4 address")
    numbers = []
    for part in parts:
        number = _ipv4_number(part)
        if number is None:
            raise UrlError("invalid IPv4 address")
        numbers.append(number)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UrlError("invalid IPv4 address")
    address = numbers[-1]
    for position, number in enumerate(numbers[:-1]):
        address += number * 256 ** (3 - position)
    return ".".join(str((address >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _parse_host(text: str, special: bool) -> tuple[str, str]:
    if text.startswith("["):
        if not text.endswith("]"):
            raise UrlError("invalid IPv6 address")
        import ipaddress

        inner = text[1:-1]
        if "%" in inner:
            raise UrlError("invalid IPv6 address")
        try:
            return f"[{ipaddress.IPv6Address(inner).compressed}]", "ipv6"
        except ValueError:
            raise UrlError("invalid IPv6 address") from None
    if not special:
        if any(char in _FORBIDDEN_HOST for char in text):
            raise UrlError("invalid domain character")
        return _encode(text, _C0), "opaque"
    if not text:
        raise UrlError("empty host")
    domain = _percent_decode(text).decode("utf-8", "replace")
    if domain.isascii():
        domain = domain.lower()
    else:
        try:
            domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UrlError("invalid international domain name") from None
    if not domain:
        raise UrlError("empty host")
    if any(char in _FORBIDDEN_DOMAIN for char in domain):
        raise UrlError("invalid domain character")
    if _ends_in_number(domain):
        return _parse_ipv4(domain), "ipv4"
    return domain, "domain"


def _is_dot(segment: str) -> bool:
    return segment.lower() in (".", "%2e")


def _is_dot_dot(segment: str) -> bool:
    return segment.lower() in ("..", ".%2e", "%2e.", "%2e%2e")


def _parse_path(text: str, special: bool) -> str:
    separators = "/\\" if special else "/"
    if text[:1] and text[0] in separators:
        text = text[1:]
    segments: list[str] = []
    buffer = []
    for index in range(len(text) + 1):
        char = text[index] if index < len(text) else None
        if char is not None and char not in separators:
            buffer.append(char)
            continue
        segment = "".join(buffer)
        buffer = []
        if _is_dot_dot(segment):
            if segments:
                segments.pop()
            if char is None:
                segments.append("")
        elif _is_dot(segment):
            if char is None:
                segments.append("")
        else:
            segments.append(_encode(segment, _PATH_SET))
    return "/" + "/".join(segments)


def parse(text: str) -> Url:
    """Parse ``text`` as an absolute URL, raising ``UrlError`` with the reference's reason."""
    text = text.strip("".join(chr(c) for c in range(0x21)))
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    colon = text.find(":")
    scheme = text[:colon] if colon > 0 else ""
    if (
        not scheme
        or not (scheme[0].isascii() and scheme[0].isalpha())
        or not all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
    ):
        raise UrlError("relative URL without a base")
    scheme = scheme.lower()
    rest = text[colon + 1 :]
    fragment = None
    if "#" in rest:
        rest, fragment = rest.split("#", 1)
        fragment = _encode(fragment, _FRAGMENT_SET)
    query = None
    if "?" in rest:
        rest, query = rest.split("?", 1)
    special = scheme in _SPECIAL_PORTS
    if special and scheme != "file":
        rest = rest.lstrip("/\\")
    elif rest.startswith("//"):
        rest = rest[2:]
    elif not special:
        # An opaque ("cannot-be-a-base") URL such as ``mailto:x``: no host, opaque path.
        encoded_query = None if query is None else _encode(query, _QUERY_SET)
        return Url(scheme, path=_encode(rest, _C0), query=encoded_query, fragment=fragment)
    end = len(rest)
    for index, char in enumerate(rest):
        if char == "/" or (special and char == "\\"):
            end = index
            break
    authority, path_text = rest[:end], rest[end:]
    username = password = ""
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        username, password = _encode(user, _USERINFO_SET), _encode(secret, _USERINFO_SET)
    host_text, port_text = authority, ""
    bracket = authority.rfind("]")
    colon = authority.rfind(":")
    if colon > bracket:
        host_text, port_text = authority[:colon], authority[colon + 1 :]
    port = None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
            raise UrlError("invalid port number")
        port = int(port_text)
        if port == _SPECIAL_PORTS.get(scheme):
            port = None
    if scheme == "file" and not host_text:
        host, kind = "", ""
    elif not special and not host_text:
        host, kind = "", "opaque"
    else:
        host, kind = _parse_host(host_text, special)
    path = _parse_path(path_text, special) if (special or path_text) else ""
    encoded_query = None if query is None else _encode(query, _SPECIAL_QUERY_SET if special else _QUERY_SET)
    return Url(scheme, username, password, host, kind, port, path, encoded_query, fragment)


def complete_signal_path(endpoint: str, signal_path: str) -> str:
    """OTLP/HTTP endpoint completion: a bare ``http(s)`` authority gains ``signal_path``.

    ``http://h:4318`` becomes ``http://h:4318/v1/traces`` (for ``/v1/traces``); an explicit path,
    including a lone trailing ``/``, is kept, and anything unparseable is returned unchanged.
    """
    try:
        url = parse(endpoint)
    except UrlError:
        return endpoint
    before = endpoint.split("?", 1)[0].split("#", 1)[0]
    if url.scheme in ("http", "https") and url.path == "/" and not before.rstrip().endswith("/"):
        return url.with_path(signal_path).serialize()
    return endpoint


def _is_loopback(url: Url) -> bool:
    host = url.host or ""
    if url.host_kind == "ipv4":
        return host.startswith("127.")
    if url.host_kind == "ipv6":
        return host == "[::1]"
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def canonical_destination(endpoint: str) -> str:
    """The destination ``endpoint`` really exports to, as a comparable, displayable string.

    ``scheme://host:port/path[?query]`` with loopback hosts folded to ``<loopback>``, the default
    port made explicit, repeated ``/`` collapsed and a non-root trailing ``/`` dropped (no DNS).
    Non-HTTP or unparseable endpoints compare by their trimmed text.
    """
    raw = endpoint.strip()
    try:
        url = parse(raw)
    except UrlError:
        return raw
    if url.scheme not in ("http", "https"):
        return raw
    host = "<loopback>" if _is_loopback(url) else url.host
    path = "/".join(part for part in url.path.split("/") if part)
    query = "" if url.query is None else "?" + url.query
    return f"{url.scheme}://{host}:{url.port_or_default()}/{path}{query}"
