"""`aether config`, `apps` and `--env`: what is refused before any request, the dotenv reader,
and the commands against a live control plane (values never printed unless revealed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from client_support import aether

from aether.cli import cli
from aether.cli.boundary import run
from aether.client.envfile import read_env_file
from aether.errors import IOFailure, UsageError

SECRET = "hunter2-not-for-your-eyes"


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No session; a server that nothing listens on (nothing may be asked of it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("AETHER_API_BASE", "http://127.0.0.1:1")
    monkeypatch.setenv("AETHER_TOKEN", "ae_unused")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["config", "set", f"lower-case={SECRET}", "--app", "web"], "invalid config var name"),
        (["config", "set", f"PORT={SECRET}", "--app", "web"], "set by Aether"),
        (["config", "set", "NOEQUALS", "OTHER", "--app", "web"], "expected KEY=VALUE"),
        (["config", "set", "A=1", "--app", "Bad_Name"], "invalid app name"),
        (["config", "unset", "9LIVES", "--app", "web"], "invalid config var name"),
        (["deploy", ".", "--env", f"bad-name={SECRET}"], "--env"),
        (["apps", "destroy", "web"], "--confirm web"),
        (["apps", "destroy", "web", "--confirm", "other"], "--confirm web"),
    ],
)
def test_refused_before_any_request_with_exit_2_and_no_value_echoed(
    offline: None, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    assert run(cli, argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and SECRET not in err


def test_dotenv_files_follow_the_usual_rules_and_expand_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n"
        "export A=plain\n"
        "B='single $HOME #kept'\n"
        'C="double\\nline"\n'
        "D=trailing # comment\n"
        "E=${A}\n"
        'F="multi\nline"\n'
        "A=later\n",
        encoding="utf-8",
    )
    assert read_env_file(path) == {
        "A": "later",
        "B": "single $HOME #kept",
        "C": "double\nline",
        "D": "trailing",
        "E": "${A}",
        "F": "multi\nline",
    }


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("OK=1\nthis is not a binding\n", ":2: not KEY=VALUE"),
        ("OK=1\nLONELY\n", ":2: LONELY has no '='"),
        (f"bad-name={SECRET}\n", ":1: invalid config var name"),
        (f"PORT={SECRET}\n", ":1: PORT is set by Aether"),
    ],
)
def test_dotenv_problems_name_the_line_never_the_value(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        read_env_file(path)
    assert fragment in caught.value.message and SECRET not in caught.value.message


def test_an_unreadable_dotenv_file_is_an_io_error(tmp_path: Path) -> None:
    with pytest.raises(IOFailure):
        read_env_file(tmp_path / "missing.env")


# --- against a live control plane -----------------------------------------------------------


@pytest.fixture
def live(live_server: Any) -> Any:
    return live_server()


def _ok(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "aether", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert SECRET not in done.stderr
    return done.stdout


def test_set_from_stdin_import_unset_and_staged_changes(live: Any, tmp_path: Path) -> None:
    env = live.env
    assert "Created web" in _ok(env, "apps", "create", "web")
    said = _ok(env, "config", "set", "DB_PASSWORD", "--app", "web", stdin=SECRET + "\n")
    assert "Changed DB_PASSWORD on web: config v1" in said and "no release yet" in said
    assert SECRET not in said
    dotenv = tmp_path / "prod.env"
    dotenv.write_text("GREETING='hello world'\nexport MODE=prod\n", encoding="utf-8")
    assert "config v2" in _ok(env, "config", "import", str(dotenv), "--app", "web")
    staged = _ok(env, "config", "unset", "MODE", "GONE", "--app", "web", "--no-restart")
    assert "config v3" in staged and "note: GONE was not set" in staged
    listing = _ok(env, "config", "--app", "web")
    assert "DB_PASSWORD" in listing and "GREETING" in listing and "MODE" not in listing
    assert SECRET not in listing and "fp " in listing
    revealed = _ok(env, "config", "--app", "web", "--reveal")
    assert f"DB_PASSWORD={SECRET}" in revealed and "GREETING='hello world'" in revealed
    again = _ok(env, "config", "set", "GREETING=hello world", "--app", "web")
    assert again.startswith("Unchanged: web config v3")
    info = json.loads(_ok(env, "apps", "info", "web", "--format", "json"))
    assert info["config_vars"] == ["DB_PASSWORD", "GREETING"] and info["release"] is None
    assert "No releases of web yet" in _ok(env, "releases", "web")
    assert "Destroyed web." in _ok(env, "apps", "destroy", "web", "--confirm", "web")
    gone = aether(env, "config", "--app", "web")
    assert gone.returncode == 20 and "does not exist" in gone.stderr
