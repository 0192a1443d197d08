"""HTTPS: ``aether serve --tls-cert/--tls-key`` with a certificate made by the test, the CLI
trusting it through REQUESTS_CA_BUNDLE or SSL_CERT_FILE, presigned local-store URLs on https,
and the client's refusal to send a token in clear text off this machine."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from plugins.certs import make_server_certificate

_TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def _untrusting(env: dict[str, str]) -> dict[str, str]:
    """``env`` trusting only the system's store (this machine sets several bundles)."""
    return {k: v for k, v in env.items() if k not in _TRUST_VARIABLES}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aether", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory):
    return make_server_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(live_server, tls_files):
    return live_server(tls=tls_files, args=["--no-worker"])


def test_serves_https_and_presigns_https_urls(https_server, tls_files) -> None:
    server = https_server
    assert server.url.startswith("https://")
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    body = b"not really an artifact"
    digest = hashlib.sha256(body).hexdigest()
    announce = {"app_name": "tls-app", "digest": digest, "size_bytes": len(body)}
    verify = str(tls_files.ca)
    presigned = requests.post(
        f"{server.url}/artifacts/presign", json=announce, headers=headers, verify=verify, timeout=10
    ).json()
    assert presigned["upload_url"].startswith(f"{server.url}/blobs/")
    put = requests.put(
        presigned["upload_url"], data=body, headers=presigned["headers"], verify=verify, timeout=10
    )
    assert put.status_code == 200
    done = requests.post(
        f"{server.url}/artifacts/complete",
        json=announce,
        headers=headers,
        verify=verify,
        timeout=10,
    )
    assert done.status_code == 200 and done.json()["status"] == "stored"
    download = requests.get(
        f"{server.url}/artifacts/{digest}/download", params={"format": "json"},
        headers=headers, verify=verify, timeout=10,
    ).json()  # fmt: skip
    assert download["url"].startswith("https://")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/readyz", timeout=10)  # not trusted without the CA


@pytest.mark.parametrize("trust_variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_cli_trusts_the_server_through_the_environment(
    https_server, tls_files, trust_variable: str
) -> None:
    env = _untrusting(https_server.env)
    env[trust_variable] = str(tls_files.ca)
    done = _cli(env, "whoami", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["role"] == "admin"


def test_cli_refuses_an_untrusted_certificate(https_server) -> None:
    done = _cli(_untrusting(https_server.env), "whoami")
    assert done.returncode == 40, done.stderr
    assert "TLS" in done.stderr and "Traceback" not in done.stderr


def test_an_idle_tls_client_does_not_hold_the_shutdown(https_server, tls_files) -> None:
    """A connection that finished its handshake and then says nothing (a browser's spare
    connection) once held SIGTERM for asyncio's 30 s TLS shutdown: past the fixture's 20 s
    stop deadline, so the server was killed."""
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    raw = socket.create_connection(("127.0.0.1", https_server.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1"):
        assert https_server.stop() == 0


def test_a_certificate_without_its_key_stops_the_start(tls_files, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "aether", "serve", "--port", "0"]
    command += ["--data-dir", str(tmp_path / "data"), "--tls-cert", str(tls_files.cert)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 10
    assert "needs both --tls-cert and --tls-key" in done.stderr

    command += ["--tls-key", str(tls_files.ca)]  # a certificate where the key should be
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 10
    assert "do not load as a PEM pair" in done.stderr


OFF_HOST = "http://aether.example.invalid:8080"  # never contacted: refused before connecting


def test_client_refuses_a_token_over_plain_http_off_this_machine(tmp_path: Path) -> None:
    from plugins.live_server import clean_environ

    env = {**clean_environ(), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c")}
    env.update({"AETHER_API_BASE": OFF_HOST, "AETHER_TOKEN": "ae_secret_token"})
    done = _cli(env, "list")
    assert done.returncode == 10
    assert "refusing to send the API token over plain http://" in done.stderr
    assert "--allow-insecure-http" in done.stderr and "ae_secret_token" not in done.stderr

    login = _cli(env, "login", "--api", OFF_HOST, "--token", "ae_secret_token")
    assert login.returncode == 10 and "plain http://" in login.stderr

    # Told to, it goes ahead: the name does not resolve, so now it is a network error.
    allowed = _cli(env, "--allow-insecure-http", "list")
    assert allowed.returncode == 40, allowed.stderr
    by_setting = _cli({**env, "AETHER_ALLOW_INSECURE_HTTP": "1"}, "list")
    assert by_setting.returncode == 40, by_setting.stderr


def test_loopback_addresses_are_exempt() -> None:
    from aether.client.api import check_token_transport, is_loopback_host

    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "app.localhost"):
        assert is_loopback_host(host), host
    for host in ("10.0.0.1", "example.com", "localhost.example.com", "0.0.0.0", "::"):
        assert not is_loopback_host(host), host
    check_token_transport("http://127.0.0.1:8080", allow_insecure_http=False)
    check_token_transport("https://example.com", allow_insecure_http=False)
    check_token_transport("http://example.com", allow_insecure_http=True)
