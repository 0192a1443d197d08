"""The production blob store: S3 or an S3-compatible service through s3fs's aiobotocore client.

The only module that imports s3fs/aiobotocore/botocore; their exceptions are turned into
Aether errors here. Presigned URLs are SigV4 (``signature_version="s3v4"``). A presigned PUT
signs the ``x-amz-meta-sha256`` metadata, the ``x-amz-checksum-sha256`` checksum (S3 itself
rejects bytes that do not match it) and the SSE headers when configured, so the client must
send exactly the headers the presign answer lists.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import botocore.exceptions
import s3fs

from aether.blobs.base import BlobStore, ObjectInfo, PartInfo, PresignedRequest, expires_at
from aether.errors import BadRequest, NotFound, ServiceUnavailable
from aether.settings import BlobSettings

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_BAD_PARTS = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"}
_CHUNK = 1024 * 1024


def _b64_to_hex(value: str | None) -> str | None:
    if not value or "-" in value:  # composite multipart checksums are not whole-object hashes
        return None
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return None


@contextlib.contextmanager
def _s3_errors(action: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise NotFound(f"{action}: not found in object storage ({code})") from exc
        if code in _BAD_PARTS:
            raise BadRequest(f"{action}: object storage rejected the parts ({code})") from exc
        raise ServiceUnavailable(f"{action}: object storage answered {code or exc}") from exc
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise ServiceUnavailable(f"{action}: object storage is not reachable: {exc}") from exc


class S3BlobStore(BlobStore):
    default_verify_hash = False  # a full download per upload is the expensive path on S3

    def __init__(self, settings: BlobSettings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._fs: Any = None
        self._client: Any = None

    async def open(self) -> None:
        config: dict[str, Any] = {
            "signature_version": "s3v4",
            # only the checksums we ask for: a presigned URL must not require extra headers
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        if self.settings.endpoint_url:
            config["s3"] = {"addressing_style": "path"}
        self._fs = s3fs.S3FileSystem(
            asynchronous=True,
            skip_instance_cache=True,
            endpoint_url=self.settings.endpoint_url,
            client_kwargs={"region_name": self.settings.region},
            config_kwargs=config,
        )
        with _s3_errors("connect"):
            self._client = await self._fs.set_session()
        await self._ensure_bucket()

    async def close(self) -> None:
        creator = getattr(self._fs, "_s3creator", None)
        if creator is not None:
            await creator.__aexit__(None, None, None)
        self._fs = self._client = None

    async def _ensure_bucket(self) -> None:
        try:
            with _s3_errors(f"head bucket {self.bucket}"):
                await self._client.head_bucket(Bucket=self.bucket)
            return
        except NotFound:
            pass
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.settings.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            await self._client.create_bucket(**params)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise ServiceUnavailable(f"cannot create bucket {self.bucket}: {code}") from exc

    def _sse(self) -> dict[str, str]:
        if not self.settings.sse:
            return {}
        params = {"ServerSideEncryption": self.settings.sse}
        if self.settings.sse == "aws:kms" and self.settings.sse_kms_key:
            params["SSEKMSKeyId"] = self.settings.sse_kms_key
        return params

    def _sse_headers(self) -> dict[str, str]:
        names = {
            "ServerSideEncryption": "x-amz-server-side-encryption",
            "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
        }
        return {names[k]: v for k, v in self._sse().items()}

    async def verifies_checksums(self) -> bool:
        """S3 answers BadDigest (or similar) to a wrong x-amz-checksum-sha256; some
        S3-compatible stores (and moto) store the bytes and the claimed checksum as given."""
        key = f"aether-probe/{secrets.token_hex(8)}"
        wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode("ascii")
        try:
            await self._client.put_object(
                Bucket=self.bucket, Key=key, Body=b"probe", ChecksumSHA256=wrong, **self._sse()
            )
        except botocore.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if 400 <= int(status) < 500 and status not in (401, 403):
                return True  # refused for its checksum
            raise ServiceUnavailable(f"probing object storage failed: {exc}") from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise ServiceUnavailable(f"object storage is not reachable: {exc}") from exc
        await self.delete(key)
        return False

    # --- reads -----------------------------------------------------------------------------

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            with _s3_errors(f"head {key}"):
                answer = await self._client.head_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
                )
        except NotFound:
            return None
        return ObjectInfo(
            size=int(answer["ContentLength"]),
            sha256=_b64_to_hex(answer.get("ChecksumSHA256")),
            claimed_sha256=answer.get("Metadata", {}).get("sha256"),
        )

    async def _stream(self, key: str, sink: Any) -> None:
        with _s3_errors(f"get {key}"):
            answer = await self._client.get_object(Bucket=self.bucket, Key=key)
            async with answer["Body"] as body:
                while chunk := await body.read(_CHUNK):
                    sink(chunk)

    async def read_sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        await self._stream(key, digest.update)
        return digest.hexdigest()

    async def download(self, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            with temp.open("wb") as handle:
                await self._stream(key, handle.write)
            os.replace(temp, dest)
        finally:
            temp.unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        with _s3_errors(f"delete {key}"):
            await self._client.delete_object(Bucket=self.bucket, Key=key)

    async def put_file(self, key: str, source: BinaryIO, *, sha256: str) -> None:
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        size = source.seek(0, os.SEEK_END)
        source.seek(0)
        with _s3_errors(f"put {key}"):
            await self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=source,
                ContentLength=size,
                Metadata={"sha256": sha256},
                ChecksumSHA256=checksum,
                **self._sse(),
            )

    # --- presigning ------------------------------------------------------------------------

    async def _presign(self, method: str, params: dict[str, Any], expires_secs: int) -> str:
        with _s3_errors(f"presign {method}"):
            return await self._client.generate_presigned_url(
                method, Params={"Bucket": self.bucket, **params}, ExpiresIn=expires_secs
            )

    async def presign_put(
        self, key: str, *, size: int, sha256: str, expires_secs: int
    ) -> PresignedRequest:
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        params = {
            "Key": key,
            "ContentLength": size,
            "Metadata": {"sha256": sha256},
            "ChecksumSHA256": checksum,
            **self._sse(),
        }
        url = await self._presign("put_object", params, expires_secs)
        headers = {
            "Content-Length": str(size),
            "x-amz-meta-sha256": sha256,
            "x-amz-checksum-sha256": checksum,
            **self._sse_headers(),
        }
        return PresignedRequest("PUT", url, headers, expires_at(expires_secs))

    async def presign_get(self, key: str, *, expires_secs: int) -> str:
        return await self._presign("get_object", {"Key": key}, expires_secs)

    # --- multipart -------------------------------------------------------------------------

    async def create_multipart(self, key: str, *, sha256: str) -> str:
        with _s3_errors(f"start multipart upload of {key}"):
            answer = await self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, Metadata={"sha256": sha256}, **self._sse()
            )
        return str(answer["UploadId"])

    async def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires_secs: int,
        max_size: int | None = None,
    ) -> str:
        # ``max_size`` is not signed into an S3 URL (its Content-Length would have to be
        # exact); the server checks every part's size before completing instead.
        params = {"Key": key, "UploadId": upload_id, "PartNumber": part_number}
        return await self._presign("upload_part", params, expires_secs)

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        marker = 0
        with _s3_errors(f"list parts of {key}"):
            while True:
                answer = await self._client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                for part in answer.get("Parts", []):
                    parts.append(PartInfo(part["PartNumber"], part["ETag"], int(part["Size"])))
                if not answer.get("IsTruncated"):
                    return parts
                marker = int(answer["NextPartNumberMarker"])

    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        listed = [{"PartNumber": number, "ETag": etag} for number, etag in parts]
        with _s3_errors(f"complete multipart upload of {key}"):
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            with _s3_errors(f"abort multipart upload of {key}"):
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
        except NotFound:
            pass

    async def purge_stale(self, older_than_secs: float, keep: frozenset[str] = frozenset()) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_secs)
        stale = []
        with _s3_errors("list multipart uploads"):
            paginator = self._client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self.bucket):
                stale += [
                    upload
                    for upload in page.get("Uploads", [])
                    if upload["Initiated"] < cutoff and upload["UploadId"] not in keep
                ]
        for upload in stale:
            await self.abort_multipart(upload["Key"], upload["UploadId"])
        return len(stale)
