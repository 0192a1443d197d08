"""The Linux x86-64 file, run the way a user runs it, under each supported Python.

``./aether-linux-x86_64 …`` with each of python3.11, 3.12 and 3.13 first on PATH (the
file's own first lines pick ``python3``), and ``python3.X aether-linux-x86_64 …``. One
unpack folder serves all three: the file carries compiled parts and bytecode for each.
Nothing from the test virtualenv may leak in: probes check where modules came from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dist_support import ROOT, Installed, Release, payload, user_env

from aether import __version__
from onefile import interpreters
from onefile.archive import build_info as archive_info
from onefile.platforms import PYTHONS
from plugins.live_server import free_port, stop_process, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
VERSIONS = [f"{a}.{b}" for a, b in PYTHONS]
TEST_ONLY = ("moto", "kmock", "kubernetes_validate", "pytest", "flask", "shiv", "boto3", "pip")
BOTOCORE_SERVICES = {"s3", "sts", "sso", "sso-oidc", "signin"}
EXAMPLE = ROOT / "examples" / "hello-node"


@pytest.fixture(scope="session")
def host_file(release: Release) -> Path:
    return release.file("linux-x86_64")


@pytest.fixture(scope="session")
def unpack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("unpacked")


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HOME for every interpreter: npm's install cache is filled once."""
    return tmp_path_factory.mktemp("user")


def installed(host_file: Path, python: Path, home: Path, unpack_dir: Path) -> Installed:
    env = {**user_env(home, python), "AETHER_UNPACK_DIR": str(unpack_dir)}
    return Installed(path=host_file, python=python, env=env)


@pytest.fixture(params=VERSIONS)
def aether(
    request: pytest.FixtureRequest,
    host_file: Path,
    pythons: dict,
    shared_home: Path,
    unpack_dir: Path,
) -> Installed:
    """The host file run with one supported interpreter as ``python3``."""
    version = tuple(int(part) for part in request.param.split("."))
    return installed(host_file, pythons[version], shared_home, unpack_dir)


def test_the_file_starts_python3_from_a_shell_line(host_file: Path) -> None:
    with host_file.open("rb") as handle:
        assert handle.readline() == b"#!/bin/sh\n"
    assert host_file.stat().st_mode & 0o777 == 0o755


def test_version_and_help(aether: Installed) -> None:
    version = aether.run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"aether, version {__version__}\n"
    helped = aether.run("--help")
    assert helped.returncode == 0, helped.stderr
    for name in ("deploy", "login", "logs", "list", "pack", "serve", "worker", "migrate"):
        assert f"\n  {name} " in helped.stdout


def test_python3_x_runs_the_file_too(aether: Installed) -> None:
    done = subprocess.run(
        [str(aether.python), str(aether.path), "serve", "--help"],
        env=aether.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: aether serve [OPTIONS]")


@pytest.mark.parametrize("columns", ["40", "72", "80", "100", "160"])
def test_help_is_what_click_prints_at_every_width(
    host_file: Path, pythons: dict, shared_home: Path, unpack_dir: Path, columns: str
) -> None:
    """The file answers --help from texts rendered at build time; click renders it here."""
    app = installed(host_file, pythons[PYTHONS[0]], shared_home, unpack_dir)
    env = {**app.env, "COLUMNS": columns}
    from_file = app.run("--help", env=env)
    by_click = subprocess.run(
        [sys.executable, "-c", "from aether.cli import main; main(['--help'])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert from_file.returncode == by_click.returncode == 0
    assert from_file.stdout == by_click.stdout


def test_each_python_loads_its_own_compiled_parts(aether: Installed, unpack_dir: Path) -> None:
    """Every stack imports from the unpacked build, with the C versions of what has one."""
    aether.run("--version")  # unpacks, if no other test did yet
    (folder,) = [path for path in unpack_dir.iterdir() if path.is_dir()]
    probe = f"""
import json, sys
sys.path.append({str(folder)!r})
import starlette.applications, hypercorn.asyncio, psycopg, psycopg_pool, pykube, requests
import s3fs, aiobotocore.session, zstandard, blake3, orjson, yaml, prometheus_client, pathspec
import aether.server.app, aether.worker, aether.kube, aether.blobs.s3, aether.store.postgres
import aether.pack.batchread, aether.pack.walk
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.generate()
key.public_key().verify(key.sign(b"digest"), b"digest")
used = [starlette, hypercorn, psycopg, pykube, requests, s3fs, zstandard, blake3, orjson, aether]
print(json.dumps({{
    "files": [module.__file__ for module in used],
    "psycopg": psycopg.pq.__impl__,
    "zstandard": zstandard.backend,
    "native_reader": aether.pack.batchread.native_read_batch is not None,
    "native_walk": aether.pack.walk.scan_folder_native is not None,
}}))
"""
    done = subprocess.run(
        [str(aether.python), "-S", "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["psycopg"] == "binary"
    assert report["zstandard"] == "cext"
    assert report["native_reader"] and report["native_walk"]
    assert not [f for f in report["files"] if not f.startswith(str(folder))]


def test_bytecode_ships_for_every_version(host_file: Path) -> None:
    """Every module has a .pyc for each version: no start compiles, even where nothing can be
    written (a read-only image, PYTHONDONTWRITEBYTECODE)."""
    with zipfile.ZipFile(host_file) as archive:
        entries = set(archive.namelist())
    assert {f"_aether_main_{a}{b}.pyc" for a, b in PYTHONS} < entries  # the entry, precompiled
    names = {member.name for member in payload(host_file)}
    skipped = archive_info(host_file)["not_compiled"]
    sources = [name for name in names if name.endswith(".py")]
    assert len(sources) > 1000
    for a, b in PYTHONS:
        missing = [
            source
            for source in sources
            if source not in skipped[f"{a}.{b}"] and pyc_name(source, f"{a}{b}") not in names
        ]
        assert not missing, f"no .pyc for {a}.{b}: {missing[:5]}"
        assert len(skipped[f"{a}.{b}"]) < 5  # sources written for another Python version


def pyc_name(source: str, version: str) -> str:
    """``a/b.py`` -> ``a/__pycache__/b.cpython-312.pyc``."""
    folder, _, name = source.rpartition("/")
    return f"{folder}/__pycache__/{name.removesuffix('.py')}.cpython-{version}.pyc".lstrip("/")


def test_contents_are_the_runtime_set_only(host_file: Path) -> None:
    names = [member.name for member in payload(host_file)]
    tops = {name.split("/")[0].split("-")[0].lower() for name in names}
    assert not [top for top in tops if top in TEST_ONLY]
    services = {
        n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") > 2
    }
    assert services == BOTOCORE_SERVICES
    assert "aether/store/migrations/0001_initial.sql" in names
    assert not [name for name in names if name.startswith("zstandard/_cffi.")]


def test_pack_gives_one_digest_on_every_python(
    host_file: Path, pythons: dict, shared_home: Path, unpack_dir: Path, tmp_path: Path
) -> None:
    """The artifact must not depend on the Python that packed it, nor on the venv's build."""
    project = tmp_path / "hello-node"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("node_modules", ".aether"))
    digests = {}
    for version, python in pythons.items():
        app = installed(host_file, python, shared_home, unpack_dir)
        out = tmp_path / f"cp{version[0]}{version[1]}"
        packed = app.run("pack", str(project), "--out", str(out), "--format", "json")
        assert packed.returncode == 0, packed.stderr
        result = json.loads(packed.stdout)
        artifact = Path(result["artifact"])
        checked = app.run("verify", str(artifact), "--format", "json")
        assert checked.returncode == 0, checked.stderr
        assert json.loads(checked.stdout)["digest"] == result["digest"]
        digests[version] = result["digest"]
    venv = subprocess.run(
        [sys.executable, "-m", "aether", "pack", str(project), "--out", str(tmp_path / "venv")]
        + ["--format", "json"],
        env=app.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert venv.returncode == 0, venv.stderr
    assert set(digests.values()) == {json.loads(venv.stdout)["digest"]}, digests


@pytest.fixture
def served(aether: Installed, tmp_path: Path) -> Iterator[tuple[Installed, str, int]]:
    """``aether serve`` (embedded: SQLite, local runtime) from the file; yields its env and URL."""
    port = free_port()
    env = {**aether.env, "AETHER_LOG_FORMAT": "json"}
    log = tmp_path / "serve.log"
    args = ("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    process = aether.popen(*args, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield aether, url, port
    finally:
        stop_process(process)
        # Apps outlive the server by design; the file's own command stops them.
        stopped = aether.run("worker", "--stop-apps", "--data-dir", str(tmp_path / "data"))
        assert stopped.returncode == 0, stopped.stderr


def test_serve_then_deploy_the_example(served: tuple[Installed, str, int], tmp_path: Path) -> None:
    """The quickstart on each Python: the token serve wrote lets deploy talk to it at once."""
    aether, url, port = served
    project = tmp_path / "hello-node"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("node_modules", ".aether"))
    env = {**aether.env, "AETHER_API_BASE": url}
    deployed = aether.run("deploy", str(project), "--format", "json", env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout)["status"] == "running"
    request = urllib.request.Request(f"{url}/", headers={"Host": f"hello-node.localhost:{port}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    listed = aether.run("list", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "hello-node" in listed.stdout


def test_a_wrong_python_gets_one_line(host_file: Path, shared_home: Path, tmp_path: Path) -> None:
    try:
        old = interpreters.find((3, 10))
    except interpreters.MissingInterpreter:
        pytest.skip("no Python 3.10 installed here")
    env = {**user_env(shared_home, old), "AETHER_UNPACK_DIR": str(tmp_path / "unpacked")}
    done = subprocess.run(
        [str(host_file), "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 10
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        "aether: error: aether-linux-x86_64 needs CPython 3.11, 3.12 or 3.13 on Linux x86-64 "
        "(glibc 2.17+); found CPython 3.10."
    )
    assert not (tmp_path / "unpacked").exists()  # refused before anything was unpacked


def test_no_python3_on_path_gets_one_line(host_file: Path, tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(host_file), "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 10
    assert done.stderr == (
        "aether: error: aether-linux-x86_64 needs CPython 3.11, 3.12 or 3.13 on Linux x86-64 "
        "(glibc 2.17+); found no python3 on PATH (or set AETHER_PYTHON)\n"
    )


def test_aether_python_picks_the_interpreter(aether: Installed, tmp_path: Path) -> None:
    env = {**aether.env, "PATH": str(tmp_path), "AETHER_PYTHON": str(aether.python)}
    done = aether.run("--version", env=env)
    assert done.returncode == 0, done.stderr


def test_an_unwritable_unpack_folder_gets_one_line(aether: Installed, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = aether.run("--version", env={**aether.env, "AETHER_UNPACK_DIR": str(blocker / "x")})
    assert done.returncode == 30
    assert done.stderr.startswith(f"aether: error: cannot unpack into {blocker / 'x'}: ")
    assert done.stderr.endswith("; set AETHER_UNPACK_DIR to a writable folder\n")


def test_list_against_an_unreachable_server_names_the_url(aether: Installed) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**aether.env, "AETHER_API_BASE": url, "AETHER_TOKEN": "ae_test_unused"}
    started = time.monotonic()
    done = aether.run("list", env=env)
    assert done.returncode == 40
    assert f"GET {url}/apps failed: connection refused" in done.stderr
    assert time.monotonic() - started < 60  # bounded retries, not a hang (speed: benchmark)


def test_python_files_in_the_working_folder_are_not_imported(
    aether: Installed, tmp_path: Path
) -> None:
    """``python3 -c`` starts ``sys.path`` with the working folder: the shell lines drop it, so
    a project's own ``typing.py`` never stands in for the standard library's."""
    for name in ("typing", "json", "socket"):
        (tmp_path / f"{name}.py").write_text(f"raise SystemExit('{name}.py of the project')\n")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**aether.env, "AETHER_API_BASE": url, "AETHER_TOKEN": "ae_test_unused"}
    done = aether.run("list", env=env, cwd=tmp_path)
    assert done.returncode == 40, done.stderr
    assert f"GET {url}/apps failed: connection refused" in done.stderr


def test_migrate_on_sqlite(aether: Installed, tmp_path: Path) -> None:
    done = aether.run("migrate", "--data-dir", str(tmp_path / "data"), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"]


@pytest.mark.postgres
def test_migrate_on_postgresql(
    host_file: Path, pythons: dict, shared_home: Path, unpack_dir: Path, fresh_postgres_url: str
) -> None:
    app = installed(host_file, pythons[PYTHONS[-1]], shared_home, unpack_dir)
    env = {**app.env, "DATABASE_URL": fresh_postgres_url}
    done = app.run("migrate", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"]
    again = app.run("migrate", "--format", "json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["applied"] == []


def test_serve_with_s3_storage_comes_up(
    host_file: Path,
    pythons: dict,
    shared_home: Path,
    unpack_dir: Path,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    app = installed(host_file, pythons[PYTHONS[-1]], shared_home, unpack_dir)
    bucket = f"zipapp-{uuid.uuid4().hex[:12]}"
    env = {
        **app.env,
        "AETHER_STORAGE_MODE": "s3",
        "AETHER_S3_ENDPOINT_URL": s3_endpoint,
        "AETHER_ARTIFACT_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    port, log = free_port(), tmp_path / "serve.log"
    args = ("serve", "--port", str(port), "--no-worker", "--data-dir", str(tmp_path / "data"))
    process = app.popen(*args, env=env, log=log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
    finally:
        stop_process(process)
    # The store created its bucket at start: botocore's (trimmed) S3 data works in the file.
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    assert bucket in {entry["Name"] for entry in s3.list_buckets()["Buckets"]}
