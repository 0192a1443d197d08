"""The app router on its own port, through real sockets: what only it does or what it must
refuse byte for byte (the behaviours shared with the API port's proxy are in test_proxy,
run on both). Upstreams are stub HTTP servers on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any, BinaryIO

import pytest
from router_support import router_client, running_router
from test_proxy import EchoHandler, _app_with, upstream  # noqa: F401  (a fixture)
from test_proxy_websocket import ws_upstream  # noqa: F401  (a fixture)
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from conftest import ApiHarness

HOST = b"hello.localhost:8080"


def read_response(stream: BinaryIO, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer from ``stream`` (Content-Length, chunked or until close)."""
    status_line = stream.readline()
    assert status_line, "the connection closed before an answer"
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head or 100 <= status < 200 or status in (204, 304):
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, stream.read(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int(stream.readline().strip(), 16):
            body += stream.read(size)
            stream.readline()
        stream.readline()
        return status, headers, body
    return status, headers, stream.read()


class Raw:
    """A plain socket to the router: bytes out, answers parsed back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.stream = self.sock.makefile("rb")

    def send(self, data: bytes) -> Raw:
        self.sock.sendall(data)
        return self

    def answer(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        return read_response(self.stream, head=head)

    def closed(self) -> bool:
        return self.stream.read() == b""

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


@pytest.fixture
def router_port(api: ApiHarness) -> Iterator[int]:
    with running_router(api) as router:
        yield router.port  # type: ignore[attr-defined]


@pytest.fixture
def raw(router_port: int) -> Iterator[Any]:
    opened: list[Raw] = []

    def connect() -> Raw:
        opened.append(Raw(router_port))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def hello(api: ApiHarness, raw: Any, upstream: str) -> Any:  # noqa: F811
    """``raw``, with the app ``hello`` routed to the echo upstream."""
    api.run(_app_with, "hello", upstream)
    return raw


def get(path: bytes = b"/", host: bytes = HOST, extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra)


def test_a_silent_app_is_504(api: ApiHarness) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # connections complete in the backlog; nothing ever answers
    try:
        api.run(_app_with, "slow", f"http://127.0.0.1:{listener.getsockname()[1]}")
        with router_client(api, idle_secs=0.3) as client:
            response = client.get("/", headers={"Host": "slow.localhost"})
    finally:
        listener.close()
    assert response.status_code == 504
    assert response.json()["code"] == "gateway_timeout"


def test_503_says_when_to_retry(api: ApiHarness, raw: Any) -> None:
    api.run(_app_with, "idle", None, status="pending")
    status, headers, body = raw().send(get(host=b"idle.localhost")).answer()
    assert status == 503 and headers["retry-after"] == "2"
    assert json.loads(body)["code"] == "service_unavailable"


def test_a_trusted_proxys_forwarded_for_is_extended(make_api: Any, upstream: str) -> None:  # noqa: F811
    api = make_api(env={"AETHER_TRUSTED_PROXIES": "127.0.0.1/32"})
    api.run(_app_with, "hello", upstream)
    headers = {
        "Host": HOST.decode(),
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",
    }
    with router_client(api) as client:
        trusted = client.get("/", headers=headers).json()["headers"]
    with router_client(api, local_address="127.0.0.2") as client:
        untrusted = client.get("/", headers=headers).json()["headers"]
    assert trusted["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert trusted["x-forwarded-proto"] == "https"
    assert untrusted["x-forwarded-for"] == "127.0.0.2"
    assert untrusted["x-forwarded-proto"] == "http"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: %s\r\nHost: other.localhost\r\n\r\n",
        b"GET http://other.localhost/ HTTP/1.1\r\nHost: %s\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: %s\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : %s\r\n\r\n",
        b"CONNECT hello.localhost:80 HTTP/1.1\r\nHost: %s\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    ],
)
def test_smuggling_shapes_are_refused_and_never_forwarded(
    hello: Any,
    request_bytes: bytes,
) -> None:
    conn = hello().send(request_bytes % HOST)
    status, headers, body = conn.answer()
    assert status in (400, 405), body
    assert "x-upstream" not in headers
    assert json.loads(body)["code"] == "bad_request"
    assert conn.closed()  # nothing after such a request is read


def test_a_head_too_large_is_431(hello: Any) -> None:
    conn = hello().send(get(extra=b"X-Big: " + b"a" * 20_000 + b"\r\n"))
    status, _, body = conn.answer()
    assert status == 431 and json.loads(body)["code"] == "bad_request"


@pytest.mark.parametrize(
    "host",
    [
        b"127.0.0.1:8080",
        b"localhost:8080",
        b"api.localhost",
        b"hello.example.org",
        b"a.b.localhost",
    ],
)
def test_only_app_hosts_are_routed(
    api: ApiHarness,
    raw: Any,
    upstream: str,  # noqa: F811
    host: bytes,
) -> None:
    """The API's host, reserved names (even with an app row) and other domains: 404 here."""
    api.run(_app_with, "api", upstream)
    api.run(_app_with, "hello", upstream)
    status, headers, body = raw().send(get(host=host)).answer()
    assert status == 404 and "x-upstream" not in headers
    assert json.loads(body)["code"] == "not_found"


def test_pipelined_requests_are_answered_in_order(hello: Any) -> None:
    post = b"POST /two HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % HOST
    conn = hello().send(get(b"/one") + post + get(b"/three"))
    answers = [conn.answer() for _ in range(3)]
    assert [json.loads(body)["path"] for _, _, body in answers] == ["/one", "/two", "/three"]
    assert json.loads(answers[1][2])["body"] == "hello"


def test_a_chunked_request_body_streams_to_the_app(hello: Any) -> None:
    conn = hello().send(
        b"POST /c HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % HOST
    )
    conn.send(b"5\r\nhello\r\n").send(b"6\r\n world\r\n").send(b"0\r\n\r\n")
    status, _, body = conn.answer()
    assert status == 201 and json.loads(body)["body"] == "hello world"
    assert json.loads(body)["headers"]["transfer-encoding"] == "chunked"


def test_expect_100_continue_is_passed_on(hello: Any) -> None:
    conn = hello().send(
        b"POST /e HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n" % HOST
    )
    assert conn.answer()[0] == 100  # the app's interim answer, before any body was sent
    status, _, body = conn.send(b"data").answer()
    assert status == 201 and json.loads(body)["body"] == "data"


def test_head_and_bodyless_answers_do_not_hang(hello: Any) -> None:
    conn = hello().send(b"HEAD / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST + get(b"/after"))
    status, headers, _ = conn.answer(head=True)
    assert status == 200 and int(headers["content-length"]) > 0
    status, _, body = conn.answer()  # the connection goes on after a HEAD
    assert status == 200 and json.loads(body)["path"] == "/after"


def test_an_http10_client_gets_a_streamed_answer_ending_with_the_connection(hello: Any) -> None:
    conn = hello().send(b"GET /stream HTTP/1.0\r\nHost: %s\r\n\r\n" % HOST)
    status, headers, body = conn.answer()
    assert status == 200 and "transfer-encoding" not in headers
    assert body == b"one\ntwo\nthree\n"


def test_a_websocket_is_tunnelled(api: ApiHarness, raw: Any, ws_upstream: str) -> None:  # noqa: F811
    api.run(_app_with, "chat", ws_upstream)
    conn = raw()
    ws = WSConnection(ConnectionType.CLIENT)
    handshake = Request(host="chat.localhost:8080", target="/socket?room=1", subprotocols=["v1"])
    conn.send(ws.send(handshake))
    events: list[Any] = []
    while not any(isinstance(e, TextMessage) for e in events):
        events += list(receive(ws, conn))
    assert isinstance(events[0], AcceptConnection) and events[0].subprotocol == "v1"
    assert events[1].data == "hello /socket?room=1"
    conn.send(ws.send(TextMessage(data="ping")))
    echoed: list[Any] = []
    while not echoed:
        echoed = [e for e in receive(ws, conn) if isinstance(e, TextMessage)]
    assert echoed[0].data == "ping"


def receive(ws: WSConnection, conn: Raw) -> list[Any]:
    data = conn.sock.recv(65536)
    assert data, "the tunnel closed"
    ws.receive_data(data)
    return list(ws.events())


class SlowHandler(EchoHandler):
    """Answers once the test lets it (``release``), to hold a request in flight."""

    arrived = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        SlowHandler.arrived.set()
        SlowHandler.release.wait(10)
        self._echo(b"")


def test_stopping_lets_answers_in_flight_finish(api: ApiHarness) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SlowHandler.arrived.clear()
    SlowHandler.release.clear()
    try:
        api.run(_app_with, "slow", f"http://127.0.0.1:{server.server_address[1]}")
        with running_router(api) as router:
            port = router.port  # type: ignore[attr-defined]
            idle = Raw(port)
            busy = Raw(port).send(get(host=b"slow.localhost"))
            assert SlowHandler.arrived.wait(10)
            stopping = api.client.portal.start_task_soon(router.stop, 10.0)  # type: ignore[union-attr]
            assert idle.closed()  # an idle keep-alive connection is closed at once
            SlowHandler.release.set()
            status, headers, _ = busy.answer()
            stopping.result(timeout=10)
            assert status == 200 and headers["connection"] == "close"
            with pytest.raises(OSError):
                Raw(port)  # no longer accepting
            idle.close()
            busy.close()
    finally:
        SlowHandler.release.set()
        server.shutdown()
        server.server_close()


class BigHandler(EchoHandler):
    """GET /big/N answers N bytes (Content-Length) or, at /big/N/chunked, in 64 KiB chunks."""

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[0] != "big":
            super().do_GET()
            return
        size, chunked = int(parts[1]), parts[-1] == "chunked"
        payload = bytes(range(256)) * (size // 256)
        self.send_response(200)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        for start in range(0, len(payload), 65536):
            piece = payload[start : start + 65536]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def test_large_bodies_stream_both_ways(api: ApiHarness) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BigHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    expected = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    try:
        api.run(_app_with, "big", f"http://127.0.0.1:{server.server_address[1]}")
        with router_client(api) as client:
            host = {"Host": "big.localhost"}
            assert client.get("/big/8388608", headers=host).content == expected
            assert client.get("/big/8388608/chunked", headers=host).content == expected

            def upload() -> Iterator[bytes]:
                for _ in range(64):
                    yield b"y" * 65536

            posted = client.post("/up", headers=host, content=upload())  # chunked, 4 MiB
            assert posted.status_code == 201
            assert posted.json()["body"] == "y" * (64 * 65536)
            again = client.get("/after", headers=host)  # the same connections go on
            assert again.json()["path"] == "/after"
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_that_leaves_mid_answer_leaves_no_half_read_connection_in_the_pool(
    api: ApiHarness,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BigHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = ("127.0.0.1", server.server_address[1])
    try:
        api.run(_app_with, "big", f"http://{endpoint[0]}:{endpoint[1]}")
        with running_router(api) as router:
            conn = Raw(router.port)  # type: ignore[attr-defined]
            conn.send(get(b"/big/33554432", host=b"big.localhost"))
            assert conn.stream.readline().startswith(b"HTTP/1.1 200")
            conn.close()
            deadline = time.monotonic() + 10
            while router.connections and time.monotonic() < deadline:
                time.sleep(0.01)  # polling for the router to see the close, bounded
            assert not router.connections
            assert router.pool.idle_count(endpoint) == 0
            fresh = Raw(router.port).send(get(b"/next", host=b"big.localhost"))  # type: ignore[attr-defined]
            assert json.loads(fresh.answer()[2])["path"] == "/next"
            fresh.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_that_half_closes_gets_its_answer_then_the_close(hello: Any) -> None:
    conn = hello().send(get(b"/one") + get(b"/two"))
    conn.sock.shutdown(socket.SHUT_WR)
    answers = [conn.answer() for _ in range(2)]
    assert [json.loads(body)["path"] for _, _, body in answers] == ["/one", "/two"]
    assert conn.closed()


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"AETHER_ROUTER_PORT": "8081"}, "http://shop.localhost:8081/"),
        ({}, "http://shop.localhost:8080/"),  # apps on the API's port
        (
            {"AETHER_ROUTER_PORT": "8081", "AETHER_RUNTIME": "kubernetes"},
            "http://shop.localhost:8080/",
        ),
        # Behind a load balancer: where users reach apps, whatever the router listens on.
        ({"AETHER_APPS_URL": "https://apps.example.net"}, "https://shop.apps.example.net/"),
        ({"AETHER_APPS_URL": "http://localhost:80/"}, "http://shop.localhost/"),
        (
            {"AETHER_APPS_URL": "https://localhost:8443", "AETHER_ROUTER_PORT": "8081"},
            "https://shop.localhost:8443/",
        ),
    ],
)
def test_app_urls_name_the_routers_port(make_api: Any, env: dict[str, str], url: str) -> None:
    api = make_api(env=env)
    created = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    assert created["url"] == url
