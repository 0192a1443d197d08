"""Signing end to end: `aether keys generate/add` and signed deploys against a server that
requires signatures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from client_support import aether, aether_json, copy_app


@pytest.fixture
def server(live_server):  # type: ignore[no-untyped-def]
    return live_server(args=["--no-worker"], env={"AETHER_REQUIRE_SIGNATURE": "1"})


def test_signed_deploy_to_a_server_that_requires_signatures(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_dir = copy_app(tmp_path / "app")
    unsigned = aether(server.env, "deploy", str(app_dir), "--no-wait", "--format", "json")
    assert unsigned.returncode == 10
    assert "AETHER_SIGNING_KEY" in json.loads(unsigned.stdout)["error"]["message"]
    assert aether_json(server.env, "list")["apps"] == [], "refused before anything happened"

    key_file = tmp_path / "signing.key"
    public = aether_json(server.env, "keys", "generate", "--out", str(key_file))["public_key_hex"]
    aether_json(server.env, "keys", "add", "--app", "tiny-node-app", "--public-key", public)
    listed = aether_json(server.env, "keys", "list", "--app", "tiny-node-app")
    assert [key["public_key_hex"] for key in listed["keys"]] == [public]

    env = {**server.env, "AETHER_SIGNING_KEY": str(key_file)}
    signed = aether_json(env, "deploy", str(app_dir), "--no-wait")
    assert signed["signature"] and signed["deployment_id"] and signed["status"] == "pending"


def test_adding_a_key_creates_the_app_so_the_first_deploy_can_be_signed(server) -> None:  # type: ignore[no-untyped-def]
    public = aether_json(server.env, "keys", "generate")["public_key_hex"]
    added = aether_json(server.env, "keys", "add", "--app", "fresh", "--public-key", public)
    assert added["app_created"] is True and added["public_key_hex"] == public
    assert [app["name"] for app in aether_json(server.env, "list")["apps"]] == ["fresh"]
