"""pytest plugin: ``live_server``, a factory that runs a real ``aether serve`` process.

    def test_something(live_server, postgres_url):
        server = live_server()                                  # SQLite in a tmp data dir
        server = live_server(database_url=fresh_postgres_url)   # PostgreSQL
        server = live_server(env={"AETHER_REQUIRE_SIGNATURE": "1"}, args=["--no-worker"])
        subprocess.run([... "aether", "list"], env=server.env)  # a client that talks to it

The process gets its own HOME and XDG dirs under tmp, listens on a free loopback port, and
is ready once ``/readyz`` answers 200. With ``bootstrap_token=True`` (default) the admin
token is passed as ``AETHER_API_TOKEN``; with False the server creates the first admin
token itself and the fixture reads it from the session file it wrote. With ``tls=TlsFiles``
(see ``plugins.certs``) it serves HTTPS and the client environment trusts the test CA through
``REQUESTS_CA_BUNDLE``. Every server started through the factory is stopped with SIGTERM at
the end of the test (killed if it hangs).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plugins.certs import TlsFiles

START_DEADLINE_SECS = 60.0
STOP_DEADLINE_SECS = 20.0
# Variables of the outer environment that would change what the server or client does.
_SCRUBBED_PREFIXES = ("AETHER_", "DATABASE_URL", "XDG_", "AWS_")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}


@dataclass
class LiveServer:
    url: str
    port: int
    admin_token: str
    data_dir: Path
    env: dict[str, str]  # for client subprocesses: isolated HOME/XDG, AETHER_API_BASE, AETHER_TOKEN
    process: subprocess.Popen[bytes]
    log_path: Path
    server_env: dict[str, str] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server (SIGTERM: graceful) and return its exit status."""
        return stop_process(self.process, sig)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` (SIGTERM: graceful), wait up to the deadline, then kill; the exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_DEADLINE_SECS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _home_env(root: Path) -> dict[str, str]:
    dirs = {
        "HOME": root / "home",
        "XDG_CONFIG_HOME": root / "home/.config",
        "XDG_CACHE_HOME": root / "home/.cache",
        "XDG_DATA_HOME": root / "home/.local/share",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return {key: str(path) for key, path in dirs.items()}


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    *,
    context: ssl.SSLContext | None = None,
) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"aether serve exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)  # polling interval, bounded by the deadline above
    process.kill()
    process.wait()
    raise RuntimeError(
        f"aether serve not ready after {START_DEADLINE_SECS}s:\n{log_path.read_text()}"
    )


def _session_token(home_env: Mapping[str, str]) -> str:
    import json

    path = Path(home_env["XDG_CACHE_HOME"]) / "aether" / "session.json"
    return json.loads(path.read_text(encoding="utf-8"))["token"]


def start_live_server(
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    database_url: str | None = None,
    bootstrap_token: bool = True,
    args: Sequence[str] = (),
    tls: TlsFiles | None = None,
    port: int | None = None,
) -> LiveServer:
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    data_dir, log_path = root / "data", root / "serve.log"
    home = _home_env(root)
    server_env = {
        **clean_environ(),
        **home,
        "AETHER_LOG_FORMAT": "json",
        # workers started with this environment run fixture apps that listen on loopback
        "AETHER_WORKER_ADVERTISE_ADDR": "127.0.0.1",
    }
    admin_token = f"ae_test_{secrets.token_hex(16)}" if bootstrap_token else ""
    if admin_token:
        server_env["AETHER_API_TOKEN"] = admin_token
    if database_url:
        server_env["DATABASE_URL"] = database_url
    server_env.update(env or {})
    command = [sys.executable, "-m", "aether", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(data_dir), *args]
    trust: dict[str, str] = {}
    context = None
    if tls is not None:
        command += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        trust = {"REQUESTS_CA_BUNDLE": str(tls.ca)}
        context = ssl.create_default_context(cafile=str(tls.ca))
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, env=server_env, stdout=log_file, stderr=log_file)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    wait_ready(url, process, log_path, context=context)
    admin_token = admin_token or _session_token(home)
    client_env = {
        **clean_environ(),
        **home,
        **trust,
        "AETHER_API_BASE": url,
        "AETHER_TOKEN": admin_token,
    }
    return LiveServer(url, port, admin_token, data_dir, client_env, process, log_path, server_env)


@pytest.fixture
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """A factory: ``live_server(env=…, database_url=…, bootstrap_token=…, args=…)``."""
    started: list[LiveServer] = []

    def start(**kwargs: object) -> LiveServer:
        root = tmp_path_factory.mktemp("live-server")
        server = start_live_server(root, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        stop_apps(server.data_dir)


def stop_apps(data_dir: Path) -> None:
    """Stop the apps a server's worker left running (they outlive it by design); what
    ``aether worker --stop-apps`` does, in-process."""
    import asyncio

    from aether.worker.service import stop_local_apps

    asyncio.run(stop_local_apps({"AETHER_DATA_DIR": str(data_dir)}))
