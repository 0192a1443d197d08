"""Apps, their releases, config, deployments, rollback and signing keys: thin calls on the
HTTP API."""

from __future__ import annotations

from typing import Any, cast

from aether.client.api import ApiClient
from aether.errors import RemoteError
from aether.models import (
    App,
    AppConfig,
    AppInfo,
    AppStatus,
    AppWithCurrent,
    ConfigChange,
    ConfigChanged,
    Deployment,
    DeploymentCreated,
    DeploymentPage,
    Release,
    ReleasePage,
    Rollout,
)


def ensure_app(api: ApiClient, name: str) -> tuple[App, bool]:
    """The app, created when it does not exist yet; the flag says whether it was created."""
    response = api.request("GET", f"/apps/{name}", expect=(404,))
    if response.status_code != 404:
        return cast(App, response.json()), False
    try:
        return cast(App, api.post("/apps", {"name": name})), True
    except RemoteError as exc:
        if exc.http_status != 409:  # created meanwhile by someone else: fine
            raise
    return cast(App, api.get(f"/apps/{name}")), False


def list_apps(api: ApiClient) -> list[AppWithCurrent]:
    return list(api.get("/apps").get("apps", []))


def app_deployments(api: ApiClient, app: str, *, limit: int) -> list[Deployment]:
    page = cast(DeploymentPage, api.get(f"/apps/{app}/deployments", limit=limit))
    return list(page.get("deployments", []))


def create_app(api: ApiClient, name: str) -> App:
    return cast(App, api.post("/apps", {"name": name}))


def app_info(api: ApiClient, name: str) -> AppInfo:
    return cast(AppInfo, api.get(f"/apps/{name}"))


def destroy_app(api: ApiClient, name: str) -> None:
    api.delete(f"/apps/{name}")


def releases(api: ApiClient, app: str, *, limit: int) -> list[Release]:
    page = cast(ReleasePage, api.get(f"/apps/{app}/releases", limit=limit))
    return list(page.get("releases", []))


def config(api: ApiClient, app: str, *, reveal: bool = False) -> AppConfig:
    params = {"reveal": "true"} if reveal else {}
    return cast(AppConfig, api.get(f"/apps/{app}/config", **params))


def change_config(api: ApiClient, app: str, change: ConfigChange) -> ConfigChanged:
    """``PATCH /apps/{app}/config``: one new config version (and a release, unless staged)."""
    return cast(ConfigChanged, api.patch(f"/apps/{app}/config", change))


def rollback(api: ApiClient, app: str, *, to: str | None) -> DeploymentCreated:
    """``POST /apps/{app}/rollback``: a new release of an earlier one's code, config and
    settings (``to``: ``v3`` or a deployment id; default: the previous successful one)."""
    return cast(DeploymentCreated, api.post(f"/apps/{app}/rollback", {"to": to} if to else {}))


def status(api: ApiClient, app: str) -> AppStatus:
    """``GET /apps/{app}/status``: the release, its instances, the last rollout."""
    return cast(AppStatus, api.get(f"/apps/{app}/status"))


def scale(api: ApiClient, app: str, replicas: int) -> Rollout:
    """``POST /apps/{app}/scale``: a new release of the current one with ``replicas``."""
    return cast(Rollout, api.post(f"/apps/{app}/scale", {"replicas": replicas}))


def restart(api: ApiClient, app: str) -> Rollout:
    """``POST /apps/{app}/restart``: a new rollout of the release that runs."""
    return cast(Rollout, api.post(f"/apps/{app}/restart", {}))


def add_public_key(api: ApiClient, app: str, public_key_hex: str) -> dict[str, Any]:
    return api.post(f"/apps/{app}/public-keys", {"public_key_hex": public_key_hex})


def list_public_keys(api: ApiClient, app: str) -> list[dict[str, Any]]:
    return list(api.get(f"/apps/{app}/public-keys").get("public_keys", []))


def cancel_deployment(api: ApiClient, deployment_id: str) -> Deployment:
    """Cancel a deployment no worker has taken yet (``aether deploy --cancel``)."""
    return cast(Deployment, api.post(f"/deployments/{deployment_id}/cancel", {}))


def list_workers(api: ApiClient) -> dict[str, Any]:
    """``GET /workers``: every worker seen lately and whether one of the runtime is alive."""
    return api.get("/workers")
