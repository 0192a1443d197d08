"""Config vars and releases through the API: set once, every later release takes them; a
change rolls out a release of the same code; idempotency on the whole tuple; rollback
brings code and config back; scale; limits; who sees what."""

from __future__ import annotations

import json
import os
import stat

import pytest
from seeding import insert_artifact

from aether.store import rollouts

DB_URL = "postgres://notes:correct-horse-battery@db.internal:5432/notes"


@pytest.fixture
def shop(api):
    """'shop', owned by the deployer, with two stored artifacts."""
    app = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    return app, api.run(insert_artifact, app["id"]), api.run(insert_artifact, app["id"])


def deploy(api, digest, **extra):
    return api.post(
        "/deployments",
        json={"app_name": "shop", "artifact_digest": digest, **extra},
        as_="deployer",
    )


def configure(api, as_="deployer", **body):
    return api.request("PATCH", "/apps/shop/config", json=body, as_=as_)


def run(api, deployment_id):
    """What the worker does once the release is healthy."""
    api.run(rollouts.mark_deploying, deployment_id)
    api.run(rollouts.mark_running, deployment_id, "http://127.0.0.1:1")


def test_config_set_once_reaches_every_later_release(api, shop):
    _, first, second = shop
    staged = configure(api, set={"DATABASE_URL": DB_URL})
    assert staged.status_code == 200
    body = staged.json()
    assert body["changed"] == ["DATABASE_URL"] and body["release"] is None  # nothing to restart
    assert body["config"]["version"] == 1 and body["config"]["release_config_version"] is None
    releases = []
    for digest in (first["digest"], second["digest"], first["digest"]):
        made = deploy(api, digest)
        assert made.status_code == 201
        releases.append(made.json())
        run(api, made.json()["id"])
    assert [r["release"] for r in releases] == [1, 2, 3]
    assert all(r["config_version"] == 1 and list(r["env"]) == ["DATABASE_URL"] for r in releases)
    listed = api.get("/apps/shop/releases", as_="reader").json()["releases"]
    assert [r["version"] for r in listed] == [3, 2, 1]
    assert listed[0]["kind"] == "deploy" and listed[0]["description"].startswith("Deploy ")
    assert listed[0]["created_by"] == "deployer" and listed[0]["status"] == "running"


def test_the_same_tuple_is_unchanged_and_any_difference_is_a_new_release(api, shop):
    _, first, _ = shop
    made = deploy(api, first["digest"], env={"ONE_OFF": "x"})
    run(api, made.json()["id"])
    same = deploy(api, first["digest"], env={"ONE_OFF": "x"})
    assert same.status_code == 200 and same.json()["unchanged"] is True
    assert same.json()["id"] == made.json()["id"] and same.json()["release"] == 1
    variants = [
        {"env": {"ONE_OFF": "y"}},  # another value
        {"env": {"ONE_OFF": "y"}, "start_command": "node other.js"},
        {"env": {"ONE_OFF": "y"}, "start_command": "node other.js", "health_path": "/up"},
        {"env": {"ONE_OFF": "y"}, "start_command": "node other.js", "node_version": "22"},
    ]
    for number, extra in enumerate(variants, start=2):
        changed = deploy(api, first["digest"], **extra)
        assert changed.status_code == 201 and changed.json()["release"] == number, extra
    dropped = deploy(api, first["digest"]).json()
    assert dropped["release"] == 6 and dropped["dropped_overrides"] == ["ONE_OFF"]
    configure(api, set={"A": "1"}, restart=False)
    assert deploy(api, first["digest"]).json()["release"] == 7  # the staged config counts


def test_a_config_change_rolls_out_the_same_code_and_setting_it_again_changes_nothing(api, shop):
    _, first, _ = shop
    running = deploy(api, first["digest"], replicas=2, start_command="node server.js").json()
    run(api, running["id"])
    changed = configure(api, set={"GREETING": "hello", "DATABASE_URL": DB_URL}).json()
    release, deployment = changed["release"], changed["deployment"]
    assert release["version"] == 2 and release["kind"] == "config"
    assert release["description"] == "Set GREETING, DATABASE_URL"
    assert release["artifact_digest"] == first["digest"] and release["replicas"] == 2
    assert release["start_command"] == "node server.js" and release["config_version"] == 1
    assert deployment["status"] == "pending" and deployment["release"] == 2
    again = configure(api, set={"GREETING": "hello"}).json()
    assert again["changed"] == [] and again["release"] is None and again["config"]["version"] == 1
    gone = configure(api, unset=["GREETING", "NEVER_SET"]).json()
    assert gone["changed"] == ["GREETING"] and gone["not_set"] == ["NEVER_SET"]
    assert gone["release"]["description"] == "Unset GREETING"
    assert [v["name"] for v in gone["config"]["vars"]] == ["DATABASE_URL"]


def test_no_restart_stages_the_change_for_the_next_deploy(api, shop):
    _, first, second = shop
    run(api, deploy(api, first["digest"]).json()["id"])
    staged = configure(api, set={"FEATURE": "on"}, restart=False).json()
    assert staged["release"] is None and staged["config"]["version"] == 1
    assert staged["config"]["release_config_version"] == 0
    shown = api.get("/apps/shop/config", as_="reader").json()
    assert shown["version"] == 1 and shown["release_config_version"] == 0
    assert deploy(api, second["digest"]).json()["config_version"] == 1


def test_rollback_brings_back_the_code_and_the_config_of_its_target(api, shop):
    _, first, second = shop
    configure(api, set={"DATABASE_URL": "postgres://old"})
    v1 = deploy(api, first["digest"]).json()
    run(api, v1["id"])
    v2 = configure(api, set={"DATABASE_URL": DB_URL}).json()["deployment"]
    run(api, v2["id"])
    v3 = deploy(api, second["digest"]).json()
    run(api, v3["id"])
    api.post("/apps/shop/scale", json={"replicas": 3}, as_="deployer")  # v4
    back = api.post("/apps/shop/rollback", json={"to": "v1"}, as_="deployer")
    assert back.status_code == 201
    body = back.json()
    assert body["release"] == 5 and body["artifact_digest"] == first["digest"]
    assert body["config_version"] == 1 and body["env"] == v1["env"]
    assert body["replicas"] == 3  # the current scale stays
    release = api.get("/apps/shop/releases/v5").json()
    assert release["kind"] == "rollback" and release["rolled_back_to"] == 1
    assert release["description"] == "Rollback to v1"
    revealed = api.get("/apps/shop/config?reveal=true", as_="deployer").json()
    assert revealed["version"] == 1 and revealed["vars"][0]["value"] == "postgres://old"
    # Later deploys take the restored config.
    assert deploy(api, second["digest"]).json()["config_version"] == 1


def test_scale_is_a_release_and_a_deploy_keeps_it(api, shop):
    _, first, second = shop
    assert api.post("/apps/shop/scale", json={"replicas": 2}, as_="deployer").status_code == 409
    run(api, deploy(api, first["digest"]).json()["id"])
    scaled = api.post("/apps/shop/scale", json={"replicas": 3}, as_="deployer")
    assert scaled.status_code == 201
    assert scaled.json()["release"]["description"] == "Scale to 3 replicas"
    assert scaled.json()["deployment"]["replicas"] == 3
    same = api.post("/apps/shop/scale", json={"replicas": 3}, as_="deployer")
    assert same.status_code == 200 and same.json()["unchanged"] is True
    assert deploy(api, second["digest"]).json()["replicas"] == 3
    for bad in (-1, 101, "3", True, 2.5):
        refused = api.post("/apps/shop/scale", json={"replicas": bad}, as_="deployer")
        assert refused.status_code == 400, bad
        assert refused.json()["code"] == "bad_request"
    stopped = api.post("/apps/shop/scale", json={"replicas": 0}, as_="deployer")
    assert stopped.status_code == 201
    assert stopped.json()["release"]["description"] == "Scale to 0 replicas (stopped)"
    assert stopped.json()["deployment"]["replicas"] == 0
    refused = api.post(
        "/deployments",
        json={"app_name": "shop", "artifact_digest": first["digest"], "replicas": 0},
        as_="deployer",
    )
    assert refused.status_code == 400  # a deploy runs at least one; `scale 0` stops an app


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"set": {"lower-case-dash": "v"}}, "invalid config var name"),
        ({"set": {"1ABC": "v"}}, "invalid config var name"),
        ({"set": {"PORT": "80"}}, "set by Aether"),
        ({"set": {"AETHER_TOKEN": "x"}}, "set by Aether"),
        ({"set": {"A" * 300: "v"}}, "longer than"),
        ({"set": {"BIG": "x" * 40_000}}, "at most 32768"),
        ({"set": {"NUL": "a\u0000b"}}, "NUL"),
        ({"set": {"ODD": 5}}, "must be a string"),
        ({"set": {"A": "1"}, "unset": ["A"]}, "both set and unset"),
        ({}, "nothing to change"),
        ({"set": {"A": "1"}, "extra": 1}, "unknown field"),
    ],
)
def test_invalid_changes_are_clear_400s_that_never_echo_values(api, shop, change, fragment):
    response = configure(api, **change)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert fragment in message
    assert "x" * 50 not in message and "a\u0000b" not in message


def test_a_lone_surrogate_is_refused(api, shop):
    raw = b'{"set": {"BAD": "\\ud800"}}'
    response = api.request(
        "PATCH", "/apps/shop/config", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "lone surrogate" in response.json()["message"]
    name = api.request(
        "PATCH",
        "/apps/shop/config",
        content=b'{"set": {"\\ud800": "v"}}',
        headers={"content-type": "application/json"},
    )
    assert name.status_code == 400 and "invalid config var name" in name.json()["message"]


def test_count_and_total_size_are_bounded(api, shop):
    too_many = {f"V{i}": "x" for i in range(501)}
    assert "at most 500" in configure(api, set=too_many).json()["message"]
    big = {f"V{i}": "x" * 30_000 for i in range(9)}  # 270 kB
    assert "at most 262144" in configure(api, set=big).json()["message"]
    for i in range(8):  # one change at a time: the total still counts
        assert configure(api, set={f"V{i}": "x" * 30_000}).status_code == 200
    assert configure(api, set={"V8": "x" * 30_000}).status_code == 400


def test_reveal_needs_a_role_that_may_deploy_the_app(api, shop):
    configure(api, set={"DATABASE_URL": DB_URL})
    for role in ("reader", "other"):
        assert api.get("/apps/shop/config?reveal=true", as_=role).status_code == 403
        listed = api.get("/apps/shop/config", as_=role).json()
        assert listed["vars"][0]["name"] == "DATABASE_URL" and "value" not in listed["vars"][0]
    for role in ("deployer", "admin"):
        shown = api.get("/apps/shop/config?reveal=true", as_=role).json()
        assert shown["vars"][0]["value"] == DB_URL
    assert configure(api, as_="other", set={"X": "1"}).status_code == 403
    assert configure(api, as_="reader", set={"X": "1"}).status_code == 403


def test_a_reader_never_sees_a_value_anywhere(api, shop, caplog):
    _, first, _ = shop
    one_off = "one-off-value-that-is-secret"
    configure(api, set={"DATABASE_URL": DB_URL})
    made = deploy(api, first["digest"], env={"TOKEN": one_off}).json()
    run(api, made["id"])
    failed = configure(api, set={"DATABASE_URL": DB_URL + "2"}).json()["deployment"]
    api.run(rollouts.mark_failed, failed["id"], "boom")
    api.post("/apps/shop/rollback", json={}, as_="deployer")
    paths = [
        "/apps",
        "/apps/shop",
        "/apps/shop/deployments",
        "/apps/shop/releases",
        "/apps/shop/releases/v1",
        "/apps/shop/config",
        f"/deployments/{made['id']}",
        f"/deployments/{made['id']}/events",
        f"/deployments/{failed['id']}/events",
        "/openapi.json",
        "/metrics",
    ]
    for path in paths:
        response = api.get(path, as_="reader")
        assert response.status_code == 200, path
        for value in (DB_URL, one_off):
            assert value not in response.text, path
    assert api.get("/apps/shop/config?reveal=true", as_="reader").status_code == 403
    for value in (DB_URL, one_off):
        assert value not in caplog.text
    dump = api.run(_every_row)
    assert DB_URL not in dump and one_off not in dump


async def _every_row(db) -> str:
    tables = (
        "applications",
        "deployments",
        "deployment_events",
        "releases",
        "config_versions",
        "secrets_keys",
        "api_tokens",
    )
    rows = [await db.fetch_all(f"SELECT * FROM {table}") for table in tables]
    return json.dumps(rows, default=str)


def test_app_info_shows_the_release_and_config_names(api, shop):
    _, first, _ = shop
    configure(api, set={"B": "2", "A": "1"})
    run(api, deploy(api, first["digest"]).json()["id"])
    info = api.get("/apps/shop", as_="reader").json()
    assert info["config_version"] == 1 and info["config_vars"] == ["A", "B"]
    assert info["release"]["version"] == 1 and info["current"]["release"] == 1


def test_the_embedded_key_file_is_generated_private(api):
    path = api.state.settings.secrets.key_file
    assert path.exists() and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_server_without_the_key_the_database_seals_with_refuses_to_start(api, make_api):
    from aether.errors import ConfigError
    from aether.sealing import new_key

    assert api.get("/healthz").status_code == 200  # the first server registered its key
    with pytest.raises(ConfigError, match="sealed with secrets key"):
        make_api(env={"AETHER_SECRETS_KEY": new_key()})


def test_destroy_removes_releases_config_and_pull_tokens(api, shop):
    from aether.store import tokens as token_store

    _, first, _ = shop
    configure(api, set={"A": "1"})
    made = deploy(api, first["digest"]).json()
    api.run(token_store.create_pull_token, deployment_id=made["id"], ttl_secs=60)
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    counts = api.run(_counts)
    assert counts == {"releases": 0, "config_versions": 0, "deployments": 0, "pullers": 0}
    assert api.get("/apps/shop").status_code == 404


async def _counts(db) -> dict[str, int]:
    found = {}
    for table in ("releases", "config_versions", "deployments"):
        found[table] = int(await db.fetch_value(f"SELECT COUNT(*) AS n FROM {table}"))
    found["pullers"] = int(
        await db.fetch_value("SELECT COUNT(*) AS n FROM api_tokens WHERE role = 'puller'")
    )
    return found
