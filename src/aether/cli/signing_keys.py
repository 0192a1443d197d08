"""``aether keys``: create an Ed25519 signing key pair and register public keys with apps."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import click

from aether.cli.connection import open_api, token_option
from aether.cli.output import emit, format_option

# PKCS#8 header for an Ed25519 private key (RFC 8410): SEQUENCE, version 0, OID 1.3.101.112,
# then an OCTET STRING wrapping the 32-byte seed.
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


@click.group(name="keys")
def keys() -> None:
    """Create and register artifact signing keys.

    \b
    aether keys generate --out signing.key   # private seed (0600) + public key
    export AETHER_SIGNING_KEY=signing.key
    aether keys add --app NAME --public-key HEX
    """


@keys.command(name="generate")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the private key as a PEM file (mode 0600) instead of printing it.",
)
@format_option
def generate(out: Path | None, output_format: str) -> None:
    """Create an Ed25519 key pair for signing artifacts."""
    from aether.pack.signing import generate_keypair

    private_hex, public_hex = generate_keypair()
    result: dict[str, Any] = {"public_key_hex": public_hex}
    if out is None:
        result["private_key_hex"] = private_hex
    else:
        write_private_key(out, private_hex)
        result["private_key_file"] = str(out)
    emit(result, _render_generated)


@keys.command(name="add")
@click.option(
    "--app", metavar="NAME", required=True, help="App whose deployments the key may sign."
)
@click.option(
    "--public-key",
    "public_key",
    metavar="HEX",
    required=True,
    help="64 hex chars (from `aether keys generate`).",
)
@token_option
@format_option
def add(app: str, public_key: str, token: str | None, output_format: str) -> None:
    """Register a public key: the server then verifies signed artifacts of APP with it.

    The app is created when it does not exist yet, so a key can be registered before the
    first (signed) deploy.
    """
    from aether.client.apps import add_public_key, ensure_app
    from aether.errors import UsageError
    from aether.models import check_app_name
    from aether.pack.signing import is_valid_public_key

    key = public_key.strip().lower()
    if not is_valid_public_key(key):
        raise UsageError("--public-key must be a 64-hex-char Ed25519 public key")
    with open_api(token) as api:
        _, created = ensure_app(api, check_app_name(app, error=UsageError))
        result = {**add_public_key(api, app, key), "app_created": created}
    emit(result, lambda r: f"Registered key {key[:16]}… for {app}.")


@keys.command(name="list")
@click.option("--app", metavar="NAME", required=True, help="App whose keys to list.")
@token_option
@format_option
def list_keys(app: str, token: str | None, output_format: str) -> None:
    """List an app's registered public keys."""
    from aether.client.apps import list_public_keys
    from aether.errors import UsageError
    from aether.models import check_app_name

    with open_api(token) as api:
        found = list_public_keys(api, check_app_name(app, error=UsageError))
    emit({"app": app, "keys": found}, _render_keys)


def private_key_pem(private_hex: str) -> str:
    """The raw Ed25519 seed as an unencrypted PKCS#8 PEM (what AETHER_SIGNING_KEY accepts)."""
    der = _PKCS8_ED25519_PREFIX + bytes.fromhex(private_hex)
    body = base64.b64encode(der).decode("ascii")
    return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"


def write_private_key(path: Path, private_hex: str) -> None:
    """Create ``path`` with mode 0600 (never overwriting) holding the key as PEM."""
    from aether.errors import IOFailure

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise IOFailure(f"{path} exists; refusing to overwrite a key (remove it first)") from exc
    except OSError as exc:
        raise IOFailure(f"cannot write {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(private_key_pem(private_hex))


def _render_generated(result: dict[str, Any]) -> str:
    lines = [f"public key:  {result['public_key_hex']}"]
    if "private_key_file" in result:
        lines.append(f"private key: written to {result['private_key_file']} (mode 0600)")
    else:
        lines.append(f"private key: {result['private_key_hex']}  (keep it secret)")
    lines.append(
        "Sign deploys with AETHER_SIGNING_KEY=<private key or file>; register with `aether keys add`."
    )
    return "\n".join(lines)


def _render_keys(data: dict[str, Any]) -> str:
    if not data["keys"]:
        return f"No keys registered for {data['app']}."
    return "\n".join(
        f"{key.get('public_key_hex')}  {'active' if key.get('active', True) else 'inactive'}"
        for key in data["keys"]
    )
