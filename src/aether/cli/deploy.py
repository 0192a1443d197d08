"""``aether deploy``: parse, call :func:`aether.client.deploy.deploy`, render the result."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import click

from aether.cli.buildflags import staged_build_options
from aether.cli.connection import rollout_timeout_option, token_option
from aether.cli.output import emit, format_option


@click.command(name="deploy")
@click.argument(
    "path", default=".", type=click.Path(file_okay=False, path_type=Path), required=False
)
@click.option(
    "--app", metavar="NAME", help="App name (default: config default_app, then package.json name)."
)
@click.option("--no-wait", is_flag=True, help="Return once the deployment is registered.")
@click.option(
    "--cancel",
    "cancel_id",
    metavar="DEPLOYMENT_ID",
    help="Cancel a pending deployment no worker has taken yet (nothing is built).",
)
@click.option(
    "--dry-run", is_flag=True, help="Pack and check the server; upload and deploy nothing."
)
@click.option("--pack-only", is_flag=True, help="Only build the artifact (like `aether pack`).")
@click.option(
    "--compression", type=click.Choice(("zstd", "gzip")), default="zstd", show_default=True
)
@click.option("--no-sbom", is_flag=True, help="Skip the CycloneDX SBOM.")
@click.option(
    "--layered/--single-file",
    "layered",
    default=None,
    help="Layered artifact (deps and app layers; the default where the server takes it: a "
    "code-only redeploy uploads only the app layer) or one self-contained archive.",
)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A one-off variable for this release only (repeatable); `aether config set` keeps"
    " one for every release.",
)
@click.option(
    "--start-command", metavar="CMD", help="Command that starts the app (default: npm start)."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    metavar="DIR|FILE",
    help="Where the artifact goes  [default: the project's build folder in the cache dir]",
)
@staged_build_options
@rollout_timeout_option
@token_option
@format_option
def deploy(
    path: Path,
    app: str | None,
    no_wait: bool,
    cancel_id: str | None,
    dry_run: bool,
    pack_only: bool,
    compression: str,
    no_sbom: bool,
    layered: bool | None,
    env_pairs: tuple[str, ...],
    start_command: str | None,
    out: Path | None,
    no_build: bool,
    no_install: bool,
    no_native_check: bool,
    check: bool,
    health_path: str | None,
    timeout_secs: float,
    token: str | None,
    output_format: str,
) -> None:
    """Build, pack, upload and roll out the Node.js app at PATH (default: .).

    The build runs in a copy of the project under the cache dir, never in PATH itself: the
    full install and the `build` script of package.json, then the production dependencies
    for the server's platform (cached until the lockfile, package manager, platform or
    Node.js major change). Native files that could not run on the server stop the deploy
    before the upload. PATH may be a workspace package (aether deploy packages/api).

    The upload is skipped when the server already holds an artifact with the same digest.
    The release takes the app's config vars (`aether config`). Deploying the release the
    app already runs — same code, config, --env, start command, scale and health check —
    changes nothing and says so. Prints the app's URL once the deployment is running; a
    failed rollout exits 20.

    \b
    Examples:
      aether deploy                         # build, upload, roll out, print the URL
      aether deploy --check                 # boot it here first (PORT set)
      aether deploy packages/api --app api  # one package of a workspace
      aether deploy --cancel DEPLOYMENT_ID  # stop a pending deployment nobody waits for
    """
    if cancel_id is not None:
        _cancel(cancel_id, token)
        return
    from aether.cli.progress import Progress
    from aether.client.deploy import DeployOptions, parse_env_pairs
    from aether.clientsettings import ClientSettings

    options = DeployOptions(
        app=app,
        wait=not no_wait,
        dry_run=dry_run,
        compression=compression,
        sbom=not no_sbom,
        env=parse_env_pairs(env_pairs),
        start_command=start_command,
        health_path=health_path,
        out=out,
        install=not no_install,
        build=not no_build,
        native_check=not no_native_check,
        check=check,
        timeout_secs=timeout_secs,
        layered=layered,
    )
    settings = ClientSettings.from_env(os.environ)
    progress = Progress()
    try:
        if pack_only:
            result = _pack_only(path, options, settings, progress)
        else:
            result = _deploy(path, options, settings, token, progress)
    finally:
        progress.close()
    if not pack_only:
        _notices(result)
    emit(result, _render_pack if pack_only else _render_deploy)


def _notices(result: dict[str, Any]) -> None:
    """What a user should know about --env (stderr: stdout carries the result)."""
    release = f"release v{result['release']}" if result.get("release") else "this release"
    said = {
        "one_off_env": "--env {names} applies to {release} only (one-off)",
        "dropped_overrides": "the previous release's one-off --env {names} is not in {release}",
    }
    for field, text in said.items():
        if result.get(field):
            names = ", ".join(result[field])
            click.echo(
                "note: "
                + text.format(names=names, release=release)
                + "; `aether config set` keeps a variable for every release",
                err=True,
            )


ARCHIVE_SUFFIXES = (".tar.zst", ".zst", ".tar.gz", ".tgz", ".gz", ".tar")


def _pack_only(path: Path, options: Any, settings: Any, progress: Any) -> dict[str, Any]:
    from aether.client.deploy import pack_project

    layered = options.layered
    if layered is None:  # as a deploy packs, unless --out names one archive file
        layered = options.out is None or not options.out.name.endswith(ARCHIVE_SUFFIXES)
    packed, _ = pack_project(path, options, settings, os.environ, progress, layered=layered)
    return packed.as_json()


def _cancel(deployment_id: str, token: str | None) -> None:
    from aether.cli.connection import open_api
    from aether.client.apps import cancel_deployment

    with open_api(token) as api:
        done = cancel_deployment(api, deployment_id)
    emit(
        dict(done),
        lambda d: (
            f"cancelled deployment {d.get('id')} of {d.get('app_name')}: "
            f"{d.get('failure_reason') or 'cancelled'}"
        ),
    )


def _deploy(
    path: Path, options: Any, settings: Any, token: str | None, progress: Any
) -> dict[str, Any]:
    from aether.cli.connection import command_credentials
    from aether.client.deploy import deploy as run_deploy

    credentials = command_credentials(token)
    settings = dataclasses.replace(settings, api_base=credentials.api_base, token=credentials.token)
    return run_deploy(
        settings, path, options, environ=os.environ, on_progress=progress, on_event=progress.event
    )


def _render_pack(result: dict[str, Any]) -> str:
    from aether.cli.pack import render_pack_result

    return str(render_pack_result(result))


def _render_deploy(result: dict[str, Any]) -> str:
    size = f"{result['size_bytes']:,} bytes"
    upload = (
        "upload skipped: already stored"
        if result["skipped_upload"]
        else f"uploaded {result['uploaded_bytes']:,} bytes"
    )
    if result.get("dry_run"):
        action = (
            f"would upload {size}"
            if result["would_upload"]
            else "would skip the upload (already stored)"
        )
        return (
            f"Dry run for app {result['app']}: sha256:{result['digest']} ({size}); {action} "
            "and register a deployment."
        )
    release = f"release v{result['release']}" if result.get("release") else "release"
    if result.get("unchanged"):
        headline = (
            f"Unchanged: {result['app']} already runs {release} (same code, config"
            f" v{result.get('config_version') or 0} and settings); nothing was restarted"
        )
    elif result["status"] == "running":
        headline = (
            f"Deployed {result['app']} {release} (deployment {result['deployment_id']}): running"
        )
    else:
        headline = (
            f"Registered {release} of {result['app']} (deployment {result['deployment_id']}): "
            f"{result['status']}; watch it with `aether list --app {result['app']}`"
        )
    lines = [
        headline,
        f"  digest  sha256:{result['digest']} ({size}, {upload})",
        f"  build   {_build_summary(result)}",
        f"  time    {result['timings_ms']['total'] / 1000:.1f}s",
    ]
    if result.get("url"):
        lines.append(f"  url     {result['url']}")
    lines += [f"  warning {warning}" for warning in result.get("warnings") or ()]
    return "\n".join(lines)


def _build_summary(result: dict[str, Any]) -> str:
    from aether.cli.pack import build_summary

    return build_summary(result)
