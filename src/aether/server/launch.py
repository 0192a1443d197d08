"""Running the API on hypercorn: first-start bootstrap, signals, graceful shutdown.

The only module that imports hypercorn. ``run_server`` opens the database once (migrating it
unless told not to), makes sure a first admin token exists, serves until SIGTERM/SIGINT, lets
in-flight requests finish within ``shutdown_grace_secs``, then closes the pool.
"""

from __future__ import annotations

import asyncio
import asyncio.constants
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aether.errors import ConfigError
from aether.server.auth import bootstrap_specs
from aether.server.routes.signin_links import signin_url
from aether.server.state import ServerState
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings
from aether.store import dashboard_sessions, open_database
from aether.store import tokens as token_store
from aether.store.database import Database
from aether.store.migrate import migrate, pending
from aether.userconfig import Session, write_session

if TYPE_CHECKING:
    from aether.server.router.process import RouterService

log = logging.getLogger("aether.server")
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SSL_SHUTDOWN_SECS = 2.0  # how long a closing TLS connection waits for the client's close_notify


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
    return f"{settings.scheme}://{shown}:{port}"


def check_tls(settings: ServerSettings) -> None:
    """Both of --tls-cert/--tls-key or neither, and a pair that loads: a bad certificate
    stops the start with the reason instead of failing every handshake later."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError(
            "HTTPS needs both --tls-cert and --tls-key (AETHER_TLS_CERT, AETHER_TLS_KEY)"
        )
    if settings.tls_cert is None or settings.tls_key is None:
        return
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert, settings.tls_key
        )
    except ssl.SSLError as exc:  # before OSError, of which it is a kind
        raise ConfigError(
            f"the TLS certificate {settings.tls_cert} and key {settings.tls_key} do not load"
            f" as a PEM pair: {exc.reason or exc}"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS certificate or key: {exc.strerror or exc}") from exc


async def prepare_database(
    db: Database, settings: ServerSettings, *, run_migrations: bool
) -> token_store.IssuedToken | None:
    """Migrate, load bootstrap tokens, and create the first admin token when none exists."""
    if not run_migrations and await pending(db):
        raise ConfigError(
            "the database schema is behind and --no-migrate was given; run `aether migrate`"
        )
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


def announce(
    url: str,
    issued: token_store.IssuedToken | None,
    environ: Mapping[str, str],
    signin_code: str | None = None,
    apps_url: str | None = None,
) -> None:
    """Print where the API, the dashboard (and the app router) are; on first start, the
    admin token (once), the session file and a one-time dashboard sign-in link."""
    print(f"Aether API listening on {url}", flush=True)
    print(f"Dashboard: {url}/ (sign in with a token, or run `aether dashboard`)", flush=True)
    if apps_url:
        print(f"Apps: {apps_url}", flush=True)
    if issued is None:
        return
    path = write_session(environ, Session(api_base=url, token=issued.token, user="admin"))
    print(f"First start: created an admin token (shown only once): {issued.token}", flush=True)
    print(f"Saved API URL and token to {path}; `aether deploy` here works now.", flush=True)
    if signin_code:
        link = signin_url(url, signin_code)
        print(f"Sign in to the dashboard (one use, within an hour): {link}", flush=True)


def run_server(
    settings: ServerSettings,
    options: LaunchOptions,
    *,
    environ: Mapping[str, str],
    blob_settings: BlobSettings,
    policy: ArtifactPolicy,
    background: Sequence[Callable[[ServerState], Awaitable[None]]] = (),
) -> None:
    check_tls(settings)
    if settings.target_platform:  # a typo fails at start, not at the first deploy
        from aether.pack.target import parse_target

        parse_target(settings.target_platform, source="AETHER_TARGET_PLATFORM")
    listener = bind_listener(options.host, options.port)
    with contextlib.ExitStack() as stack:
        stack.enter_context(listener)
        port = listener.getsockname()[1]  # the real one when --port 0 asked for any free port
        options = replace(options, port=port)
        settings = replace(settings, public_url=public_url_for(settings, options.host, port))
        router = None
        if settings.router_port is not None:
            from aether.server.router.process import RouterService

            router_listener = stack.enter_context(bind_listener(options.host, settings.router_port))
            settings = replace(settings, router_port=router_listener.getsockname()[1])
            router = RouterService(router_listener)
            background = (*background, router)
        asyncio.run(
            _serve(settings, options, environ, blob_settings, policy, background, listener, router)
        )


def _apps_url(settings: ServerSettings) -> str | None:
    if settings.router_port is None:
        return None
    from aether.server.hosts import Hosts

    domain = Hosts.from_settings(settings.public_url or "", settings.apps_domain).apps_domain
    return f"http://<app>.{domain}:{settings.router_port}/"


def bind_listener(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else so the printed URL is already live
    and a busy port fails at once with a clear message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port or --host"
        ) from exc
    listener.set_inheritable(True)
    return listener


async def _serve(
    settings: ServerSettings,
    options: LaunchOptions,
    environ: Mapping[str, str],
    blob_settings: BlobSettings,
    policy: ArtifactPolicy,
    background: Sequence[Callable[[ServerState], Awaitable[None]]],
    listener: socket.socket,
    router: RouterService | None = None,
) -> None:
    from aether.server.app import create_app

    db = open_database(settings.database_url, settings.data_dir)
    await db.open()
    try:
        issued = await prepare_database(db, settings, run_migrations=options.run_migrations)
        code = None
        if issued is not None:
            code = await dashboard_sessions.create_link(db, issued.row["id"], ttl_secs=3600)
        app = create_app(
            settings,
            database=db,
            blob_settings=blob_settings,
            policy=policy,
            background=background,
            run_migrations=False,
        )
        await _serve_until_signalled(
            app,
            settings,
            listener,
            lambda: announce(settings.public_url or "", issued, environ, code, _apps_url(settings)),
        )
        if router is not None:  # app answers in flight get their grace period too
            await router.drained()
    finally:
        await db.close()
    log.info("stopped")


async def _serve_until_signalled(
    app: object, settings: ServerSettings, listener: socket.socket, on_bound: Callable[[], None]
) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    # hypercorn wraps and later closes the descriptor it is given: hand it a duplicate.
    config.bind = [f"fd://{os.dup(listener.fileno())}"]
    config.graceful_timeout = settings.shutdown_grace_secs
    config.accesslog = None  # the app writes its own access line (with the request id)
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75.0
    if settings.tls_cert is not None and settings.tls_key is not None:
        config.certfile, config.keyfile = str(settings.tls_cert), str(settings.tls_key)
        config.ssl_handshake_timeout = min(settings.shutdown_grace_secs, 10.0)
        _bound_ssl_shutdown()
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
    # The socket is already listening: connections made from now on wait in its backlog
    # until hypercorn accepts them, so the URL and session can be announced before serving.
    on_bound()
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    sys.stdout.flush()


def _bound_ssl_shutdown() -> None:
    """Stopping waits for every TLS connection's close_notify exchange, and an idle client
    that never answers held it for asyncio's default of 30 s, beyond the grace period (a
    browser's spare connection is enough). hypercorn passes no timeout of its own, so asyncio
    reads this constant for each connection it accepts."""
    asyncio.constants.SSL_SHUTDOWN_TIMEOUT = SSL_SHUTDOWN_SECS
