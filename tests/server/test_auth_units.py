"""Pure pieces of the server: app URLs, bearer parsing, the token cache."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from aether.server.auth import Principal, TokenCache, is_open_path, parse_bearer, resolve_token
from aether.server.state import app_url
from aether.store import tokens

WHO = Principal(token_id="t", user_id="u", name="n", role="reader")


@pytest.mark.parametrize(
    "public_url, expected",
    [
        ("http://127.0.0.1:8080", "http://shop.localhost:8080/"),
        ("http://0.0.0.0:9000/", "http://shop.localhost:9000/"),
        ("http://localhost", "http://shop.localhost/"),
        ("https://aether.example.com", "https://shop.aether.example.com/"),
        ("https://api.example.com:8443", "https://shop.api.example.com:8443/"),
    ],
)
def test_app_urls(public_url, expected):
    assert app_url(public_url, "shop") == expected


@pytest.mark.parametrize(
    "header, token",
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
    ],
)
def test_bearer_parsing(header, token):
    assert parse_bearer(header) == token


def test_open_paths():
    assert is_open_path("/readyz") and is_open_path("/blobs/artifacts/x")
    assert not is_open_path("/apps") and not is_open_path("/readyz/x")


def test_token_cache_expires_and_skips_tokens_about_to_expire():
    cache = TokenCache(0.05)
    cache.put("h1", WHO, None)
    assert cache.get("h1") == WHO
    deadline = time.monotonic() + 5
    while cache.get("h1") is not None:
        assert time.monotonic() < deadline
    cache.put("h2", WHO, "2000-01-01T00:00:00.000000Z")
    assert cache.get("h2") is None
    cache.put("h3", WHO, None)
    cache.clear()
    assert cache.get("h3") is None
    disabled = TokenCache(0)
    disabled.put("h4", WHO, None)
    assert disabled.get("h4") is None


async def test_concurrent_resolutions_share_one_lookup(database):
    issued = await tokens.create_token(database, name="burst", role="reader")
    state = SimpleNamespace(db=database, auth_cache=TokenCache(5.0))
    found = await asyncio.gather(*[resolve_token(state, issued.token) for _ in range(20)])
    assert {who.token_id for who in found} == {issued.row["id"]}
    assert state.auth_cache.inflight == {}
    assert state.auth_cache.get(tokens.hash_token(issued.token)) is not None
    assert await resolve_token(state, "ae_unknown_token") is None
