"""Dashboard sign-ins: browser sessions and one-time sign-in links.

A session is opened with an API token and acts as that token (its role, its user): the
cookie holds a random id and the database only its sha256, so a copy of the table opens no
session; revoking or expiring the token ends every session opened with it. A link is a
random one-time code (its sha256 stored) that opens a session for the token that asked for
it; using it deletes it, whether or not it was still valid.
"""

from __future__ import annotations

import hashlib
import secrets

from aether.store.clock import now_iso
from aether.store.database import Executor, Row

LINK_TTL_SECS = 600  # a link is for now, not for later


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def open_session(db: Executor, token_id: str, *, ttl_secs: int) -> tuple[str, str]:
    """A new session for the token: (the cookie's session id, the session's CSRF token).
    Sessions that have expired are swept on the way."""
    now = now_iso()
    await db.execute("DELETE FROM dashboard_sessions WHERE expires_at <= :now", {"now": now})
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await db.execute(
        "INSERT INTO dashboard_sessions (id_hash, token_id, csrf, created_at, expires_at)"
        " VALUES (:hash, :token, :csrf, :now, :expires)",
        {
            "hash": _hash(session_id),
            "token": token_id,
            "csrf": csrf,
            "now": now,
            "expires": now_iso(ttl_secs),
        },
    )
    return session_id, csrf


async def lookup(db: Executor, session_id: str) -> Row | None:
    """The live session's token (id, user_id, name, role, email) and ``csrf``; None when the
    session is unknown, expired, or its token is revoked or expired."""
    if not session_id or len(session_id) > 128:
        return None
    now = now_iso()
    row = await db.fetch_one(
        "SELECT t.id, t.user_id, t.name, t.role, t.deployment_id, t.expires_at AS token_expires,"
        " t.revoked_at, u.email, s.csrf, s.expires_at FROM dashboard_sessions s"
        " JOIN api_tokens t ON t.id = s.token_id JOIN users u ON u.id = t.user_id"
        " WHERE s.id_hash = :hash",
        {"hash": _hash(session_id)},
    )
    if row is None or row["expires_at"] <= now or row["revoked_at"] is not None:
        return None
    if row["token_expires"] and row["token_expires"] <= now:
        return None
    return row


async def close_session(db: Executor, session_id: str) -> bool:
    """Sign out: the session is deleted (its cookie opens nothing any more)."""
    touched = await db.execute(
        "DELETE FROM dashboard_sessions WHERE id_hash = :hash", {"hash": _hash(session_id)}
    )
    return touched > 0


async def create_link(db: Executor, token_id: str, *, ttl_secs: int = LINK_TTL_SECS) -> str:
    """A one-time code that opens a session for ``token_id`` within ``ttl_secs``."""
    now = now_iso()
    await db.execute("DELETE FROM dashboard_links WHERE expires_at <= :now", {"now": now})
    code = secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO dashboard_links (code_hash, token_id, expires_at)"
        " VALUES (:hash, :token, :expires)",
        {"hash": _hash(code), "token": token_id, "expires": now_iso(ttl_secs)},
    )
    return code


async def use_link(db: Executor, code: str) -> str | None:
    """The token id a link was made for, once: the link is gone after this call."""
    if not code or len(code) > 128:
        return None
    row = await db.fetch_one(
        "DELETE FROM dashboard_links WHERE code_hash = :hash RETURNING token_id, expires_at",
        {"hash": _hash(code)},
    )
    if row is None or row["expires_at"] <= now_iso():
        return None
    return str(row["token_id"])
