"""The application factory: routes from every resource module, middleware, error mapping,
and a lifespan that opens the database and blob store and exposes them as ServerState.

No module-level app: ``create_app`` builds a fresh one (tests build many per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from aether.blobs import BlobStore, open_blob_store
from aether.errors import AetherError
from aether.sealing import KeyRing, key_source
from aether.server import routes, ui
from aether.server.app_targets import AppTargets
from aether.server.auth import AuthMiddleware, TokenCache, bootstrap_specs
from aether.server.context import RequestContextMiddleware
from aether.server.errors import handle_exception
from aether.server.hosts import Hosts
from aether.server.log_wakeups import hear_stored_lines
from aether.server.read_cache import ReadCache, follow_changes
from aether.server.state import DEFAULT_PUBLIC_URL, ServerState
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings
from aether.store import open_database, wakeups
from aether.store import tokens as token_store
from aether.store.database import Database
from aether.store.legacy_env import seal_legacy_env
from aether.store.migrate import migrate
from aether.store.secret_keys import ensure_primary

log = logging.getLogger("aether.server")

Background = Callable[[ServerState], Awaitable[None]]
EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPException: handle_exception,
    AetherError: handle_exception,
    # Only reached by a failure outside RequestContextMiddleware: still the envelope, never
    # starlette's plain-text 500.
    Exception: handle_exception,
}


def create_app(
    settings: ServerSettings,
    *,
    database: Database | None = None,
    blobs: BlobStore | None = None,
    blob_settings: BlobSettings | None = None,
    policy: ArtifactPolicy | None = None,
    background: Sequence[Background] = (),
    run_migrations: bool = True,
    keyring: KeyRing | None = None,
) -> Starlette:
    """A fresh API application; pass ``database``/``blobs`` to share ones the caller owns
    (they are then not closed on shutdown), ``keyring`` to seal config values with given
    keys instead of the settings' (``AETHER_SECRETS_KEY``, the key file)."""
    blob_settings = blob_settings or BlobSettings.from_env(
        {"AETHER_DATA_DIR": str(settings.data_dir)}
    )
    public_url = settings.public_url or DEFAULT_PUBLIC_URL
    parts = _Parts(
        settings=replace(settings, public_url=public_url),
        public_url=public_url,
        database=database,
        blobs=blobs,
        blob_settings=blob_settings,
        policy=policy or ArtifactPolicy.from_env({}),
        background=tuple(background),
        run_migrations=run_migrations,
        keyring=keyring,
        hosts=Hosts.from_settings(public_url, settings.apps_domain),
    )
    for warning in parts.hosts.warnings():
        log.warning("%s", warning)
    return Starlette(
        routes=[*routes.ROUTES, *ui.ROUTES],
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(AuthMiddleware),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=parts.lifespan,
    )


@dataclass(frozen=True)
class _Parts:
    """What create_app was given, and the lifespan that turns it into a ServerState."""

    settings: ServerSettings
    public_url: str  # settings.public_url, or the local default
    database: Database | None
    blobs: BlobStore | None
    blob_settings: BlobSettings
    policy: ArtifactPolicy
    background: tuple[Background, ...]
    run_migrations: bool
    keyring: KeyRing | None
    hosts: Hosts

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            db = await self._open_database(stack)
            keyring = await self._open_keyring(db)
            blobs = await self._open_blobs(stack)
            verifies = await probe_checksums(blobs)
            state = ServerState(
                settings=self.settings,
                db=db,
                blobs=blobs,
                blob_settings=self.blob_settings,
                policy=self.policy,
                public_url=self.public_url,
                keyring=keyring,
                auth_cache=TokenCache(self.settings.auth_cache_secs),
                read_cache=ReadCache(self.settings.read_cache_secs),
                store_verifies_checksums=verifies,
                hosts=self.hosts,
            )
            app.state.aether = state
            state.app_targets = AppTargets(db)
            stack.enter_context(wakeups.watch(state.app_targets.changed))
            tasks = [_start_background(job, state) for job in self._jobs()]
            try:
                yield
            finally:
                state.stopping.set()
                await _stop_background(tasks)

    def _jobs(self) -> list[Background]:
        jobs = [*self.background, hear_stored_lines]
        if self.settings.read_cache_secs > 0:
            jobs.append(_follow_changes)
        return jobs

    async def _open_database(self, stack: contextlib.AsyncExitStack) -> Database:
        db = self.database
        if db is None:
            db = open_database(self.settings.database_url, self.settings.data_dir)
            await db.open()
            stack.push_async_callback(db.close)
        if self.run_migrations:
            await migrate(db)
        await token_store.sync_bootstrap_tokens(db, bootstrap_specs(self.settings))
        return db

    async def _open_keyring(self, db: Database) -> KeyRing:
        """The ring (the embedded default generates its key file), checked against the key
        the database seals with; values still held in clear from before releases get sealed."""
        ring = self.keyring
        if ring is None:
            secrets = self.settings.secrets
            source = key_source(secrets.keys, secrets.key_file, create=secrets.create_key_file)
            ring = await asyncio.to_thread(KeyRing, source)
        await ensure_primary(db, ring)
        if self.run_migrations:
            sealed = await seal_legacy_env(db, ring)
            if sealed:
                log.info("sealed the env values of %d release(s) held in clear", sealed)
        return ring

    async def _open_blobs(self, stack: contextlib.AsyncExitStack) -> BlobStore:
        if self.blobs is not None:
            return self.blobs
        store = open_blob_store(self.blob_settings, public_url=self.public_url)
        await store.open()
        stack.push_async_callback(store.close)
        return store


async def probe_checksums(blobs: Any) -> bool:
    """Ask the blob store once whether it verifies checksums, and say what follows."""
    if blobs is None:
        return False
    try:
        verifies = bool(await blobs.verifies_checksums())
    except AetherError as exc:
        log.warning("could not probe the artifact store (%s); completes re-hash", exc.message)
        return False
    if verifies:
        log.info(
            "the artifact store refuses bytes that miss their sha256 checksum:"
            " completes trust its checksum"
        )
    else:
        log.info(
            "the artifact store does not verify checksums: every complete re-hashes the object"
        )
    return verifies


async def _follow_changes(state: ServerState) -> None:
    also = state.app_targets.changed if state.app_targets is not None else None
    await follow_changes(state.read_cache, state.db, state.stopping, also)


def _start_background(job: Background, state: ServerState) -> asyncio.Task[None]:
    async def run() -> None:
        await job(state)

    task = asyncio.create_task(run(), name=getattr(job, "__name__", "background"))
    task.add_done_callback(_log_crash)
    return task


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s stopped", task.get_name(), exc_info=task.exception())


async def _stop_background(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
