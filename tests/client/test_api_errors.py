"""How transport failures and error answers become Aether errors."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from aether.client.api import ApiClient, remote_error
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


def _response(
    status: int, body: object, content_type: str = "application/json"
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (json.dumps(body) if not isinstance(body, str) else body).encode()
    response.headers["Content-Type"] = content_type
    response.reason = "Reason"
    return response


def test_envelope_code_and_message_are_kept() -> None:
    error = remote_error(
        "GET", "http://h/apps/x", _response(404, {"code": "not_found", "message": "no app x"})
    )
    assert isinstance(error, RemoteError)
    assert error.code == "not_found" and "no app x" in error.message
    assert "HTTP 404" in error.message and error.exit_code == EXIT_INTERNAL


def test_401_tells_to_log_in_and_exits_10() -> None:
    error = remote_error(
        "GET", "http://h/whoami", _response(401, {"code": "unauthorized", "message": "bad token"})
    )
    assert "aether login" in error.message and error.exit_code == EXIT_CONFIG


def test_nested_error_envelope_and_plain_text_bodies() -> None:
    nested = remote_error(
        "POST", "u", _response(409, {"error": {"code": "conflict", "message": "taken"}})
    )
    assert (nested.code, "taken" in nested.message) == ("conflict", True)
    text = remote_error("GET", "u", _response(502, "Bad gateway\nmore", "text/plain"))
    assert text.code == "http_502" and "Bad gateway" in text.message


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
