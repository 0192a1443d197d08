"""Artifact rows: stored artifacts (one per digest), quotas, retention choices and audit events.

Uploads in progress live in :mod:`aether.store.artifact_uploads`, one per app. A complete
inserts the digest's row once: the ``INSERT … ON CONFLICT (digest) DO NOTHING`` is the point
where concurrent completes of one digest are decided; the others only add their app's
reference (:mod:`aether.store.artifact_references`). ``artifact_events`` has no foreign key,
so the audit trail of a deleted artifact survives it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aether.errors import Conflict
from aether.store import artifact_references, newest_first, wakeups
from aether.store.clock import now_iso
from aether.store.database import Database, Executor, Row

_SELECT = (
    "SELECT a.*, ap.name AS app_name FROM artifacts a JOIN applications ap ON ap.id = a.app_id"
)


async def get_by_digest(db: Executor, digest: str) -> Row | None:
    """The artifact row (any status) with its app's name, or None."""
    return await db.fetch_one(f"{_SELECT} WHERE a.digest = :digest", {"digest": digest})


async def is_stored(db: Executor, digest: str) -> bool:
    """One indexed lookup, no join: what ``HEAD /artifacts/{digest}`` asks on every deploy."""
    row = await db.fetch_one(
        "SELECT 1 AS stored FROM artifacts WHERE digest = :digest AND status = 'stored'",
        {"digest": digest},
    )
    return row is not None


async def get_stored(db: Executor, digest: str) -> Row | None:
    row = await get_by_digest(db, digest)
    return row if row is not None and row["status"] == "stored" else None


async def get_by_id(db: Executor, artifact_id: str) -> Row | None:
    return await db.fetch_one(f"{_SELECT} WHERE a.id = :id", {"id": artifact_id})


async def get_by_idempotency_key(db: Executor, key: str) -> Row | None:
    """The first use of an idempotency key: ``{digest, duplicate}`` (what that complete
    answered), or None when the key is new."""
    row = await db.fetch_one(
        "SELECT digest, duplicate FROM idempotency_keys WHERE key = :key", {"key": key}
    )
    if row is not None:
        return {"digest": row["digest"], "duplicate": bool(row["duplicate"])}
    stored = await db.fetch_one(
        "SELECT digest FROM artifacts WHERE idempotency_key = :key", {"key": key}
    )
    return None if stored is None else {"digest": stored["digest"], "duplicate": False}


@dataclass(frozen=True)
class Completed:
    """The outcome of :func:`complete`: the row as stored, whether this call stored it (False:
    another complete did first) and the first use of the idempotency key, if one was given."""

    row: Row
    won: bool
    first_use: Row | None


async def complete(
    db: Database,
    upload: Row,
    *,
    signature: str | None,
    verified: bool,
    idempotency_key: str | None,
) -> Completed:
    """Store a verified upload, in one transaction: the artifact row when the digest is new
    (``won``; else the stored row stays as it is), the uploading app's reference either way,
    the upload's row deleted, the event and the idempotency key's use. A key already used by
    another artifact raises DuplicateKey."""
    async with db.transaction() as tx:
        taken = await tx.execute(
            "DELETE FROM artifact_uploads WHERE id = :id", {"id": upload["id"]}
        )
        if taken != 1:
            return await _completed_meanwhile(tx, upload, idempotency_key)
        won = await _insert_stored(tx, upload, signature, verified, idempotency_key)
        row = await get_by_digest(tx, upload["digest"])
        assert row is not None  # inserted now or stored before; retention waits for this lock
        await artifact_references.add(tx, upload["digest"], upload["app_id"])
        if won:
            detail = f"{row['size_bytes']} bytes, verified={bool(row['verified'])}"
            await add_event(tx, row, "stored", detail)
        else:
            await add_event(tx, {**row, "app_name": upload["app_name"]}, "referenced", "")
        first_use = await _remember_key(tx, idempotency_key, row["digest"], duplicate=not won)
    return Completed(row, won, first_use)


async def _completed_meanwhile(tx: Executor, upload: Row, idempotency_key: str | None) -> Completed:
    """The upload's record was gone: a concurrent complete of the same upload stored it (a
    duplicate answer), or the pending GC took it (and deletes its object): not stored."""
    row = await get_by_digest(tx, upload["digest"])
    if row is None or not await artifact_references.holds(tx, upload["digest"], upload["app_id"]):
        raise Conflict("this upload expired before it was completed; upload it again")
    first_use = await _remember_key(tx, idempotency_key, row["digest"], duplicate=True)
    return Completed(row, False, first_use)


async def complete_duplicate(
    db: Database, row: Row, *, signature: str | None, idempotency_key: str | None
) -> Completed:
    """A complete of an already stored digest: attach ``signature`` (already checked against
    the app's keys) when the row had none verified, and record the key's use."""
    async with db.transaction() as tx:
        if signature is not None:
            await tx.execute(
                "UPDATE artifacts SET signature = :signature, verified = TRUE WHERE id = :id",
                {"id": row["id"], "signature": signature},
            )
            row = {**row, "verified": True, "signature": signature}
        first_use = await _remember_key(tx, idempotency_key, row["digest"], duplicate=True)
    return Completed(row, False, first_use)


async def _insert_stored(
    tx: Executor,
    upload: Row,
    signature: str | None,
    verified: bool,
    idempotency_key: str | None,
) -> bool:
    touched = await tx.execute(
        "INSERT INTO artifacts (id, app_id, digest, size_bytes, compression, status,"
        " storage_key, signature, verified, idempotency_key, created_at, completed_at)"
        " VALUES (:id, :app_id, :digest, :size_bytes, :compression, 'stored', :storage_key,"
        " :signature, :verified, :key, :created_at, :now) ON CONFLICT (digest) DO NOTHING",
        {
            "id": str(uuid.uuid4()),
            "app_id": upload["app_id"],
            "digest": upload["digest"],
            "size_bytes": upload["size_bytes"],
            "compression": upload["compression"],
            "storage_key": upload["storage_key"],
            "signature": signature,
            "verified": verified,
            "key": idempotency_key,
            "created_at": upload["created_at"],
            "now": now_iso(),
        },
    )
    return touched == 1


async def _remember_key(
    tx: Executor, key: str | None, digest: str, *, duplicate: bool
) -> Row | None:
    """Record a key's first use; returns the first use (another digest means a conflict)."""
    if not key:
        return None
    await tx.execute(
        "INSERT INTO idempotency_keys (key, digest, duplicate, created_at)"
        " VALUES (:key, :digest, :duplicate, :now) ON CONFLICT (key) DO NOTHING",
        {"key": key, "digest": digest, "duplicate": duplicate, "now": now_iso()},
    )
    return await get_by_idempotency_key(tx, key)


async def list_page(
    db: Executor,
    *,
    limit: int,
    after: tuple[str, str] | None = None,
    status: str | None = "stored",
    app_name: str | None = None,
) -> list[Row]:
    """Newest first (created_at, then id); ``after`` is the last row of the previous page."""
    equal = {"a.status": status, "ap.name": app_name}
    return await newest_first.page(db, _SELECT, "a", limit=limit, after=after, equal=equal)


async def app_usage(db: Executor, app_id: str) -> tuple[int, int]:
    """(stored artifacts, layers not counted; the bytes of all its stored rows) for one app.
    A layer is one row whoever names it, so shared bytes count once."""
    row = await db.fetch_one(
        "SELECT COALESCE(SUM(CASE WHEN kind = 'layer' THEN 0 ELSE 1 END), 0) AS n,"
        " COALESCE(SUM(size_bytes), 0) AS total FROM artifacts"
        " WHERE app_id = :app_id AND status = 'stored'",
        {"app_id": app_id},
    )
    assert row is not None
    return int(row["n"]), int(row["total"])


async def count_stored(db: Executor) -> int:
    return int(await db.fetch_value("SELECT COUNT(*) AS n FROM artifacts WHERE status = 'stored'"))


async def add_event(db: Executor, row: Row, event: str, detail: str = "") -> None:
    """Record ``event`` about an artifact ``row`` (its id, digest and app name are kept)."""
    await db.execute(
        "INSERT INTO artifact_events (artifact_id, digest, app_name, event, detail, created_at)"
        " VALUES (:artifact_id, :digest, :app_name, :event, :detail, :now)",
        {
            "artifact_id": row["id"],
            "digest": row["digest"],
            "app_name": row["app_name"],
            "event": event,
            "detail": detail,
            "now": now_iso(),
        },
    )


async def list_events(db: Executor, *, digest: str | None = None) -> list[Row]:
    if digest is None:
        return await db.fetch_all("SELECT * FROM artifact_events ORDER BY id")
    return await db.fetch_all(
        "SELECT * FROM artifact_events WHERE digest = :digest ORDER BY id", {"digest": digest}
    )


# --- retention -------------------------------------------------------------------------------


async def of_app(db: Executor, app_id: str) -> list[Row]:
    """Every stored artifact row of an app, for deleting its objects."""
    return await db.fetch_all(f"{_SELECT} WHERE a.app_id = :app_id", {"app_id": app_id})


async def hand_over_shared(tx: Executor, app_id: str) -> dict[str, str]:
    """Artifacts uploaded for this app that another app holds a reference to, or whose
    releases or deployments use them, pass to the newest such app, so that removing this app frees only what nobody else runs.
    Returns artifact id → the app id it now belongs to."""
    rows = await tx.fetch_all(
        "SELECT a.id, u.app_id FROM artifacts a JOIN ("
        " SELECT d.artifact_id, d.app_id, d.created_at FROM deployments d"
        " UNION ALL SELECT ra.id, r.app_id, r.created_at FROM releases r"
        " JOIN artifacts ra ON ra.digest = r.artifact_digest"
        " UNION ALL SELECT rf.id, x.app_id, x.created_at FROM artifact_references x"
        " JOIN artifacts rf ON rf.digest = x.digest"
        ") u ON u.artifact_id = a.id WHERE a.app_id = :app AND u.app_id <> :app"
        " ORDER BY u.created_at DESC",
        {"app": app_id},
    )
    # layers that other apps' artifacts name
    rows += await tx.fetch_all(
        "SELECT a.id, m.app_id FROM artifacts a JOIN artifact_layers l"
        " ON l.layer_digest = a.digest JOIN artifacts m ON m.id = l.artifact_id"
        " WHERE a.app_id = :app AND m.app_id <> :app ORDER BY m.created_at DESC",
        {"app": app_id},
    )
    new_owner: dict[str, str] = {}
    for row in rows:
        new_owner.setdefault(row["id"], row["app_id"])
    for artifact_id, owner in new_owner.items():
        await tx.execute(
            "UPDATE artifacts SET app_id = :owner WHERE id = :id",
            {"owner": owner, "id": artifact_id},
        )
    return new_owner


async def protected_ids(db: Executor, app_id: str) -> set[str]:
    """Artifacts of this app that retention must keep: those of live deployments (pending,
    deploying, running) and of each app's previous successful one (its newest superseded
    deployment that ran) — in any app, since one app's artifact may be promoted to another."""
    live = await db.fetch_all(
        "SELECT d.artifact_id FROM deployments d JOIN artifacts a ON a.id = d.artifact_id"
        " WHERE a.app_id = :app_id AND d.status IN ('pending', 'deploying', 'running')",
        {"app_id": app_id},
    )
    previous = await db.fetch_all(
        "SELECT d.artifact_id FROM deployments d JOIN artifacts a ON a.id = d.artifact_id"
        " WHERE a.app_id = :app_id AND d.status = 'superseded'"
        " AND d.rollout_completed_at = ("
        "   SELECT MAX(p.rollout_completed_at) FROM deployments p"
        "   WHERE p.app_id = d.app_id AND p.status = 'superseded')",
        {"app_id": app_id},
    )
    return {row["artifact_id"] for row in [*live, *previous]}


async def retention_candidates(db: Executor, app_id: str, *, keep: int) -> list[Row]:
    """Stored artifacts beyond the newest ``keep`` of an app, oldest last, minus protected.
    Layers are not artifacts: they go when no artifact names them any more."""
    rows = await db.fetch_all(
        f"{_SELECT} WHERE a.app_id = :app_id AND a.status = 'stored' AND a.kind <> 'layer'"
        " ORDER BY a.completed_at DESC, a.id DESC",
        {"app_id": app_id},
    )
    keep_ids = await protected_ids(db, app_id)
    return [row for row in rows[keep:] if row["id"] not in keep_ids]


async def delete_stored(db: Executor, artifact_id: str) -> int:
    """Delete a stored artifact row and the finished (failed/superseded) deployments that
    used it, which could never be rolled back to without it. Returns deployments removed.
    Conflict when a live deployment still references it."""
    params: dict[str, Any] = {"id": artifact_id}
    removed = await db.execute(
        "DELETE FROM deployments WHERE artifact_id = :id AND status IN ('failed', 'superseded')",
        params,
    )
    await db.execute(
        "DELETE FROM artifact_references WHERE digest IN"
        " (SELECT digest FROM artifacts WHERE id = :id)",
        params,
    )
    await db.execute("DELETE FROM artifacts WHERE id = :id", params)
    wakeups.poke(wakeups.APPS)
    return removed


async def pass_to(db: Executor, row: Row, app_id: str) -> None:
    """Give an artifact another owner (an app that holds a reference to it): its former
    owner's retention let it go, but the bytes are still another app's to use."""
    await artifact_references.drop(db, row["digest"], row["app_id"])
    await db.execute(
        "UPDATE artifacts SET app_id = :owner WHERE id = :id", {"owner": app_id, "id": row["id"]}
    )
