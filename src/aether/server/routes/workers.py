"""``GET /workers``: the workers that registered lately, live or gone.

Each worker heartbeats its row (:mod:`aether.store.workers`): id, host, runtime, version, the
address its apps are reached on, the sandbox it gives apps, the apps it holds, when it started
and was last seen, and whether it is alive. Any role but a pull token may read it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from aether.server.auth import require_role
from aether.server.openapi import BOOL, NULLABLE_STR, STR, obj, operation
from aether.server.responses import JSONResponse
from aether.server.state import get_state
from aether.store import workers as worker_store


async def list_workers(request: Request) -> JSONResponse:
    require_role(request, "reader", "deployer")
    state = get_state(request)
    found = await worker_store.list_workers(state.db)
    runtime = state.settings.runtime
    return JSONResponse(
        {
            "workers": found,
            "runtime": runtime,
            "live": await worker_store.has_live_worker(state.db, runtime),
        }
    )


ROUTES = [Route("/workers", list_workers, methods=["GET"])]

WORKER = obj(
    {
        "id": STR,
        "host": STR,
        "runtime": STR,
        "version": STR,
        "advertise_addr": NULLABLE_STR,
        "isolation": {"type": "object"},
        "apps": {"type": "array", "items": STR},
        "started_at": STR,
        "last_seen": STR,
        "alive": BOOL,
        "stopped_at": NULLABLE_STR,
    }
)
OPENAPI = {
    "/workers": {
        "get": operation(
            "The workers seen lately (live first): host, runtime, version, advertised"
            " address, sandbox, apps held, last heartbeat; 'live' says whether one of the"
            " server's runtime is alive",
            response=obj(
                {"workers": {"type": "array", "items": WORKER}, "runtime": STR, "live": BOOL}
            ),
            errors=(401, 403, 503),
        )
    }
}
