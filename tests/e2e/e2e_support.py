"""Helpers for end-to-end tests: copies of the dependency-free fixture app, the real CLI
against a live ``aether serve``, and HTTP through the Host-header proxy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from plugins.polling import wait_for  # noqa: F401  (the e2e tests import it from here)

FIXTURE_APP = Path(__file__).parents[1] / "worker" / "fixtures" / "plain-app"


def app_copy(
    root: Path, name: str, version: str, *, boot_js: str = "", source: Path = FIXTURE_APP
) -> Path:
    """A copy of ``source`` (the fixture app) as package ``name`` at ``version``;
    ``boot_js`` runs first."""
    folder = root / f"{name}-{version}"
    shutil.copytree(source, folder)
    for file_name in ("package.json", "package-lock.json"):
        path = folder / file_name
        data = json.loads(path.read_text())
        data["name"], data["version"] = name, version
        if "packages" in data:
            data["packages"][""].update(name=name, version=version)
        path.write_text(json.dumps(data, indent=2) + "\n")
    if boot_js:
        server = folder / "server.js"
        server.write_text(boot_js + "\n" + server.read_text())
    return folder


def cli(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aether", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def deploy(env: dict[str, str], folder: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = cli(env, "deploy", str(folder), "--format", "json", *args)
    try:
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"deploy printed no JSON: {done.stdout}\n{done.stderr}") from None


def via_proxy(port: int, app: str, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
    """GET through ``aether serve``'s Host-header proxy."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": f"{app}.localhost:{port}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc).encode()


def _api_body(server: Any, path: str) -> bytes:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {server.admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def api_get(server: Any, path: str) -> Any:
    return json.loads(_api_body(server, path))


def api_post(server: Any, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` as JSON with the admin token; the decoded answer (a 2xx)."""
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {server.admin_token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def api_lines(server: Any, path: str) -> list[dict[str, Any]]:
    """An NDJSON answer (the logs route) as a list of objects."""
    return [json.loads(line) for line in _api_body(server, path).splitlines() if line.strip()]


# --- what an app behind the proxy or the router receives ---------------------------------------

# Runs before the fixture app's server.js: GET /headers answers with the request's headers.
ECHO_HEADERS = """
{
  const httpModule = require("http");
  const createServer = httpModule.createServer;
  httpModule.createServer = (handler) => createServer((req, res) => {
    if (req.url !== "/headers") return handler(req, res);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(req.headers));
  });
}
"""

# A request shape that could be smuggled (both lengths): refused with 400, never forwarded.
SMUGGLED_HEADERS = {"Transfer-Encoding": "chunked", "Content-Length": "4"}
SMUGGLED_BODY = b"0\r\n\r\n"


def hostile_headers(token: str) -> dict[str, str]:
    """The control plane's credentials and forged forwarding headers, sent to an app."""
    return {
        "Authorization": f"Bearer {token}",
        "Cookie": "aether_session=stolen; __Host-aether_session=s; cart=3",
        "X-Forwarded-For": "10.1.2.3",
        "X-Forwarded-Host": "evil.example",
    }


def assert_echo_is_clean(status: int, body: bytes, *, host: str, token: str) -> None:
    """The app's echo of ``hostile_headers(token)``: no credential reached it, its own
    cookie did, and the forwarding headers are the ones the router set."""
    assert status == 200, body
    seen = json.loads(body)
    assert "authorization" not in seen and seen["cookie"] == "cart=3"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == host and seen["x-forwarded-proto"] == "http"
    assert token not in body.decode()
