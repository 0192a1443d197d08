"""Layered artifacts in SQL: a manifest's row, the layers it names, and orphaned layers.

A layer is an ``artifacts`` row (``kind = 'layer'`` once a manifest names it) stored once by
digest; ``artifact_layers`` says which artifact names which layer. Registering a manifest and
deleting an orphaned layer both lock the layer's row first (PostgreSQL: ``FOR SHARE`` against
``FOR UPDATE``; SQLite runs one writer at a time), so a layer is never deleted under an
artifact that was just registered to use it: whichever comes second sees what the first did.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aether.errors import Conflict
from aether.store import wakeups
from aether.store.artifacts import add_event, get_by_digest
from aether.store.clock import now_iso
from aether.store.database import Database, Executor, Row


@dataclass(frozen=True)
class NamedLayer:
    name: str
    digest: str
    size_bytes: int


async def register(
    db: Database,
    *,
    app_id: str,
    digest: str,
    size_bytes: int,
    storage_key: str,
    compression: str,
    layers: list[NamedLayer],
    signature: str | None,
    verified: bool,
) -> tuple[Row, bool]:
    """Store the manifest's row and its layer references in one transaction; (row, created).

    Conflict naming the first layer that is not stored (or not of the announced size).
    """
    async with db.transaction() as tx:
        existing = await get_by_digest(tx, digest)
        if existing is not None and existing["status"] == "stored":
            return existing, False
        lock = " FOR SHARE" if tx.dialect == "postgresql" else ""
        for layer in layers:
            row = await _stored_layer(tx, layer, lock)
            await tx.execute(
                "UPDATE artifacts SET kind = 'layer' WHERE id = :id AND kind <> 'layer'",
                {"id": row["id"]},
            )
        artifact_id = str(uuid.uuid4())
        now = now_iso()
        await tx.execute(
            "INSERT INTO artifacts (id, app_id, digest, size_bytes, compression, status,"
            " storage_key, signature, verified, kind, created_at, completed_at) VALUES"
            " (:id, :app_id, :digest, :size_bytes, :compression, 'stored', :storage_key,"
            " :signature, :verified, 'layered', :now, :now)",
            {
                "id": artifact_id,
                "app_id": app_id,
                "digest": digest,
                "size_bytes": size_bytes,
                "compression": compression,
                "storage_key": storage_key,
                "signature": signature,
                "verified": verified,
                "now": now,
            },
        )
        for position, layer in enumerate(layers):
            await tx.execute(
                "INSERT INTO artifact_layers (artifact_id, position, name, layer_digest)"
                " VALUES (:id, :position, :name, :digest)",
                {
                    "id": artifact_id,
                    "position": position,
                    "name": layer.name,
                    "digest": layer.digest,
                },
            )
        stored = await get_by_digest(tx, digest)
        assert stored is not None  # just written
        await add_event(tx, stored, "stored", f"layered, {len(layers)} layers, verified={verified}")
    return stored, True


async def check_stored(db: Executor, layers: list[NamedLayer]) -> None:
    """Conflict naming the first layer that is not stored (or not of the announced size)."""
    for layer in layers:
        await _stored_layer(db, layer, "")


async def _stored_layer(db: Executor, layer: NamedLayer, lock: str) -> Row:
    row = await db.fetch_one(
        f"SELECT id, size_bytes FROM artifacts WHERE digest = :digest AND status = 'stored'{lock}",
        {"digest": layer.digest},
    )
    if row is None or int(row["size_bytes"]) != layer.size_bytes:
        raise Conflict(
            f"layer {layer.name} ({layer.digest}) is not stored; upload it, then register the"
            " manifest again"
        )
    return row


async def layers_of(db: Executor, digest: str) -> list[Row]:
    """The layers a layered artifact names, in order: name, digest, storage_key,
    compression, size_bytes (a layer that is no longer stored has no storage_key)."""
    return await db.fetch_all(
        "SELECT l.name, l.layer_digest AS digest, a.storage_key, a.compression, a.size_bytes"
        " FROM artifact_layers l JOIN artifacts m ON m.id = l.artifact_id"
        " LEFT JOIN artifacts a ON a.digest = l.layer_digest AND a.status = 'stored'"
        " WHERE m.digest = :digest ORDER BY l.position",
        {"digest": digest},
    )


async def orphaned_layers(db: Executor) -> list[Row]:
    """Layer rows no artifact names any more."""
    return await db.fetch_all(
        "SELECT a.*, ap.name AS app_name FROM artifacts a"
        " JOIN applications ap ON ap.id = a.app_id"
        " WHERE a.kind = 'layer' AND a.status = 'stored' AND NOT EXISTS"
        " (SELECT 1 FROM artifact_layers l WHERE l.layer_digest = a.digest)",
    )


async def delete_if_orphaned(
    db: Database, row: Row, delete_object: Callable[[str], Awaitable[None]]
) -> bool:
    """Delete one layer, object first, if still no artifact names it; False when one does
    (again). The row stays locked while its object is deleted, so a registration that needs
    it waits and then finds it gone (and the client uploads it again)."""
    async with db.transaction() as tx:
        lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        locked = await tx.fetch_one(
            f"SELECT id FROM artifacts WHERE id = :id AND kind = 'layer'{lock}", {"id": row["id"]}
        )
        named = await tx.fetch_one(
            "SELECT 1 AS named FROM artifact_layers WHERE layer_digest = :digest LIMIT 1",
            {"digest": row["digest"]},
        )
        if locked is None or named is not None:
            return False
        await delete_object(row["storage_key"])
        await tx.execute("DELETE FROM artifacts WHERE id = :id", {"id": row["id"]})
        await add_event(tx, row, "layer_delete", "no retained artifact names it")
    wakeups.poke(wakeups.APPS)
    return True
