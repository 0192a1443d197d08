"""Where the API URL and token come from, and how missing credentials are reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aether.client.credentials import (
    DEFAULT_API_BASE,
    for_command,
    for_login,
    resolve_token,
)
from aether.errors import ConfigError
from aether.userconfig import Session, session_path, write_session


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def _never_prompt(label: str) -> str:
    raise AssertionError("must not prompt")


def test_flag_beats_variable_beats_session() -> None:
    session = Session(api_base="http://s", token="from-session")
    env = {"AETHER_TOKEN": "from-env"}
    kwargs = {"interactive": False, "prompt": _never_prompt}
    assert resolve_token("from-flag", env, session=session, **kwargs) == ("from-flag", "--token")
    assert resolve_token(None, env, session=session, **kwargs) == ("from-env", "AETHER_TOKEN")
    assert resolve_token(None, {}, session=session, **kwargs) == ("from-session", "session")


def test_prompt_only_on_a_terminal() -> None:
    token, source = resolve_token(
        None, {}, session=None, interactive=True, prompt=lambda label: " typed \n"
    )
    assert (token, source) == ("typed", "prompt")


def test_no_terminal_means_a_config_error_naming_flag_and_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_token(None, {}, session=None, interactive=False, prompt=_never_prompt)
    assert "--token" in caught.value.message and "AETHER_TOKEN" in caught.value.message
    assert caught.value.exit_code == 10


def test_login_ignores_the_stored_token_but_defaults_the_url(environ: dict[str, str]) -> None:
    write_session(environ, Session(api_base="http://127.0.0.1:9", token="old"))
    with pytest.raises(ConfigError):
        for_login(environ, api=None, token=None, interactive=False, prompt=None)
    creds = for_login(environ, api="http://h:1/", token="t", interactive=False, prompt=None)
    assert (creds.api_base, creds.token) == ("http://h:1", "t")
    del environ["XDG_CACHE_HOME"]
    creds = for_login(environ, api=None, token="t", interactive=False, prompt=None)
    assert creds.api_base == DEFAULT_API_BASE


def test_command_uses_the_session(environ: dict[str, str]) -> None:
    write_session(environ, Session(api_base="http://127.0.0.1:9", token="stored", user="ada"))
    creds = for_command(environ)
    assert (creds.api_base, creds.token, creds.source) == (
        "http://127.0.0.1:9",
        "stored",
        "session",
    )


def test_command_without_any_api_url_says_how_to_log_in(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="aether login --api URL"):
        for_command({**environ, "AETHER_TOKEN": "t"})


def test_api_url_must_be_http(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="http://"):
        for_login(environ, api="ftp://x", token="t", interactive=False, prompt=None)


def test_a_session_file_others_can_read_is_refused(environ: dict[str, str]) -> None:
    write_session(environ, Session(api_base="http://127.0.0.1:9", token="stored"))
    path = session_path(environ)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}"):
        for_command(environ)
