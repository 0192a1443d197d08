"""Which secrets key seals new values, agreed through the database by every server.

Each server holds a :class:`~aether.sealing.KeyRing` (its keys); the ``secrets_keys`` table
says which of them is the *primary* one. A write reads the primary inside its own
transaction (PostgreSQL: ``FOR SHARE``, so a rotation's retirement waits for writes that
still use the old key), so once a rotation has promoted a new key no server seals with the
old one again — whatever its own ring's file said a moment ago.

A rotation (:mod:`aether.server.secrets_admin`) promotes a new key (the old one becomes
``retiring``: it still opens values), re-seals every value, then retires the old key in a
transaction that first checks no value is left under it.
"""

from __future__ import annotations

from aether.errors import ConfigError
from aether.sealing import KeyRing
from aether.store.clock import now_iso
from aether.store.database import Database, DuplicateKey, Executor, Row


async def primary_key_id(db: Executor, *, for_write: bool = False) -> str | None:
    lock = " FOR SHARE" if for_write and db.dialect == "postgresql" else ""
    for _ in range(3):
        kid: str | None = await db.fetch_value(
            f"SELECT key_id FROM secrets_keys WHERE state = 'primary'{lock}"
        )
        # PostgreSQL: a read that waited for a promotion's lock finds the row it waited for
        # no longer primary and the new one not yet in its snapshot; the next statement does.
        if kid is not None or not lock:
            return kid
    return None


async def sealing_key_id(tx: Executor, ring: KeyRing) -> str:
    """The key a write in transaction ``tx`` seals with (the ring must hold it)."""
    kid = await primary_key_id(tx, for_write=True)
    if kid is None:
        raise ConfigError("no secrets key is registered yet; restart `aether serve`")
    ring.has(kid)  # reads the ring's source again when a rotation just added the key
    return kid


async def ensure_primary(db: Database, ring: KeyRing) -> str:
    """At start: register the ring's first key when the database has none, and refuse a
    ring that does not hold the database's primary key (values would not open)."""
    kid = await primary_key_id(db)
    if kid is None:
        first = ring.first_key_id
        try:
            await db.execute(
                "INSERT INTO secrets_keys (key_id, state, created_at) VALUES (:kid, 'primary', :now)",
                {"kid": first, "now": now_iso()},
            )
        except DuplicateKey:
            pass  # another server registered its (the same, or a different) key first
        kid = await primary_key_id(db)
    assert kid is not None
    if not ring.has(kid):
        raise ConfigError(
            f"config values in this database are sealed with secrets key {kid}, which "
            f"{ring.source.description} does not hold; use the key the other servers use"
        )
    return kid


async def list_keys(db: Executor) -> list[Row]:
    return await db.fetch_all(
        "SELECT key_id, state, created_at, retired_at FROM secrets_keys ORDER BY created_at, key_id"
    )


async def promote(db: Database, new_kid: str) -> list[str]:
    """``new_kid`` becomes primary, the old primary retiring; the retiring key ids."""
    async with db.transaction() as tx:
        now = now_iso()
        await tx.execute("UPDATE secrets_keys SET state = 'retiring' WHERE state = 'primary'")
        known = await tx.fetch_value(
            "SELECT state FROM secrets_keys WHERE key_id = :kid", {"kid": new_kid}
        )
        if known is None:
            await tx.execute(
                "INSERT INTO secrets_keys (key_id, state, created_at) VALUES (:kid, 'primary', :now)",
                {"kid": new_kid, "now": now},
            )
        else:
            await tx.execute(
                "UPDATE secrets_keys SET state = 'primary', retired_at = NULL WHERE key_id = :kid",
                {"kid": new_kid},
            )
        rows = await tx.fetch_all("SELECT key_id FROM secrets_keys WHERE state = 'retiring'")
    return [row["key_id"] for row in rows]


async def lock_retiring(tx: Executor) -> list[str]:
    """The retiring keys, locked (PostgreSQL) until the transaction ends: writes that read
    one of them as primary before the promotion have committed once this returns."""
    lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
    rows = await tx.fetch_all(f"SELECT key_id FROM secrets_keys WHERE state = 'retiring'{lock}")
    return [row["key_id"] for row in rows]


async def mark_retired(tx: Executor, key_ids: list[str]) -> None:
    for kid in key_ids:
        await tx.execute(
            "UPDATE secrets_keys SET state = 'retired', retired_at = :now WHERE key_id = :kid",
            {"kid": kid, "now": now_iso()},
        )
