"""Running the API on hypercorn behind the router: first-start bootstrap, signals, graceful
shutdown.

The only module that imports hypercorn. ``run_server`` opens the database once (migrating it
unless told not to), makes sure a first admin token exists, serves until SIGTERM/SIGINT, lets
in-flight requests finish within ``shutdown_grace_secs``, then closes the pool.

One port, as Heroku's and Fly's routers front everything: the router
(:mod:`aether.server.router`) listens on the API's port (and terminates TLS there), sends
requests for ``<app>.<apps domain>`` to the apps and every other one to hypercorn, which
listens only on a unix socket in a directory no other user can enter. So only the router can
reach the API, and the API takes the client's address from the last ``X-Forwarded-For``
entry the router wrote (:class:`BehindTheRouter`): what it sees of a client is what it saw
when hypercorn accepted the connection itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aether.errors import ConfigError
from aether.server.auth import bootstrap_specs
from aether.server.hosts import Hosts
from aether.server.router.process import RouterService, tls_context
from aether.server.routes.signin_links import signin_url
from aether.server.state import ServerState, app_url
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings
from aether.store import dashboard_sessions, open_database
from aether.store import tokens as token_store
from aether.store.database import Database
from aether.store.migrate import migrate, pending
from aether.userconfig import Session, write_session

log = logging.getLogger("aether.server")
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# The longest unix socket path that fits every platform's sockaddr_un (104 on macOS).
_SOCKET_PATH_MAX = 100


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


def check_tls(settings: ServerSettings) -> ssl.SSLContext | None:
    """Both of --tls-cert/--tls-key or neither, and a pair that loads: a bad certificate
    stops the start with the reason instead of failing every handshake later. The context
    the router serves HTTPS with, or None for plain HTTP."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError(
            "HTTPS needs both --tls-cert and --tls-key (AETHER_TLS_CERT, AETHER_TLS_KEY)"
        )
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        context = tls_context(str(settings.tls_cert), str(settings.tls_key))
    except ssl.SSLError as exc:  # before OSError, of which it is a kind
        raise ConfigError(
            f"the TLS certificate {settings.tls_cert} and key {settings.tls_key} do not load"
            f" as a PEM pair: {exc.reason or exc}"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS certificate or key: {exc.strerror or exc}") from exc
    return context


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
    tls = check_tls(settings)
    if settings.target_platform:  # a typo fails at start, not at the first deploy
        from aether.pack.target import parse_target

        parse_target(settings.target_platform, source="AETHER_TARGET_PLATFORM")
    listener = bind_listener(options.host, options.port)
    with contextlib.ExitStack() as stack:
        stack.enter_context(listener)
        port = listener.getsockname()[1]  # the real one when --port 0 asked for any free port
        options = replace(options, port=port)
        settings = replace(settings, public_url=public_url_for(settings, options.host, port))
        apps_listener = None
        if settings.router_port is not None:
            apps_listener = stack.enter_context(bind_listener(options.host, settings.router_port))
            settings = replace(settings, router_port=apps_listener.getsockname()[1])
        internal, path = stack.enter_context(internal_listener(settings.data_dir))
        router = RouterService(listener, api=path, tls=tls, apps=apps_listener)
        background = (*background, router)
        asyncio.run(
            _serve(settings, options, environ, blob_settings, policy, background, internal, router)
        )


def _apps_url(settings: ServerSettings) -> str:
    domain = Hosts.from_settings(settings.public_url or "", settings.apps_domain).apps_domain
    router_port = settings.router_port if settings.runtime == "local" else None
    return app_url(
        settings.public_url or "",
        "<app>",
        domain,
        apps_url=settings.apps_url,
        router_port=router_port,
    )


@contextlib.contextmanager
def internal_listener(data_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    """The API's own listener behind the router: a unix socket in a fresh directory only
    this user can enter (0700), so no other local user can reach the API around the router
    and write the ``X-Forwarded-For`` it trusts (a loopback port could be reached by any).
    Under ``<data dir>/run`` when the path fits a socket address, else in the temporary
    directory; removed at exit (and left-overs of a killed server at the next start)."""
    base = data_dir / "run"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_dead_sockets(base)
    if len(str(base)) + len("/api-xxxxxxxx/api.sock") > _SOCKET_PATH_MAX:
        base = Path(tempfile.gettempdir())
    directory = tempfile.mkdtemp(prefix="api-", dir=base)  # mode 0700
    path = os.path.join(directory, "api.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(1024)
        sock.set_inheritable(True)
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def _remove_dead_sockets(base: Path) -> None:
    """Directories of servers that were killed: nothing listens on their socket."""
    for socket_path in base.glob("api-*/api.sock"):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(socket_path))
        except OSError:
            shutil.rmtree(socket_path.parent, ignore_errors=True)
        finally:
            probe.close()


class BehindTheRouter:
    """The API as served on its internal listener: every request came through the router,
    which names the client's address last in ``X-Forwarded-For``. The scope gets that
    address and the router's scheme, as if hypercorn had accepted the client itself."""

    def __init__(self, app: Any, scheme: str) -> None:
        self.app = app
        self.schemes = {"http": scheme, "websocket": "wss" if scheme == "https" else "ws"}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind in self.schemes:
            scope = {**scope, "scheme": self.schemes[kind], "client": _client(scope)}
        await self.app(scope, receive, send)


def _client(scope: Any) -> tuple[str, int] | None:
    forwarded = b""
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded = value  # the router writes one, last
    address = forwarded.rsplit(b",", 1)[-1].strip().decode("latin-1")
    return (address, 0) if address else None


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
    router: RouterService,
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
        await router.drained()  # answers in flight on the router get their grace period too
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
    fronted = BehindTheRouter(app, settings.scheme)
    await serve(fronted, config, shutdown_trigger=stop.wait)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    sys.stdout.flush()
