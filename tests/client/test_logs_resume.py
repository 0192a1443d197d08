"""`stream_logs` against an NDJSON endpoint on loopback that drops the connection mid-stream.

The endpoint is a few lines of stdlib HTTP server speaking the logs contract
(``GET /apps/{app}/logs`` → NDJSON ``{ts, deployment_id, stream, line, cursor}``), so the
reconnect logic is exercised over a real socket with a real broken chunked stream.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from aether.client.api import ApiClient
from aether.client.logs import LogQuery, stream_logs
from aether.errors import NetworkError

LINES = [
    {
        "ts": f"2026-11-28T00:00:0{i}Z",
        "deployment_id": "d1",
        "stream": "stdout",
        "line": f"line {i}",
        "cursor": f"c{i}",
    }
    for i in range(6)
]


class Enough(Exception):
    """Ends a follow loop from the line callback once the test has what it needs."""


class LogEndpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests_seen: list[dict[str, list[str]]] = []
    notice: dict[str, str] | None = None  # sent as the last entry before the first drop

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        query = parse_qs(urlparse(self.path).query)
        self.requests_seen.append(query)
        if "cursor" in query:
            start = int(query["cursor"][0][1:]) + 1
            batch, drop = LINES[start:], False
        else:
            tail = int(query.get("tail", ["100"])[0])
            batch, drop = LINES[-tail:][:3], True  # first connection dies after 3 lines
            if self.notice is not None:
                batch = [*batch[:2], self.notice]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for entry in batch:
            data = (json.dumps(entry) + "\n").encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if drop:
            self.close_connection = True
            return  # no terminating chunk: the client sees a broken stream
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    LogEndpoint.requests_seen = []
    LogEndpoint.notice = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), LogEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_follow_reconnects_from_the_last_cursor_without_loss_or_duplicates(endpoint: str) -> None:
    seen: list[str] = []

    def on_line(entry: dict[str, object]) -> None:
        seen.append(str(entry["line"]))
        if len(seen) == len(LINES):
            raise Enough

    with ApiClient(endpoint, "t") as api, pytest.raises(Enough):
        stream_logs(api, LogQuery(app="web", tail=6, follow=True), on_line, sleep=lambda s: None)
    assert seen == [entry["line"] for entry in LINES]
    first, second = LogEndpoint.requests_seen[:2]
    assert first["tail"] == ["6"] and first["follow"] == ["true"]
    assert second["cursor"] == ["c2"] and "tail" not in second


def test_without_follow_a_dropped_stream_is_a_network_error(endpoint: str) -> None:
    seen: list[dict[str, object]] = []
    with ApiClient(endpoint, "t") as api, pytest.raises(NetworkError, match="/apps/web/logs"):
        stream_logs(api, LogQuery(app="web", tail=6), seen.append)
    assert len(seen) == 3


def test_a_notice_is_shown_but_does_not_move_the_resume_cursor(endpoint: str) -> None:
    LogEndpoint.notice = {
        "ts": "2026-11-28T00:00:09Z",
        "deployment_id": "d1",
        "stream": "notice",
        "line": "pod web-1 is not scheduled: 0/3 nodes available",
        "cursor": "",
    }
    seen: list[str] = []

    def on_line(entry: dict[str, object]) -> None:
        seen.append(str(entry["line"]))
        if len(seen) == len(LINES) + 1:
            raise Enough

    with ApiClient(endpoint, "t") as api, pytest.raises(Enough):
        stream_logs(api, LogQuery(app="web", tail=6, follow=True), on_line, sleep=lambda s: None)
    assert seen[2] == "pod web-1 is not scheduled: 0/3 nodes available"
    assert LogEndpoint.requests_seen[1]["cursor"] == ["c1"]  # the last line's, not the notice's
