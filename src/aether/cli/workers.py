"""``aether workers``: the workers that registered lately, whether each is alive, what it
holds, and the sandbox it gives apps."""

from __future__ import annotations

from typing import Any

import click

from aether.cli.connection import open_api, token_option
from aether.cli.listing import age, table
from aether.cli.output import emit, format_option


@click.command(name="workers")
@token_option
@format_option
def workers(token: str | None, output_format: str) -> None:
    """List workers: id, host, runtime, version, state, last heartbeat, apps held.

    A worker is alive while its heartbeats arrive (AETHER_WORKER_DEAD_SECS); a deployment
    waits while no live worker of the server's runtime exists.
    """
    from aether.client.apps import list_workers

    with open_api(token) as api:
        emit(list_workers(api), render)


def render(data: dict[str, Any]) -> str:
    rows = [
        [
            worker.get("id", "?"),
            worker.get("host", "?"),
            worker.get("runtime", "?"),
            worker.get("version", "?"),
            _state(worker),
            age(worker.get("last_seen")),
            _sandbox(worker.get("isolation") or {}),
            ", ".join(worker.get("apps") or []) or "-",
        ]
        for worker in data.get("workers", [])
    ]
    lines = []
    if rows:
        header = ["ID", "HOST", "RUNTIME", "VERSION", "STATE", "SEEN", "SANDBOX", "APPS"]
        lines.append(table(header, rows))
    if not data.get("live"):
        runtime = data.get("runtime", "?")
        lines.append(
            f"no live worker for runtime {runtime}: deployments wait until one runs "
            "(`aether worker`, or `aether serve` without --no-worker)"
        )
    return "\n".join(lines)


def _state(worker: dict[str, Any]) -> str:
    if worker.get("alive"):
        return "alive"
    return "stopped" if worker.get("stopped_at") else "gone"


def _sandbox(isolation: dict[str, Any]) -> str:
    if isolation.get("isolated") is False:
        return "none"
    return str(isolation.get("kind") or "-")
