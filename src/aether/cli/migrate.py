"""``aether migrate``: apply (or list) database schema migrations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from aether.cli.output import emit, format_option


def _render(result: dict[str, Any]) -> str:
    if "pending" in result:
        lines = [f"database: {result['database']}"]
        lines += [f"applied  {name}" for name in result["applied"]]
        lines += [f"pending  {name}" for name in result["pending"]]
        return "\n".join(lines)
    lines = [f"applied {name}" for name in result["applied"]]
    if not lines:
        lines.append(f"schema is up to date (version {result['version']}, {result['database']})")
    if result.get("sealed_releases"):
        lines.append(f"sealed the env values of {result['sealed_releases']} release(s)")
    return "\n".join(lines)


@click.command(name="migrate")
@click.option("--status", is_flag=True, help="Only list applied and pending migrations.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite database lives (ignored with DATABASE_URL).",
)
@format_option
def migrate(status: bool, data_dir: Path | None, output_format: str) -> None:
    """Apply database schema migrations (SQLite in the data dir, or DATABASE_URL).

    `aether serve` applies them at start too, unless run with --no-migrate.
    """
    from aether.server import store_admin
    from aether.settings import ServerSettings

    environ = dict(os.environ)
    if data_dir is not None:
        environ["AETHER_DATA_DIR"] = str(data_dir)
    settings = ServerSettings.from_env(environ)
    result = (
        store_admin.migration_status(settings) if status else store_admin.apply_migrations(settings)
    )
    emit(result, _render)
