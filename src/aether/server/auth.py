"""Bearer-token authentication and the role/ownership checks handlers call.

:class:`AuthMiddleware` resolves ``Authorization: Bearer <token>`` into a :class:`Principal`
on ``request.state.principal`` (or answers 401 with ``WWW-Authenticate: Bearer``). Open paths
need no token. Roles: admin does everything; deployer creates apps (it becomes the owner) and
writes only its own apps; reader reads; puller may only fetch one deployment's artifact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from aether.errors import Forbidden, Unauthorized
from aether.settings import ServerSettings
from aether.store import tokens as token_store

OPEN_PATHS = frozenset({"/healthz", "/health", "/readyz", "/metrics", "/openapi.json", "/"})
# Local presigned blob URLs carry their own HMAC signature instead of a bearer token; the
# dashboard's pages (/ui/…) check their session cookie themselves (aether.server.ui).
OPEN_PREFIXES = ("/blobs/", "/ui/")
ROLES_THAT_READ = ("admin", "deployer", "reader")


@dataclass(frozen=True)
class Principal:
    token_id: str
    user_id: str
    name: str
    role: str  # admin | deployer | reader | puller
    deployment_id: str | None = None  # set for puller (deployment-scoped pull) tokens


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def parse_bearer(value: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, else None."""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bootstrap_specs(settings: ServerSettings) -> list[tuple[str, str, str]]:
    """(token, role, name) from AETHER_API_TOKENS, then AETHER_API_TOKEN as an admin."""
    specs = [
        token_store.parse_bootstrap_spec(entry, default_name=f"bootstrap-{index + 1}")
        for index, entry in enumerate(settings.api_tokens)
    ]
    if settings.api_token:
        specs.append((settings.api_token, "admin", "admin"))
    return specs


class TokenCache:
    """Recently checked tokens (keyed by their sha256, never the plaintext) for a short TTL,
    so a burst of requests costs one database lookup. Revoking or rotating through this
    process clears it; other processes see a revocation within ``ttl_secs``."""

    MAX_ENTRIES = 10_000

    def __init__(self, ttl_secs: float) -> None:
        self.ttl_secs = ttl_secs
        self._entries: dict[str, tuple[float, Principal]] = {}
        # token hash -> the lookup in progress that concurrent requests wait for
        self.inflight: dict[str, asyncio.Future[Any]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._entries.pop(token_hash, None)
            return None
        return entry[1]

    def put(self, token_hash: str, who: Principal, expires_at: str | None) -> None:
        if self.ttl_secs <= 0 or expires_at is not None and _secs_until(expires_at) < self.ttl_secs:
            return  # about to expire: always ask the database
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic() + self.ttl_secs, who)

    def clear(self) -> None:
        self._entries.clear()


def _secs_until(iso: str) -> float:
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (moment - datetime.now(UTC)).total_seconds()


async def resolve_token(state: Any, token: str) -> Principal | None:
    """The principal for a bearer token: from the cache, else from the database. Concurrent
    misses for one token share a single lookup (a burst after expiry costs one query)."""
    digest = token_store.hash_token(token)
    cache: TokenCache | None = getattr(state, "auth_cache", None)
    if cache is None:
        return await _lookup(state.db, token, None, digest)
    cached = cache.get(digest)
    if cached is not None:
        return cached
    pending = cache.inflight.get(digest)
    if pending is not None:
        shared = await asyncio.shield(pending)
        return await _lookup(state.db, token, cache, digest) if shared is _RETRY else shared
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    cache.inflight[digest] = future
    try:
        who = await _lookup(state.db, token, cache, digest)
    except BaseException:
        future.set_result(_RETRY)  # waiters try for themselves (and see the error themselves)
        raise
    finally:
        cache.inflight.pop(digest, None)
    if not future.done():
        future.set_result(who)
    return who


_RETRY = object()


async def _lookup(db: Any, token: str, cache: TokenCache | None, digest: str) -> Principal | None:
    row = await token_store.authenticate(db, token)
    if row is None:
        return None
    who = Principal(
        token_id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        role=row["role"],
        deployment_id=row["deployment_id"],
    )
    if cache is not None:
        cache.put(digest, who, row["expires_at"])
    return who


class AuthMiddleware:
    """Pure ASGI middleware (no body buffering, so NDJSON streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = parse_bearer(_authorization(scope))
        if token is None:
            raise Unauthorized("missing bearer token; send 'Authorization: Bearer <token>'")
        who = await resolve_token(scope["app"].state.aether, token)
        if who is None:
            raise Unauthorized("invalid, expired or revoked token; run `aether login` again")
        scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)


def _authorization(scope: Scope) -> str:
    # ASGI header names arrive lowercased; a scan is cheaper than building a Headers object.
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


def principal(request: HTTPConnection) -> Principal:
    found = request.scope.get("state", {}).get("principal")
    if found is None:
        raise Unauthorized("missing bearer token; send 'Authorization: Bearer <token>'")
    return found


def require_role(request: HTTPConnection, *roles: str) -> Principal:
    """The caller, if its role is one of ``roles`` (admin always passes); else Forbidden."""
    who = principal(request)
    if who.role == "admin" or who.role in roles:
        return who
    raise Forbidden(f"role {who.role!r} may not do this (needs {_either(roles)})")


def require_app_access(
    request: HTTPConnection, app_row: Mapping[str, Any], *, write: bool
) -> Principal:
    """Admin: any app. Deployer: reads any app, writes only apps it owns. Reader: reads."""
    who = require_role(request, *(("deployer",) if write else ROLES_THAT_READ))
    if write and who.role != "admin" and app_row.get("owner") != who.user_id:
        raise Forbidden(f"app {app_row.get('name')!r} belongs to another user")
    return who


def _either(roles: Iterable[str]) -> str:
    return " or ".join(["admin", *[r for r in roles if r != "admin"]])
