"""``--check``: start the packed artifact on this machine and wait for it to answer HTTP.

The artifact is extracted (safely, as the worker does) into a temporary folder of the cache
dir and its start command runs there with ``PORT`` set, ``NODE_ENV=production`` and
``node_modules/.bin`` on PATH; it passes once ``GET <health path>`` answers (2xx/3xx with a
health path, any answer without: the worker's rule). "It does not boot" is then found in
seconds, before an upload: the error quotes the app's last output lines. The process group is
stopped and the folder removed afterwards, pass or fail. The GET goes through
:mod:`aether.upstream`, as the worker's health check and the proxy do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aether import upstream
from aether.errors import InternalError
from aether.pack.entry import default_start_command
from aether.pack.extract import safe_extract
from aether.pack.project import read_json_file

POLL_SECS = 0.05
STOP_GRACE_SECS = 5.0
_PRIVATE_PREFIXES = ("AETHER_", "DATABASE_URL", "AWS_")


@dataclass(frozen=True)
class BootReport:
    seconds: float  # from start to the first good answer
    status: int  # the answer's HTTP status
    command: str


def boot_check(
    artifact: Path,
    *,
    start_command: str | None,
    health_path: str | None,
    environ: Mapping[str, str],
    scratch: Path,
    timeout_secs: float = 30.0,
) -> BootReport:
    """Start the artifact locally; the report once it answers, InternalError otherwise."""
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="check-", dir=scratch))
    try:
        app = folder / "app"
        extract_any(artifact, app)
        package = read_json_file(app / "package.json") or {}
        command = start_command or default_start_command(package, lambda p: (app / p).is_file())
        return _run(app, command, health_path, environ, folder / "output.log", timeout_secs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def extract_any(artifact: Path, dest: Path) -> None:
    """An archive, or a layered artifact (its manifest file, layers beside it), into ``dest``."""
    from aether.pack.verify import is_layered

    if not is_layered(artifact):
        safe_extract(artifact, dest)
        return
    from aether.pack.artifact_manifest import parse_artifact_manifest
    from aether.pack.compose import extract_layers
    from aether.pack.layered import layer_file

    manifest = parse_artifact_manifest(artifact.read_bytes())
    files = {
        layer.name: layer_file(artifact.parent, layer.digest, layer.compression)
        for layer in manifest.layers
    }
    extract_layers(manifest, files, dest)


def _run(
    app: Path,
    command: str,
    health_path: str | None,
    environ: Mapping[str, str],
    log_path: Path,
    timeout_secs: float,
) -> BootReport:
    port = _free_port()
    env = {k: v for k, v in environ.items() if not k.startswith(_PRIVATE_PREFIXES)}
    env.update(PORT=str(port), NODE_ENV=env.get("NODE_ENV", "production"))
    env["PATH"] = f"{app / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    started = time.monotonic()
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=app,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = _wait_healthy(process, port, health_path, started + timeout_secs)
        except InternalError as exc:
            raise InternalError(f"{exc.message} ({command}){_tail(log_path)}") from None
        finally:
            _stop(process)
    return BootReport(round(time.monotonic() - started, 3), status, command)


def _wait_healthy(
    process: subprocess.Popen[bytes], port: int, health_path: str | None, deadline: float
) -> int:
    path = health_path or "/"
    while True:
        if process.poll() is not None:
            raise InternalError(
                f"--check: the app exited with code {process.returncode} before answering HTTP"
            )
        status = asyncio.run(upstream.get_status("127.0.0.1", port, path, timeout=1.0))
        if status is not None and (health_path is None or 200 <= status < 400):
            return status
        if time.monotonic() >= deadline:
            seen = "no answer" if status is None else f"HTTP {status}"
            raise InternalError(f"--check: GET {path} on PORT={port} gave {seen} in time")
        time.sleep(POLL_SECS)  # polling interval, bounded by the deadline


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_SECS)
    except Exception:  # noqa: BLE001 - any failure to stop politely ends in SIGKILL
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    shown = [line for line in lines if line.strip()][-10:]
    return ("; last output: " + " | ".join(shown)) if shown else "; no output"
