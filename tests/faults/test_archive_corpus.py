"""Crafted archives through the worker and through ``aether fetch``, on both stacks.

Each hostile artifact is uploaded honestly (its digest is right: the attacker is a deployer)
and deployed to an app of its own; the deployment must fail with a reason, and ``aether fetch``
of the same bytes must exit 20. Afterwards: nothing escaped the data folder (0 escapes),
nothing unsafe exists under it (no device, FIFO, setuid bit, link out: 0 unsafe files), no
release folder was left half-written, and no bomb expanded in full (0 full expansions).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faults_support import (
    LEDGER,
    Api,
    app_members,
    data_usage,
    member,
    wait_for,
    write_artifact,
    zeros_bomb,
)

pytestmark = pytest.mark.slow

ESCAPE = f"aether-fault-escape-{uuid.uuid4().hex[:8]}"


def _corpus(root: Path) -> dict[str, tuple[Path, str]]:
    """name → (artifact, a word the failure reason must contain)."""
    app = app_members("1.0.0")
    hostile = {
        "traversal": ([member(f"../../{ESCAPE}", b"x")], "'..' component"),
        "nested-traversal": ([member(f"a/b/../../../{ESCAPE}", b"x")], "'..' component"),
        "absolute": ([member(f"/tmp/{ESCAPE}", b"x")], "absolute path"),
        "symlink-escape": (
            [member("up", kind=tarfile.SYMTYPE, linkname="../.."), member(f"up/{ESCAPE}", b"x")],
            "outside the target folder",
        ),
        "symlink-absolute": (
            [member("etc", kind=tarfile.SYMTYPE, linkname="/etc")],
            "absolute path",
        ),
        "symlink-chain": (
            [
                member("a", kind=tarfile.SYMTYPE, linkname="."),
                member("b", kind=tarfile.SYMTYPE, linkname="a/../.."),
            ],
            "outside the target folder",
        ),
        "hardlink-escape": (
            [member("passwd", kind=tarfile.LNKTYPE, linkname="/etc/passwd")],
            "absolute path",
        ),
        "hardlink-traversal": (
            [member("h", kind=tarfile.LNKTYPE, linkname=f"../../{ESCAPE}")],
            "'..' component",
        ),
        "char-device": ([member("null", kind=tarfile.CHRTYPE, devmajor=1, devminor=3)], "device"),
        "block-device": ([member("sda", kind=tarfile.BLKTYPE, devmajor=8, devminor=0)], "device"),
        "fifo": ([member("pipe", kind=tarfile.FIFOTYPE)], "FIFO"),
        "duplicate": ([member("server.js", b"// second copy")], "more than once"),
        "long-name": ([member("d/" + "n" * 300, b"x")], "too long"),
        "deep-path": ([member("/".join(["d" * 200] * 25) + "/f", b"x")], "too long"),
    }
    corpus = {
        name: (write_artifact(root / f"{name}.tar.zst", [*app, *extra]), reason)
        for name, (extra, reason) in hostile.items()
    }
    corpus["zeros-bomb"] = (
        zeros_bomb(root / "zeros-bomb.tar.zst", 1 << 30, tuple(app)),
        "decompression bomb",
    )
    pax = tarfile.TarInfo("small.txt")
    pax.pax_headers = {"comment": "A" * (8 << 20)}
    corpus["pax-bomb"] = (write_artifact(root / "pax.tar.zst", [*app, (pax, b"")]), "metadata")
    corpus["garbage"] = (_garbage(root / "garbage.tar.zst"), "not a readable")
    return corpus


def _garbage(path: Path) -> Path:
    path.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(4096))
    return path


def _unsafe_entries(folder: Path) -> list[str]:
    """Devices, FIFOs, sockets, setuid/setgid files and links leading out of ``folder``
    (but the API's own socket behind the router, in ``run/``)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_relative_to(folder / "run") and path.name == "api.sock":
            continue
        mode = path.lstat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            found.append(f"{path}: special file")
        elif mode & (stat.S_ISUID | stat.S_ISGID):
            found.append(f"{path}: setuid/setgid")
        elif stat.S_ISLNK(mode) and not path.resolve().is_relative_to(folder.resolve()):
            found.append(f"{path}: link to {path.resolve()}")
    return found


def _fetch(server, digest: str, dest: Path) -> subprocess.CompletedProcess[str]:
    url = Api(server).json("GET", f"/artifacts/{digest}/download", params={"format": "json"})
    command = [sys.executable, "-m", "aether", "fetch", "--url", url["url"], "--digest", digest]
    return subprocess.run(
        [*command, "--dest", str(dest), "--format", "json"],
        env=server.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_crafted_archives_are_refused_by_the_worker_and_by_fetch(
    make_stack, tmp_path: Path
) -> None:
    stack = make_stack()
    server, api = stack.server, Api(stack.server)
    corpus = _corpus(tmp_path)
    started = time.monotonic()
    deployed = {}
    for name, (artifact, _) in corpus.items():
        digest = api.upload(f"corpus-{name}", artifact)
        deployed[name] = (digest, api.deploy(f"corpus-{name}", digest)["id"])

    outcomes = {
        name: wait_for(lambda i=deployment_id: api.settled(i), timeout=90, what=f"{name} settled")
        for name, (_, deployment_id) in deployed.items()
    }
    for name, row in outcomes.items():
        reason = corpus[name][1]
        assert row["status"] == "failed", (name, row)
        assert reason in (row["failure_reason"] or ""), (name, row["failure_reason"])
    worker_secs = time.monotonic() - started

    fetch_root = tmp_path / "fetched"
    fetch_root.mkdir()
    with ThreadPoolExecutor(4) as pool:
        fetched = dict(
            zip(
                deployed,
                pool.map(lambda n: _fetch(server, deployed[n][0], fetch_root / n), deployed),
                strict=True,
            )
        )
    for name, done in fetched.items():
        assert done.returncode == 20, (name, done.stdout, done.stderr)
        message = json.loads(done.stdout)["error"]["message"]
        assert corpus[name][1] in message, (name, message)
        assert "Traceback" not in done.stderr
    assert list(fetch_root.iterdir()) == []  # nothing extracted, nothing half-written

    escaped = [p for p in (Path("/tmp"), tmp_path, server.data_dir.parent) if (p / ESCAPE).exists()]
    assert escaped == []
    apps = server.data_dir / "apps"
    assert _unsafe_entries(server.data_dir) == []
    leftovers = [p for p in apps.glob("corpus-*/*") if p.name != "layers"] if apps.exists() else []
    assert leftovers == []
    assert data_usage(server.data_dir) < 64 << 20  # the 1 GiB bomb did not expand
    LEDGER.record(
        "archive_corpus",
        stack=stack.kind,
        archives=len(corpus),
        refused_by_worker=len(outcomes),
        refused_by_fetch=len(fetched),
        escapes=len(escaped),
        unsafe_files=0,
        full_expansions=0,
        worker_secs=round(worker_secs, 2),
    )


def test_setuid_bits_are_stripped_and_the_app_runs(make_stack, tmp_path: Path) -> None:
    stack = make_stack()
    api = Api(stack.server)
    artifact = write_artifact(
        tmp_path / "suid.tar.zst",
        [*app_members("1.0.0"), member("bin/tool", b"#!/bin/sh\n", mode=0o6755)],
    )
    deployment = api.deploy("suid-app", api.upload("suid-app", artifact))
    row = wait_for(lambda: api.settled(deployment["id"]), timeout=60, what="suid-app settled")
    assert row["status"] == "running", row
    tool = next((stack.server.data_dir / "apps" / "suid-app").rglob("bin/tool"))
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755
    assert _unsafe_entries(stack.server.data_dir) == []
