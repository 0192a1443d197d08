"""One contract, two stores: every BlobStore behaves the same on the local folder and on S3."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from blob_transport import get_url, put_url

from aether.blobs import BlobStore, storage_key
from aether.blobs.local import LocalBlobStore
from aether.errors import AetherError, BadRequest, NotFound

MIB = 1024 * 1024


def _key(name: str = "demo") -> str:
    return storage_key(name, hashlib.sha256(name.encode()).hexdigest(), "zstd")


async def _upload(store: BlobStore, key: str, body: bytes) -> None:
    sha = hashlib.sha256(body).hexdigest()
    request = await store.presign_put(key, size=len(body), sha256=sha, expires_secs=60)
    assert request.method == "PUT"
    assert request.expires_at.endswith("Z")
    await put_url(store, request.url, request.headers, body)


async def test_presigned_put_then_head_read_download_get(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    body = os.urandom(300_000)
    sha = hashlib.sha256(body).hexdigest()
    key = _key()
    assert await blob_store.head(key) is None
    await _upload(blob_store, key, body)

    info = await blob_store.head(key)
    assert info is not None and info.size == len(body)
    # local: the hash measured on arrival; S3: the store's checksum and/or the claimed one
    assert sha in (info.sha256, info.claimed_sha256)
    assert {info.sha256, info.claimed_sha256} <= {sha, None}
    assert await blob_store.read_sha256(key) == sha
    await blob_store.download(key, tmp_path / "out" / "app.tar.zst")
    assert (tmp_path / "out" / "app.tar.zst").read_bytes() == body
    url = await blob_store.presign_get(key, expires_secs=60)
    assert await get_url(blob_store, url) == body


async def test_the_checksum_probe_leaves_nothing_behind(blob_store: BlobStore) -> None:
    """The local store refuses bytes that miss their sha256; moto stores them anyway (as do
    some S3-compatible stores), which is why completes re-hash there."""
    verifies = await blob_store.verifies_checksums()
    assert verifies is (type(blob_store).__name__ == "LocalBlobStore")
    if type(blob_store).__name__ == "S3BlobStore":
        listed = await blob_store._client.list_objects_v2(Bucket=blob_store.bucket)
        assert listed.get("KeyCount", 0) == 0
    else:
        assert not any((blob_store.root / "objects").rglob("*"))
        assert not any((blob_store.root / "tmp").iterdir())


async def test_presigned_put_carries_the_sha256_headers(blob_store: BlobStore) -> None:
    request = await blob_store.presign_put(_key(), size=10, sha256="ab" * 32, expires_secs=60)
    assert request.headers["Content-Length"] == "10"
    if request.url.startswith("http://127.0.0.1:9/"):
        assert "sha256=" + "ab" * 32 in request.url  # local: signed into the URL itself
    else:
        assert request.headers["x-amz-meta-sha256"] == "ab" * 32
        assert "x-amz-checksum-sha256" in request.headers
        assert "X-Amz-Signature=" in request.url and "X-Amz-Algorithm=AWS4" in request.url


async def test_upload_with_other_bytes_never_passes_a_rehash(blob_store: BlobStore) -> None:
    """The local store refuses the PUT outright; S3 refuses it by checksum (moto stores it
    anyway), so the re-hash on ``complete`` is what must see through it."""
    good, bad = b"a" * 1000, b"b" * 1000
    good_sha = hashlib.sha256(good).hexdigest()
    key = _key("refused")
    request = await blob_store.presign_put(key, size=len(good), sha256=good_sha, expires_secs=60)
    try:
        await put_url(blob_store, request.url, request.headers, bad)
    except (AetherError, httpx.HTTPStatusError):
        assert await blob_store.head(key) is None
        return
    assert await blob_store.read_sha256(key) != good_sha


async def test_missing_objects(blob_store: BlobStore, tmp_path: Path) -> None:
    key = _key("missing")
    assert await blob_store.head(key) is None
    with pytest.raises(NotFound):
        await blob_store.read_sha256(key)
    with pytest.raises(NotFound):
        await blob_store.download(key, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    await blob_store.delete(key)  # absent is not an error


async def test_delete_removes_the_object(blob_store: BlobStore) -> None:
    key = _key("deleted")
    await _upload(blob_store, key, b"bytes to delete")
    assert await blob_store.head(key) is not None
    await blob_store.delete(key)
    assert await blob_store.head(key) is None


async def _upload_parts(store: BlobStore, key: str, upload_id: str, parts: list[bytes]) -> list:
    done = []
    for number, body in enumerate(parts, start=1):
        url = await store.presign_part(key, upload_id, number, expires_secs=60)
        done.append((number, await put_url(store, url, {}, body)))
    return done


async def test_multipart_upload_list_resume_and_complete(blob_store: BlobStore) -> None:
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
    whole = b"".join(parts)
    sha = hashlib.sha256(whole).hexdigest()
    key = _key("multi")
    upload_id = await blob_store.create_multipart(key, sha256=sha)

    first = await _upload_parts(blob_store, key, upload_id, parts[:2])
    listed = await blob_store.list_parts(key, upload_id)
    assert [(p.part_number, p.size) for p in listed] == [(1, 5 * MIB), (2, 5 * MIB)]
    assert [p.etag.strip('"') for p in listed] == [etag.strip('"') for _, etag in first]

    url = await blob_store.presign_part(key, upload_id, 3, expires_secs=60)
    last = await put_url(blob_store, url, {}, parts[2])
    await blob_store.complete_multipart(key, upload_id, [*first, (3, last)])

    info = await blob_store.head(key)
    assert info is not None and info.size == len(whole)
    assert await blob_store.read_sha256(key) == sha


async def test_multipart_complete_with_a_wrong_etag_is_refused(blob_store: BlobStore) -> None:
    key = _key("wrong-etag")
    upload_id = await blob_store.create_multipart(key, sha256="00" * 32)
    await _upload_parts(blob_store, key, upload_id, [b"only part"])
    with pytest.raises(BadRequest):
        await blob_store.complete_multipart(key, upload_id, [(1, '"' + "0" * 32 + '"')])
    assert await blob_store.head(key) is None


async def test_abort_and_purge_drop_uploads(blob_store: BlobStore) -> None:
    key = _key("aborted")
    aborted = await blob_store.create_multipart(key, sha256="00" * 32)
    await _upload_parts(blob_store, key, aborted, [b"part"])
    await blob_store.abort_multipart(key, aborted)
    with pytest.raises(NotFound):
        await blob_store.list_parts(key, aborted)
    await blob_store.abort_multipart(key, aborted)  # twice is fine

    stale = await blob_store.create_multipart(key, sha256="00" * 32)
    if isinstance(blob_store, LocalBlobStore):  # moto reports a fixed 2010 "Initiated" date
        assert await blob_store.purge_stale(3600) == 0
        assert (await blob_store.list_parts(key, stale)) == []
    assert await blob_store.purge_stale(-1) >= 1
    with pytest.raises(NotFound):
        await blob_store.list_parts(key, stale)


async def test_local_urls_expire_and_resist_tampering(tmp_path: Path) -> None:
    """moto ignores signatures and expiry, so the local store's HMAC is tested here."""
    from aether.blobs.local import LocalBlobStore
    from aether.errors import Forbidden

    store = LocalBlobStore(tmp_path, public_url="http://api")
    await store.open()
    key, body = _key("signed"), b"payload"
    sha = hashlib.sha256(body).hexdigest()
    good = await store.presign_put(key, size=len(body), sha256=sha, expires_secs=60)
    expired = await store.presign_put(key, size=len(body), sha256=sha, expires_secs=-1)
    for url in (
        expired.url,
        good.url.replace("size=7", "size=8"),
        good.url.replace(key.split("/")[1], "other"),
        good.url.replace("sig=", "sig=0"),
        good.url.split("&sig=")[0],
    ):
        with pytest.raises(Forbidden):
            await put_url(store, url, {}, body)
    assert await store.head(key) is None
    await put_url(store, good.url, {}, body)
    with pytest.raises(Forbidden):  # a PUT signature does not open a GET
        await get_url(store, good.url)
    assert await get_url(store, await store.presign_get(key, expires_secs=60)) == body


async def test_local_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    from aether.blobs.local import LocalBlobStore

    first = LocalBlobStore(tmp_path, public_url="http://api")
    await first.open()
    secret = (tmp_path / "presign.key").read_text()
    assert (tmp_path / "presign.key").stat().st_mode & 0o777 == 0o600
    url = await first.presign_get(_key(), expires_secs=60)
    second = LocalBlobStore(tmp_path, public_url="http://api")
    await second.open()
    assert (tmp_path / "presign.key").read_text() == secret
    with pytest.raises(NotFound):  # signature accepted by the second instance; object absent
        await get_url(second, url)


async def test_local_interrupted_put_leaves_nothing(tmp_path: Path) -> None:
    from aether.blobs.local import LocalBlobStore

    store = LocalBlobStore(tmp_path, public_url="http://api")
    await store.open()
    key, body = _key("killed"), os.urandom(200_000)
    request = await store.presign_put(
        key, size=len(body), sha256=hashlib.sha256(body).hexdigest(), expires_secs=60
    )

    async def dying_stream():
        yield body[:50_000]
        raise ConnectionResetError("client went away")

    from urllib.parse import parse_qsl, urlsplit

    query = dict(parse_qsl(urlsplit(request.url).query))
    with pytest.raises(ConnectionResetError):
        await store.receive_put(key, query, dying_stream())
    assert await store.head(key) is None
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


async def test_put_file_records_the_sha256(blob_store: BlobStore, tmp_path: Path) -> None:
    body = os.urandom(70_000)
    source = tmp_path / "artifact.bin"
    source.write_bytes(body)
    sha = hashlib.sha256(body).hexdigest()
    with source.open("rb") as handle:
        await blob_store.put_file(_key("direct"), handle, sha256=sha)
    info = await blob_store.head(_key("direct"))
    assert info is not None and info.size == len(body)
    assert sha in (info.sha256, info.claimed_sha256)
    assert await blob_store.read_sha256(_key("direct")) == sha


async def test_local_purge_keeps_young_temporary_files(tmp_path: Path) -> None:
    """A temp file may be an upload still streaming in: only old ones are orphans."""
    store = LocalBlobStore(tmp_path, public_url="http://api")
    await store.open()
    young = tmp_path / "blobs" / "tmp" / "young"
    old = tmp_path / "blobs" / "tmp" / "old"
    young.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (1_000_000, 1_000_000))
    assert await store.purge_stale(0) == 1
    assert young.exists() and not old.exists()
