"""Artifact storage behind one interface: a local folder (embedded default) or S3.

Callers (the server's artifact routes, the garbage collector, the worker) use
:func:`open_blob_store` and the :class:`~aether.blobs.base.BlobStore` methods; only
:mod:`aether.blobs.s3` imports s3fs/aiobotocore, and only when S3 is configured.
"""

from __future__ import annotations

from aether.blobs.base import BlobStore, ObjectInfo, PartInfo, PresignedRequest
from aether.blobs.storage_keys import storage_key
from aether.settings import BlobSettings

__all__ = [
    "BlobStore",
    "ObjectInfo",
    "PartInfo",
    "PresignedRequest",
    "open_blob_store",
    "storage_key",
]


def open_blob_store(settings: BlobSettings, *, public_url: str) -> BlobStore:
    """The configured store, not yet opened (``await store.open()``)."""
    if settings.mode == "s3":
        from aether.blobs.s3 import S3BlobStore

        return S3BlobStore(settings)
    from aether.blobs.local import LocalBlobStore

    return LocalBlobStore(settings.data_dir, public_url=public_url)
