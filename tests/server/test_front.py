"""The router in front of the API, as ``aether serve`` runs it: on one port, app hosts go to
the apps and everything else to hypercorn on its private unix socket, streamed both ways.
The API behind it sees the client's own address, its credentials, and its leaving."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from router_support import running_router
from test_proxy import _app_with, upstream  # noqa: F401  (a fixture)

from aether.errors import ConfigError
from aether.server.launch import BehindTheRouter, internal_listener
from aether.settings import ServerSettings
from conftest import ApiHarness

MIB = 1 << 20
# Where a request goes does not depend on the database: one backend is enough here.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


class Probe:
    """The API's app with a few test routes under ``/_probe/`` in front of it, and a record
    of the scope each request reached the API with."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.scopes: list[dict[str, Any]] = []
        self.in_flight = threading.Event()
        self.left = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the harness's own client runs the API's lifespan
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.scopes.append(scope)
        path = scope["path"]
        if path == "/_probe/size":
            size = 0
            while True:
                message = await receive()
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            await _answer(send, str(size).encode())
        elif path == "/_probe/bytes":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(32):
                await send({"type": "http.response.body", "body": b"x" * MIB, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/_probe/slow":
            self.in_flight.set()
            await asyncio.sleep(1.0)
            await _answer(send, b"late")
        elif path == "/_probe/early":  # answered before its body is read (a failed auth)
            await _answer(send, b"no")
        elif path == "/_probe/follow":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
            while (await receive())["type"] != "http.disconnect":
                pass
            self.left.set()
        else:
            await self.app(scope, receive, send)


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _event() -> asyncio.Event:
    return asyncio.Event()


@contextlib.contextmanager
def fronted(api: ApiHarness, tmp_path: Path, **router: Any) -> Iterator[tuple[Any, Probe]]:
    """The API on hypercorn behind a router; yields the router and the probe."""
    portal = api.client.portal
    assert portal is not None
    probe = Probe(api.client.app)
    stop = portal.call(_event)
    with internal_listener(tmp_path / "data") as (sock, path):
        config = Config()
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
        config.accesslog = None
        config.graceful_timeout = 2.0
        app = BehindTheRouter(probe, "http")
        served = portal.start_task_soon(
            functools.partial(serve, app, config, shutdown_trigger=stop.wait)
        )
        try:
            with running_router(api, front_of=path, **router) as front:
                yield front, probe
        finally:
            portal.call(_set, stop)
            served.result(timeout=10)


async def _set(event: asyncio.Event) -> None:
    event.set()


def client_of(front: Any, address: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    base = f"http://127.0.0.1:{front.port}"
    return httpx.Client(base_url=base, transport=transport, timeout=30)


@sqlite_only
def test_the_api_sees_the_clients_address_and_its_credentials(
    api: ApiHarness, tmp_path: Path
) -> None:
    with fronted(api, tmp_path) as (front, probe), client_of(front, "127.0.0.2") as client:
        forged = {"X-Forwarded-For": "10.9.9.9", **api.headers("admin")}
        whoami = client.get("/whoami", headers=forged)
    assert whoami.status_code == 200 and whoami.json()["role"] == "admin"
    scope = probe.scopes[-1]
    assert scope["client"] == ("127.0.0.2", 0)  # the peer, not what the client wrote
    assert scope["scheme"] == "http"


@sqlite_only
def test_apps_and_the_api_share_the_port(api: ApiHarness, tmp_path: Path, upstream: str) -> None:  # noqa: F811
    api.run(_app_with, "hello", upstream)
    with fronted(api, tmp_path) as (front, _), client_of(front) as client:
        app = client.get("/x", headers={"Host": "hello.localhost:8080"})
        health = client.get("/healthz")
        missing = client.get("/", headers={"Host": "nope.localhost:8080"})
    assert app.status_code == 200 and app.json()["path"] == "/x"
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


@sqlite_only
def test_big_bodies_stream_both_ways_and_a_slow_answer_is_not_cut(
    api: ApiHarness, tmp_path: Path
) -> None:
    """No body limit of the router's, and no silence limit: the API times its own requests."""
    with fronted(api, tmp_path, idle_secs=0.2) as (front, _), client_of(front) as client:
        chunks = (b"u" * MIB for _ in range(48))
        uploaded = client.post("/_probe/size", content=chunks)
        downloaded = client.get("/_probe/bytes")
        slow = client.get("/_probe/slow")
    assert uploaded.status_code == 200 and uploaded.text == str(48 * MIB)
    assert downloaded.status_code == 200 and len(downloaded.content) == 32 * MIB
    assert slow.status_code == 200 and slow.text == "late"


@sqlite_only
def test_an_answer_given_before_the_body_arrived_reaches_the_client(
    api: ApiHarness, tmp_path: Path
) -> None:
    """hypercorn closes a connection whose request body it has not read after answering: the
    body, sent later, must not make the router lose the answer."""
    with fronted(api, tmp_path) as (front, _):
        answers = []
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
                head = b"POST /_probe/early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                sock.sendall(head)
                time.sleep(0.0005)  # the body in a packet of its own, as clients send it
                sock.sendall(b"hello")
                answers.append(sock.recv(65536).split(b"\r\n", 1)[0])
    assert set(answers) == {b"HTTP/1.1 200 OK"}


@sqlite_only
def test_the_api_hears_a_client_leave_a_stream(api: ApiHarness, tmp_path: Path) -> None:
    with fronted(api, tmp_path) as (front, probe), client_of(front) as client:
        with client.stream("GET", "/_probe/follow") as response:
            assert next(response.iter_lines()) == "first"
        assert probe.left.wait(10)


@sqlite_only
def test_stopping_lets_api_answers_in_flight_finish(api: ApiHarness, tmp_path: Path) -> None:
    answers: list[httpx.Response] = []
    with fronted(api, tmp_path) as (front, probe), client_of(front) as client:
        asking = threading.Thread(target=lambda: answers.append(client.get("/_probe/slow")))
        asking.start()
        assert probe.in_flight.wait(10)
        api.client.portal.call(front.stop, 5.0)  # type: ignore[union-attr]
        asking.join(10)
        with pytest.raises(httpx.ConnectError):
            client_of(front).get("/healthz")
    assert [a.text for a in answers] == ["late"]


def test_the_internal_listener_is_private_and_cleaned_up(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with internal_listener(data) as (_, path):
        directory = Path(path).parent
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(Path(path).stat().st_mode)
    assert not directory.exists()
    run = data / "run"
    if str(directory).startswith(str(run)):  # a killed server's left-overs go at the next start
        dead = run / "api-dead"
        dead.mkdir()
        with socket.socket(socket.AF_UNIX) as orphan:
            orphan.bind(str(dead / "api.sock"))
        with internal_listener(data):
            assert not dead.exists()


@pytest.mark.parametrize(
    "env",
    [
        {"AETHER_APPS_URL": "apps.example.net"},
        {"AETHER_APPS_URL": "https://apps.example.net/path"},
        {"AETHER_APPS_URL": "ftp://apps.example.net"},
        {"AETHER_APPS_URL": "https://apps.example.net", "AETHER_APPS_DOMAIN": "other.net"},
    ],
)
def test_a_bad_apps_url_stops_the_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="AETHER_APPS"):
        ServerSettings.from_env(env)
