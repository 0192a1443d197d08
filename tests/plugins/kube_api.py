"""pytest plugin: a Kubernetes API server on loopback (kmock 0.8) that pykube-ng talks to.

``kube_api`` starts :class:`KubeAPI` on 127.0.0.1 with an explicit free port and writes a
kubeconfig for it (``kube_api.kubeconfig``). ``KubeAPI`` fills kmock's gaps where aether
depends on real API-server behaviour:

- ``metadata.uid``, ``resourceVersion``, ``generation`` and ``creationTimestamp``; the
  generation moves only when the ``spec`` changes (never on ``/status`` writes);
- optimistic concurrency: a write carrying a stale ``resourceVersion`` gets 409;
- ``PUT`` (replace, keeping the live ``status``);
- label selectors on lists (``a=b``, ``a!=b``, ``a``);
- pod logs (``GET …/pods/<name>/log``) with ``container``, ``tailLines``, ``sinceTime``,
  ``timestamps`` and ``follow``, fed by :meth:`KubeAPI.write_log`;
- deleting a Deployment deletes the pods it selects and the ReplicaSets it owns (garbage
  collection);
- :meth:`KubeAPI.race_next_write` makes the controller write an object's status between a
  client's read and its next write(s), as the real one does during a rollout: the write's
  ``resourceVersion`` is stale and it gets 409.

``cluster`` (:class:`plugins.kube_cluster.Cluster`) plays the controller and the kubelet one
step at a time; ``controller`` (:class:`plugins.kube_controller.Controller`) plays them on its
own.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import pytest
import pytest_asyncio
import yaml
from kmock._internal import enums

from plugins.polling import eventually

NAMESPACE = "aether"
DEPLOYMENTS = "apps/v1/deployments"
REPLICASETS = "apps/v1/replicasets"
PODS = "v1/pods"
KINDS = {
    DEPLOYMENTS: "Deployment",
    REPLICASETS: "ReplicaSet",
    PODS: "Pod",
    "v1/services": "Service",
    "v1/secrets": "Secret",
    "networking.k8s.io/v1/ingresses": "Ingress",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now_rfc3339(nanos: bool = False) -> str:
    moment = datetime.datetime.now(tz=datetime.UTC)
    if nanos:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def matches_selector(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class KubeAPI(kmock.KubernetesEmulator):
    """kmock's emulator plus the server-side behaviour listed in the module docstring."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resource_version = 0
        self.logs: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self.log_written = asyncio.Condition()
        self.races: dict[tuple[str, str], int] = {}
        self.kubeconfig: Path | None = None
        self.closing = False

    # --- test controls ---------------------------------------------------------------

    def race_next_write(self, plural: str, name: str, times: int = 1) -> None:
        """The next ``times`` PUT/PATCH of ``plural/name`` find that the controller wrote the
        object's status since the client read it (a new ``resourceVersion``)."""
        self.races[(plural, name)] = self.races.get((plural, name), 0) + times

    def writes(self, method: str, plural: str, name: str | None = None) -> list[Any]:
        """The requests of ``method`` on ``plural`` (and ``name``) that aether sent (pykube)."""
        return [
            request
            for request in self
            if request.method == method
            and request.resource is not None
            and request.resource.plural == plural
            and (name is None or request.name == name)
            and "pykube" in request.headers.get("User-Agent", "")
        ]

    async def write_log(self, pod: str, container: str, line: str) -> None:
        async with self.log_written:
            entries = self.logs.setdefault((NAMESPACE, pod, container), [])
            entries.append((now_rfc3339(nanos=True), line))
            self.log_written.notify_all()

    def live(self, resource: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def all_live(self, resource: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        wanted = kmock.resource(resource)
        return [
            copy.deepcopy(obj.raw)
            for (res, ns, _), obj in list(self.objects.items())
            if res == wanted and ns == namespace and not obj.deleted
        ]

    # --- server behaviour ------------------------------------------------------------

    def _next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.resource is not None:
            if request.subresource == "log" and request.action == enums.action.FETCH:
                return await self._serve_log(request)
            if request.method == "PUT" and request.name:
                return await self._serve_put(request)
            if request.action == enums.action.CREATE and isinstance(request.data, dict):
                self._stamp_new(request.data)
            elif request.action == enums.action.UPDATE and isinstance(request.data, dict):
                async with self._lock:
                    self._stamp_update(request, self._current(request))
            elif request.action == enums.action.DELETE and request.resource.plural == "deployments":
                await self._collect_pods(request)
        return await super()._handle(request)

    def _current(self, request: Any) -> dict[str, Any]:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        race = (request.resource.plural, request.name)
        if self.races.get(race):
            self.races[race] -= 1
            status = self.objects[key].raw.get("status") or {}
            self.objects[key].patch(  # what a status write of the controller does
                {
                    "metadata": {"resourceVersion": self._next_version()},
                    "status": {**status, "observedGeneration": status.get("observedGeneration", 0)},
                }
            )
        return self.objects[key].raw

    def _stamp_new(self, data: dict[str, Any]) -> None:
        metadata = data.setdefault("metadata", {})
        metadata.update(
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            generation=1,
            creationTimestamp=now_rfc3339(),
        )

    def _stamp_update(self, request: Any, current: dict[str, Any]) -> None:
        metadata = request.data.setdefault("metadata", {})
        self._check_version(metadata, current)
        spec_changed = "spec" in request.data and request.subresource != "status"
        if spec_changed and _merged(current.get("spec"), request.data["spec"]) != current.get(
            "spec"
        ):
            metadata["generation"] = current["metadata"].get("generation", 1) + 1
        metadata["resourceVersion"] = self._next_version()

    def _check_version(self, metadata: dict[str, Any], current: dict[str, Any]) -> None:
        wanted = metadata.get("resourceVersion")
        live = current["metadata"].get("resourceVersion")
        if wanted is not None and wanted != live:
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=(
                    f'Operation cannot be fulfilled on {current.get("kind")} "'
                    f'{current["metadata"]["name"]}": the object has been modified; '
                    "please apply your changes to the latest version and try again"
                ),
                details={},
            )

    async def _serve_put(self, request: Any) -> aiohttp.web.StreamResponse:
        try:
            async with self._lock:
                current = self._current(request)
                replacement = copy.deepcopy(request.data)
                metadata = replacement.setdefault("metadata", {})
                self._check_version(metadata, current)
                for field in ("uid", "creationTimestamp"):
                    metadata[field] = current["metadata"].get(field)
                generation = current["metadata"].get("generation", 1)
                changed = replacement.get("spec") != current.get("spec")
                metadata["generation"] = generation + 1 if changed else generation
                metadata["resourceVersion"] = self._next_version()
                if "status" in current:
                    replacement["status"] = current["status"]
                key = (request.resource, request.namespace, request.name)
                self.objects[key].create(replacement)
        except kmock.KubernetesError as exc:
            return await self._render_error(exc)
        return aiohttp.web.json_response(replacement)

    async def _serve_list(self, request: Any) -> Any:
        answer = await super()._serve_list(request)
        selector = (request.params or {}).get("labelSelector")
        if selector:
            answer["items"] = [
                item
                for item in answer["items"]
                if matches_selector((item.get("metadata") or {}).get("labels") or {}, selector)
            ]
        return answer

    async def _collect_pods(self, request: Any) -> None:
        deployment = self.live(DEPLOYMENTS, request.name, request.namespace)
        if deployment is None:
            return
        selector = deployment["spec"]["selector"]["matchLabels"]
        owned = {kmock.resource(PODS), kmock.resource(REPLICASETS)}
        async with self._lock:
            for (res, ns, _), obj in list(self.objects.items()):
                if res in owned and ns == request.namespace and not obj.deleted:
                    labels = obj.raw.get("metadata", {}).get("labels", {})
                    if all(labels.get(k) == v for k, v in selector.items()):
                        obj.delete()

    async def _serve_log(self, request: Any) -> aiohttp.web.StreamResponse:
        params = request.params or {}
        pod = self.live(PODS, request.name, request.namespace)
        if pod is None:
            return await self._render_error(kmock.KubernetesObjectNotFoundError())
        container = params.get("container", "app")
        waiting = _waiting_reason(pod, container)
        if waiting is not None:  # what the kubelet answers for a container not started yet
            said = f'container "{container}" in pod "{request.name}" is waiting to start: {waiting}'
            error = kmock.KubernetesError(status=400, reason="BadRequest", message=said, details={})
            return await self._render_error(error)
        key = (request.namespace, request.name, container)
        entries = self._select_log(self.logs.get(key, []), params)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request._raw_request)
        stamps = params.get("timestamps") == "true"
        for ts, line in entries:
            await response.write(_log_line(ts, line, stamps))
        if params.get("follow") == "true":
            await self._follow(key, len(self.logs.get(key, [])), response, stamps)
        await response.write_eof()
        return response

    def _select_log(
        self, entries: list[tuple[str, str]], params: dict[str, str]
    ) -> list[tuple[str, str]]:
        since = params.get("sinceTime")
        if since:
            entries = [(ts, line) for ts, line in entries if ts[:19] >= since[:19]]
        if "tailLines" in params:
            entries = entries[-int(params["tailLines"]) :] if int(params["tailLines"]) else []
        return list(entries)

    async def _follow(
        self,
        key: tuple[str, str, str],
        sent: int,
        response: aiohttp.web.StreamResponse,
        stamps: bool,
    ) -> None:
        while not self.closing and self.live(PODS, key[1], key[0]) is not None:
            async with self.log_written:
                try:
                    await asyncio.wait_for(self.log_written.wait(), timeout=0.2)
                except TimeoutError:
                    pass
            entries = self.logs.get(key, [])
            for ts, line in entries[sent:]:
                await response.write(_log_line(ts, line, stamps))
            sent = len(entries)


def _waiting_reason(pod: dict[str, Any], container: str) -> str | None:
    status = pod.get("status") or {}
    for item in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
        if item.get("name") == container:
            waiting = (item.get("state") or {}).get("waiting")
            return None if waiting is None else waiting.get("reason", "ContainerCreating")
    return None


def _log_line(ts: str, line: str, stamps: bool) -> bytes:
    return (f"{ts} {line}\n" if stamps else f"{line}\n").encode()


def _merged(base: Any, patch: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merged(merged.get(key), value)
    return merged


def write_kubeconfig(path: Path, server: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "kmock", "user": {"token": "test-token"}}],
        "contexts": [
            {
                "name": "kmock",
                "context": {"cluster": "kmock", "user": "kmock", "namespace": NAMESPACE},
            }
        ],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest_asyncio.fixture
async def kube_api(tmp_path: Path) -> AsyncIterator[KubeAPI]:
    """The API server on 127.0.0.1:<free port>; ``kube_api.kubeconfig`` points pykube at it."""
    api = KubeAPI()
    # Declared up front so that lists of kinds with no objects yet answer 200, not 404.
    for resource, kind in KINDS.items():
        api.resources[resource] = kmock.ResourceInfo(namespaced=True, kind=kind)
    async with api, kmock.Server(api, host="127.0.0.1", port=free_port()) as server:
        api.kubeconfig = write_kubeconfig(
            tmp_path / "kubeconfig", f"http://127.0.0.1:{server.port}"
        )
        try:
            yield api
        finally:
            api.closing = True


@pytest.fixture
def cluster(kube_api: KubeAPI) -> Any:
    from plugins.kube_cluster import Cluster

    return Cluster(kube_api)


@pytest_asyncio.fixture
async def controller(kube_api: KubeAPI) -> AsyncIterator[Any]:
    """The Deployment controller and kubelet, running on their own against ``kube_api``."""
    from plugins.kube_controller import Controller

    async with Controller(kube_api) as running:
        yield running


async def wait_until(
    check: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    return await eventually(check, timeout=timeout, what=what, interval=0.01)
