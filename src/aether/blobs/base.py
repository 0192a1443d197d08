"""The blob store interface both backends implement (local folder, S3).

Keys are content-addressed (see :mod:`aether.blobs.storage_keys`). Uploads never pass through this
interface as bytes: the store hands out presigned requests that clients execute directly,
and the control plane verifies the result (``head``/``read_sha256``) before trusting it.
:meth:`BlobStore.verifies_checksums` says, by trying, whether the store's own checksum of an
object can be trusted as proof of its bytes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    # The store's own sha256 checksum of the object (S3's ChecksumSHA256, the local store's
    # hash measured as the bytes arrived). Proof of the bytes only where the store refuses
    # uploads whose checksum does not match (see BlobStore.verifies_checksums).
    sha256: str | None
    claimed_sha256: str | None = None  # what the uploader said (x-amz-meta-sha256): no proof


@dataclass(frozen=True)
class PresignedRequest:
    method: str
    url: str
    headers: dict[str, str]
    expires_at: str  # ISO-8601 UTC


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    etag: str
    size: int


def expires_at(expires_secs: int) -> str:
    """The ISO-8601 UTC moment ``expires_secs`` from now (what presign answers carry)."""
    moment = datetime.now(UTC) + timedelta(seconds=expires_secs)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class BlobStore(abc.ABC):
    """Artifact bytes behind one interface; every method may raise ServiceUnavailable."""

    default_verify_hash: bool  # whether `complete` re-hashes objects unless configured

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect; create the bucket or folder when missing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def verifies_checksums(self) -> bool:
        """Whether the store refuses an upload whose bytes do not match the sha256 checksum
        it was sent with: tried once at start-up on a scratch key, with a wrong checksum.
        ServiceUnavailable when the store cannot be asked."""

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo | None: ...

    @abc.abstractmethod
    async def download(self, key: str, dest: Path) -> None:
        """Stream the object to ``dest`` (written atomically); NotFound when absent."""

    @abc.abstractmethod
    async def read_sha256(self, key: str) -> str:
        """Stream the object and hash it; NotFound when absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object (and its recorded metadata); absent is not an error."""

    @abc.abstractmethod
    async def put_file(self, key: str, source: BinaryIO, *, sha256: str) -> None:
        """Upload an open file the server already hashed (the legacy direct upload)."""

    @abc.abstractmethod
    async def presign_put(
        self, key: str, *, size: int, sha256: str, expires_secs: int
    ) -> PresignedRequest: ...

    @abc.abstractmethod
    async def presign_get(self, key: str, *, expires_secs: int) -> str: ...

    @abc.abstractmethod
    async def create_multipart(self, key: str, *, sha256: str) -> str:
        """Start a multipart upload; returns its upload id."""

    @abc.abstractmethod
    async def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires_secs: int,
        max_size: int | None = None,
    ) -> str:
        """A URL for one part's PUT; a store that can refuses a part above ``max_size``."""

    @abc.abstractmethod
    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The parts received so far (for resuming); NotFound for an unknown upload."""

    @abc.abstractmethod
    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        """Assemble ``(part_number, etag)`` parts; BadRequest when a part is missing/wrong."""

    @abc.abstractmethod
    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an upload and its parts; unknown uploads are not an error."""

    @abc.abstractmethod
    async def purge_stale(self, older_than_secs: float, keep: frozenset[str] = frozenset()) -> int:
        """Abort multipart uploads (and drop temporary files) older than the age, except the
        uploads named in ``keep`` (still pending: an upload's start date from an
        S3-compatible store may be wrong); count."""
