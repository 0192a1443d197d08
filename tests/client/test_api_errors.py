"""How transport failures and error answers become Aether errors."""

from __future__ import annotations

import json
import socket

import pytest
from http_support import scripted_server, url_of

from aether.client.api import ApiClient
from aether.errors import EXIT_CONFIG, EXIT_INTERNAL, EXIT_NETWORK, NetworkError, RemoteError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_is_exit_40_naming_the_url() -> None:
    port = _closed_port()
    with ApiClient(f"http://127.0.0.1:{port}", "t") as api, pytest.raises(NetworkError) as caught:
        api.get("/whoami")
    assert caught.value.exit_code == EXIT_NETWORK
    assert f"http://127.0.0.1:{port}/whoami" in caught.value.message
    assert "connection refused" in caught.value.message


def test_unknown_host_is_a_network_error() -> None:
    with ApiClient("http://aether-no-such-host.invalid", None) as api:
        with pytest.raises(NetworkError, match="aether-no-such-host.invalid"):
            api.get("/healthz")


def _error(
    status: int, body: object, content_type: str = "application/json", **headers: str
) -> RemoteError:
    """What ApiClient raises when a real server answers ``status`` with ``body``."""
    payload = (json.dumps(body) if not isinstance(body, str) else body).encode()
    with scripted_server() as httpd, ApiClient(url_of(httpd), "t") as api:
        httpd.script.append((status, {"Content-Type": content_type, **headers}, payload))
        with pytest.raises(RemoteError) as caught:
            api.post("/apps/x", {})
    return caught.value


def test_envelope_code_and_message_are_kept() -> None:
    error = _error(404, {"code": "not_found", "message": "no app x"})
    assert error.code == "not_found" and "no app x" in error.message
    assert "HTTP 404" in error.message and "/apps/x" in error.message
    assert error.exit_code == EXIT_INTERNAL


def test_401_tells_to_log_in_and_exits_10() -> None:
    error = _error(401, {"code": "unauthorized", "message": "bad token"})
    assert "aether login" in error.message and error.exit_code == EXIT_CONFIG


def test_nested_error_envelope_and_plain_text_bodies() -> None:
    nested = _error(409, {"error": {"code": "conflict", "message": "taken"}})
    assert (nested.code, "taken" in nested.message) == ("conflict", True)
    text = _error(500, "Bad gateway\nmore", "text/plain")
    assert text.code == "http_500" and "Bad gateway" in text.message


def test_a_redirected_api_call_says_which_url_to_use() -> None:
    error = _error(308, "", "text/plain", Location="https://aether.example/apps/x")
    assert error.code == "redirected" and "AETHER_API_BASE" in error.message
    assert "https://aether.example/apps/x" in error.message


def test_tls_failure_is_a_network_error() -> None:
    # An https:// URL pointed at a plain-HTTP listener fails the TLS handshake.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        with ApiClient(url, "t") as api, pytest.raises(NetworkError) as caught:
            api.get("/whoami")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert "TLS error" in caught.value.message and url in caught.value.message
