"""schemathesis against our own OpenAPI document, on a real ``aether serve`` per database, with
an admin token: every operation, the presigned ``/blobs/…`` routes included, must answer
without a server error (no 5xx but a clean 503, no trace).

Token rotation and revocation are left out: a run that rotated its own admin token would answer
401 to everything after it and prove nothing (tests/server/test_tokens_api.py covers them).
The example count is bounded (``AETHER_SCHEMA_EXAMPLES``, default 25 per operation) so the
run fits the suite's budget; raise it for a deeper search. The operations are dealt into
``SHARDS`` tests per database (each with a server of its own), which parallel workers share.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from faults_support import LEDGER, scratch_database
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from plugins.live_server import LiveServer, start_live_server

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("AETHER_SCHEMA_EXAMPLES", "25"))
SHARDS = 3


# Function scope: a module-scoped server would outlive its last test (a parametrised fixture is
# finished when the next parameter's test starts), past the check for leftover processes.
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def schema_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp(f"schema-{request.param}")
    if request.param == "sqlite":
        server = start_live_server(root, args=["--no-worker"])
        yield server
        server.stop()
        return
    with scratch_database() as url:
        server = start_live_server(root, database_url=url, args=["--no-worker"])
        yield server
        server.stop()


def _schema(server: LiveServer):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return schema.exclude(path="/tokens/rotate").exclude(method="DELETE", path_regex="^/tokens/")


def _explore(
    operation, server: LiveServer, session: requests.Session, calls: dict[str, int]
) -> None:
    """``EXAMPLES`` generated requests to one operation; fails on the first server error."""
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        if isinstance(case.query, dict) and "follow" in case.query:
            case.query["follow"] = "false"  # a followed stream ends only with its deployment
        try:
            response = case.call(session=session, headers=headers, timeout=30)
        except requests.RequestException as exc:
            raise AssertionError(f"{label}: no answer ({type(exc).__name__}: {exc})") from None
        calls[label] = calls.get(label, 0) + 1
        # Said here, with the body: schemathesis's own check hides it behind hypothesis's
        # report when a failure does not repeat.
        assert response.status_code < 500, (
            f"{label} answered {response.status_code}: {response.text[:300]}"
            f" (request {case.method} {case.formatted_path} {case.query} {case.body!r:.200})"
        )
        case.validate_response(response, checks=[not_a_server_error])
        assert "Traceback" not in response.text

    run()


def _details(exc: BaseException) -> str:
    inner = list(getattr(exc, "exceptions", None) or [])
    inner += [e for e in (exc.__cause__, exc.__context__) if e is not None and e not in inner]
    if not inner:
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc} [" + "; ".join(_details(e) for e in inner) + "]"


@pytest.mark.timeout(max(300, EXAMPLES * 10))  # a third of the operations, EXAMPLES requests each
@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_operation_answers_a_server_error(schema_server: LiveServer, shard: int) -> None:
    # schemathesis's own pytest loader does not run on pytest 9 yet: the operations are
    # walked here instead, each with hypothesis and the operation's strategy.
    calls: dict[str, int] = {}
    failures = []
    with requests.Session() as session:
        operations = list(_schema(schema_server).get_all_operations())
        for result in operations[shard::SHARDS]:
            operation = result.ok()
            try:
                _explore(operation, schema_server, session, calls)
            except (Exception, BaseExceptionGroup) as exc:  # report every failing operation
                failures.append(f"{operation.method.upper()} {operation.path}: {_details(exc)}")
    assert calls, "no operation was exercised"
    assert not failures, "\n\n".join(failures)
    LEDGER.record(
        "schemathesis",
        shard=shard,
        database="postgres"
        if "postgres" in str(schema_server.server_env.get("DATABASE_URL"))
        else "sqlite",
        operations=len(calls),
        requests=sum(calls.values()),
        server_errors=0,
    )
