"""50 deployments of one app, each with another artifact, created at the same moment.

Exactly one ends current (``running``); every other ends ``superseded`` or ``failed`` with a
reason; none stays ``pending`` or ``deploying``; no request answers 5xx.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faults_support import LEDGER, Api, app_members, wait_for, write_artifact

# The pool's 5 s wait is part of what is tested: other tests beside it would measure the
# machine instead.
pytestmark = [pytest.mark.slow, pytest.mark.alone]

DEPLOYS = 50


def test_fifty_concurrent_deploys_of_one_app_settle_on_one(
    make_stack, tmp_path: Path, stack_kind: str
) -> None:
    stack = make_stack()
    api = Api(stack.server, timeout=60)
    artifacts = [
        write_artifact(tmp_path / f"v{i}.tar.zst", app_members(f"1.0.{i}")) for i in range(DEPLOYS)
    ]
    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(lambda a: api.upload("crowd", a), artifacts))
    assert len(set(digests)) == DEPLOYS

    start = threading.Barrier(DEPLOYS)

    def deploy(digest: str):
        start.wait(30)
        body = {"app_name": "crowd", "artifact_digest": digest}
        return api.call("POST", "/deployments", json=body)

    started = time.monotonic()
    with ThreadPoolExecutor(DEPLOYS) as pool:
        answers = list(pool.map(deploy, digests))
    statuses = sorted({answer.status_code for answer in answers})
    assert all(answer.status_code < 300 for answer in answers), [
        (a.status_code, a.text[:200]) for a in answers if a.status_code >= 300
    ]
    ids = {answer.json()["id"] for answer in answers}
    assert len(ids) == DEPLOYS

    def settled():
        rows = api.json("GET", "/apps/crowd/deployments", params={"limit": 100})["deployments"]
        mine = [row for row in rows if row["id"] in ids]
        done = all(row["status"] in ("running", "superseded", "failed") for row in mine)
        return mine if done and len(mine) == DEPLOYS else None

    rows = wait_for(settled, timeout=120, what="every deployment settled")
    settle_secs = time.monotonic() - started
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        if row["status"] == "failed":
            assert row["failure_reason"], row
    assert by_status.get("running") == 1, by_status
    current = next(row for row in rows if row["status"] == "running")
    assert api.call("GET", "/readyz").status_code == 200
    LEDGER.record(
        "concurrent_deploys",
        stack=stack_kind,
        deploys=DEPLOYS,
        create_statuses=statuses,
        outcomes=by_status,
        current=current["artifact_digest"][:12],
        settle_secs=round(settle_secs, 2),
    )
