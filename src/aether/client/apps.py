"""Apps, their deployments, rollback and signing keys: thin calls on the HTTP API."""

from __future__ import annotations

from typing import Any

from aether.client.api import ApiClient
from aether.errors import RemoteError


def ensure_app(api: ApiClient, name: str) -> tuple[dict[str, Any], bool]:
    """The app, created when it does not exist yet; the flag says whether it was created."""
    response = api.request("GET", f"/apps/{name}", expect=(404,))
    if response.status_code != 404:
        return response.json(), False
    try:
        return api.post("/apps", {"name": name}), True
    except RemoteError as exc:
        if exc.http_status != 409:  # created meanwhile by someone else: fine
            raise
    return api.get(f"/apps/{name}"), False


def list_apps(api: ApiClient) -> list[dict[str, Any]]:
    return list(api.get("/apps").get("apps", []))


def app_deployments(api: ApiClient, app: str, *, limit: int) -> list[dict[str, Any]]:
    return list(api.get(f"/apps/{app}/deployments", limit=limit).get("deployments", []))


def rollback(api: ApiClient, app: str, *, to: str | None) -> dict[str, Any]:
    """``POST /apps/{app}/rollback``: a new deployment from an earlier one's artifact and settings."""
    return api.post(f"/apps/{app}/rollback", {"to": to} if to else {})


def add_public_key(api: ApiClient, app: str, public_key_hex: str) -> dict[str, Any]:
    return api.post(f"/apps/{app}/public-keys", {"public_key_hex": public_key_hex})


def list_public_keys(api: ApiClient, app: str) -> list[dict[str, Any]]:
    return list(api.get(f"/apps/{app}/public-keys").get("public_keys", []))


def remove_public_key(api: ApiClient, app: str, public_key_hex: str) -> None:
    api.delete(f"/apps/{app}/public-keys/{public_key_hex}")
