"""``aether token``: create, list and revoke API tokens directly in the metadata store.

For operators with access to the database (the API's ``POST /tokens`` does the same over
HTTP for admins).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from aether.cli.output import emit, format_option

ROLES = ("admin", "deployer", "reader")


def _settings(data_dir: Path | None) -> Any:
    from aether.settings import ServerSettings

    environ = dict(os.environ)
    if data_dir is not None:
        environ["AETHER_DATA_DIR"] = str(data_dir)
    return ServerSettings.from_env(environ)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite database lives (ignored with DATABASE_URL).",
)


@click.group()
def token() -> None:
    """Administer API tokens on the server side (needs database access)."""


@token.command(name="create")
@click.option("--name", required=True, help="A label for the token (e.g. ci, alice-laptop).")
@click.option("--role", type=click.Choice(ROLES), default="deployer", show_default=True)
@click.option("--email", default=None, help="The user it belongs to [default: the name].")
@click.option("--expires-in", type=click.IntRange(min=1), default=None, help="Lifetime in seconds.")
@data_dir_option
@format_option
def create(
    name: str,
    role: str,
    email: str | None,
    expires_in: int | None,
    data_dir: Path | None,
    output_format: str,
) -> None:
    """Create a token; it is printed once and only its hash is stored.

    \b
    Example:
      aether token create --name ci --role deployer --expires-in 2592000
    """
    from aether.server import store_admin

    result = store_admin.create_token(
        _settings(data_dir), name=name, role=role, email=email, ttl_secs=expires_in
    )
    emit(result, lambda r: f"{r['token']}\n(id {r['token_id']}, role {r['role']}; shown only once)")


def _render_list(result: dict[str, Any]) -> str:
    rows = [f"{'ID':38} {'ROLE':9} {'NAME':20} {'EXPIRES':27} LAST USED"]
    for t in result["tokens"]:
        rows.append(
            f"{t['id']:38} {t['role']:9} {t['name'][:20]:20} {t['expires_at'] or '-':27}"
            f" {t['last_used_at'] or '-'}"
        )
    return "\n".join(rows)


@token.command(name="list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@data_dir_option
@format_option
def list_(include_revoked: bool, data_dir: Path | None, output_format: str) -> None:
    """List tokens (never the tokens themselves)."""
    from aether.server import store_admin

    tokens = store_admin.list_tokens(_settings(data_dir), include_revoked=include_revoked)
    emit({"tokens": tokens}, _render_list)


@token.command(name="revoke")
@click.argument("token_id")
@data_dir_option
@format_option
def revoke(token_id: str, data_dir: Path | None, output_format: str) -> None:
    """Revoke a token by id; it stops working at once."""
    from aether.server import store_admin

    emit(
        store_admin.revoke_token(_settings(data_dir), token_id), lambda r: f"revoked {r['revoked']}"
    )
