"""Real Node apps behind the router (on the API's port, and on ``aether serve --router-port``,
local runtime): the URLs the CLI prints name the apps' own port when there is one, and the
app answers on the API's port too; a kept-alive connection carries many requests;
the app never sees the control plane's credentials and gets the forwarding headers the router
set; a request that could be smuggled is refused; requests spread over an app's instances;
a rolling restart under a request loop fails none."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    ECHO_HEADERS,
    SMUGGLED_BODY,
    SMUGGLED_HEADERS,
    api_get,
    app_copy,
    assert_echo_is_clean,
    cli,
    deploy,
    hostile_headers,
    wait_for,
)

from plugins.live_server import free_port

pytestmark = pytest.mark.slow

# The fixture app answers {"deployment_id", "version"}: make its version name its port.
BY_PORT = 'process.env.APP_VERSION = "port-" + process.env.PORT;'


def _json(done: Any) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


class Client:
    """One kept-alive connection to the router."""

    def __init__(self, port: int, host: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.host = host

    def request(self, path: str = "/", method: str = "GET", **kwargs: Any) -> tuple[int, bytes]:
        headers = {"Host": self.host, **kwargs.pop("headers", {})}
        self.conn.request(method, path, headers=headers, **kwargs)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def test_a_real_app_through_the_router(live_server: Callable[..., Any], tmp_path: Path) -> None:
    port = free_port()
    server = live_server(
        args=["--router-port", str(port)], env={"AETHER_ROLLOUT_TIMEOUT_SECS": "30"}
    )
    folder = app_copy(tmp_path, "echo", "1.0.0", boot_js=ECHO_HEADERS + BY_PORT)
    code, result = deploy(server.env, folder)
    assert code == 0, result
    url = f"http://echo.localhost:{port}/"
    assert result["url"] == url
    listed = _json(cli(server.env, "list", "--format", "json"))
    assert [app["url"] for app in listed["apps"]] == [url]

    host = f"echo.localhost:{port}"
    client = Client(port, host)
    assert {client.request("/")[0] for _ in range(50)} == {200}  # one connection, many requests
    on_the_api_port = Client(server.port, f"echo.localhost:{server.port}")
    assert on_the_api_port.request("/")[0] == 200
    on_the_api_port.close()
    status, body = client.request("/headers", headers=hostile_headers(server.admin_token))
    assert_echo_is_clean(status, body, host=host, token=server.admin_token)
    posted = client.request("/headers", "POST", body=b"x" * 100_000)
    assert posted[0] == 200 and json.loads(posted[1])["content-length"] == "100000"
    client.close()

    smuggler = Client(port, host)
    smuggled = smuggler.request("/headers", "POST", headers=SMUGGLED_HEADERS, body=SMUGGLED_BODY)
    assert smuggled[0] == 400
    smuggler.close()

    _json(cli(server.env, "scale", "echo", "2", "--format", "json"))
    spread = Client(port, host)

    def both_instances_answer() -> bool:
        versions = {json.loads(spread.request("/")[1])["version"] for _ in range(8)}
        return len(versions) == 2

    wait_for(both_instances_answer, what="requests spread over two instances")

    failures: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def request_loop() -> None:
        looping = Client(port, host)
        while not stop.is_set():
            answer = looping.request("/")
            if answer[0] != 200:
                failures.append(answer)
        looping.close()

    loop = threading.Thread(target=request_loop)
    loop.start()
    try:
        restarted = _json(cli(server.env, "restart", "echo", "--format", "json"))
    finally:
        stop.set()
        loop.join(timeout=30)
    assert restarted["status"] == "running"
    assert failures == []
    spread.close()


# Runs before the fixture app's server.js: GET /hold answers once GET /release came;
# GET /arrived says whether a /hold is waiting.
HOLD = """
{
  const httpModule = require("http");
  const createServer = httpModule.createServer;
  const held = [];
  httpModule.createServer = (handler) => createServer((req, res) => {
    if (req.url === "/hold") return held.push(res);
    if (req.url === "/arrived") return res.end(held.length ? "yes" : "no");
    if (req.url === "/release") {
      held.splice(0).forEach((r) => r.end("released\\n"));
      return res.end("ok");
    }
    return handler(req, res);
  });
}
"""


def _direct(endpoint: str, path: str) -> bytes:
    with urllib.request.urlopen(endpoint + path, timeout=10) as response:
        return bytes(response.read())


def test_stopping_the_server_lets_app_answers_in_flight_finish(
    live_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = live_server()  # apps on the API's port
    port = server.port
    code, result = deploy(server.env, app_copy(tmp_path, "held", "1.0.0", boot_js=HOLD))
    assert code == 0, result
    endpoint = api_get(server, f"/deployments/{result['deployment_id']}")["endpoint"]
    answers: list[tuple[int, bytes]] = []

    def held_request() -> None:
        client = Client(port, f"held.localhost:{port}")
        answers.append(client.request("/hold"))
        client.close()

    waiting = threading.Thread(target=held_request)
    waiting.start()
    wait_for(lambda: _direct(endpoint, "/arrived") == b"yes", what="the request reaching the app")
    server.process.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    wait_for(refused, what="the router to stop accepting")
    _direct(endpoint, "/release")
    waiting.join(timeout=30)
    assert answers == [(200, b"released\n")]
    assert server.process.wait(timeout=30) == 0
