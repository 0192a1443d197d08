"""What the running API holds while it serves: settings, the database, the blob store.

The lifespan in :mod:`aether.server.app` builds one :class:`ServerState` and hangs it on the
application; route handlers reach it with :func:`get_state`.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from aether.server.hosts import Hosts
from aether.server.log_wakeups import LineWakeups
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings
from aether.store.database import Database

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


class Backlog:
    """Work handed from request handlers to a background task: keys that are due and the
    event that wakes the task. Both run on the server's event loop, so no lock is needed.
    Counting requests lets a caller tell when the task has caught up with all made so far."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self._due: set[str] = set()
        self._requested = 0
        self._handled = 0

    def request(self, key: str) -> None:
        self._due.add(key)
        self._requested += 1
        self.wake.set()

    def take(self) -> tuple[set[str], int]:
        """The due keys, now no longer due, and the count to pass to :meth:`done`."""
        due, self._due = self._due, set()
        self.wake.clear()
        return due, self._requested

    def retry(self, key: str) -> None:
        """Due again at the next wake-up (the task could not finish it)."""
        self._due.add(key)

    def done(self, requested: int) -> None:
        self._handled = requested

    def caught_up(self) -> bool:
        return self._handled >= self._requested


@dataclass
class ServerState:
    settings: ServerSettings
    db: Database
    blobs: Any  # aether.blobs.BlobStore (None only while the blob package is not built)
    blob_settings: BlobSettings
    policy: ArtifactPolicy
    public_url: str
    # Set when shutdown begins, so long-lived streams (follow=true) end instead of holding
    # the graceful-shutdown window open.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # aether.sealing.KeyRing: seals and opens apps' config values (None only in tools that
    # build a state without the lifespan).
    keyring: Any = None
    # aether.server.auth.TokenCache; cleared whenever a token is revoked or rotated here.
    auth_cache: Any = None
    # aether.server.read_cache.ReadCache: answers to the busiest reads (PostgreSQL only).
    read_cache: Any = None
    # Apps with a new stored artifact: the artifact GC loop applies their retention policy
    # and refreshes the artifacts gauge (aether.server.artifacts.gc), outside the request.
    artifact_gc: Backlog = field(default_factory=Backlog)
    # Whether the blob store refuses bytes that miss their checksum (probed at start-up):
    # then its checksum proves an upload; otherwise complete re-hashes the object.
    store_verifies_checksums: bool = False
    # aether.server.hosts.Hosts: the API's host and the apps domain (None only in tools)
    hosts: Any = None
    # aether.server.app_targets.AppTargets: where each app's requests go (made on first use).
    app_targets: Any = None
    # Artifact digest → its SBOM, read and checked (aether.server.artifacts.sbom_admission)
    sboms_checked: dict[str, Any] = field(default_factory=dict)
    # Log followers waiting for their app's next lines (woken by PostgreSQL's NOTIFY).
    line_wakeups: LineWakeups = field(default_factory=LineWakeups)

    def app_url(self, app_name: str) -> str:
        settings = self.settings
        domain = self.hosts.apps_domain if self.hosts is not None else None
        # On Kubernetes apps answer through each app's Ingress, not the router's own port.
        router_port = settings.router_port if settings.runtime == "local" else None
        return app_url(
            self.public_url, app_name, domain, apps_url=settings.apps_url, router_port=router_port
        )


@functools.lru_cache(maxsize=4096)
def app_url(
    public_url: str,
    app_name: str,
    apps_domain: str | None = None,
    *,
    apps_url: str | None = None,
    router_port: int | None = None,
) -> str:
    """Where users reach an app: ``<scheme>://<app>.<apps domain>[:port]/``, with the scheme
    and port of ``apps_url`` (AETHER_APPS_URL: a load balancer in front), else of the apps'
    own router port (plain HTTP), else of the API's public URL (the router on the API's port
    serves both); the apps domain as :class:`~aether.server.hosts.Hosts` derives it when not
    given."""
    domain = apps_domain or Hosts.from_settings(public_url, None).apps_domain
    base = apps_url or (f"http://{domain}:{router_port}" if router_port else public_url)
    parts = urlsplit(base)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'http'}://{app_name}.{domain}{port}/"


def get_state(request: HTTPConnection) -> ServerState:
    return request.app.state.aether
