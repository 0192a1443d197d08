"""Artifact routes: ``HEAD``/``GET /artifacts/{digest}``, ``GET /artifacts`` (newest first,
paginated) and ``GET /artifacts/{digest}/download`` (a short-lived presigned GET, also for
deployment-scoped pull tokens), plus the upload routes of
:mod:`~aether.server.routes.artifact_uploads`, :mod:`~aether.server.routes.artifact_direct` and
:mod:`~aether.server.routes.artifact_legacy`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from aether.blobs.base import expires_at
from aether.errors import BadRequest, Forbidden, NotFound
from aether.models import Artifact, artifact_from, is_app_name
from aether.server.artifacts import possession
from aether.server.artifacts.access import check_digest
from aether.server.auth import Principal, principal, require_role
from aether.server.jsonbody import int_param
from aether.server.openapi import INT, NULLABLE_STR, STR, obj, operation, param, schema
from aether.server.read_cache import stored_key
from aether.server.responses import JSONResponse
from aether.server.routes import artifact_direct, artifact_legacy, artifact_uploads
from aether.server.state import ServerState, get_state
from aether.store import apps as app_store
from aether.store import artifact_uploads as upload_store
from aether.store import artifacts as artifact_store
from aether.store.change_feed import artifact_topic
from aether.store.database import Row
from aether.store.deployments import decode_cursor, encode_cursor, get_deployment

READ_ROLES = ("deployer", "reader")
MAX_PAGE = 100
_STATUSES = {"stored": "stored", "pending": "pending", "all": None}


async def artifact_detail(request: Request) -> Response:
    """GET: a stored artifact's metadata. HEAD: 200 when the digest is stored *for the app*
    named by ``?app=`` (or, without it, for an app the caller may deploy), else 404, no
    body: the client's "skip the upload?" question, which never tells one tenant what
    another stored (:mod:`aether.server.artifacts.possession`)."""
    who = require_role(request, *READ_ROLES)
    state = get_state(request)
    digest = request.path_params["digest"]
    if request.method == "HEAD":
        if check_digest_or_none(digest) is None:
            return Response(status_code=400)  # a HEAD answer carries no body, not even an error
        held = await _held(state, who, request.query_params.get("app"), digest)
        return Response(status_code=200 if held else 404)
    row = await artifact_store.get_stored(state.db, check_digest(digest))
    if row is None:
        row = next(iter(await _own_uploads(state, who, limit=1, digest=digest)), None)
    if row is None:
        raise NotFound(f"no artifact with digest {digest}")
    return JSONResponse(artifact_from(row))


async def _own_uploads(state: ServerState, who: Principal, **query: Any) -> list[Row]:
    """Uploads in progress the caller may see: its own apps' (an admin: all)."""
    if who.role not in ("admin", "deployer"):
        return []
    owner = None if who.role == "admin" else who.user_id
    return await upload_store.list_page(state.db, owner=owner, **query)


async def _held(state: ServerState, who: Principal, app_name: str | None, digest: str) -> bool:
    if app_name is None:
        return await possession.visible(state, who, digest)
    app = await app_store.get_app(state.db, app_name) if is_app_name(app_name) else None
    if app is None:  # an upload creates the app: nothing is held for it yet
        return False
    cache, key = state.read_cache, stored_key(digest, app["id"])
    if cache.get(key) is not None:
        return True
    generation = cache.generation
    if not await possession.holds(state, who, app, digest):
        return False  # not kept: an upload may complete at any moment
    # The app now holds a reference, which goes only with an artifacts row's update or
    # delete (or the app's), and those notify the topic.
    cache.put(key, artifact_topic(digest), b"", generation)
    return True


def check_digest_or_none(digest: str) -> str | None:
    try:
        return check_digest(digest)
    except BadRequest:
        return None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    return int_param(raw, "limit", default=20, minimum=1, maximum=MAX_PAGE)


async def list_artifacts(request: Request) -> JSONResponse:
    """Stored artifacts, and uploads in progress: those only of the apps the caller may
    write (an upload in progress is its owner's business, not every reader's)."""
    who = require_role(request, *READ_ROLES)
    state, limit = get_state(request), _limit(request)
    status = request.query_params.get("status", "stored")
    if status not in _STATUSES:
        raise BadRequest("status must be stored, pending or all")
    cursor = request.query_params.get("cursor")
    after = decode_cursor(cursor) if cursor else None
    app_name = request.query_params.get("app") or None
    rows: list[Row] = []
    if status in ("stored", "all"):
        rows += await artifact_store.list_page(
            state.db, limit=limit + 1, after=after, status="stored", app_name=app_name
        )
    if status in ("pending", "all"):
        rows += await _own_uploads(state, who, limit=limit + 1, after=after, app_name=app_name)
    rows.sort(key=lambda row: (row["created_at"], row["id"]), reverse=True)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return JSONResponse(
        {"artifacts": [artifact_from(row) for row in page], "next_cursor": next_cursor}
    )


async def _check_pull_token(request: Request, digest: str) -> None:
    """A puller may fetch only the artifact of the deployment its token was issued for (and,
    for a layered artifact, the layers it names); a deployer only what its own apps hold."""
    who = principal(request)
    if who.role != "puller":
        require_role(request, *READ_ROLES)
        if who.role == "deployer" and not await possession.visible(get_state(request), who, digest):
            # a digest alone grants no bytes: answered as for a digest nobody stored
            raise NotFound(f"no stored artifact with digest {digest}")
        return
    deployment = None
    if who.deployment_id:
        deployment = await get_deployment(get_state(request).db, who.deployment_id)
    if deployment is not None and deployment["artifact_digest"] == digest:
        return
    if deployment is not None and await _names_layer(
        request, deployment["artifact_digest"], digest
    ):
        return
    raise Forbidden("this pull token may only download its own deployment's artifact")


async def _names_layer(request: Request, artifact_digest: str, digest: str) -> bool:
    """The deployment's layered artifact names ``digest`` as one of its layers."""
    from aether.store.artifact_layers import layers_of

    rows = await layers_of(get_state(request).db, artifact_digest)
    return any(row["digest"] == digest for row in rows)


async def download(request: Request) -> Response:
    digest = check_digest(request.path_params["digest"])
    await _check_pull_token(request, digest)
    state = get_state(request)
    row = await artifact_store.get_stored(state.db, digest)
    if row is None:
        raise NotFound(f"no stored artifact with digest {digest}")
    return await _presigned(request, row["storage_key"])


async def download_sbom(request: Request) -> Response:
    """The CycloneDX SBOM a layered artifact names, for whoever may download the artifact."""
    from aether.pack.artifact_manifest import SBOM
    from aether.store.artifact_layers import layers_of

    digest = check_digest(request.path_params["digest"])
    await _check_pull_token(request, digest)
    rows = await layers_of(get_state(request).db, digest)
    row = next((row for row in rows if row["name"] == SBOM and row["storage_key"]), None)
    if row is None:
        raise NotFound(
            f"artifact {digest} has no uploaded SBOM (a single-file artifact, one packed with"
            " --no-sbom, or an unknown digest)"
        )
    return await _presigned(request, row["storage_key"])


async def _presigned(request: Request, key: str) -> Response:
    """302 to a presigned GET of ``key``; with ``?format=json`` the URL as JSON."""
    state = get_state(request)
    expires = state.blob_settings.presign_expire_secs
    url = await state.blobs.presign_get(key, expires_secs=expires)
    if request.query_params.get("format") == "json":
        return JSONResponse({"url": url, "expires_at": expires_at(expires)})
    return RedirectResponse(url, status_code=302)


# The upload routes stay ahead of /artifacts/{digest}, which also matches their paths (a wrong
# method on /artifacts/presign is still answered by the presign route's 405).
ROUTES = [
    *artifact_uploads.ROUTES,
    Route("/artifacts/{digest}", artifact_detail, methods=["GET", "HEAD"]),
    *artifact_legacy.ROUTES,
    Route("/artifacts", list_artifacts, methods=["GET"]),
    Route("/artifacts/{digest}/download", download, methods=["GET"]),
    Route("/artifacts/{digest}/sbom", download_sbom, methods=["GET"]),
    *artifact_direct.ROUTES,
]

ARTIFACT_SCHEMA = schema(Artifact)
_DIGEST_PARAM = param("digest", schema={"type": "string", "pattern": "^[0-9a-f]{64}$"})
OPENAPI = {
    **artifact_uploads.OPENAPI,
    **artifact_direct.OPENAPI,
    "/artifacts": {
        "get": operation(
            "Artifacts, newest first",
            params=[
                param("limit", "query", {**INT, "minimum": 1, "maximum": MAX_PAGE}),
                param("cursor", "query"),
                param("status", "query", {"type": "string", "enum": list(_STATUSES)}),
                param("app", "query"),
            ],
            response=obj(
                {
                    "artifacts": {"type": "array", "items": ARTIFACT_SCHEMA},
                    "next_cursor": NULLABLE_STR,
                }
            ),
            errors=(400, 401, 403),
        ),
        **artifact_legacy.OPENAPI["/artifacts"],
    },
    "/artifacts/{digest}": {
        "get": operation(
            "An artifact's metadata", params=[_DIGEST_PARAM], response=ARTIFACT_SCHEMA
        ),
        "head": operation(
            "200 when the digest is stored for ?app= (else for an app the caller may deploy),"
            " 404 otherwise (no body)",
            params=[_DIGEST_PARAM, param("app", "query")],
            errors=(400, 401, 403),
        ),
    },
    "/artifacts/{digest}/download": {
        "get": operation(
            "Redirect (302) to a short-lived download URL, or ?format=json for {url, expires_at}",
            params=[_DIGEST_PARAM, param("format", "query", {"type": "string", "enum": ["json"]})],
            response=obj({"url": STR, "expires_at": STR}),
            errors=(400, 401, 403, 404),
        )
    },
    "/artifacts/{digest}/sbom": {
        "get": operation(
            "Redirect (302) to a short-lived URL of the layered artifact's CycloneDX SBOM, or"
            " ?format=json for {url, expires_at}",
            params=[_DIGEST_PARAM, param("format", "query", {"type": "string", "enum": ["json"]})],
            response=obj({"url": STR, "expires_at": STR}),
            errors=(400, 401, 403, 404),
        )
    },
}
