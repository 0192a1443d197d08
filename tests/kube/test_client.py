"""The Kubernetes adapter against a real API server on loopback (kmock + fixture gaps)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from aether.errors import ConfigError
from aether.kube import (
    DEPLOYMENTS,
    PODS,
    SECRETS,
    KubeClient,
    KubeConflict,
    KubeNotOwned,
    KubeUnavailable,
    LogUnavailable,
    apply,
    follow_log,
    load_config,
    log_params,
    read_log,
)
from aether.settings import KubeSettings
from plugins.kube_api import NAMESPACE, KubeAPI, write_kubeconfig

OWNER = {"app.kubernetes.io/managed-by": "aether"}


def secret(name: str, value: str, *, labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or dict(OWNER)},
        "type": "Opaque",
        "data": {"token": value},
    }


@pytest.fixture
async def client(kube_api: KubeAPI) -> KubeClient:
    client = KubeClient.from_settings(
        KubeSettings.from_env({"KUBECONFIG": str(kube_api.kubeconfig)})
    )
    yield client
    await client.close()


async def test_apply_creates_then_leaves_unchanged_then_updates(
    client: KubeClient, kube_api: KubeAPI
) -> None:
    first = await apply(client, secret("s", "YQ=="), owner_labels=OWNER)
    again = await apply(client, secret("s", "YQ=="), owner_labels=OWNER)
    changed = await apply(client, secret("s", "Yg=="), owner_labels=OWNER)

    assert [first.action, again.action, changed.action] == ["created", "unchanged", "updated"]
    assert kube_api.live("v1/secrets", "s")["data"] == {"token": "Yg=="}
    assert changed.object["metadata"]["uid"] == first.object["metadata"]["uid"]
    assert int(changed.object["metadata"]["resourceVersion"]) > int(
        first.object["metadata"]["resourceVersion"]
    )


async def test_apply_rereads_and_retries_after_a_conflict(
    client: KubeClient, kube_api: KubeAPI
) -> None:
    await apply(client, secret("s", "YQ=="), owner_labels=OWNER)
    kube_api.race_next_write("secrets", "s")

    result = await apply(client, secret("s", "Yg=="), owner_labels=OWNER)

    assert result.action == "updated"
    puts = [r for r in kube_api if r.method == "PUT"]
    assert len(puts) == 2  # the first lost the race (409), the second used the fresh version
    assert kube_api.live("v1/secrets", "s")["data"] == {"token": "Yg=="}


async def test_stale_resource_version_is_a_conflict(client: KubeClient) -> None:
    created = await client.create(secret("s", "YQ=="))
    await client.patch(SECRETS, NAMESPACE, "s", {"data": {"token": "Yg=="}})
    stale = secret("s", "Yw==")
    stale["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]

    with pytest.raises(KubeConflict, match="has been modified"):
        await client.replace(stale)


async def test_apply_refuses_objects_aether_does_not_own(
    client: KubeClient, kube_api: KubeAPI
) -> None:
    await client.create(secret("theirs", "YQ==", labels={"team": "other"}))

    with pytest.raises(KubeNotOwned, match="not managed by aether"):
        await apply(client, secret("theirs", "Yg=="), owner_labels=OWNER)
    assert kube_api.live("v1/secrets", "theirs")["data"] == {"token": "YQ=="}


async def test_list_filters_by_labels_and_delete_reports_absence(client: KubeClient) -> None:
    await client.create(secret("a", "YQ==", labels={**OWNER, "app_name": "a"}))
    await client.create(secret("b", "YQ==", labels={**OWNER, "app_name": "b"}))

    listed = await client.list(SECRETS, NAMESPACE, {"app_name": "b"})

    assert [item["metadata"]["name"] for item in listed] == ["b"]
    assert await client.delete(SECRETS, NAMESPACE, "b") is True
    assert await client.delete(SECRETS, NAMESPACE, "b") is False
    assert await client.get(SECRETS, NAMESPACE, "b") is None
    assert await client.get(DEPLOYMENTS, NAMESPACE, "nothing") is None


async def test_pod_logs_read_and_follow(client: KubeClient, kube_api: KubeAPI) -> None:
    await client.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NAMESPACE}}
    )
    await kube_api.write_log("p", "app", "one")
    await kube_api.write_log("p", "app", "two")

    lines = await read_log(client, NAMESPACE, "p", log_params(container="app", tail_lines=1))
    assert [line.split(" ", 1)[1] for line in lines] == ["two"]

    stream = follow_log(client, NAMESPACE, "p", log_params(container="app"))
    assert (await asyncio.wait_for(anext(stream), 5)).endswith(" one")
    assert (await asyncio.wait_for(anext(stream), 5)).endswith(" two")
    await kube_api.write_log("p", "app", "three")
    assert (await asyncio.wait_for(anext(stream), 5)).endswith(" three")
    await stream.aclose()


async def test_logs_of_a_missing_pod_say_it_is_gone(client: KubeClient) -> None:
    with pytest.raises(LogUnavailable, match="pod ghost is gone") as unavailable:
        await read_log(client, NAMESPACE, "ghost", log_params(container="app"))
    assert unavailable.value.gone


async def test_logs_of_a_container_not_started_say_why(
    client: KubeClient, kube_api: KubeAPI
) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NAMESPACE}}
    await client.create(pod)
    waiting = {"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}
    async with kube_api.patch(
        "/api/v1/namespaces/aether/pods/p/status",
        json={"status": {"containerStatuses": [waiting]}},
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        assert response.status < 400

    with pytest.raises(LogUnavailable, match="is waiting to start: PodInitializing") as unavailable:
        await read_log(client, NAMESPACE, "p", log_params(container="app"))
    assert not unavailable.value.gone


async def test_unreachable_api_is_transient(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    client = KubeClient.from_settings(KubeSettings.from_env({"KUBECONFIG": str(config)}))

    with pytest.raises(KubeUnavailable) as caught:
        await client.get(PODS, NAMESPACE, "p")
    assert caught.value.transient and "cannot reach the Kubernetes API" in caught.value.message


def test_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set KUBECONFIG"):
        load_config(KubeSettings.from_env({"KUBECONFIG": str(tmp_path / "absent")}))


def test_in_cluster_credentials_come_from_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text("not a real certificate")
    settings = KubeSettings.from_env(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    )

    client = KubeClient.from_settings(settings, service_account=tmp_path)

    assert client.server == "https://10.0.0.1:6443"
    assert client.token_file == tmp_path / "token"
    assert client.api.config.cluster["certificate-authority"].filename().endswith("ca.crt")


async def test_the_service_account_token_is_read_for_every_request(
    kube_api: KubeAPI, tmp_path: Path
) -> None:
    assert kube_api.kubeconfig is not None
    token = tmp_path / "token"
    client = KubeClient.from_settings(
        KubeSettings.from_env({"KUBECONFIG": str(kube_api.kubeconfig)})
    )
    client.token_file = token  # as in a pod, where the kubelet rotates the projected token
    token.write_text("first\n")
    await client.get(PODS, NAMESPACE, "p")
    token.write_text("rotated\n")
    await client.get(PODS, NAMESPACE, "p")

    sent = [request.headers.get("Authorization") for request in kube_api]
    assert sent[-2:] == ["Bearer first", "Bearer rotated"]
    await client.close()
