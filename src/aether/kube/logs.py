"""Pod logs: read once (``tail``/``since``) or follow as a stream.

Lines come back as the kubelet sends them with ``timestamps=true``:
``2024-05-01T10:00:00.123456789Z the line``. Following holds one streaming request open in
a worker thread and hands lines to the event loop through a queue; closing the iterator
closes the request. A container with no log to give (not started yet, or its pod is gone)
raises :class:`LogUnavailable` on a read, with the API server's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

import requests

from aether.kube.client import PODS, KubeClient, status_message
from aether.kube.errors import KubeError, KubeNotFound, error_for_status

_END = object()


def log_params(
    *,
    container: str,
    tail_lines: int | None = None,
    since_time: str | None = None,
    since_seconds: int | None = None,
    follow: bool = False,
) -> dict[str, str]:
    params = {"container": container, "timestamps": "true"}
    if tail_lines is not None:
        params["tailLines"] = str(tail_lines)
    if since_time is not None:
        params["sinceTime"] = since_time
    elif since_seconds is not None:
        params["sinceSeconds"] = str(since_seconds)
    if follow:
        params["follow"] = "true"
    return params


class LogUnavailable(KubeError):
    """The container has no log yet (400 "waiting to start") or its pod is gone (404)."""

    def __init__(self, message: str, *, gone: bool) -> None:
        super().__init__(message, status=404 if gone else 400)
        self.gone = gone


async def read_log(
    client: KubeClient, namespace: str, pod: str, params: Mapping[str, str]
) -> list[str]:
    """The log lines of one container of one pod; :class:`LogUnavailable` when it has none."""

    def send() -> list[str]:
        response = _open(client, namespace, pod, params, stream=False)
        try:
            return response.text.splitlines()
        finally:
            response.close()

    return await asyncio.to_thread(send)


async def follow_log(
    client: KubeClient, namespace: str, pod: str, params: Mapping[str, str]
) -> AsyncIterator[str]:
    """Yield lines as they are written, until the container ends or the iterator is closed."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stream = _Stream()

    def pump() -> None:
        try:
            response = _open(client, namespace, pod, {**params, "follow": "true"}, stream=True)
            if stream.attach(response):
                for raw in response.iter_lines():
                    loop.call_soon_threadsafe(queue.put_nowait, raw.decode("utf-8", "replace"))
        except (LogUnavailable, requests.RequestException, AttributeError, ValueError):
            pass  # closed from our side, or nothing to stream (yet): the caller looks again
        except KubeError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    pumping = loop.run_in_executor(None, pump)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, KubeError):
                raise item
            yield item
    finally:
        stream.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(pumping), timeout=2)


class _Stream:
    """The open follow request, closable from the event loop while a thread reads it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._stopped = False

    def attach(self, response: requests.Response) -> bool:
        with self._lock:
            self._response = response
            if self._stopped:
                response.close()
            return not self._stopped

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._response is not None:
                with contextlib.suppress(Exception):
                    self._response.raw.shutdown()  # wakes the thread blocked in a read
                with contextlib.suppress(Exception):
                    self._response.close()


def _open(
    client: KubeClient, namespace: str, pod: str, params: Mapping[str, str], *, stream: bool
) -> requests.Response:
    timeout = (client.timeout, None) if stream else client.timeout
    response = client.request(
        "GET", PODS, namespace, pod, subresource="log", params=params, stream=stream,
        timeout=timeout,
    )  # fmt: skip
    if response.status_code < 400:
        return response
    message = status_message(response)
    response.close()
    error = error_for_status(response.status_code, message, what=f"logs of pod {pod}")
    if isinstance(error, KubeNotFound):
        raise LogUnavailable(f"pod {pod} is gone", gone=True)
    if response.status_code == 400:
        raise LogUnavailable(f"pod {pod}: {message}", gone=False)
    raise error
