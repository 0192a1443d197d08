"""What the client commands share: ``--token``, ``--timeout`` and opening an API client.

The prompt for a token is offered only when stdin is a terminal; everything else about where
credentials come from lives in :mod:`aether.client.credentials`. Client imports
happen inside the functions, so ``--help`` stays cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from aether.client.api import ApiClient
    from aether.client.credentials import Credentials


def token_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--token``: wins over AETHER_TOKEN and the session file."""
    return click.option(
        "--token",
        metavar="TOKEN",
        default=None,
        help="API token (default: AETHER_TOKEN, then the session file from `aether login`).",
    )(command)


def rollout_timeout_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--timeout``: how long ``deploy`` and ``rollback`` follow a rollout."""
    return click.option(
        "--timeout",
        "timeout_secs",
        type=click.FloatRange(min=1),
        default=180.0,
        show_default=True,
        help="Seconds to wait for the rollout.",
    )(command)


def hidden_prompt(label: str) -> str:
    return str(click.prompt(label, hide_input=True, err=True))


def stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def command_credentials(token: str | None) -> Credentials:
    from aether.client.credentials import for_command

    return for_command(os.environ, token=token, interactive=stdin_is_tty(), prompt=hidden_prompt)


def open_api(token: str | None) -> ApiClient:
    """An API client for the logged-in control plane (``--token`` overrides the token)."""
    return command_credentials(token).api_client()


def app_option(required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    help_text = "App name." if required else "App name (default: config default_app)."
    return click.option("--app", "app", metavar="NAME", required=required, help=help_text)


def one_app(argument: str | None, option: str | None) -> str | None:
    """APP or --app: either, or both when they agree."""
    if argument and option and argument != option:
        raise click.UsageError(f"APP {argument!r} and --app {option!r} name different apps")
    return argument or option


def resolve_app(app: str | None) -> str:
    """``--app``, else config.toml's ``default_app``; a UsageError when neither is set."""
    from aether.clientsettings import ClientSettings
    from aether.errors import UsageError
    from aether.models import check_app_name

    name = app or ClientSettings.from_env(os.environ).default_app
    if not name:
        raise UsageError("which app? pass --app NAME (or set default_app in config.toml)")
    return check_app_name(name, error=UsageError)
