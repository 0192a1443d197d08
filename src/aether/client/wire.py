"""One HTTP/1.1 connection on a socket: connect (TCP, TLS, a proxy's CONNECT tunnel), send a
request, read the answer's head and then its body as the framing says (``Content-Length``,
``chunked``, or up to the close).

Why not ``http.client``: importing it pulls in the email package and ssl, about 13 ms of every
``aether`` command's start (``python -X importtime``), on commands whose wall time is the
product. This module imports ssl only for https. Sessions, retries, redirects, proxies from
the environment and error mapping stay in :mod:`aether.client.http`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

MAX_LINE = 65536  # a status, header or chunk-size line longer than this is refused
MAX_FIELDS = 100
JOIN_BELOW = 64 * 1024  # a body this small goes out with the head in one write
NO_BODY_STATUSES = frozenset({204, 304})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class WireError(Exception):
    """The answer does not follow HTTP/1.1 as this client reads it."""


class ConnectionClosed(WireError):
    """The server closed the connection before its answer was complete."""


class Headers:
    """An answer's header fields; ``get`` is case-insensitive and joins repeated fields."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._by_name: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            before = self._by_name.get(key)
            self._by_name[key] = value if before is None else f"{before}, {value}"

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._by_name.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)


class Connection:
    """A connection to ``host:port`` (a proxy's, with ``tunnel`` naming the origin to CONNECT
    to); ``tls`` makes it https, checked against ``server_hostname``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        tunnel: tuple[str, int, Mapping[str, str]] | None = None,
        blocksize: int = 1024 * 1024,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.tls, self.server_hostname, self.tunnel = tls, server_hostname, tunnel
        self.blocksize = blocksize
        self.sock: socket.socket | None = None
        self._reader: Any = None
        self._method = "GET"

    def connect(self) -> None:
        address = (_resolvable(self.host), self.port)  # getaddrinfo takes bytes too
        sock = socket.create_connection(address, self.timeout)  # type: ignore[arg-type]
        try:
            # head and body may go out in two writes: never wait for the first one's ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tunnel is not None:
                _open_tunnel(sock, *self.tunnel)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._reader = sock.makefile("rb")

    def request(self, method: str, target: str, body: Any, headers: Mapping[str, str]) -> None:
        """Send the request line, the headers as given (the caller sets ``Host`` and the
        body's ``Content-Length``) and the body: bytes, a binary file or an iterable of bytes."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        fields = dict(headers)
        if body is None and method in BODY_METHODS:
            fields.setdefault("Content-Length", "0")
        head = _encode_head(f"{method} {target} HTTP/1.1", fields)
        self._method = method
        if body is None:
            self.sock.sendall(head)
        elif isinstance(body, bytes | bytearray | memoryview):
            if len(body) < JOIN_BELOW:
                self.sock.sendall(head + bytes(body))
            else:
                self.sock.sendall(head)
                self.sock.sendall(body)
        elif hasattr(body, "read"):
            self.sock.sendall(head)
            while block := body.read(self.blocksize):
                self.sock.sendall(block)
        else:
            self.sock.sendall(head)
            for block in body:
                self.sock.sendall(block)

    def getresponse(self) -> WireResponse:
        """The answer to the request just sent (interim 1xx answers skipped)."""
        if self._reader is None:
            raise ConnectionClosed("no request was sent on this connection")
        return WireResponse(self._reader, self._method)

    def close(self) -> None:
        reader, sock, self._reader, self.sock = self._reader, self.sock, None, None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()


class WireResponse:
    """Status, reason, headers and the body, read through ``read``/``read1``; ``will_close``
    says whether the connection can carry another request once the body is read."""

    def __init__(self, reader: Any, method: str) -> None:
        self._fp = reader
        version, self.status, self.reason, self.headers = read_head(reader)
        self.will_close = _will_close(version, self.headers)
        self._chunked = False
        self._chunk_left = 0
        self._crlf_due = False
        self._left: int | None = None  # bytes of a sized body still to read; None: to the close
        self._done = False
        if method == "HEAD" or self.status in NO_BODY_STATUSES or self.status < 200:
            self._left = 0
        elif "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._chunked = True
        elif (length := self.headers.get("Content-Length")) is not None:
            self._left = _content_length(length)
        else:
            self.will_close = True  # the body ends when the server closes the connection
        if self._left == 0:
            self._done = True

    def read(self, amt: int | None = None) -> bytes:
        """``amt`` bytes (fewer only at the end of the body), or the whole rest."""
        parts: list[bytes] = []
        wanted = -1 if amt is None else amt
        while wanted != 0 and (data := self.read1(wanted if wanted > 0 else 1024 * 1024)):
            parts.append(data)
            if wanted > 0:
                wanted -= len(data)
        return b"".join(parts)

    def read1(self, amt: int) -> bytes:
        """At most ``amt`` bytes as soon as some arrive; ``b""`` at the end of the body."""
        if self._done or amt <= 0:
            return b""
        if self._chunked:
            return self._read_chunked(amt)
        if self._left is None:
            data: bytes = self._fp.read1(amt)
            self._done = not data
            return data
        data = self._fp.read1(min(amt, self._left))
        if not data:
            raise ConnectionClosed(f"the answer ended {self._left} bytes short of its length")
        self._left -= len(data)
        self._done = self._left == 0
        return data

    def close(self) -> None:
        """Stop reading (the connection's owner decides whether to close it)."""
        self._done = True

    def _read_chunked(self, amt: int) -> bytes:
        if self._chunk_left == 0:
            self._chunk_left = self._next_chunk_size()
            if self._chunk_left == 0:
                self._done = True
                return b""
        data: bytes = self._fp.read1(min(amt, self._chunk_left))
        if not data:
            raise ConnectionClosed("the answer ended inside a chunk")
        self._chunk_left -= len(data)
        self._crlf_due = self._chunk_left == 0
        return data

    def _next_chunk_size(self) -> int:
        if self._crlf_due:  # read only now: a chunk's data is handed over without waiting
            self._crlf_due = False
            if _read_line(self._fp, "chunk") not in (b"\r\n", b"\n"):
                raise WireError("a chunk is longer than its size says")
        line = _read_line(self._fp, "chunk size")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise WireError(f"not a chunk size: {line[:20]!r}") from None
        if size < 0:
            raise WireError(f"not a chunk size: {line[:20]!r}")
        if size == 0:
            while _read_line(self._fp, "trailer") not in (b"\r\n", b"\n"):
                pass  # trailer fields: nothing here uses them
        return size


def _resolvable(host: str) -> str | bytes:
    """``host`` for ``getaddrinfo``: an ASCII name as bytes, which are looked up as they are.
    A ``str`` always goes through the ``idna`` codec, whose import (with ``stringprep`` and
    ``unicodedata``) costs every command ~1–2 ms; only a non-ASCII name needs it."""
    return host.encode("ascii") if host.isascii() else host


def read_head(reader: Any) -> tuple[str, int, str, Headers]:
    """The status line and header fields of the next final (non-1xx) answer."""
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line:
            raise ConnectionClosed("the server closed the connection without an answer")
        if len(line) > MAX_LINE:
            raise WireError("the status line is too long")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        version, _, rest = text.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise WireError(f"not an HTTP/1.x status line: {text[:40]!r}")
        headers = _read_fields(reader)
        status = int(code)
        if 100 <= status < 200 and status != 101:
            continue  # an interim answer (100 Continue, 103 Early Hints)
        return version, status, reason.strip(), headers


def _read_fields(reader: Any) -> Headers:
    fields: list[tuple[str, str]] = []
    while (line := _read_line(reader, "header")) not in (b"\r\n", b"\n"):
        if len(fields) >= MAX_FIELDS:
            raise WireError(f"more than {MAX_FIELDS} header fields")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and fields:  # obsolete line folding
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if not colon or not name.strip():
            raise WireError(f"not a header field: {text[:40]!r}")
        fields.append((name.strip(), value.strip()))
    return Headers(fields)


def _read_line(reader: Any, what: str) -> bytes:
    line: bytes = reader.readline(MAX_LINE + 1)
    if not line:
        raise ConnectionClosed(f"the answer ended before its {what} line")
    if len(line) > MAX_LINE:
        raise WireError(f"a {what} line is too long")
    return line


def _content_length(value: str) -> int:
    try:
        length = int(value.strip())
    except ValueError:
        raise WireError(f"not a Content-Length: {value[:20]!r}") from None
    if length < 0:
        raise WireError(f"not a Content-Length: {value[:20]!r}")
    return length


def _will_close(version: str, headers: Headers) -> bool:
    tokens = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
    if "close" in tokens:
        return True
    return version == "HTTP/1.0" and "keep-alive" not in tokens


def _encode_head(start: str, headers: Mapping[str, str]) -> bytes:
    """The request line and header fields; CR or LF in any of them is refused (a header
    value must never start a field or a request of its own)."""
    lines = [start, *(f"{name}: {value}" for name, value in headers.items()), "", ""]
    text = "\r\n".join(lines)
    if any(c in part for part in (start, *headers, *headers.values()) for c in "\r\n\0"):
        raise ValueError("a request line or header contains CR, LF or NUL")
    return text.encode("iso-8859-1")


def _open_tunnel(sock: socket.socket, host: str, port: int, extra: Mapping[str, str]) -> None:
    """Ask the proxy at the other end of ``sock`` for a tunnel to ``host:port``."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock.sendall(_encode_head(f"CONNECT {authority} HTTP/1.1", {"Host": authority, **extra}))
    reader = sock.makefile("rb")
    try:
        _, status, reason, _ = read_head(reader)
    finally:
        reader.close()
    if status != 200:
        raise OSError(f"Tunnel connection failed: {status} {reason}")
