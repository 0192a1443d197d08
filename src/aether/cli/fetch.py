"""``aether fetch``: download, verify and extract one deployment's artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aether.cli.output import emit, format_option


@click.command(name="fetch")
@click.option("--api", "api_url", metavar="URL", help="Control-plane URL (with --deployment).")
@click.option("--deployment", "deployment_id", metavar="ID", help="Deployment to fetch.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File holding the (deployment-scoped) bearer token.",
)
@click.option("--url", metavar="URL", help="Download this URL directly (needs --digest).")
@click.option("--digest", metavar="HEX", help="Expected sha256 of the artifact (64 hex).")
@click.option("--public-key", metavar="HEX", help="Ed25519 public key the signature must verify.")
@click.option("--signature", metavar="HEX", help="Signature to check (default: the deployment's).")
@click.option(
    "--dest",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to extract into: new, or an empty one (e.g. a volume mount).",
)
@click.option("--attempts", type=click.IntRange(1, 20), default=5, show_default=True)
@format_option
def fetch(
    api_url: str | None,
    deployment_id: str | None,
    token_file: Path | None,
    url: str | None,
    digest: str | None,
    public_key: str | None,
    signature: str | None,
    dest: Path,
    attempts: int,
    output_format: str,
) -> None:
    """Download a deployment's artifact, verify it, then extract it.

    The sha256 (and, with --public-key, the signature) is checked before anything is
    extracted; on a mismatch nothing is written and the exit code is 20. Transient network
    errors are retried, each time with a fresh download URL from the control plane.
    DEST/.aether/deployment.json records the digest and deployment id. An archive that would
    expand beyond AETHER_MAX_EXPANDED_BYTES, or more than AETHER_MAX_EXPANSION_RATIO times
    its size, is refused before it fills the disk (exit 20, nothing kept).

    \b
    Examples:
      aether fetch --api http://aether:8080 --deployment ID --token-file /var/run/aether/token --dest /app
      aether fetch --url https://bucket.s3/…/app.tar.zst --digest HEX --dest ./release
    """
    import os

    from aether.client.fetch import FetchRequest
    from aether.client.fetch import fetch as run_fetch
    from aether.settings import ClientSettings, ExpansionLimits

    result = run_fetch(
        FetchRequest(
            dest=dest,
            digest=digest.strip().lower() if digest else None,
            api_url=api_url,
            deployment_id=deployment_id,
            token=_read_token(token_file),
            url=url,
            public_key=public_key,
            signature=signature,
            attempts=attempts,
            allow_insecure_http=ClientSettings.from_env(os.environ).allow_insecure_http,
            limits=ExpansionLimits.from_env(os.environ),
        )
    )
    emit(result.as_json(), _render)


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    from aether.errors import ConfigError

    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from exc
    if not token:
        raise ConfigError(f"the token file {path} is empty")
    return token


def _render(data: dict[str, Any]) -> str:
    checked = "sha256 + signature" if data["signature_verified"] else "sha256"
    return (
        f"Fetched {data['digest'][:12]} ({data['size_bytes']:,} bytes, {checked} ok): "
        f"{data['entries']} entries in {data['dest']} ({data['seconds']:.2f}s)"
    )
