"""Where the client keeps its files: the config file and the session file.

``${XDG_CONFIG_HOME:-~/.config}/aether/config.toml`` holds preferences (``api_base``,
``default_namespace``, ``default_app``); ``${XDG_CACHE_HOME:-~/.cache}/aether/session.json``
holds the API URL, user and token written by ``aether login`` or by ``aether serve`` on first
start. The session file is written atomically with mode 0600 and refused when others can read
it, because it holds a bearer token.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether.errors import ConfigError, IOFailure

CONFIG_KEYS = ("api_base", "default_namespace", "default_app")


def config_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "aether"


def cache_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "aether"


def data_dir(environ: Mapping[str, str]) -> Path:
    """The server's default data dir; ``AETHER_DATA_DIR`` wins over XDG."""
    if environ.get("AETHER_DATA_DIR"):
        return Path(environ["AETHER_DATA_DIR"]).expanduser()
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")) / ".local/share")
    return Path(base).expanduser() / "aether"


def config_path(environ: Mapping[str, str]) -> Path:
    return config_dir(environ) / "config.toml"


def session_path(environ: Mapping[str, str]) -> Path:
    return cache_dir(environ) / "session.json"


def load_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """Read config.toml; a missing file is an empty config, a broken one is a ConfigError."""
    path = config_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror}") from exc
    import tomllib  # only with a config file: every command reads settings, few have one

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already names the line and column.
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    for key, value in data.items():
        where = f"{path}, line {_line_of(text, key)}"
        if key not in CONFIG_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r} (known keys: {', '.join(CONFIG_KEYS)})"
            )
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, not {type(value).__name__}")
    return data


def _line_of(text: str, key: str) -> int:
    """The 1-based line where a top-level ``key`` (or ``[key]`` table) is defined."""
    pattern = re.compile(rf"^\s*(\[\s*)?[\"']?{re.escape(key)}[\"']?\s*[=\]]")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return 1


@dataclass(frozen=True)
class Session:
    """What ``aether login`` stores: where the API is and how to authenticate to it."""

    api_base: str
    token: str
    user: str | None = None


def read_session(environ: Mapping[str, str]) -> Session | None:
    """The stored session, or None; a session others can read is refused."""
    path = session_path(environ)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} is readable by other users and holds a token; fix it with: chmod 600 {path}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        session = Session(api_base=data["api_base"], token=data["token"], user=data.get("user"))
        if not (isinstance(session.api_base, str) and isinstance(session.token, str)):
            raise TypeError("api_base and token must be strings")
        return session
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a valid session file; run `aether login` again") from exc
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror}") from exc


def write_session(environ: Mapping[str, str], session: Session) -> Path:
    """Write the session atomically with mode 0600 (never briefly world-readable)."""
    path = session_path(environ)
    payload = {"api_base": session.api_base, "token": session.token, "user": session.user}
    _write_private(path, json.dumps(payload, indent=2) + "\n")
    return path


def forget_session(environ: Mapping[str, str]) -> bool:
    try:
        session_path(environ).unlink()
    except FileNotFoundError:
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    import tempfile  # only when writing the session (login, serve): not on every start

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".session-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise IOFailure(f"cannot write {path}: {exc.strerror}") from exc
