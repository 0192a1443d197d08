"""The production shape on one machine: hosts as network namespaces.

A bridge in the root namespace joins three namespaces — two ``aether serve --no-worker``
replicas (``api1``, ``api2``) and one ``aether worker`` (``wrk``) with a data directory of its
own — each with its own address and a default route through the bridge, so that no loopback
shortcut can hide a cross-host bug: the worker advertises its bridge address (the default
route's, as in production), and a replica reaches an app only across the bridge. PostgreSQL
(which listens on loopback here) is reached through a TCP relay on the bridge address; moto's
S3 server listens on the bridge address itself. Names and subnets are unique per pytest
process (xdist workers run these in parallel), and everything is torn down by finalizers,
even when a test fails. Needs root and ``ip``; skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from aether.sealing import new_key
from plugins import polling

FIXTURE_APP = Path(__file__).parents[1] / "worker" / "fixtures" / "plain-app"
# Only against a hang: each wait in these tests has a deadline of its own and fails with
# what it waited for, however long the steps before it took on a loaded machine (three
# processes, two namespaces' worth of CLI calls: past pytest's default 120 s there).
HANG_GUARD_SECS = 300
APPS_DOMAIN = "apps.test"
API_PORT = 8080
_names = itertools.count()


def _ip(*args: str, ns: str | None = None) -> None:
    command = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=20)


@dataclass
class Network:
    """A bridge and the namespaces on it (``host -> address``)."""

    tag: str
    subnet: str  # e.g. 10.213.7
    bridge: str
    hosts: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def ns(self, host: str) -> str:
        return f"{self.tag}{host}"

    def add_host(self, host: str, last_octet: int) -> str:
        ns, veth = self.ns(host), f"{self.tag}{host}"[:15]
        address = f"{self.subnet}.{last_octet}"
        _ip("netns", "add", ns)
        self.hosts[host] = address
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", veth, "master", self.bridge, "up")
        _ip("addr", "add", f"{address}/24", "dev", "eth0", ns=ns)
        _ip("link", "set", "eth0", "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
        _ip("route", "add", "default", "via", self.gateway, ns=ns)
        return address

    def teardown(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", self.ns(host))
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)


@pytest.fixture
def network() -> Iterator[Network]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = f"a{os.getpid():x}{next(_names)}"  # unique per process; + a host name ≤ 15 chars
    net = Network(tag, "", f"{tag}br")
    try:
        with _subnet_lock():  # test processes running in parallel each take a free /24
            net.subnet = _free_subnet()
            _ip("link", "add", net.bridge, "type", "bridge")
            _ip("addr", "add", f"{net.gateway}/24", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        for host, octet in (("api1", 11), ("api2", 12), ("wrk", 21), ("wrk2", 22)):
            net.add_host(host, octet)
        yield net
    finally:
        net.teardown()


@contextlib.contextmanager
def _subnet_lock() -> Iterator[None]:
    with open("/tmp/aether-test-netns.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_subnet() -> str:
    """A 10.213.X.0/24 no interface on this host uses yet."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for third in range(256):
        if f" 10.213.{third}." not in used:
            return f"10.213.{third}"
    raise RuntimeError("no free 10.213.X.0/24 subnet for a test network")


class Relay:
    """TCP relay from ``listen`` to ``target`` on its own event loop thread."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the relay did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, *self.listen))
        self.ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Topology:
    network: Network
    env: dict[str, str]  # what every aether process gets (database, S3, secrets key, token)
    token: str
    root: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def api(self, host: str) -> str:
        return f"http://{self.network.hosts[host]}:{API_PORT}"

    def start(self, name: str, host: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        command = ["ip", "netns", "exec", self.network.ns(host), sys.executable, "-m", "aether"]
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [*command, *args], env={**self.env, **extra}, stdout=log, stderr=log
            )
        self.processes[name] = process
        return process

    def start_replica(self, host: str) -> None:
        data = self.root / f"{host}-data"
        self.start(
            host,
            host,
            "serve",
            "--no-worker",
            "--host",
            "0.0.0.0",
            "--port",
            str(API_PORT),
            "--data-dir",
            str(data),
            AETHER_PUBLIC_URL=self.api(host),
        )

    def start_worker(self, name: str = "worker", host: str = "wrk") -> subprocess.Popen[bytes]:
        data = self.root / ("worker-data" if host == "wrk" else f"{host}-data")
        return self.start(name, host, "worker", "--data-dir", str(data))

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def get(self, host: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.get(self.api(host) + path, headers=headers, timeout=10, **kwargs)

    def client(
        self, host: str, *args: str, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """The CLI against one replica, from the root namespace (another host)."""
        home = self.root / "client-home"
        env = {
            **clean_environ(),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_DATA_HOME": str(home / "data"),
            "AETHER_API_BASE": self.api(host),
            "AETHER_TOKEN": self.token,
            "AETHER_ALLOW_INSECURE_HTTP": "1",
        }
        return subprocess.run(
            [sys.executable, "-m", "aether", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def via_proxy(self, host: str, app: str, path: str = "/") -> requests.Response:
        return requests.get(
            self.api(host) + path, headers={"Host": f"{app}.{APPS_DOMAIN}"}, timeout=10
        )

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def clean_environ() -> dict[str, str]:
    scrubbed = ("AETHER_", "DATABASE_URL", "XDG_", "AWS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(scrubbed)}


def wait_for(check: Callable[[], Any], *, timeout: float = 60.0, what: str = "it") -> Any:
    """Poll ``check`` until it returns something truthy (a replica or worker still starting,
    whose answers fail, counts as not yet)."""
    errors = (requests.RequestException, OSError, ValueError, KeyError)
    return polling.wait_for(check, timeout=timeout, what=what, interval=0.1, ignoring=errors)


@pytest.fixture
def topology(network: Network, fresh_postgres_url: str, tmp_path: Path) -> Iterator[Topology]:
    from moto.server import ThreadedMotoServer

    pg = urllib.parse.urlsplit(fresh_postgres_url)
    relay_port = _free_port(network.gateway)
    relay = Relay((network.gateway, relay_port), (pg.hostname or "127.0.0.1", pg.port or 5432))
    s3_port = _free_port(network.gateway)
    s3 = ThreadedMotoServer(ip_address=network.gateway, port=s3_port, verbose=False)
    s3.start()
    token = uuid.uuid4().hex + uuid.uuid4().hex
    env = {
        **clean_environ(),
        "DATABASE_URL": pg._replace(
            netloc=f"{pg.username}@{network.gateway}:{relay_port}"
        ).geturl(),
        "AETHER_STORAGE_MODE": "s3",
        "AETHER_S3_ENDPOINT_URL": f"http://{network.gateway}:{s3_port}",
        "AETHER_ARTIFACT_BUCKET": f"t-{uuid.uuid4().hex[:16]}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AETHER_SECRETS_KEY": new_key(),
        "AETHER_API_TOKEN": token,
        "AETHER_APPS_DOMAIN": APPS_DOMAIN,
        "AETHER_LOG_FORMAT": "json",
        "AETHER_WORKER_POLL_SECS": "0.2",
        "HOME": str(tmp_path / "home"),
    }
    top = Topology(network, env, token, tmp_path)
    try:
        for host in ("api1", "api2"):  # both at once: migrations take an advisory lock
            top.start_replica(host)
        for host in ("api1", "api2"):
            wait_for(lambda h=host: top.get(h, "/readyz").status_code == 200, what=f"{host} ready")
        yield top
    finally:
        top.stop_all()
        stoppers = [
            top.start(f"stop-apps-{host}", host, "worker", "--stop-apps",
                      "--data-dir", str(tmp_path / data))
            for host, data in (("wrk", "worker-data"), ("wrk2", "wrk2-data"))
        ]  # fmt: skip
        for stopper in stoppers:
            stopper.wait(timeout=60)
        s3.stop()
        relay.stop()


def app_folder(root: Path, name: str) -> Path:
    """The fixture app, listening on every address (other hosts reach it on the worker's)."""
    folder = root / name
    shutil.copytree(FIXTURE_APP, folder)
    server = folder / "server.js"
    server.write_text(server.read_text().replace('"127.0.0.1"', '"0.0.0.0"'))
    for file_name in ("package.json", "package-lock.json"):
        path = folder / file_name
        data = json.loads(path.read_text())
        data["name"] = name
        if "packages" in data:
            data["packages"][""]["name"] = name
        path.write_text(json.dumps(data, indent=2) + "\n")
    return folder
