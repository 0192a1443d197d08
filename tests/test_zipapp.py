"""The one file: build ``aether`` with scripts/build-zipapp and run what ships inside it.

The zipapp is built once per session into a temporary directory (``dist/`` is left alone)
and run through its own shebang with the real Python 3.11 first on PATH, unpacking into a
temporary ``SHIV_ROOT``. Nothing from the test virtualenv may leak in: every probe checks
that the modules it used were loaded from the zipapp's extraction.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aether import __version__

ROOT = Path(__file__).resolve().parent.parent
TEST_ONLY = ("moto", "kmock", "kubernetes_validate", "pytest", "flask", "shiv", "boto3", "pip")
BOTOCORE_SERVICES = {"s3", "sts", "sso", "sso-oidc", "signin"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass(frozen=True)
class Zipapp:
    path: Path
    env: dict[str, str]  # PATH with the real python3.11 first, SHIV_ROOT and HOME in tmp
    shiv_root: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.path), *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="session")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Zipapp:
    base = tmp_path_factory.mktemp("zipapp")
    out = base / "aether"
    build = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build-zipapp"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    assert "built" in build.stdout and "files" in build.stdout
    interpreter = Path(getattr(sys, "_base_executable", sys.executable)).resolve().parent
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "XDG_", "SHIV_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("PYTHONPATH", None)
    env = {
        **clean,
        "PATH": f"{interpreter}{os.pathsep}{os.environ.get('PATH', '')}",
        "SHIV_ROOT": str(base / "shiv"),
        "HOME": str(base / "home"),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_CACHE_HOME": str(base / "cache"),
    }
    app = Zipapp(path=out, env=env, shiv_root=base / "shiv")
    first = app.run("--version")  # unpacks and compiles into SHIV_ROOT once
    assert first.returncode == 0, first.stderr
    return app


def test_shebang_names_python_3_11(zipapp: Zipapp) -> None:
    with zipapp.path.open("rb") as handle:
        assert handle.readline() == b"#!/usr/bin/env -S python3.11 -S\n"
    assert os.access(zipapp.path, os.X_OK)


def test_version(zipapp: Zipapp) -> None:
    result = zipapp.run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"aether, version {__version__}"


def test_help_lists_client_server_and_worker_commands(zipapp: Zipapp) -> None:
    result = zipapp.run("--help")
    assert result.returncode == 0, result.stderr
    for name in ("deploy", "login", "logs", "list", "pack", "serve", "worker", "migrate"):
        assert f"\n  {name} " in result.stdout


@pytest.mark.parametrize("command", ["serve", "worker", "deploy", "fetch"])
def test_command_help(zipapp: Zipapp, command: str) -> None:
    result = zipapp.run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: aether {command} [OPTIONS]")


def test_contents_are_the_runtime_set_only(zipapp: Zipapp) -> None:
    with zipfile.ZipFile(zipapp.path) as archive:
        names = archive.namelist()
    tops = {name.split("/")[1] for name in names if name.startswith("site-packages/")}
    assert not [top for top in tops if top.split("-")[0].lower() in TEST_ONLY]
    services = {
        name.split("/")[3]
        for name in names
        if name.startswith("site-packages/botocore/data/") and name.count("/") > 3
    }
    assert services == BOTOCORE_SERVICES
    assert "site-packages/aether/store/migrations/0001_initial.sql" in names
    assert "_bootstrap/__init__.pyc" in names  # the bootstrap ships compiled
    compiled = {"zstandard", "blake3", "psycopg_binary", "cryptography", "yaml", "_cffi_backend"}
    extensions = {name.split("/")[1].split(".")[0] for name in names if name.endswith(".so")}
    assert compiled <= extensions


PROBE = """
import json, sys
import starlette.applications, hypercorn.asyncio, psycopg, psycopg_pool, pykube, requests
import s3fs, aiobotocore.session, zstandard, blake3, prometheus_client, pathspec, cyclonedx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import aether.server.app, aether.worker, aether.kube, aether.blobs.s3, aether.store.postgres
key = Ed25519PrivateKey.generate()
key.public_key().verify(key.sign(b"digest"), b"digest")
used = [starlette, hypercorn, psycopg, pykube, requests, s3fs, zstandard, blake3, aether]
print(json.dumps({
    "files": [module.__file__ for module in used],
    "psycopg_impl": psycopg.pq.__impl__,
    "zstd": zstandard.ZstdDecompressor().decompress(zstandard.ZstdCompressor().compress(b"x")).decode(),
}))
"""


def test_every_stack_imports_from_inside_the_zipapp(zipapp: Zipapp, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    # SHIV_INTERPRETER runs a script inside the zipapp's environment instead of the CLI.
    result = zipapp.run(str(probe), env={**zipapp.env, "SHIV_INTERPRETER": "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["psycopg_impl"] == "binary"
    assert report["zstd"] == "x"
    outside = [f for f in report["files"] if not f.startswith(str(zipapp.shiv_root))]
    assert not outside, f"loaded from outside the zipapp: {outside}"


def test_migrate_on_sqlite(zipapp: Zipapp, tmp_path: Path) -> None:
    result = zipapp.run("migrate", "--data-dir", str(tmp_path / "data"), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["applied"]
    assert (tmp_path / "data").is_dir()


@pytest.mark.postgres
def test_migrate_on_postgresql(zipapp: Zipapp, fresh_postgres_url: str) -> None:
    env = {**zipapp.env, "DATABASE_URL": fresh_postgres_url}
    result = zipapp.run("migrate", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["applied"]
    again = zipapp.run("migrate", "--format", "json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["applied"] == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve_on_s3(zipapp: Zipapp, s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``aether serve`` from the zipapp with S3 storage on moto; yields (base URL, bucket)."""
    port = _free_port()
    bucket = f"zipapp-{uuid.uuid4().hex[:12]}"
    env = {
        **zipapp.env,
        "AETHER_STORAGE_MODE": "s3",
        "AETHER_S3_ENDPOINT_URL": s3_endpoint,
        "AETHER_ARTIFACT_BUCKET": bucket,
        "AETHER_DATA_DIR": str(tmp_path / "data"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [str(zipapp.path), "serve", "--port", str(port), "--no-worker"]
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", bucket
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, log: Path, deadline_secs: float = 90) -> dict:
    deadline = time.monotonic() + deadline_secs
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                pytest.fail(f"serve never became ready:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)  # polling interval while waiting for the listener, not a sync point


def test_serve_with_s3_storage_comes_up(
    serve_on_s3: tuple[str, str], s3_endpoint: str, tmp_path: Path
) -> None:
    url, bucket = serve_on_s3
    assert _wait_ready(url, tmp_path / "serve.log")["status"] == "ready"
    # The store created its bucket at start: botocore's (trimmed) S3 data works in the zipapp.
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    assert bucket in {entry["Name"] for entry in s3.list_buckets()["Buckets"]}
