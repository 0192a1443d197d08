"""The multipart upload: parallel parts with per-part retries, resumable across runs.

init (or resume a recorded upload id and ask the server which parts it holds) → for each
missing part, presign and PUT it, at most ``concurrency`` at a time, retrying transient
failures with exponential backoff → complete with every part's ETag → forget the record.
An interruption leaves the record behind, so the next run uploads only the missing parts.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from aether.client.api import ApiClient, ThreadSessions, put_presigned
from aether.client.resume import PartPlan, ResumeStore, UploadRecord, missing_parts, plan_parts
from aether.client.transfer import (
    ByteCounter,
    ProgressCallback,
    SliceReader,
    UploadRequest,
    UploadResult,
    complete_body,
)
from aether.errors import AetherError, NetworkError, RemoteError

PART_ATTEMPTS = 4
BACKOFF_BASE_SECS = 0.5
_TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


def upload_multipart(
    api: ApiClient,
    request: UploadRequest,
    *,
    part_size: int,
    resume_root: Path,
    on_progress: ProgressCallback | None = None,
    concurrency: int = 4,
) -> UploadResult:
    """Upload ``request`` in parts; resume a recorded upload of the same digest if possible."""
    store = ResumeStore(resume_root)
    record, stored = _resume_or_init(api, store, request, part_size)
    plan = plan_parts(request.size_bytes, record.part_size_bytes)
    todo = missing_parts(plan, {number: size for number, (_, size) in stored.items()})
    etags = {number: etag for number, (etag, _) in stored.items()}
    counter = ByteCounter(request.size_bytes, on_progress)
    counter.add(sum(part.length for part in plan if part not in todo))
    etags.update(_upload_parts(api, request, record, todo, counter, concurrency))
    parts = [{"part_number": part.number, "etag": etags[part.number]} for part in plan]
    artifact = _complete(api, store, request, record, parts)
    return UploadResult(
        uploaded_bytes=sum(part.length for part in todo),
        multipart=True,
        parts_total=len(plan),
        parts_uploaded=len(todo),
        resumed=bool(stored),
        artifact=artifact,
    )


def _resume_or_init(
    api: ApiClient, store: ResumeStore, request: UploadRequest, part_size: int
) -> tuple[UploadRecord, dict[int, tuple[str, int]]]:
    record = store.load(request.digest)
    if record is not None and record.matches(
        api_base=api.base_url, app_name=request.app_name, size_bytes=request.size_bytes
    ):
        stored = _stored_parts(api, record)
        if stored is not None:
            return record, stored
    store.forget(request.digest)
    started = api.post(
        "/artifacts/multipart/init",
        {
            "app_name": request.app_name,
            "digest": request.digest,
            "size_bytes": request.size_bytes,
            "compression": request.compression,
        },
    )
    record = UploadRecord(
        upload_id=started["upload_id"],
        api_base=api.base_url,
        app_name=request.app_name,
        digest=request.digest,
        size_bytes=request.size_bytes,
        part_size_bytes=int(started.get("part_size_bytes") or part_size),
    )
    store.save(record)
    return record, {}


def _stored_parts(api: ApiClient, record: UploadRecord) -> dict[int, tuple[str, int]] | None:
    """number → (etag, size) the server holds, or None when the upload is gone."""
    try:
        listing = api.get(f"/artifacts/multipart/{record.upload_id}/parts", digest=record.digest)
    except RemoteError as exc:
        if exc.http_status in (400, 404, 409, 410):
            return None
        raise
    return {
        int(part["part_number"]): (str(part["etag"]), int(part["size"]))
        for part in listing.get("parts", [])
    }


def _upload_parts(
    api: ApiClient,
    request: UploadRequest,
    record: UploadRecord,
    todo: list[PartPlan],
    counter: ByteCounter,
    concurrency: int,
) -> dict[int, str]:
    if not todo:
        return {}
    sessions = ThreadSessions()
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="aether-part")
    try:
        futures = {
            pool.submit(_upload_part, api, sessions, request, record, part, counter): part
            for part in todo
        }
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        failed = [future for future in done if future.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        return {futures[future].number: future.result() for future in done}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        sessions.close()


def _upload_part(
    api: ApiClient,
    sessions: ThreadSessions,
    request: UploadRequest,
    record: UploadRecord,
    part: PartPlan,
    counter: ByteCounter,
) -> str:
    """Presign and PUT one part, retrying transient failures; returns its ETag."""
    for attempt in range(1, PART_ATTEMPTS + 1):
        presigned = api.post(
            "/artifacts/multipart/presign-part",
            {"digest": request.digest, "upload_id": record.upload_id, "part_number": part.number},
        )
        with SliceReader(request.artifact, part.offset, part.length, counter) as body:
            try:
                response = put_presigned(
                    presigned["url"], body, presigned.get("headers") or {}, session=sessions.get()
                )
            except AetherError as exc:
                counter.add(-body.sent)  # those bytes will be sent again
                if attempt == PART_ATTEMPTS or not _is_transient(exc):
                    raise
                time.sleep(BACKOFF_BASE_SECS * 2 ** (attempt - 1))
                continue
        etag = response.headers.get("ETag")
        if not etag:
            raise RemoteError(
                f"part {part.number} was stored without an ETag", code="bad_response", status=200
            )
        return etag.strip()
    raise AssertionError("unreachable")  # the loop returns or raises


def _is_transient(exc: AetherError) -> bool:
    if isinstance(exc, NetworkError):
        return True
    return isinstance(exc, RemoteError) and exc.http_status in _TRANSIENT_STATUSES


def _complete(
    api: ApiClient,
    store: ResumeStore,
    request: UploadRequest,
    record: UploadRecord,
    parts: list[dict[str, object]],
) -> dict[str, object]:
    try:
        artifact = api.post(
            "/artifacts/multipart/complete",
            complete_body(request, upload_id=record.upload_id, parts=parts),
        )
    except RemoteError as exc:
        if 400 <= exc.http_status < 500 and exc.http_status not in _TRANSIENT_STATUSES:
            # The server refused these parts for good: start from scratch next time.
            store.forget(request.digest)
        raise
    store.forget(request.digest)
    return artifact
