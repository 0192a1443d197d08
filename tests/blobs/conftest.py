"""The blob store under test, once per backend (local folder, S3 on the moto server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aether.blobs import BlobStore, open_blob_store
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
