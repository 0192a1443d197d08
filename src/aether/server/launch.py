"""Running the API on hypercorn: first-start bootstrap, signals, graceful shutdown.

The only module that imports hypercorn. ``run_server`` opens the database once (migrating it
unless told not to), makes sure a first admin token exists, serves until SIGTERM/SIGINT, lets
in-flight requests finish within ``shutdown_grace_secs``, then closes the pool.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from aether.server.auth import bootstrap_specs
from aether.server.state import ServerState
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings
from aether.store import tokens as token_store
from aether.store.database import Database, open_database
from aether.store.migrate import migrate
from aether.userconfig import Session, write_session

log = logging.getLogger("aether.server")
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class LaunchOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    run_migrations: bool = True


def public_url_for(settings: ServerSettings, host: str, port: int) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    shown = "127.0.0.1" if host in _WILDCARD_HOSTS else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


async def prepare_database(
    db: Database, settings: ServerSettings, *, run_migrations: bool
) -> token_store.IssuedToken | None:
    """Migrate, load bootstrap tokens, and create the first admin token when none exists."""
    if run_migrations:
        applied = await migrate(db)
        if applied:
            log.info(
                "applied migrations: %s", ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
            )
    await token_store.sync_bootstrap_tokens(db, bootstrap_specs(settings))
    if await token_store.count_live_tokens(db) > 0:
        return None
    return await token_store.create_token(db, name="admin", role="admin")


def announce(url: str, issued: token_store.IssuedToken | None, environ: Mapping[str, str]) -> None:
    """Print where the API is; on first start, the admin token (once) and the session file."""
    print(f"Aether API listening on {url}", flush=True)
    if issued is None:
        return
    path = write_session(environ, Session(api_base=url, token=issued.token, user="admin"))
    print(f"First start: created an admin token (shown only once): {issued.token}", flush=True)
    print(f"Saved API URL and token to {path}; `aether deploy` here works now.", flush=True)


def run_server(
    settings: ServerSettings,
    options: LaunchOptions,
    *,
    environ: Mapping[str, str],
    blob_settings: BlobSettings,
    policy: ArtifactPolicy,
    background: Sequence[Callable[[ServerState], Awaitable[None]]] = (),
) -> None:
    settings = replace(settings, public_url=public_url_for(settings, options.host, options.port))
    asyncio.run(_serve(settings, options, environ, blob_settings, policy, background))


async def _serve(
    settings: ServerSettings,
    options: LaunchOptions,
    environ: Mapping[str, str],
    blob_settings: BlobSettings,
    policy: ArtifactPolicy,
    background: Sequence[Callable[[ServerState], Awaitable[None]]],
) -> None:
    from aether.server.app import create_app

    db = open_database(settings.database_url, settings.data_dir)
    await db.open()
    try:
        issued = await prepare_database(db, settings, run_migrations=options.run_migrations)
        app = create_app(
            settings,
            database=db,
            blob_settings=blob_settings,
            policy=policy,
            background=background,
            run_migrations=False,
        )
        await _serve_until_signalled(
            app, settings, options, lambda: announce(settings.public_url or "", issued, environ)
        )
    finally:
        await db.close()
    log.info("stopped")


async def _serve_until_signalled(
    app: object, settings: ServerSettings, options: LaunchOptions, on_bound: Callable[[], None]
) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [
        f"[{options.host}]:{options.port}"
        if ":" in options.host
        else f"{options.host}:{options.port}"
    ]
    config.graceful_timeout = settings.shutdown_grace_secs
    config.accesslog = None  # the app writes its own access line (with the request id)
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75.0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        log.info(
            "shutting down: finishing in-flight requests (up to %ss)", settings.shutdown_grace_secs
        )
        state = getattr(getattr(app, "state", None), "aether", None)
        if state is not None:
            state.stopping.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    await _announce_when_bound(app, server, on_bound)
    await server
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    sys.stdout.flush()


async def _announce_when_bound(
    app: object, server: asyncio.Task[None], on_bound: Callable[[], None]
) -> None:
    """Print the banner once the lifespan has started (the socket is bound by then)."""
    while not server.done():
        if getattr(getattr(app, "state", None), "aether", None) is not None:
            on_bound()
            return
        await asyncio.sleep(0.01)
