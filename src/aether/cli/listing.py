"""``aether list``: apps with their current deployment, or one app's recent deployments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from aether.cli.connection import open_api, token_option
from aether.cli.output import emit, format_option


@click.command(name="list")
@click.option("--app", metavar="NAME", help="Show this app's recent deployments instead.")
@click.option(
    "--limit",
    type=click.IntRange(1, 500),
    default=20,
    show_default=True,
    help="Deployments to show with --app.",
)
@token_option
@format_option
def list_apps(app: str | None, limit: int, token: str | None, output_format: str) -> None:
    """List apps (status, digest, age, URL), or with --app one app's recent deployments."""
    from aether.client import apps as client_apps
    from aether.errors import UsageError
    from aether.models import check_app_name

    with open_api(token) as api:
        if app:
            check_app_name(app, error=UsageError)
            deployments = client_apps.app_deployments(api, app, limit=limit)
            emit({"app": app, "deployments": deployments}, render_deployments)
        else:
            emit({"apps": client_apps.list_apps(api)}, render_apps)


def render_apps(data: dict[str, Any]) -> str:
    rows = []
    for app in data["apps"]:
        current = app.get("current") or {}
        rows.append(
            [
                app.get("name", "?"),
                current.get("status") or "-",
                _short(current.get("artifact_digest")),
                age(current.get("created_at") or app.get("created_at")),
                app.get("url") or current.get("url") or "-",
            ]
        )
    if not rows:
        return "No apps yet: deploy one with `aether deploy`."
    return table(["NAME", "STATUS", "DIGEST", "AGE", "URL"], rows)


def render_deployments(data: dict[str, Any]) -> str:
    rows = [
        [
            deployment.get("id", "?"),
            deployment.get("status", "?"),
            _short(deployment.get("artifact_digest")),
            age(deployment.get("created_at")),
            deployment.get("failure_reason") or "",
        ]
        for deployment in data["deployments"]
    ]
    if not rows:
        return f"No deployments of {data['app']} yet."
    return table(["DEPLOYMENT", "STATUS", "DIGEST", "AGE", "REASON"], rows)


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def age(timestamp: str | None, *, now: datetime | None = None) -> str:
    """``2026-11-28T07:00:00Z`` → ``35m`` (s, m, h, d); ``-`` when unknown."""
    if not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return "-"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    secs = max(((now or datetime.now(UTC)) - then).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit}"
    return f"{int(secs)}s"


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "-"
