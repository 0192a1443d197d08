"""Fixtures of the fault suite: a stack per metadata backend (SQLite + local store, PostgreSQL +
S3 on moto), each a real ``aether serve`` process the test may kill and restart."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults_support import LEDGER, Stack, scratch_database, stack_env


@pytest.fixture(params=["sqlite", pytest.param("postgres-s3", marks=pytest.mark.postgres)])
def stack_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_stack(
    stack_kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Stack]]:
    """``make_stack(env=…, args=…, root=…)``: a started stack of the parametrised kind (its
    data dir is ``root/data``)."""
    stacks: list[Stack] = []
    with contextlib.ExitStack() as cleanup:

        def make(
            env: dict[str, str] | None = None, args: tuple[str, ...] = (), root: Path | None = None
        ) -> Stack:
            endpoint = request.getfixturevalue("s3_endpoint") if stack_kind != "sqlite" else None
            url = cleanup.enter_context(scratch_database()) if stack_kind != "sqlite" else None
            stack = Stack(
                kind=stack_kind,
                root=root or tmp_path_factory.mktemp(f"stack-{stack_kind}"),
                env={**stack_env(stack_kind, endpoint), **(env or {})},
                database_url=url,
                args=args,
            )
            stacks.append(stack)
            stack.start()
            return stack

        yield make
        for stack in stacks:
            stack.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    LEDGER.write(os.environ)
