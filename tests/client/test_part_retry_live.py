"""Per-part retries: a presigned part PUT that fails once with 503 is sent again, and the
upload still completes with every part exactly once.

The fault comes from a small forwarding proxy on loopback placed in front of a real
`aether serve` (whose AETHER_PUBLIC_URL points at the proxy, so presigned URLs go through it).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from client_live_support import PART, make_big_project, settings_for

from aether.client.deploy import DeployOptions, deploy
from plugins.live_server import free_port


class FlakyProxy(BaseHTTPRequestHandler):
    """Forwards to ``target``; the first PUT of part 2 is answered 503 instead."""

    protocol_version = "HTTP/1.1"
    target = ""
    part_puts: list[int] = []
    lock = threading.Lock()

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = parse_qs(urlparse(self.path).query)
        if self.command == "PUT" and "part_number" in query:
            number = int(query["part_number"][0])
            with self.lock:
                self.part_puts.append(number)
                first_try = self.part_puts.count(number) == 1
            if number == 2 and first_try:
                self._reply(
                    503,
                    {"Content-Type": "application/json"},
                    b'{"code": "service_unavailable", "message": "try again"}',
                )
                return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        request = urllib.request.Request(
            self.target + self.path,
            data=body if self.command in ("PUT", "POST") else None,
            headers=headers,
            method=self.command,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                self._reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, dict(exc.headers), exc.read())

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "date",
                "server",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxied(live_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    proxy_url = f"http://127.0.0.1:{port}"
    server = live_server(
        args=["--no-worker"],
        env={
            "AETHER_PUBLIC_URL": proxy_url,
            "AETHER_MULTIPART_THRESHOLD_BYTES": str(PART),
            "AETHER_MULTIPART_PART_SIZE_BYTES": str(PART),
        },
    )
    FlakyProxy.target, FlakyProxy.part_puts = server.url, []
    proxy = ThreadingHTTPServer(("127.0.0.1", port), FlakyProxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield server, proxy_url
    proxy.shutdown()
    proxy.server_close()
    thread.join()


def test_a_failed_part_is_retried_and_the_upload_completes(proxied, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, proxy_url = proxied
    project = make_big_project(tmp_path / "app")
    seen: list[int] = []
    result = deploy(
        settings_for(proxy_url, server.admin_token),
        project,
        DeployOptions(wait=False, layered=False, concurrency=2, resume_root=tmp_path / "uploads"),
        environ=server.env,
        on_progress=lambda phase, done, total: seen.append(done) if phase == "upload" else None,
    )
    parts_total = result["parts_total"]
    assert sorted(FlakyProxy.part_puts) == sorted([*range(1, parts_total + 1), 2])
    assert result["uploaded_bytes"] == result["size_bytes"] and result["deployment_id"]
    assert max(seen) == result["size_bytes"], "retried bytes are not counted twice"
