"""An app's pod logs as :class:`LogLine` s: every pod of the app, all containers or one.

The kubelet prefixes each line with its RFC 3339 timestamp (``timestamps=true``). Timestamps
are normalised to nine fraction digits so that they sort as strings; a line's ``cursor`` is
its timestamp, and resuming from a cursor asks for the lines since that second and drops the
ones at or before it. Kubernetes does not keep stdout and stderr apart: ``stream`` is
``stdout``.

Where a container has nothing to show, the stream says why instead of staying silent: a line
with ``stream`` ``notice`` (the app has no pods; a pod is not scheduled, still in its init
container, waiting for its image, gone). A notice's ``cursor`` is that of the last real line
before it, so resuming from it skips nothing. Following, a notice comes when a pod's state
changes, not on every look.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from aether.errors import BadRequest
from aether.kube import (
    PODS,
    KubeClient,
    KubeError,
    LogUnavailable,
    follow_log,
    log_params,
    read_log,
)
from aether.since import parse_duration
from aether.since import parse_since as parse_moment
from aether.store.clock import now_iso
from aether.worker.runtimes.base import LogLine
from aether.worker.runtimes.kubernetes_manifests import (
    APP_CONTAINER,
    FETCH_CONTAINER,
    selector_labels,
)
from aether.worker.runtimes.kubernetes_rollout import unscheduled

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")
RESTART_SECS = 2.0  # a finished log stream (container stopped or not started) is retried after

Pod = Mapping[str, Any]
NOTICE = "notice"
NO_PODS = ("", "")  # the key of the notice "the app has no pods"


@dataclass(frozen=True)
class LogQuery:
    namespace: str
    app_name: str
    containers: tuple[str, ...]
    tail: int | None
    since_time: str | None  # RFC 3339, seconds
    since_seconds: int | None
    after: str | None  # a cursor: only lines strictly after it


def build_query(
    namespace: str,
    app_name: str,
    *,
    container: str | None,
    tail: int | None,
    since: str | None,
    cursor: str | None,
) -> LogQuery:
    containers = (container,) if container else (FETCH_CONTAINER, APP_CONTAINER)
    since_time, since_seconds = parse_since(since)
    if cursor:
        after = normalise_stamp(cursor)
        if after is None:
            raise BadRequest(f"cursor {cursor!r} is not a log cursor")
        since_time, since_seconds = after[:19] + "Z", None
    else:
        after = None
    return LogQuery(namespace, app_name, containers, tail, since_time, since_seconds, after)


def parse_since(since: str | None) -> tuple[str | None, int | None]:
    """A duration (see :mod:`aether.since`) → whole seconds, rounded up so no line the local
    runtime would show is left out; a time → that time (the API takes whole seconds)."""
    if not since:
        return None, None
    try:
        delta = parse_duration(since)
        if delta is not None:
            return None, math.ceil(delta.total_seconds())
        moment = parse_moment(since)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), None


def normalise_stamp(stamp: str) -> str | None:
    match = _STAMP.match(stamp)
    if not match:
        return None
    return f"{match[1]}.{(match[2] or '')[:9].ljust(9, '0')}Z"


def to_line(raw: str, pod: Pod, container: str = "") -> LogLine | None:
    stamp, _, text = raw.partition(" ")
    ts = normalise_stamp(stamp)
    if ts is None:
        return None
    metadata = pod.get("metadata") or {}
    deployment_id = (metadata.get("labels") or {}).get("deployment_id", "")
    instance = f"{metadata.get('name', '')}/{container}"
    return LogLine(
        ts=ts, deployment_id=deployment_id, stream="stdout", line=text, cursor=ts, instance=instance
    )


def pod_notice(pod: Pod, container: str) -> str | None:
    """Why ``container`` of ``pod`` has no output to show yet; None when it has (it runs or
    ran). Read from the pod's status, as the kubelet reports it."""
    name = (pod.get("metadata") or {}).get("name", "?")
    if said := unscheduled(pod):
        return said
    status = pod.get("status") or {}
    state = _container_state(status, container)
    if state is None:
        return f"pod {name}: container {container} has not been created yet"
    waiting = state.get("waiting")
    if waiting is None:
        return None
    reason = waiting.get("reason") or "ContainerCreating"
    if reason == "PodInitializing":
        return f"pod {name} is still in its init container ({FETCH_CONTAINER}): {container} has not started"
    detail = f": {waiting['message']}" if waiting.get("message") else ""
    return f"pod {name}: {container} is waiting ({reason}{detail})"


def _container_state(status: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    for item in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
        if item.get("name") == container:
            return item.get("state") or {}
    return None


def notice(text: str, *, pod: Pod | None, cursor: str | None) -> LogLine:
    """A line that says what the stream sees instead of the app's output."""
    now = normalise_stamp(now_iso()) or now_iso()
    labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
    return LogLine(
        ts=now,
        deployment_id=labels.get("deployment_id", ""),
        stream=NOTICE,
        line=text,
        cursor=cursor or "",
    )


def no_pods(app_name: str) -> str:
    return f"{app_name} has no pods: nothing is deployed, or its pods are being replaced"


@dataclass
class Snapshot:
    """The lines so far, the newest timestamp per pod+container (where following resumes),
    the notices at the end, and what each pod+container was said to be doing."""

    lines: list[LogLine]
    newest: dict[tuple[str, str], str]
    said: dict[tuple[str, str], str | None]


class PodLogs:
    """Reads (and follows) the logs of an app's pods through a :class:`KubeClient`."""

    def __init__(self, client: KubeClient, *, poll_interval_secs: float) -> None:
        self.client = client
        self.poll_interval_secs = poll_interval_secs

    async def pods(self, query: LogQuery) -> list[Pod]:
        pods = await self.client.list(PODS, query.namespace, selector_labels(query.app_name))
        return sorted(pods, key=lambda pod: pod["metadata"].get("creationTimestamp") or "")

    async def snapshot(self, query: LogQuery) -> Snapshot:
        """The lines so far (the last ``tail``), then a notice per container that has none."""
        lines: list[LogLine] = []
        newest: dict[tuple[str, str], str] = {}
        said: dict[tuple[str, str], str | None] = {}
        pods = await self.pods(query)
        for pod in pods:
            for container in query.containers:
                key = (pod["metadata"]["name"], container)
                said[key] = pod_notice(pod, container)
                if said[key] is not None:
                    continue
                try:
                    for line in await self._read(query, pod, container):
                        lines.append(line)
                        newest[key] = line.ts
                except LogUnavailable as exc:
                    said[key] = exc.message
        lines.sort(key=lambda line: line.ts)
        if query.tail is not None:
            lines = lines[-query.tail :] if query.tail else []
        cursor = lines[-1].cursor if lines else query.after
        by_name = {pod["metadata"]["name"]: pod for pod in pods}
        for (pod_name, _), text in said.items():
            if text is not None:
                lines.append(notice(text, pod=by_name.get(pod_name), cursor=cursor))
        if not pods:
            said[NO_PODS] = no_pods(query.app_name)
            lines.append(notice(no_pods(query.app_name), pod=None, cursor=cursor))
        return Snapshot(lines, newest, said)

    async def _read(self, query: LogQuery, pod: Pod, container: str) -> list[LogLine]:
        params = log_params(
            container=container,
            tail_lines=query.tail,
            since_time=query.since_time,
            since_seconds=query.since_seconds,
        )
        raw = await read_log(self.client, query.namespace, pod["metadata"]["name"], params)
        return [
            line for text in raw if (line := _after(to_line(text, pod, container), query.after))
        ]

    async def follow(self, query: LogQuery, snapshot: Snapshot) -> AsyncIterator[LogLine]:
        """New lines from every pod+container (pods that appear later included), unending;
        a notice whenever a pod's state says its output stopped or has not begun."""
        streams = _Streams(self.client, query, snapshot.newest)
        said = dict(snapshot.said)
        real = [line for line in snapshot.lines if line.stream != NOTICE]
        cursor = real[-1].cursor if real else None
        try:
            while True:
                with contextlib.suppress(KubeError):  # the API blinked: keep the streams we have
                    pods = await self.pods(query)
                    for pod in pods:
                        streams.ensure(pod)
                    for text, changed in _changes(said, pods, query):
                        yield notice(text, pod=changed, cursor=cursor or query.after)
                with contextlib.suppress(TimeoutError):
                    line = await asyncio.wait_for(streams.lines.get(), self.poll_interval_secs)
                    cursor = line.cursor
                    yield line
                    while not streams.lines.empty():
                        line = streams.lines.get_nowait()
                        cursor = line.cursor
                        yield line
        finally:
            await streams.close()


def _changes(
    said: dict[tuple[str, str], str | None], pods: list[Pod], query: LogQuery
) -> list[tuple[str, Pod | None]]:
    """Notices for what changed since the last look (``said`` is updated in place)."""
    changes: list[tuple[str, Pod | None]] = []
    seen = {pod["metadata"]["name"] for pod in pods}
    for key in [key for key in said if key[0] not in seen and key != NO_PODS]:
        if key[1] == query.containers[0]:  # once per pod
            changes.append((f"pod {key[0]} is gone", None))
        del said[key]
    if not pods:
        if NO_PODS not in said:
            said[NO_PODS] = no_pods(query.app_name)
            changes.append((no_pods(query.app_name), None))
        return changes
    said.pop(NO_PODS, None)
    for pod in pods:
        for container in query.containers:
            key = (pod["metadata"]["name"], container)
            text = pod_notice(pod, container)
            if (key not in said or said[key] != text) and text is not None:
                changes.append((text, pod))
            said[key] = text
    return changes


class _Streams:
    """One follow stream per pod+container, feeding one queue of lines."""

    def __init__(
        self, client: KubeClient, query: LogQuery, newest: dict[tuple[str, str], str]
    ) -> None:
        self.client = client
        self.query = query
        self.newest = newest  # the last timestamp seen per pod+container: no line twice
        self.lines: asyncio.Queue[LogLine] = asyncio.Queue()
        self.pumps: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.ended: dict[tuple[str, str], float] = {}

    def ensure(self, pod: Pod) -> None:
        """Stream every container of ``pod`` unless it is streaming or ended a moment ago."""
        now = asyncio.get_running_loop().time()
        for container in self.query.containers:
            key = (pod["metadata"]["name"], container)
            pump = self.pumps.get(key)
            if pump is not None and (not pump.done() or now - self.ended[key] < RESTART_SECS):
                continue
            self.pumps[key] = asyncio.create_task(self._pump(pod, key))

    async def _pump(self, pod: Pod, key: tuple[str, str]) -> None:
        after = self.newest.get(key) or self.query.after
        since_time = after[:19] + "Z" if after else self.query.since_time
        params = log_params(container=key[1], since_time=since_time)
        try:
            with contextlib.suppress(KubeError):
                async for text in follow_log(self.client, self.query.namespace, key[0], params):
                    if line := _after(to_line(text, pod, key[1]), after):
                        self.newest[key] = line.ts
                        self.lines.put_nowait(line)
        finally:
            # The stream ends when its container stops or has not started yet.
            self.ended[key] = asyncio.get_running_loop().time()

    async def close(self) -> None:
        for task in self.pumps.values():
            task.cancel()
        await asyncio.gather(*self.pumps.values(), return_exceptions=True)


def _after(line: LogLine | None, after: str | None) -> LogLine | None:
    if line is None or (after is not None and line.ts <= after):
        return None
    return line
