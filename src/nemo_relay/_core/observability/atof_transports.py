"""Wire transports of the ATOF stream sinks, each driven by one worker thread (``atof_streams``).

* ``http_post``: one ``POST`` per event, body ``<json>\\n``, ``Content-Type: application/x-ndjson``,
  over a kept-alive ``http.client`` connection with the sink's timeout; 2xx is success, anything else
  is logged and counted, never retried.
* ``ndjson``: one long-lived chunked ``POST`` upload, one chunk per event line; the response is read
  when the sink closes (or as soon as the server answers early). A broken upload loses its lines and
  the next event opens a new one.
* ``websocket``: one connection (the ``websockets`` library's sync client, imported only when such a
  sink is configured), one text message per event; on failure it reconnects and resends.

``send`` raises ``DeliveryFailed`` for the current event and returns how many *earlier* events (ndjson
lines already written) are now known lost; ``abort`` may be called from another thread to unblock I/O.
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.parse

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DeliveryFailed", "Transport", "make_transport", "WEBSOCKET_EXTRA_HINT"]

WEBSOCKET_EXTRA_HINT = "pip install 'nemo-relay-py[websocket]'"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class DeliveryFailed(Exception):
    """An event could not be delivered (``reason``/``status`` are log fields; never carries credentials)."""

    def __init__(
        self, reason: str, summary: str, *, status: int | None = None, retry: bool = False, earlier: int = 0
    ) -> None:
        super().__init__(summary)
        self.reason = reason
        self.summary = summary
        self.status = status
        self.retry = retry  # keep the event and try again on a new connection
        self.earlier = earlier  # events sent before this one that are now known lost


class _Url:
    """A parsed endpoint URL; ``endpoint`` is the loggable form (no user info, no query)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        self.url = url.strip()
        self.scheme = parts.scheme.lower()
        self.host = parts.hostname or ""
        self.port = parts.port or _DEFAULT_PORTS.get(self.scheme, 80)
        path = parts.path or "/"
        self.target = f"{path}?{parts.query}" if parts.query else path
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint = f"{self.scheme}://{shown}:{self.port}{path}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            import ssl

            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class Transport:
    """Base: a destination plus one connection that only the worker thread uses (``abort`` aside)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self._url = _Url(url)
        self.endpoint = self._url.endpoint
        self._raw_url = url
        self._given_headers = dict(headers)
        self._timeout = timeout
        # Lowercase names, as the reference sends them; configured headers win over the defaults.
        # Values go out as UTF-8 bytes (http.client would insist on Latin-1 text).
        self._headers: dict[str, bytes] = {"content-type": b"application/x-ndjson", "accept": b"*/*"}
        self._headers.update({name.lower(): value.encode("utf-8") for name, value in headers.items()})
        self._conn: Any = None

    def send(self, item: Any) -> int:
        """Deliver one event; returns earlier events now known lost, raises ``DeliveryFailed``."""
        raise NotImplementedError

    def close(self) -> int:
        """Finish gracefully (worker thread); returns earlier events now known lost."""
        self._drop()
        return 0

    def pending(self) -> int:
        """Events handed over but not yet confirmed (lines of an open ndjson upload)."""
        return 0

    def abort(self) -> None:
        """Unblock the worker if it is stuck in I/O (any thread)."""
        sock = getattr(self._conn, "sock", None)
        if sock is not None:
            try:  # noqa: SIM105
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def fresh(self) -> Transport:
        """The same destination without a connection (for a forked child)."""
        return type(self)(self._raw_url, self._given_headers, self._timeout)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:  # noqa: SIM105
                conn.close()
            except Exception:  # closing a broken connection may fail; it is gone either way
                pass


class HttpPost(Transport):
    """One ``POST`` per event on a kept-alive connection."""

    def send(self, item: Any) -> int:
        for attempt in (0, 1):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._url.connection(self._timeout)
            conn = self._conn
            try:
                conn.request("POST", self._url.target, body=item, headers=self._headers)
                response = conn.getresponse()
                response.read()
                if response.will_close:
                    self._drop()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop()
                if reused and attempt == 0:
                    continue  # the server closed an idle kept-alive connection: one fresh try
                raise DeliveryFailed("request_failed", "ATOF endpoint delivery failed") from None
            except (OSError, http.client.HTTPException):
                self._drop()
                raise DeliveryFailed("request_failed", "ATOF endpoint delivery failed") from None
            if 200 <= response.status < 300:
                return 0
            raise DeliveryFailed("status", "ATOF endpoint returned an unsuccessful status", status=response.status)
        raise AssertionError("unreachable")  # pragma: no cover


class Ndjson(Transport):
    """One long-lived chunked upload; each event is one chunk holding one line."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        super().__init__(url, headers, timeout)
        self._lines = 0  # lines written on the current upload

    def pending(self) -> int:
        return self._lines

    def send(self, item: Any) -> int:
        if self._conn is None:
            self._open()
        conn = self._conn
        try:
            conn.send(b"%x\r\n%b\r\n" % (len(item), item))
        except OSError:
            return self._broken()
        self._lines += 1
        if _readable(conn.sock):  # the server answered before the upload ended
            return self._finish(current=True)
        return 0

    def close(self) -> int:
        if self._conn is None:
            return 0
        try:
            self._conn.send(b"0\r\n\r\n")
        except OSError:
            return self._broken()
        return self._finish(current=False)

    def _open(self) -> None:
        conn = self._url.connection(self._timeout)
        try:
            conn.putrequest("POST", self._url.target, skip_accept_encoding=True)
            for name, value in self._headers.items():
                conn.putheader(name, value)
            conn.putheader("transfer-encoding", "chunked")
            conn.endheaders()
        except (OSError, http.client.HTTPException):
            conn.close()
            raise DeliveryFailed("upload_failed", "ATOF endpoint upload failed") from None
        self._conn = conn
        self._lines = 0

    def _broken(self) -> int:
        lines, self._lines = self._lines, 0
        self._drop()
        raise DeliveryFailed("upload_failed", "ATOF endpoint upload failed", earlier=lines)

    def _finish(self, current: bool) -> int:
        # Read the upload's response; its lines were delivered only if it is 2xx. They stay
        # ``pending`` while we wait, so an abort meanwhile counts them as undelivered.
        lines = self._lines
        conn = self._conn
        try:
            response = conn.getresponse()
            response.read()
            status: int | None = response.status
        except (OSError, http.client.HTTPException):
            status = None
        self._lines = 0
        self._drop()
        if status is not None and 200 <= status < 300:
            return 0
        earlier = lines - 1 if current else lines  # the current line is the caller's to count
        if status is None:
            raise DeliveryFailed("upload_failed", "ATOF endpoint upload failed", earlier=earlier)
        raise DeliveryFailed("status", "ATOF endpoint returned an unsuccessful status", status=status, earlier=earlier)


class WebSocket(Transport):
    """One connection, one text message per event; reconnects (and resends) after a failure."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        super().__init__(url, headers, timeout)
        self._connect = _websocket_connect()
        self._ws_headers = [(name.lower(), value) for name, value in headers.items()]
        self._lock = threading.Lock()  # abort vs. a connection being installed

    def send(self, item: Any) -> int:
        ws = self._conn
        if ws is None:
            try:
                ws = self._open()
            except Exception:
                raise DeliveryFailed("connect_failed", "ATOF endpoint connection failed", retry=True) from None
        try:
            ws.send(item)
        except Exception:
            self._drop()
            raise DeliveryFailed("send_failed", "ATOF endpoint send failed", retry=True) from None
        return 0

    def _open(self) -> Any:
        ws = self._connect(
            self._url.url, additional_headers=self._ws_headers, open_timeout=self._timeout,
            close_timeout=self._timeout,
        )  # fmt: skip
        ws.__enter__()  # context-manager use: no legacy-API warning on websockets >= 17
        with self._lock:
            self._conn = ws
        return ws

    def abort(self) -> None:
        with self._lock:
            ws = self._conn
        sock = getattr(ws, "socket", None)
        if sock is not None:
            try:  # noqa: SIM105
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _readable(sock: socket.socket | None) -> bool:
    if sock is None:
        return False
    import select

    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # a closed socket: reading the response reports it


def _websocket_connect() -> Any:
    """The ``websockets`` sync client's ``connect`` with our fixed options, or a RuntimeError naming the extra."""
    try:
        from websockets.sync.client import connect
    except ImportError:
        raise RuntimeError(
            "the ATOF websocket transport needs the 'websockets' package; install it with: " + WEBSOCKET_EXTRA_HINT
        ) from None
    import inspect

    accepted = inspect.signature(connect).parameters
    # No proxy lookup, no compression, no User-Agent: plain frames to the configured URL, as the
    # reference sends them. Older releases lack some of these options.
    fixed = {"proxy": None, "compression": None, "user_agent_header": None}
    options = {key: value for key, value in fixed.items() if key in accepted}

    def connect_with_options(url: str, **kwargs: Any) -> Any:
        return connect(url, **options, **kwargs)

    return connect_with_options


def make_transport(transport: str, url: str, headers: dict[str, str], timeout: float) -> Transport:
    """The transport named by a validated sink configuration."""
    if transport == "http_post":
        return HttpPost(url, headers, timeout)
    if transport == "ndjson":
        return Ndjson(url, headers, timeout)
    if transport == "websocket":
        return WebSocket(url, headers, timeout)
    raise ValueError(f"unknown ATOF transport {transport!r}")
