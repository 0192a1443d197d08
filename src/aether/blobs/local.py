"""The embedded blob store: a folder under the data dir, presigned URLs served by the API.

Layout under ``<data_dir>/blobs``: ``objects/<key>`` holds the bytes, ``meta/<key>.sha256`` the
sha256 measured while they streamed in, ``tmp/`` uploads in flight and ``multipart/<id>/`` the
parts of unfinished multipart uploads. An upload is written to ``tmp/`` and renamed into place
only once its size and hash check out, so an interrupted upload never leaves a partial object.
The API's ``/blobs/…`` routes call :meth:`LocalBlobStore.receive_put` and
:meth:`LocalBlobStore.path_for_get` with the request's query, which carries its own signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

from aether.blobs.base import BlobStore, ObjectInfo, PartInfo, PresignedRequest, expires_at
from aether.blobs.storage_keys import check_key
from aether.blobs.url_signer import UrlSigner, load_or_create_secret
from aether.digests import sha256_file
from aether.errors import BadRequest, DigestMismatch, IOFailure, NotFound, ServiceUnavailable

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1024 * 1024
TMP_MIN_AGE_SECS = 3600
_WRONG_SHA256 = hashlib.sha256(b"not the probe's bytes").hexdigest()  # the checksum probe


@contextlib.contextmanager
def _disk_errors(action: str) -> Iterator[None]:
    """A full disk is the server's trouble and passes (503, try later); the caller has
    removed what it wrote. Other errors (a client that went away) go on as they are."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ServiceUnavailable(
                f"{action}: the server's disk is full; nothing was kept, try again later"
            ) from exc
        raise


def _strip_etag(etag: str) -> str:
    return etag.strip().strip('"')


class LocalBlobStore(BlobStore):
    default_verify_hash = True  # re-hashing a local file is cheap

    def __init__(self, data_dir: Path, *, public_url: str) -> None:
        self.root = data_dir / "blobs"
        self.public_url = public_url.rstrip("/")
        # The URL signer's HMAC secret (not a key of any artifact): the file name is what
        # existing data dirs hold, so it stays.
        self._secret_path = data_dir / "presign.key"
        self._signer: UrlSigner | None = None

    async def open(self) -> None:
        try:
            for folder in ("objects", "meta", "tmp", "multipart"):
                (self.root / folder).mkdir(parents=True, exist_ok=True)
            self._signer = UrlSigner(load_or_create_secret(self._secret_path))
        except OSError as exc:
            raise IOFailure(f"cannot prepare the blob folder {self.root}: {exc}") from exc

    async def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""

    async def verifies_checksums(self) -> bool:
        key = f"aether-probe/{secrets.token_hex(8)}"
        query = self.signer.sign("PUT", key, expires_secs=60, size=5, sha256=_WRONG_SHA256)

        async def body() -> AsyncIterator[bytes]:
            yield b"probe"

        try:
            await self.receive_put(key, query, body())
        except DigestMismatch:
            return True
        await self.delete(key)
        return False

    @property
    def signer(self) -> UrlSigner:
        if self._signer is None:
            raise RuntimeError("LocalBlobStore.open() was not awaited")
        return self._signer

    # --- paths -----------------------------------------------------------------------------

    def _object(self, key: str) -> Path:
        return self.root / "objects" / check_key(key)

    def _meta(self, key: str) -> Path:
        return self.root / "meta" / (check_key(key) + ".sha256")

    def _upload_dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise NotFound(f"no multipart upload {upload_id!r}")
        return self.root / "multipart" / upload_id

    def _url(self, key: str, query: Mapping[str, str]) -> str:
        return f"{self.public_url}/blobs/{quote(check_key(key))}?{urlencode(query)}"

    # --- reads -----------------------------------------------------------------------------

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            size = self._object(key).stat().st_size
        except FileNotFoundError:
            return None
        try:
            sha256 = self._meta(key).read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            sha256 = None
        return ObjectInfo(size=size, sha256=sha256)

    async def download(self, key: str, dest: Path) -> None:
        source = self._existing(key)
        await asyncio.to_thread(_copy_atomically, source, dest)

    async def read_sha256(self, key: str) -> str:
        return await asyncio.to_thread(sha256_file, self._existing(key))

    def _existing(self, key: str) -> Path:
        path = self._object(key)
        if not path.is_file():
            raise NotFound(f"no object at {key}")
        return path

    async def delete(self, key: str) -> None:
        for path in (self._object(key), self._meta(key)):
            path.unlink(missing_ok=True)

    async def put_file(self, key: str, source: BinaryIO, *, sha256: str) -> None:
        temp = self.root / "tmp" / secrets.token_hex(16)
        try:
            with _disk_errors(f"storing {key}"):
                await asyncio.to_thread(_copy_to, source, temp)
                self._commit(temp, key, sha256)
        finally:
            temp.unlink(missing_ok=True)

    # --- presigning ------------------------------------------------------------------------

    async def presign_put(
        self, key: str, *, size: int, sha256: str, expires_secs: int
    ) -> PresignedRequest:
        query = self.signer.sign("PUT", key, expires_secs=expires_secs, size=size, sha256=sha256)
        headers = {"Content-Length": str(size)}
        return PresignedRequest("PUT", self._url(key, query), headers, expires_at(expires_secs))

    async def presign_get(self, key: str, *, expires_secs: int) -> str:
        return self._url(key, self.signer.sign("GET", key, expires_secs=expires_secs))

    def path_for_get(self, key: str, query: Mapping[str, str]) -> Path:
        """The file a signed GET may read; Forbidden for a bad URL, NotFound when absent."""
        self.signer.verify("GET", key, query)
        return self._existing(key)

    # --- uploads through signed URLs -------------------------------------------------------

    async def receive_put(
        self, key: str, query: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> str:
        """Store a signed PUT's body (object or part); returns its ETag."""
        fields = self.signer.verify("PUT", key, query)
        with _disk_errors(f"storing the upload to {key}"):
            if "upload_id" in fields:
                return await self._receive_part(key, fields, chunks)
            return await self._receive_object(key, fields, chunks)

    async def _receive_object(
        self, key: str, fields: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> str:
        size, expected = int(fields["size"]), fields["sha256"]
        digest = hashlib.sha256()
        temp, received = await self._spool(chunks, digest, limit=size)
        try:
            if received != size:
                raise BadRequest(f"upload was {received} bytes; the URL was signed for {size}")
            if digest.hexdigest() != expected:
                raise DigestMismatch("uploaded bytes do not hash to the signed sha256")
            self._commit(temp, key, expected)
        finally:
            temp.unlink(missing_ok=True)
        return f'"{expected}"'

    async def _receive_part(
        self, key: str, fields: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> str:
        folder = self._upload_dir(fields["upload_id"])
        number = int(fields["part_number"])
        if not (folder / "upload.json").is_file():
            raise NotFound("the multipart upload was aborted or completed; start a new one")
        md5 = hashlib.md5(usedforsecurity=False)  # S3's ETag for a single part
        limit = int(fields["max_size"]) if "max_size" in fields else None
        temp, _ = await self._spool(chunks, md5, limit=limit)
        try:
            etag = md5.hexdigest()
            (folder / f"{number:05d}.etag").write_text(etag, encoding="ascii")
            os.replace(temp, folder / f"{number:05d}.part")
        except FileNotFoundError:  # aborted (or collected) while this part streamed in
            raise NotFound("the multipart upload was aborted; start a new one") from None
        finally:
            temp.unlink(missing_ok=True)
        return f'"{etag}"'

    async def _spool(
        self, chunks: AsyncIterator[bytes], digest: Any, *, limit: int | None
    ) -> tuple[Path, int]:
        """Write a body to a temp file while hashing; the file is removed on any failure."""
        temp = self.root / "tmp" / secrets.token_hex(16)
        received = 0
        try:
            with temp.open("wb") as handle:
                async for chunk in chunks:
                    received += len(chunk)
                    if limit is not None and received > limit:
                        raise BadRequest(f"upload exceeds the {limit} bytes the URL was signed for")
                    digest.update(chunk)
                    handle.write(chunk)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, received

    def _commit(self, temp: Path, key: str, sha256: str) -> None:
        target, meta = self._object(key), self._meta(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta.parent.mkdir(parents=True, exist_ok=True)
        try:
            meta.write_text(sha256, encoding="ascii")
        except OSError:
            meta.unlink(missing_ok=True)  # no record without its object
            raise
        os.replace(temp, target)

    # --- multipart -------------------------------------------------------------------------

    async def create_multipart(self, key: str, *, sha256: str) -> str:
        upload_id = secrets.token_hex(16)
        folder = self._upload_dir(upload_id)
        folder.mkdir(parents=True)
        record = {"key": check_key(key), "sha256": sha256}
        (folder / "upload.json").write_text(json.dumps(record), encoding="utf-8")
        return upload_id

    async def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires_secs: int,
        max_size: int | None = None,
    ) -> str:
        self._upload_dir(upload_id)
        query = self.signer.sign(
            "PUT",
            key,
            expires_secs=expires_secs,
            upload_id=upload_id,
            part_number=part_number,
            max_size=max_size,
        )
        return self._url(key, query)

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        folder = self._upload_record(key, upload_id)
        parts = []
        for data in sorted(folder.glob("*.part")):
            etag = (folder / f"{data.stem}.etag").read_text(encoding="ascii")
            parts.append(PartInfo(int(data.stem), f'"{etag}"', data.stat().st_size))
        return parts

    def _upload_record(self, key: str, upload_id: str) -> Path:
        folder = self._upload_dir(upload_id)
        try:
            record = json.loads((folder / "upload.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(f"no multipart upload {upload_id}; start a new one") from None
        if record["key"] != key:
            raise NotFound(f"multipart upload {upload_id} is not for {key}")
        return folder

    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        folder = self._upload_record(key, upload_id)
        received = {
            p.part_number: _strip_etag(p.etag) for p in await self.list_parts(key, upload_id)
        }
        numbers = [number for number, _ in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise BadRequest("parts must be listed once each, in ascending part_number order")
        for number, etag in parts:
            if received.get(number) != _strip_etag(etag):
                raise BadRequest(f"part {number} was not uploaded or its etag does not match")
        temp = self.root / "tmp" / secrets.token_hex(16)
        try:
            with _disk_errors(f"assembling {key}"):
                sha256 = await asyncio.to_thread(_concatenate, folder, numbers, temp)
                self._commit(temp, key, sha256)
        finally:
            temp.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            folder = self._upload_record(key, upload_id)
        except NotFound:
            return
        shutil.rmtree(folder, ignore_errors=True)

    async def purge_stale(self, older_than_secs: float, keep: frozenset[str] = frozenset()) -> int:
        now = time.time()
        # A temporary file is orphaned only by a crash mid-upload; one younger than an hour
        # may still be streaming in, whatever the pending TTL says.
        removed = _remove_older(self.root / "tmp", now - max(older_than_secs, TMP_MIN_AGE_SECS))
        return removed + _remove_older(self.root / "multipart", now - older_than_secs, keep)


def _remove_older(folder: Path, cutoff: float, keep: frozenset[str] = frozenset()) -> int:
    removed = 0
    for entry in folder.iterdir():
        if entry.name in keep:
            continue
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
        except FileNotFoundError:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _concatenate(folder: Path, numbers: list[int], dest: Path) -> str:
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for number in numbers:
            with (folder / f"{number:05d}.part").open("rb") as part:
                while block := part.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def _copy_to(source: BinaryIO, dest: Path) -> None:
    with dest.open("wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)


def _copy_atomically(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, dest)
    finally:
        temp.unlink(missing_ok=True)
