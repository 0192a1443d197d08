"""Deployments: create (a release of an artifact, idempotent on the release's whole tuple),
show, events (optionally followed as NDJSON until a terminal status), list per app,
rollback. The releases themselves are made by :mod:`aether.server.releasing`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aether.errors import BadRequest, Conflict, NotFound
from aether.models import (
    TERMINAL_STATUSES,
    Deployment,
    DeploymentCreated,
    DeploymentPage,
    DeploymentRequest,
    Event,
    check_config_vars,
    check_replicas,
    check_report,
    deployment_from,
    event_from,
    is_digest,
    release_number,
)
from aether.pack import artifact_manifest
from aether.server import releasing
from aether.server.artifacts import possession, registry
from aether.server.artifacts.access import app_for_upload
from aether.server.artifacts.sbom_admission import check_sbom
from aether.server.artifacts.verification import signature_matches
from aether.server.auth import Principal, principal, require_app_access, require_role
from aether.server.jsonbody import body_types, int_param, read_json
from aether.server.openapi import BOOL, NULLABLE_STR, obj, operation, param, schema
from aether.server.read_cache import page_key
from aether.server.responses import JSONResponse, render_json, rendered_json
from aether.server.state import ServerState, get_state
from aether.store import apps as app_store
from aether.store import artifacts as artifact_store
from aether.store import deployment_pages, deployment_reports, wakeups
from aether.store import deployments as store
from aether.store import public_keys as public_key_store
from aether.store import releases as release_store
from aether.store import workers as worker_store
from aether.store.clock import now_iso
from aether.store.database import Row
from aether.store.releases import Outcome

# A follower wakes at once for events written in this process (the embedded worker) and
# otherwise polls: a cheap indexed query, and 50 ms keeps the CLI from waiting noticeably on
# a worker in another process.
FOLLOW_POLL_SECS = 0.05
WORKER_CHECK_SECS = 1.0  # how often a pending deployment's follow asks for a live worker
MAX_PAGE = 100
DEFAULT_PAGE = 20
_CREATE_FIELDS, _CREATE_OPTIONS = body_types(DeploymentRequest)


def _check_options(body: dict[str, Any]) -> None:
    check_config_vars(body.get("env") or {})
    check_replicas(body.get("replicas", 1))
    health_path = body.get("health_path")
    if health_path is not None and not (health_path.startswith("/") and len(health_path) < 1024):
        raise BadRequest("field 'health_path' must start with '/' (at most 1023 characters)")
    node_version = body.get("node_version")
    if node_version is not None and not (node_version.isdigit() and len(node_version) <= 3):
        raise BadRequest("field 'node_version' must be a Node.js major such as \"20\"")


async def stored_artifact(
    state: ServerState, app: Row, digest: str, who: Principal | None = None
) -> Row:
    """The stored artifact to deploy, if the app holds it (:mod:`possession`): uploaded for
    this app, or for another app the caller may deploy — promoting the exact bytes that ran
    in staging to production is the point of content addressing. Anyone else is told what
    an unknown digest tells: upload it. Then the admission checks: its signature
    (AETHER_REQUIRE_SIGNATURE) and its SBOM (:mod:`aether.server.artifacts.sbom_admission`)."""
    artifact = await artifact_store.get_stored(state.db, digest)
    if artifact is None or not await possession.holds(state, who, app, digest):
        raise BadRequest(
            f"artifact {digest} is not stored for app {app['name']!r}; upload it first"
        )
    if state.policy.require_signature and not await _verified_for(state, app, artifact):
        raise BadRequest(
            f"artifact {digest} has no verified signature and AETHER_REQUIRE_SIGNATURE is on;"
            " sign it with AETHER_SIGNING_KEY and register the public key"
        )
    await check_sbom(state, artifact)
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
    report = check_report(body["report"]) if "report" in body else None
    state = get_state(request)
    if "manifest" in body:
        app = await _register_manifest(request, state, body)
    else:
        app = await app_store.require_app(state.db, body["app_name"])
    who = require_app_access(request, app, write=True)
    await stored_artifact(state, app, body["artifact_digest"], who)
    wanted = releasing.DeployRequest(
        artifact_digest=body["artifact_digest"],
        overrides=body.get("env") or {},
        runtime=body.get("runtime") or "nodejs",
        node_version=body.get("node_version"),
        start_command=body.get("start_command"),
        replicas=body.get("replicas"),
        health_path=body.get("health_path"),
        keep_health_path="health_path" not in body,
    )
    outcome = await releasing.deploy(state, app, who.user_id, wanted)
    if report and outcome.created:  # an unchanged answer is an older deployment: not this run's
        await deployment_reports.save(state.db, outcome.deployment["id"], report, final=False)
    return _created(state, outcome, set(wanted.overrides))


async def _register_manifest(request: Request, state: ServerState, body: dict[str, Any]) -> Row:
    """The app, once the layered artifact's manifest sent with the deployment is registered
    as ``POST /artifacts/manifests`` registers it (the app created if need be, 409 when a
    layer it names is not stored for the app), and the SBOM it names is stored too (409
    otherwise: a client sending the manifest this way may take it as uploaded with the
    dependencies it describes, and must learn when it was not)."""
    raw = body["manifest"].encode("utf-8")
    if artifact_manifest.artifact_digest(raw) != body["artifact_digest"]:
        raise BadRequest("field 'artifact_digest' must be the sha256 of field 'manifest'")
    app, _ = await app_for_upload(request, state, body["app_name"])
    await registry.register_manifest(
        state, principal(request), app, raw, body.get("signature"), sbom_required=True
    )
    return app


def _created(
    state: ServerState, outcome: Outcome, overrides: set[str] | None = None
) -> JSONResponse:
    """201 with the new release's deployment; 200 and ``unchanged`` when nothing changed."""
    deployment = deployment_from(outcome.deployment, state.app_url(outcome.deployment["app_name"]))
    dropped = set(outcome.base_overrides) - overrides if overrides is not None else set()
    body: DeploymentCreated = {
        **deployment,
        "unchanged": not outcome.created,
        "dropped_overrides": sorted(dropped) if outcome.created else [],
    }
    return JSONResponse(body, status_code=201 if outcome.created else 200)


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
    return int_param(request.query_params.get("after"), "after", default=0)


async def get_events(request: Request) -> JSONResponse | StreamingResponse:
    deployment = await _load(request)
    after, state = _after(request), get_state(request)
    if request.query_params.get("follow", "").lower() not in ("1", "true", "yes"):
        rows = await store.list_events(state.db, deployment["id"], after=after)
        return JSONResponse({"events": [event_from(r) for r in rows]})
    outcome = request.query_params.get("outcome", "").lower() in ("1", "true", "yes")
    stream = _follow(state, deployment["id"], after, outcome=outcome)
    return StreamingResponse(stream, media_type="application/x-ndjson")


async def _follow(
    state: ServerState, deployment_id: str, after: int, *, outcome: bool = False
) -> AsyncIterator[bytes]:
    """Events as NDJSON lines until the deployment is terminal and every event is sent. While
    it is pending with no live worker to take it, one ``waiting`` line (no ``id``: it is not a
    stored event) says so at once, not when the client's timeout runs out. With ``outcome``,
    the last line of a stream that ended because the deployment is terminal is
    ``{"deployment": …}``, as ``GET /deployments/{id}`` would answer: the client needs no
    request of its own to learn how it ended."""
    topic = wakeups.deployment_topic(deployment_id)
    waiting = _WorkerWatch(state)
    while True:
        with wakeups.subscribe(topic) as changed:  # before reading: no write slips between
            current = await store.get_deployment(state.db, deployment_id)
            for row in await store.list_events(state.db, deployment_id, after=after):
                after = row["id"]
                yield (json.dumps(event_from(row)) + "\n").encode()
            if current is None or current["status"] in TERMINAL_STATUSES:
                if outcome and current is not None:
                    final = deployment_from(current, state.app_url(current["app_name"]))
                    yield render_json({"deployment": final}) + b"\n"
                return
            if state.stopping.is_set():
                return
            if current["status"] == "pending" and (said := await waiting.say(deployment_id)):
                yield (json.dumps(said) + "\n").encode()
            await changed.wait(FOLLOW_POLL_SECS)


class _WorkerWatch:
    """Whether a live worker exists for the server's runtime, asked at most every
    WORKER_CHECK_SECS; says "none" once per stretch without one."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        # A worker usually takes a deployment within moments: ask only after a second.
        self.next_check = time.monotonic() + WORKER_CHECK_SECS
        self.said = False

    async def say(self, deployment_id: str) -> dict[str, Any] | None:
        if time.monotonic() < self.next_check:
            return None
        self.next_check = time.monotonic() + WORKER_CHECK_SECS
        runtime = self.state.settings.runtime
        if await worker_store.has_live_worker(self.state.db, runtime):
            self.said = False
            return None
        if self.said:
            return None
        self.said = True
        return {
            "deployment_id": deployment_id,
            "phase": "waiting",
            "message": worker_store.no_live_worker_message(runtime),
            "timestamp": now_iso(),
        }


async def cancel_deployment(request: Request) -> JSONResponse:
    """A pending deployment nobody waits for can be stopped before a worker takes it."""
    require_role(request, "deployer")
    row = await _load(request)
    state = get_state(request)
    app = await app_store.require_app(state.db, row["app_name"])
    who = require_app_access(request, app, write=True)
    reason = f"cancelled by {who.name or who.role} before a worker took it"
    if not await store.cancel_pending(state.db, row["id"], reason):
        current = await store.get_deployment(state.db, row["id"])
        status = current["status"] if current else "gone"
        raise Conflict(
            f"deployment {row['id']} is {status}, not pending: only a deployment no worker "
            "has taken yet can be cancelled (roll back instead: `aether rollback`)"
        )
    done = await store.get_deployment(state.db, row["id"])
    assert done is not None
    return JSONResponse(deployment_from(done, state.app_url(done["app_name"])))


def _page_params(request: Request) -> tuple[int, str | None]:
    if not request.scope["query_string"]:  # the first page, as most callers ask for it
        return DEFAULT_PAGE, None
    raw = request.query_params.get("limit")
    limit = int_param(raw, "limit", default=DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    return limit, request.query_params.get("cursor") or None


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
    target = await rollback_target(state, app, body.get("to"))
    await stored_artifact(state, app, target["artifact_digest"], who)
    return _created(state, await releasing.rollback(state, app, who.user_id, target))


async def rollback_target(state: ServerState, app: Row, to: str | None) -> Row:
    """``to``: a release (``v3``, ``3``) or a deployment id; default: the release before the
    one running now (the newest earlier release whose rollout succeeded)."""
    version = release_number(to) if to is not None else None
    if version is not None:
        found = await release_store.get_by_version(state.db, app["id"], version)
        if found is None:
            raise BadRequest(f"app {app['name']!r} has no release v{version}")
        return found
    if to is not None:
        deployment = await store.get_deployment(state.db, to)
        if deployment is None or deployment["app_id"] != app["id"] or not deployment["release_id"]:
            raise BadRequest(f"deployment {to} is not a deployment of this app")
        found = await release_store.get_by_id(state.db, deployment["release_id"])
        assert found is not None
        return found
    found = await release_store.previous_success(state.db, app["id"])
    if found is None:
        raise BadRequest("no earlier successful release to roll back to; pass 'to' (e.g. v3)")
    return found


ROUTES = [
    Route("/apps/{app}/deployments", list_app_deployments, methods=["GET"]),  # the hottest
    Route("/deployments", create_deployment, methods=["POST"]),
    Route("/deployments/{deployment_id}", get_deployment, methods=["GET"]),
    Route("/deployments/{deployment_id}/events", get_events, methods=["GET"]),
    Route("/deployments/{deployment_id}/cancel", cancel_deployment, methods=["POST"]),
    Route("/apps/{app}/rollback", rollback, methods=["POST"]),
]

DEPLOYMENT_SCHEMA = schema(Deployment)
EVENT_SCHEMA = schema(Event)
_CREATED_SCHEMA = schema(DeploymentCreated)
_CREATE_REQUEST = schema(DeploymentRequest, additionalProperties=False)
_ID = [param("deployment_id")]
_APP = [param("app")]
OPENAPI = {
    "/deployments": {
        "post": operation(
            "Make a release of a stored artifact with the app's config and roll it out (201);"
            " 200 with unchanged=true when the app already runs that same release",
            status=201,
            request=_CREATE_REQUEST,
            response=_CREATED_SCHEMA,
            errors=(400, 401, 403, 404, 409, 503),
        )
    },
    "/deployments/{deployment_id}": {
        "get": operation("Show a deployment", params=_ID, response=DEPLOYMENT_SCHEMA)
    },
    "/deployments/{deployment_id}/events": {
        "get": operation(
            "A deployment's events; with follow=true an NDJSON stream of events until the"
            " deployment is running, failed or superseded (while it is pending with no live"
            " worker, a 'waiting' line without an id says so); with outcome=true as well, the"
            ' stream\'s last line is {"deployment": …} (as GET /deployments/{id} answers)'
            " once the deployment is terminal",
            params=[
                *_ID,
                param("follow", "query", BOOL),
                param("outcome", "query", BOOL),
                param("after", "query", {"type": "integer", "minimum": 0}),
            ],
            response=obj({"events": {"type": "array", "items": EVENT_SCHEMA}}),
        )
    },
    "/deployments/{deployment_id}/cancel": {
        "post": operation(
            "Cancel a deployment no worker has taken yet (pending → failed, reason and a"
            " 'cancelled' event); 409 once it is deploying or done",
            params=_ID,
            response=DEPLOYMENT_SCHEMA,
            errors=(401, 403, 404, 409, 503),
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
            "A new release of an earlier one's code, config and settings (at the current"
            " scale): 'to' is a release (v3) or a deployment id; default the previous"
            " successful release",
            status=201,
            params=_APP,
            request=obj(optional={"to": NULLABLE_STR}, additionalProperties=False),
            response=_CREATED_SCHEMA,
            errors=(400, 401, 403, 404, 503),
        )
    },
}
