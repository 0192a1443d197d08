"""``aether config``: an app's config vars — list, set, unset, import a dotenv file.

Config vars live on the server, sealed, and every later release of the app takes them. A
change makes a new config version and rolls out a release of the running code with it
(``--no-restart`` stages it for the next deploy). Values are never printed unless asked for
with ``--reveal``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from aether.cli.connection import (
    app_option,
    open_api,
    resolve_app,
    rollout_timeout_option,
    token_option,
)
from aether.cli.output import emit, format_option
from aether.models import ConfigChange


def _change_command(command: Any) -> Any:
    """The options every change takes: ``--app``, ``--no-restart``, ``--no-wait``,
    ``--timeout``, ``--token``, ``--format``; the command passes ``app`` and ``no_restart``
    on and the rest to :func:`_apply` as ``**rollout``."""
    for option in (
        format_option,
        token_option,
        rollout_timeout_option,
        click.option("--no-wait", is_flag=True, help="Return once the new release is registered."),
        click.option(
            "--no-restart",
            is_flag=True,
            help="Stage the change: the next deploy (or config change) rolls it out.",
        ),
        app_option(),
    ):
        command = option(command)
    return command


@click.group(name="config", invoke_without_command=True)
@app_option()
@click.option("--reveal", is_flag=True, help="Show the values (admin or the app's owner).")
@token_option
@format_option
@click.pass_context
def config(
    ctx: click.Context, app: str | None, reveal: bool, token: str | None, output_format: str
) -> None:
    """Show and change an app's config vars (its environment in every release).

    \b
    Examples:
      aether config --app notes-api                   # names and fingerprints
      aether config set DATABASE_URL=postgres://… --app notes-api
      aether config set DB_PASSWORD --app notes-api   # the value from stdin (or a prompt)
      aether config unset DEBUG --app notes-api
      aether config import .env.production --app notes-api
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_config, app=app, reveal=reveal, token=token, output_format=output_format)


@config.command(name="list")
@app_option()
@click.option("--reveal", is_flag=True, help="Show the values (admin or the app's owner).")
@token_option
@format_option
def list_config(app: str | None, reveal: bool, token: str | None, output_format: str) -> None:
    """List the config vars: names and fingerprints (values with --reveal)."""
    from aether.client import apps as client_apps

    name = resolve_app(app)
    with open_api(token) as api:
        emit(client_apps.config(api, name, reveal=reveal), render_config)


def render_config(data: Any) -> str:
    head = f"{data['app_name']}: config v{data['version']}"
    running = data.get("release_config_version")
    if running is not None and running != data["version"]:
        head += f" (staged; the current release runs config v{running})"
    if not data["vars"]:
        return head + "\nNo config vars yet: `aether config set KEY=VALUE`."
    width = max(len(item["name"]) for item in data["vars"])
    lines = [head]
    for item in data["vars"]:
        if "value" in item:
            lines.append(f"{item['name']}={shlex.quote(item['value'])}")
        else:
            lines.append(f"{item['name']:{width}}  fp {item['fingerprint']}")
    return "\n".join(lines)


@config.command(name="set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@_change_command
def set_config(pairs: tuple[str, ...], app: str | None, no_restart: bool, **rollout: Any) -> None:
    """Set config vars (one new config version) and roll out a release with them.

    A single KEY without '=' takes its value from stdin (a hidden prompt on a terminal),
    which keeps it out of the shell history and the process list.
    """
    name = resolve_app(app)
    _apply(name, {"set": _pairs(pairs), "restart": not no_restart}, **rollout)


def _pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    from aether.client.deploy import parse_env_pairs
    from aether.errors import UsageError

    if len(pairs) == 1 and "=" not in pairs[0]:
        from aether.models import check_config_name

        key = check_config_name(pairs[0], error=UsageError)
        return parse_env_pairs([f"{key}={_value_from_stdin(key)}"], option="config set")
    return parse_env_pairs(pairs, option="config set")


def _value_from_stdin(key: str) -> str:
    from aether.cli.connection import stdin_is_tty

    if stdin_is_tty():
        return str(click.prompt(f"{key}", hide_input=True, err=True))
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


@config.command(name="unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@_change_command
def unset_config(keys: tuple[str, ...], app: str | None, no_restart: bool, **rollout: Any) -> None:
    """Remove config vars (one new config version) and roll out a release without them."""
    from aether.errors import UsageError
    from aether.models import check_config_name

    name = resolve_app(app)
    names = [check_config_name(key, error=UsageError) for key in keys]
    _apply(name, {"unset": names, "restart": not no_restart}, **rollout)


@config.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_change_command
def import_config(file: Path, app: str | None, no_restart: bool, **rollout: Any) -> None:
    """Set every variable of a dotenv FILE (KEY=value lines, `export`, quotes, # comments)
    in one config version; variables not in the file stay as they are. Values are taken
    as written (no ${VAR} expansion)."""
    from aether.client.envfile import read_env_file
    from aether.errors import UsageError

    name = resolve_app(app)
    found = read_env_file(file)
    if not found:
        raise UsageError(f"{file} holds no variables")
    _apply(name, {"set": found, "restart": not no_restart}, **rollout)


def _apply(
    app: str,
    change: ConfigChange,
    *,
    no_wait: bool,
    timeout_secs: float,
    token: str | None,
    output_format: str,
) -> None:
    from aether.cli.progress import follow_with_progress
    from aether.client import apps as client_apps

    with open_api(token) as api:
        result: dict[str, Any] = dict(client_apps.change_config(api, app, change))
        deployment = result.get("deployment")
        if deployment is not None and not no_wait:
            result["deployment"] = follow_with_progress(
                api, deployment["id"], timeout_secs=timeout_secs
            )
    result["restart"] = change.get("restart", True)
    emit(result, render_change)


def render_change(result: dict[str, Any]) -> str:
    config, changed = result["config"], result["changed"]
    app = config["app_name"]
    lines = []
    if not changed:
        lines.append(
            f"Unchanged: {app} config v{config['version']} already holds that; nothing restarted"
        )
    else:
        lines.append(f"{_verb(result)} on {app}: config v{config['version']}")
        release, deployment = result.get("release"), result.get("deployment")
        if release is not None and deployment is not None:
            lines.append(
                f"  release v{release['version']} (deployment {deployment['id']}):"
                f" {deployment['status']}"
            )
        elif not result["restart"]:
            lines.append("  staged: the next deploy or config change rolls it out")
        else:
            lines.append(f"  {app} has no release yet: its first deploy takes this config")
    for missing in result.get("not_set") or []:
        lines.append(f"  note: {missing} was not set")
    return "\n".join(lines)


def _verb(result: dict[str, Any]) -> str:
    names = ", ".join(result["changed"])
    return f"Changed {names}"
