"""Fixtures for API tests: an in-process app (starlette TestClient) over each metadata backend.

Fixtures (all function-scoped, parametrised over sqlite + postgres through ``database_url``):

``api``        an :class:`ApiHarness` around a started app with four bootstrap tokens:
               ``admin``, ``deployer``, ``reader`` and ``other`` (a second deployer).
               ``api.get("/apps", as_="reader")``; ``as_=None`` sends no token;
               ``api.headers("admin")``; ``api.client`` is the TestClient;
               ``api.state`` the ServerState; ``api.run(fn, *args)`` awaits ``fn(db, *args)`` on
               the app's own event loop (use it to read/write rows with store functions);
               ``api.user_id("deployer")`` the user behind a token.
``make_api``   a factory for a harness with other settings:
               ``make_api(env={"AETHER_REQUIRE_SIGNATURE": "1"}, policy=…, blobs=…, …)``;
               ``env`` is read by ServerSettings/BlobSettings/ArtifactPolicy.from_env, other
               keyword arguments go to ``create_app``.

Rows that other components own (a stored artifact) are inserted with
``seeding.insert_artifact`` (``from seeding import insert_artifact``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from aether.server.app import create_app
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings

ROLES = {"admin": "admin", "deployer": "deployer", "reader": "reader", "other": "deployer"}


class ApiHarness:
    """A running in-process API and the tokens to call it with."""

    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    @property
    def state(self) -> Any:
        return self.client.app.state.aether  # type: ignore[attr-defined]

    def headers(self, role: str | None, **extra: str) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return {**auth, **extra}

    def request(self, method: str, path: str, *, as_: str | None = "admin", **kwargs: Any) -> Any:
        headers = {**self.headers(as_), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        return self.request("HEAD", path, **kwargs)

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(db, *args, **kwargs)`` on the app's loop (where its pool lives)."""

        async def call() -> Any:
            return await fn(self.state.db, *args, **kwargs)

        return self.client.portal.call(call)  # type: ignore[union-attr]

    def user_id(self, role: str) -> str:
        return self.get("/whoami", as_=role).json()["user_id"]


def bootstrap_tokens() -> dict[str, str]:
    return {name: f"ae_{name}_{secrets.token_hex(12)}" for name in ROLES}


@pytest.fixture
def make_api(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ApiHarness]]:
    opened: list[TestClient] = []

    def make(*, env: dict[str, str] | None = None, **create_kwargs: Any) -> ApiHarness:
        tokens = bootstrap_tokens()
        environ = {
            "AETHER_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": database_url,
            "AETHER_PUBLIC_URL": "http://127.0.0.1:8080",
            "AETHER_API_TOKENS": ",".join(f"{t}:{ROLES[n]}:{n}" for n, t in tokens.items()),
            **(env or {}),
        }
        create_kwargs.setdefault("blob_settings", BlobSettings.from_env(environ))
        create_kwargs.setdefault("policy", ArtifactPolicy.from_env(environ))
        app = create_app(ServerSettings.from_env(environ), **create_kwargs)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return ApiHarness(client, tokens)

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., ApiHarness]) -> ApiHarness:
    return make_api()
