"""Wire shapes shared by the client, the server and the worker. Pure: no I/O.

The API's objects are TypedDicts rather than dataclasses: what crosses the wire is a
JSON object, and a TypedDict *is* the plain dict that the store's rows already are, that orjson
encodes and that the client decodes, so the busiest paths (the deployment listing is read from
the database straight into these objects and encoded as it comes) pay nothing for the type,
while mypy checks every key a route writes or the client reads. The server's OpenAPI schemas
are derived from these classes (:func:`aether.server.openapi.schema`), so a field cannot drift
between the route, the store's page, the client and the document.
"""

# No ``from __future__ import annotations`` here: on Python 3.11 a TypedDict sees NotRequired
# only in evaluated annotations.
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from aether.errors import AetherError, BadRequest

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
# DNS-1123 label: what Kubernetes accepts as a Service name and a Host-header label.
APP_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

DeploymentStatus = Literal["pending", "deploying", "running", "failed", "superseded"]
DEPLOYMENT_STATUSES: tuple[DeploymentStatus, ...] = (
    "pending",
    "deploying",
    "running",
    "failed",
    "superseded",
)
TERMINAL_STATUSES: tuple[DeploymentStatus, ...] = ("running", "failed", "superseded")
ROLES = ("admin", "deployer", "reader")
MAX_REPLICAS = 100

# Config vars (docs/architecture.md, "Releases and config"): POSIX environment names, and
# sizes far below what a process environment (128 KiB per string on Linux) or a Kubernetes
# Secret (1 MiB) holds.
CONFIG_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_CONFIG_VARS = 500
MAX_CONFIG_NAME_CHARS = 256
MAX_CONFIG_VALUE_BYTES = 32 * 1024
MAX_CONFIG_TOTAL_BYTES = 256 * 1024  # names and values of one release's environment
# Set by Aether in every release; a config var cannot replace them.
RESERVED_CONFIG_NAMES = frozenset({"PORT", "HOME", "TMPDIR"})
RESERVED_CONFIG_PREFIX = "AETHER_"
# The phases of a deploy that ``aether deploy`` times and reports (DeployReport), in order.
REPORT_PHASES = ("install", "build", "pack", "check", "upload", "register", "rollout")
MAX_PHASE_MS = 86_400_000  # a day: anything longer is not a measurement of one deploy

# Extra JSON-schema keywords ride on Annotated metadata as plain dicts.
Digest = Annotated[str, {"pattern": DIGEST_RE.pattern}]
Replicas = Annotated[int, {"minimum": 1, "maximum": MAX_REPLICAS}]
# A scale may stop an app and keep it (0): its config and releases stay; scaling up starts it.
ScaleReplicas = Annotated[int, {"minimum": 0, "maximum": MAX_REPLICAS}]


class App(TypedDict):
    """``POST /apps`` answers one."""

    id: str
    name: str
    owner: str | None
    created_at: str
    url: str  # where the app answers


class Deployment(TypedDict):
    """A deployment — the rollout of a release — as the API shows it (``GET
    /deployments/{id}``, listings, create, rollback). ``env`` maps each variable of the
    release's environment to its fingerprint: values never appear here. Keys in this order:
    the listing's query names its columns after them."""

    id: str
    app_name: str
    release: int | None  # the release's number (v3 → 3)
    artifact_digest: str
    config_version: int | None
    status: DeploymentStatus
    runtime: str
    node_version: str | None
    start_command: str | None
    env: dict[str, str]
    replicas: int
    health_path: str | None
    failure_reason: str | None
    endpoint: str | None
    url: str
    rolled_back_from: str | None
    reason: str | None  # "restart": another rollout of the release that ran; else None
    created_at: str
    rollout_started_at: str | None
    rollout_completed_at: str | None


class Instance(TypedDict):
    """One process (local runtime) or pod (Kubernetes) of an app, as its worker last saw it."""

    id: str
    deployment_id: str
    release: int | None
    state: str  # running | starting | restarting | exited | stopped | lost | pending | unknown
    health: str  # healthy | unhealthy | unknown
    restarts: int
    started_at: str | None
    host: str
    worker: str


class WorkerNotice(TypedDict):
    """Whether a worker is looking after the app; ``message`` says what is wrong if not."""

    live: bool
    message: str | None


class AppStatus(TypedDict):
    """``GET /apps/{app}/status`` (``aether ps``/``status``)."""

    app: str
    release: int | None  # the release running now
    replicas: int  # the instances it asks for
    instances: list[Instance]
    last_rollout: Deployment | None  # the newest deployment, whatever its outcome
    worker: WorkerNotice


class AppWithCurrent(App):
    """``GET /apps`` and ``GET /apps/{app}``: the app and its newest running deployment."""

    current: NotRequired[Deployment | None]  # always sent; optional in the published schema


class DeployReport(TypedDict):
    """What ``aether deploy`` measured on the developer's machine for one deployment: the
    time of each phase (``REPORT_PHASES``, and ``total``) in milliseconds and the artifact's
    bytes it uploaded or did not need to. Sent with ``POST /deployments`` and again, final,
    with ``PUT /deployments/{id}/report`` once the rollout was followed. Shown by the
    dashboard and never trusted for anything else: bounded by :func:`check_report`."""

    timings_ms: NotRequired[dict[str, float]]
    uploaded_bytes: NotRequired[int]
    skipped_bytes: NotRequired[int]


class DeploymentRequest(TypedDict):
    """The body of ``POST /deployments``: a release of this artifact with the app's current
    config. ``env`` is a one-off override for this release only; ``replicas`` and
    ``health_path`` keep the current release's when left out."""

    app_name: str
    artifact_digest: str
    runtime: NotRequired[str]
    node_version: NotRequired[str | None]  # the Node.js major it was built for ("20")
    start_command: NotRequired[str | None]
    env: NotRequired[dict[str, str] | None]
    replicas: NotRequired[Replicas]
    health_path: NotRequired[str | None]
    report: NotRequired[DeployReport]  # what the client measured so far (display only)
    # A layered artifact's manifest (its exact text, whose sha256 is artifact_digest) and its
    # signature: registered first, as POST /artifacts/manifests does (GET /config's
    # inline_manifests), so that a redeploy needs one round trip less; the SBOM the manifest
    # names must be stored too (409 otherwise).
    manifest: NotRequired[str]
    signature: NotRequired[str | None]


class DeploymentCreated(Deployment):
    """The answer of ``POST /deployments`` and ``POST /apps/{app}/rollback``: 201 with a new
    release's deployment, or 200 with ``unchanged`` when the app already runs (or rolls out)
    exactly that release."""

    unchanged: bool
    # one-off variables of the app's previous release that this one does not carry
    dropped_overrides: list[str]


class DeploymentPage(TypedDict):
    """``GET /apps/{app}/deployments``: newest first; ``next_cursor`` continues."""

    deployments: list[Deployment]
    next_cursor: str | None


ReleaseKind = Literal["deploy", "config", "scale", "rollback"]


class Restart(TypedDict):
    """One ``aether restart`` of a release: another rollout of it, not a new release."""

    deployment_id: str
    status: DeploymentStatus
    created_by: str | None  # the user's email
    created_at: str


class Release(TypedDict):
    """A release: what an app runs (``GET /apps/{app}/releases``). ``env`` maps each variable
    (config vars and one-off overrides) to its fingerprint; ``overrides`` names the one-off
    ones. ``status`` is that of its newest rollout."""

    id: str
    app_name: str
    version: int
    kind: ReleaseKind
    description: str
    artifact_digest: str
    config_version: int
    env: dict[str, str]
    overrides: list[str]
    runtime: str
    node_version: str | None
    start_command: str | None
    replicas: int
    health_path: str | None
    rolled_back_to: int | None
    created_by: str | None  # the user's email
    created_at: str
    status: DeploymentStatus | None
    deployment_id: str | None
    restarts: int  # how often it was rolled out again by `aether restart`
    restarted: list[Restart]  # those restarts, newest first (the last 10)


class ReleasePage(TypedDict):
    """``GET /apps/{app}/releases``: newest first; ``next_cursor`` continues."""

    releases: list[Release]
    next_cursor: str | None


class AppInfo(AppWithCurrent):
    """``GET /apps/{app}``: the app, its newest running deployment, the release it runs (or
    rolls out; else its newest, failed one) and its config: version and var names (values:
    ``GET /apps/{app}/config``)."""

    release: NotRequired[Release | None]
    config_version: NotRequired[int]
    config_vars: NotRequired[list[str]]


class ConfigVar(TypedDict):
    """A config var: its name and fingerprint; the value only with ``reveal``."""

    name: str
    fingerprint: str
    value: NotRequired[str]


class AppConfig(TypedDict):
    """``GET /apps/{app}/config``: the current config version (0: none yet) and the one the
    desired release runs (None: no release yet); they differ while a change is staged."""

    app_name: str
    version: int
    release_config_version: int | None
    vars: list[ConfigVar]


class ConfigChange(TypedDict):
    """The body of ``PATCH /apps/{app}/config``: one new config version. ``restart`` false
    stages it for the next deploy instead of rolling out a release now."""

    set: NotRequired[dict[str, str]]
    unset: NotRequired[list[str]]
    restart: NotRequired[bool]


class ConfigChanged(TypedDict):
    """The answer of ``PATCH /apps/{app}/config``. ``release`` and ``deployment`` are the new
    release and its rollout (None: nothing changed, the change is staged, or the app has no
    release to restart yet)."""

    config: AppConfig
    changed: list[str]
    not_set: list[str]
    release: Release | None
    deployment: Deployment | None


class ScaleRequest(TypedDict):
    """The body of ``POST /apps/{app}/scale``."""

    replicas: ScaleReplicas


class Rollout(TypedDict):
    """A release and its rollout (``POST /apps/{app}/scale``); ``unchanged`` when the app
    already runs that release."""

    release: Release
    deployment: Deployment
    unchanged: bool


class Event(TypedDict):
    """One step of a rollout (``GET /deployments/{id}/events``, one NDJSON line each)."""

    id: int
    phase: str
    message: str
    timestamp: str


class Artifact(TypedDict):
    """An artifact's metadata (``GET /artifacts/{digest}``, listings)."""

    id: str
    app_name: str
    digest: Digest
    size_bytes: int
    compression: NotRequired[Literal["zstd", "gzip"]]
    runtime: NotRequired[str]
    status: Literal["pending", "stored"]
    storage_key: str
    verified: bool
    signature: NotRequired[str | None]
    created_at: NotRequired[str]
    completed_at: NotRequired[str | None]


def check_report(report: object, *, error: type[AetherError] = BadRequest) -> DeployReport:
    """A client's :class:`DeployReport`, checked field by field: known phases only, each a
    finite number of milliseconds up to a day, byte counts from 0 to 2**53."""
    if not isinstance(report, dict):
        raise error("field 'report' must be an object")
    unknown = sorted(set(report) - {"timings_ms", "uploaded_bytes", "skipped_bytes"})
    if unknown:
        raise error(f"report: unknown field {_shown(unknown[0])}")
    checked: DeployReport = {}
    if "timings_ms" in report:
        checked["timings_ms"] = _check_timings(report["timings_ms"], error)
    for name in ("uploaded_bytes", "skipped_bytes"):
        if name in report:
            value = report[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**53:
                raise error(f"report: {name} must be an integer from 0 to 2**53")
            checked[name] = value
    return checked


def _check_timings(timings: object, error: type[AetherError]) -> dict[str, float]:
    if not isinstance(timings, dict):
        raise error("report: timings_ms must be an object of phase → milliseconds")
    checked: dict[str, float] = {}
    for phase, value in timings.items():
        if phase not in (*REPORT_PHASES, "total"):
            known = ", ".join((*REPORT_PHASES, "total"))
            raise error(f"report: unknown phase {_shown(phase)} (known: {known})")
        number_ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not number_ok or not 0 <= value <= MAX_PHASE_MS:  # NaN fails the comparison too
            raise error(f"report: timings_ms.{phase} must be 0 to {MAX_PHASE_MS} milliseconds")
        checked[phase] = round(float(value), 1)
    return checked


def is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(DIGEST_RE.match(value))


def is_app_name(value: object) -> bool:
    return isinstance(value, str) and bool(APP_NAME_RE.match(value))


def check_app_name(name: object, *, error: type[AetherError] = BadRequest) -> str:
    """``name`` when it is an app name; else ``error`` (the API's 400, the CLI's usage error)."""
    if not isinstance(name, str) or not APP_NAME_RE.match(name):
        raise error(
            f"invalid app name {name!r}: use 1-63 lowercase letters, digits and '-',"
            " starting and ending with a letter or digit (a DNS-1123 label)"
        )
    return name


def check_replicas(
    replicas: int, *, error: type[AetherError] = BadRequest, minimum: int = 1
) -> int:
    """A deploy runs 1 to MAX_REPLICAS; a scale may also stop the app (``minimum=0``)."""
    if isinstance(replicas, bool) or not minimum <= replicas <= MAX_REPLICAS:
        raise error(f"replicas must be between {minimum} and {MAX_REPLICAS}, not {replicas}")
    return replicas


def release_number(text: str) -> int | None:
    """``v3`` or ``3`` → 3; None when ``text`` is not a release number (a deployment id)."""
    digits = text[1:] if text[:1] in ("v", "V") else text
    if digits.isdigit() and len(digits) < 10 and int(digits) >= 1:
        return int(digits)
    return None


def check_config_name(name: object, *, error: type[AetherError] = BadRequest) -> str:
    """``name`` when it may name a config var; else ``error`` saying why."""
    if not isinstance(name, str) or not CONFIG_NAME_RE.match(name):
        raise error(
            f"invalid config var name {_shown(name)}: use letters, digits and '_', not starting"
            " with a digit (a POSIX environment variable name)"
        )
    if len(name) > MAX_CONFIG_NAME_CHARS:
        raise error(f"config var name {_shown(name)} is longer than {MAX_CONFIG_NAME_CHARS}")
    if name in RESERVED_CONFIG_NAMES or name.startswith(RESERVED_CONFIG_PREFIX):
        raise error(
            f"{name} is set by Aether for every release ({', '.join(sorted(RESERVED_CONFIG_NAMES))}"
            f" and {RESERVED_CONFIG_PREFIX}*); choose another name"
        )
    return name


def check_config_value(name: str, value: object, *, error: type[AetherError] = BadRequest) -> str:
    """``value`` when a process environment can hold it. Messages never show the value."""
    if not isinstance(value, str):
        raise error(f"the value of {name} must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise error(f"the value of {name} is not valid Unicode (a lone surrogate)") from exc
    if "\0" in value:
        raise error(f"the value of {name} holds a NUL character, which no environment can hold")
    if size > MAX_CONFIG_VALUE_BYTES:
        raise error(
            f"the value of {name} is {size} bytes; a config var holds at most"
            f" {MAX_CONFIG_VALUE_BYTES} (store large files elsewhere and pass their location)"
        )
    return value


def check_config_vars(
    env: Mapping[str, object], *, error: type[AetherError] = BadRequest
) -> dict[str, str]:
    """Names and values checked one by one (see :func:`check_environment` for the whole)."""
    return {
        check_config_name(name, error=error): check_config_value(name, value, error=error)
        for name, value in env.items()
    }


def check_environment(env: Mapping[str, str], *, error: type[AetherError] = BadRequest) -> None:
    """The bounds on one release's whole environment (config vars and one-off overrides)."""
    if len(env) > MAX_CONFIG_VARS:
        raise error(f"{len(env)} config vars; an app holds at most {MAX_CONFIG_VARS}")
    total = sum(len(k.encode()) + len(v.encode("utf-8")) for k, v in env.items())
    if total > MAX_CONFIG_TOTAL_BYTES:
        raise error(
            f"the config vars take {total} bytes; an app's environment holds at most"
            f" {MAX_CONFIG_TOTAL_BYTES}"
        )


def _shown(name: object) -> str:
    # ascii(): a lone surrogate or control character cannot break the error's JSON or a terminal.
    text = ascii(name[:60] + ("…" if len(name) > 60 else "")) if isinstance(name, str) else "?"
    return text


def sanitize_app_name(raw: str) -> str:
    """A package.json name → a DNS-1123 label (``@acme/My_App`` → ``acme-my-app``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower().lstrip("@")).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:63].strip("-")
    return name or "app"


# --- from the store's rows, whose columns carry the API's names ---------------------------------


def app_from(row: Mapping[str, Any], url: str) -> App:
    return {
        "id": row["id"],
        "name": row["name"],
        "owner": row["owner"],
        "created_at": row["created_at"],
        "url": url,
    }


def deployment_from(row: Mapping[str, Any], url: str) -> Deployment:
    """A deployment row (``env`` decoded or still JSON text) as the API shows it."""
    env = row["env"]
    return {
        "id": row["id"],
        "app_name": row["app_name"],
        "release": row.get("release"),
        "artifact_digest": row["artifact_digest"],
        "config_version": row.get("config_version"),
        "status": row["status"],
        "runtime": row["runtime"],
        "node_version": row.get("node_version"),
        "start_command": row["start_command"],
        "env": env if isinstance(env, dict) else json.loads(env or "{}"),
        "replicas": row["replicas"],
        "health_path": row["health_path"],
        "failure_reason": row["failure_reason"],
        "endpoint": row["endpoint"],
        "url": url,
        "rolled_back_from": row["rolled_back_from"],
        "reason": row.get("reason"),
        "created_at": row["created_at"],
        "rollout_started_at": row["rollout_started_at"],
        "rollout_completed_at": row["rollout_completed_at"],
    }


def release_from(row: Mapping[str, Any]) -> Release:
    """A release row (``env`` and ``overrides`` as the store keeps them) as the API shows it."""
    env, overrides = row["env"], row["overrides"]
    return {
        "id": row["id"],
        "app_name": row["app_name"],
        "version": int(row["version"]),
        "kind": row["kind"],
        "description": row["description"],
        "artifact_digest": row["artifact_digest"],
        "config_version": int(row["config_version"]),
        "env": env if isinstance(env, dict) else json.loads(env or "{}"),
        "overrides": sorted(overrides if isinstance(overrides, dict) else json.loads(overrides)),
        "runtime": row["runtime"],
        "node_version": row["node_version"],
        "start_command": row["start_command"],
        "replicas": int(row["replicas"]),
        "health_path": row["health_path"],
        "rolled_back_to": row["rolled_back_to"],
        "created_by": row.get("created_by_email"),
        "created_at": row["created_at"],
        "status": row.get("status"),
        "deployment_id": row.get("deployment_id"),
        "restarts": int(row.get("restarts") or 0),
        "restarted": [
            {
                "deployment_id": item["deployment_id"],
                "status": item["status"],
                "created_by": item.get("created_by_email"),
                "created_at": item["created_at"],
            }
            for item in row.get("restarted") or ()
        ],
    }


def event_from(row: Mapping[str, Any]) -> Event:
    return {
        "id": row["id"],
        "phase": row["phase"],
        "message": row["message"],
        "timestamp": row["timestamp"],
    }


def artifact_from(row: Mapping[str, Any]) -> Artifact:
    return {
        "id": row["id"],
        "app_name": row["app_name"],
        "digest": row["digest"],
        "size_bytes": int(row["size_bytes"]),
        "compression": row["compression"],
        "runtime": row["runtime"],
        "status": row["status"],
        "storage_key": row["storage_key"],
        "verified": bool(row["verified"]),
        "signature": row["signature"],
        "created_at": row["created_at"],
        "completed_at": row["completed_at"],
    }
