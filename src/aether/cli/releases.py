"""``aether releases``: an app's numbered releases, newest first."""

from __future__ import annotations

from typing import Any

import click

from aether.cli.connection import open_api, resolve_app, token_option
from aether.cli.listing import age, table
from aether.cli.output import emit, format_option


@click.command(name="releases")
@click.argument("app_name", required=False, metavar="APP")
@click.option("--app", "app_option", metavar="NAME", help="App name (same as APP).")
@click.option(
    "--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="How many."
)
@token_option
@format_option
def releases(
    app_name: str | None, app_option: str | None, limit: int, token: str | None, output_format: str
) -> None:
    """List APP's releases: number, what made it, code, config version, status, who, when.

    A release is the code (artifact), config version, one-off --env, start command, scale
    and health check an app runs; deploys, config changes, scaling and rollbacks each make
    one. `aether rollback --to vN` goes back to one. A restart changes none of that: it is
    another rollout of the release that runs, listed above it ("Restart of vN").
    """
    from aether.client import apps as client_apps

    name = resolve_app(app_name or app_option)
    with open_api(token) as api:
        emit({"app": name, "releases": client_apps.releases(api, name, limit=limit)}, render)


def render(data: dict[str, Any]) -> str:
    rows: list[list[str]] = []
    for release in data["releases"]:
        rows.extend(_restart_rows(release))
        rows.append(_row(release, release["description"], release))
    if not rows:
        return f"No releases of {data['app']} yet: `aether deploy`."
    header = ["RELEASE", "DESCRIPTION", "DIGEST", "CONFIG", "SCALE", "STATUS", "BY", "AGE"]
    return table(header, rows)


def _restart_rows(release: dict[str, Any]) -> list[list[str]]:
    """A restart is another rollout of a release: listed above it, newest first."""
    shown = release.get("restarted") or []
    rows = [_row(release, f"Restart of v{release['version']}", item) for item in shown]
    earlier = int(release.get("restarts") or 0) - len(shown)
    if earlier > 0:
        rows.append(_row(release, f"(and {earlier} earlier restarts of it)", {}))
    return rows


def _row(release: dict[str, Any], what: str, event: dict[str, Any]) -> list[str]:
    """One line: the release's code, config and scale; ``event``'s status, author, age."""
    return [
        f"v{release['version']}",
        what,
        release["artifact_digest"][:12],
        f"v{release['config_version']}",
        str(release["replicas"]),
        event.get("status") or "-",
        event.get("created_by") or "-",
        age(event.get("created_at")) if event else "",
    ]
