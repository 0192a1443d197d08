"""The client for the control plane's API, on the lean transport in :mod:`aether.client.http`.

One :class:`ApiClient` per command: a session with connection retries, the bearer
token on every request to the API, and the translation of everything that can go wrong into
Aether errors where it enters: unreachable hosts become :class:`NetworkError` (exit 40) naming
the URL, error envelopes become :class:`RemoteError` with the server's ``code`` and
``message``, and a 401 says to run ``aether login``. Presigned uploads go through
:func:`put_presigned`, which never sends the bearer token (object storage would reject it,
and the token must not leave for another host).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from aether import __version__
from aether.client.http import UPLOAD_RETRY, HttpSession, Response, TransportError
from aether.errors import ConfigError, NetworkError, RemoteError

CONNECT_TIMEOUT_SECS = 5.0
READ_TIMEOUT_SECS = 60.0
USER_AGENT = f"aether-cli/{__version__}"
log = logging.getLogger(__name__)  # request lines only: never headers, bodies or query secrets


def new_session(*, for_uploads: bool = False) -> HttpSession:
    """A session with the CLI's user agent and the retry policy for API calls or uploads."""
    headers = {"User-Agent": USER_AGENT}
    return HttpSession(headers, UPLOAD_RETRY) if for_uploads else HttpSession(headers)


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1, ``localhost`` and ``*.localhost`` (which never leave the machine,
    RFC 6761); decided from the name alone, without asking DNS."""
    import ipaddress

    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_token_transport(base_url: str, *, allow_insecure_http: bool) -> None:
    """Refuse to send a bearer token in clear text off this machine.

    Anyone on the path could read it and act as its owner until it is revoked."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or allow_insecure_http or is_loopback_host(parts.hostname or ""):
        return
    raise ConfigError(
        f"refusing to send the API token over plain http:// to {parts.hostname}: anyone on the"
        " network path could read it. Use an https:// URL (aether serve --tls-cert/--tls-key,"
        " or a TLS proxy in front), or pass --allow-insecure-http (AETHER_ALLOW_INSECURE_HTTP=1)"
        " if this network is trusted"
    )


class ApiClient:
    """Talks JSON to one control plane with one bearer token (never in clear text off this
    machine unless ``allow_insecure_http``)."""

    def __init__(
        self, base_url: str, token: str | None, *, allow_insecure_http: bool = False
    ) -> None:
        if token:
            check_token_transport(base_url, allow_insecure_http=allow_insecure_http)
        self.base_url = base_url.rstrip("/")
        self._session = new_session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        expect: tuple[int, ...] = (),
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request (a JSON body, or ``data`` as it is); statuses in ``expect`` are
        returned instead of raised."""
        url = self.url(path)
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                url,
                json=json_body,
                data=data,
                headers=headers,
                params=_clean_params(params),
                timeout=(CONNECT_TIMEOUT_SECS, READ_TIMEOUT_SECS),
            )
        except TransportError as exc:
            raise network_error(method, url, exc) from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("%s %s -> %d in %.0f ms", method, url, response.status_code, elapsed_ms)
        if 300 <= response.status_code < 400:
            raise RemoteError(
                f"{method} {url} was redirected to {response.headers.get('Location')}: point"
                " AETHER_API_BASE (or `aether login --api`) at the final URL",
                code="redirected",
                status=response.status_code,
            )
        if response.status_code >= 400 and response.status_code not in expect:
            raise remote_error(method, url, response)
        return response

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return _json(self.request("GET", path, params=params))

    def get_later(self, path: str) -> Callable[[], dict[str, Any]]:
        """``GET path`` sent now; the returned function reads its JSON, so that the caller
        works while the server answers. Anything but a 2xx answer read that way (a failure, a
        redirect, an error, a status worth a retry) is asked for again as :meth:`get` asks."""
        url = self.url(path)
        try:
            early = self._session.send_early(
                "GET", url, timeout=(CONNECT_TIMEOUT_SECS, READ_TIMEOUT_SECS)
            )
        except TransportError:
            early = None

        def answer() -> dict[str, Any]:
            try:
                response = early() if early is not None else None
            except TransportError:
                response = None
            if response is not None and 200 <= response.status_code < 300:
                log.debug("GET %s -> %d (sent early)", url, response.status_code)
                return _json(response)
            return self.get(path)

        return answer

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return _json(self.request("POST", path, json_body=body or {}))

    def patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return _json(self.request("PATCH", path, json_body=body))

    def put(self, path: str, body: Mapping[str, Any]) -> None:
        self.request("PUT", path, json_body=body)

    def put_later(self, path: str, body: Mapping[str, Any]) -> Callable[[], None]:
        """``PUT path`` with a JSON body sent now; the returned function reads the answer,
        raising what :meth:`put` raises, so that the caller works while the server answers."""
        url = self.url(path)
        try:
            early = self._session.send_early(
                "PUT", url, json=dict(body), timeout=(CONNECT_TIMEOUT_SECS, READ_TIMEOUT_SECS)
            )
        except TransportError as exc:
            raise network_error("PUT", url, exc) from exc

        def answer() -> None:
            try:
                response = early()
            except TransportError as exc:
                raise network_error("PUT", url, exc) from exc
            if response.status_code >= 300:
                raise remote_error("PUT", url, response)

        return answer

    def put_bytes(
        self, path: str, data: bytes, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``PUT path`` with ``data`` as the body; the JSON answer."""
        return _json(self.request("PUT", path, data=data, headers=headers))

    def delete(self, path: str, **params: Any) -> None:
        self.request("DELETE", path, params=params)

    def exists(self, path: str) -> bool:
        """``HEAD path``: True on 2xx, False on 404, an error otherwise."""
        return self.request("HEAD", path, expect=(404,)).status_code < 300

    def stream_lines(
        self, path: str, params: Mapping[str, Any], *, read_timeout: float | None
    ) -> Iterator[dict[str, Any]]:
        """GET an NDJSON stream and yield each object; a dropped stream raises NetworkError."""
        url = self.url(path)
        try:
            response = self._session.get(
                url,
                params=_clean_params(params),
                stream=True,
                timeout=(CONNECT_TIMEOUT_SECS, read_timeout),
            )
        except TransportError as exc:
            raise network_error("GET", url, exc) from exc
        with response:
            if response.status_code >= 400:
                raise remote_error("GET", url, response)
            try:
                for raw in response.iter_lines():
                    if raw.strip():
                        yield _ndjson_line(url, raw)
            except TransportError as exc:
                raise network_error("GET", url, exc) from exc


class UploadBody(Protocol):
    """What a presigned PUT sends: a file, or a slice of one (its length known up front)."""

    def read(self, size: int = -1, /) -> bytes: ...


def put_presigned(
    url: str,
    body: UploadBody,
    headers: Mapping[str, str],
    *,
    session: HttpSession | None = None,
) -> Response:
    """PUT bytes to a presigned URL (no bearer token); returns the 2xx response."""
    own = session is None
    session = session or new_session(for_uploads=True)
    try:
        response = session.put(
            url, data=body, headers=dict(headers), timeout=(CONNECT_TIMEOUT_SECS, 300.0)
        )
    except TransportError as exc:
        raise network_error("PUT", _strip_query(url), exc) from exc
    finally:
        if own:
            session.close()
    if response.status_code >= 400:
        raise remote_error("PUT", _strip_query(url), response)
    return response


class ThreadSessions:
    """One session per thread for parallel part uploads (sessions are not thread-safe)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[HttpSession] = []
        self._lock = threading.Lock()

    def get(self) -> HttpSession:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session(for_uploads=True)
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._all:
                session.close()
            self._all.clear()


def network_error(method: str, url: str, exc: Exception) -> NetworkError:
    """A transport failure as exit 40, naming the URL and the short reason."""
    return NetworkError(f"{method} {url} failed: {_reason(exc)}; is the control plane running?")


def remote_error(method: str, url: str, response: Response) -> RemoteError:
    """An HTTP error answer as RemoteError with the server's own code and message."""
    code, message = _envelope(response)
    status = response.status_code
    if status == 401:
        message = f"{message}: the token was rejected; run `aether login` (or set AETHER_TOKEN)"
    return RemoteError(
        f"{message} ({code}, HTTP {status} from {method} {url})", code=code, status=status
    )


def _envelope(response: Response) -> tuple[str, str]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        return data["code"], str(data.get("message") or data["code"])
    text = (response.text or "").strip().splitlines()
    fallback = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict"}
    code = fallback.get(response.status_code, f"http_{response.status_code}")
    return code, (text[0][:200] if text else response.reason or code)


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, TransportError) else type(exc).__name__


def _json(response: Response) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise RemoteError(
            f"{response.method} {response.url} answered with something that is not JSON",
            code="bad_response",
            status=response.status_code,
        ) from exc
    if not isinstance(data, dict):
        raise RemoteError(
            f"{response.method} {response.url} answered with JSON that is not an object",
            code="bad_response",
            status=response.status_code,
        )
    return data


def _ndjson_line(url: str, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RemoteError(
            f"GET {url} sent a line that is not JSON", code="bad_response", status=200
        ) from exc
    if not isinstance(data, dict):
        raise RemoteError(
            f"GET {url} sent a line that is not an object", code="bad_response", status=200
        )
    return data


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    cleaned = {}
    for key, value in params.items():
        if value is None:
            continue
        cleaned[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return cleaned


def _strip_query(url: str) -> str:
    # Presigned URLs carry signatures in the query string; error messages show only the path.
    return url.split("?", 1)[0]
