"""The client's HTTP/1.1 wire (``aether.client.wire``) against servers that answer with exact
bytes: body framing (length, chunked, to the close), answers cut short, interim answers,
header injection, and https through a proxy's CONNECT tunnel."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from http_support import scripted_server, self_signed

from aether.client import http, wire
from aether.client.http import HttpSession, TransportError
from plugins.fresh_imports import modules_loaded_by

RawServerT = TypeVar("RawServerT", bound="RawServer")


class RawServer:
    """Accepts connections on loopback; answers each request with the next scripted bytes
    (a request is its head plus a ``Content-Length`` body); a ``None`` after an answer closes
    the connection once that answer is sent."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._answer_all(conn)

    def _answer_all(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        while self.answers:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = reader.readline()
                if not line:
                    return
                head += line
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            self.requests.append(head + reader.read(length))
            answer = self.answers.pop(0)
            if answer is not None:
                conn.sendall(answer)
            if answer is None or (self.answers and self.answers[0] is None):
                if self.answers:
                    self.answers.pop(0)
                return

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def running(server: RawServerT) -> Iterator[RawServerT]:
    """``server`` accepting on its own thread while the block runs."""
    server.thread.start()
    try:
        yield server
    finally:
        server.listener.close()
        server.thread.join(timeout=5)


def raw_server(*answers: bytes | None) -> contextlib.AbstractContextManager[RawServer]:
    return running(RawServer(list(answers)))


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_chunked_body_with_extensions_and_trailers_is_read_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    with raw_server(chunked, OK) as server, HttpSession() as session:
        assert session.get(server.url("/one")).content == b"hello world"
        assert session.get(server.url("/two")).content == b"ok"
    assert server.connections == 1


def test_streamed_lines_arrive_across_chunks() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n6\r\n: 1}\n{\r\n8\r\n"b": 2}\n\r\n0\r\n\r\n'
    )
    with raw_server(chunked) as server, HttpSession() as session:
        response = session.get(server.url(), stream=True)
        assert list(response.iter_lines()) == [b'{"a": 1}', b'{"b": 2}']


def test_a_chunked_stream_cut_mid_way_is_an_error_not_a_clean_end() -> None:
    cut = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"a": 1}\n\r\n20\r\n{"b"'
    with raw_server(cut, None) as server, HttpSession() as session:
        response = session.get(server.url(), stream=True)
        lines = response.iter_lines()
        assert next(lines) == b'{"a": 1}'
        with pytest.raises(TransportError) as caught:
            list(lines)
    assert caught.value.reason == "connection closed by the server"


def test_a_body_shorter_than_its_length_is_an_error() -> None:
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    with raw_server(short, None) as server, HttpSession() as session:
        with pytest.raises(TransportError) as caught:
            session.get(server.url())
    assert caught.value.reason == "connection closed by the server"


def test_a_body_without_a_length_ends_at_the_close_and_the_connection_is_not_reused() -> None:
    unframed = b"HTTP/1.1 200 OK\r\n\r\nto the end"
    with raw_server(unframed, None, OK) as server, HttpSession() as session:
        assert session.get(server.url()).content == b"to the end"
        assert session.get(server.url()).content == b"ok"
    assert server.connections == 2


def test_an_interim_100_continue_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    with raw_server(answer) as server, HttpSession() as session:
        response = session.request("POST", server.url(), data=b"body")
    assert (response.status_code, response.content) == (200, b"ok")


def test_a_head_answer_has_no_body_even_with_a_length() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    with raw_server(head, OK) as server, HttpSession() as session:
        assert session.request("HEAD", server.url()).content == b""
        assert session.get(server.url()).content == b"ok"  # same connection, still in step
    assert server.connections == 1


def test_the_request_carries_host_and_its_body_in_the_bytes_sent() -> None:
    with raw_server(OK) as server, HttpSession() as session:
        session.request("POST", server.url("/deployments?x=1"), json={"a": 1})
    (sent,) = server.requests
    head, _, body = sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /deployments?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Content-Length: 8" in lines and body == b'{"a": 1}'


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    with raw_server(OK) as server, HttpSession() as session:
        with pytest.raises(ValueError):
            session.get(server.url(), headers={"X-Note": "a\r\nInjected: yes"})
    assert server.requests == []


def test_a_garbled_status_line_is_reported() -> None:
    with raw_server(b"SSH-2.0-OpenSSH\r\n\r\n", None) as server, HttpSession() as session:
        with pytest.raises(TransportError) as caught:
            session.get(server.url())
    assert caught.value.reason == "WireError"


def test_https_goes_through_the_proxys_connect_tunnel(tmp_path: Path, monkeypatch) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with scripted_server(context.wrap_socket) as origin, tunnel_proxy() as proxy:
        monkeypatch.setattr(http, "_TLS", None)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:pw@127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with HttpSession() as session:
            response = session.get(f"https://127.0.0.1:{origin.server_address[1]}/secure")
        assert response.status_code == 200
    (connect,) = proxy.requests
    assert connect.startswith(f"CONNECT 127.0.0.1:{origin.server_address[1]} HTTP/1.1".encode())
    assert b"Proxy-Authorization: Basic dXNlcjpwdw==" in connect
    assert origin.seen[0]["path"] == "/secure"  # the origin saw the request, in TLS


class TunnelProxy(RawServer):
    """Answers one CONNECT with 200, then relays bytes both ways until either side closes."""

    def _answer_all(self, conn: socket.socket) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += conn.recv(1)
        self.requests.append(head)
        self.answers.clear()
        authority = head.split(b" ")[1].decode()
        host, port = authority.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            other = threading.Thread(target=_relay, args=(upstream, conn), daemon=True)
            other.start()
            _relay(conn, upstream)
            other.join(timeout=5)


def _relay(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def tunnel_proxy() -> contextlib.AbstractContextManager[TunnelProxy]:
    return running(TunnelProxy([b"one tunnel"]))


def test_connecting_by_an_ascii_name_imports_no_idna_codec() -> None:
    """A ``str`` host would make ``getaddrinfo`` import the idna codec (with stringprep and
    unicodedata) on every command's first request; an ASCII name is looked up as bytes."""
    loaded = modules_loaded_by(
        "import socket\n"
        "from aether.client.wire import Connection\n"
        "listener = socket.create_server(('127.0.0.1', 0))\n"
        "connection = Connection('localhost', listener.getsockname()[1], timeout=5)\n"
        "connection.connect()\n"
        "connection.sock.close()\n"
    )
    assert not loaded & {"encodings.idna", "stringprep"}


def test_a_non_ascii_name_is_still_looked_up_through_idna() -> None:
    assert wire._resolvable("localhost") == b"localhost"
    assert wire._resolvable("bücher.example") == "bücher.example"
