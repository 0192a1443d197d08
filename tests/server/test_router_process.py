"""The router in its own process, as ``aether serve`` runs it on the API's port: it answers
from a process of its own, follows a cutover as soon as the server hears of it (not after its
look-ups expire), is started again when it dies, and stops accepting when the server stops.
Upstreams are stub HTTP servers on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
from seeding import insert_running_deployment

from aether.server.router import process as router_process
from aether.server.router.process import RouterService
from conftest import ApiHarness
from plugins.polling import wait_for


class PortHandler(BaseHTTPRequestHandler):
    """Answers with its server's port, and the pid of whoever connected."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = str(self.server.server_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def ports() -> Iterator[list[int]]:
    """Two stub apps; each answers its own port."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), PortHandler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [int(server.server_address[1]) for server in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


class Running:
    def __init__(self, api: ApiHarness) -> None:
        self.api = api
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        # In front of an API that is not there: these tests ask for apps alone.
        self.service = RouterService(self.listener, api="/nonexistent/api.sock")
        self.job = api.client.portal.start_task_soon(self.service, api.state)  # type: ignore[union-attr]

    def child_pid(self) -> int:
        child = self.service._child
        assert child is not None
        return int(child.pid)

    def get(self, timeout: float = 10.0) -> str:
        """The answer of the app ``hello`` through the router, once the router answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{self.port}/",
                    headers={"Host": "hello.localhost"},
                    timeout=5,
                )
                return answer.text
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        portal: Any = self.api.client.portal
        portal.call(self.api.state.stopping.set)
        self.job.result(timeout=30)
        portal.call(self.service.drained)


@pytest.fixture
def router(api: ApiHarness) -> Iterator[Running]:
    running = Running(api)
    try:
        yield running
    finally:
        running.stop()


async def _app_at(db: Any, name: str, port: int, *more: int) -> None:
    """App ``name`` cut over to answer on ``port`` (and ``more``: its other instances)."""
    await insert_running_deployment(db, name, *(f"http://127.0.0.1:{p}" for p in (port, *more)))


def test_answers_from_its_own_process_and_follows_a_cutover_at_once(
    api: ApiHarness, router: Running, ports: list[int]
) -> None:
    api.run(_app_at, "hello", ports[0])
    assert router.get() == str(ports[0])
    assert router.child_pid() != os.getpid()
    api.run(_app_at, "hello", ports[1])
    # The router's own look-up of the app is still fresh (kept for a second): only the
    # server's word that the endpoints moved sends this request to the new one.
    assert router.get() == str(ports[1])


def test_a_router_process_that_dies_is_started_again_later_each_time(
    api: ApiHarness,
    ports: list[int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(router_process, "RESTART_DELAY_SECS", 0.1)
    router = Running(api)
    try:
        api.run(_app_at, "hello", ports[0])
        assert router.get() == str(ports[0])
        for _ in range(2):
            dead = router.child_pid()
            os.kill(dead, signal.SIGKILL)
            wait_for(
                lambda dead=dead: router.service._child is not None and router.child_pid() != dead,
                timeout=15,
                what="the router process started again",
            )
            assert router.get(timeout=15) == str(ports[0])
    finally:
        router.stop()
    said = [r.getMessage() for r in caplog.records if "router process ended" in r.getMessage()]
    # A child that ends soon after its start waits twice as long as the one before it.
    assert [m.rsplit(" ", 1)[-1] for m in said] == ["0.1s", "0.2s"]


def test_stopping_closes_the_listener_and_ends_the_process(
    api: ApiHarness, ports: list[int]
) -> None:
    running = Running(api)
    api.run(_app_at, "hello", ports[0])
    assert running.get() == str(ports[0])
    child = running.child_pid()
    running.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", running.port), timeout=5).close()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_requests_take_every_instance_in_turn(
    api: ApiHarness, router: Running, ports: list[int]
) -> None:
    """Also an instance the router has no idle connection to yet: its turn is not skipped
    for one that has (it would never get one)."""
    api.run(_app_at, "hello", *ports)
    router.get()
    with httpx.Client(base_url=f"http://127.0.0.1:{router.port}", timeout=5) as client:
        answers = [client.get("/", headers={"Host": "hello.localhost"}).text for _ in range(6)]
    assert set(answers) == {str(port) for port in ports}, answers


def test_an_answer_given_before_a_large_upload_was_read_reaches_the_client(
    api: ApiHarness,
) -> None:
    """The API may answer an upload before reading it all (a full disk: 503) and close; the
    router's next write of the body then fails, and the answer waiting on the socket is what
    the client gets — also on a kept-alive connection, where a failed write with nothing read
    looks like one the API had closed while idle — not a 502."""
    folder = tempfile.mkdtemp(prefix="aether-api-", dir="/tmp")  # (a short socket path)
    path = os.path.join(folder, "api.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()

    def serve(peer: socket.socket) -> None:
        """Answers a GET and keeps the connection; answers an upload after its first MiB."""
        with peer:
            seen = b""
            while True:
                while b"\r\n\r\n" not in seen:
                    if not (data := peer.recv(65536)):
                        return
                    seen += data
                if seen.startswith(b"GET"):
                    seen = seen.split(b"\r\n\r\n", 1)[1]
                    peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                while len(seen) < 1 << 20:  # some of the body: then the disk is full
                    seen += peer.recv(65536)
                peer.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n"
                    b"Connection: close\r\n\r\ndisk full"
                )
                return

    def accept() -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(peer,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    front = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{front.getsockname()[1]}"
    service = RouterService(front, api=path)
    job = api.client.portal.start_task_soon(service, api.state)  # type: ignore[union-attr]
    try:
        wait_for(
            lambda: requests.get(f"{url}/config", timeout=5).text == "ok",
            ignoring=(requests.ConnectionError,),
        )
        for _ in range(5):  # each upload follows a GET: the router's pooled connection
            assert requests.get(f"{url}/config", timeout=5).text == "ok"
            body = os.urandom(8 << 20)
            answer = requests.put(f"{url}/blobs/upload", data=body, timeout=30)
            assert (answer.status_code, answer.text) == (503, "disk full")
    finally:
        portal: Any = api.client.portal
        portal.call(api.state.stopping.set)
        job.result(timeout=30)
        portal.call(service.drained)
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
