"""Shared fixtures: a throwaway PostgreSQL database per test session and a migrated database
for each metadata backend.

PostgreSQL comes from ``AETHER_TEST_DATABASE_URL`` (default: the local server as user
postgres). When it is unreachable its tests are skipped with the reason, unless
``AETHER_TEST_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where they fail.

Apps outlive their worker by design: ``plugins.app_leaks`` kills whatever a test left running
under this session's temporary folders and fails that test, naming the processes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aether.store import open_database
from aether.store.database import Database
from aether.store.migrate import migrate

# Shared fixtures that need their own module: a live `aether serve`, moto S3, a Kubernetes API;
# and the guard that fails a test leaving apps (or servers) running in its temporary folders.
pytest_plugins = [
    "plugins.live_server",
    "plugins.s3_server",
    "plugins.kube_api",
    "plugins.app_leaks",
    "pytester",  # runs the leak guard on a test session of its own
    "plugins.node_projects",
    "plugins.alone",  # @pytest.mark.alone: no other test runs meanwhile (xdist)
    "plugins.release_build",  # the single files for tests/onefile, once per run
    "plugins.report_text",  # reports an xdist worker can send whatever the test printed
    "plugins.slow_first",  # the longest modules first: a parallel run's tail is short
]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    return os.environ.get("AETHER_TEST_DATABASE_URL", DEFAULT_PG)


def _with_dbname(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this test session, dropped at the end."""
    import psycopg

    admin = _admin_url()
    name = f"aether_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {admin}: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("AETHER_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (AETHER_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    try:
        yield _with_dbname(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database for one test (schema tests, isolation-sensitive tests)."""
    import psycopg

    admin = _admin_url()
    name = f"aether_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty database of the parametrised backend (one per test)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'aether.db'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, open database of the parametrised backend."""
    db = open_database(database_url, tmp_path)
    await db.open()
    await migrate(db)
    try:
        yield db
    finally:
        await db.close()
