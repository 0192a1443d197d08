"""A new user's whole story with config, end to end: real ``aether serve`` (SQLite or
PostgreSQL), the real CLI as a deployer, a reader and an operator, real Node processes.

Set a database URL once, deploy three times without repeating it, change one var and see
the app restart with it, roll back and see the old value return, rotate the server key,
destroy the app — and a reader never sees a value."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from e2e_support import app_copy, cli, deploy, via_proxy, wait_for

# Three deploys, config changes, a rollback, a key rotation: each step has its own deadline;
# the 300 s only guards against a hang (a loaded machine took 74 s and more of the default 120).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

APP = "notes-api"
CONFIG_APP = Path(__file__).parent / "fixtures" / "config-app"
DB_ONE = "postgres://notes:first-horse-battery@db.internal:5432/notes"
DB_TWO = "postgres://notes:second-staple-cell@db.internal:5432/notes"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, live_server: Any) -> dict[str, Any]:
    alice, rita = f"ae_alice_{secrets.token_hex(12)}", f"ae_rita_{secrets.token_hex(12)}"
    database_url = (
        request.getfixturevalue("fresh_postgres_url") if request.param == "postgres" else None
    )
    server = live_server(
        env={
            "AETHER_API_TOKENS": f"{alice}:deployer:alice,{rita}:reader:rita",
            "AETHER_ROLLOUT_TIMEOUT_SECS": "30",
        },
        database_url=database_url,
    )
    operator = {**server.server_env}  # where serve runs: its DATABASE_URL and key file
    return {
        "server": server,
        "alice": {**server.env, "AETHER_TOKEN": alice},
        "rita": {**server.env, "AETHER_TOKEN": rita},
        "operator": operator,
    }


def run(env: dict[str, str], *args: str) -> Any:
    done = cli(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def answers(server: Any) -> dict[str, Any]:
    status, body = via_proxy(server.port, APP)
    assert status == 200, body
    return json.loads(body)


def serves(server: Any, **wanted: Any) -> dict[str, Any]:
    """Wait until the app answers with ``wanted`` (a rollout's cutover) and return it."""
    seen: dict[str, Any] = {}

    def check() -> bool:
        status, body = via_proxy(server.port, APP)
        seen.update(json.loads(body) if status == 200 else {})
        return status == 200 and all(seen.get(k) == v for k, v in wanted.items())

    wait_for(check, timeout=30, what=f"the app answering {wanted}")
    return seen


def test_set_once_deploy_thrice_change_roll_back_rotate_destroy(world: dict, tmp_path: Path):
    server, alice = world["server"], world["alice"]
    run(alice, "apps", "create", APP)
    staged = run(alice, "config", "set", f"DATABASE_URL={DB_ONE}", "GREETING=hello", "--app", APP)
    assert "no release yet" in staged.stdout and DB_ONE not in staged.stdout + staged.stderr

    deployments = []
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        code, result = deploy(alice, app_copy(tmp_path, APP, version, source=CONFIG_APP))
        assert code == 0 and result["status"] == "running", result
        assert result["config_version"] == 1 and not result["unchanged"]
        assert answers(server) == {
            "version": version,
            "deployment_id": result["deployment_id"],
            "database_url": DB_ONE,
            "greeting": "hello",
        }
        deployments.append(result["deployment_id"])

    same = cli(alice, "deploy", str(tmp_path / f"{APP}-1.2.0"))
    assert same.returncode == 0 and same.stdout.startswith("Unchanged: notes-api already runs")
    assert answers(server)["deployment_id"] == deployments[-1]  # nothing restarted

    changed = json.loads(
        run(
            alice, "config", "set", f"DATABASE_URL={DB_TWO}", "--app", APP, "--format", "json"
        ).stdout
    )
    assert changed["changed"] == ["DATABASE_URL"] and changed["release"]["version"] == 4
    assert changed["deployment"]["status"] == "running"
    restarted = serves(server, database_url=DB_TWO)
    assert restarted["deployment_id"] == changed["deployment"]["id"] != deployments[-1]
    assert restarted["greeting"] == "hello" and restarted["version"] == "1.2.0"

    back = json.loads(run(alice, "rollback", "--app", APP, "--format", "json").stdout)
    assert back["release"] == 5 and back["status"] == "running"
    assert serves(server, database_url=DB_ONE)["version"] == "1.2.0"

    releases = json.loads(run(alice, "releases", APP, "--format", "json").stdout)["releases"]
    assert [(r["version"], r["kind"]) for r in releases] == [
        (5, "rollback"),
        (4, "config"),
        (3, "deploy"),
        (2, "deploy"),
        (1, "deploy"),
    ]
    assert releases[0]["description"] == "Rollback to v3" and releases[0]["created_by"] == "alice"

    key_file = server.data_dir / "secrets.keys"
    old_key = key_file.read_text()
    rotated = run(world["operator"], "admin", "rotate-key", "--data-dir", str(server.data_dir))
    assert "re-sealed" in rotated.stdout and key_file.read_text() != old_key
    revealed = json.loads(run(alice, "config", "--app", APP, "--reveal", "--format", "json").stdout)
    assert {v["name"]: v["value"] for v in revealed["vars"]} == {
        "DATABASE_URL": DB_ONE,
        "GREETING": "hello",
    }
    run(alice, "config", "set", "GREETING=hi", "--app", APP)  # sealed under the new key
    assert serves(server, greeting="hi")["database_url"] == DB_ONE

    _a_reader_sees_no_value(world)

    refused = cli(alice, "apps", "destroy", APP)
    assert refused.returncode == 2 and "--confirm notes-api" in refused.stderr
    assert answers(server)["greeting"] == "hi"
    run(alice, "apps", "destroy", APP, "--confirm", APP)
    wait_for(lambda: via_proxy(server.port, APP)[0] == 404, timeout=30, what="the app gone")
    wait_for(lambda: not (server.data_dir / "apps" / APP).exists(), what="its folder and logs")
    gone = cli(alice, "apps", "info", APP)
    assert gone.returncode != 0 and "does not exist" in gone.stderr


def _a_reader_sees_no_value(world: dict) -> None:
    server, rita = world["server"], world["rita"]
    views = [
        ("config", "--app", APP),
        ("config", "list", "--app", APP, "--format", "json"),
        ("list",),
        ("list", "--app", APP, "--format", "json"),
        ("releases", APP, "--format", "json"),
        ("apps", "info", APP, "--format", "json"),
        ("logs", "--app", APP),
    ]
    for args in views:
        done = run(rita, *args)
        for value in (DB_ONE, DB_TWO):
            assert value not in done.stdout + done.stderr, args
    listed = json.loads(run(rita, "config", "--app", APP, "--format", "json").stdout)
    assert [v["name"] for v in listed["vars"]] == ["DATABASE_URL", "GREETING"]
    assert all("value" not in v and len(v["fingerprint"]) == 8 for v in listed["vars"])
    reveal = cli(rita, "config", "--app", APP, "--reveal")
    assert reveal.returncode == 20 and "may not do this" in reveal.stderr  # a 403
    assert DB_ONE not in reveal.stdout + reveal.stderr
    log = server.log_text()
    assert DB_ONE not in log and DB_TWO not in log
    if "DATABASE_URL" not in server.server_env:  # SQLite: the database file itself
        raw = b"".join(p.read_bytes() for p in server.data_dir.glob("aether.db*"))
        assert DB_ONE.encode() not in raw and DB_TWO.encode() not in raw
