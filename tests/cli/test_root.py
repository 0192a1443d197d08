"""The CLI contract: exit codes, the JSON error envelope, lazy imports, completions, logging.

Every case runs the real ``aether`` in a subprocess with its own HOME and XDG directories, so
the boundary, logging set-up and process exit are exercised exactly as a user meets them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aether import __version__
from aether.cli import COMMANDS
from aether.cli.logsetup import JsonFormatter, RedactingFilter, RedactingFormatter, redact
from plugins.fresh_imports import modules_loaded_by

HEAVY_MODULES = (
    "starlette",
    "hypercorn",
    "psycopg",
    "s3fs",
    "aiobotocore",
    "pykube",
    "requests",
    "jinja2",  # the dashboard's, loaded by `aether serve` only
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no AETHER_* variables, config and cache under tmp_path."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "XDG_"))}
    clean.pop("DATABASE_URL", None)
    home = tmp_path / "home"
    home.mkdir()
    return {
        **clean,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


def aether(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aether", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def config_file(env: dict[str, str]) -> Path:
    path = Path(env["XDG_CONFIG_HOME"]) / "aether" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- one test per exit code ---------------------------------------------------------------


def test_exit_0_version(env: dict[str, str]) -> None:
    result = aether(env, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"aether, version {__version__}"


def test_exit_0_help_lists_commands_but_not_hidden_ones(env: dict[str, str]) -> None:
    result = aether(env, "--help")
    assert result.returncode == 0
    for name in ("deploy", "login", "logs", "list", "serve", "worker"):
        assert f"\n  {name} " in result.stdout
    assert "completions" not in result.stdout
    assert "Exit codes: 0 ok, 2 usage, 10 config, 20 internal, 30 I/O, 40 network." in (
        " ".join(result.stdout.split())
    )


def test_exit_2_unknown_command_names_it_and_points_at_help(env: dict[str, str]) -> None:
    result = aether(env, "--log-format", "text", "deplyo")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "aether: error: No such command 'deplyo'.",
        "Try 'aether --help' for help.",
    ]


def test_exit_2_bare_aether_prints_help_on_stderr(env: dict[str, str]) -> None:
    result = aether(env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Usage: aether [OPTIONS] COMMAND [ARGS]...")


def test_exit_10_broken_config_names_file_and_line(env: dict[str, str]) -> None:
    path = config_file(env)
    path.write_text('api_base = "http://127.0.0.1:1"\ndefault_app = \n')
    result = aether(env, "--log-format", "text", "whoami")
    assert result.returncode == 10
    assert f"aether: error: {path}: invalid TOML:" in result.stderr
    assert "line 2" in result.stderr


def test_exit_10_only_for_commands_that_read_the_config(env: dict[str, str]) -> None:
    config_file(env).write_text("this is not toml\n")
    assert aether(env, "--version").returncode == 0
    assert aether(env, "--help").returncode == 0
    assert aether(env, "whoami", "--help").returncode == 0
    assert aether(env, "completions", "--shell", "bash").returncode == 0


@pytest.fixture
def tampered_artifact(env: dict[str, str], tmp_path: Path) -> Path:
    """An artifact packed by `aether pack`, then changed after its manifest was written."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "demo", "version": "1.0.0"}\n')
    (project / "index.js").write_text("console.log('hi')\n")
    packed = aether(env, "pack", "--no-install", "--no-sbom", "--format", "json", str(project))
    assert packed.returncode == 0, packed.stderr
    artifact = Path(json.loads(packed.stdout)["artifact"])
    with artifact.open("ab") as handle:
        handle.write(b"tampered")
    return artifact


def test_exit_20_artifact_that_does_not_match_its_manifest(
    env: dict[str, str], tampered_artifact: Path
) -> None:
    result = aether(env, "--log-format", "text", "verify", str(tampered_artifact))
    assert result.returncode == 20
    assert "digest mismatch" in result.stderr


def test_exit_20_in_json_is_one_error_object(env: dict[str, str], tampered_artifact: Path) -> None:
    result = aether(env, "verify", str(tampered_artifact), "--format", "json")
    assert result.returncode == 20
    assert result.stdout.count("\n") == 1
    body = json.loads(result.stdout)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "integrity"
    assert "digest mismatch" in body["error"]["message"]


def test_exit_30_config_path_that_cannot_be_read(env: dict[str, str]) -> None:
    # A directory where the file should be: unreadable even for root, unlike chmod 000.
    config_file(env).mkdir()
    result = aether(env, "--log-format", "text", "whoami")
    assert result.returncode == 30
    assert "cannot read" in result.stderr and "config.toml" in result.stderr


def test_exit_40_whoami_against_a_closed_port(env: dict[str, str]) -> None:
    env = {**env, "AETHER_API_BASE": f"http://127.0.0.1:{closed_port()}", "AETHER_TOKEN": "t0k3n-x"}
    result = aether(env, "--log-format", "text", "whoami")
    assert result.returncode == 40, result.stderr
    assert "aether: error:" in result.stderr
    assert "t0k3n-x" not in result.stderr


# --- --format json: exactly one object on stdout, errors included ----------------------------


def _broken_config(env: dict[str, str], tmp_path: Path) -> list[str]:
    config_file(env).write_text("[unclosed\n")
    return ["whoami"]


def _unreadable_config(env: dict[str, str], tmp_path: Path) -> list[str]:
    config_file(env).mkdir()
    return ["whoami"]


def _refused(env: dict[str, str], tmp_path: Path) -> list[str]:
    env.update(AETHER_API_BASE=f"http://127.0.0.1:{closed_port()}", AETHER_TOKEN="x" * 12)
    return ["whoami"]


def _bad_option(env: dict[str, str], tmp_path: Path) -> list[str]:
    return ["whoami", "--no-such-flag"]


def _missing_artifact(env: dict[str, str], tmp_path: Path) -> list[str]:
    return ["verify", str(tmp_path / "absent.tar.zst")]


@pytest.mark.parametrize(
    ("arrange", "exit_code", "code"),
    [
        (_bad_option, 2, "usage"),
        (_broken_config, 10, "config"),
        (_unreadable_config, 30, "io"),
        (_missing_artifact, 30, "io"),
        (_refused, 40, "network"),
    ],
)
def test_json_format_prints_one_error_object_on_stdout(
    env: dict[str, str],
    tmp_path: Path,
    arrange: Callable[[dict[str, str], Path], list[str]],
    exit_code: int,
    code: str,
) -> None:
    args = arrange(env, tmp_path)
    result = aether(env, *args, "--format", "json")
    assert result.returncode == exit_code, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    body = json.loads(lines[0])
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# --- lazy imports -----------------------------------------------------------------------------


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY_MODULES)


def test_import_aether_cli_leaves_the_heavy_stacks_out() -> None:
    assert _heavy(modules_loaded_by("import aether.cli")) == []


def test_settings_without_a_config_file_import_no_toml_parser(tmp_path: Path) -> None:
    """Every command reads its settings; only a config file needs tomllib (and only writing
    the session needs tempfile)."""
    home = str(tmp_path)
    code = (
        "from aether.settings import ClientSettings\n"
        f"ClientSettings.from_env({{'HOME': {home!r}, 'XDG_CONFIG_HOME': {home!r},"
        f" 'XDG_CACHE_HOME': {home!r}}})\n"
    )
    loaded = modules_loaded_by(code)
    assert "aether.userconfig" in loaded
    assert not loaded & {"tomllib", "tempfile"}


def test_the_deploy_path_leaves_out_what_a_small_code_only_redeploy_does_not_use() -> None:
    """Every module ``aether deploy`` of a small app imports, and nothing it does not use:
    the server's settings classes, the multipart flow and its resume records (a big upload
    imports them when it needs them), http.client with the email package, and ssl (an https
    control plane imports it when it connects)."""
    loaded = modules_loaded_by(
        "import aether.cli.deploy, aether.client.deploy, aether.client.layers, "
        "aether.pack.build, aether.pack.layered"
    )
    assert _heavy(loaded) == []
    assert not loaded & {"aether.settings", "aether.client.multipart", "aether.client.resume"}
    assert not loaded & {"http.client", "email", "ssl", "base64"}
    assert not loaded & {"aether.pack.threaded", "concurrent.futures"}  # a big tree's readers


@pytest.mark.parametrize("argv", [["--help"], ["--version"]] + [[n, "--help"] for n in COMMANDS])
def test_help_leaves_the_heavy_stacks_out(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from aether.cli import cli\n"
        "from aether.cli.boundary import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert run(cli, {argv!r}) == 0\n"
    )
    assert _heavy(modules_loaded_by(code)) == []


# --- completions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef aether"),
        ("fish", "complete --no-files --command aether"),
    ],
)
def test_completions_print_a_script_per_shell(env: dict[str, str], shell: str, marker: str) -> None:
    result = aether(env, "completions", "--shell", shell)
    assert result.returncode == 0
    assert marker in result.stdout
    assert "_AETHER_COMPLETE" in result.stdout


def test_bash_completion_script_parses_and_completes(env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "aether.bash"
    script.write_text(aether(env, "completions", "--shell", "bash").stdout)
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to check the completion script"
    subprocess.run([bash, "-n", str(script)], check=True, timeout=30)
    # What the script asks the program for when the user types `aether se<TAB>`.
    completion_env = {
        **env,
        "_AETHER_COMPLETE": "bash_complete",
        "COMP_WORDS": "aether se",
        "COMP_CWORD": "1",
    }
    result = aether(completion_env)
    assert result.returncode == 0
    assert result.stdout.split() == ["plain,serve"]


def test_completions_for_an_unknown_shell_is_a_usage_error(env: dict[str, str]) -> None:
    result = aether(env, "--log-format", "text", "completions", "--shell", "tcsh")
    assert result.returncode == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


# --- logging ------------------------------------------------------------------------------------


def test_json_logs_are_json_lines_on_stderr(env: dict[str, str]) -> None:
    env = {**env, "AETHER_API_BASE": f"http://127.0.0.1:{closed_port()}", "AETHER_TOKEN": "x" * 12}
    result = aether(env, "--log-level", "debug", "--log-format", "json", "whoami")
    assert result.returncode == 40
    assert result.stdout == ""
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(entries) >= 2  # the connection retries' debug lines and the error itself
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= set(entry)
    assert entries[-1]["level"] == "error" and entries[-1]["code"] == "network"
    assert entries[-1]["exit_code"] == 40


def test_auto_log_format_keeps_the_readable_error_line(env: dict[str, str]) -> None:
    # stderr is a pipe here, so `auto` logs JSON lines, yet the final error stays readable
    # (a pod's termination message, a CI log).
    env = {**env, "AETHER_API_BASE": f"http://127.0.0.1:{closed_port()}", "AETHER_TOKEN": "x" * 12}
    result = aether(env, "whoami")
    assert result.returncode == 40
    *logs, last = result.stderr.splitlines()
    assert last.startswith("aether: error: ")
    assert all(json.loads(line)["level"] for line in logs)


def test_log_level_debug_shows_debug_lines_and_info_hides_them(env: dict[str, str]) -> None:
    env = {**env, "AETHER_API_BASE": f"http://127.0.0.1:{closed_port()}", "AETHER_TOKEN": "x" * 12}
    debug = aether(env, "--log-level", "debug", "--log-format", "json", "whoami")
    info = aether(env, "--log-level", "info", "--log-format", "json", "whoami")
    levels = lambda r: {json.loads(line)["level"] for line in r.stderr.splitlines()}  # noqa: E731
    assert "debug" in levels(debug)
    assert "debug" not in levels(info)


def test_logs_from_a_real_process_mask_bearer_tokens() -> None:
    code = (
        "import logging\n"
        "from aether.cli.logsetup import configure_logging\n"
        "configure_logging('info', 'json')\n"
        "logging.getLogger('aether.test').info('sending Authorization: Bearer %s', 'sEcReT-123456')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    entry = json.loads(result.stderr)
    assert entry["message"] == "sending Authorization: Bearer ***"
    assert "sEcReT" not in result.stderr


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("Authorization: Bearer abcdef123456", "Authorization: Bearer ***"),
        ("token=abcdef123456&x=1", "token=***&x=1"),
        ('{"token": "abcdef123456"}', '{"token": "***"}'),
        ("AETHER_TOKEN=abcdef123456", "AETHER_TOKEN=***"),
        ("?X-Amz-Signature=0123456789abcdef", "?X-Amz-Signature=***"),
        ("/blobs/x?expires=1&signature=0123456789abcdef", "/blobs/x?expires=1&signature=***"),
        ("token_id=tok_0123456789", "token_id=tok_0123456789"),
    ],
)
def test_redact(raw: str, masked: str) -> None:
    assert redact(raw) == masked


def test_redaction_covers_message_args_extra_fields_and_tracebacks() -> None:
    import io
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(JsonFormatter()))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("aether.test.redaction")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("rejected Bearer tracebacksecret1")
        except RuntimeError:
            logger.exception(
                "call with %s",
                "Bearer argsecret123",
                extra={"fields": {"h": "Bearer fieldsecret1"}},
            )
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "secret" not in text.replace("***", "")
    assert json.loads(text)["message"] == "call with Bearer ***"
