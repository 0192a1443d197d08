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
    one. `aether rollback --to vN` goes back to one.
    """
    from aether.client import apps as client_apps

    name = resolve_app(app_name or app_option)
    with open_api(token) as api:
        emit({"app": name, "releases": client_apps.releases(api, name, limit=limit)}, render)


def render(data: dict[str, Any]) -> str:
    rows = [
        [
            f"v{release['version']}",
            release["description"]
            + (f" (restarted {release['restarts']}×)" if release.get("restarts") else ""),
            release["artifact_digest"][:12],
            f"v{release['config_version']}",
            str(release["replicas"]),
            release.get("status") or "-",
            release.get("created_by") or "-",
            age(release.get("created_at")),
        ]
        for release in data["releases"]
    ]
    if not rows:
        return f"No releases of {data['app']} yet: `aether deploy`."
    header = ["RELEASE", "DESCRIPTION", "DIGEST", "CONFIG", "SCALE", "STATUS", "BY", "AGE"]
    return table(header, rows)
