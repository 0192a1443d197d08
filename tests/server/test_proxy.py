"""Host-header routing: ``<app>.localhost`` goes through the router to the app's running
endpoint, streaming; errors come back as the JSON envelope. The upstream is a stub HTTP
server on loopback."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from router_support import router_client
from seeding import insert_artifact

from aether.errors import ConfigError
from aether.server.hosts import Hosts
from aether.store import apps as app_store
from aether.store.clock import now_iso
from conftest import ApiHarness


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        if self.path == "/stream":
            self._stream()
            return
        self._echo(b"")

    def do_POST(self) -> None:
        self._echo(self._body())

    def do_HEAD(self) -> None:  # the length a GET would have, no body
        self.send_response(200)
        self.send_header("Content-Length", "42")
        self.end_headers()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") == "chunked":
            data = b""
            while size := int(self.rfile.readline().strip(), 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _echo(self, body: bytes) -> None:
        payload = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "forwarded_proto": self.headers.get("X-Forwarded-Proto"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "peer": list(self.client_address),
                "body": body.decode(),
            }
        ).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b"one\n", b"two\n", b"three\n"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def _app_with(db: Any, name: str, endpoint: str | None, status: str = "running") -> None:
    app = await app_store.create_app(db, name, owner=None)
    artifact = await insert_artifact(db, app["id"])
    await db.execute(
        "INSERT INTO deployments (id, app_id, artifact_id, status, endpoint, created_at)"
        " VALUES (:id, :app_id, :artifact_id, :status, :endpoint, :now)",
        {
            "id": str(uuid.uuid4()),
            "app_id": app["id"],
            "artifact_id": artifact["id"],
            "status": status,
            "endpoint": endpoint,
            "now": now_iso(),
        },
    )


@pytest.fixture
def via(make_api: Any) -> Iterator[Callable[[ApiHarness], Any]]:
    """How a test reaches its apps: the router on a real loopback port."""
    with contextlib.ExitStack() as stack:
        yield lambda api: stack.enter_context(router_client(api))


def proxied(client: Any, method: str, path: str, app: str, **kwargs: Any) -> Any:
    headers = {"Host": f"{app}.localhost:8080", **kwargs.pop("headers", {})}
    return client.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("hello.localhost", "hello"),
        ("hello.localhost:8080", "hello"),
        ("Hello.LocalHost:1", "hello"),
        ("hello.aether.example.com", "hello"),
        ("localhost:8080", None),
        ("127.0.0.1:8080", None),
        ("a.b.localhost", None),
        ("-bad.localhost", None),
        ("hello.example.org", None),
    ],
)
def test_app_from_host(host: str, expected: str | None) -> None:
    hosts = Hosts.from_settings("https://aether.example.com", None)
    local = Hosts.from_settings("http://127.0.0.1:8080", None)
    assert (local if "localhost" in host.lower() else hosts).app_from_host(host) == expected


def test_app_host_is_proxied_without_a_token(via: Any, api: ApiHarness, upstream: str) -> None:
    client = via(api)
    api.run(_app_with, "hello", upstream)
    response = proxied(client, "GET", "/some/path?x=1", "hello")
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "yes"
    body = response.json()
    assert body["path"] == "/some/path?x=1"
    assert body["host"] == "hello.localhost:8080"
    assert body["forwarded_proto"] == "http"


def test_request_body_is_forwarded(via: Any, api: ApiHarness, upstream: str) -> None:
    client = via(api)
    api.run(_app_with, "hello", upstream)
    response = proxied(client, "POST", "/items", "hello", content=b'{"a": 1}')
    assert response.status_code == 201
    assert response.json()["body"] == '{"a": 1}'


def test_chunked_response_streams_through(via: Any, api: ApiHarness, upstream: str) -> None:
    client = via(api)
    api.run(_app_with, "hello", upstream)
    response = proxied(client, "GET", "/stream", "hello")
    assert response.status_code == 200
    assert response.text == "one\ntwo\nthree\n"


def test_unknown_app_is_404(via: Any, api: ApiHarness) -> None:
    client = via(api)
    response = proxied(client, "GET", "/", "nope")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_app_with_nothing_running_is_503(via: Any, api: ApiHarness) -> None:
    client = via(api)
    api.run(_app_with, "idle", None, status="pending")
    response = proxied(client, "GET", "/", "idle")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


def test_unreachable_upstream_is_502(via: Any, api: ApiHarness) -> None:
    client = via(api)
    from aether.worker.runtimes.health import free_port

    api.run(_app_with, "dead", f"http://127.0.0.1:{free_port()}")
    response = proxied(client, "GET", "/", "dead")
    assert response.status_code == 502
    assert set(response.json()) == {"code", "message"}


def test_the_control_planes_credentials_never_reach_an_app(
    via: Any, api: ApiHarness, upstream: str
) -> None:
    """The proxy once forwarded the admin's Authorization and dashboard cookies to apps."""
    client = via(api)
    api.run(_app_with, "hello", upstream)
    cookies = "theme=dark; aether_session=s1; __Host-aether_session=s2; aether_signin=x; id=7"
    response = proxied(
        client,
        "GET",
        "/",
        "hello",
        headers={**api.headers("admin"), "Cookie": cookies, "Proxy-Authorization": "Basic x"},
    )
    seen = response.json()["headers"]
    assert "authorization" not in seen and "proxy-authorization" not in seen
    assert seen["cookie"] == "theme=dark; id=7"  # the app's own cookies, untouched


def test_forwarded_headers_are_set_by_the_proxy_not_the_client(
    via: Any, api: ApiHarness, upstream: str
) -> None:
    client = via(api)
    api.run(_app_with, "hello", upstream)
    forged = {
        "X-Forwarded-For": "10.9.9.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    seen = proxied(client, "GET", "/", "hello", headers=forged).json()["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the peer, nothing appended
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "hello.localhost:8080"


def test_transfer_encoding_with_content_length_is_refused(
    via: Any, api: ApiHarness, upstream: str
) -> None:
    client = via(api)
    api.run(_app_with, "hello", upstream)
    response = proxied(
        client,
        "POST",
        "/",
        "hello",
        content=b"5\r\nhello\r\n0\r\n\r\n",
        headers={"Transfer-Encoding": "chunked", "Content-Length": "15"},
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_request"


def test_an_app_named_after_the_apis_host_is_refused_and_never_answers_for_it(
    make_api: Any, via: Any, upstream: str
) -> None:
    """With the API on aether.localhost, an app named aether once answered the admin."""
    api = make_api(env={"AETHER_PUBLIC_URL": "http://aether.localhost:8080"})
    for name in ("aether", "api", "www"):
        response = api.post("/apps", json={"name": name}, as_="deployer")
        assert response.status_code == 409 and response.json()["code"] == "conflict"
        assert "reserved" in response.json()["message"] or "API" in response.json()["message"]
    presign = {"app_name": "aether", "digest": "ab" * 32, "size_bytes": 10}
    assert api.post("/artifacts/presign", json=presign, as_="deployer").status_code == 409
    api.run(_app_with, "aether", upstream)  # even a row that exists (an older server's)
    client = via(api)
    routed = client.get("/whoami", headers={"Host": "aether.localhost:8080"})
    assert routed.status_code == 404  # not the app: the API's host, which the front keeps


def test_apps_domain_setting(make_api: Any) -> None:
    api = make_api(
        env={"AETHER_PUBLIC_URL": "https://api.example.com", "AETHER_APPS_DOMAIN": "example.net"}
    )
    created = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    assert created["url"] == "https://shop.example.net/"
    hosts = api.state.hosts
    assert hosts.app_from_host("shop.example.net") == "shop"
    assert hosts.app_from_host("shop.api.example.com") is None
    assert hosts.warnings() == []


@pytest.mark.parametrize(
    ("public_url", "apps_domain", "warned"),
    [
        ("https://api.example.com", None, True),  # apps under the API's own host
        ("https://api.example.com", "apps.example.com", True),  # the same registrable domain
        ("https://api.example.com", "example.com", True),  # the API's parent
        ("https://api.example.com", "example-apps.net", False),
        ("http://127.0.0.1:8080", None, False),  # the embedded default: <app>.localhost
    ],
)
def test_apps_domain_warnings(public_url: str, apps_domain: str | None, warned: bool) -> None:
    assert bool(Hosts.from_settings(public_url, apps_domain).warnings()) is warned


def test_the_apps_domain_may_not_be_the_apis_host() -> None:
    with pytest.raises(ConfigError, match="AETHER_APPS_DOMAIN"):
        Hosts.from_settings("https://api.example.com", "api.example.com")


def test_upstream_connections_are_kept_open_between_requests(
    via: Any, api: ApiHarness, upstream: str
) -> None:
    client = via(api)
    api.run(_app_with, "hello", upstream)
    peers = {tuple(proxied(client, "GET", f"/{n}", "hello").json()["peer"]) for n in range(5)}
    posted = proxied(client, "POST", "/items", "hello", content=b"x" * 1000).json()
    assert len(peers) == 1  # one connection served all five
    assert tuple(posted["peer"]) in peers
    assert posted["body"] == "x" * 1000


class OneAnswerPerConnection(EchoHandler):
    """Answers one request per connection, then closes it when the next one arrives without
    answering: the race of a keep-alive connection the app closes while it is reused."""

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        self.rfile.readline()  # the next request: dropped unanswered


@pytest.fixture
def closing_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneAnswerPerConnection)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_request_that_meets_a_closed_pooled_connection_goes_again(
    via: Any, api: ApiHarness, closing_upstream: str
) -> None:
    client = via(api)
    api.run(_app_with, "flaky", closing_upstream)
    answers = [proxied(client, "GET", "/a", "flaky") for _ in range(3)]
    answers.append(proxied(client, "POST", "/b", "flaky", content=b"payload"))
    assert [a.status_code for a in answers] == [200, 200, 200, 201]
    assert answers[-1].json()["body"] == "payload"
    assert len({tuple(a.json()["peer"]) for a in answers}) == 4  # each on a fresh connection


def test_a_clients_connection_close_does_not_close_the_upstream(
    via: Any, api: ApiHarness, upstream: str
) -> None:
    client = via(api)
    api.run(_app_with, "hello", upstream)
    first = proxied(client, "GET", "/", "hello", headers={"Connection": "close"}).json()
    second = proxied(client, "GET", "/", "hello").json()
    assert first["peer"] == second["peer"]  # the client's Connection header is not forwarded


def test_the_server_warns_at_start_when_apps_share_the_apis_domain(
    make_api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="aether.server"):
        make_api(env={"AETHER_PUBLIC_URL": "https://api.example.com"})
    assert any("AETHER_APPS_DOMAIN" in record.getMessage() for record in caplog.records)
