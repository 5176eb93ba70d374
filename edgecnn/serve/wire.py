"""The HTTP connection under the app: uvicorn's httptools protocol, with the request head read within limits.

httptools itself holds a header of any size (it joins a value's pieces until the line ends) and any number of
them. Here every byte of a head is counted as it arrives: past ``max_header_bytes`` the connection answers 431,
past ``max_headers`` lines 431, a request target past ``max_url_bytes`` 414 — each before the rest is read, so
at most the limit plus one read of the socket is ever held. Malformed HTTP is answered 400, in the protocol's
JSON form rather than uvicorn's plain text. Every such answer is counted and logged by the Gate as any other;
the connection then closes after a short linger, the client's further bytes read and dropped, so that it sees the
answer rather than a reset.

For the drain (server.py), :meth:`Connection.quiet` says whether a connection can be closed without cutting a
request: nothing of one received, nothing waiting in the socket.
"""

from __future__ import annotations

import fcntl
import termios
import time
from typing import Any, NamedTuple

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from edgecnn.serve.gate import Gate, error_body

__all__ = ["HeadLimits", "Connection", "connection_class"]

LINGER = 1.0  # seconds a refused connection keeps reading (and dropping) before it closes
# The drain closes a connection only after this long with nothing received: a client that has just connected is
# about to send its request, and closing under it would reset that request.
QUIET_FOR = 0.25
_BODY_HEADERS = (b"content-length", b"transfer-encoding")
_REASONS = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class HeadLimits(NamedTuple):
    header_bytes: int
    headers: int
    url_bytes: int


class _Refused(Exception):
    """Raised inside a parser callback to stop the parse; the connection answers ``status``."""


def connection_class(gate: Gate, limits: HeadLimits) -> type[Connection]:
    """The protocol class uvicorn builds per connection, bound to this server's gate and limits."""
    return type("BoundConnection", (Connection,), {"gate": gate, "limits": limits})


class Connection(HttpToolsProtocol):
    gate: Gate
    limits: HeadLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head = 0  # bytes received of the head being read; None once its headers are complete
        self._lines = 0
        self._refusal: tuple[int, str] | None = None
        self._closing = False
        self._heard = time.monotonic()  # when the client last sent anything (or connected)

    def data_received(self, data: bytes) -> None:
        self._heard = time.monotonic()
        if self._closing:  # refused: read and dropped until the linger ends
            return
        self._unset_keepalive_if_required()
        if self._head is not None:
            self._head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # no upgrade is served: the request is answered as a plain one
            return
        except httptools.HttpParserError as exc:
            self._refuse(*(self._refusal or (400, f"malformed HTTP request ({str(exc)[:80]})")))
            return
        if self._head is not None and self._head > self.limits.header_bytes:
            self._refuse(431, f"the request head is past {self.limits.header_bytes:,} bytes (--max-header-bytes)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._lines = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.url_bytes:
            self._stop(414, f"the request target is past {self.limits.url_bytes:,} bytes (--max-url-bytes)")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._lines += 1
        if self._lines > self.limits.headers:
            self._stop(431, f"the request has more than {self.limits.headers} header lines (--max-headers)")

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.header_bytes:  # complete within one read, yet past the limit
            self._stop(431, f"the request head is past {self.limits.header_bytes:,} bytes (--max-header-bytes)")
        if self.parser.should_upgrade() and any(name in _BODY_HEADERS for name, _ in self.headers):
            # httptools stops parsing at an upgrade: the body would never reach the app
            self._stop(400, "an Upgrade request with a body is not served: send it without 'Connection: upgrade'")
        self._head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head = 0

    def send_400_response(self, msg: str) -> None:  # uvicorn's own refusals, in our form
        self._refuse(400, f"malformed HTTP request ({msg})")

    def quiet(self) -> bool:
        """No request in progress or begun, nothing heard for QUIET_FOR seconds and no byte waiting in the
        socket: closing it cuts nothing."""
        if self._closing or self.transport.is_closing():
            return True
        busy = (self.cycle is not None and not self.cycle.response_complete) or self.pipeline or self._head
        recent = time.monotonic() - self._heard < QUIET_FOR
        return not busy and not recent and _waiting_bytes(self.transport) == 0

    def _stop(self, status: int, message: str) -> None:
        self._refusal = (status, message)
        raise _Refused(message)

    def _refuse(self, status: int, message: str) -> None:
        self._closing = True
        seen = {"client": self.client}
        if getattr(self, "url", b""):  # the request line was read up to its target
            seen |= {"method": self.parser.get_method().decode("latin-1"), "path": _path(self.url)}
        self.gate.refused(seen, status, message, self._head or 0)
        if self.cycle is not None and not self.cycle.response_complete:  # a pipelined request: after this answer
            self.cycle.keep_alive = False
            return
        body = error_body(message)
        head = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error")), b"content-type: application/json"]
        head += [b"content-length: %d" % len(body), b"connection: close"]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is sent; the client's bytes still read, then the close
        self.loop.call_later(LINGER, self.transport.close)


def _path(url: bytes) -> str:
    return url[:200].split(b"?", 1)[0].decode("latin-1")


def _waiting_bytes(transport: Any) -> int:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"), "little")
    except OSError:  # closed meanwhile
        return 0
