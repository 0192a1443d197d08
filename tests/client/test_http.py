"""The CLI's HTTP transport against real sockets: a stdlib HTTP server on loopback that
records what it was sent and answers as each test scripts it."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from http_support import scripted_server, self_signed, url_of

from aether.client.http import HttpSession, RetryPolicy, TransportError

FAST = RetryPolicy(backoff_secs=0.0)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    with scripted_server() as httpd:
        yield httpd


def test_json_params_and_headers_reach_the_server_on_one_kept_alive_connection(server) -> None:
    with HttpSession({"User-Agent": "aether-test"}) as session:
        first = session.request(
            "POST", url_of(server, "/apps"), json={"name": "shop"}, params={"dry": "true"}
        )
        second = session.get(url_of(server, "/apps"))
    assert first.status_code == second.status_code == 200 and first.json() == {"ok": True}
    sent, again = server.seen
    assert sent["path"] == "/apps?dry=true" and json.loads(sent["body"]) == {"name": "shop"}
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["User-Agent"] == "aether-test"
    assert sent["peer"] == again["peer"]  # the same client port: the connection was reused


def test_a_503_is_retried_for_get_honouring_retry_after_but_not_for_post(server) -> None:
    server.script += [(503, {"Retry-After": "0"}, b"busy"), (503, {}, b"busy")]
    with HttpSession(retry=FAST) as session:
        assert session.get(url_of(server)).status_code == 200
        assert len(server.seen) == 3
        server.script.append((503, {}, b"busy"))
        assert session.request("POST", url_of(server), json={}).status_code == 503
    assert len(server.seen) == 4  # a POST may have had effects: never replayed


def test_retries_stop_after_the_policy_and_return_the_last_answer(server) -> None:
    server.script += [(502, {}, b"bad gateway")] * 3
    with HttpSession(retry=FAST) as session:
        response = session.get(url_of(server))
    assert response.status_code == 502 and response.text == "bad gateway"
    assert len(server.seen) == 3  # the first try and two retries


def test_a_connection_the_server_closed_while_idle_is_replaced(server) -> None:
    with HttpSession() as session:
        session.get(url_of(server))
        server.script.append((200, {"Connection": "close"}, b"{}"))
        session.get(url_of(server))  # the server closes after answering this one
        assert session.get(url_of(server)).status_code == 200
    assert len(server.seen) == 3
    assert server.seen[1]["peer"] != server.seen[2]["peer"]


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with HttpSession(retry=FAST) as session, pytest.raises(TransportError) as caught:
            session.get(f"http://127.0.0.1:{port}/")
    assert caught.value.reason == "connection refused"


def test_a_read_timeout_is_reported_as_timed_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts into the backlog; nothing ever answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with HttpSession() as session, pytest.raises(TransportError) as caught:
            session.get(url, timeout=(5.0, 0.2))
    assert caught.value.reason == "timed out"


def test_a_sized_file_body_is_streamed_with_its_content_length(server, tmp_path: Path) -> None:
    payload = tmp_path / "blob"
    payload.write_bytes(b"x" * 3_000_000)
    with HttpSession() as session, payload.open("rb") as body:
        assert session.put(url_of(server, "/blob"), data=body).status_code == 200
    (sent,) = server.seen
    assert sent["headers"]["Content-Length"] == "3000000" and sent["body"] == b"x" * 3_000_000


def test_an_http_proxy_from_the_environment_gets_absolute_urls(server, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", url_of(server).rstrip("/"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with HttpSession() as session:
        session.get("http://control-plane.example:8080/whoami")
    (sent,) = server.seen
    assert sent["path"] == "http://control-plane.example:8080/whoami"
    assert sent["headers"]["Host"] == "control-plane.example:8080"


def test_no_proxy_sends_straight_to_the_host(server, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would refuse: never used
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with HttpSession() as session:
        assert session.get(url_of(server, "/direct")).status_code == 200
    assert server.seen[0]["path"] == "/direct"


def test_tls_trusts_the_bundle_named_by_the_environment(tmp_path: Path, monkeypatch) -> None:
    from aether.client import http

    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with scripted_server(context.wrap_socket) as httpd:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/secure"
        monkeypatch.setattr(http, "_TLS", None)  # the trust store is built once per process
        with HttpSession() as session, pytest.raises(TransportError) as caught:
            session.get(url)
        assert caught.value.reason == "TLS error"  # not in the system's store
        monkeypatch.setattr(http, "_TLS", None)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        with HttpSession() as session:
            assert session.get(url).status_code == 200


def test_get_follows_redirects_and_the_token_stays_with_its_origin(server) -> None:
    with scripted_server() as other:
        server.script += [
            (302, {"Location": "/moved"}, b""),
            (307, {"Location": url_of(other, "/elsewhere")}, b""),
        ]
        with HttpSession({"Authorization": "Bearer secret"}) as session:
            response = session.get(url_of(server, "/start"))
        assert response.status_code == 200
        assert [r["path"] for r in server.seen] == ["/start", "/moved"]
        assert all(r["headers"]["Authorization"] == "Bearer secret" for r in server.seen)
        (elsewhere,) = other.seen
        assert elsewhere["path"] == "/elsewhere" and "Authorization" not in elsewhere["headers"]


def test_a_post_gets_the_redirect_back_instead_of_following_it(server) -> None:
    server.script.append((308, {"Location": "https://elsewhere.example/"}, b""))
    with HttpSession() as session:
        response = session.request("POST", url_of(server, "/deployments"), json={})
    assert response.status_code == 308 and len(server.seen) == 1


def test_a_request_sent_early_is_answered_when_read(server) -> None:
    with HttpSession({"Authorization": "Bearer t"}) as session:
        answer = session.send_early("GET", url_of(server, "/config"))
        early = answer()
        assert early.status_code == 200 and early.json() == {"ok": True}
        assert session.get(url_of(server, "/next")).status_code == 200
        pending = session.send_early("GET", url_of(server, "/slow"))
        assert session.get(url_of(server, "/meanwhile")).status_code == 200  # its own connection
        assert pending().status_code == 200
    paths = [seen["path"] for seen in server.seen]
    assert paths == ["/config", "/next", "/slow", "/meanwhile"]
    assert server.seen[0]["headers"]["Authorization"] == "Bearer t"
    assert server.seen[0]["peer"] == server.seen[1]["peer"]  # back among the idle connections


def test_the_api_asks_again_for_what_an_early_request_did_not_get(server) -> None:
    from aether.client.api import ApiClient
    from aether.errors import RemoteError

    server.script += [(503, {}, b"busy"), (200, {}, b'{"limits": 1}')]
    with ApiClient(url_of(server), "t") as api:
        assert api.get_later("/config")() == {"limits": 1}  # the 503 is asked again
        server.script.append((401, {}, b'{"code": "unauthorized", "message": "bad token"}'))
        server.script.append((401, {}, b'{"code": "unauthorized", "message": "bad token"}'))
        with pytest.raises(RemoteError) as caught:
            api.get_later("/config")()
    assert caught.value.code == "unauthorized" and "bad token" in caught.value.message
    assert len(server.seen) == 4


def test_a_put_sent_early_raises_its_error_when_read(server) -> None:
    from aether.client.api import ApiClient
    from aether.errors import RemoteError

    server.script += [(204, {}, b""), (403, {}, b'{"code": "forbidden", "message": "no"}')]
    with ApiClient(url_of(server), "t") as api:
        api.put_later("/deployments/1/report", {"timings_ms": {"total": 1.0}})()
        answer = api.put_later("/deployments/2/report", {"timings_ms": {}})
        with pytest.raises(RemoteError) as caught:
            answer()
    assert caught.value.code == "forbidden"
    assert json.loads(server.seen[0]["body"]) == {"timings_ms": {"total": 1.0}}
    assert server.seen[0]["headers"]["Content-Type"] == "application/json"
