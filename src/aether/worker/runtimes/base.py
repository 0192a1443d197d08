"""The runtime interface: what the reconcile loop asks of a data plane.

A runtime makes one app run one release (``deploy``), says what it observes (``observe``),
removes an app (``remove``) and serves its output (``logs``). Implementations:
``runtimes/local.py`` (supervised Node.js processes) and ``runtimes/kubernetes.py``.
Transient faults raise :class:`aether.worker.outcomes.Retry`, permanent ones
:class:`aether.worker.outcomes.Fatal`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the supervisor imports this module: it stays free of the store
    from aether.store.logs import NewLine


@dataclass(frozen=True)
class LayerSource:
    """One layer of a layered artifact, where the blob store holds it."""

    name: str  # "deps" | "app"
    digest: str
    storage_key: str | None  # None: no longer stored
    compression: str


@dataclass(frozen=True)
class Release:
    """One deployment as the runtime needs it."""

    app_name: str
    deployment_id: str
    digest: str
    storage_key: str
    compression: str  # "zstd" | "gzip"
    start_command: str | None  # None: `npm start` (or `node <main>` without a start script)
    node_major: int | None = None  # the Node.js major it was built for; None: the default
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    health_path: str | None = None
    signature: str | None = None
    public_keys: tuple[str, ...] = ()  # active keys to verify the signature against
    api_url: str | None = None  # for runtimes whose pods fetch from the control plane
    pull_token: str | None = None  # deployment-scoped, read-only token for that fetch
    owner: str | None = None  # the app's owner (a user id): who may share an unisolated host
    # a layered artifact's layers (``storage_key`` then holds its manifest); () for an archive
    layers: tuple[LayerSource, ...] = ()
    # the deployment that serves now when this one differs from it only in its replica
    # count (a scale): its instances may stay, only the difference starts or stops
    scales_from: str | None = None


@dataclass(frozen=True)
class Observed:
    """What the runtime reports for an app."""

    deployment_id: str | None  # the release currently serving, if any
    healthy: bool
    endpoint: str | None = None  # e.g. http://127.0.0.1:PORT
    detail: str = ""


@dataclass(frozen=True)
class Instance:
    """One process or pod of an app, as the runtime sees it now."""

    id: str  # unique within the app: a process's deployment and index, a pod's name
    deployment_id: str
    state: str  # "running" | "starting" | "restarting" | "exited" | "pending" | …
    health: str  # "healthy" | "unhealthy" | "unknown"
    restarts: int
    started_at: str | None  # ISO-8601 UTC, when its current process or container started
    host: str  # the machine (a node's name on Kubernetes)
    endpoint: str | None = None  # where it answers, when the router may reach it directly


@dataclass(frozen=True)
class LogLine:
    """One line of an app's output; ``cursor`` resumes a stream right after this line."""

    ts: str
    deployment_id: str
    stream: str  # "stdout" | "stderr"
    line: str
    cursor: str
    instance: str = ""  # which process or pod+container wrote it, where the runtime knows

    def as_json(self) -> dict[str, str]:
        return {
            "ts": self.ts,
            "deployment_id": self.deployment_id,
            "stream": self.stream,
            "line": self.line,
            "cursor": self.cursor,
        }


@dataclass(frozen=True)
class LogBatch:
    """New output of one app for the log shipper: ``lines`` after the position the feed
    started at, ``position`` where the feed is after them (opaque to the shipper, handed back
    to resume), ``dropped`` lines skipped because shipping fell too far behind."""

    lines: Sequence[NewLine]
    position: str
    dropped: int = 0


# The loop passes this in; a runtime calls it for every phase: ("fetching", "…").
# ``healthy`` is the cutover point: record it once the new release answers and before the
# previous one is stopped, with ``observe`` already reporting the new release; the loop then
# marks the deployment running with the observed endpoint (the Host-header proxy switches).
EventSink = Callable[[str, str], Awaitable[None]]


class Runtime(abc.ABC):
    name: str

    @abc.abstractmethod
    async def deploy(self, release: Release, record: EventSink) -> Observed:
        """Make ``release`` the one serving its app, health-gated; the previous one keeps
        serving until the new one is healthy, and keeps serving if it never is — or, where the
        runtime had to replace it first (Kubernetes, ``recreate``), is left for the loop to
        deploy again. A failed deploy never deletes what served before it."""

    @abc.abstractmethod
    async def observe(self, app_name: str) -> Observed | None:
        """What is running for the app now (None: nothing)."""

    @abc.abstractmethod
    async def remove(self, app_name: str) -> None:
        """Stop the app and delete what the runtime created for it. Called only when the app
        is deleted (or, for a per-process runtime, when another worker took it over)."""

    @abc.abstractmethod
    def logs(
        self,
        app_name: str,
        *,
        tail: int | None = None,
        since: str | None = None,
        follow: bool = False,
        cursor: str | None = None,
        container: str | None = None,
    ) -> AsyncIterator[LogLine]:
        """The app's output, oldest first; with ``follow`` keeps yielding new lines.
        ``container`` narrows it where an app has several (Kubernetes: ``fetch``, ``app``)."""

    async def instances(self, app_name: str) -> list[Instance] | None:
        """Each process or pod of the app now, with its health (None: this runtime cannot
        say). The worker records them for every API replica to read (``aether ps``)."""
        return None

    @abc.abstractmethod
    def log_feed(self, app_name: str, position: str | None) -> AsyncIterator[LogBatch]:
        """The app's output from ``position`` on (None: from the oldest line still here) in
        batches, unending: what the worker ships to the database. The app never waits for
        it; a feed that falls too far behind skips lines and says how many."""

    def log_source(self, app_name: str) -> str:
        """The name of the app's log source in the database (unique per host and data)."""
        return f"{self.name}/{app_name}"

    def release_wanted(self, app_name: str) -> str | None:
        """The deployment an app adopted from an earlier worker runs, when the runtime
        wants its release (to ready what the app's next release starts in); else None."""
        return None

    async def resume(self, release: Release) -> None:
        """The release of an adopted app, as :meth:`release_wanted` asked."""
        return None

    async def managed_apps(self) -> set[str]:
        """Names of the apps this runtime holds objects for, when they outlive the worker
        (a cluster's); the worker removes those whose app was deleted meanwhile."""
        return set()

    async def start(self) -> None:
        """Bring up what the runtime needs (called once by the worker)."""
        return None

    async def stop(self) -> None:
        """Release resources on shutdown."""
        return None
