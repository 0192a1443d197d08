"""Multipart part planning and the resume bookkeeping (pure, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aether.client.resume import (
    MAX_PARTS,
    PartPlan,
    ResumeStore,
    UploadRecord,
    missing_parts,
    plan_parts,
)
from aether.errors import UsageError


def test_plan_covers_every_byte_once_with_a_short_last_part() -> None:
    plan = plan_parts(25, 10)
    assert plan == [PartPlan(1, 0, 10), PartPlan(2, 10, 10), PartPlan(3, 20, 5)]
    assert sum(part.length for part in plan) == 25


def test_plan_of_an_exact_multiple_has_no_empty_tail() -> None:
    plan = plan_parts(30, 10)
    assert [part.length for part in plan] == [10, 10, 10]


def test_plan_of_an_empty_artifact_is_one_empty_part() -> None:
    assert plan_parts(0, 10) == [PartPlan(1, 0, 0)]


def test_plan_refuses_more_parts_than_storage_allows() -> None:
    with pytest.raises(UsageError, match="AETHER_MULTIPART_PART_SIZE_BYTES"):
        plan_parts(MAX_PARTS + 1, 1)


def test_plan_refuses_a_zero_part_size() -> None:
    with pytest.raises(UsageError):
        plan_parts(10, 0)


def test_missing_parts_skips_stored_parts_of_the_right_size_only() -> None:
    plan = plan_parts(25, 10)
    # part 1 stored fully, part 2 stored truncated (must be sent again), part 3 absent
    todo = missing_parts(plan, {1: 10, 2: 7})
    assert [part.number for part in todo] == [2, 3]


def _record(**overrides: object) -> UploadRecord:
    fields = {
        "upload_id": "u-1",
        "api_base": "http://127.0.0.1:1",
        "app_name": "web",
        "digest": "a" * 64,
        "size_bytes": 100,
        "part_size_bytes": 10,
    }
    fields.update(overrides)
    return UploadRecord(**fields)  # type: ignore[arg-type]


def test_resume_store_round_trip_and_forget(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path / "uploads")
    record = _record()
    assert store.load(record.digest) is None
    store.save(record)
    assert store.load(record.digest) == record
    store.forget(record.digest)
    assert store.load(record.digest) is None
    store.forget(record.digest)  # forgetting twice is fine


def test_a_corrupt_record_is_not_resumed(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path)
    store.path("b" * 64).write_text("{not json", encoding="utf-8")
    assert store.load("b" * 64) is None


def test_record_matches_only_the_same_server_app_and_size() -> None:
    record = _record()
    same = {"api_base": "http://127.0.0.1:1", "app_name": "web", "size_bytes": 100}
    assert record.matches(**same)
    assert not record.matches(**{**same, "api_base": "http://other:1"})
    assert not record.matches(**{**same, "app_name": "api"})
    assert not record.matches(**{**same, "size_bytes": 101})


def test_store_lives_under_the_cache_dir(tmp_path: Path) -> None:
    store = ResumeStore.from_env({"XDG_CACHE_HOME": str(tmp_path)})
    assert store.path("c" * 64) == tmp_path / "aether" / "uploads" / f"{'c' * 64}.json"
