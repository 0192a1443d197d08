"""``aether deploy`` as one plain function: pack → existence check → upload → register → follow.

:func:`deploy` is what the CLI calls and what tests call without click. It returns one dict:
the packer's fields plus ``app``, ``deployment_id``, ``status``, ``url``, ``uploaded_bytes``,
``skipped_upload``, the release (``release``, ``config_version``, ``unchanged``,
``one_off_env`` and ``dropped_overrides``: names, never values) and ``timings_ms`` (install,
build, pack, check, upload, register, rollout, total). The build is staged under the cache dir
for the platform ``GET /config`` reports, and the artifact is written there too (``<build
folder>/out/``) unless ``out`` names a place.
Phases are reported through ``on_progress(phase, done, total)``; deployment events through
``on_event(event)``. Nothing here prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

from aether.client.api import ApiClient
from aether.client.follow import EventCallback, follow_deployment
from aether.client.reporting import FinalReport, deploy_report, ms_since
from aether.client.transfer import ProgressCallback, UploadRequest
from aether.client.upload import (
    Opened,
    is_multipart,
    open_upload,
    opened_held,
    upload_artifact,
)
from aether.clientsettings import ClientSettings
from aether.errors import ConfigError, RemoteError, UsageError
from aether.models import (
    Deployment,
    DeploymentCreated,
    DeploymentRequest,
    DeployReport,
    check_app_name,
    check_config_name,
    check_config_value,
    check_environment,
    sanitize_app_name,
)
from aether.pack.artifact_manifest import MANIFEST_REVISION
from aether.pack.target import Target
from aether.userconfig import cache_dir


@dataclass(frozen=True, eq=False, repr=False)
class DeployOptions:
    """Everything ``aether deploy`` takes besides the project folder."""

    app: str | None = None
    wait: bool = True
    dry_run: bool = False
    compression: str = "zstd"
    sbom: bool = True
    env: Mapping[str, str] = field(default_factory=dict)
    start_command: str | None = None
    health_path: str | None = None
    out: Path | None = None  # default: the project's build folder under the cache dir
    install: bool = True  # False: pack the folder as it is (no staged build)
    build: bool = True  # run the build script
    native_check: bool = True
    check: bool = False  # boot the packed artifact locally before uploading
    timeout_secs: float = 180.0
    concurrency: int = 4  # parallel multipart parts
    resume_root: Path | None = None  # default: <cache dir>/uploads
    # None: layered (format 2) when the server takes it, else one archive; False: one archive
    layered: bool | None = None


def resolve_app_name(project_dir: Path, explicit: str | None, settings: ClientSettings) -> str:
    """``--app`` > config ``default_app`` > ``package.json`` name sanitised to a DNS label."""
    if explicit:
        return check_app_name(explicit, error=UsageError)
    if settings.default_app:
        return check_app_name(settings.default_app, error=UsageError)
    from aether.pack import read_package_json

    name = read_package_json(project_dir).get("name")
    return sanitize_app_name(name if isinstance(name, str) else project_dir.resolve().name)


def deploy(
    settings: ClientSettings,
    project_dir: Path,
    options: DeployOptions,
    *,
    environ: Mapping[str, str] | None = None,
    on_progress: ProgressCallback | None = None,
    on_event: EventCallback | None = None,
) -> dict[str, Any]:
    """Pack the project and roll it out (or, with ``dry_run``, say what would happen)."""
    environ = os.environ if environ is None else environ
    api_base, token = _require_credentials(settings)
    app = resolve_app_name(project_dir, options.app, settings)
    started = time.monotonic()
    with ApiClient(api_base, token, allow_insecure_http=settings.allow_insecure_http) as api:
        asked = api.get_later("/config")  # answered while the packer's modules load
        loading_ms = _load_packer()
        config = _preflight(asked(), settings, options)
        preflight_ms = ms_since(started) - loading_ms
        target = Target.from_json(config.get("target"))
        layered = reads_layered(config) and options.layered is not False
        packed, timings = pack_project(
            project_dir, options, settings, environ, on_progress, target=target, layered=layered
        )
        timings["pack"] += loading_ms
        timings["upload"] += preflight_ms
        final = FinalReport(api, started) if config.get("deploy_reports") else None
        run = _Run(options, config, timings, environ, on_progress, on_event, final)
        result = _ship(api, packed, app, run)
        if final is None or not final.sent:  # else the rollout and total end at `running`
            timings["total"] = ms_since(started)
        if final is not None:
            final.finish()
    return {**result, "timings_ms": timings}


def reads_layered(config: dict[str, Any]) -> bool:
    """Whether the server reads the layered artifacts this client writes (an older one gets
    a single-file artifact, which every version reads)."""
    revision = config.get("artifact_manifest_revision")
    return bool(config.get("layered_artifacts")) and (
        isinstance(revision, int) and revision >= MANIFEST_REVISION
    )


def _load_packer() -> float:
    """Import what :func:`pack_project` runs (milliseconds taken): part of the pack, done
    while the server answers the preflight."""
    clock = time.monotonic()
    import aether.pack.build  # noqa: F401
    import aether.pack.staged  # noqa: F401

    return ms_since(clock)


def _preflight(
    config: dict[str, Any], settings: ClientSettings, options: DeployOptions
) -> dict[str, Any]:
    """``GET /config``'s answer, asked before packing: a wrong URL, a bad token or a
    missing signing key fails in milliseconds instead of after the install and pack."""
    if config.get("require_signature") and not settings.signing_key and not options.dry_run:
        raise ConfigError(
            "this control plane deploys only signed artifacts: set AETHER_SIGNING_KEY "
            "(create one with `aether keys generate`) and register its public key with "
            "`aether keys add`"
        )
    if config.get("require_sbom") and not options.dry_run:
        if not options.sbom:
            raise ConfigError(
                "this control plane deploys only artifacts with an SBOM: drop --no-sbom"
            )
        if options.layered is False:
            raise ConfigError(
                "this control plane deploys only artifacts with an SBOM, which a single-file "
                "artifact does not upload: drop --single-file"
            )
    return config


class _Run(NamedTuple):
    """What :func:`_ship` needs of the deploy beyond the artifact and the app."""

    options: DeployOptions
    config: dict[str, Any]
    timings: dict[str, float]
    environ: Mapping[str, str]
    on_progress: ProgressCallback | None
    on_event: EventCallback | None
    final: FinalReport | None


def _ship(api: ApiClient, packed: Any, app: str, run: _Run) -> dict[str, Any]:
    """Existence check → (dry run stops here) → upload → register → follow.

    No request makes sure the app exists first: an artifact held for it means it does, and
    an upload (or the manifest's registration) creates it."""
    options, config, timings, environ, on_progress = run[:5]
    clock = time.monotonic()
    stored, answers, opened = _held(api, packed, app, config, ask_only=options.dry_run)
    timings["upload"] += ms_since(clock)
    result = {**packed.as_json(), "app": app, "skipped_upload": stored, "uploaded_bytes": 0}
    if options.dry_run:
        return {**result, **_dry_run_fields(options, stored)}
    clock = time.monotonic()
    # The manifest goes with the deployment where the server takes it: one round trip less.
    inline = packed.layered and not stored and bool(config.get("inline_manifests"))
    if stored:
        # a run that died between complete and cleanup may have left its resume record
        from aether.client.resume import ResumeStore

        ResumeStore(_resume_root(options, environ)).forget(packed.digest)
    elif packed.layered:
        shipped = _ship_layers(api, packed, app, options, config, environ, on_progress)
        first = shipped(answers=answers, opened=opened, register=not inline)
        result.update(first)
    else:
        result.update(_upload(api, packed, app, options, config, environ, on_progress))
    timings["upload"] += ms_since(clock)
    _phase(on_progress, "register")
    clock = time.monotonic()
    try:
        registered = _register(api, app, packed, options, _reports(config, result, timings), inline)
    except RemoteError as exc:
        if not (inline and exc.http_status == 409):
            raise
        # A layer taken as held (the local layer cache's) is not stored for the app after
        # all: each is asked about, the missing ones uploaded, the manifest registered alone.
        result.update(shipped(presume=False, earlier=first))
        registered = _register(api, app, packed, options, _reports(config, result, timings))
    timings["register"] += ms_since(clock)
    deployment: Deployment = registered
    clock = time.monotonic()
    if run.final is not None and not registered["unchanged"]:  # else an older deployment's
        run.final.arm(registered["id"], result, timings, clock)
    # An unchanged release that already runs has nothing to follow (its events are old).
    if options.wait and not (registered["unchanged"] and registered["status"] == "running"):
        _phase(on_progress, "rollout")
        on_event = run.on_event if run.final is None else run.final.watch(run.on_event)
        deployment = follow_deployment(
            api, registered["id"], on_event=on_event, timeout_secs=options.timeout_secs
        )
        if run.final is None or not run.final.sent:  # else the rollout ended at `running`
            timings["rollout"] = ms_since(clock)
    return {**result, **_deployment_fields(deployment), **_release_fields(registered, options)}


def _ship_layers(
    api: ApiClient,
    packed: Any,
    app: str,
    options: DeployOptions,
    config: dict[str, Any],
    environ: Mapping[str, str],
    on_progress: ProgressCallback | None,
) -> Callable[..., dict[str, Any]]:
    """:func:`aether.client.layers.upload_layered` for this deploy, given the rest."""
    from aether.client.layers import upload_layered

    root = _resume_root(options, environ)

    def shipped(**given: Any) -> dict[str, Any]:
        return upload_layered(
            api, packed, app, config, root, on_progress, concurrency=options.concurrency, **given
        )

    return shipped


def _reports(
    config: Mapping[str, Any], result: Mapping[str, Any], timings: Mapping[str, float]
) -> DeployReport | None:
    return deploy_report(result, timings) if config.get("deploy_reports") else None


def _held(
    api: ApiClient, packed: Any, app: str, config: Mapping[str, Any], *, ask_only: bool
) -> tuple[bool, dict[str, bool], dict[str, Opened]]:
    """Whether the server holds the artifact for ``app``, what it said of each layer asked on
    the way, and the uploads begun. A layered artifact's app layer is asked first: a
    code-only redeploy changed it, so the artifact (whose manifest names it) cannot be held,
    and that answer spares both the manifest's question and the layer's own later on. Unless
    the run only asks (``--dry-run``), the app layer's upload begins at once instead of a
    question: its first request (the whole upload of a small layer, else the presign) says
    whether the server holds it as ``HEAD`` would, with one round trip or more fewer."""
    changed = [layer for layer in packed.layers if layer["name"] == "app"]
    answers: dict[str, bool] = {}
    opened: dict[str, Opened] = {}
    for layer in changed:
        digest = layer["digest"]
        if ask_only or is_multipart(layer["size"], config):
            answers[digest] = api.exists(f"/artifacts/{digest}?app={app}")
            continue
        from aether.client.layers import layer_request

        begun = open_upload(api, layer_request(layer, app), config)
        answers[digest] = opened_held(begun)
        if not answers[digest]:
            opened[digest] = begun
    if changed and not answers[changed[0]["digest"]]:
        return False, answers, opened
    return api.exists(f"/artifacts/{packed.digest}?app={app}"), answers, opened


def _require_credentials(settings: ClientSettings) -> tuple[str, str]:
    if not settings.api_base:
        raise ConfigError(
            "no control plane configured: run `aether login --api URL` or set AETHER_API_BASE"
        )
    if not settings.token:
        raise ConfigError("not logged in: run `aether login`, or set AETHER_TOKEN")
    return settings.api_base, settings.token


def pack_project(
    project_dir: Path,
    options: DeployOptions,
    settings: ClientSettings,
    environ: Mapping[str, str],
    on_progress: ProgressCallback | None,
    *,
    target: Target | None = None,
    layered: bool = False,
) -> tuple[Any, dict[str, float]]:
    """Build the artifact as ``aether pack`` does, for ``target`` (None: this machine), into
    the build folder under the cache dir; also used by ``--pack-only``. With ``check``, boot
    it locally before returning."""
    clock = time.monotonic()  # the packer's imports (compressors, crypto, SBOM) count as pack
    from aether.pack import PackOptions, build_artifact
    from aether.pack.staged import build_folder

    packed = build_artifact(
        project_dir,
        PackOptions(
            out=options.out or build_folder(cache_dir(environ), project_dir) / "out",
            compression=options.compression,
            sbom=options.sbom,
            install=options.install,
            build=options.build,
            target=target,
            native_check=options.native_check,
            start_command=options.start_command,
            require_start=True,
            signing_key=settings.signing_key,
            layered=layered,
        ),
        on_progress=on_progress,
        environ=environ,
    )
    elapsed = ms_since(clock)
    spent = packed.timings_ms
    install, build = float(spent.get("install", 0.0)), float(spent.get("build", 0.0))
    # stage: mirroring the project and finding the cached installs (part of pack)
    timings = {"stage": float(spent.get("stage", 0.0)), "install": install, "build": build}
    timings["pack"] = round(max(elapsed - install - build, 0.0), 1)
    timings.update(check=0.0, upload=0.0, register=0.0, rollout=0.0)
    if options.check:
        timings["check"] = run_check(packed, options, environ, on_progress)
    return packed, timings


def run_check(
    packed: Any,
    options: DeployOptions,
    environ: Mapping[str, str],
    on_progress: ProgressCallback | None,
) -> float:
    """Boot the packed artifact here (``--check``); milliseconds taken."""
    from aether.client.boot import boot_check

    _phase(on_progress, "check")
    clock = time.monotonic()
    boot_check(
        Path(packed.artifact),
        start_command=options.start_command or packed.start_command,
        health_path=options.health_path,
        environ=environ,
        scratch=cache_dir(environ) / "checks",
    )
    return ms_since(clock)


def _upload(
    api: ApiClient,
    packed: Any,
    app: str,
    options: DeployOptions,
    config: dict[str, Any],
    environ: Mapping[str, str],
    on_progress: ProgressCallback | None,
) -> dict[str, Any]:
    _phase(on_progress, "upload", packed.size_bytes)
    uploaded = upload_artifact(
        api,
        UploadRequest(
            artifact=Path(packed.artifact),
            app_name=app,
            digest=packed.digest,
            size_bytes=packed.size_bytes,
            compression=packed.compression,
            signature_hex=packed.signature_hex,
        ),
        config=config,
        resume_root=_resume_root(options, environ),
        on_progress=on_progress,
        concurrency=options.concurrency,
    )
    return {
        "uploaded_bytes": uploaded.uploaded_bytes,
        "skipped_upload": uploaded.skipped,
        "multipart": uploaded.multipart,
        "parts_uploaded": uploaded.parts_uploaded,
        "parts_total": uploaded.parts_total,
        "resumed_upload": uploaded.resumed,
    }


def _register(
    api: ApiClient,
    app: str,
    packed: Any,
    options: DeployOptions,
    report: DeployReport | None = None,
    with_manifest: bool = False,
) -> DeploymentCreated:
    """``POST /deployments``: a release of the artifact with the app's config, idempotent on
    the release's whole tuple on the server; records the Node.js major it was built for and,
    when the server takes reports, what was measured so far. ``with_manifest``: the layered
    artifact's manifest goes with it, registered by the server first."""
    body: DeploymentRequest = {"app_name": app, "artifact_digest": packed.digest}
    if with_manifest:
        from aether.client.layers import manifest_fields

        body.update(manifest_fields(packed))  # type: ignore[typeddict-item]
    if report is not None:
        body["report"] = report
    if options.env:
        body["env"] = dict(options.env)
    start_command = options.start_command or packed.start_command
    if start_command:
        body["start_command"] = start_command
    if options.health_path:
        body["health_path"] = options.health_path
    if packed.node_major is not None:
        body["node_version"] = str(packed.node_major)
    return cast(DeploymentCreated, api.post("/deployments", body))


def _resume_root(options: DeployOptions, environ: Mapping[str, str]) -> Path:
    return options.resume_root or cache_dir(environ) / "uploads"


def _release_fields(registered: DeploymentCreated, options: DeployOptions) -> dict[str, Any]:
    """What the release was: its number, whether it changed anything, which one-off
    variables it has and which of the previous release's it dropped (names only)."""
    return {
        "release": registered.get("release"),
        "config_version": registered.get("config_version"),
        "unchanged": registered["unchanged"],
        "one_off_env": sorted(options.env),
        "dropped_overrides": registered["dropped_overrides"],
    }


def _deployment_fields(deployment: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "deployment_id": deployment.get("id"),
        "status": deployment.get("status"),
        "url": deployment.get("url"),
        "failure_reason": deployment.get("failure_reason"),
    }


def _dry_run_fields(options: DeployOptions, stored: bool) -> dict[str, Any]:
    return {
        "dry_run": True,
        "would_upload": not stored,
        "deployment_id": None,
        "status": None,
        "url": None,
        "one_off_env": sorted(options.env),  # names: values stay out of output and CI logs
        "start_command": options.start_command,
    }


def _phase(on_progress: ProgressCallback | None, phase: str, total: int | None = None) -> None:
    if on_progress is not None:
        on_progress(phase, 0, total)


def parse_env_pairs(pairs: list[str] | tuple[str, ...], *, option: str = "--env") -> dict[str, str]:
    """``KEY=VALUE`` strings → a dict; the value may contain ``=``, the key follows the config
    var name rule (``models.check_config_name``). Errors never repeat a value."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"{option} {key[:60]!r}: expected KEY=VALUE")
        try:
            env[check_config_name(key, error=UsageError)] = check_config_value(
                key, value, error=UsageError
            )
        except UsageError as exc:
            raise UsageError(f"{option}: {exc.message}") from exc
    check_environment(env, error=UsageError)
    return env
