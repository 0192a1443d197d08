"""The blob store under test, once per backend, and a way to execute its presigned requests.

S3 URLs are executed over HTTP against the moto server. The local store's URLs are served by
the API's ``/blobs/…`` routes (tested end to end under tests/server); here they go straight to
the store's ``receive_put``/``path_for_get``, which is everything those routes do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest

from aether.blobs import BlobStore, open_blob_store
from aether.blobs.local import LocalBlobStore
from aether.settings import BlobSettings


@pytest.fixture(params=["local", "s3"])
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "s3":
        settings = request.getfixturevalue("s3_blob_settings")
    else:
        settings = BlobSettings.from_env({"AETHER_DATA_DIR": str(tmp_path / "data")})
    store = open_blob_store(settings, public_url="http://127.0.0.1:9")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _local_target(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return unquote(parts.path.removeprefix("/blobs/")), dict(parse_qsl(parts.query))


async def _chunks(body: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def put_url(store: BlobStore, url: str, headers: dict[str, str], body: bytes) -> str:
    """Execute a presigned PUT; returns the ETag. Raises on refusal."""
    if isinstance(store, LocalBlobStore):
        key, query = _local_target(url)
        return await store.receive_put(key, query, _chunks(body))
    async with httpx.AsyncClient() as client:
        answer = await client.put(url, content=body, headers=headers)
    answer.raise_for_status()
    return answer.headers["ETag"]


async def get_url(store: BlobStore, url: str) -> bytes:
    if isinstance(store, LocalBlobStore):
        key, query = _local_target(url)
        return store.path_for_get(key, query).read_bytes()
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    answer.raise_for_status()
    return answer.content
