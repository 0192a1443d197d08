"""User rows: a user is the identity tokens belong to and apps are owned by."""

from __future__ import annotations

import uuid

from aether.store.clock import now_iso
from aether.store.database import DuplicateKey, Executor, Row


async def get_user_by_email(db: Executor, email: str) -> Row | None:
    return await db.fetch_one("SELECT * FROM users WHERE email = :email", {"email": email})


async def ensure_user(db: Executor, email: str, *, auth_provider: str = "token") -> Row:
    """The user with this email, created when missing (safe against a concurrent creator)."""
    existing = await get_user_by_email(db, email)
    if existing is not None:
        return existing
    row = {"id": str(uuid.uuid4()), "email": email, "provider": auth_provider, "now": now_iso()}
    try:
        await db.execute(
            "INSERT INTO users (id, email, auth_provider, created_at)"
            " VALUES (:id, :email, :provider, :now)",
            row,
        )
    except DuplicateKey:
        pass  # another process created it between the lookup and the insert
    created = await get_user_by_email(db, email)
    assert created is not None
    return created
