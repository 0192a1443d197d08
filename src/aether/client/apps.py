"""Apps, their deployments, rollback and signing keys: thin calls on the HTTP API."""

from __future__ import annotations

from typing import Any, cast

from aether.client.api import ApiClient
from aether.errors import RemoteError
from aether.models import App, AppWithCurrent, Deployment, DeploymentPage


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


def rollback(api: ApiClient, app: str, *, to: str | None) -> Deployment:
    """``POST /apps/{app}/rollback``: a new deployment from an earlier one's artifact and settings."""
    return cast(Deployment, api.post(f"/apps/{app}/rollback", {"to": to} if to else {}))


def add_public_key(api: ApiClient, app: str, public_key_hex: str) -> dict[str, Any]:
    return api.post(f"/apps/{app}/public-keys", {"public_key_hex": public_key_hex})


def list_public_keys(api: ApiClient, app: str) -> list[dict[str, Any]]:
    return list(api.get(f"/apps/{app}/public-keys").get("public_keys", []))
