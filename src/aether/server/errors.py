"""The one place errors become HTTP responses: the seed's ``{"code", "message"}`` envelope.

Deliberate errors (:class:`AetherError`) keep their status, code and message; routing errors
(404, 405) become ``not_found``/``method_not_allowed``; anything else is a 500 ``internal``
whose message names the request id, with the traceback only in the server log. 5xx messages
from the store never reach the client verbatim.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from aether.errors import AetherError
from aether.server.responses import JSONResponse

log = logging.getLogger("aether.server")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    503: "service_unavailable",
}


def envelope_response(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str | None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    extra = dict(headers or {})
    if request_id:
        extra["X-Request-Id"] = request_id
    if status == 401:
        extra["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=extra)


def error_response(exc: BaseException, request_id: str | None) -> JSONResponse:
    """The envelope for any exception; logs what the client does not see."""
    if isinstance(exc, AetherError):
        return _aether_response(exc, request_id)
    if isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "bad_request")
        message = _routing_message(exc)
        return envelope_response(
            exc.status_code, code, message, request_id=request_id, headers=exc.headers
        )
    log.error(
        "unhandled %s (request id %s)",
        type(exc).__name__,
        request_id,
        exc_info=exc,
        extra={"fields": {"request_id": request_id}},
    )
    return _internal(request_id)


def _aether_response(exc: AetherError, request_id: str | None) -> JSONResponse:
    status = exc.http_status
    if status >= 500 and status != 503:
        log.error(
            "internal error %s: %s (request id %s)",
            exc.code,
            exc.message,
            request_id,
            extra={"fields": {"request_id": request_id}},
        )
        return _internal(request_id)
    if status == 503:
        log.warning("service unavailable: %s (request id %s)", exc.message, request_id)
    return envelope_response(status, exc.code, exc.message, request_id=request_id)


def _internal(request_id: str | None) -> JSONResponse:
    return envelope_response(
        500,
        "internal",
        f"internal error; the server log has the details under request id {request_id}",
        request_id=request_id,
    )


def _routing_message(exc: HTTPException) -> str:
    if exc.status_code == 404:
        return "no such route; see /openapi.json for the API"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"method not allowed here (allowed: {allowed})" if allowed else "method not allowed"
    return str(exc.detail)


def request_id_of(conn: HTTPConnection) -> str | None:
    return conn.scope.get("state", {}).get("request_id")


async def handle_exception(request: HTTPConnection, exc: Exception) -> JSONResponse:
    """Registered with starlette for HTTPException and AetherError raised inside routes."""
    return error_response(exc, request_id_of(request))
