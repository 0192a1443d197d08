"""An Ingress per app on Kubernetes (AETHER_APPS_DOMAIN): its shape against the real schemas,
and on the loopback API server: created with the app, brought back when edited, updated when
the settings change, left alone by a failed upgrade, removed with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_kubernetes_manifests import RELEASE
from test_kubernetes_upgrades import failure_of, running_app, served, settle, upgrade
from test_kubernetes_worker import kube_environ
from worker_support import worker_settings

from aether.settings import KubeSettings
from aether.store.database import Database
from aether.worker.loop import Worker
from aether.worker.runtimes.kubernetes import KubernetesRuntime
from aether.worker.runtimes.kubernetes_manifests import synthesize
from plugins.kube_api import KubeAPI
from plugins.kube_cluster import assert_valid_manifests
from plugins.kube_controller import NEVER_READY, Controller

INGRESSES = "networking.k8s.io/v1/ingresses"
DOMAIN = {"AETHER_APPS_DOMAIN": "Apps.Example.com."}


def ingress_of(environ: dict[str, str]) -> dict[str, Any]:
    manifests = synthesize(RELEASE, KubeSettings.from_env(environ), version="0.0.0-test")
    assert_valid_manifests(manifests)  # strict, oldest and newest Kubernetes schemas
    found = [m for m in manifests if m["kind"] == "Ingress"]
    assert len(found) == 1 and manifests[-1] is found[0]  # applied after its Service
    return found[0]


def test_no_apps_domain_no_ingress() -> None:
    manifests = synthesize(RELEASE, KubeSettings.from_env({}), version="0.0.0-test")
    assert "Ingress" not in {m["kind"] for m in manifests}


def test_the_ingress_routes_the_apps_host_to_its_service() -> None:
    ingress = ingress_of(DOMAIN)
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["name"] == "hello"
    assert ingress["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aether"
    assert ingress["spec"] == {
        "rules": [
            {
                "host": "hello.apps.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "hello", "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ]
    }
    assert "annotations" not in ingress["metadata"]


def test_class_tls_secret_and_cert_manager_issuer() -> None:
    with_secret = ingress_of(
        {
            **DOMAIN,
            "AETHER_KUBE_INGRESS_CLASS": "nginx",
            "AETHER_KUBE_INGRESS_TLS_SECRET": "wildcard-apps",
        }
    )
    assert with_secret["spec"]["ingressClassName"] == "nginx"
    assert with_secret["spec"]["tls"] == [
        {"hosts": ["hello.apps.example.com"], "secretName": "wildcard-apps"}
    ]
    issued = ingress_of({**DOMAIN, "AETHER_KUBE_INGRESS_CLUSTER_ISSUER": "letsencrypt"})
    assert issued["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert issued["spec"]["tls"] == [
        {"hosts": ["hello.apps.example.com"], "secretName": "hello-tls"}
    ]


def make_worker(database: Database, kube_api: KubeAPI, tmp_path: Path, **environ: str) -> Worker:
    # A short lease: the second worker of a test takes the app over from the stopped first one
    # in seconds, not after the default 30 s.
    ws = worker_settings(tmp_path / "data", AETHER_WORKER_LEASE_SECS=5)
    runtime = KubernetesRuntime.from_env(ws, {**kube_environ(kube_api), **DOMAIN, **environ})
    return Worker(database, runtime, ws, public_url="http://aether")


@pytest.fixture
async def worker(database: Database, kube_api: KubeAPI, tmp_path: Path) -> AsyncIterator[Worker]:
    w = make_worker(database, kube_api, tmp_path)
    yield w
    await w.runtime.stop()


async def test_created_kept_through_a_failed_upgrade_updated_and_removed_with_the_app(
    worker: Worker,
    database: Database,
    kube_api: KubeAPI,
    controller: Controller,
    tmp_path: Path,
) -> None:
    app, first = await running_app(database, worker)
    live = kube_api.live(INGRESSES, "hello")
    assert live is not None
    assert live["spec"]["rules"][0]["host"] == "hello.apps.example.com"

    second = await upgrade(database, worker, controller, app, NEVER_READY)
    await failure_of(database, second)
    await settle(worker, served(worker, first))
    assert kube_api.live(INGRESSES, "hello") is not None
    assert kube_api.writes("DELETE", "ingresses") == []

    # Another worker with an ingress class: the next rollout brings the Ingress up to date.
    await worker.runtime.stop()
    classy = make_worker(database, kube_api, tmp_path, AETHER_KUBE_INGRESS_CLASS="nginx")
    try:
        third = await upgrade_ok(database, classy, controller, app)
        await settle(classy, served(classy, third))
        updated = kube_api.live(INGRESSES, "hello")
        assert updated is not None and updated["spec"]["ingressClassName"] == "nginx"
        assert len(kube_api.writes("PUT", "ingresses", "hello")) == 1

        await database.execute("DELETE FROM applications WHERE id = :id", {"id": app["id"]})
        await classy.run_once(wait=True)
        assert kube_api.live(INGRESSES, "hello") is None
        assert kube_api.live("apps/v1/deployments", "hello") is None
    finally:
        await classy.runtime.stop()


async def upgrade_ok(
    database: Database, worker: Worker, controller: Controller, app: dict[str, Any]
) -> str:
    from worker_support import stage_deployment

    from plugins.kube_controller import READY

    release = await stage_deployment(database, worker.settings.data_dir, app, staged=False)
    controller.pods[release] = READY
    await worker.run_once(wait=True)
    return release


def test_an_app_scaled_to_zero_validates() -> None:
    manifests = synthesize(replace(RELEASE, replicas=0), KubeSettings.from_env(DOMAIN))
    assert_valid_manifests(manifests)
    assert next(m for m in manifests if m["kind"] == "Deployment")["spec"]["replicas"] == 0
