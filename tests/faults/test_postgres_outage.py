"""PostgreSQL backends terminated (``pg_terminate_backend``) while clients keep calling the API.

Every answer must be a success or a clean 503 ``service_unavailable`` with ``Retry-After`` —
never a 500, a trace or a request left hanging — and the server must recover by itself: plain
requests within seconds of the last fault, and the LISTEN connections (the worker's wake-ups,
the read cache's change feed) re-established, after which a deployment still rolls out.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import requests
from faults_support import (
    LEDGER,
    Api,
    Stack,
    app_members,
    scratch_database,
    wait_for,
    write_artifact,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FAULTS = 5
FAULT_INTERVAL_SECS = 0.6
CLIENTS = 4
REQUEST_TIMEOUT_SECS = 10.0


def _terminate(admin: psycopg.Connection, database: str) -> set[int]:
    rows = admin.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    ).fetchall()
    return {pid for pid, _ in rows}


def _listeners(admin: psycopg.Connection, database: str) -> set[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'LISTEN%%'",
        (database,),
    ).fetchall()
    return {pid for (pid,) in rows}


class Load:
    """Clients calling reads and writes in a loop; every answer is classified."""

    def __init__(self, api: Api, digest: str) -> None:
        self.api, self.digest = api, digest
        self.outcomes: Counter[str] = Counter()
        self.bad: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def _one(self, worker: int, n: int) -> None:
        calls = [
            ("GET", "/apps", {}),
            ("GET", "/apps/outage/deployments", {}),
            ("HEAD", f"/artifacts/{self.digest}", {}),
            ("POST", "/apps", {"json": {"name": f"load-{worker}-{n}"}}),
            ("GET", "/whoami", {}),
        ]
        method, path, kwargs = calls[n % len(calls)]
        try:
            response = self.api.call(method, path, timeout=REQUEST_TIMEOUT_SECS, **kwargs)
        except requests.RequestException as exc:  # a hang or a dropped connection
            self._note("no answer", f"{method} {path}: {type(exc).__name__}: {exc}")
            return
        if response.status_code < 300:
            self._note("ok")
        elif response.status_code == 503 and self._clean_503(response):
            self._note("503")
        else:
            self._note("bad", f"{method} {path}: {response.status_code} {response.text[:300]}")

    @staticmethod
    def _clean_503(response: requests.Response) -> bool:
        if not response.headers.get("Retry-After", "").isdigit():
            return False
        if response.request.method == "HEAD":
            return True
        body = response.json()
        return body.get("code") == "service_unavailable" and "Traceback" not in response.text

    def _note(self, outcome: str, detail: str | None = None) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            if detail:
                self.bad.append(detail)

    def run(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            self._one(worker, n)
            n += 1


def test_terminated_backends_give_clean_503s_and_the_server_recovers(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    with scratch_database() as url:
        database = url.rpartition("/")[2]
        stack = Stack("postgres", tmp_path_factory.mktemp("outage"), {}, url, ())
        server = stack.start()
        try:
            api = Api(server)
            digest = api.upload("outage", write_artifact(tmp_path / "a.tar.zst", app_members("1")))
            with psycopg.connect(url.rpartition("/")[0] + "/postgres", autocommit=True) as admin:
                wait_for(lambda: len(_listeners(admin, database)) >= 2, what="two LISTENers")
                listening_before = _listeners(admin, database)
                load = Load(api, digest)
                threads = [threading.Thread(target=load.run, args=(i,)) for i in range(CLIENTS)]
                for thread in threads:
                    thread.start()
                terminated: set[int] = set()
                try:
                    wait_for(lambda: load.outcomes["ok"] > 20, what="load running")
                    for _ in range(FAULTS):
                        terminated |= _terminate(admin, database)
                        time.sleep(FAULT_INTERVAL_SECS)  # the fault's rhythm, not a wait
                    last_fault = time.monotonic()
                    recovered = _recovery_secs(api, last_fault)
                finally:
                    load.stop.set()
                    for thread in threads:
                        thread.join(timeout=30)
                relisten = wait_for(
                    lambda: len(_listeners(admin, database) - listening_before) >= 2,
                    timeout=30,
                    what="both LISTEN connections re-established",
                )
                relisten_secs = time.monotonic() - last_fault
            assert load.bad == [], "\n".join(load.bad[:20])
            assert load.outcomes["503"] > 0, "no fault reached a request: the test proved nothing"
            assert listening_before <= terminated and relisten
            deployed = api.deploy("outage", digest)
            row = wait_for(lambda: api.settled(deployed["id"]), timeout=60, what="rollout")
            assert row["status"] == "running", row
            assert "Traceback" not in server.log_text()
        finally:
            stack.stop()
    LEDGER.record(
        "postgres_terminate",
        requests=sum(load.outcomes.values()),
        ok=load.outcomes["ok"],
        clean_503=load.outcomes["503"],
        server_errors=0,
        faults=FAULTS,
        backends_terminated=len(terminated),
        recovery_secs=round(recovered, 2),
        listen_recovery_secs=round(relisten_secs, 2),
    )


def _recovery_secs(api: Api, since: float) -> float:
    """Seconds from ``since`` until five requests in a row succeed."""
    streak = 0

    def healthy() -> bool:
        nonlocal streak
        ok = api.call("GET", "/apps", timeout=REQUEST_TIMEOUT_SECS).status_code == 200
        streak = streak + 1 if ok else 0
        return streak >= 5

    wait_for(healthy, timeout=20, what="requests succeeding again")
    return time.monotonic() - since
