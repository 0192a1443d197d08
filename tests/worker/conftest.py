"""Fixtures for the worker: a local runtime over a temporary data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from worker_support import worker_settings

from aether.blobs.local import LocalBlobStore
from aether.worker.runtimes.local import LocalRuntime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    rt = LocalRuntime(worker_settings(tmp_path / "data"), stop_grace_secs=3.0)
    try:
        yield rt
    finally:
        await rt.stop_apps()  # apps outlive a stopped runtime: end them explicitly
        await rt.stop()


@pytest.fixture
async def blobs(tmp_path: Path) -> AsyncIterator[LocalBlobStore]:
    """A local blob store with nothing in it."""
    store = LocalBlobStore(tmp_path / "blobs", public_url="http://127.0.0.1:1")
    await store.open()
    yield store
    await store.close()
