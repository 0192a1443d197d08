"""The fault suite's harness: real ``aether serve`` stacks, artifacts made on the spot, the API
spoken over HTTP the way any client speaks it, polling with deadlines, and a ledger of figures.

A *stack* is one of the two shapes the suite runs on: ``sqlite`` (SQLite + the local blob
store) or ``postgres-s3`` (PostgreSQL + S3 on moto's server). :func:`stack_server` starts one
(``restart`` brings a killed one back on the same data, database, bucket and port).

Figures: tests call ``ledger.record(test, **numbers)``; with ``AETHER_FAULT_REPORT=path`` set,
the session writes them there as JSON lines (docs/reliability.md quotes such a run).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import zstandard

from plugins.live_server import LiveServer, start_live_server, stop_apps
from plugins.polling import wait_for  # noqa: F401  (the fault tests import it from here)

PLAIN_APP = Path(__file__).parents[1] / "worker" / "fixtures" / "plain-app"
ADMIN_PG = os.environ.get(
    "AETHER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# --- stacks ------------------------------------------------------------------------------------


@dataclass
class Stack:
    kind: str  # sqlite | postgres-s3
    root: Path
    env: dict[str, str]
    database_url: str | None
    args: tuple[str, ...]
    server: LiveServer | None = None

    def start(self) -> LiveServer:
        port = self.server.port if self.server else None
        token = self.server.admin_token if self.server else None
        env = {**self.env, **({"AETHER_API_TOKEN": token} if token else {})}
        self.server = start_live_server(
            self.root, env=env, database_url=self.database_url, args=self.args, port=port
        )
        if token:
            self.server.admin_token = token
        return self.server

    def stop(self) -> None:
        """Stop the server, then the apps its worker (or any other) started from its data dir:
        they outlive both by design."""
        if self.server is not None:
            self.server.stop()
            stop_apps(self.server.data_dir)

    @property
    def postgres(self) -> bool:
        return self.kind == "postgres-s3"


def stack_env(kind: str, s3_endpoint: str | None) -> dict[str, str]:
    if kind == "sqlite":
        return {}
    assert s3_endpoint is not None
    return {
        **_FAKE_AWS,
        "AETHER_STORAGE_MODE": "s3",
        "AETHER_S3_ENDPOINT_URL": s3_endpoint,
        "AETHER_ARTIFACT_BUCKET": f"faults-{uuid.uuid4().hex[:12]}",
    }


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards, connections and all)."""
    import psycopg

    name = f"aether_fault_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_PG.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the API over HTTP -------------------------------------------------------------------------


class Api:
    """JSON calls to one server with its admin token (``verify`` for HTTPS)."""

    def __init__(self, server: LiveServer, *, timeout: float = 15.0) -> None:
        self.server, self.timeout = server, timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.admin_token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.server.url + path, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code < 300, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json()

    def upload(self, app: str, artifact: Path) -> str:
        """presign → PUT → complete, as the CLI does for a single-part upload; the digest."""
        body = artifact.read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        announce = {"app_name": app, "digest": digest, "size_bytes": len(body)}
        presigned = self.json("POST", "/artifacts/presign", json=announce)
        if presigned["method"] == "PUT":
            put = requests.put(
                presigned["upload_url"], data=body, headers=presigned["headers"], timeout=60
            )
            assert put.status_code == 200, put.text
        self.json("POST", "/artifacts/complete", json=announce)
        return digest

    def deploy(self, app: str, digest: str, **fields: Any) -> dict[str, Any]:
        body = {"app_name": app, "artifact_digest": digest, **fields}
        return self.json("POST", "/deployments", json=body)

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        return self.json("GET", f"/deployments/{deployment_id}")

    def settled(self, deployment_id: str) -> dict[str, Any] | None:
        row = self.deployment(deployment_id)
        return row if row["status"] in ("running", "failed", "superseded") else None


# --- artifacts ---------------------------------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes | None]


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **fields: Any) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = fields.pop("mode", 0o644)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info, (data if kind == tarfile.REGTYPE else None)


def app_members(version: str) -> list[Member]:
    """The dependency-free test app (its package.json says ``version``)."""
    package = json.loads((PLAIN_APP / "package.json").read_text())
    package["version"] = version
    return [
        member("package.json", json.dumps(package).encode()),
        member("server.js", (PLAIN_APP / "server.js").read_bytes()),
    ]


def write_artifact(path: Path, members: list[Member]) -> Path:
    """A .tar.zst of ``members`` in order (hostile ones included: nothing is checked here)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


def zeros_bomb(path: Path, size: int, prefix: tuple[Member, ...] = ()) -> Path:
    """``prefix`` then one file of ``size`` zero bytes: a few KB of zstd per GB, streamed."""
    info = tarfile.TarInfo("zeros.bin")
    info.size, info.mode = size, 0o644
    with path.open("wb") as out, zstandard.ZstdCompressor().stream_writer(out) as sink:
        for head, data in (*prefix, (info, None)):
            sink.write(head.tobuf(format=tarfile.PAX_FORMAT))
            if data:
                sink.write(data + b"\0" * (-len(data) % 512))
        block = bytes(1 << 20)
        for _ in range(size // len(block)):
            sink.write(block)
        sink.write(bytes(size % len(block)) + b"\0" * (-size % 512) + b"\0" * 1024)
    return path


def data_usage(folder: Path) -> int:
    """Bytes of regular files under ``folder`` (what an extraction left behind)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


# --- figures -----------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Numbers a fault test measured (requests tried, faults injected, recovery times)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self, test: str, **numbers: Any) -> None:
        self.rows.append({"test": test, **numbers})

    def write(self, environ: Mapping[str, str]) -> None:
        target = environ.get("AETHER_FAULT_REPORT")
        if not target or not self.rows:
            return
        with open(target, "a", encoding="utf-8") as out:
            for row in self.rows:
                out.write(json.dumps(row, sort_keys=True) + "\n")


LEDGER = Ledger()
