"""A lean HTTP/1.1 client for the CLI, on :mod:`aether.client.wire`'s connections.

Why not requests: importing requests and urllib3 costs about 90 ms, half of the CLI's
start-up, on commands whose wall time is the product (``aether deploy``; see
docs/benchmarks.md). What the CLI needs is small and kept here: one keep-alive connection per
origin, connect and read timeouts, JSON and streamed bodies, sized uploads, a retry policy
for connection failures and 502/503/504, proxies (``HTTPS_PROXY``, ``HTTP_PROXY``,
``NO_PROXY``) and TLS trust from the environment (the system store, ``REQUESTS_CA_BUNDLE``
or ``CURL_CA_BUNDLE``, and certifi when the system has no CA certificates). ssl is imported
only for an https origin.

A session is not thread-safe (like a requests session): threads use one each.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from aether.client.wire import Connection, ConnectionClosed, WireError, WireResponse

if TYPE_CHECKING:
    import ssl

Timeout = tuple[float | None, float | None]  # (connect, read) seconds; None waits forever
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
SEND_BLOCK = 1024 * 1024
STREAM_READ = 64 * 1024
MAX_RETRY_AFTER_SECS = 30.0
# GET and HEAD follow redirects (like curl -L); other methods get the 3xx back.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
log = logging.getLogger(__name__)  # origins and paths only: never headers, bodies or queries


class TransportError(Exception):
    """The request did not get an HTTP answer; ``reason`` says why in a few words."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class RetryPolicy(NamedTuple):
    """Connection failures happen before the server saw the request, so they are retried for
    any method; the ``statuses`` only for idempotent methods and replayable bodies."""

    connect: int = 2
    status: int = 2
    backoff_secs: float = 0.3
    statuses: frozenset[int] = frozenset({502, 503, 504})

    def delay(self, attempt: int) -> float:
        return self.backoff_secs * (2**attempt)


DEFAULT_RETRY = RetryPolicy()
# Upload bodies are file slices read once: uploads retry whole requests themselves.
UPLOAD_RETRY = RetryPolicy(status=0)


class Response:
    """An answer: status, headers (case-insensitive ``get``) and a body read on demand."""

    def __init__(self, method: str, url: str, raw: WireResponse, release: Any) -> None:
        self.method = method
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._raw = raw
        self._release = release
        self._content: bytes | None = None

    @property
    def content(self) -> bytes:
        if self._content is None:
            try:
                self._content = self._raw.read()
            except (OSError, WireError) as exc:
                self.close()
                raise _transport_error(exc) from exc
            self._done()
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return jsonlib.loads(self.content)

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        try:
            while chunk := self._raw.read(chunk_size):
                yield chunk
        except (OSError, WireError) as exc:
            self.close()
            raise _transport_error(exc) from exc
        self._done()

    def iter_lines(self) -> Iterator[bytes]:
        """Lines as they arrive (a streamed body: NDJSON, logs)."""
        # read1, not readline: readline reports a chunked stream cut mid-way as a clean end.
        pending = b""
        try:
            while chunk := self._raw.read1(STREAM_READ):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    yield line.rstrip(b"\r")
        except (OSError, WireError) as exc:
            self.close()
            raise _transport_error(exc) from exc
        if pending:
            yield pending.rstrip(b"\r")
        self._done()

    def _done(self) -> None:
        # Fully read: the connection can serve the next request unless the server closes it.
        release, self._release = self._release, None
        if release is not None:
            release(reuse=not self._raw.will_close)

    def close(self) -> None:
        """Stop reading; an unread body makes the connection unusable, so it is closed."""
        release, self._release = self._release, None
        if release is not None:
            self._raw.close()
            release(reuse=False)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Origin(NamedTuple):  # a NamedTuple: a dataclass costs every start ~0.4 ms to build
    scheme: str
    host: str
    port: int


class _Sent(NamedTuple):
    """A request on its way: where it went and how to send it again."""

    conn: Connection
    origin: _Origin
    reused: bool
    method: str
    url: str
    data: Any
    headers: dict[str, str]
    timeout: Timeout


class HttpSession:
    """Requests with default headers, one idle keep-alive connection per origin, retries."""

    def __init__(
        self, headers: Mapping[str, str] | None = None, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        self.headers: dict[str, str] = dict(headers or {})
        self.retry = retry
        self._idle: dict[_Origin, Connection] = {}

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = (5.0, 60.0),
        stream: bool = False,
    ) -> Response:
        """Send one request and return the answer (of any status); TransportError when
        there is none. With ``stream``, the body is left to read from the response."""
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        all_headers = {**self.headers, **(headers or {})}
        if json is not None:
            data = jsonlib.dumps(json).encode()
            all_headers["Content-Type"] = "application/json"
        replayable = data is None or isinstance(data, bytes)
        attempt = redirects = 0
        while True:
            response = self._send(method, url, data, all_headers, timeout)
            location = response.headers.get("Location")
            if (
                response.status_code in REDIRECTS
                and method in ("GET", "HEAD")
                and location
                and redirects < MAX_REDIRECTS
            ):
                response.close()
                url, redirects = _follow(url, location, all_headers), redirects + 1
                continue
            retry_status = (
                response.status_code in self.retry.statuses
                and method in IDEMPOTENT
                and replayable
                and attempt < self.retry.status
            )
            if not retry_status:
                if not stream:
                    _ = response.content
                return response
            wait = _retry_after(response) or self.retry.delay(attempt)
            log.debug(
                "%s %s answered %d; retry %d of %d in %.1f s",
                method, _strip_query(url), response.status_code, attempt + 1, self.retry.status,
                wait,
            )  # fmt: skip
            response.close()
            time.sleep(wait)
            attempt += 1

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)

    def close(self) -> None:
        idle, self._idle = self._idle, {}
        for conn in idle.values():
            conn.close()

    def __enter__(self) -> HttpSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send_early(
        self, method: str, url: str, *, json: Any = None, timeout: Timeout = (5.0, 60.0)
    ) -> Callable[[], Response]:
        """Send a request (without a body, or with ``json``) now; the returned function reads
        its answer (the body too), so that the caller works while the server answers. No
        redirect is followed and no status retried: the caller asks again for those.
        TransportError when it cannot be sent, or read."""
        headers, data = dict(self.headers), None
        if json is not None:
            data = jsonlib.dumps(json).encode()
            headers["Content-Type"] = "application/json"
        sent = self._begin(method, url, data, headers, timeout)

        def answer() -> Response:
            response = self._answer(sent)
            _ = response.content
            return response

        return answer

    def _send(
        self, method: str, url: str, data: Any, headers: dict[str, str], timeout: Timeout
    ) -> Response:
        return self._answer(self._begin(method, url, data, headers, timeout))

    def _begin(
        self, method: str, url: str, data: Any, headers: dict[str, str], timeout: Timeout
    ) -> _Sent:
        """Send the request on an idle connection to the origin, or a new one."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError("unsupported URL", _strip_query(url))
        origin = _Origin(parts.scheme, parts.hostname, parts.port or _default_port(parts.scheme))
        proxy = _proxy_for(parts.scheme, parts.hostname)
        target = url if proxy is not None and parts.scheme == "http" else _path(parts)
        body_headers = dict(headers)
        if data is not None and not any(k.lower() == "content-length" for k in headers):
            body_headers["Content-Length"] = str(_length(data))
        conn = self._idle.pop(origin, None)
        if conn is not None and _dropped(conn):
            conn.close()
            conn = None
        reused = conn is not None
        if conn is None:
            conn = self._connect(origin, proxy, timeout)
        sent = _Sent(conn, origin, reused, method, url, data, headers, timeout)
        try:
            _set_read_timeout(conn, timeout[1])
            if not any(k.lower() == "host" for k in body_headers):
                body_headers = {**_host_header(origin), **body_headers}
            conn.request(method, target, data, body_headers)
        except (OSError, WireError) as exc:
            _fail_unless_replayable(sent, exc)
            return self._begin(method, url, data, headers, timeout)
        except BaseException:  # e.g. the body's reader gave up: the connection is unusable
            conn.close()
            raise
        return sent

    def _answer(self, sent: _Sent) -> Response:
        """The answer to a request :meth:`_begin` sent."""
        conn, origin = sent.conn, sent.origin
        try:
            raw = conn.getresponse()
        except (OSError, WireError) as exc:
            _fail_unless_replayable(sent, exc)
            return self._send(sent.method, sent.url, sent.data, sent.headers, sent.timeout)
        except BaseException:
            conn.close()
            raise

        def release(*, reuse: bool) -> None:
            if reuse and origin not in self._idle:
                self._idle[origin] = conn
            else:
                conn.close()

        return Response(sent.method, sent.url, raw, release)

    def _connect(self, origin: _Origin, proxy: _Proxy | None, timeout: Timeout) -> Connection:
        attempt = 0
        while True:
            conn = _new_connection(origin, proxy, timeout[0])
            try:
                conn.connect()
                return conn
            except (OSError, WireError) as exc:
                conn.close()
                error = _transport_error(exc)
                if attempt >= self.retry.connect or error.reason == "TLS error":
                    raise error from exc
            wait = self.retry.delay(attempt)
            log.debug(
                "connecting to %s://%s:%d failed (%s); retry %d of %d in %.1f s",
                origin.scheme, origin.host, origin.port, error.reason, attempt + 1,
                self.retry.connect, wait,
            )  # fmt: skip
            time.sleep(wait)
            attempt += 1


def _fail_unless_replayable(sent: _Sent, exc: OSError | WireError) -> None:
    """Close a request's failed connection; the error unless the request goes again on a fresh
    one: the server closed an idle connection as it was reused (nothing was processed)."""
    sent.conn.close()
    if not (sent.reused and (sent.data is None or isinstance(sent.data, bytes))):
        raise _transport_error(exc) from exc


class _Proxy(NamedTuple):
    host: str
    port: int
    authorization: str | None


def _proxy_for(scheme: str, host: str) -> _Proxy | None:
    """The proxy the environment names for this URL, if any (NO_PROXY honoured)."""
    if not any(name.lower() in ("http_proxy", "https_proxy", "all_proxy") for name in os.environ):
        return None
    import urllib.request  # only when a proxy is configured: it is slow to import

    # Not in the type stubs, but part of urllib.request since Python 3.0.
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    proxies = urllib.request.getproxies_environment()
    address = proxies.get(scheme) or proxies.get("all")
    if not address:
        return None
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    authorization = None
    if parts.username is not None:
        import base64  # only for a proxy that wants credentials
        from urllib.parse import unquote

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return _Proxy(parts.hostname or "", parts.port or 8080, authorization)


def _new_connection(
    origin: _Origin, proxy: _Proxy | None, connect_timeout: float | None
) -> Connection:
    host, port = (proxy.host, proxy.port) if proxy is not None else (origin.host, origin.port)
    if origin.scheme != "https":
        return Connection(host, port, timeout=connect_timeout, blocksize=SEND_BLOCK)
    tunnel = None
    if proxy is not None:
        extra = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
        tunnel = (origin.host, origin.port, extra)
    return Connection(
        host,
        port,
        timeout=connect_timeout,
        tls=tls_context(),
        server_hostname=origin.host,
        tunnel=tunnel,
        blocksize=SEND_BLOCK,
    )


def _host_header(origin: _Origin) -> dict[str, str]:
    """``Host`` (the default port left out) and, as http.client sent it, no compression."""
    try:
        host = origin.host.encode("ascii").decode()
    except UnicodeEncodeError:
        host = origin.host.encode("idna").decode()
    if ":" in host:
        host = f"[{host}]"
    if origin.port != _default_port(origin.scheme):
        host = f"{host}:{origin.port}"
    return {"Host": host, "Accept-Encoding": "identity"}


_TLS: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The system's trust store, or the bundle the environment names; certifi's when the
    system has none (slim container images)."""
    global _TLS
    if _TLS is None:
        import ssl

        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        context = ssl.create_default_context(cafile=bundle or None)
        if not bundle and context.cert_store_stats()["x509_ca"] == 0:
            try:
                import certifi
            except ImportError:
                pass
            else:
                context.load_verify_locations(certifi.where())
        _TLS = context
    return _TLS


def _set_read_timeout(conn: Connection, read_timeout: float | None) -> None:
    if conn.sock is None:
        conn.connect()
    assert conn.sock is not None
    conn.sock.settimeout(read_timeout)


def _dropped(conn: Connection) -> bool:
    """An idle keep-alive connection the server has closed (readable means EOF here)."""
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _path(parts: Any) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _follow(url: str, location: str, headers: dict[str, str]) -> str:
    """The redirect's target; the bearer token never follows to another origin."""
    from urllib.parse import urljoin

    target = urljoin(url, location)
    before, after = urlsplit(url), urlsplit(target)
    if (before.scheme, before.netloc) != (after.scheme, after.netloc):
        for name in [k for k in headers if k.lower() == "authorization"]:
            del headers[name]
    return target


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]  # presigned URLs carry their signature in the query


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _length(data: Any) -> int:
    if isinstance(data, bytes):
        return len(data)
    if hasattr(data, "__len__"):
        return len(data)
    try:
        return os.fstat(data.fileno()).st_size - data.tell()
    except (AttributeError, OSError) as exc:
        raise TypeError("a request body needs a known length") from exc


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value), MAX_RETRY_AFTER_SECS)


def _transport_error(exc: BaseException) -> TransportError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TransportError):
        return exc
    tls = sys.modules.get("ssl")  # a TLS failure means ssl was imported
    if tls is not None and isinstance(exc, tls.SSLError | tls.CertificateError):
        return TransportError("TLS error", detail)
    if isinstance(exc, socket.gaierror):
        return TransportError("host not found", detail)
    if isinstance(exc, TimeoutError):
        return TransportError("timed out", detail)
    if isinstance(exc, ConnectionRefusedError):
        return TransportError("connection refused", detail)
    if isinstance(
        exc,
        ConnectionResetError | BrokenPipeError | ConnectionAbortedError | ConnectionClosed,
    ):
        return TransportError("connection closed by the server", detail)
    if isinstance(exc, OSError) and exc.strerror:
        return TransportError(exc.strerror.lower(), detail)
    return TransportError(type(exc).__name__, detail)
