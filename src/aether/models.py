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

# Extra JSON-schema keywords ride on Annotated metadata as plain dicts.
Digest = Annotated[str, {"pattern": DIGEST_RE.pattern}]
Replicas = Annotated[int, {"minimum": 1, "maximum": MAX_REPLICAS}]


class App(TypedDict):
    """``POST /apps`` answers one."""

    id: str
    name: str
    owner: str | None
    created_at: str
    url: str  # where the app answers


class Deployment(TypedDict):
    """A deployment as the API shows it (``GET /deployments/{id}``, listings, create,
    rollback). Keys in this order: the listing's query names its columns after them."""

    id: str
    app_name: str
    artifact_digest: str
    status: DeploymentStatus
    runtime: str
    node_version: str | None  # the Node.js major it was built for ("20"); None: not recorded
    start_command: str | None
    env: dict[str, str]
    replicas: int
    health_path: str | None
    failure_reason: str | None
    endpoint: str | None
    url: str
    rolled_back_from: str | None
    created_at: str
    rollout_started_at: str | None
    rollout_completed_at: str | None


class AppWithCurrent(App):
    """``GET /apps`` and ``GET /apps/{app}``: the app and its newest running deployment."""

    current: NotRequired[Deployment | None]  # always sent; optional in the published schema


class DeploymentRequest(TypedDict):
    """The body of ``POST /deployments``."""

    app_name: str
    artifact_digest: str
    runtime: NotRequired[str]
    node_version: NotRequired[str | None]  # the Node.js major the artifact was built for
    start_command: NotRequired[str | None]
    env: NotRequired[dict[str, str] | None]
    replicas: NotRequired[Replicas]
    health_path: NotRequired[str | None]


class DeploymentPage(TypedDict):
    """``GET /apps/{app}/deployments``: newest first; ``next_cursor`` continues."""

    deployments: list[Deployment]
    next_cursor: str | None


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


def is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(DIGEST_RE.match(value))


def check_app_name(name: object, *, error: type[AetherError] = BadRequest) -> str:
    """``name`` when it is an app name; else ``error`` (the API's 400, the CLI's usage error)."""
    if not isinstance(name, str) or not APP_NAME_RE.match(name):
        raise error(
            f"invalid app name {name!r}: use 1-63 lowercase letters, digits and '-',"
            " starting and ending with a letter or digit (a DNS-1123 label)"
        )
    return name


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
        "artifact_digest": row["artifact_digest"],
        "status": row["status"],
        "runtime": row["runtime"],
        "node_version": row["node_version"],
        "start_command": row["start_command"],
        "env": env if isinstance(env, dict) else json.loads(env or "{}"),
        "replicas": row["replicas"],
        "health_path": row["health_path"],
        "failure_reason": row["failure_reason"],
        "endpoint": row["endpoint"],
        "url": url,
        "rolled_back_from": row["rolled_back_from"],
        "created_at": row["created_at"],
        "rollout_started_at": row["rollout_started_at"],
        "rollout_completed_at": row["rollout_completed_at"],
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
