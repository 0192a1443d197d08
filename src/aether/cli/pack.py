"""``aether pack``: build the deterministic artifact for a Node.js project, offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from aether.cli.buildflags import staged_build_options
from aether.cli.output import emit, format_option

# The last pack's per-file objects, never freed: the CLI ends with os._exit (exit_now), and
# freeing 50,000 records costs ~10 ms. Only one pack's worth is held in a long process.
_KEPT: list[object] = []


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
@click.option(
    "--layered",
    is_flag=True,
    help="Write a layered artifact (format 2: deps and app layers named by "
    "app.artifact.json) instead of one self-contained archive.",
)
@click.option(
    "--platform",
    "platform_text",
    metavar="OS-CPU[-LIBC]",
    help="Build for this platform, e.g. linux-x64-glibc2.36, linux-arm64-musl  [default: this machine]",
)
@click.option(
    "--node",
    "node_major",
    type=click.IntRange(4, 99),
    metavar="MAJOR",
    help="Node.js major the app runs on  [default: the project's, else this machine's]",
)
@click.option("--start-command", metavar="CMD", help="What starts the app (checked; for --check).")
@staged_build_options
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
    layered: bool,
    platform_text: str | None,
    node_major: int | None,
    start_command: str | None,
    no_build: bool,
    no_install: bool,
    no_native_check: bool,
    check: bool,
    health_path: str | None,
    skip_unsafe: bool,
    output_format: str,
) -> None:
    """Build a deterministic artifact for the Node.js project at PATH (default: .).

    Builds in a copy of the project under the cache dir (PATH is only read): the full
    install and the `build` script, then the production dependencies for the platform,
    cached until their inputs change. Then writes the artifact, its manifest, the SBOM and
    (with AETHER_SIGNING_KEY) a signature. Identical inputs give identical bytes and the
    same digest on any machine.

    \b
    Examples:
      aether pack                        # ./.aether/app.tar.zst
      aether pack app --compression gzip --out dist/
      aether pack --platform linux-arm64-glibc2.36 --node 22
      aether pack --check --health-path /healthz
      aether pack --layered --out dist/     # dist/app.artifact.json + dist/layers/
    """
    from aether.cli.progress import Progress
    from aether.clientsettings import ClientSettings
    from aether.pack import PackOptions, build_artifact

    settings = ClientSettings.from_env(os.environ)
    options = PackOptions(
        out=out,
        compression=compression,
        sbom=not no_sbom,
        install=not no_install,
        build=not no_build,
        target=_target(platform_text, node_major),
        native_check=not no_native_check,
        start_command=start_command,
        require_start=check,
        signing_key=settings.signing_key,
        skip_unsafe=skip_unsafe,
        layered=layered,
    )
    progress = Progress()
    try:
        _KEPT.clear()
        result = build_artifact(path, options, on_progress=progress, environ=os.environ, keep=_KEPT)
        payload = result.as_json()
        if check:
            payload["check"] = _boot(result, start_command, health_path, progress)
    finally:
        progress.close()
    emit(payload, render_pack_result)


def _target(platform_text: str | None, node_major: int | None) -> Any:
    if platform_text is None and node_major is None:
        return None
    from aether.pack.target import host_target, parse_target

    target = parse_target(platform_text, source="--platform") if platform_text else host_target()
    return target.with_node(node_major)


def _boot(result: Any, start_command: str | None, health_path: str | None, progress: Any) -> dict:
    from aether.client.boot import boot_check
    from aether.userconfig import cache_dir

    progress("check", 0, None)
    report = boot_check(
        result.artifact,
        start_command=start_command or result.start_command,
        health_path=health_path,
        environ=os.environ,
        scratch=cache_dir(os.environ) / "checks",
    )
    return {"status": report.status, "seconds": report.seconds, "command": report.command}


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
    for layer in result_json.get("layers") or ():
        reused = ", reused" if layer.get("reused") else ""
        lines.append(
            f"layer      {layer['name']:<5} sha256:{layer['digest'][:12]}… "
            f"{_size(layer['size'])} ({layer['files']} files{reused})"
        )
    if result_json.get("build"):
        lines.append(f"build      {build_summary(result_json)}")
    if spent:
        lines.append(f"timings    {spent}")
    if result_json.get("check"):
        check = result_json["check"]
        lines.append(f"check      HTTP {check['status']} after {check['seconds']:.1f}s")
    lines += [f"warning    {warning}" for warning in result_json.get("warnings") or ()]
    return "\n".join(lines)


def build_summary(result: dict[str, Any]) -> str:
    """One line on what the staged build did (also used by `aether deploy`)."""
    build = result.get("build") or {}
    if not build.get("staged"):
        return f"packed the folder as it is, for {build.get('target', '?')}"
    parts = [build.get("package_manager") or "no dependencies"]
    if build.get("built"):
        parts.append("build script run")
    if build.get("deps_reused") is not None:
        parts.append("dependencies " + ("reused" if build["deps_reused"] else "installed"))
    return f"{', '.join(parts)}; for {build.get('target', '?')}"
