"""Executing a blob store's presigned requests the way a client would.

S3 URLs go over HTTP to the moto server. The local store's URLs are served by the API's
``/blobs/…`` routes (tested end to end under tests/server); here they go straight to the
store's ``receive_put``/``path_for_get``, which is everything those routes do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from aether.blobs import BlobStore
from aether.blobs.local import LocalBlobStore


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
