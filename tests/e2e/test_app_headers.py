"""A real app behind the real router (``aether serve``, local runtime) echoes what it received:
never the control plane's credentials, its own cookies untouched, forwarding headers the
router set; a request that could be smuggled is refused."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import app_copy, deploy

pytestmark = pytest.mark.slow

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


def _request(port: int, host: str, headers: dict[str, str], method: str = "GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, "/headers", body=body, headers={"Host": host, **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_real_app_never_sees_the_control_planes_credentials(
    live_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = live_server()
    code, result = deploy(server.env, app_copy(tmp_path, "echo", "1.0.0", boot_js=ECHO_HEADERS))
    assert code == 0, result
    host = f"echo.localhost:{server.port}"
    status, body = _request(
        server.port,
        host,
        {
            "Authorization": f"Bearer {server.admin_token}",
            "Cookie": "aether_session=stolen; __Host-aether_session=s; cart=3",
            "X-Forwarded-For": "10.1.2.3",
            "X-Forwarded-Host": "evil.example",
        },
    )
    assert status == 200, body
    seen = json.loads(body)
    assert "authorization" not in seen
    assert seen["cookie"] == "cart=3"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == host
    assert seen["x-forwarded-proto"] == "http"
    assert server.admin_token not in body.decode()

    smuggled = _request(
        server.port,
        host,
        {"Transfer-Encoding": "chunked", "Content-Length": "4"},
        method="POST",
        body=b"0\r\n\r\n",
    )
    assert smuggled[0] == 400
