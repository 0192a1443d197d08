"""Per-request context: the request id, the access log line, request metrics, and the last
line of defence that turns any escaped exception into the JSON envelope.

The request id is the client's ``X-Request-Id`` when it sent a sane one, otherwise a fresh
one; it is echoed on every response and written on the access log line. Headers (and so
tokens) are never logged; only method, path, route template, status and duration.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aether.errors import BadRequest
from aether.server.errors import error_response
from aether.server.metrics import observe_request

access_log = logging.getLogger("aether.access")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A random per-process prefix and a counter: unique across replicas and restarts, without a
# call into the OS random source for every request.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_ID.match(text) else None
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message["headers"] = _with_header(message.get("headers", ()), id_header)
            await send(message)

        try:
            _refuse_nul(scope)
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status["sent"]:
                # Too late for an envelope: the stream is cut; the log keeps the cause.
                error_response(exc, request_id)
            else:
                await error_response(exc, request_id)(scope, receive, send_with_id)
        finally:
            _log_access(scope, request_id, status["code"], time.perf_counter() - started)


def _refuse_nul(scope: Scope) -> None:
    """A NUL in a path or query reaches no handler: no database stores it in text, and no
    name of ours may hold one."""
    query = scope.get("query_string", b"").lower()
    if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
        raise BadRequest("the URL contains a NUL character")


def _with_header(headers: Iterable[tuple[bytes, bytes]], header: tuple[bytes, bytes]) -> list:
    """The response headers with ``header`` set once (an error envelope may carry it already)."""
    kept = [item for item in headers if item[0].lower() != header[0]]
    kept.append(header)
    return kept


def _log_access(scope: Scope, request_id: str, status: int, seconds: float) -> None:
    route = observe_request(scope, status, seconds)
    if not access_log.isEnabledFor(logging.INFO):
        return
    method, path = scope.get("method", ""), scope.get("path", "")
    duration_ms = round(seconds * 1000, 2)
    access_log.info(
        "%s %s %s %.1fms request_id=%s",
        method,
        path,
        status,
        duration_ms,
        request_id,
        extra={
            "fields": {
                "request_id": request_id,
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
            }
        },
    )
