"""Which apps hold an artifact's bytes: ``artifact_references`` (digest, app).

The store keeps one copy of a digest; a reference is an app's right to use it, earned by
uploading the bytes for that app (the server verified them) or granted through another app
whose deployer may also deploy this one. Destroying an app deletes its references (foreign
key); the bytes stay while another app holds one. Keyed by digest, so layers take references
the same way as whole artifacts.
"""

from __future__ import annotations

from collections.abc import Iterable

from aether.store.clock import now_iso
from aether.store.database import Executor


async def add(db: Executor, digest: str, app_id: str) -> None:
    await add_many(db, [digest], app_id)


async def add_many(db: Executor, digests: Iterable[str], app_id: str) -> None:
    """The app's references to each digest, in one statement (a layered artifact names
    several); one it holds already stays as it is."""
    unique = list(dict.fromkeys(digests))
    if not unique:
        return
    params: dict[str, str] = {"app_id": app_id, "now": now_iso()}
    rows = []
    for index, digest in enumerate(unique):
        params[f"digest{index}"] = digest
        rows.append(f"(:digest{index}, :app_id, :now)")
    await db.execute(
        f"INSERT INTO artifact_references (digest, app_id, created_at) VALUES {', '.join(rows)}"
        " ON CONFLICT (digest, app_id) DO NOTHING",
        params,
    )


# A reference counts only while the bytes are stored (retention may have deleted them).
_HELD = (
    "SELECT r.app_id FROM artifact_references r"
    " JOIN artifacts a ON a.digest = r.digest AND a.status = 'stored'"
)


async def holds(db: Executor, digest: str, app_id: str) -> bool:
    """Whether ``app_id`` holds a reference to stored bytes of ``digest``."""
    row = await db.fetch_one(
        f"{_HELD} WHERE r.digest = :digest AND r.app_id = :app_id",
        {"digest": digest, "app_id": app_id},
    )
    return row is not None


async def holder_owned_by(db: Executor, digest: str, owner: str | None) -> str | None:
    """An app owned by ``owner`` that holds ``digest`` (None owner: any app), or None."""
    if owner is None:
        row = await db.fetch_one(f"{_HELD} WHERE r.digest = :digest LIMIT 1", {"digest": digest})
    else:
        row = await db.fetch_one(
            f"{_HELD} JOIN applications ap ON ap.id = r.app_id"
            " WHERE r.digest = :digest AND ap.owner = :owner LIMIT 1",
            {"digest": digest, "owner": owner},
        )
    return None if row is None else str(row["app_id"])


async def other_holders(db: Executor, digest: str, app_id: str) -> list[str]:
    """The apps besides ``app_id`` that hold ``digest``, newest reference first."""
    rows = await db.fetch_all(
        "SELECT app_id FROM artifact_references WHERE digest = :digest AND app_id <> :app_id"
        " ORDER BY created_at DESC, app_id",
        {"digest": digest, "app_id": app_id},
    )
    return [str(row["app_id"]) for row in rows]


async def drop(db: Executor, digest: str, app_id: str) -> None:
    await db.execute(
        "DELETE FROM artifact_references WHERE digest = :digest AND app_id = :app_id",
        {"digest": digest, "app_id": app_id},
    )
