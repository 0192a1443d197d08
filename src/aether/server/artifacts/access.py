"""Who may touch which artifact: the app an upload is for, an upload in progress.

Uploads need write access to the app (admin, or the deployer that owns it). An upload for an
app that does not exist yet creates it, owned by the calling deployer, so a first
``aether deploy`` needs no separate ``POST /apps``.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from aether.errors import Conflict, InvalidDigest, NotFound
from aether.models import check_app_name, is_digest
from aether.server.auth import require_app_access, require_role
from aether.server.state import ServerState, get_state
from aether.store import apps as app_store
from aether.store import artifact_uploads as upload_store
from aether.store.database import Row


def check_digest(value: str) -> str:
    if not is_digest(value):
        raise InvalidDigest("digest must be 64 lowercase hex characters (sha256 of the file)")
    return value


async def app_for_upload(request: Request, state: ServerState, name: object) -> tuple[Row, bool]:
    """The app row the caller may upload to, and whether it existed before this call."""
    name = check_app_name(name)
    row = await app_store.get_app(state.db, name)
    if row is not None:
        require_app_access(request, row, write=True)
        return row, True
    who = require_role(request, "deployer")
    state.hosts.check_new_app_name(name)
    try:
        return await app_store.create_app(state.db, name, owner=who.user_id), False
    except Conflict:  # created concurrently by another upload
        row = await app_store.require_app(state.db, name)
        require_app_access(request, row, write=True)
        return row, True


async def pending_for_write(
    request: Request, state: ServerState, digest: str, upload_id: str
) -> Row:
    """The upload in progress that ``upload_id`` names, if the caller may write to its app.
    Each app's upload of a digest is its own, so another app's is never found by digest."""
    row = await upload_store.by_upload_id(state.db, check_digest(digest), upload_id)
    if row is None:
        raise NotFound("no upload in progress for this digest; call POST /artifacts/multipart/init")
    app = await app_store.require_app(state.db, row["app_name"])
    require_app_access(request, app, write=True)
    return row


def upload_slots(request: Request) -> asyncio.Semaphore:
    """The slots of the uploads whose bytes the API receives itself (the legacy ``POST
    /artifacts`` and a small object's ``PUT /artifacts/{digest}/content``): one semaphore per
    application instance, sized by AETHER_MAX_CONCURRENT_UPLOADS."""
    slots = getattr(request.app.state, "artifact_upload_slots", None)
    if slots is None:
        slots = asyncio.Semaphore(get_state(request).policy.max_concurrent_uploads)
        request.app.state.artifact_upload_slots = slots
    return slots
