"""Kubernetes workload synthesis: one release + the cluster settings → the manifests to apply.

Pure functions, no I/O: the same inputs always give the same dicts (the golden tests rely on
it). Per app the runtime applies, in order:

- a ``v1 Secret`` ``<app>-pull-<deployment id>`` holding the deployment-scoped pull token the
  init container uses (one per release, so a pod of the previous release that restarts while a
  rollout is in progress still has its own token);
- when the release has config vars, an immutable ``v1 Secret`` ``<app>-env-<deployment id>``
  holding them, which the app container takes whole with ``envFrom`` (values never appear in
  the Deployment); the runtime makes the Deployment its owner once applied, so deleting the
  app collects it;
- an ``apps/v1 Deployment`` ``<app>``: init container ``fetch`` (``aether fetch`` into an
  ``emptyDir`` at ``/app``, digest verified before anything runs) and the hardened ``app``
  container running ``npm start`` (or the deployment's start command);
- a ``v1 Service`` ``<app>`` (ClusterIP, port 80 → the app's ``PORT``).

The namespace (``AETHER_DEFAULT_NAMESPACE``) is not synthesized: it must exist, and the worker's
Role is scoped to it (see ``packaging/kubernetes/``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aether import __version__
from aether.errors import ConfigError
from aether.pack.signing import verify_signature
from aether.settings import KubeSettings
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.base import Release

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "aether"
DIGEST_ANNOTATION = "aether.dev/digest"
VERSION_ANNOTATION = "aether.dev/version"
TOKEN_DIR = "/var/run/aether"
TOKEN_FILE = f"{TOKEN_DIR}/token"
APP_DIR = "/app"
APP_UID = 1000
FETCH_CONTAINER = "fetch"
APP_CONTAINER = "app"
REVISION_HISTORY_LIMIT = 3

Manifest = dict[str, Any]


CERT_MANAGER_ISSUER = "cert-manager.io/cluster-issuer"


def selector_labels(app_name: str) -> dict[str, str]:
    """What selects an app's pods; stable across releases (a Deployment selector is immutable)."""
    return {"app": "aether", "app_name": app_name}


def app_labels(app_name: str) -> dict[str, str]:
    """Labels of every object aether owns for an app; the marker keeps foreign objects safe."""
    return {**selector_labels(app_name), MANAGED_BY_LABEL: MANAGED_BY}


def release_labels(release: Release) -> dict[str, str]:
    return {**app_labels(release.app_name), "deployment_id": release.deployment_id}


def pull_secret_name(app_name: str, deployment_id: str) -> str:
    return f"{app_name}-pull-{deployment_id}"


def env_secret_name(app_name: str, deployment_id: str) -> str:
    return f"{app_name}-env-{deployment_id}"


def service_endpoint(app_name: str, namespace: str) -> str:
    """The in-cluster URL of an app's Service."""
    return f"http://{app_name}.{namespace}.svc.cluster.local"


def synthesize(
    release: Release, settings: KubeSettings, *, version: str = __version__
) -> list[Manifest]:
    """The Secrets, Deployment and Service for ``release``, in the order they are applied,
    and an Ingress for ``<app>.<apps domain>`` when there is an apps domain."""
    secrets = [pull_secret(release, settings)]
    if release.env:
        secrets.append(env_secret(release, settings))
    manifests = [
        *secrets,
        deployment(release, settings, version=version),
        service(release.app_name, settings),
    ]
    if settings.apps_domain:
        manifests.append(ingress(release.app_name, settings))
    return manifests


def pull_secret(release: Release, settings: KubeSettings) -> Manifest:
    if not release.pull_token:
        raise ConfigError(
            f"deployment {release.deployment_id} has no pull token: the worker must create one "
            "for the Kubernetes runtime"
        )
    name = pull_secret_name(release.app_name, release.deployment_id)
    return _secret(name, release, settings, {"token": release.pull_token})


def env_secret(release: Release, settings: KubeSettings) -> Manifest:
    """The release's config vars; immutable (a release's environment never changes, and the
    kubelet need not watch it)."""
    name = env_secret_name(release.app_name, release.deployment_id)
    return {**_secret(name, release, settings, release.env), "immutable": True}


def _secret(
    name: str, release: Release, settings: KubeSettings, values: Mapping[str, str]
) -> Manifest:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, settings.namespace, release_labels(release)),
        "type": "Opaque",
        "data": dict(sorted(data.items())),
    }


def owner_reference(deployment_object: Mapping[str, Any]) -> Manifest:
    """What makes the live Deployment the owner of an object (collected with it)."""
    metadata = deployment_object["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": metadata["name"],
        "uid": metadata["uid"],
    }


def deployment(release: Release, settings: KubeSettings, *, version: str = __version__) -> Manifest:
    labels = release_labels(release)
    annotations = {DIGEST_ANNOTATION: release.digest, VERSION_ANNOTATION: version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_metadata(release.app_name, settings.namespace, labels),
            "annotations": annotations,
        },
        "spec": {
            "replicas": release.replicas,
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": settings.progress_deadline_secs,
            "selector": {"matchLabels": selector_labels(release.app_name)},
            "strategy": _strategy(settings.rollout_strategy),
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": _pod_spec(release, settings),
            },
        },
    }


def scaled_deployment(
    release: Release, settings: KubeSettings, pods_of: str, *, version: str = __version__
) -> Manifest:
    """The Deployment of a scale: the pod template of ``pods_of`` (the deployment whose pods
    serve) unchanged, so the controller replaces no pod and only adds or removes the
    difference; the new replica count, and the new deployment's id on the Deployment itself
    (what the worker observes as serving)."""
    manifest = deployment(replace(release, deployment_id=pods_of), settings, version=version)
    manifest["metadata"]["labels"]["deployment_id"] = release.deployment_id
    return manifest


def pods_deployment(workload: Mapping[str, Any]) -> str | None:
    """Whose pods a live Deployment runs: its pod template's deployment id."""
    template = (workload.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    found = labels.get("deployment_id")
    return str(found) if found else None


def service(app_name: str, settings: KubeSettings) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(app_name, settings.namespace, app_labels(app_name)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(app_name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def app_host(app_name: str, settings: KubeSettings) -> str:
    return f"{app_name}.{settings.apps_domain}"


def ingress(app_name: str, settings: KubeSettings) -> Manifest:
    """``<app>.<apps domain>`` → the app's Service, so its requests go from the cluster's
    ingress controller to its pods without passing through the control plane. TLS with the
    configured Secret, or a certificate cert-manager issues into ``<app>-tls``."""
    host = app_host(app_name, settings)
    metadata = _metadata(app_name, settings.namespace, app_labels(app_name))
    spec: Manifest = {
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": app_name, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ]
    }
    if settings.ingress_class:
        spec["ingressClassName"] = settings.ingress_class
    if settings.ingress_cluster_issuer:
        metadata["annotations"] = {CERT_MANAGER_ISSUER: settings.ingress_cluster_issuer}
    secret = settings.ingress_tls_secret or (
        f"{app_name}-tls" if settings.ingress_cluster_issuer else None
    )
    if secret:
        spec["tls"] = [{"hosts": [host], "secretName": secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }


def _metadata(name: str, namespace: str, labels: Mapping[str, str]) -> Manifest:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def _strategy(name: str) -> Manifest:
    if name == "rolling":
        # Zero downtime: a new pod must be available before an old one goes.
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return {"type": "Recreate"}


def _pod_spec(release: Release, settings: KubeSettings) -> Manifest:
    spec: Manifest = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": APP_UID,
            "runAsGroup": APP_UID,
            "fsGroup": APP_UID,  # lets the non-root init container read the token file
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "initContainers": [_fetch_container(release, settings)],
        "containers": [_app_container(release, settings)],
        "volumes": [
            {"name": "app", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "pull-token",
                "secret": {
                    "secretName": pull_secret_name(release.app_name, release.deployment_id),
                    "defaultMode": 0o440,
                },
            },
        ],
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    else:
        spec["automountServiceAccountToken"] = False  # apps get no API credentials
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(toleration) for toleration in settings.tolerations]
    return spec


def _fetch_container(release: Release, settings: KubeSettings) -> Manifest:
    if not release.api_url:
        raise ConfigError(
            "the Kubernetes runtime needs the control plane's URL for pods: set AETHER_PUBLIC_URL"
        )
    return {
        "name": FETCH_CONTAINER,
        "image": settings.init_image,
        "command": _fetch_command(release, release.api_url),
        "env": _fetch_env(release.api_url, settings),
        "resources": _resources(settings),
        "securityContext": _container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "app", "mountPath": APP_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "pull-token", "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }


def _fetch_env(api_url: str, settings: KubeSettings) -> list[Manifest]:
    # The image's zipapp is unpacked at build time; HOME only has to be writable.
    env = {"HOME": "/tmp", **settings.expansion.as_env()}
    if api_url.startswith("http://"):
        # The operator gave pods a plain-HTTP control-plane URL (in-cluster traffic); without
        # this the fetch would refuse to send its pull token over it.
        env["AETHER_ALLOW_INSECURE_HTTP"] = "1"
    return [{"name": name, "value": value} for name, value in env.items()]


def _fetch_command(release: Release, api_url: str) -> list[str]:
    options = {
        "--api": api_url,
        "--deployment": release.deployment_id,
        "--digest": release.digest,
        "--token-file": TOKEN_FILE,
        "--dest": APP_DIR,
    }
    flags = [part for option in options.items() for part in option]
    return ["aether", "fetch", *flags, *_signature_args(release)]


def _signature_args(release: Release) -> list[str]:
    """Make ``fetch`` check the signature too, against the app's key that made it."""
    if not release.signature:
        return []
    for key in release.public_keys:
        if verify_signature(key, release.digest, release.signature):
            return ["--public-key", key, "--signature", release.signature]
    return []


def _app_container(release: Release, settings: KubeSettings) -> Manifest:
    return {
        "name": APP_CONTAINER,
        "image": node_image(release.node_major, settings),
        "workingDir": APP_DIR,
        # args, not command: the image's entrypoint (tini) stays PID 1 and reaps children.
        "args": _start_args(release.start_command),
        **_app_env(release, settings),
        "ports": [{"name": "http", "containerPort": settings.app_port, "protocol": "TCP"}],
        "readinessProbe": {
            **_probe_target(release.health_path),
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 6,
        },
        "resources": _resources(settings),
        "securityContext": _container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "app", "mountPath": APP_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def node_image(major: int | None, settings: KubeSettings) -> str:
    """The image for a release built for Node.js ``major``: ``AETHER_NODE_IMAGES`` for that
    major, else ``AETHER_NODE_IMAGE`` with ``{major}`` filled in; an image without
    ``{major}`` serves only the default major (running a release on another Node.js than it
    was built for is how native addons crash)."""
    wanted = major or settings.node_major
    images = dict(settings.node_images)
    if wanted in images:
        return images[wanted]
    if "{major}" in settings.node_image:
        return settings.node_image.replace("{major}", str(wanted))
    if wanted == settings.node_major:
        return settings.node_image
    raise Fatal(
        f"this release is built for Node.js {wanted} but no image is configured for it: set "
        f'AETHER_NODE_IMAGES=\'{{"{wanted}": "<image>"}}\' or an AETHER_NODE_IMAGE with {{major}}'
    )


def _start_args(start_command: str | None) -> list[str]:
    if start_command:
        return ["/bin/sh", "-c", start_command]
    return ["npm", "start"]


def _app_env(release: Release, settings: KubeSettings) -> Manifest:
    """``envFrom`` the release's Secret, and ``env``: defaults its config does not set, then
    what aether guarantees (config var names cannot take those: ``models.check_config_name``).
    A container's ``env`` wins over ``envFrom``, so a default is left out where the config
    sets it."""
    defaults = {
        "NODE_ENV": "production",
        "HOME": "/tmp",
        "NPM_CONFIG_CACHE": "/tmp/.npm",
        "NPM_CONFIG_UPDATE_NOTIFIER": "false",
    }
    env = {name: value for name, value in defaults.items() if name not in release.env}
    env.update(
        {
            "PORT": str(settings.app_port),
            "AETHER_DEPLOYMENT_ID": release.deployment_id,
            "AETHER_DIGEST": release.digest,
        }
    )
    container: Manifest = {
        "env": [{"name": name, "value": value} for name, value in sorted(env.items())]
    }
    if release.env:
        name = env_secret_name(release.app_name, release.deployment_id)
        container["envFrom"] = [{"secretRef": {"name": name}}]
    return container


def _probe_target(health_path: str | None) -> Manifest:
    if health_path:
        return {"httpGet": {"path": health_path, "port": "http"}}
    return {"tcpSocket": {"port": "http"}}


def _resources(settings: KubeSettings) -> Manifest:
    requests = {"cpu": settings.cpu_request, "memory": settings.memory_request}
    limits = {"cpu": settings.cpu_limit, "memory": settings.memory_limit}
    resources: Manifest = {}
    if any(requests.values()):
        resources["requests"] = {key: value for key, value in requests.items() if value}
    if any(limits.values()):
        resources["limits"] = {key: value for key, value in limits.items() if value}
    return resources


def _container_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": APP_UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
