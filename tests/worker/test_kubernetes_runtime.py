"""The Kubernetes runtime against a Kubernetes API on loopback (kmock), rollouts driven by
patching Deployment and Pod status as the controller and the kubelet would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from aether.settings import KubeSettings, WorkerSettings
from aether.worker.outcomes import Fatal, Retry
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.kubernetes import KubernetesRuntime
from plugins.kube_api import DEPLOYMENTS, PODS, KubeAPI, wait_until, write_kubeconfig
from plugins.kube_cluster import Cluster, assert_valid_manifests, running_pod_status

FIRST = Release(
    app_name="hello",
    deployment_id="11111111-1111-4111-8111-111111111111",
    digest="a1" * 32,
    storage_key="artifacts/hello/a1/app.tar.zst",
    compression="zstd",
    start_command=None,
    replicas=2,
    api_url="http://aether.aether-system.svc:8080",
    pull_token="token-one",
)
SECOND = replace(
    FIRST,
    deployment_id="22222222-2222-4222-8222-222222222222",
    digest="b2" * 32,
    pull_token="token-two",
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def __call__(self, phase: str, message: str) -> None:
        self.events.append((phase, message))

    def messages(self, phase: str) -> list[str]:
        return [message for p, message in self.events if p == phase]


def settings_for(kubeconfig: Path, **extra: str) -> KubeSettings:
    return KubeSettings.from_env(
        {
            "KUBECONFIG": str(kubeconfig),
            "AETHER_KUBE_POLL_SECS": "0.02",
            "AETHER_INIT_IMAGE": "aether:test",
            **extra,
        }
    )


@pytest.fixture
async def runtime(kube_api: KubeAPI) -> AsyncIterator[KubernetesRuntime]:
    assert kube_api.kubeconfig is not None
    runtime = KubernetesRuntime.from_settings(
        settings_for(kube_api.kubeconfig),
        WorkerSettings.from_env({"AETHER_ROLLOUT_TIMEOUT_SECS": "20"}),
    )
    yield runtime
    await runtime.stop()


def serving(api: KubeAPI, release: Release) -> dict | None:
    """The Deployment once it carries ``release`` and the API has bumped its generation."""
    live = api.live(DEPLOYMENTS, release.app_name)
    if live and live["metadata"]["labels"]["deployment_id"] == release.deployment_id:
        return live
    return None


async def roll_out(
    runtime: KubernetesRuntime, api: KubeAPI, cluster: Cluster, release: Release, record: Recorder
):
    task = asyncio.create_task(runtime.deploy(release, record))
    await wait_until(lambda: serving(api, release), what="the Deployment of the release")
    await cluster.finish_rollout(release.app_name)
    return await asyncio.wait_for(task, 20)


async def test_first_deploy_applies_valid_objects_and_waits_for_availability(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    record = Recorder()
    task = asyncio.create_task(runtime.deploy(FIRST, record))
    await wait_until(lambda: serving(kube_api, FIRST), what="the Deployment")
    await wait_until(lambda: record.messages("rollout"), what="a rollout event")
    assert not task.done()  # nothing is available yet

    await cluster.finish_rollout("hello")
    observed = await asyncio.wait_for(task, 20)

    assert observed.healthy and observed.deployment_id == FIRST.deployment_id
    assert observed.endpoint == "http://hello.aether.svc.cluster.local"
    assert record.messages("applying") == [
        f"Secret hello-pull-{FIRST.deployment_id} created; Deployment hello created; Service hello created"
    ]
    assert record.messages("rollout") == ["waiting for the Deployment controller to see the change"]
    assert record.messages("healthy") == ["2/2 replicas available"]
    for kind, name in (
        ("v1/secrets", f"hello-pull-{FIRST.deployment_id}"),
        (DEPLOYMENTS, "hello"),
        ("v1/services", "hello"),
    ):
        live = kube_api.live(kind, name)
        assert (
            live is not None
            and live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aether"
        )
    deployment = kube_api.live(DEPLOYMENTS, "hello")
    deployment.pop("status")
    for field in ("uid", "resourceVersion", "generation", "creationTimestamp"):
        deployment["metadata"].pop(field)
    assert assert_valid_manifests([deployment]) == 1
    assert (await runtime.observe("hello")).healthy


async def test_redeploy_updates_in_place_and_prunes_the_old_pull_token(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    record = Recorder()

    observed = await roll_out(runtime, kube_api, cluster, SECOND, record)

    assert observed.deployment_id == SECOND.deployment_id and observed.healthy
    assert record.messages("applying") == [
        f"Secret hello-pull-{SECOND.deployment_id} created; Deployment hello updated; Service hello unchanged"
    ]
    live = kube_api.live(DEPLOYMENTS, "hello")
    assert live["metadata"]["generation"] == 2
    assert live["metadata"]["annotations"]["aether.dev/digest"] == SECOND.digest
    secrets = [s["metadata"]["name"] for s in kube_api.all_live("v1/secrets")]
    assert secrets == [f"hello-pull-{SECOND.deployment_id}"]


async def test_config_is_an_immutable_secret_per_release_owned_by_the_deployment(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    first = replace(FIRST, env={"DATABASE_URL": "postgres://secret-one"})
    second = replace(SECOND, env={"DATABASE_URL": "postgres://secret-two"})
    record = Recorder()
    await roll_out(runtime, kube_api, cluster, first, record)
    assert record.messages("applying")[0].startswith(
        f"Secret hello-pull-{FIRST.deployment_id} created; "
        f"Secret hello-env-{FIRST.deployment_id} created; Deployment hello created"
    )
    workload = kube_api.live(DEPLOYMENTS, "hello")
    secret = kube_api.live("v1/secrets", f"hello-env-{FIRST.deployment_id}")
    assert secret["immutable"] is True
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("Deployment", "hello")
    assert owner["uid"] == workload["metadata"]["uid"]
    assert "secret-one" not in str(workload)

    await roll_out(runtime, kube_api, cluster, second, Recorder())
    names = sorted(s["metadata"]["name"] for s in kube_api.all_live("v1/secrets"))
    assert names == [f"hello-env-{SECOND.deployment_id}", f"hello-pull-{SECOND.deployment_id}"]
    await runtime.remove("hello")
    assert kube_api.all_live("v1/secrets") == []


async def test_redeploy_of_the_same_release_changes_nothing(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    record = Recorder()

    observed = await asyncio.wait_for(runtime.deploy(FIRST, record), 20)

    assert observed.healthy
    assert record.messages("applying") == [
        f"Secret hello-pull-{FIRST.deployment_id} unchanged; Deployment hello unchanged; Service hello unchanged"
    ]
    assert kube_api.live(DEPLOYMENTS, "hello")["metadata"]["generation"] == 1


async def test_failed_fetch_init_container_fails_with_its_reason(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    record = Recorder()
    task = asyncio.create_task(runtime.deploy(FIRST, record))
    await wait_until(lambda: serving(kube_api, FIRST), what="the Deployment")
    status = running_pod_status()
    status["phase"] = "Pending"
    status["initContainerStatuses"][0]["state"] = {
        "terminated": {
            "exitCode": 20,
            "reason": "Error",
            "message": "downloading…\naether: error: digest mismatch: expected a1a1…, got 0f0f…",
        }
    }
    status["containerStatuses"][0]["state"] = {"waiting": {"reason": "PodInitializing"}}
    await cluster.create_pod("hello", "x1", status)
    await cluster.see_change("hello")

    with pytest.raises(Fatal) as failed:
        await asyncio.wait_for(task, 20)

    assert (
        "fetching the artifact failed (exit 20): aether: error: digest mismatch"
        in failed.value.message
    )
    assert record.messages("rollback") == [
        "no release of this app ran before: removed Service hello, Deployment hello, "
        f"Secret hello-pull-{FIRST.deployment_id}"
    ]
    assert kube_api.live(DEPLOYMENTS, "hello") is None and kube_api.all_live("v1/secrets") == []
    assert await runtime.observe("hello") is None


async def test_a_failed_first_deploy_deletes_nothing_that_existed_before(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    # An earlier attempt left the app's Service; another app runs beside it.
    await roll_out(runtime, kube_api, cluster, replace(FIRST, app_name="other"), Recorder())
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "hello", "labels": {"app.kubernetes.io/managed-by": "aether"}},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    await cluster.create("v1/services", service)
    record = Recorder()
    task = asyncio.create_task(runtime.deploy(FIRST, record))
    await wait_until(lambda: serving(kube_api, FIRST), what="the Deployment")
    await cluster.deadline_exceeded("hello")

    with pytest.raises(Fatal, match="no progress before its deadline"):
        await asyncio.wait_for(task, 20)

    assert record.messages("rollback") == [
        "no release of this app ran before: removed Deployment hello, "
        f"Secret hello-pull-{FIRST.deployment_id}"
    ]
    assert kube_api.live("v1/services", "hello") is not None  # it was there before
    assert kube_api.live(DEPLOYMENTS, "other") is not None
    assert kube_api.live("v1/secrets", f"other-pull-{FIRST.deployment_id}") is not None


async def test_a_failed_upgrade_deletes_nothing_and_the_restore_is_assessed_afresh(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    task = asyncio.create_task(runtime.deploy(SECOND, Recorder()))
    await wait_until(lambda: serving(kube_api, SECOND), what="the new template")
    await cluster.deadline_exceeded("hello")
    with pytest.raises(Fatal, match="no progress before its deadline"):
        await asyncio.wait_for(task, 20)
    stale = kube_api.live(DEPLOYMENTS, "hello")["status"]["conditions"]
    for kind, name in (
        ("v1/services", "hello"),
        ("v1/secrets", f"hello-pull-{FIRST.deployment_id}"),
    ):
        assert kube_api.live(kind, name) is not None  # nothing deleted
    assert kube_api.writes("DELETE", "deployments") == []

    # The worker deploys FIRST again. The controller sees the change but keeps the failure it
    # wrote for SECOND's ReplicaSet until FIRST's pods are available.
    record = Recorder()
    restore = asyncio.create_task(runtime.deploy(FIRST, record))
    await wait_until(lambda: serving(kube_api, FIRST), what="the restored template")
    await cluster.see_change("hello")
    live = kube_api.live(DEPLOYMENTS, "hello")
    await cluster.patch_status(DEPLOYMENTS, "hello", {**live["status"], "conditions": stale})
    await wait_until(
        lambda: "0/2 replicas updated, 0 available" in record.messages("rollout"),
        what="the restore assessed with the stale condition in place",
    )
    assert not restore.done()
    await cluster.finish_rollout("hello")
    observed = await asyncio.wait_for(restore, 20)

    assert observed.deployment_id == FIRST.deployment_id and observed.healthy
    secrets = [s["metadata"]["name"] for s in kube_api.all_live("v1/secrets")]
    assert secrets == [f"hello-pull-{FIRST.deployment_id}"]  # SECOND's token is pruned


async def test_crash_loop_fails_with_the_app_output(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    task = asyncio.create_task(runtime.deploy(FIRST, Recorder()))
    await wait_until(lambda: serving(kube_api, FIRST), what="the Deployment")
    status = running_pod_status()
    status["containerStatuses"][0].update(
        ready=False,
        restartCount=3,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"exitCode": 1, "message": "Error: Cannot find module 'express'"}},
    )
    await cluster.create_pod("hello", "x1", status)
    await cluster.see_change("hello")

    with pytest.raises(
        Fatal, match=r"app keeps crashing \(exit 1, 3 restarts\): Error: Cannot find module"
    ):
        await asyncio.wait_for(task, 20)


async def test_conflicting_writes_are_reread_and_retried(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    kube_api.race_next_write("deployments", "hello")

    observed = await roll_out(runtime, kube_api, cluster, SECOND, Recorder())

    assert observed.deployment_id == SECOND.deployment_id
    # The first PUT carried the resourceVersion read before the controller's status write
    # and got 409; the second, based on a fresh read, went through.
    assert len(kube_api.writes("PUT", "deployments", "hello")) == 2
    assert kube_api.live(DEPLOYMENTS, "hello")["metadata"]["labels"]["deployment_id"] == (
        SECOND.deployment_id
    )


async def test_conflicts_beyond_the_bounded_retries_are_a_retry_for_the_worker(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    kube_api.race_next_write("deployments", "hello", times=5)

    with pytest.raises(Retry, match="kept changing"):
        await runtime.deploy(SECOND, Recorder())
    assert len(kube_api.writes("PUT", "deployments", "hello")) == 5
    assert kube_api.live(DEPLOYMENTS, "hello")["metadata"]["labels"]["deployment_id"] == (
        FIRST.deployment_id
    )


async def test_remove_deletes_only_the_apps_objects(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    await roll_out(runtime, kube_api, cluster, replace(FIRST, app_name="other"), Recorder())

    await runtime.remove("hello")

    assert (
        kube_api.live(DEPLOYMENTS, "hello") is None
        and kube_api.live("v1/services", "hello") is None
    )
    assert not [
        s for s in kube_api.all_live("v1/secrets") if s["metadata"]["labels"]["app_name"] == "hello"
    ]
    assert not [
        p for p in kube_api.all_live(PODS) if p["metadata"]["labels"]["app_name"] == "hello"
    ]
    assert await runtime.observe("hello") is None
    assert (await runtime.observe("other")).deployment_id == FIRST.deployment_id
    await runtime.remove("hello")  # idempotent


async def test_an_object_aether_does_not_own_is_left_alone(
    runtime: KubernetesRuntime, kube_api: KubeAPI
) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "labels": {"team": "x"}},
        "spec": {},
    }
    async with kube_api.post("/apis/apps/v1/namespaces/aether/deployments", json=body) as response:
        assert response.status < 400

    with pytest.raises(Fatal, match="not managed by aether"):
        await runtime.deploy(FIRST, Recorder())
    assert kube_api.live(DEPLOYMENTS, "hello")["metadata"]["labels"] == {"team": "x"}
    assert await runtime.observe("hello") is None


async def test_unreachable_api_server_is_a_retry(tmp_path: Path) -> None:
    from plugins.kube_api import free_port

    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    runtime = KubernetesRuntime.from_settings(settings_for(config), WorkerSettings.from_env({}))

    with pytest.raises(Retry, match="cannot reach the Kubernetes API"):
        await runtime.deploy(FIRST, Recorder())
    with pytest.raises(Retry):
        await runtime.observe("hello")
    await runtime.stop()


async def test_missing_api_url_is_fatal(runtime: KubernetesRuntime) -> None:
    with pytest.raises(Fatal, match="AETHER_PUBLIC_URL"):
        await runtime.deploy(replace(FIRST, api_url=None), Recorder())


async def test_a_release_still_rolling_out_is_not_reported_as_serving(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    task = asyncio.create_task(runtime.deploy(SECOND, Recorder()))
    await wait_until(lambda: serving(kube_api, SECOND), what="the new template")

    during = await runtime.observe("hello")
    await cluster.finish_rollout("hello")
    await asyncio.wait_for(task, 20)
    after = await runtime.observe("hello")
    # A pod of a completed rollout going down keeps the release serving, only unhealthy.
    live = kube_api.live(DEPLOYMENTS, "hello")
    await cluster.patch_status(DEPLOYMENTS, "hello", {**live["status"], "availableReplicas": 1})
    degraded = await runtime.observe("hello")

    assert during is not None and during.deployment_id is None and not during.healthy
    assert after is not None and after.deployment_id == SECOND.deployment_id and after.healthy
    assert degraded is not None and degraded.deployment_id == SECOND.deployment_id
    assert not degraded.healthy


async def test_a_missing_namespace_is_fatal_with_the_remedy(
    runtime: KubernetesRuntime, kube_api: KubeAPI
) -> None:
    status = {"kind": "Status", "code": 404, "message": 'namespaces "aether" not found'}
    kube_api["post /api/v1/namespaces/aether/secrets"] << 404 << status

    with pytest.raises(Fatal, match="does the namespace 'aether' exist"):
        await runtime.deploy(FIRST, Recorder())


async def test_a_scale_keeps_the_pods_and_changes_only_the_replica_count(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    pods = {pod["metadata"]["name"] for pod in kube_api.all_live(PODS)}
    template = kube_api.live(DEPLOYMENTS, "hello")["spec"]["template"]
    scaled = replace(
        FIRST,
        deployment_id="33333333-3333-4333-8333-333333333333",
        replicas=3,
        pull_token="token-three",
        scales_from=FIRST.deployment_id,
    )
    record = Recorder()

    observed = await roll_out(runtime, kube_api, cluster, scaled, record)

    assert observed.healthy and observed.deployment_id == scaled.deployment_id
    assert record.messages("applying") == ["Deployment hello updated: 3 replicas, pods kept"]
    live = kube_api.live(DEPLOYMENTS, "hello")
    assert live["spec"]["template"] == template  # no pod is replaced
    assert live["spec"]["replicas"] == 3
    assert live["metadata"]["labels"]["deployment_id"] == scaled.deployment_id
    now = {pod["metadata"]["name"] for pod in kube_api.all_live(PODS)}
    assert pods < now and len(now) == 3
    secrets = [s["metadata"]["name"] for s in kube_api.all_live("v1/secrets")]
    assert secrets == [f"hello-pull-{FIRST.deployment_id}"]  # the pods' own token stays
    seen = await runtime.observe("hello")
    assert seen is not None and seen.deployment_id == scaled.deployment_id and seen.healthy
    found = await runtime.instances("hello")  # (the loop observes the app first)
    assert found is not None and {i.deployment_id for i in found} == {scaled.deployment_id}
    for field in ("uid", "resourceVersion", "generation", "creationTimestamp"):
        live["metadata"].pop(field)
    live.pop("status")
    assert assert_valid_manifests([live]) == 1
    # A deploy after it replaces the pods as always, and prunes the kept pods' token.
    await roll_out(runtime, kube_api, cluster, SECOND, Recorder())
    secrets = [s["metadata"]["name"] for s in kube_api.all_live("v1/secrets")]
    assert secrets == [f"hello-pull-{SECOND.deployment_id}"]
