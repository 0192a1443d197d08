"""Liveness, readiness (the database answers) and Prometheus metrics; all open."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aether.errors import AetherError, ServiceUnavailable
from aether.server.metrics import exposition
from aether.server.openapi import STR, obj, operation
from aether.server.responses import JSONResponse
from aether.server.state import get_state

# A readiness probe must answer quickly even while the pool waits for a dead server.
READY_TIMEOUT_SECS = 2.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    db = get_state(request).db
    try:
        await asyncio.wait_for(db.ping(), timeout=READY_TIMEOUT_SECS)
    except TimeoutError as exc:
        raise ServiceUnavailable("database did not answer within 2 s") from exc
    except ServiceUnavailable:
        raise
    except AetherError as exc:
        raise ServiceUnavailable(f"database is not ready: {exc.code}") from exc
    return JSONResponse({"status": "ready", "database": db.dialect})


async def metrics(request: Request) -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/health", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

_STATUS = obj({"status": STR})
OPENAPI = {
    "/healthz": {"get": operation("Liveness", response=_STATUS, errors=(), open_route=True)},
    "/health": {"get": operation("Liveness (alias)", response=_STATUS, errors=(), open_route=True)},
    "/readyz": {
        "get": operation(
            "Readiness: the database answers",
            response=obj({"status": STR, "database": STR}),
            errors=(503,),
            open_route=True,
        )
    },
    "/metrics": {
        "get": operation(
            "Prometheus metrics",
            response={"type": "string"},
            errors=(),
            open_route=True,
            media_type="text/plain",
        )
    },
}
