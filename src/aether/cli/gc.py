"""``aether gc``: delete stale pending uploads (rows, partial objects, multipart uploads)."""

from __future__ import annotations

import os
from typing import Any

import click

from aether.cli.output import emit, format_option


def _render(report: dict[str, Any]) -> str:
    return (
        f"deleted {report['deleted_pending']} pending upload(s) older than"
        f" {report['ttl_secs']}s; dropped {report['purged_uploads']} orphaned part upload(s)"
        " or temporary file(s)"
    )


@click.command(name="gc")
@click.option(
    "--ttl",
    "ttl_secs",
    type=click.IntRange(min=0),
    default=None,
    help="Age in seconds after which a pending upload is stale [default: AETHER_PENDING_TTL_SECS].",
)
@format_option
def gc(ttl_secs: int | None, output_format: str) -> None:
    """Delete stale pending uploads, their partial objects and aborted multipart uploads.

    Uses the same DATABASE_URL / AETHER_DATA_DIR / AETHER_STORAGE_MODE as `aether serve`,
    which also runs this every AETHER_PENDING_GC_INTERVAL_SECS.
    """
    import asyncio

    from aether.server.artifacts.gc import run_once

    report = asyncio.run(run_once(dict(os.environ), ttl_secs=ttl_secs))
    emit(report.as_json(), _render)
