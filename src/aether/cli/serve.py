"""``aether serve``: the control-plane API (starlette on hypercorn), optionally with a worker."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import click


def _background_tasks(
    environ: Mapping[str, str], *, no_worker: bool
) -> list[Callable[[Any], Awaitable[None]]]:
    """Coroutines started inside the server's lifespan, each given the ServerState.

    The in-process worker (unless ``no_worker``). Always the artifact GC (pending uploads,
    retention) and the log retention."""
    from aether.server.artifacts.gc import gc_loop
    from aether.server.log_retention import log_retention_loop
    from aether.worker.service import serve_jobs

    return [*serve_jobs(environ, run_loop=not no_worker), gc_loop, log_retention_loop]


@click.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--router-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve apps (<app>.<apps domain>), and only apps, on this port (plain HTTP)"
    " [default: $AETHER_ROUTER_PORT, else apps answer on --port alone].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="SQLite database and local artifacts [default: $AETHER_DATA_DIR or ${XDG_DATA_HOME:-~/.local/share}/aether].",
)
@click.option(
    "--no-worker", is_flag=True, help="Do not run the reconciliation loop in this process."
)
@click.option("--no-migrate", is_flag=True, help="Do not apply schema migrations at start.")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate (chain) to serve HTTPS with [default: $AETHER_TLS_CERT].",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert [default: $AETHER_TLS_KEY].",
)
def serve(
    host: str,
    port: int,
    router_port: int | None,
    data_dir: Path | None,
    no_worker: bool,
    no_migrate: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the control-plane API.

    With no configuration it uses SQLite in the data dir and local artifact storage, and on
    first start prints an admin token and saves it to the session file. DATABASE_URL switches
    to PostgreSQL. SIGTERM/SIGINT stop it gracefully.

    With --tls-cert and --tls-key it serves HTTPS, and the local store's presigned upload and
    download URLs use https too. Serve HTTPS (or sit behind a TLS-terminating proxy) whenever
    clients reach the API off this machine: they refuse to send tokens over plain HTTP.

    \b
    Examples:
      aether serve
      aether serve --router-port 8081
      aether serve --host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem
      DATABASE_URL=postgresql://aether@db/aether aether serve --host 0.0.0.0 --port 8080
    """
    from aether.cli.longrunning import collect_as_usual
    from aether.server.launch import LaunchOptions, run_server
    from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings

    collect_as_usual()

    environ = dict(os.environ)
    given = {
        "AETHER_DATA_DIR": data_dir,
        "AETHER_TLS_CERT": tls_cert,
        "AETHER_TLS_KEY": tls_key,
        "AETHER_ROUTER_PORT": router_port,
    }
    environ.update({name: str(value) for name, value in given.items() if value is not None})
    run_server(
        ServerSettings.from_env(environ),
        LaunchOptions(host=host, port=port, run_migrations=not no_migrate),
        environ=environ,
        blob_settings=BlobSettings.from_env(environ),
        policy=ArtifactPolicy.from_env(environ),
        background=_background_tasks(environ, no_worker=no_worker),
    )
