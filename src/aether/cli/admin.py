"""``aether admin``: operator actions on the secrets key (needs database access and the
same ``AETHER_SECRETS_KEY`` / ``AETHER_SECRETS_KEY_FILE`` as ``aether serve``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from aether.cli.output import emit, format_option

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The server's data dir: its SQLite database and default key file.",
)


def _settings(data_dir: Path | None) -> Any:
    from aether.settings import ServerSettings

    environ = dict(os.environ)
    if data_dir is not None:
        environ["AETHER_DATA_DIR"] = str(data_dir)
    return ServerSettings.from_env(environ)


@click.group()
def admin() -> None:
    """Operator actions on the control plane's secrets key."""


@admin.command(name="rotate-key")
@data_dir_option
@format_option
def rotate_key(data_dir: Path | None, output_format: str) -> None:
    """Seal every config value with a new key, without downtime.

    With a writable key file (the embedded default) this adds a new key to it, makes it
    the key that seals new values, re-seals every stored value and removes the old key;
    servers sharing the file pick the new key up by themselves. With AETHER_SECRETS_KEY
    (or a read-only file), first give every server the new key beside the old one
    (`aether admin new-key` prints one), run this, then remove the old key from them.
    The old key keeps opening values until the rotation completes; running this again
    finishes an interrupted rotation.
    """
    from aether.server import store_admin

    result = store_admin.rotate_secrets_key(_settings(data_dir), say=_say)
    emit(result, _render_rotation)


def _say(line: str) -> None:
    click.echo(line, err=True)


def _render_rotation(result: dict[str, Any]) -> str:
    text = (
        f"rotated: values are sealed with key {result['key_id']} ({result['resealed']} re-sealed)"
    )
    if result["retired"] and not result["removed"]:
        text += (
            f"\nremove the retired key(s) {', '.join(result['retired'])} from every server's "
            "AETHER_SECRETS_KEY / key file at their next restart"
        )
    return text


@admin.command(name="new-key")
def new_key() -> None:
    """Print a new secrets key (base64url, 32 bytes) for AETHER_SECRETS_KEY or a key file."""
    from aether.sealing import key_id, parse_key
    from aether.sealing import new_key as make_key

    key = make_key()
    click.echo(key)
    click.echo(f"(key id {key_id(parse_key(key, where='new key'))})", err=True)


@admin.command(name="keys")
@data_dir_option
@format_option
def keys(data_dir: Path | None, output_format: str) -> None:
    """List the secrets keys the database knows and whether this machine holds each."""
    from aether.server import store_admin

    emit(store_admin.secrets_keys(_settings(data_dir)), _render_keys)


def _render_keys(result: dict[str, Any]) -> str:
    lines = [
        f"key source: {result['source']}",
        f"{'KEY ID':14} {'STATE':9} {'HELD HERE':9} CREATED",
    ]
    for row in result["keys"]:
        held = "yes" if row["held_here"] else "no"
        lines.append(f"{row['key_id']:14} {row['state']:9} {held:9} {row['created_at']}")
    return "\n".join(lines)
