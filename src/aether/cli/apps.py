"""``aether apps``: create, show and destroy apps."""

from __future__ import annotations

from typing import Any

import click

from aether.cli.connection import open_api, stdin_is_tty, token_option
from aether.cli.listing import age
from aether.cli.output import emit, format_option


def _name(raw: str) -> str:
    from aether.errors import UsageError
    from aether.models import check_app_name

    return check_app_name(raw, error=UsageError)


@click.group(name="apps")
def apps() -> None:
    """Create, show and destroy apps (`aether list` lists them)."""


@apps.command(name="create")
@click.argument("name")
@token_option
@format_option
def create(name: str, token: str | None, output_format: str) -> None:
    """Create the app NAME; you become its owner. (`aether deploy` creates it too.)"""
    from aether.client import apps as client_apps

    with open_api(token) as api:
        emit(client_apps.create_app(api, _name(name)), lambda a: f"Created {a['name']}: {a['url']}")


@apps.command(name="info")
@click.argument("name")
@token_option
@format_option
def info(name: str, token: str | None, output_format: str) -> None:
    """Show the app NAME: owner, URL, its release, deployment and config var names."""
    from aether.client import apps as client_apps

    with open_api(token) as api:
        emit(client_apps.app_info(api, _name(name)), render_info)


def render_info(app: Any) -> str:
    lines = [
        f"name      {app['name']}",
        f"url       {app['url']}",
        f"owner     {app.get('owner') or '-'}",
        f"created   {app['created_at']} ({age(app['created_at'])} ago)",
    ]
    release = app.get("release")
    if release:
        lines.append(
            f"release   v{release['version']}: {release['description']} ({release.get('status')},"
            f" {release['replicas']} replica{'s' if release['replicas'] != 1 else ''})"
        )
    else:
        lines.append("release   none yet: `aether deploy`")
    current = app.get("current")
    if current:
        lines.append(f"running   deployment {current['id']}: {current['status']}")
    names = app.get("config_vars") or []
    lines.append(
        f"config    v{app.get('config_version', 0)}: {', '.join(names) if names else 'no vars'}"
    )
    return "\n".join(lines)


@apps.command(name="destroy")
@click.argument("name")
@click.option(
    "--confirm", metavar="NAME", help="The app's name again: nothing is destroyed without it."
)
@token_option
@format_option
def destroy(name: str, confirm: str | None, token: str | None, output_format: str) -> None:
    """Destroy the app NAME for good: the runtime stops it; its releases, config vars,
    deployments, logs and pull tokens are deleted, and the artifacts no other app runs.
    Needs --confirm NAME (or typing the name at a prompt on a terminal).
    """
    from aether.client import apps as client_apps
    from aether.errors import UsageError

    name = _name(name)
    if confirm is None and stdin_is_tty():
        confirm = click.prompt(
            f"Type {name} to destroy it", err=True, default="", show_default=False
        )
    if confirm != name:
        raise UsageError(
            f"not destroyed: pass --confirm {name} to destroy {name} and everything it holds"
        )
    with open_api(token) as api:
        client_apps.destroy_app(api, name)
    emit({"destroyed": name}, lambda r: f"Destroyed {r['destroyed']}.")
