"""``aether worker``: the reconciliation loop on its own (a sidecar next to ``aether serve``)."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command(name="worker")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Releases, logs and the SQLite database [default: $AETHER_DATA_DIR].",
)
@click.option("--once", is_flag=True, help="Run one reconcile pass over every app, then exit.")
@click.option(
    "--stop-apps",
    is_flag=True,
    help="Stop every local app process started from the data dir, then exit (run it once the "
    "worker is stopped; the next worker starts the apps again).",
)
@click.option(
    "--isolation",
    is_flag=True,
    help="Print, as JSON, how the local runtime isolates and limits apps on this host; exit.",
)
def worker(data_dir: Path | None, once: bool, stop_apps: bool, isolation: bool) -> None:
    """Run the reconciliation loop: put each app's newest deployment on the runtime.

    It reads the same configuration as `aether serve` (DATABASE_URL, AETHER_RUNTIME,
    AETHER_STORAGE_MODE, …). Several workers may share one PostgreSQL database: each app is
    handled by one of them at a time. With the local runtime each app runs sandboxed under a
    supervisor of its own and outlives this command: SIGTERM/SIGINT (or a crash) stop the
    worker, not the apps, and the next worker started with the same data dir adopts them.
    Deleting an app stops it; `--stop-apps` stops them all.

    \b
    Examples:
      DATABASE_URL=postgresql://aether@db/aether aether worker
      AETHER_RUNTIME=kubernetes aether worker
      aether worker --isolation            # what confines apps here
      aether worker --stop-apps            # after stopping the worker: stop its apps too
    """
    import asyncio
    import json

    from aether.worker import service

    environ = dict(os.environ)
    if data_dir is not None:
        environ["AETHER_DATA_DIR"] = str(data_dir)
    if isolation:
        click.echo(json.dumps(service.local_runtime_report(environ), indent=2))
        return
    if stop_apps:
        stopped = asyncio.run(service.stop_local_apps(environ))
        click.echo(f"stopped {stopped} app process{'es' if stopped != 1 else ''}", err=True)
        return
    from aether.cli.longrunning import collect_as_usual

    collect_as_usual()
    asyncio.run(service.run_worker(environ, once=once))
