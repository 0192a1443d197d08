"""Shared pieces of the artifact API tests: the blob store under test and an uploader that
speaks the presigned protocols the way a client does (PUT to the URL it was given).

Local presigned URLs point at the API itself and go through the in-process TestClient; S3 URLs
go over HTTP to the moto server.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

PUBLIC_URL = "http://127.0.0.1:8080"
MIB = 1024 * 1024


def blob(size: int = 4096, seed: bytes | None = None) -> tuple[bytes, str]:
    body = (seed or os.urandom(16)) * (size // 16 + 1)
    body = body[:size]
    return body, hashlib.sha256(body).hexdigest()


def uploaded_bytes(api) -> float:  # type: ignore[no-untyped-def]
    """``artifact_upload_bytes_total`` as the API's metrics say it now."""
    for line in api.get("/metrics", as_=None).text.splitlines():
        if line.startswith("artifact_upload_bytes_total "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture(params=["local", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def registry_api(store_kind: str, make_api: Callable[..., Any], request: pytest.FixtureRequest):
    """``registry_api(env=…)``: an API harness on the parametrised blob store."""

    def make(env: dict[str, str] | None = None, **kwargs: Any) -> Any:
        if store_kind == "s3":
            from aether.settings import BlobSettings

            settings = request.getfixturevalue("s3_blob_settings")
            kwargs.setdefault(
                "blob_settings",
                BlobSettings.from_env(
                    {
                        "AETHER_STORAGE_MODE": "s3",
                        "AETHER_ARTIFACT_BUCKET": settings.bucket,
                        "AETHER_S3_ENDPOINT_URL": settings.endpoint_url,
                        "AETHER_DATA_DIR": str(settings.data_dir),
                        **(env or {}),
                    }
                ),
            )
        return make_api(env=env, **kwargs)

    return make


class Uploader:
    """Drives the upload protocols against an ApiHarness as a given role."""

    def __init__(self, api: Any, app: str = "shop", as_: str = "deployer") -> None:
        self.api, self.app, self.as_ = api, app, as_

    def put(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        headers = dict(headers or {})
        if url.startswith(PUBLIC_URL):
            return self.api.client.put(url, content=body, headers=headers)
        return httpx.put(url, content=body, headers=headers)

    def get_url(self, url: str) -> bytes:
        """The body a presigned GET URL answers (local URLs through the TestClient)."""
        if url.startswith(PUBLIC_URL):
            answer = self.api.client.get(url)
        else:
            answer = httpx.get(url)
        assert answer.status_code == 200, answer.text
        return bytes(answer.content)

    def presign(self, digest: str, size: int, **extra: Any) -> Any:
        body = {"app_name": self.app, "digest": digest, "size_bytes": size, **extra}
        return self.api.post("/artifacts/presign", json=body, as_=self.as_)

    def complete(self, digest: str, size: int, **extra: Any) -> Any:
        body = {"app_name": self.app, "digest": digest, "size_bytes": size, **extra}
        return self.api.post("/artifacts/complete", json=body, as_=self.as_)

    def upload(
        self, body: bytes, digest: str | None = None, *, compression: str = "zstd", **extra: Any
    ) -> Any:
        """presign → PUT → complete; returns the complete response."""
        digest = digest or hashlib.sha256(body).hexdigest()
        presigned = self.presign(digest, len(body), compression=compression)
        assert presigned.status_code == 200, presigned.text
        answer = presigned.json()
        if answer["method"] == "PUT":
            put = self.put(answer["upload_url"], body, answer["headers"])
            assert put.status_code == 200, put.text
        return self.complete(digest, len(body), **extra)

    def init_multipart(self, digest: str, size: int) -> dict:
        """``POST /artifacts/multipart/init``; the answer (upload_id, storage_key, …)."""
        return self.api.post(
            "/artifacts/multipart/init",
            json={"app_name": self.app, "digest": digest, "size_bytes": size},
            as_=self.as_,
        ).json()

    def multipart(self, parts: list[bytes], **extra: Any) -> Any:
        whole = b"".join(parts)
        digest = hashlib.sha256(whole).hexdigest()
        init = self.init_multipart(digest, len(whole))
        done = [self.put_part(digest, init["upload_id"], n, p) for n, p in enumerate(parts, 1)]
        return self.complete_multipart(digest, len(whole), init["upload_id"], done, **extra)

    def open_with_one_part(self, size: int = 1000) -> tuple[bytes, str, str]:
        """A multipart upload of ``size`` random bytes, its one part uploaded, not completed:
        (body, digest, upload_id)."""
        body, digest = blob(size)
        upload_id = self.init_multipart(digest, len(body))["upload_id"]
        self.put_part(digest, upload_id, 1, body)
        return body, digest, upload_id

    def complete_multipart(
        self, digest: str, size: int, upload_id: str, parts: list[dict], **extra: Any
    ) -> Any:
        """``POST /artifacts/multipart/complete`` with ``parts`` (part_number, etag)."""
        body = {"app_name": self.app, "digest": digest, "size_bytes": size, **extra}
        return self.api.post(
            "/artifacts/multipart/complete",
            json={**body, "upload_id": upload_id, "parts": parts},
            as_=self.as_,
        )

    def sign_part(self, digest: str, upload_id: str, number: int) -> Any:
        """``POST /artifacts/multipart/presign-part``: the response (url and headers)."""
        return self.api.post(
            "/artifacts/multipart/presign-part",
            json={"digest": digest, "upload_id": upload_id, "part_number": number},
            as_=self.as_,
        )

    def put_part(self, digest: str, upload_id: str, number: int, body: bytes) -> dict:
        signed = self.sign_part(digest, upload_id, number)
        assert signed.status_code == 200, signed.text
        put = self.put(signed.json()["url"], body, signed.json()["headers"])
        assert put.status_code == 200, put.text
        return {"part_number": number, "etag": put.headers["ETag"]}
