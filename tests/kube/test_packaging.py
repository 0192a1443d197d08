"""packaging/: the manifests that run Aether on Kubernetes, and the Node.js base image."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from aether.settings import KubeSettings, WorkerSettings
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.kubernetes import KubernetesRuntime
from plugins.kube_api import KubeAPI, wait_until
from plugins.kube_cluster import Cluster, assert_valid_manifests

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
MANIFESTS = sorted((PACKAGING / "kubernetes").rglob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(kind: str, name: str) -> dict[str, Any]:
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name} under packaging/kubernetes")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_manifest_validates_strictly(path: Path) -> None:
    assert assert_valid_manifests(documents(path)) >= 1


def test_control_plane_runs_serve_with_a_worker_sidecar() -> None:
    pod = find("Deployment", "aether")["spec"]["template"]["spec"]
    api, worker = pod["containers"]
    assert api["args"][:2] == ["serve", "--no-worker"] and worker["args"] == ["worker"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["serviceAccountName"] == find("ServiceAccount", "aether")["metadata"]["name"]
    for container in (api, worker):
        env = {item["name"]: item for item in container["env"]}
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "aether-secrets"
        assert "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]
        assert env["AETHER_RUNTIME"]["value"] == "kubernetes"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    secret_keys = set(find("Secret", "aether-secrets")["stringData"])
    referenced = {
        item["valueFrom"]["secretKeyRef"]["key"]
        for container in (api, worker)
        for item in container["env"]
        if "valueFrom" in item
    }
    assert referenced <= secret_keys


def test_role_is_bound_to_the_control_plane_in_the_apps_namespace() -> None:
    role, binding = find("Role", "aether-worker"), find("RoleBinding", "aether-worker")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "aether"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "aether", "namespace": "aether-system"}
    ]


def granted() -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in find("Role", "aether-worker")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def verb_of(request: Any) -> str:
    if request.method == "GET":
        return "get" if request.name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[request.method]


async def test_role_grants_exactly_what_the_runtime_uses(
    kube_api: KubeAPI, cluster: Cluster
) -> None:
    assert kube_api.kubeconfig is not None
    settings = KubeSettings.from_env(
        {
            "KUBECONFIG": str(kube_api.kubeconfig),
            "AETHER_KUBE_POLL_SECS": "0.02",
            "AETHER_APPS_DOMAIN": "apps.example.com",
        }
    )
    runtime = KubernetesRuntime.from_settings(settings, WorkerSettings.from_env({}))
    first = Release(
        app_name="hello",
        deployment_id="11111111-1111-4111-8111-111111111111",
        digest="a1" * 32,
        storage_key="k",
        compression="zstd",
        start_command=None,
        api_url="http://aether",
        pull_token="t1",
        env={"DATABASE_URL": "postgres://x"},
    )
    second = replace(first, deployment_id="22222222-2222-4222-8222-222222222222", pull_token="t2")
    await _scenario(runtime, kube_api, cluster, first, second)
    await runtime.stop()
    used = kube_api_requests_by_runtime(kube_api)

    assert used == granted()


async def _scenario(
    runtime: KubernetesRuntime, api: KubeAPI, cluster: Cluster, first: Release, second: Release
) -> None:
    async def ignore(phase: str, message: str) -> None:
        return None

    def carrying(release: Release) -> bool:
        live = api.live("apps/v1/deployments", "hello")
        return bool(live and live["metadata"]["labels"]["deployment_id"] == release.deployment_id)

    for release, healthy in ((first, True), (second, False)):
        task = asyncio.create_task(runtime.deploy(release, ignore))
        await wait_until(lambda release=release: carrying(release), what="the release's Deployment")
        if healthy:
            await cluster.finish_rollout("hello")
            await task
        else:
            await cluster.deadline_exceeded("hello")
            with pytest.raises(Fatal):
                await task
            # What the worker does next: deploy the first release again (a restore).
            restore = asyncio.create_task(runtime.deploy(first, ignore))
            await wait_until(lambda: carrying(first), what="the restored Deployment")
            await cluster.finish_rollout("hello")
            await restore
        if healthy:
            # Someone edited the Service, and the worker retries with a renewed pull token:
            # both objects are brought back to what aether declares (update).
            drift = {"spec": {"ports": [{"name": "http", "port": 81, "targetPort": "http"}]}}
            await cluster.patch("v1/services", "hello", drift)
            await cluster.patch(
                "networking.k8s.io/v1/ingresses", "hello", {"spec": {"rules": [{"host": "x.y"}]}}
            )
            await runtime.deploy(replace(release, pull_token="renewed"), ignore)
    await runtime.observe("hello")
    assert await runtime.managed_apps() == {"hello"}
    await api.write_log("hello-11111111-0", "app", "hi")
    assert [line.line async for line in runtime.logs("hello", container="app")] == ["hi"]
    await runtime.remove("hello")


def kube_api_requests_by_runtime(api: KubeAPI) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every request pykube made (the test's own use aiohttp)."""
    used = set()
    for request in api:
        if request.resource is None or "pykube" not in request.headers.get("User-Agent", ""):
            continue
        resource = request.resource.plural + (
            f"/{request.subresource}" if request.subresource else ""
        )
        used.add((request.resource.group, resource, verb_of(request)))
    return used


def test_node_base_image_is_slim_non_root_with_an_init() -> None:
    dockerfile = (PACKAGING / "images" / "nodejs-20-slim" / "Dockerfile").read_text()
    assert "FROM node:${NODE_VERSION}-slim" in dockerfile and "ARG NODE_VERSION=20" in dockerfile
    assert "\nUSER 1000:1000\n" in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in dockerfile
