"""``aether verify``: check an artifact against its manifest and, optionally, a public key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aether.cli.output import emit, format_option


@click.command(name="verify")
@click.argument("artifact", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    metavar="HEX",
    help="Ed25519 public key (64 hex chars); checks ARTIFACT.sig against the digest.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Manifest to check against  [default: ARTIFACT.manifest.json]",
)
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Signature file  [default: ARTIFACT.sig]",
)
@format_option
def verify(
    artifact: Path,
    public_key: str | None,
    manifest: Path | None,
    signature: Path | None,
    output_format: str,
) -> None:
    """Check ARTIFACT against its manifest (and signature with --public-key).

    ARTIFACT is an archive, or the app.artifact.json of a layered artifact (then every
    layer in layers/ beside it is checked). Recomputes the digest, reads every entry and
    compares path, size, mode and blake3 with the manifest. Exits 0 with a one-line summary, or 20 naming the first mismatch.

    \b
    Examples:
      aether verify .aether/app.tar.zst
      aether verify app.tar.zst --public-key 3b6a27bc…
    """
    from aether.pack import verify_artifact
    from aether.pack.verify import is_layered, verify_layered

    if is_layered(artifact):
        layered = verify_layered(artifact, public_key_hex=public_key, signature=signature)
        emit(layered.as_json(), render_verify_result)
        return
    report = verify_artifact(
        artifact, manifest=manifest, public_key_hex=public_key, signature=signature
    )
    emit(report.as_json(), render_verify_result)


def render_verify_result(result: dict[str, Any]) -> str:
    signed = {True: ", signature ok", False: ", signature BAD", None: ""}[
        result["signature_verified"]
    ]
    return (
        f"ok: {result['artifact']} sha256:{result['digest']} — {result['files']} files, "
        f"{result['directories']} directories, {result['symlinks']} symlinks{signed}"
    )
