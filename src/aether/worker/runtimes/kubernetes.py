"""The Kubernetes runtime: each app is a Deployment + Service (+ a pull-token Secret per release).

``deploy`` applies the synthesized manifests idempotently, then follows the rollout from the
Deployment status, its new ReplicaSet and that ReplicaSet's pods (``kubernetes_rollout``),
recording each new state as a deployment event. A rollout that fails (a digest mismatch in
``fetch``, a crash loop, an image that cannot be pulled, the progress deadline) raises
:class:`Fatal` with the reason; an API server that cannot be reached raises :class:`Retry`.

A scale (``Release.scales_from`` names the deployment that serves) writes only the
Deployment's replica count and the deployment id it names: the pod template, and so every
running pod and its Secrets, stay (:func:`scaled_deployment`).

A failed upgrade deletes nothing: the worker's next pass deploys the last release that worked
again (a restart, assessed afresh like any rollout), which puts its template back. Only a
failed *first* deploy cleans up, and only the objects that attempt created. Selected with
``AETHER_RUNTIME=kubernetes``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from aether.errors import AetherError, ConfigError
from aether.kube import (
    DEPLOYMENTS,
    INGRESSES,
    KINDS,
    PODS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    Applied,
    KubeClient,
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubeNotOwned,
    apply,
)
from aether.settings import KubeSettings, WorkerSettings
from aether.store.logs import NewLine
from aether.worker.outcomes import Fatal, Retry
from aether.worker.runtimes.base import (
    EventSink,
    Instance,
    LogBatch,
    LogLine,
    Observed,
    Release,
    Runtime,
)
from aether.worker.runtimes.kubernetes_logs import PodLogs, build_query
from aether.worker.runtimes.kubernetes_manifests import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    app_labels,
    env_secret_name,
    owner_reference,
    pods_deployment,
    release_labels,
    scaled_deployment,
    service_endpoint,
    synthesize,
)
from aether.worker.runtimes.kubernetes_rollout import (
    COMPLETE,
    FAILED,
    NEW_RS_AVAILABLE,
    Progress,
    assess,
    progressing_condition,
    rolled_out,
)

OWNER = {MANAGED_BY_LABEL: MANAGED_BY}
RETRY_DELAY_SECS = 5.0
CONFLICT_RETRY_DELAY_SECS = 1.0  # another writer kept winning: it is usually over at once
LOG_FEED_QUEUE_LINES = 50_000  # pod lines waiting to be shipped; more are dropped and counted
LOG_FEED_BATCH_LINES = 5_000


class RolloutFailed(AetherError):
    """The new release did not become available; the message is the reason."""


class KubernetesRuntime(Runtime):
    name = "kubernetes"
    # Apps live in the cluster, not in this process: a worker that loses an app's lease must
    # leave its objects to the new holder (the loop checks this).
    per_worker = False

    def __init__(
        self, client: KubeClient, settings: KubeSettings, *, rollout_timeout_secs: float
    ) -> None:
        self.client = client
        self.settings = settings
        self.rollout_timeout_secs = rollout_timeout_secs
        self.pod_logs = PodLogs(client, poll_interval_secs=settings.poll_interval_secs)
        # app → (uid, generation) of its Deployment last seen rolled out completely.
        self._completed: dict[str, tuple[str, int]] = {}
        # app → (whose pods its Deployment runs, the deployment it names), as last observed
        self._pods_of: dict[str, tuple[str | None, str | None]] = {}

    @classmethod
    def from_settings(
        cls, kube_settings: KubeSettings, worker_settings: WorkerSettings
    ) -> KubernetesRuntime:
        """Connect with ``KUBECONFIG``, the pod's service account or ``~/.kube/config``."""
        return cls(
            KubeClient.from_settings(kube_settings),
            kube_settings,
            rollout_timeout_secs=worker_settings.rollout_timeout_secs,
        )

    @classmethod
    def from_env(
        cls, worker_settings: WorkerSettings, environ: Mapping[str, str]
    ) -> KubernetesRuntime:
        return cls.from_settings(KubeSettings.from_env(environ), worker_settings)

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    async def stop(self) -> None:
        await self.client.close()

    # --- deploy --------------------------------------------------------------------------

    async def deploy(self, release: Release, record: EventSink) -> Observed:
        try:
            manifests = synthesize(release, self.settings)
        except ConfigError as exc:
            raise Fatal(exc.message) from exc
        try:
            existed = await self.client.get(DEPLOYMENTS, self.namespace, release.app_name)
            pods_of = _scaled_pods(existed, release)
            if pods_of is not None:
                return await self._rescale(release, pods_of, record)
            applied = [await apply(self.client, m, owner_labels=OWNER) for m in manifests]
            await self._own_env_secret(release, applied)
            await record("applying", "; ".join(item.describe() for item in applied))
            written = _generation(next(a for a in applied if a.kind == "Deployment").object)
            try:
                observed = await self._track(release, record, written)
            except RolloutFailed as exc:
                if existed is None:  # a first deploy: undo what it created, nothing else
                    await self._undo_created(applied, record)
                raise Fatal(exc.message) from exc
            await self._prune_pull_secrets(release)
        except KubeNotFound as exc:  # on a create: the namespace is missing
            raise Fatal(
                f"{exc.message}; does the namespace {self.namespace!r} exist? "
                "(AETHER_DEFAULT_NAMESPACE; see packaging/kubernetes/namespaces.yaml)"
            ) from exc
        except KubeError as exc:
            raise _outcome(exc) from exc
        return observed

    async def _rescale(self, release: Release, pods_of: str, record: EventSink) -> Observed:
        """A scale: only the Deployment's replica count (and the deployment id it names)
        changes; its pods, their Secrets and the Service stay as they are."""
        manifest = scaled_deployment(release, self.settings, pods_of)
        applied = await apply(self.client, manifest, owner_labels=OWNER)
        await record("applying", f"{applied.describe()}: {release.replicas} replicas, pods kept")
        try:
            return await self._track(release, record, _generation(applied.object), pods_of)
        except RolloutFailed as exc:
            raise Fatal(exc.message) from exc

    async def _own_env_secret(self, release: Release, applied: list[Applied]) -> None:
        """The Deployment owns the release's env Secret: deleting the app collects it."""
        workload = next(item.object for item in applied if item.kind == "Deployment")
        wanted = env_secret_name(release.app_name, release.deployment_id)
        for item in applied:
            metadata = item.object["metadata"]
            if item.kind == "Secret" and metadata["name"] == wanted:
                if not metadata.get("ownerReferences"):
                    owned = copy.deepcopy(item.object)
                    owned["metadata"]["ownerReferences"] = [owner_reference(workload)]
                    await self.client.replace(owned)

    async def _track(
        self, release: Release, record: EventSink, written: int, pods_of: str | None = None
    ) -> Observed:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rollout_timeout_secs
        said = ""
        while True:
            last_try = loop.time() > deadline
            progress = await self._progress(release, written, last_try, pods_of)
            if progress is not None and progress.state == COMPLETE:
                # "healthy" is the phase on which the worker marks the deployment running.
                await record("healthy", progress.message)
                return self._observed(
                    release.app_name, release.deployment_id, True, progress.message
                )
            if progress is not None and progress.state == FAILED:
                raise RolloutFailed(progress.message)
            if progress is not None and progress.message != said:
                said = progress.message
                await record("rollout", said)
            if loop.time() > deadline:
                raise RolloutFailed(
                    f"not available after {self.rollout_timeout_secs:g}s: {said or 'no status'}"
                )
            await asyncio.sleep(self.settings.poll_interval_secs)

    async def _progress(
        self, release: Release, written: int, last_try: bool, pods_of: str | None = None
    ) -> Progress | None:
        """The rollout's state now; None when the API blinked (errors only on the last try).
        ``pods_of``: the deployment whose pods a scale kept (their labels name it)."""
        try:
            deployment = await self.client.get(DEPLOYMENTS, self.namespace, release.app_name)
            if deployment is None:
                raise RolloutFailed("the Deployment was deleted during the rollout")
            serving = _labels(deployment).get("deployment_id")
            if serving != release.deployment_id:
                raise Fatal(f"deployment {serving} replaced this one during the rollout")
            labels = release_labels(
                replace(release, deployment_id=pods_of or release.deployment_id)
            )
            replica_sets = await self.client.list(REPLICASETS, self.namespace, labels)
            pods = await self.client.list(PODS, self.namespace, labels)
        except KubeError as exc:
            if exc.transient and not last_try:
                return None
            raise
        return assess(deployment, replica_sets, pods, written_generation=written)

    async def _undo_created(self, applied: list[Applied], record: EventSink) -> None:
        """A failed first release: delete the objects this attempt created (and only those),
        so an app that never ran leaves nothing behind."""
        created = [item for item in reversed(applied) if item.action == "created"]
        try:
            for item in created:
                await self.client.delete(KINDS[item.kind], self.namespace, item.name)
        except KubeError as exc:  # the rollout's failure stays the reason; this is a footnote
            await record("rollback", f"could not remove what this attempt created: {exc.message}")
            return
        names = ", ".join(f"{item.kind} {item.name}" for item in created) or "nothing"
        await record("rollback", f"no release of this app ran before: removed {names}")

    async def _prune_pull_secrets(self, release: Release) -> None:
        """Pull tokens of releases no pod runs any more."""
        for secret in await self.client.list(SECRETS, self.namespace, app_labels(release.app_name)):
            if _labels(secret).get("deployment_id") != release.deployment_id:
                await self.client.delete(SECRETS, self.namespace, secret["metadata"]["name"])

    # --- observe / remove ---------------------------------------------------------------

    async def observe(self, app_name: str) -> Observed | None:
        try:
            deployment = await self.client.get(DEPLOYMENTS, self.namespace, app_name)
            if deployment is None or _labels(deployment).get(MANAGED_BY_LABEL) != MANAGED_BY:
                return None
            done = await self._was_rolled_out(deployment)
            serving = _labels(deployment).get("deployment_id")
            self._pods_of[app_name] = (pods_deployment(deployment), serving)
        except KubeError as exc:
            raise _outcome(exc) from exc
        status = deployment.get("status") or {}
        wanted = (deployment.get("spec") or {}).get("replicas", 1)
        available = status.get("availableReplicas", 0)
        healthy = done and available >= wanted
        # A release counts as serving once its rollout completed; one still rolling out (or
        # stuck, or restored after a newer one failed) is not, so the worker deploys (and
        # follows) it again instead of trusting it.
        deployment_id = _labels(deployment).get("deployment_id") if done else None
        detail = f"{available}/{wanted} replicas available"
        return self._observed(app_name, deployment_id, healthy, detail)

    async def instances(self, app_name: str) -> list[Instance] | None:
        """The app's pods: phase (or why its app container waits), readiness, restarts,
        node. The router reaches them through the Service (no endpoint of their own). Pods a
        scale kept belong to the deployment their Deployment names now (as ``observe`` last
        saw it)."""
        try:
            pods = await self.client.list(PODS, self.namespace, app_labels(app_name))
        except KubeError as exc:
            raise _outcome(exc) from exc
        found = [_pod_instance(pod) for pod in pods]
        kept, serving = self._pods_of.get(app_name, (None, None))
        if kept and serving and kept != serving:
            found = [
                replace(i, deployment_id=serving) if i.deployment_id == kept else i for i in found
            ]
        return sorted(found, key=lambda i: i.id)

    async def _was_rolled_out(self, deployment: dict[str, Any]) -> bool:
        """Whether the controller completed the rollout of the current template; the API is
        asked for the ReplicaSets once per generation (a template's ReplicaSet never changes)."""
        condition = progressing_condition(deployment.get("status") or {})
        if condition is None or condition.get("reason") != NEW_RS_AVAILABLE:
            return False
        labels = _labels(deployment)
        key = ((deployment.get("metadata") or {}).get("uid", ""), _generation(deployment))
        if self._completed.get(labels.get("app_name", "")) == key:
            return True
        selector = {
            **app_labels(labels.get("app_name", "")),
            "deployment_id": pods_deployment(deployment) or labels.get("deployment_id", ""),
        }
        if not rolled_out(
            deployment, await self.client.list(REPLICASETS, self.namespace, selector)
        ):
            return False
        self._completed[labels.get("app_name", "")] = key
        return True

    async def managed_apps(self) -> set[str]:
        try:
            deployments = await self.client.list(DEPLOYMENTS, self.namespace, OWNER)
        except KubeError as exc:
            raise _outcome(exc) from exc
        return {name for item in deployments if (name := _labels(item).get("app_name"))}

    async def remove(self, app_name: str) -> None:
        try:
            await self._delete_objects(app_name)
        except KubeError as exc:
            raise _outcome(exc) from exc

    async def _delete_objects(self, app_name: str) -> None:
        # (Ingresses exist only with an apps domain; without one the Role need not grant them.)
        kinds = (INGRESSES,) if self.settings.apps_domain else ()
        for kind in (*kinds, DEPLOYMENTS, SERVICES):
            live = await self.client.get(kind, self.namespace, app_name)
            if live is not None and _labels(live).get(MANAGED_BY_LABEL) == MANAGED_BY:
                await self.client.delete(kind, self.namespace, app_name)
        for secret in await self.client.list(SECRETS, self.namespace, app_labels(app_name)):
            await self.client.delete(SECRETS, self.namespace, secret["metadata"]["name"])

    def _observed(
        self, app_name: str, deployment_id: str | None, healthy: bool, detail: str
    ) -> Observed:
        return Observed(
            deployment_id=deployment_id,
            healthy=healthy,
            endpoint=service_endpoint(app_name, self.namespace),
            detail=detail,
        )

    # --- logs ----------------------------------------------------------------------------

    async def logs(
        self,
        app_name: str,
        *,
        tail: int | None = None,
        since: str | None = None,
        follow: bool = False,
        cursor: str | None = None,
        container: str | None = None,
    ) -> AsyncIterator[LogLine]:
        """The app's pod logs, all containers (``fetch`` and ``app``) unless one is named."""
        query = build_query(
            self.namespace, app_name, container=container, tail=tail, since=since, cursor=cursor
        )
        try:
            snapshot = await self.pod_logs.snapshot(query)
        except KubeError as exc:
            raise _outcome(exc) from exc
        for line in snapshot.lines:
            yield line
        if follow:
            async for line in self.pod_logs.follow(query, snapshot):
                yield line

    def log_source(self, app_name: str) -> str:
        return f"kubernetes:{self.namespace}/{app_name}"

    async def log_feed(self, app_name: str, position: str | None) -> AsyncIterator[LogBatch]:
        """The app's pods' output as the pod log API streams it, from ``position`` (a line's
        timestamp) on. Lines wait in a bounded queue; beyond it they are counted and dropped."""
        queue: asyncio.Queue[LogLine] = asyncio.Queue(maxsize=LOG_FEED_QUEUE_LINES)
        dropped = 0

        async def pump() -> None:
            nonlocal dropped
            async for line in self.logs(app_name, follow=True, cursor=position or None):
                try:
                    queue.put_nowait(line)
                except asyncio.QueueFull:
                    dropped += 1

        task = asyncio.create_task(pump())
        cursor = position or ""
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    task.result()  # the stream ended: its error (or StopIteration) ends the feed
                    return
                lines = [getter.result()]
                while not queue.empty() and len(lines) < LOG_FEED_BATCH_LINES:
                    lines.append(queue.get_nowait())
                for line in lines:
                    if line.stream != "notice" and line.cursor:
                        cursor = line.cursor
                count, dropped = dropped, 0
                yield LogBatch([_new_line(line) for line in lines], cursor, count)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _new_line(line: LogLine) -> NewLine:
    """A pod's line as the store takes it: six fraction digits (the pod log API gives nine)."""
    ts = line.ts
    if len(ts) != 27:  # YYYY-MM-DDTHH:MM:SS.ffffffZ
        head, dot, rest = ts.partition(".")
        if dot:
            ts = f"{head}.{rest.rstrip('Z')[:6].ljust(6, '0')}Z"
    return NewLine(ts, line.deployment_id, line.instance, line.stream, line.line)


def _pod_instance(pod: Mapping[str, Any]) -> Instance:
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    app: Mapping[str, Any] = next((c for c in containers if c.get("name") == "app"), {})
    waiting = ((app.get("state") or {}).get("waiting") or {}).get("reason")
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    state = str(status.get("phase") or "Pending").lower()
    if metadata.get("deletionTimestamp"):
        state = "terminating"
    elif waiting and state == "running":
        state = "restarting" if waiting == "CrashLoopBackOff" else waiting
    health = "healthy" if ready else ("unknown" if state == "pending" else "unhealthy")
    return Instance(
        id=str(metadata.get("name", "")),
        deployment_id=str((metadata.get("labels") or {}).get("deployment_id", "")),
        state=state,
        health=health,
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        started_at=status.get("startTime"),
        host=str((pod.get("spec") or {}).get("nodeName") or "—"),
    )


def _scaled_pods(existed: Mapping[str, Any] | None, release: Release) -> str | None:
    """Whose pods a scale keeps: those of the live Deployment when it serves the deployment
    the release scales (only its replica count differs); None for any other rollout."""
    if existed is None or release.scales_from is None:
        return None
    if _labels(existed).get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    if _labels(existed).get("deployment_id") != release.scales_from:
        return None
    return pods_deployment(existed)


def _generation(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _outcome(exc: KubeError) -> Retry | Fatal:
    if isinstance(exc, KubeNotOwned) or not exc.transient:
        return Fatal(exc.message)
    delay = CONFLICT_RETRY_DELAY_SECS if isinstance(exc, KubeConflict) else RETRY_DELAY_SECS
    return Retry(exc.message, delay=delay)
