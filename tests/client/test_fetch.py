"""``aether fetch`` against a real HTTP server on loopback: verify before extracting, retries,
signatures, and the CLI's exit codes. The artifact is packed from the worker's fixture app."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aether.client.fetch import FetchRequest, fetch
from aether.errors import IntegrityError, NetworkError, UsageError
from aether.pack import PackOptions, build_artifact
from aether.pack.signing import generate_keypair

FIXTURE_APP = Path(__file__).parents[1] / "worker" / "fixtures" / "plain-app"


@dataclass
class Served:
    body: bytes
    failures_left: int = 0  # answer 503 this many times first
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Any:
    seed, public = generate_keypair()
    out = tmp_path_factory.mktemp("artifact")
    return build_artifact(
        FIXTURE_APP, PackOptions(out=out, install=False, sbom=False, signing_key=seed)
    ), public


@pytest.fixture
def server(artifact: Any) -> Iterator[tuple[str, Served]]:
    served = Served(artifact[0].artifact.read_bytes())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            served.requests.append(self.path)
            if served.failures_left > 0:
                served.failures_left -= 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(served.body)))
            self.end_headers()
            self.wfile.write(served.body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/app.tar.zst", served
    httpd.shutdown()
    httpd.server_close()


def no_sleep(_: float) -> None:
    return None


def test_fetch_verifies_then_extracts_and_records(
    server: tuple[str, Served], artifact: Any, tmp_path: Path
) -> None:
    url, _ = server
    dest = tmp_path / "release"
    result = fetch(FetchRequest(dest=dest, url=url, digest=artifact[0].digest))
    assert result.digest == artifact[0].digest and result.entries >= 2
    assert (dest / "server.js").read_text() == (FIXTURE_APP / "server.js").read_text()
    marker = json.loads((dest / ".aether" / "deployment.json").read_text())
    assert marker == {"digest": artifact[0].digest, "deployment_id": None}
    assert [p.name for p in tmp_path.iterdir()] == ["release"]  # no temp files left


def test_digest_mismatch_extracts_nothing(server: tuple[str, Served], tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(IntegrityError, match="digest mismatch"):
        fetch(FetchRequest(dest=tmp_path / "release", url=url, digest="0" * 64))
    assert list(tmp_path.iterdir()) == []


def test_transient_failures_are_retried(
    server: tuple[str, Served], artifact: Any, tmp_path: Path
) -> None:
    url, served = server
    served.failures_left = 2
    fetch(FetchRequest(dest=tmp_path / "r", url=url, digest=artifact[0].digest), sleep=no_sleep)
    assert len(served.requests) == 3


def test_gives_up_after_the_attempts(
    server: tuple[str, Served], artifact: Any, tmp_path: Path
) -> None:
    url, served = server
    served.failures_left = 10
    request = FetchRequest(dest=tmp_path / "r", url=url, digest=artifact[0].digest, attempts=3)
    with pytest.raises(NetworkError, match="after 3 attempts"):
        fetch(request, sleep=no_sleep)
    assert not (tmp_path / "r").exists()


def test_signature_is_checked_before_extracting(
    server: tuple[str, Served], artifact: Any, tmp_path: Path
) -> None:
    url, _ = server
    packed, public = artifact
    ok = FetchRequest(
        dest=tmp_path / "good", url=url, digest=packed.digest,
        public_key=public, signature=packed.signature_hex,
    )  # fmt: skip
    assert fetch(ok).signature_verified
    _, other_public = generate_keypair()
    bad = FetchRequest(
        dest=tmp_path / "bad", url=url, digest=packed.digest,
        public_key=other_public, signature=packed.signature_hex,
    )  # fmt: skip
    with pytest.raises(IntegrityError, match="signature"):
        fetch(bad)
    assert not (tmp_path / "bad").exists()


def test_empty_existing_dest_like_a_volume_mount_is_filled(
    server: tuple[str, Served], artifact: Any, tmp_path: Path
) -> None:
    url, _ = server
    mount = tmp_path / "app"
    mount.mkdir()
    fetch(FetchRequest(dest=mount, url=url, digest=artifact[0].digest))
    assert sorted(p.name for p in mount.iterdir()) == [
        ".aether",
        "package-lock.json",
        "package.json",
        "server.js",
    ]


def test_non_empty_dest_and_missing_digest_are_usage_errors(
    server: tuple[str, Served], tmp_path: Path
) -> None:
    url, _ = server
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError):
        fetch(FetchRequest(dest=tmp_path / "full", url=url, digest="a" * 64))
    with pytest.raises(UsageError):
        fetch(FetchRequest(dest=tmp_path / "new", url=url))
    with pytest.raises(UsageError):
        fetch(FetchRequest(dest=tmp_path / "new"))


def test_cli_exit_codes(server: tuple[str, Served], artifact: Any, tmp_path: Path) -> None:
    url, _ = server
    base = [sys.executable, "-m", "aether", "fetch", "--url", url, "--format", "json"]
    good = subprocess.run(
        [*base, "--digest", artifact[0].digest, "--dest", str(tmp_path / "ok")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["digest"] == artifact[0].digest
    bad = subprocess.run(
        [*base, "--digest", "f" * 64, "--dest", str(tmp_path / "bad")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 20
    assert json.loads(bad.stdout)["error"]["code"] == "integrity"
    assert not (tmp_path / "bad").exists()
