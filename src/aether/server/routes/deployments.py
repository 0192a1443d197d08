"""Deployments: create (idempotent per app + artifact while active), show, events (optionally
followed as NDJSON until a terminal status), list per app, rollback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aether.errors import BadRequest, NotFound
from aether.models import (
    MAX_REPLICAS,
    TERMINAL_STATUSES,
    Deployment,
    DeploymentPage,
    DeploymentRequest,
    Event,
    deployment_from,
    event_from,
    is_digest,
)
from aether.server.artifacts.verification import signature_matches
from aether.server.auth import principal, require_app_access, require_role
from aether.server.jsonbody import body_types, read_json
from aether.server.metrics import DEPLOYMENTS_CREATED
from aether.server.openapi import BOOL, NULLABLE_STR, obj, operation, param, schema
from aether.server.read_cache import page_key
from aether.server.responses import JSONResponse, render_json, rendered_json
from aether.server.state import ServerState, get_state
from aether.store import apps as app_store
from aether.store import artifacts as artifact_store
from aether.store import deployment_pages, wakeups
from aether.store import deployments as store
from aether.store import public_keys as public_key_store
from aether.store.database import Row

# A follower wakes at once for events written in this process (the embedded worker) and
# otherwise polls: a cheap indexed query, and 50 ms keeps the CLI from waiting noticeably on
# a worker in another process.
FOLLOW_POLL_SECS = 0.05
MAX_PAGE = 100
DEFAULT_PAGE = 20
_CREATE_FIELDS, _CREATE_OPTIONS = body_types(DeploymentRequest)


def _check_options(body: dict[str, Any]) -> None:
    env = body.get("env") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise BadRequest("field 'env' must map strings to strings")
    replicas = body.get("replicas", 1)
    if not 1 <= replicas <= MAX_REPLICAS:
        raise BadRequest(f"field 'replicas' must be between 1 and {MAX_REPLICAS}")
    health_path = body.get("health_path")
    if health_path is not None and not health_path.startswith("/"):
        raise BadRequest("field 'health_path' must start with '/'")
    node_version = body.get("node_version")
    if node_version is not None and not (node_version.isdigit() and len(node_version) <= 3):
        raise BadRequest("field 'node_version' must be a Node.js major such as \"20\"")


async def _stored_artifact(state: ServerState, app: Row, digest: str) -> Row:
    """The stored artifact to deploy. It may have been uploaded for another app: promoting
    the exact bytes that ran in staging to production is the point of content addressing."""
    artifact = await artifact_store.get_stored(state.db, digest)
    if artifact is None:
        raise BadRequest(f"artifact {digest} is not stored; upload it first")
    if state.policy.require_signature and not await _verified_for(state, app, artifact):
        raise BadRequest(
            f"artifact {digest} has no verified signature and AETHER_REQUIRE_SIGNATURE is on;"
            " sign it with AETHER_SIGNING_KEY and register the public key"
        )
    return artifact


async def _verified_for(state: ServerState, app: Row, artifact: Row) -> bool:
    """Signed by one of the deploying app's keys (an upload for another app was checked
    against that app's keys, which prove nothing here)."""
    if artifact["app_id"] == app["id"]:
        return bool(artifact["verified"])
    keys = await public_key_store.active_keys(state.db, app["id"])
    return signature_matches(keys, artifact["digest"], artifact["signature"])


async def create_deployment(request: Request) -> JSONResponse:
    require_role(request, "deployer")  # before reading the body: readers learn nothing more
    body = await read_json(request, required=_CREATE_FIELDS, optional=_CREATE_OPTIONS)
    if not is_digest(body["artifact_digest"]):
        raise BadRequest("field 'artifact_digest' must be 64 lowercase hex characters")
    _check_options(body)
    state = get_state(request)
    app = await app_store.require_app(state.db, body["app_name"])
    who = require_app_access(request, app, write=True)
    artifact = await _stored_artifact(state, app, body["artifact_digest"])
    spec = store.DeploymentSpec(
        app_id=app["id"],
        artifact_id=artifact["id"],
        runtime=body.get("runtime") or "nodejs",
        node_version=body.get("node_version"),
        start_command=body.get("start_command"),
        env=body.get("env") or {},
        replicas=body.get("replicas", 1),
        health_path=body.get("health_path"),
        created_by=who.user_id,
    )
    return await _respond_created(state, spec)


async def _respond_created(state: ServerState, spec: store.DeploymentSpec) -> JSONResponse:
    row, created = await store.create_deployment(state.db, spec)
    if created:
        DEPLOYMENTS_CREATED.inc()
    deployment = deployment_from(row, state.app_url(row["app_name"]))
    return JSONResponse(deployment, status_code=201 if created else 200)


async def _load(request: Request) -> Row:
    state = get_state(request)
    row = await store.get_deployment(state.db, request.path_params["deployment_id"])
    if row is None:
        raise NotFound(f"deployment {request.path_params['deployment_id']} does not exist")
    who = principal(request)
    if who.role == "puller" and who.deployment_id == row["id"]:
        return row  # an init container may read the deployment it pulls
    require_app_access(request, {"name": row["app_name"], "owner": None}, write=False)
    return row


async def get_deployment(request: Request) -> JSONResponse:
    row = await _load(request)
    return JSONResponse(deployment_from(row, get_state(request).app_url(row["app_name"])))


def _after(request: Request) -> int:
    raw = request.query_params.get("after", "0")
    if not raw.isdigit():
        raise BadRequest("query parameter 'after' must be an event id (a non-negative integer)")
    return int(raw)


async def get_events(request: Request) -> JSONResponse | StreamingResponse:
    deployment = await _load(request)
    after, state = _after(request), get_state(request)
    if request.query_params.get("follow", "").lower() not in ("1", "true", "yes"):
        rows = await store.list_events(state.db, deployment["id"], after=after)
        return JSONResponse({"events": [event_from(r) for r in rows]})
    stream = _follow(state, deployment["id"], after)
    return StreamingResponse(stream, media_type="application/x-ndjson")


async def _follow(state: ServerState, deployment_id: str, after: int) -> AsyncIterator[bytes]:
    """Events as NDJSON lines until the deployment is terminal and every event is sent."""
    topic = wakeups.deployment_topic(deployment_id)
    while True:
        with wakeups.subscribe(topic) as changed:  # before reading: no write slips between
            current = await store.get_deployment(state.db, deployment_id)
            for row in await store.list_events(state.db, deployment_id, after=after):
                after = row["id"]
                yield (json.dumps(event_from(row)) + "\n").encode()
            if current is None or current["status"] in TERMINAL_STATUSES:
                return
            if state.stopping.is_set():
                return
            await changed.wait(FOLLOW_POLL_SECS)


def _page_params(request: Request) -> tuple[int, str | None]:
    if not request.scope["query_string"]:  # the first page, as most callers ask for it
        return DEFAULT_PAGE, None
    raw = request.query_params.get("limit", str(DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"query parameter 'limit' must be an integer from 1 to {MAX_PAGE}")
    return int(raw), request.query_params.get("cursor") or None


async def list_app_deployments(request: Request) -> Response:
    state = get_state(request)
    limit, cursor = _page_params(request)
    name = request.path_params["app"]
    cache, key = state.read_cache, page_key(name, limit, cursor)
    body = cache.get(key)
    if body is None:
        generation = cache.generation
        page = await deployment_pages.app_deployments(
            state.db, name, limit=limit, cursor=cursor, url=state.app_url(name)
        )
        if page is None:
            raise NotFound(f"application {name!r} does not exist; create it with POST /apps")
        listing: DeploymentPage = {"deployments": page.deployments, "next_cursor": page.next_cursor}
        body = render_json(listing)
        cache.put(key, page.app_id, body, generation)
    require_app_access(request, {"name": name, "owner": None}, write=False)
    return rendered_json(body)


async def rollback(request: Request) -> JSONResponse:
    require_role(request, "deployer")
    body = await read_json(request, required={}, optional={"to": (str, type(None))})
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    who = require_app_access(request, app, write=True)
    target = await store.rollback_target(state.db, app["id"], to=body.get("to"))
    await _stored_artifact(state, app, target["artifact_digest"])
    spec = store.DeploymentSpec(
        app_id=app["id"],
        artifact_id=target["artifact_id"],
        runtime=target["runtime"],
        node_version=target["node_version"],
        start_command=target["start_command"],
        env=target["env"],
        replicas=target["replicas"],
        health_path=target["health_path"],
        created_by=who.user_id,
        rolled_back_from=target["id"],
    )
    return await _respond_created(state, spec)


ROUTES = [
    Route("/apps/{app}/deployments", list_app_deployments, methods=["GET"]),  # the hottest
    Route("/deployments", create_deployment, methods=["POST"]),
    Route("/deployments/{deployment_id}", get_deployment, methods=["GET"]),
    Route("/deployments/{deployment_id}/events", get_events, methods=["GET"]),
    Route("/apps/{app}/rollback", rollback, methods=["POST"]),
]

DEPLOYMENT_SCHEMA = schema(Deployment)
EVENT_SCHEMA = schema(Event)
_CREATE_REQUEST = schema(DeploymentRequest, additionalProperties=False)
_ID = [param("deployment_id")]
_APP = [param("app")]
OPENAPI = {
    "/deployments": {
        "post": operation(
            "Roll out a stored artifact (201; 200 when the same artifact is already active)",
            status=201,
            request=_CREATE_REQUEST,
            response=DEPLOYMENT_SCHEMA,
        )
    },
    "/deployments/{deployment_id}": {
        "get": operation("Show a deployment", params=_ID, response=DEPLOYMENT_SCHEMA)
    },
    "/deployments/{deployment_id}/events": {
        "get": operation(
            "A deployment's events; with follow=true an NDJSON stream of events until the"
            " deployment is running, failed or superseded",
            params=[
                *_ID,
                param("follow", "query", BOOL),
                param("after", "query", {"type": "integer", "minimum": 0}),
            ],
            response=obj({"events": {"type": "array", "items": EVENT_SCHEMA}}),
        )
    },
    "/apps/{app}/deployments": {
        "get": operation(
            "An app's deployments, newest first",
            params=[
                *_APP,
                param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                param("cursor", "query"),
            ],
            response=schema(DeploymentPage),
        )
    },
    "/apps/{app}/rollback": {
        "post": operation(
            "Redeploy the previous successful deployment, or 'to'",
            status=201,
            params=_APP,
            request=obj(optional={"to": NULLABLE_STR}, additionalProperties=False),
            response=DEPLOYMENT_SCHEMA,
        )
    },
}
