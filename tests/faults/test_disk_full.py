"""The data folder's disk fills up: a small tmpfs mounted by the test holds the data dir.

During an upload (the local store receives the bytes): a clean 503 with Retry-After, nothing
half-written left, the server keeps answering, and the same upload succeeds once space is back.
During an extraction (both stacks): the deployment fails with a reason naming the full disk,
nothing half-extracted is left, and a new deployment of the same artifact runs once space is
back. Needs root (mount); skipped with the reason elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from faults_support import LEDGER, Api, Stack, app_members, member, wait_for, write_artifact

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def tmpfs(folder: Path, size_mib: int) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(folder)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size_mib: int) -> None:
    remount = ["mount", "-o", f"remount,size={size_mib}m", str(folder)]
    subprocess.run(remount, check=True, capture_output=True)


def fill(folder: Path, leave_mib: int) -> Path:
    """A file taking all but ``leave_mib`` of the free space."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    filler = folder / "filler"
    with filler.open("wb") as out:
        out.truncate(0)
        block = b"\1" * (1 << 20)
        for _ in range(max(0, free // (1 << 20) - leave_mib)):
            out.write(block)
    return filler


def compressible(size: int) -> bytes:
    """About 10:1 under zstd: random 400 bytes then zeros, per 4 KiB."""
    return b"".join(os.urandom(400) + bytes(3696) for _ in range(size // 4096))


def leftovers(data_dir: Path) -> list[str]:
    """Half-written things: temp uploads, partial downloads, unfinished extractions."""
    found = []
    for path in data_dir.rglob("*"):
        name = path.name
        if ".extract-" in name or name.endswith((".part", ".rest.tar")) or ".old-" in name:
            found.append(str(path))
    tmp = data_dir / "blobs" / "tmp"
    found += [str(p) for p in tmp.iterdir()] if tmp.is_dir() else []
    return found


def test_disk_full_during_an_upload(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", 48) as disk:
        stack = Stack("sqlite", disk, {}, None, ("--no-worker",))
        server = stack.start()
        try:
            api = Api(server)
            body = os.urandom(8 << 20)
            digest = hashlib.sha256(body).hexdigest()
            announce = {"app_name": "full", "digest": digest, "size_bytes": len(body)}
            presigned = api.json("POST", "/artifacts/presign", json=announce)
            filler = fill(disk, leave_mib=2)
            put = requests.put(presigned["upload_url"], data=body, timeout=60)
            assert put.status_code == 503, put.text
            assert put.headers["Retry-After"].isdigit()
            assert "disk is full" in put.json()["message"]
            assert leftovers(server.data_dir) == []
            assert api.call("HEAD", f"/artifacts/{digest}").status_code == 404
            assert api.call("GET", "/readyz").status_code == 200
            assert api.call("GET", "/apps").status_code == 200

            filler.unlink()
            retried = requests.put(presigned["upload_url"], data=body, timeout=60)
            assert retried.status_code == 200, retried.text
            assert api.json("POST", "/artifacts/complete", json=announce)["status"] == "stored"
        finally:
            server.stop()
    LEDGER.record("disk_full_upload", faults=1, clean_503=1, leftovers=0, retry_ok=True)


def test_disk_full_during_an_extraction(stack_kind: str, make_stack, tmp_path: Path) -> None:
    members = [*app_members("1.0.0"), member("data.bin", compressible(48 << 20))]
    artifact = write_artifact(tmp_path / "big.tar.zst", members)
    assert artifact.stat().st_size < 8 << 20
    with tmpfs(tmp_path / "disk", 40) as disk:
        stack = make_stack(root=disk)
        try:
            api = Api(stack.server)
            digest = api.upload("full", artifact)
            started = time.monotonic()
            first = api.deploy("full", digest)
            failed = wait_for(lambda: api.settled(first["id"]), timeout=60, what="first rollout")
            assert failed["status"] == "failed", failed
            assert "No space left on device" in failed["failure_reason"], failed
            assert "nothing was kept" in failed["failure_reason"]
            data_dir = disk / "data"
            assert leftovers(data_dir) == []
            assert not (data_dir / "apps" / "full" / first["id"]).exists()
            assert api.call("GET", "/readyz").status_code == 200

            resize(disk, 160)
            second = api.deploy("full", digest)
            row = wait_for(lambda: api.settled(second["id"]), timeout=60, what="second rollout")
            assert row["status"] == "running", row
            recovered = time.monotonic() - started
        finally:
            stack.stop()  # its apps run from the tmpfs: stopped before it is unmounted
    LEDGER.record(
        "disk_full_extraction",
        stack=stack_kind,
        faults=1,
        failed_with_reason=1,
        leftovers=0,
        redeploy_ok=True,
        secs=round(recovered, 2),
    )
