"""The Kubernetes runtime: each app is a Deployment + Service (+ a pull-token Secret per release).

``deploy`` applies the synthesized manifests idempotently, then follows the rollout from the
Deployment status and the release's pods, recording each new state as a deployment event.
A rollout that fails (a digest mismatch in ``fetch``, a crash loop, an image that cannot be
pulled, the progress deadline) raises :class:`Fatal` with the reason, after putting the
previous release's template back so that Kubernetes brings it up again; an API server that
cannot be reached raises :class:`Retry`. Selected with ``AETHER_RUNTIME=kubernetes``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aether.errors import AetherError, ConfigError
from aether.kube import (
    DEPLOYMENTS,
    PODS,
    SECRETS,
    SERVICES,
    Applied,
    KubeClient,
    KubeError,
    KubeNotFound,
    KubeNotOwned,
    apply,
)
from aether.settings import KubeSettings, WorkerSettings
from aether.worker.outcomes import Fatal, Retry
from aether.worker.runtimes.base import EventSink, LogLine, Observed, Release, Runtime
from aether.worker.runtimes.kubernetes_logs import PodLogs, build_query
from aether.worker.runtimes.kubernetes_manifests import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    app_labels,
    env_secret_name,
    owner_reference,
    service_endpoint,
    synthesize,
)
from aether.worker.runtimes.kubernetes_rollout import COMPLETE, FAILED, Progress, assess

OWNER = {MANAGED_BY_LABEL: MANAGED_BY}
RETRY_DELAY_SECS = 5.0


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
            previous = await self.client.get(DEPLOYMENTS, self.namespace, release.app_name)
            applied = [await apply(self.client, m, owner_labels=OWNER) for m in manifests]
            await self._own_env_secret(release, applied)
            await record("applying", "; ".join(item.describe() for item in applied))
            try:
                observed = await self._track(release, record)
            except RolloutFailed as exc:
                await self._restore_or_say_why_not(previous, release, record)
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

    async def _track(self, release: Release, record: EventSink) -> Observed:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rollout_timeout_secs
        said = ""
        while True:
            progress = await self._progress(release, loop.time() > deadline)
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

    async def _progress(self, release: Release, last_try: bool) -> Progress | None:
        """The rollout's state now; None when the API blinked (errors only on the last try)."""
        try:
            deployment = await self.client.get(DEPLOYMENTS, self.namespace, release.app_name)
            if deployment is None:
                raise RolloutFailed("the Deployment was deleted during the rollout")
            serving = _labels(deployment).get("deployment_id")
            if serving != release.deployment_id:
                raise Fatal(f"deployment {serving} replaced this one during the rollout")
            labels = {**app_labels(release.app_name), "deployment_id": release.deployment_id}
            pods = await self.client.list(PODS, self.namespace, labels)
        except KubeError as exc:
            if exc.transient and not last_try:
                return None
            raise
        return assess(deployment, pods)

    async def _restore_or_say_why_not(
        self, previous: dict[str, Any] | None, release: Release, record: EventSink
    ) -> None:
        try:
            await self._restore(previous, release, record)
        except KubeError as exc:  # the rollout's failure stays the reason; this is a footnote
            await record("rollback", f"could not restore the previous release: {exc.message}")

    async def _restore(
        self, previous: dict[str, Any] | None, release: Release, record: EventSink
    ) -> None:
        """Put the previous release's Deployment back (Kubernetes then rolls it out again);
        a first release that fails leaves nothing behind."""
        if previous is None:
            await self._delete_objects(release.app_name)
            await record("rollback", "no previous release: the app's objects were removed")
            return
        if _labels(previous).get("deployment_id") == release.deployment_id:
            await record("rollback", "this release was already applied: nothing to restore")
            return
        current = await self.client.get(DEPLOYMENTS, self.namespace, release.app_name)
        if current is None:
            return
        old_metadata = previous["metadata"]
        restored = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": old_metadata["name"],
                "namespace": old_metadata["namespace"],
                "labels": old_metadata.get("labels") or {},
                "annotations": old_metadata.get("annotations") or {},
                "resourceVersion": current["metadata"].get("resourceVersion"),
            },
            "spec": previous["spec"],
        }
        await self.client.replace(restored)
        await record("rollback", f"restored deployment {_labels(previous).get('deployment_id')}")

    async def _prune_pull_secrets(self, release: Release) -> None:
        """Pull tokens of releases no pod runs any more."""
        for secret in await self.client.list(SECRETS, self.namespace, app_labels(release.app_name)):
            if _labels(secret).get("deployment_id") != release.deployment_id:
                await self.client.delete(SECRETS, self.namespace, secret["metadata"]["name"])

    # --- observe / remove ---------------------------------------------------------------

    async def observe(self, app_name: str) -> Observed | None:
        try:
            deployment = await self.client.get(DEPLOYMENTS, self.namespace, app_name)
        except KubeError as exc:
            raise _outcome(exc) from exc
        if deployment is None or _labels(deployment).get(MANAGED_BY_LABEL) != MANAGED_BY:
            return None
        progress = assess(deployment, [])
        healthy = progress.state == COMPLETE
        # A release counts as serving once its rollout completed; one still rolling out (or
        # stuck) is not, so the worker deploys (and follows) it again instead of trusting it.
        rolled_out = healthy or _rolled_out(deployment)
        deployment_id = _labels(deployment).get("deployment_id") if rolled_out else None
        return self._observed(app_name, deployment_id, healthy, progress.message)

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
        for kind in (DEPLOYMENTS, SERVICES):
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
            lines, newest = await self.pod_logs.snapshot(query)
        except KubeError as exc:
            raise _outcome(exc) from exc
        for line in lines:
            yield line
        if follow:
            async for line in self.pod_logs.follow(query, newest):
                yield line


def _rolled_out(deployment: Mapping[str, Any]) -> bool:
    """The controller finished rolling out the current template (pods may be down since)."""
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return False
    return any(
        condition.get("type") == "Progressing"
        and condition.get("reason") == "NewReplicaSetAvailable"
        for condition in status.get("conditions") or []
    )


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _outcome(exc: KubeError) -> Retry | Fatal:
    if isinstance(exc, KubeNotOwned) or not exc.transient:
        return Fatal(exc.message)
    return Retry(exc.message, delay=RETRY_DELAY_SECS)
