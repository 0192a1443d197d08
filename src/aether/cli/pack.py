"""``aether pack``: build the deterministic artifact for a Node.js project, offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from aether.cli.output import emit, format_option


@click.command(name="pack")
@click.argument(
    "path", default=".", required=False, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    metavar="DIR|FILE",
    help="Output folder or artifact file  [default: PATH/.aether/]",
)
@click.option(
    "--compression",
    type=click.Choice(("zstd", "gzip")),
    default="zstd",
    show_default=True,
    help="gzip gives a plain .tar.gz any `tar xzf` reads.",
)
@click.option("--no-sbom", is_flag=True, help="Do not write the CycloneDX SBOM.")
@click.option("--no-install", is_flag=True, help="Pack node_modules as it is; run no installer.")
@click.option(
    "--skip-unsafe",
    is_flag=True,
    help="Warn about and leave out sockets, devices and escaping symlinks instead of failing.",
)
@format_option
def pack(
    path: Path,
    out: Path | None,
    compression: str,
    no_sbom: bool,
    no_install: bool,
    skip_unsafe: bool,
    output_format: str,
) -> None:
    """Build a deterministic artifact for the Node.js project at PATH (default: .).

    Runs `npm ci --omit=dev` first unless node_modules already matches the lockfile, then
    writes the artifact, its manifest, the SBOM and (with AETHER_SIGNING_KEY) a signature.
    Identical inputs give identical bytes and the same digest on any machine.

    \b
    Examples:
      aether pack                        # ./.aether/app.tar.zst
      aether pack app --compression gzip --out dist/
      aether pack --no-install --format json
    """
    from aether.cli.progress import Progress
    from aether.pack import PackOptions, build_artifact
    from aether.settings import ClientSettings

    settings = ClientSettings.from_env(os.environ)
    options = PackOptions(
        out=out,
        compression=compression,
        sbom=not no_sbom,
        install=not no_install,
        signing_key=settings.signing_key,
        skip_unsafe=skip_unsafe,
    )
    progress = Progress()
    try:
        result = build_artifact(path, options, on_progress=progress, environ=os.environ)
    finally:
        progress.close()
    emit(result.as_json(), render_pack_result)


def _size(count: int) -> str:
    from aether.cli.progress import human_bytes

    return human_bytes(count)


def render_pack_result(result_json: dict[str, Any]) -> str:
    """The text form of a pack result (also used by `aether deploy --pack-only`)."""
    timings = result_json.get("timings_ms") or {}
    spent = ", ".join(f"{phase} {ms:.0f} ms" for phase, ms in timings.items())
    lines = [
        f"artifact   {result_json['artifact']}",
        f"digest     sha256:{result_json['digest']}",
        f"size       {_size(result_json['size_bytes'])} {result_json['compression']} "
        f"({result_json['files']} files, {_size(result_json['bytes_in'])} in)",
        f"manifest   {result_json['manifest']}",
        f"sbom       {result_json['sbom'] or '-'}",
        f"signature  {result_json['signature'] or '-'}",
    ]
    if spent:
        lines.append(f"timings    {spent}")
    return "\n".join(lines)
