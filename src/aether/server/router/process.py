"""The routers in a process of their own, beside ``aether serve``.

Requests never wait for the API, the embedded worker or their threads: in one process they
shared an event loop and the interpreter lock with all of them, and a request that arrived
while another thread held the lock waited for it (measured: up to 29 ms at a time,
docs/benchmarks.md). The child (``python -m aether.server.router.process``) inherits the
listening sockets (the API's port, and ``--router-port``'s when set), loads the TLS
certificate itself, forwards to the API on its unix socket as before, opens the database
itself to look up endpoints, and is told by the
server which apps' endpoints moved, one wake-up topic per line on its stdin (what the
embedded worker writes, or PostgreSQL's change feed says). Its log records come back on its
stdout and are logged by the server, with the server's format and redaction.

Stopping: the server closes its copies of the listeners and the child's stdin; the child stops
accepting, lets answers in flight finish within the grace period and exits. A child that
ends on its own is started again; one whose server died (its stdin closes) stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aether
from aether.server.app_targets import AppTargets
from aether.server.hosts import Hosts
from aether.server.router.server import Router
from aether.store import open_database

log = logging.getLogger("aether.router")

# A child that ended on its own is started again after RESTART_DELAY_SECS, doubled after each
# end that follows quickly (a router that cannot start does not spin), back to the start once
# a child ran for STABLE_AFTER_SECS.
RESTART_DELAY_SECS = 1.0
RESTART_DELAY_MAX_SECS = 30.0
STABLE_AFTER_SECS = 60.0
EXIT_MARGIN_SECS = 5.0  # beyond the grace period, for the child to close and exit


@dataclass(frozen=True)
class Spec:
    """What the child needs to know, sent as the first line of its stdin."""

    front: int  # the API's port: apps by their host, every other request to the API
    apps: int | None  # --router-port's listener: apps alone
    api: str  # the API's unix socket
    tls_cert: str | None  # the front serves HTTPS with these
    tls_key: str | None
    database_url: str | None
    data_dir: str
    api_host: str
    apps_domain: str
    trusted_proxies: tuple[str, ...]
    grace_secs: float
    log_level: int  # records below it are not sent


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The context the front serves HTTPS with (ssl.SSLError, OSError when the pair does
    not load)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(cert, key)
    return context


class RouterService:
    """The routers of ``aether serve`` as one background job: the front on the API's port
    (``front``: apps by their Host, everything else to the API at ``api``) and, when given,
    a listener for apps alone (``apps``, ``--router-port``), both in the child process, which
    runs while the server does. Its drain at stop outlives the job (the server's lifespan
    cancels its jobs as soon as the API has drained); the launcher waits for
    :meth:`drained`."""

    __name__ = "app_router"

    def __init__(
        self,
        front: socket.socket,
        *,
        api: str,
        tls: ssl.SSLContext | None = None,
        apps: socket.socket | None = None,
    ) -> None:
        # ``tls`` says HTTPS; the child loads the settings' certificate itself.
        self.front, self.api, self.tls, self.apps = front, api, tls, apps
        self._drain: asyncio.Future[None] | None = None
        self._child: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, state: Any) -> None:
        self._loop = asyncio.get_running_loop()
        spec = self._spec(state)
        try:
            with state.app_targets.observed(self._forward):
                await self._supervise(spec, state.stopping)
        finally:
            self._drain = asyncio.ensure_future(self._stop(spec.grace_secs))
            await asyncio.shield(self._drain)

    async def drained(self) -> None:
        if self._drain is not None:
            await self._drain

    async def _supervise(self, spec: Spec, stopping: asyncio.Event) -> None:
        delay = RESTART_DELAY_SECS
        while not stopping.is_set():
            started = time.monotonic()
            child = self._child = await _start(spec)
            self._relay = asyncio.create_task(_relay(child))
            ended = asyncio.create_task(child.wait())
            stop = asyncio.create_task(stopping.wait())
            try:
                await asyncio.wait([stop, ended], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                ended.cancel()
            if stopping.is_set():
                return
            await self._relay
            if time.monotonic() - started >= STABLE_AFTER_SECS:
                delay = RESTART_DELAY_SECS
            log.error(
                "the app router process ended (exit %s); starting it again in %gs",
                child.returncode,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, RESTART_DELAY_MAX_SECS)

    def _spec(self, state: Any) -> Spec:
        settings = state.settings
        https = self.tls is not None
        return Spec(
            front=self.front.fileno(),
            apps=self.apps.fileno() if self.apps is not None else None,
            api=self.api,
            tls_cert=str(settings.tls_cert) if https else None,
            tls_key=str(settings.tls_key) if https else None,
            database_url=settings.database_url,
            data_dir=str(settings.data_dir),
            api_host=state.hosts.api_host,
            apps_domain=state.hosts.apps_domain,
            trusted_proxies=tuple(settings.trusted_proxies),
            grace_secs=settings.shutdown_grace_secs,
            log_level=logging.getLogger("aether.router").getEffectiveLevel(),
        )

    def _forward(self, topic: str) -> None:
        """An app's endpoints may have moved: tell the child (from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._write(topic)
        else:
            loop.call_soon_threadsafe(self._write, topic)

    def _write(self, topic: str) -> None:
        child = self._child
        if child is not None and child.stdin is not None and not child.stdin.is_closing():
            child.stdin.write(topic.encode() + b"\n")

    async def _stop(self, grace: float) -> None:
        """Stop accepting (this process's copies of the listeners close, the child closes
        its own), let the child finish what is in flight, and cut what is left after
        ``grace``."""
        self.front.close()
        if self.apps is not None:
            self.apps.close()
        child, self._child = self._child, None
        if child is not None and child.returncode is None:
            if child.stdin is not None:
                child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), grace + EXIT_MARGIN_SECS)
            except TimeoutError:
                log.warning("the app router process did not stop in time; killing it")
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
        if self._relay is not None:
            await self._relay  # the child's last records (its stdout is closed now)


async def _start(spec: Spec) -> asyncio.subprocess.Process:
    """The child, with this interpreter and the same module path (also inside the zipapp)."""
    package_root = str(Path(aether.__file__).resolve().parent.parent)
    path = os.pathsep.join([package_root, *(entry for entry in sys.path if entry)])
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-S", "-m", "aether.server.router.process",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        pass_fds=(spec.front,) if spec.apps is None else (spec.front, spec.apps),
        env={**os.environ, "PYTHONPATH": path},
        start_new_session=True,  # a Ctrl-C reaches the server, which stops it in order
    )  # fmt: skip
    assert child.stdin is not None
    child.stdin.write(json.dumps(vars(spec)).encode() + b"\n")
    return child


async def _relay(child: asyncio.subprocess.Process) -> None:
    """The child's log records, logged here; until its stdout closes."""
    assert child.stdout is not None
    async for line in child.stdout:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "listening" in record:
            log.info("router listening on %s (pid %s)", record["listening"], child.pid)
        else:
            logging.getLogger(record["name"]).log(record["level"], "%s", record["message"])


# the child


class _ToParent(logging.Handler):
    """Log records as JSON lines on stdout, for the server to log."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        _tell({"level": record.levelno, "name": record.name, "message": message})


def _tell(item: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sys.stdout.write(json.dumps(item) + "\n")
        sys.stdout.flush()


@dataclass
class _Settings:
    trusted_proxies: tuple[str, ...]
    shutdown_grace_secs: float


@dataclass
class _State:
    """What :class:`Router` reads of the server's state."""

    hosts: Hosts
    db: Any
    app_targets: AppTargets
    settings: _Settings


async def _serve_child() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = Spec(**json.loads(await reader.readline()))
    logging.getLogger().setLevel(spec.log_level)
    db = open_database(spec.database_url, Path(spec.data_dir))
    await db.open()
    targets = AppTargets(db)
    settings = _Settings(tuple(spec.trusted_proxies), spec.grace_secs)
    state = _State(Hosts(spec.api_host, spec.apps_domain), db, targets, settings)
    tls = tls_context(spec.tls_cert, spec.tls_key) if spec.tls_cert and spec.tls_key else None
    routers = [(Router(state, api=spec.api, tls=tls), socket.socket(fileno=spec.front))]
    if spec.apps is not None:
        routers.append((Router(state), socket.socket(fileno=spec.apps)))
    for router, listener in routers:
        await router.start(listener)
    # What start-up made lives as long as the process: kept out of every collection.
    gc.freeze()
    ports = [listener.getsockname()[1] for _, listener in routers]
    _tell({"listening": "ports " + ", ".join(map(str, ports))})
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    heard = asyncio.create_task(_hear(reader, targets, stop))
    try:
        await stop.wait()
    finally:
        heard.cancel()
        await asyncio.gather(*(router.stop(spec.grace_secs) for router, _ in routers))
        await db.close()


async def _hear(reader: asyncio.StreamReader, targets: AppTargets, stop: asyncio.Event) -> None:
    """Topics from the server, until its end of the pipe closes (it stops, or died)."""
    while line := await reader.readline():
        targets.changed(line.decode().strip())
    stop.set()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server says when to stop
    root = logging.getLogger()
    root.handlers[:] = [_ToParent()]
    root.setLevel(logging.WARNING)  # until the server says which level
    asyncio.run(_serve_child())


if __name__ == "__main__":
    main()
