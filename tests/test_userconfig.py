"""The client's files: config.toml errors, the private session file, XDG locations."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aether.errors import ConfigError, IOFailure
from aether.settings import ClientSettings
from aether.userconfig import (
    Session,
    cache_dir,
    config_dir,
    config_path,
    data_dir,
    forget_session,
    load_config,
    read_session,
    session_path,
    write_session,
)


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def write_config(environ: dict[str, str], text: str) -> Path:
    path = config_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- locations ----------------------------------------------------------------------------


def test_xdg_variables_choose_the_directories(tmp_path: Path) -> None:
    environ = {
        "HOME": "/nonexistent",
        "XDG_CONFIG_HOME": str(tmp_path / "c"),
        "XDG_CACHE_HOME": str(tmp_path / "k"),
        "XDG_DATA_HOME": str(tmp_path / "d"),
    }
    assert config_path(environ) == tmp_path / "c" / "aether" / "config.toml"
    assert session_path(environ) == tmp_path / "k" / "aether" / "session.json"
    assert data_dir(environ) == tmp_path / "d" / "aether"


def test_without_xdg_the_defaults_are_under_home(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path)}
    assert config_dir(environ) == tmp_path / ".config" / "aether"
    assert cache_dir(environ) == tmp_path / ".cache" / "aether"
    assert data_dir(environ) == tmp_path / ".local" / "share" / "aether"


def test_empty_xdg_variables_fall_back_to_home(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": ""}
    assert config_dir(environ) == tmp_path / ".config" / "aether"
    assert cache_dir(environ) == tmp_path / ".cache" / "aether"


def test_aether_data_dir_wins_over_xdg(tmp_path: Path) -> None:
    environ = {"XDG_DATA_HOME": str(tmp_path / "d"), "AETHER_DATA_DIR": str(tmp_path / "mine")}
    assert data_dir(environ) == tmp_path / "mine"


# --- config.toml ----------------------------------------------------------------------------


def test_missing_config_is_empty(environ: dict[str, str]) -> None:
    assert load_config(environ) == {}


def test_config_keys_are_read(environ: dict[str, str]) -> None:
    write_config(
        environ,
        'api_base = "https://aether.example"\ndefault_namespace = "apps"\ndefault_app = "web"\n',
    )
    assert load_config(environ) == {
        "api_base": "https://aether.example",
        "default_namespace": "apps",
        "default_app": "web",
    }


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('api_base = "x"\n\ndefault_app = \n', 3, "invalid TOML"),
        ('api_base = "x"\ndefault_app = 7\n', 2, "default_app must be a string, not int"),
        ('# mine\napi_base = "x"\napi_bsae = "y"\n', 3, "unknown key 'api_bsae'"),
        ('api_base = "x"\n[default_app]\nname = "web"\n', 2, "default_app must be a string"),
    ],
)
def test_config_errors_name_file_line_and_problem(
    environ: dict[str, str], text: str, line: int, what: str
) -> None:
    path = write_config(environ, text)
    with pytest.raises(ConfigError) as caught:
        load_config(environ)
    message = caught.value.message
    assert message.startswith(str(path))
    assert f"line {line}" in message
    assert what in message
    assert caught.value.exit_code == 10


def test_unreadable_config_is_an_io_failure(environ: dict[str, str]) -> None:
    config_path(environ).mkdir(parents=True)
    with pytest.raises(IOFailure) as caught:
        load_config(environ)
    assert caught.value.exit_code == 30


# --- session file ---------------------------------------------------------------------------


def test_session_is_written_private_and_read_back(environ: dict[str, str]) -> None:
    path = write_session(environ, Session(api_base="http://127.0.0.1:8080", token="t" * 20))
    assert path == session_path(environ)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_session(environ) == Session(api_base="http://127.0.0.1:8080", token="t" * 20)
    assert [p.name for p in path.parent.iterdir()] == ["session.json"]  # no temp files left


def test_session_rewrite_replaces_the_old_one(environ: dict[str, str]) -> None:
    write_session(environ, Session(api_base="http://a", token="old-token-1"))
    write_session(environ, Session(api_base="http://b", token="new-token-2", user="ada"))
    assert read_session(environ) == Session(api_base="http://b", token="new-token-2", user="ada")
    assert stat.S_IMODE(session_path(environ).stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_session_readable_by_others_is_refused_with_the_fix(
    environ: dict[str, str], mode: int
) -> None:
    path = write_session(environ, Session(api_base="http://a", token="secret-token"))
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as caught:
        read_session(environ)
    assert f"chmod 600 {path}" in caught.value.message
    assert "secret-token" not in caught.value.message


def test_missing_session_is_none(environ: dict[str, str]) -> None:
    assert read_session(environ) is None
    assert forget_session(environ) is False


def test_forget_session_removes_it(environ: dict[str, str]) -> None:
    write_session(environ, Session(api_base="http://a", token="tok-123456"))
    assert forget_session(environ) is True
    assert read_session(environ) is None


@pytest.mark.parametrize(
    "text", ["not json", '{"api_base": "http://a"}', "[1, 2]", '{"api_base": "x", "token": null}']
)
def test_corrupt_session_says_to_log_in_again(environ: dict[str, str], text: str) -> None:
    path = session_path(environ)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        read_session(environ)
    assert "aether login" in caught.value.message


# --- precedence: environment > session > config ----------------------------------------------


def test_environment_overrides_session_and_config(environ: dict[str, str]) -> None:
    write_config(environ, 'api_base = "http://config"\ndefault_namespace = "from-config"\n')
    write_session(environ, Session(api_base="http://session", token="session-token"))
    from_files = ClientSettings.from_env(environ)
    assert (from_files.api_base, from_files.token) == ("http://session", "session-token")
    assert from_files.default_namespace == "from-config"
    overridden = ClientSettings.from_env(
        {
            **environ,
            "AETHER_API_BASE": "http://env",
            "AETHER_TOKEN": "env-token",
            "AETHER_DEFAULT_NAMESPACE": "from-env",
        }
    )
    assert (overridden.api_base, overridden.token) == ("http://env", "env-token")
    assert overridden.default_namespace == "from-env"


def test_config_api_base_is_the_last_resort(environ: dict[str, str]) -> None:
    write_config(environ, 'api_base = "http://config"\n')
    settings = ClientSettings.from_env(environ)
    assert settings.api_base == "http://config"
    assert settings.token is None
    assert settings.default_namespace == "aether"
