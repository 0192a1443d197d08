"""One object from the blob store onto local disk, its failures mapped to the worker's outcomes.

Both release shapes use it: a single archive (:mod:`aether.worker.runtimes.releasedir`) and
each object of a layered artifact (:mod:`aether.worker.runtimes.layered`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aether.errors import AetherError, NetworkError, ServiceUnavailable
from aether.worker.outcomes import Fatal, Retry

if TYPE_CHECKING:
    from aether.blobs import BlobStore


async def download(blobs: BlobStore, key: str, dest: Path) -> None:
    """Fetch one object: a transient failure retries later, a refusal fails the deployment."""
    try:
        await blobs.download(key, dest)
    except (NetworkError, ServiceUnavailable) as exc:
        raise Retry(f"downloading the artifact failed: {exc.message}", delay=2.0) from exc
    except AetherError as exc:
        raise Fatal(f"cannot download the artifact: {exc.message}") from exc
    except OSError as exc:
        raise Retry(f"writing the artifact to {dest} failed: {exc}", delay=2.0) from exc
