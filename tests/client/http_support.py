"""A stdlib HTTP server on loopback that records what it was sent and answers as a test
scripts it: real sockets for the client's transport and error mapping."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Scripted(BaseHTTPRequestHandler):
    """Answers from ``server.script`` (a list of (status, headers, body)), then 200s."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(  # type: ignore[attr-defined]
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "headers": dict(self.headers),
                "peer": self.client_address,
            }
        )
        script = self.server.script  # type: ignore[attr-defined]
        status, headers, payload = script.pop(0) if script else (200, {}, b'{"ok": true}')
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_HEAD = _answer  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def scripted_server(wrap: object = None) -> Iterator[ThreadingHTTPServer]:
    """A running server; ``wrap`` (e.g. an SSLContext's wrap) is applied to its socket."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.seen, httpd.script = [], []  # type: ignore[attr-defined]
    if wrap is not None:
        httpd.socket = wrap(httpd.socket, server_side=True)  # type: ignore[operator]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def url_of(httpd: ThreadingHTTPServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"
