"""``aether login``, ``aether logout`` and ``aether whoami``."""

from __future__ import annotations

import os
from typing import Any

import click

from aether.cli.connection import hidden_prompt, stdin_is_tty, token_option
from aether.cli.output import emit, format_option


@click.command(name="login")
@click.option(
    "--api",
    metavar="URL",
    help="Control-plane URL (default: AETHER_API_BASE, session, config, http://127.0.0.1:8080).",
)
@token_option
@click.option(
    "--username", metavar="NAME", help="Kept for compatibility; the server's user name wins."
)
@click.option(
    "--rotate", is_flag=True, help="Rotate the stored token on the server and save the new one."
)
@format_option
def login(
    api: str | None, token: str | None, username: str | None, rotate: bool, output_format: str
) -> None:
    """Verify an API token with the control plane and store it in the session file.

    The token comes from --token, then AETHER_TOKEN, then a hidden prompt (only on a
    terminal). The session file is written with mode 0600.
    """
    from aether.client import account
    from aether.client.credentials import for_command, for_login

    if rotate:
        result = account.rotate(os.environ, for_command(os.environ, token=token))
    else:
        credentials = for_login(
            os.environ, api=api, token=token, interactive=stdin_is_tty(), prompt=hidden_prompt
        )
        result = account.login(os.environ, credentials, username=username)
    emit(_public(result), _render_login)


@click.command(name="logout")
@click.option("--revoke", is_flag=True, help="Also revoke the token on the server.")
@format_option
def logout(revoke: bool, output_format: str) -> None:
    """Forget the stored token (and, with --revoke, revoke it on the server)."""
    from aether.client import account

    emit(account.logout(os.environ, revoke=revoke), _render_logout)


@click.command(name="whoami")
@token_option
@format_option
def whoami(token: str | None, output_format: str) -> None:
    """Show who the token belongs to, and on which control plane."""
    from aether.cli.connection import command_credentials
    from aether.client import account

    emit(account.whoami(command_credentials(token)), _render_whoami)


def _public(result: dict[str, Any]) -> dict[str, Any]:
    # The token itself is never printed.
    return {key: value for key, value in result.items() if key != "token"}


def _render_login(result: dict[str, Any]) -> str:
    return (
        f"Logged in to {result['api_base']} as {result.get('user') or '?'} "
        f"({result.get('role', '?')}); session saved to {result['session_file']}"
    )


def _render_logout(result: dict[str, Any]) -> str:
    lines = []
    if result.get("revoked_token_id"):
        lines.append(f"Revoked token {result['revoked_token_id']}.")
    lines.append("Logged out." if result["logged_out"] else "Not logged in; nothing to forget.")
    return "\n".join(lines)


def _render_whoami(result: dict[str, Any]) -> str:
    return (
        f"{result.get('name', '?')} ({result.get('role', '?')}) on {result['api_base']}, "
        f"token {result.get('token_id', '?')}"
    )
