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
def worker(data_dir: Path | None, once: bool) -> None:
    """Run the reconciliation loop: put each app's newest deployment on the runtime.

    It reads the same configuration as `aether serve` (DATABASE_URL, AETHER_RUNTIME,
    AETHER_STORAGE_MODE, …). Several workers may share one PostgreSQL database: each app is
    handled by one of them at a time. With the local runtime, apps run as child processes of
    this command and stop with it. SIGTERM/SIGINT stop it cleanly.

    \b
    Examples:
      DATABASE_URL=postgresql://aether@db/aether aether worker
      AETHER_RUNTIME=kubernetes aether worker
    """
    import asyncio

    from aether.worker.service import run_worker

    environ = dict(os.environ)
    if data_dir is not None:
        environ["AETHER_DATA_DIR"] = str(data_dir)
    asyncio.run(run_worker(environ, once=once))
