"""A stdlib HTTP server on loopback that records what it was sent and answers as a test
scripts it: real sockets for the client's transport and error mapping."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


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


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
