"""``/deployments/{id}/report``: what the client measured for a deployment (phase timings,
uploaded and skipped bytes), for the dashboard. ``aether deploy`` sends a first report with
``POST /deployments`` and the final one here once it has followed the rollout. Display only:
bounded by :func:`aether.models.check_report` and trusted for nothing else."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aether.errors import NotFound
from aether.models import DeployReport, check_report
from aether.server.auth import require_app_access, require_role
from aether.server.jsonbody import body_types, read_json
from aether.server.openapi import BOOL, obj, operation, param, schema
from aether.server.responses import JSONResponse
from aether.server.state import get_state
from aether.store import apps as app_store
from aether.store import deployment_reports
from aether.store import deployments as deployment_store
from aether.store.database import Row

_FIELDS, _OPTIONS = body_types(DeployReport)


async def _deployment(request: Request, *, write: bool) -> Row:
    state = get_state(request)
    row = await deployment_store.get_deployment(state.db, request.path_params["deployment_id"])
    if row is None:
        raise NotFound(f"deployment {request.path_params['deployment_id']} does not exist")
    app = await app_store.require_app(state.db, row["app_name"])
    require_app_access(request, app, write=write)
    return row


async def put_report(request: Request) -> Response:
    require_role(request, "deployer")  # before reading the body
    body = await read_json(request, required=_FIELDS, optional=_OPTIONS)
    report = check_report(body)
    row = await _deployment(request, write=True)
    await deployment_reports.save(get_state(request).db, row["id"], report, final=True)
    return Response(status_code=204)


async def get_report(request: Request) -> JSONResponse:
    row = await _deployment(request, write=False)
    found = await deployment_reports.get(get_state(request).db, row["id"])
    if found is None:
        raise NotFound(f"deployment {row['id']} has no report (its client sent none)")
    return JSONResponse(found)


ROUTES = [
    Route("/deployments/{deployment_id}/report", put_report, methods=["PUT"]),
    Route("/deployments/{deployment_id}/report", get_report, methods=["GET"]),
]

_ID = [param("deployment_id")]
_REPORT = schema(DeployReport, additionalProperties=False)
OPENAPI = {
    "/deployments/{deployment_id}/report": {
        "put": operation(
            "The client's final report for a deployment: phase timings (ms) and uploaded and"
            " skipped bytes, merged into what came with POST /deployments; display only",
            status=204,
            params=_ID,
            request=_REPORT,
            errors=(400, 401, 403, 404),
        ),
        "get": operation(
            "What the client reported for a deployment",
            params=_ID,
            response=obj(
                {
                    "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
                    "uploaded_bytes": {"type": ["integer", "null"]},
                    "skipped_bytes": {"type": ["integer", "null"]},
                    "final": BOOL,
                }
            ),
        ),
    }
}
