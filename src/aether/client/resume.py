"""Resume bookkeeping for multipart uploads, and the pure part plan.

An interrupted multipart upload leaves its ``upload_id`` in
``<cache dir>/uploads/<digest>.json`` together with what it was for (API URL, app, size, part
size). The next deploy of the same digest asks the server which parts it already holds and
uploads only the others. A record for another server, app or size is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from aether.errors import IOFailure, UsageError
from aether.userconfig import cache_dir

MAX_PARTS = 10_000  # the S3 limit, which the local store mirrors


@dataclass(frozen=True)
class PartPlan:
    """One part: its 1-based number and the byte range of the artifact it carries."""

    number: int
    offset: int
    length: int


def plan_parts(size: int, part_size: int) -> list[PartPlan]:
    """Split ``size`` bytes into parts of ``part_size`` (the last one shorter)."""
    if part_size <= 0:
        raise UsageError(f"part size must be positive, not {part_size}")
    if size <= 0:
        return [PartPlan(number=1, offset=0, length=0)]
    count = -(-size // part_size)
    if count > MAX_PARTS:
        raise UsageError(
            f"{size} bytes in parts of {part_size} would need {count} parts (limit {MAX_PARTS}); "
            "raise AETHER_MULTIPART_PART_SIZE_BYTES on the server"
        )
    return [
        PartPlan(
            number=index + 1,
            offset=index * part_size,
            length=min(part_size, size - index * part_size),
        )
        for index in range(count)
    ]


def missing_parts(plan: list[PartPlan], stored: Mapping[int, int]) -> list[PartPlan]:
    """The planned parts the server does not hold with the right size (``stored``: number → size)."""
    return [part for part in plan if stored.get(part.number) != part.length]


@dataclass(frozen=True)
class UploadRecord:
    """What an unfinished multipart upload was for."""

    upload_id: str
    api_base: str
    app_name: str
    digest: str
    size_bytes: int
    part_size_bytes: int

    def matches(self, *, api_base: str, app_name: str, size_bytes: int) -> bool:
        return (self.api_base, self.app_name, self.size_bytes) == (api_base, app_name, size_bytes)


class ResumeStore:
    """One JSON file per digest under the client's cache dir."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ResumeStore:
        return cls(cache_dir(environ) / "uploads")

    def path(self, digest: str) -> Path:
        return self.root / f"{digest}.json"

    def load(self, digest: str) -> UploadRecord | None:
        """The stored record, or None (a missing or unreadable record is simply not resumed)."""
        try:
            data = json.loads(self.path(digest).read_text(encoding="utf-8"))
            return UploadRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, record: UploadRecord) -> None:
        path = self.path(record.digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(record)) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise IOFailure(f"cannot write {path}: {exc.strerror}") from exc

    def forget(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
