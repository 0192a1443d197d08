"""API tokens: created once, stored only as sha256 hashes, with expiry and revocation.

The plaintext token is returned to the caller exactly once (on create/rotate) and never
stored or logged. Lookups go by hash; the hash found is compared again in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from aether.errors import ConfigError, NotFound
from aether.models import ROLES
from aether.store.clock import now_iso, parse_iso
from aether.store.database import Database, DuplicateKey, Executor, Row
from aether.store.users import ensure_user

TOKEN_PREFIX = "ae_"
ALL_ROLES = (*ROLES, "puller")
PULLER_EMAIL = "puller@aether.internal"
# last_used_at is refreshed at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION_SECS = 60.0


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: the only moment its plaintext exists on the server side."""

    token: str
    row: Row

    def as_json(self) -> dict[str, Any]:
        """What ``POST /tokens``, ``POST /tokens/rotate`` and ``aether token create`` show."""
        return {
            "token": self.token,
            "token_id": self.row["id"],
            "user_id": self.row["user_id"],
            "name": self.row["name"],
            "role": self.row["role"],
            "expires_at": self.row["expires_at"],
        }


async def _insert_token(
    db: Executor,
    *,
    token: str,
    user_id: str,
    name: str,
    role: str,
    expires_at: str | None,
    deployment_id: str | None = None,
    token_id: str | None = None,
) -> Row:
    row = {
        "id": token_id or str(uuid.uuid4()),
        "user_id": user_id,
        "name": name,
        "role": role,
        "token_hash": hash_token(token),
        "deployment_id": deployment_id,
        "created_at": now_iso(),
        "expires_at": expires_at,
    }
    await db.execute(
        "INSERT INTO api_tokens (id, user_id, name, role, token_hash, deployment_id,"
        " created_at, expires_at) VALUES (:id, :user_id, :name, :role, :token_hash,"
        " :deployment_id, :created_at, :expires_at)",
        row,
    )
    return {**row, "revoked_at": None, "last_used_at": None}


async def create_token(
    db: Executor,
    *,
    name: str,
    role: str,
    email: str | None = None,
    ttl_secs: int | None = None,
) -> IssuedToken:
    """A new token for the user ``email`` (default: the token's name), created if needed."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    user = await ensure_user(db, email or name)
    token = new_token()
    expires_at = now_iso(ttl_secs) if ttl_secs else None
    row = await _insert_token(
        db, token=token, user_id=user["id"], name=name, role=role, expires_at=expires_at
    )
    return IssuedToken(token, row)


async def create_pull_token(db: Executor, *, deployment_id: str, ttl_secs: int) -> str:
    """A ``puller`` token that may only fetch this deployment's artifact (init containers)."""
    user = await ensure_user(db, PULLER_EMAIL, auth_provider="system")
    token = new_token()
    await _insert_token(
        db,
        token=token,
        user_id=user["id"],
        name=f"pull-{deployment_id[:8]}",
        role="puller",
        expires_at=now_iso(ttl_secs),
        deployment_id=deployment_id,
    )
    return token


async def authenticate(db: Executor, token: str) -> Row | None:
    """The live token row (joined with the user's email) for a plaintext token, or None.

    Unknown, revoked and expired tokens all give None; the caller answers 401 either way."""
    if not token or len(token) > 512:
        return None
    digest = hash_token(token)
    row = await db.fetch_one(
        "SELECT t.id, t.user_id, t.name, t.role, t.token_hash, t.deployment_id, t.expires_at,"
        " t.revoked_at, t.last_used_at, u.email FROM api_tokens t"
        " JOIN users u ON u.id = t.user_id WHERE t.token_hash = :hash",
        {"hash": digest},
    )
    if row is None or not hmac.compare_digest(row["token_hash"], digest):
        return None
    now = now_iso()
    if row["revoked_at"] is not None or (row["expires_at"] and row["expires_at"] <= now):
        return None
    if _stale(row["last_used_at"], now):
        await db.execute(
            "UPDATE api_tokens SET last_used_at = :now WHERE id = :id",
            {"now": now, "id": row["id"]},
        )
    return row


def _stale(last_used_at: str | None, now: str) -> bool:
    if last_used_at is None:
        return True
    elapsed = (parse_iso(now) - parse_iso(last_used_at)).total_seconds()
    return elapsed >= LAST_USED_RESOLUTION_SECS


async def get_token(db: Executor, token_id: str) -> Row | None:
    return await db.fetch_one(
        "SELECT id, user_id, name, role, deployment_id, created_at, expires_at, revoked_at,"
        " last_used_at FROM api_tokens WHERE id = :id",
        {"id": token_id},
    )


async def list_tokens(db: Executor, *, include_revoked: bool = False) -> list[Row]:
    where = "" if include_revoked else " WHERE t.revoked_at IS NULL"
    return await db.fetch_all(
        "SELECT t.id, t.user_id, u.email, t.name, t.role, t.deployment_id, t.created_at,"
        " t.expires_at, t.revoked_at, t.last_used_at FROM api_tokens t"
        f" JOIN users u ON u.id = t.user_id{where} ORDER BY t.created_at, t.id"
    )


async def revoke_token(db: Executor, token_id: str) -> bool:
    """Revoke a token now; False when there is no such live token."""
    touched = await db.execute(
        "UPDATE api_tokens SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL",
        {"now": now_iso(), "id": token_id},
    )
    return touched > 0


async def rotate_token(db: Database, token_id: str) -> IssuedToken:
    """Replace a token by a new one for the same user, name, role and expiry; the old one is
    revoked in the same transaction, so it stops working at once."""
    async with db.transaction() as tx:
        old = await get_token(tx, token_id)
        if old is None or old["revoked_at"] is not None:
            raise NotFound(f"token {token_id} does not exist or is revoked")
        await revoke_token(tx, token_id)
        token = new_token()
        row = await _insert_token(
            tx,
            token=token,
            user_id=old["user_id"],
            name=old["name"],
            role=old["role"],
            expires_at=old["expires_at"],
            deployment_id=old["deployment_id"],
        )
    return IssuedToken(token, row)


async def delete_pull_tokens_of_app(db: Executor, app_id: str) -> int:
    """The pull tokens scoped to the app's deployments (when the app goes)."""
    return await db.execute(
        "DELETE FROM api_tokens WHERE role = 'puller' AND deployment_id IN"
        " (SELECT id FROM deployments WHERE app_id = :app)",
        {"app": app_id},
    )


async def count_live_tokens(db: Executor) -> int:
    value = await db.fetch_value(
        "SELECT COUNT(*) AS n FROM api_tokens WHERE revoked_at IS NULL AND role <> 'puller'"
    )
    return int(value or 0)


def parse_bootstrap_spec(spec: str, *, default_name: str) -> tuple[str, str, str]:
    """``token[:role[:name]]`` → (token, role, name); role defaults to admin."""
    token, _, rest = spec.partition(":")
    role, _, name = rest.partition(":")
    role = role or "admin"
    if not token:
        raise ConfigError("AETHER_API_TOKENS has an empty token entry")
    if role not in ROLES:
        raise ConfigError(
            f"AETHER_API_TOKENS: unknown role {role!r} (use one of: {', '.join(ROLES)})"
        )
    return token, role, name or default_name


async def sync_bootstrap_tokens(db: Executor, specs: list[tuple[str, str, str]]) -> int:
    """Make sure each configured (token, role, name) exists; returns how many were added.

    The id is derived from the hash so restarts find the same row; a bootstrap token that was
    revoked (e.g. rotated) stays revoked."""
    added = 0
    for token, role, name in specs:
        digest = hash_token(token)
        if await db.fetch_one("SELECT id FROM api_tokens WHERE token_hash = :h", {"h": digest}):
            continue
        user = await ensure_user(db, name, auth_provider="bootstrap")
        try:
            await _insert_token(
                db,
                token=token,
                user_id=user["id"],
                name=name,
                role=role,
                expires_at=None,
                token_id=f"bootstrap-{digest[:16]}",
            )
        except DuplicateKey:
            continue  # another process (a second replica) inserted it first
        added += 1
    return added
