"""A small async client for the Kubernetes API on top of pykube-ng's HTTP client.

Objects are plain dicts (what the manifest synthesis produces); a :class:`Kind` says where a
kind lives in the API. pykube and requests are synchronous, so each call runs in a thread and
the event loop stays free. Every failure leaves here as a :class:`aether.kube.errors.KubeError`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pykube
import requests

from aether.errors import ConfigError
from aether.kube.errors import KubeError, KubeNotFound, KubeUnavailable, error_for_status
from aether.settings import KubeSettings

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """Where a namespaced kind lives in the API: ``apps/v1`` + ``deployments``."""

    api_version: str
    plural: str
    kind: str


DEPLOYMENTS = Kind("apps/v1", "deployments", "Deployment")
REPLICASETS = Kind("apps/v1", "replicasets", "ReplicaSet")
SERVICES = Kind("v1", "services", "Service")
SECRETS = Kind("v1", "secrets", "Secret")
PODS = Kind("v1", "pods", "Pod")
INGRESSES = Kind("networking.k8s.io/v1", "ingresses", "Ingress")
KINDS = {kind.kind: kind for kind in (DEPLOYMENTS, REPLICASETS, SERVICES, SECRETS, PODS, INGRESSES)}
# Names aether's writes in the objects' managedFields (kubectl shows who wrote what).
FIELD_MANAGER = "aether"


def kind_of(manifest: Mapping[str, Any]) -> Kind:
    try:
        return KINDS[manifest["kind"]]
    except KeyError as exc:
        raise KubeError(f"aether does not manage objects of kind {manifest.get('kind')!r}") from exc


def label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def load_config(
    settings: KubeSettings, *, service_account: Path = SERVICE_ACCOUNT_DIR
) -> pykube.KubeConfig:
    """Credentials: ``KUBECONFIG``, else the pod's service account, else ``~/.kube/config``."""
    kubeconfig = settings.kubeconfig
    if not kubeconfig and settings.service_host and (service_account / "token").is_file():
        return _in_cluster_config(settings.service_host, settings.service_port, service_account)
    path = Path(kubeconfig or "~/.kube/config").expanduser()
    if not path.is_file():
        raise ConfigError(
            f"no Kubernetes credentials: {path} does not exist; set KUBECONFIG or run the worker "
            "in a pod with a service account"
        )
    try:
        return pykube.KubeConfig.from_file(str(path))
    except (pykube.exceptions.PyKubeError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read the kubeconfig {path}: {exc}") from exc


def _in_cluster_config(host: str, port: str, service_account: Path) -> pykube.KubeConfig:
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    # The token is read per request (KubeClient.token_file): projected tokens rotate hourly.
    user: dict[str, str] = {}
    cluster = {"server": server, "certificate-authority": str(service_account / "ca.crt")}
    return pykube.KubeConfig(
        {
            "clusters": [{"name": "in-cluster", "cluster": cluster}],
            "users": [{"name": "in-cluster", "user": user}],
            "contexts": [
                {"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "in-cluster"}}
            ],
            "current-context": "in-cluster",
        }
    )


class KubeClient:
    """Namespaced get/create/replace/patch/delete/list of dict objects, and raw requests."""

    def __init__(
        self, config: pykube.KubeConfig, *, timeout: float = 10.0, token_file: Path | None = None
    ) -> None:
        self.api = pykube.HTTPClient(config, timeout=timeout)
        self.timeout = timeout
        self.token_file = token_file

    @classmethod
    def from_settings(
        cls, settings: KubeSettings, *, service_account: Path = SERVICE_ACCOUNT_DIR
    ) -> KubeClient:
        config = load_config(settings, service_account=service_account)
        in_cluster = config.current_context == "in-cluster"
        return cls(
            config,
            timeout=settings.request_timeout_secs,
            token_file=service_account / "token" if in_cluster else None,
        )

    @property
    def server(self) -> str:
        return self.api.url

    async def close(self) -> None:
        await asyncio.to_thread(self.api.session.close)

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.call(
                "GET", kind, namespace, name, what=f"read {kind.kind} {namespace}/{name}"
            )
        except KubeNotFound:
            return None

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        kind, namespace, name = _address(manifest)
        return await self.call(
            "POST",
            kind,
            namespace,
            None,
            body=manifest,
            params={"fieldManager": FIELD_MANAGER},
            what=f"create {kind.kind} {name}",
        )

    async def replace(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: fails with KubeConflict when ``metadata.resourceVersion`` is stale."""
        kind, namespace, name = _address(manifest)
        return await self.call(
            "PUT",
            kind,
            namespace,
            name,
            body=manifest,
            params={"fieldManager": FIELD_MANAGER},
            what=f"replace {kind.kind} {name}",
        )

    async def patch(
        self, kind: Kind, namespace: str, name: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386)."""
        return await self.call(
            "PATCH", kind, namespace, name, body=changes, what=f"patch {kind.kind} {name}"
        )

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete (pods of a Deployment go too); False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self.call(
                "DELETE", kind, namespace, name, body=body, what=f"delete {kind.kind} {name}"
            )
        except KubeNotFound:
            return False
        return True

    async def list(
        self, kind: Kind, namespace: str, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Objects carrying all ``labels``."""
        answer = await self.call(
            "GET",
            kind,
            namespace,
            None,
            params={"labelSelector": label_selector(labels)},
            what=f"list {kind.plural}",
        )
        return list(answer.get("items") or [])

    async def call(
        self,
        method: str,
        kind: Kind,
        namespace: str,
        name: str | None,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        what: str,
    ) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            response = self.request(method, kind, namespace, name, body=body, params=params)
            try:
                return _json_answer(response, what)
            finally:
                response.close()

        return await asyncio.to_thread(send)

    def request(
        self,
        method: str,
        kind: Kind,
        namespace: str,
        name: str | None,
        *,
        subresource: str = "",
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        timeout: Any = None,
    ) -> requests.Response:
        """One blocking request (call it in a thread); connection failures are wrapped."""
        url = "/".join(part for part in (kind.plural, name, subresource) if part)
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        if self.token_file is not None:
            headers["Authorization"] = f"Bearer {self._read_token()}"
        return self.guard(
            lambda: self.api.request(
                method,
                version=kind.api_version,
                namespace=namespace,
                url=url,
                params=dict(params or {}),
                data=None if body is None else json.dumps(body),
                headers=headers,
                stream=stream,
                timeout=timeout or self.timeout,
            )
        )

    def _read_token(self) -> str:
        assert self.token_file is not None
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the service account token {self.token_file}") from exc

    def guard(self, send: Callable[[], T]) -> T:
        try:
            return send()
        except requests.RequestException as exc:
            raise KubeUnavailable(
                f"cannot reach the Kubernetes API at {self.server}: {exc.__class__.__name__}; "
                "check KUBECONFIG and that the cluster is up"
            ) from exc


def _address(manifest: Mapping[str, Any]) -> tuple[Kind, str, str]:
    metadata = manifest.get("metadata") or {}
    return kind_of(manifest), metadata["namespace"], metadata["name"]


def _json_answer(response: requests.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise error_for_status(response.status_code, status_message(response), what=what)
    try:
        answer = response.json()
    except ValueError as exc:
        raise KubeError(f"Kubernetes API: {what}: the answer is not JSON") from exc
    return answer if isinstance(answer, dict) else {}


def status_message(response: requests.Response) -> str:
    """The ``message`` of a Kubernetes Status body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"]).splitlines()[0][:300]
    return response.reason
