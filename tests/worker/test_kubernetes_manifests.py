"""Kubernetes workload synthesis: golden manifests and strict schema validation (pure)."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from aether.errors import ConfigError
from aether.settings import KubeSettings
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.kubernetes_manifests import synthesize
from plugins.kube_cluster import assert_valid_manifests

GOLDEN = Path(__file__).parent.parent / "kube" / "golden"
DIGEST = "9f" * 32

RELEASE = Release(
    app_name="hello",
    deployment_id="0b7e6f0e-3d5c-4c4e-9a51-2f1f6b0c9d11",
    digest=DIGEST,
    storage_key=f"artifacts/hello/{DIGEST}/app.tar.zst",
    compression="zstd",
    start_command=None,
    env={"GREETING": "hi ✓", "DATABASE_URL": "postgres://u:p4ss@db/x", "NODE_ENV": "staging"},
    replicas=2,
    health_path="/healthz",
    api_url="http://aether.aether-system.svc:8080",
    pull_token="pull-token-value",
)

FULL_ENV = {
    "AETHER_DEFAULT_NAMESPACE": "apps",
    "AETHER_INIT_IMAGE": "registry.example/aether:1.2.3",
    "AETHER_NODE_IMAGE": "registry.example/aether-nodejs:20-slim",
    "AETHER_KUBE_CPU_LIMIT": "1",
    "AETHER_KUBE_SERVICE_ACCOUNT": "apps-runner",
    "AETHER_KUBE_IMAGE_PULL_SECRETS": "regcred, other",
    "AETHER_KUBE_NODE_SELECTOR": '{"pool": "apps"}',
    "AETHER_KUBE_TOLERATIONS": '[{"key": "dedicated", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}]',
    "AETHER_KUBE_ROLLOUT_STRATEGY": "rolling",
}

CASES = {
    "default": (RELEASE, {"AETHER_INIT_IMAGE": "aether:test"}),  # the default follows the version
    "full-settings": (
        replace(
            RELEASE,
            start_command="node server.js --port $PORT",
            health_path=None,
            replicas=1,
            env={},
        ),
        FULL_ENV,
    ),
}


def rendered(case: str) -> list[dict]:
    release, environ = CASES[case]
    return synthesize(release, KubeSettings.from_env(environ), version="0.0.0-test")


def kinds(case: str) -> tuple[dict, dict | None, dict, dict]:
    """(pull-token Secret, env Secret or None, Deployment, Service)."""
    manifests = rendered(case)
    env_secret = manifests[1] if len(manifests) == 4 else None
    return manifests[0], env_secret, manifests[-2], manifests[-1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_synthesis_matches_the_golden_manifests(case: str) -> None:
    golden = GOLDEN / f"{case}.json"
    manifests = rendered(case)
    if os.environ.get("AETHER_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(manifests, indent=2, sort_keys=True) + "\n")
    assert manifests == json.loads(golden.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_validate_strictly_for_oldest_and_newest_kubernetes(case: str) -> None:
    manifests = rendered(case)
    assert assert_valid_manifests(manifests) == len(manifests)


def test_labels_on_deployment_and_pod_template() -> None:
    _, _, deployment, service = kinds("default")
    expected = {
        "app": "aether",
        "app_name": "hello",
        "deployment_id": RELEASE.deployment_id,
        "app.kubernetes.io/managed-by": "aether",
    }
    assert deployment["metadata"]["labels"] == expected
    assert deployment["spec"]["template"]["metadata"]["labels"] == expected
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "aether", "app_name": "hello"}
    assert service["spec"]["selector"] == {"app": "aether", "app_name": "hello"}
    assert deployment["metadata"]["annotations"]["aether.dev/digest"] == DIGEST


def test_fetch_init_container_and_hardened_app_container() -> None:
    secret, _, deployment, _ = kinds("default")
    pod = deployment["spec"]["template"]["spec"]
    fetch, app = pod["initContainers"][0], pod["containers"][0]
    assert fetch["command"] == [
        "aether", "fetch", "--api", RELEASE.api_url, "--deployment", RELEASE.deployment_id,
        "--digest", DIGEST, "--token-file", "/var/run/aether/token", "--dest", "/app",
    ]  # fmt: skip
    assert {"name": "app", "emptyDir": {}} in pod["volumes"]
    token_volume = next(v for v in pod["volumes"] if v["name"] == "pull-token")
    assert token_volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert "pull-token" not in {mount["name"] for mount in app["volumeMounts"]}
    security = app["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
    assert security["runAsUser"] == 1000 and security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert app["args"] == ["npm", "start"]
    env = {item["name"]: item["value"] for item in app["env"]}
    assert env["PORT"] == "8080" and env["AETHER_DIGEST"] == DIGEST
    assert app["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_config_reaches_the_app_through_an_immutable_secret_and_never_inline() -> None:
    _, env_secret, deployment, _ = kinds("default")
    assert env_secret is not None and env_secret["immutable"] is True
    assert env_secret["metadata"]["name"] == f"hello-env-{RELEASE.deployment_id}"
    assert env_secret["metadata"]["labels"]["deployment_id"] == RELEASE.deployment_id
    decoded = {k: base64.b64decode(v).decode() for k, v in env_secret["data"].items()}
    assert decoded == dict(RELEASE.env)
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    assert app["envFrom"] == [{"secretRef": {"name": env_secret["metadata"]["name"]}}]
    inline = {item["name"] for item in app["env"]}
    # A container's env wins over envFrom: a default the config sets is left out.
    assert "NODE_ENV" not in inline and "HOME" in inline
    text = json.dumps(deployment)
    assert all(value not in text for value in RELEASE.env.values())
    _, none, plain, _ = kinds("full-settings")
    assert none is None and "envFrom" not in plain["spec"]["template"]["spec"]["containers"][0]


def test_settings_reach_the_pod() -> None:
    _, _, deployment, _ = kinds("full-settings")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "apps-runner"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert pod["nodeSelector"] == {"pool": "apps"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert deployment["metadata"]["namespace"] == "apps"
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert pod["containers"][0]["readinessProbe"]["tcpSocket"] == {"port": "http"}
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}


def test_missing_pull_token_or_api_url_is_a_config_error() -> None:
    settings = KubeSettings.from_env({})
    with pytest.raises(ConfigError, match="pull token"):
        synthesize(replace(RELEASE, pull_token=None), settings)
    with pytest.raises(ConfigError, match="AETHER_PUBLIC_URL"):
        synthesize(replace(RELEASE, api_url=None), settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AETHER_KUBE_MEMORY_LIMIT": "lots"}, "not a Kubernetes quantity"),
        ({"AETHER_KUBE_NODE_SELECTOR": "[1]"}, "must be a JSON dict"),
        ({"AETHER_KUBE_TOLERATIONS": "{"}, "not valid JSON"),
        ({"AETHER_KUBE_ROLLOUT_STRATEGY": "canary"}, "must be one of"),
    ],
)
def test_bad_kube_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KubeSettings.from_env(environ)


def test_signed_release_makes_fetch_check_the_signature_with_the_key_that_made_it() -> None:
    from aether.pack.signing import generate_keypair, sign_digest

    private, public = generate_keypair()
    _, other = generate_keypair()
    signature = sign_digest(private, DIGEST)
    signed = replace(RELEASE, signature=signature, public_keys=(other, public))

    deployment = synthesize(signed, KubeSettings.from_env({}))[-2]

    command = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert command[-4:] == ["--public-key", public, "--signature", signature]


@pytest.mark.parametrize("case", sorted(CASES))
def test_pods_meet_the_restricted_pod_security_standard(case: str) -> None:
    pod = kinds(case)[2]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert all(set(volume) - {"name"} <= {"emptyDir", "secret"} for volume in pod["volumes"])
    for container in pod["initContainers"] + pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "hostPort" not in str(container.get("ports", []))


def test_the_node_image_follows_the_releases_node_major() -> None:
    from aether.worker.outcomes import Fatal
    from aether.worker.runtimes.kubernetes_manifests import node_image

    default = KubeSettings.from_env({})
    assert node_image(None, default) == "aether-nodejs:20-slim"
    assert node_image(22, default) == "aether-nodejs:22-slim"
    per_major = KubeSettings.from_env(
        {"AETHER_NODE_IMAGES": '{"22": "registry.example/node:22"}', "AETHER_NODE_MAJOR": "22"}
    )
    assert node_image(None, per_major) == "registry.example/node:22"
    assert node_image(18, per_major) == "aether-nodejs:18-slim"
    fixed = KubeSettings.from_env({"AETHER_NODE_IMAGE": "registry.example/node20"})
    assert node_image(20, fixed) == "registry.example/node20"
    with pytest.raises(Fatal, match='AETHER_NODE_IMAGES=\'{"22": "<image>"}\''):
        node_image(22, fixed)  # a fixed image serves the default major only
    manifests = synthesize(replace(RELEASE, node_major=22), default)
    (manifest,) = [m for m in manifests if m["kind"] == "Deployment"]
    (app,) = manifest["spec"]["template"]["spec"]["containers"]
    assert app["image"] == "aether-nodejs:22-slim"
