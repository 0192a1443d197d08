"""A real app behind the real router (``aether serve``, local runtime) echoes what it received:
never the control plane's credentials, its own cookies untouched, forwarding headers the
router set; a request that could be smuggled is refused."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    ECHO_HEADERS,
    SMUGGLED_BODY,
    SMUGGLED_HEADERS,
    app_copy,
    assert_echo_is_clean,
    deploy,
    hostile_headers,
)

pytestmark = pytest.mark.slow


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
    status, body = _request(server.port, host, hostile_headers(server.admin_token))
    assert_echo_is_clean(status, body, host=host, token=server.admin_token)
    smuggled = _request(server.port, host, SMUGGLED_HEADERS, method="POST", body=SMUGGLED_BODY)
    assert smuggled[0] == 400
