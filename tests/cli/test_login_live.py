"""`aether login/whoami/logout` against a real `aether serve`."""

from __future__ import annotations

import json
import stat

import pytest
from client_support import aether, aether_json, without

from aether.userconfig import session_path


@pytest.fixture
def server(live_server):  # type: ignore[no-untyped-def]
    return live_server(args=["--no-worker"])


def test_login_verifies_and_saves_a_private_session(server) -> None:  # type: ignore[no-untyped-def]
    env = without(server.env, "AETHER_TOKEN", "AETHER_API_BASE")
    result = aether(env, "login", "--api", server.url, "--token", server.admin_token)
    assert result.returncode == 0, result.stderr
    assert "Logged in to" in result.stdout and server.admin_token not in result.stdout
    path = session_path(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert (saved["api_base"], saved["token"]) == (server.url, server.admin_token)
    who = aether_json(env, "whoami")
    assert who["role"] == "admin" and who["api_base"] == server.url


def test_login_takes_the_token_from_the_environment(server) -> None:  # type: ignore[no-untyped-def]
    env = without(server.env, "AETHER_API_BASE")
    data = aether_json(env, "login", "--api", server.url, "--username", "ignored")
    assert data["token_source"] == "AETHER_TOKEN" and data["user"] != "ignored"
    assert "token" not in data


def test_a_bad_token_is_not_saved_and_says_to_log_in(server) -> None:  # type: ignore[no-untyped-def]
    env = without(server.env, "AETHER_TOKEN", "AETHER_API_BASE")
    result = aether(env, "login", "--api", server.url, "--token", "ae_wrong")
    assert result.returncode == 10
    assert "aether login" in result.stderr and "unauthorized" in result.stderr
    assert not session_path(env).exists()
    listing = aether({**env, "AETHER_API_BASE": server.url}, "list", "--token", "ae_wrong")
    assert listing.returncode == 10 and "aether login" in listing.stderr


def test_rotate_replaces_the_stored_token_and_kills_the_old_one(server) -> None:  # type: ignore[no-untyped-def]
    env = without(server.env, "AETHER_TOKEN", "AETHER_API_BASE")
    assert aether(env, "login", "--api", server.url, "--token", server.admin_token).returncode == 0
    rotated = aether_json(env, "login", "--rotate")
    new_token = json.loads(session_path(env).read_text())["token"]
    assert new_token != server.admin_token and rotated["token_id"]
    assert aether_json(env, "whoami")["token_id"] == rotated["token_id"]
    old = aether(env, "whoami", "--token", server.admin_token)
    assert old.returncode == 10


def test_logout_revoke_kills_the_token(server) -> None:  # type: ignore[no-untyped-def]
    env = without(server.env, "AETHER_TOKEN", "AETHER_API_BASE")
    assert aether(env, "login", "--api", server.url, "--token", server.admin_token).returncode == 0
    assert aether_json(env, "login", "--rotate")  # revoke a rotated copy, not the fixture's
    token = json.loads(session_path(env).read_text())["token"]
    out = aether_json(env, "logout", "--revoke")
    assert out["revoked_token_id"] and out["logged_out"] is True
    assert not session_path(env).exists()
    again = aether({**env, "AETHER_API_BASE": server.url}, "whoami", "--token", token)
    assert again.returncode == 10


def test_server_down_exits_40_naming_the_url(server) -> None:  # type: ignore[no-untyped-def]
    url = server.url
    server.stop()
    result = aether(server.env, "list", "--format", "json")
    assert result.returncode == 40
    envelope = json.loads(result.stdout)
    assert envelope["error"]["code"] == "network" and url in envelope["error"]["message"]
    assert result.stdout.count("\n") == 1
