"""The bytes the router writes itself: heads for the app and the client, and its own
answers (the JSON error envelope of the API, with ``Retry-After`` on 503)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus

from aether.server.errors import RETRY_AFTER_SECS
from aether.server.forwarding import HOP_BY_HOP, Header

# Hop-by-hop headers of an app's answer: the router frames the answer to the client itself
# (an answer's ``host`` header, meaningless, passes on).
RESPONSE_HOP_BY_HOP = HOP_BY_HOP - {b"host"}
# Statuses whose answer never has a body (RFC 9110 6.4.1).
BODYLESS = frozenset({204, 304})
LAST_CHUNK = b"0\r\n\r\n"


def reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def request_head(
    method: bytes, target: bytes, headers: Iterable[Header], host: bytes, *, chunked: bool
) -> bytes:
    """The request line and headers sent to the app (``headers`` already filtered)."""
    lines = [b"%s %s HTTP/1.1" % (method, target)]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"host: " + host)
    if chunked:
        lines.append(b"transfer-encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def response_head(
    status: int,
    phrase: bytes,
    headers: Iterable[Header],
    *,
    chunked: bool,
    keep_alive: bool,
    http10: bool = False,
) -> bytes:
    """The status line and headers sent to the client; ``chunked`` when the router frames
    the body itself, ``Connection`` as the client's connection goes on or not."""
    lines = [b"HTTP/1.1 %d %s" % (status, phrase or reason(status))]
    lines += [name + b": " + value for name, value in headers]
    if chunked:
        lines.append(b"transfer-encoding: chunked")
    if not keep_alive:
        lines.append(b"connection: close")
    elif http10:
        lines.append(b"connection: keep-alive")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def error_response(status: int, code: str, message: str, *, keep_alive: bool) -> bytes:
    """The API's error envelope ``{"code", "message"}`` as a complete HTTP/1.1 answer."""
    body = json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 503:
        headers.append((b"retry-after", b"%d" % RETRY_AFTER_SECS))
    head = response_head(status, b"", headers, chunked=False, keep_alive=keep_alive)
    return head + body
