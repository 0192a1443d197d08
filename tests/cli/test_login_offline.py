"""`aether login/whoami/logout` failures that need no server: exit codes and messages."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from aether.cli import cli
from aether.cli.boundary import run
from aether.userconfig import Session, read_session, write_session


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AETHER_TOKEN", "AETHER_API_BASE"):
        monkeypatch.delenv(key, raising=False)
    return env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_login_without_token_and_without_terminal_names_flag_and_variable(
    home: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cli, ["login", "--api", "http://127.0.0.1:1"]) == 10
    err = capsys.readouterr().err
    assert "--token" in err and "AETHER_TOKEN" in err


def test_login_to_a_server_that_is_down_exits_40_and_saves_nothing(
    home: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    assert run(cli, ["login", "--api", url, "--token", "t0ken-value"]) == 40
    captured = capsys.readouterr()
    assert f"{url}/whoami" in captured.err
    assert "t0ken-value" not in captured.err + captured.out
    assert read_session(home) is None


def test_json_failure_prints_only_the_envelope_on_stdout(
    home: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    write_session(home, Session(api_base=url, token="stored"))
    assert run(cli, ["whoami", "--format", "json"]) == 40
    out = capsys.readouterr().out
    assert json.loads(out)["error"]["code"] == "network"
    assert out.count("\n") == 1


def test_logout_without_session_is_fine_and_revoke_is_a_config_error(
    home: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cli, ["logout"]) == 0
    assert "Not logged in" in capsys.readouterr().out
    assert run(cli, ["logout", "--revoke"]) == 10


def test_logout_forgets_the_session(home: dict[str, str]) -> None:
    write_session(home, Session(api_base="http://127.0.0.1:1", token="stored"))
    assert run(cli, ["logout"]) == 0
    assert read_session(home) is None


def test_commands_without_a_control_plane_say_how_to_log_in(
    home: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cli, ["list", "--token", "t"]) == 10
    assert "aether login --api URL" in capsys.readouterr().err
