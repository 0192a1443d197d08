"""The multipart upload against a real `aether serve` with a tiny threshold: parallel parts,
an interrupted upload, and the re-run that sends only the missing parts.

``deploy()`` is called in-process (no click) so a progress callback can interrupt the upload
at an exact byte, the way Ctrl-C or a dropped laptop lid would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from client_live_support import PART, make_big_project, settings_for

from aether.client.deploy import DeployOptions, deploy
from aether.client.resume import ResumeStore
from aether.settings import ClientSettings


class Interrupted(Exception):
    """Stands in for Ctrl-C in the middle of an upload."""


@pytest.fixture
def server(live_server, backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A server with a tiny multipart threshold, on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else None
    return live_server(
        args=["--no-worker"],
        database_url=url,
        env={
            "AETHER_MULTIPART_THRESHOLD_BYTES": str(PART),
            "AETHER_MULTIPART_PART_SIZE_BYTES": str(PART),
        },
    )


def _settings(server) -> ClientSettings:  # type: ignore[no-untyped-def]
    return settings_for(server.url, server.admin_token)


def test_interrupted_multipart_upload_resumes_with_only_the_missing_parts(
    server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    project = make_big_project(tmp_path / "app")
    resume_root = tmp_path / "uploads"
    options = DeployOptions(wait=False, layered=False, concurrency=1, resume_root=resume_root)

    def interrupt_in_third_part(phase: str, done: int, total: int | None) -> None:
        if phase == "upload" and done > 2 * PART:
            raise Interrupted

    with pytest.raises(Interrupted):
        deploy(
            _settings(server),
            project,
            options,
            environ=server.env,
            on_progress=interrupt_in_third_part,
        )
    records = list(resume_root.glob("*.json"))
    assert len(records) == 1, "the upload id must be remembered for the re-run"

    result = deploy(_settings(server), project, options, environ=server.env)
    parts_total = -(-result["size_bytes"] // PART)
    assert result["multipart"] is True and result["resumed_upload"] is True
    assert result["parts_total"] == parts_total and parts_total >= 6
    assert result["parts_uploaded"] == parts_total - 2
    assert result["uploaded_bytes"] == result["size_bytes"] - 2 * PART
    assert result["status"] == "pending" and result["deployment_id"]
    assert ResumeStore(resume_root).load(result["digest"]) is None


def test_parallel_parts_upload_everything_once(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = make_big_project(tmp_path / "app")
    seen: list[int] = []
    options = DeployOptions(
        wait=False, layered=False, concurrency=4, resume_root=tmp_path / "uploads"
    )
    result = deploy(
        _settings(server),
        project,
        options,
        environ=server.env,
        on_progress=lambda phase, done, total: seen.append(done) if phase == "upload" else None,
    )
    assert result["multipart"] is True and result["resumed_upload"] is False
    assert result["uploaded_bytes"] == result["size_bytes"]
    assert max(seen) == result["size_bytes"]
    # a record left by a run that died right after completing is cleaned up, not resumed
    stale = tmp_path / "uploads" / f"{result['digest']}.json"
    stale.write_text("{}")
    again = deploy(_settings(server), project, options, environ=server.env)
    assert again["skipped_upload"] is True and again["uploaded_bytes"] == 0
    assert not stale.exists()
