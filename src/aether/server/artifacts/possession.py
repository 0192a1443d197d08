"""Possession before reuse: which stored digests an app may use without uploading them.

An app holds a digest when its bytes were uploaded (and verified) for that app, or when
another app holds it whose deployer is the caller (an admin: any app) — promoting the bytes
that ran in staging to production is the point of content addressing, but only for someone
who could deploy both. Then this app takes a reference of its own. Knowing a digest grants
nothing: for anyone else the answer is "not stored", exactly as for a digest nobody uploaded,
so existence checks leak nothing across tenants, and the client uploads the bytes, which
proves possession (the store still keeps one copy).
"""

from __future__ import annotations

from aether.server.auth import Principal
from aether.server.state import ServerState
from aether.store import artifact_references as reference_store
from aether.store.database import Row


async def holds(state: ServerState, who: Principal | None, app: Row, digest: str) -> bool:
    """Whether ``app`` may use stored ``digest``; grants it a reference through ``who``'s
    other apps when that is why."""
    if await reference_store.holds(state.db, digest, app["id"]):
        return True
    if who is None or who.role not in ("admin", "deployer"):
        return False
    owner = None if who.role == "admin" else who.user_id
    if await reference_store.holder_owned_by(state.db, digest, owner) is None:
        return False
    await reference_store.add(state.db, digest, app["id"])
    return True


async def visible(state: ServerState, who: Principal, digest: str) -> bool:
    """Whether ``who`` may learn that ``digest`` is stored without naming an app: held by an
    app it may deploy (admin: any app; a reader reads every app)."""
    if who.role in ("admin", "reader"):
        return await reference_store.holder_owned_by(state.db, digest, None) is not None
    return await reference_store.holder_owned_by(state.db, digest, who.user_id) is not None
