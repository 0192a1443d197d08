"""``aether serve`` killed (-9) in the middle of a large multipart upload, twice: while a part
streams in, and while it assembles and verifies the object on complete.

After each restart: no artifact is ``stored`` without its whole object (every stored row's
bytes are downloaded and hashed), the half-uploaded one is not visible, and finally the real
client (a separate process using the CLI's upload code) uploads it again successfully.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from faults_support import LEDGER, Api, wait_for

pytestmark = pytest.mark.slow

MIB = 1 << 20
PART = 5 * MIB  # S3's smallest part
SIZE = 6 * PART + 123
_CLIENT = """
import json, sys
from pathlib import Path
from aether.client.api import ApiClient
from aether.client.upload import UploadRequest, server_config, upload_artifact
api_base, token, path, digest, resume = sys.argv[1:]
artifact = Path(path)
with ApiClient(api_base, token) as api:
    request = UploadRequest(artifact, "big", digest, artifact.stat().st_size, "zstd")
    result = upload_artifact(api, request, config=server_config(api), resume_root=Path(resume))
print(json.dumps({"multipart": result.multipart, "status": result.artifact.get("status")}))
"""


def _kill(stack) -> float:
    """SIGKILL the server, start it again; seconds until it answered /readyz."""
    stack.server.process.send_signal(signal.SIGKILL)
    stack.server.process.wait(timeout=10)
    started = time.monotonic()
    stack.start()
    return time.monotonic() - started


def _slow_body(data: bytes, halfway: threading.Event, release: threading.Event):
    yield data[: len(data) // 2]
    halfway.set()
    release.wait(30)  # the server dies meanwhile; the rest is never read
    yield data[len(data) // 2 :]


def _put_part(api: Api, digest: str, upload_id: str, number: int, data: bytes, **kw) -> str:
    signed = api.json(
        "POST",
        "/artifacts/multipart/presign-part",
        json={"digest": digest, "upload_id": upload_id, "part_number": number},
    )
    put = requests.put(signed["url"], data=data, headers=signed["headers"], timeout=60, **kw)
    assert put.status_code == 200, put.text
    return put.headers["ETag"]


def _consistent(api: Api) -> int:
    """Every stored artifact downloads whole and hashes to its digest; how many there are."""
    rows = api.json("GET", "/artifacts", params={"status": "stored", "limit": 100})["artifacts"]
    for row in rows:
        url = api.json("GET", f"/artifacts/{row['digest']}/download", params={"format": "json"})
        body = requests.get(url["url"], timeout=60).content
        assert hashlib.sha256(body).hexdigest() == row["digest"], row
    return len(rows)


def test_serve_killed_mid_upload_leaves_nothing_half_stored(
    make_stack, tmp_path: Path, stack_kind: str
) -> None:
    stack = make_stack(
        env={"AETHER_MULTIPART_THRESHOLD_BYTES": str(PART), "AETHER_MULTIPART_PART_SIZE_BYTES": str(PART)},
        args=("--no-worker",),
    )  # fmt: skip
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    artifact = tmp_path / "big.tar.zst"
    artifact.write_bytes(data)
    parts = [data[i : i + PART] for i in range(0, SIZE, PART)]
    api = Api(stack.server)
    announce = {"app_name": "big", "digest": digest, "size_bytes": SIZE}
    upload_id = api.json("POST", "/artifacts/multipart/init", json=announce)["upload_id"]
    etags = [_put_part(api, digest, upload_id, n, p) for n, p in enumerate(parts[:-1], 1)]

    # 1. killed while the last part streams in
    halfway, release = threading.Event(), threading.Event()
    body = _slow_body(parts[-1], halfway, release)
    streaming = threading.Thread(
        target=lambda: _swallow(_put_part, api, digest, upload_id, len(parts), body),
        daemon=True,
    )
    streaming.start()
    assert halfway.wait(30)
    restarts = [_kill(stack)]
    release.set()
    streaming.join(30)
    api = Api(stack.server)
    assert api.call("HEAD", f"/artifacts/{digest}").status_code == 404
    assert _consistent(api) == 0

    # 2. killed while complete assembles and re-hashes the object
    etags.append(_put_part(api, digest, upload_id, len(parts), parts[-1]))
    listed = [{"part_number": n, "etag": e} for n, e in enumerate(etags, 1)]
    completing = threading.Thread(
        target=_swallow,
        args=(api.call, "POST", "/artifacts/multipart/complete"),
        kwargs={"json": {**announce, "upload_id": upload_id, "parts": listed}},
        daemon=True,
    )
    completing.start()
    time.sleep(0.05)  # the fault's timing: the complete is under way, not a synchronisation
    restarts.append(_kill(stack))
    completing.join(30)
    api = Api(stack.server)
    stored = _consistent(api)  # the complete either finished whole or left nothing stored
    assert api.call("HEAD", f"/artifacts/{digest}").status_code == (200 if stored else 404)

    # 3. the client's retry, as the CLI does it, in its own process
    retry = subprocess.run(
        [sys.executable, "-c", _CLIENT, stack.server.url, stack.server.admin_token,
         str(artifact), digest, str(tmp_path / "resume")],
        env=stack.server.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert retry.returncode == 0, retry.stderr
    assert json.loads(retry.stdout)["status"] == "stored"
    wait_for(lambda: api.call("HEAD", f"/artifacts/{digest}").status_code == 200, timeout=5)
    assert _consistent(api) == 1
    LEDGER.record(
        "serve_kill_mid_upload",
        stack=stack_kind,
        kills=len(restarts),
        restart_secs=[round(s, 2) for s in restarts],
        half_objects_visible=0,
        retry_ok=True,
    )


def _swallow(fn, *args, **kwargs) -> None:
    """Run a request the fault will cut off; its error is the expected outcome."""
    try:
        fn(*args, **kwargs)
    except (requests.RequestException, AssertionError):
        pass
