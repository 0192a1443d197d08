"""The click-free answers of ``aether.entry`` say exactly what click would.

The pre-rendered help itself exists only in the single-file build; its texts are compared
with click's output at several widths in tests/onefile/test_zipapp.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from aether import __version__
from aether.entry import help_width, quick_answer


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_version_matches_click() -> None:
    through_click = run_python("from aether.cli import main; main(['--version'])")
    assert through_click.returncode == 0, through_click.stderr
    assert quick_answer(["--version"]) == quick_answer(["-V"]) == through_click.stdout
    assert through_click.stdout == f"aether, version {__version__}\n"


@pytest.mark.parametrize(
    "args", [[], ["--version", "list"], ["list", "--help"], ["--log-level", "debug", "--help"]]
)
def test_anything_else_goes_to_click(args: list[str]) -> None:
    assert quick_answer(args) is None


@pytest.mark.parametrize(("columns", "width"), [("200", 98), ("100", 98), ("80", 78), ("30", 50)])
def test_help_width_follows_click(columns: str, width: int) -> None:
    code = (
        "import click; from aether.entry import help_width; "
        "print(help_width(), click.HelpFormatter(max_width=100).width)"
    )
    done = run_python(code, COLUMNS=columns)
    assert done.stdout.split() == [str(width), str(width)]


def test_help_width_without_a_terminal_is_click_s_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert help_width() == 78  # pytest captures stdout: no terminal, 80 columns


def test_the_fast_path_imports_no_click() -> None:
    code = (
        "import sys; from aether.entry import quick_answer; quick_answer(['--version']); "
        "quick_answer(['--help']); print('click' in sys.modules)"
    )
    assert run_python(code).stdout.strip() == "False"


def test_a_command_starts_with_the_collector_run_rarely() -> None:
    """Start-up's long-lived objects are not walked every 700 allocations; a server sets
    CPython's default back (``aether.cli.longrunning``) once its stack is loaded."""
    code = (
        "import gc, aether.cli\n"
        "from aether.cli.longrunning import collect_as_usual\n"
        "from aether.entry import main\n"
        "default = gc.get_threshold()\n"
        "def command(args):\n"
        "    started = gc.get_threshold()\n"
        "    collect_as_usual()\n"
        "    print(default, started, gc.get_threshold())\n"
        "aether.cli.main = command\n"
        "main(['list'])\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(")")[:3] == ["(700, 10, 10", " (100000, 10, 10", " (700, 10, 10"]
