"""Per-app Ed25519 public keys that artifact signatures are checked against."""

from __future__ import annotations

import uuid

from aether.store.clock import now_iso
from aether.store.database import Executor, Row

_COLUMNS = "id, app_id, public_key_hex, active, created_at"


def _normalise(row: Row) -> Row:
    row["active"] = bool(row["active"])
    return row


async def add_key(db: Executor, app_id: str, public_key_hex: str) -> tuple[Row, bool]:
    """(key, created); a key registered before is (re)activated instead of duplicated."""
    touched = await db.execute(
        "UPDATE public_keys SET active = TRUE WHERE app_id = :app AND public_key_hex = :hex",
        {"app": app_id, "hex": public_key_hex},
    )
    if not touched:
        await db.execute(
            "INSERT INTO public_keys (id, app_id, public_key_hex, active, created_at)"
            " VALUES (:id, :app, :hex, TRUE, :now)",
            {"id": str(uuid.uuid4()), "app": app_id, "hex": public_key_hex, "now": now_iso()},
        )
    row = await get_key(db, app_id, public_key_hex)
    assert row is not None
    return row, not touched


async def get_key(db: Executor, app_id: str, public_key_hex: str) -> Row | None:
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM public_keys WHERE app_id = :app AND public_key_hex = :hex",
        {"app": app_id, "hex": public_key_hex},
    )
    return _normalise(row) if row else None


async def list_keys(db: Executor, app_id: str, *, active_only: bool = False) -> list[Row]:
    where = " AND active = TRUE" if active_only else ""
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM public_keys WHERE app_id = :app{where} ORDER BY created_at, id",
        {"app": app_id},
    )
    return [_normalise(row) for row in rows]


async def active_keys(db: Executor, app_id: str) -> list[str]:
    """The hex public keys a signature of this app's artifacts may verify against."""
    return [row["public_key_hex"] for row in await list_keys(db, app_id, active_only=True)]


async def deactivate_key(db: Executor, app_id: str, public_key_hex: str) -> Row | None:
    await db.execute(
        "UPDATE public_keys SET active = FALSE WHERE app_id = :app AND public_key_hex = :hex",
        {"app": app_id, "hex": public_key_hex},
    )
    return await get_key(db, app_id, public_key_hex)
