"""Where every ``aether`` process starts (after the interpreter check in :mod:`aether.guard`).

``aether --version`` and ``aether --help`` answer here without importing click: click and
the root group cost more than the rest of the start-up together (docs/benchmarks.md#cold-start).
The version needs nothing; the root help is read from ``roothelp.dat`` beside this module,
which the single-file build writes with click's own rendering at every width click can
choose. Everything else, and ``--help`` where that file does not exist (a pip install, a
checkout), goes to the click CLI in :mod:`aether.cli`.
"""

from __future__ import annotations

import gc
import os
import sys

from aether import __version__

VERSION_FLAGS = ("--version", "-V")
HELP_FLAGS = ("--help", "-h")
ROOT_HELP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "roothelp.dat")
# click's help width: max(min(terminal columns, max_content_width) - 2, 50), where
# aether.cli's root group sets max_content_width=100. roothelp.dat holds one text per width,
# NUL-separated, for HELP_WIDTHS in order; a test compares them with click's output.
HELP_WIDTHS = range(50, 99)
HELP_MAX_CONTENT_WIDTH = 100
# Start-up builds ~30,000 objects that live as long as the process (modules, classes,
# functions); with CPython's default threshold (700) the collector walked them ~40 times
# while they were made, ~6 ms of `aether deploy` (docs/benchmarks.md). Commands that run
# for long (serve, worker) set the default back once their stacks are loaded.
STARTUP_GC_THRESHOLD = 100_000


def main(argv: list[str] | None = None) -> None:
    """Console-script and zipapp entry point."""
    args = sys.argv[1:] if argv is None else argv
    answer = quick_answer(args)
    if answer is None:
        collect_rarely()
        from aether.cli import main as cli_main

        cli_main(args)
    else:
        _write(answer)


def collect_rarely() -> None:
    """Collect garbage cycles only every STARTUP_GC_THRESHOLD new objects, not every 700."""
    gc.set_threshold(STARTUP_GC_THRESHOLD, *gc.get_threshold()[1:])


def quick_answer(args: list[str]) -> str | None:
    """The output for ``--version`` or ``--help`` alone, when it is known without click."""
    if len(args) != 1:
        return None
    if args[0] in VERSION_FLAGS:
        return f"aether, version {__version__}\n"
    if args[0] in HELP_FLAGS:
        return prerendered_help(help_width())
    return None


def help_width() -> int:
    """The width click would wrap the help to (``shutil.get_terminal_size`` without shutil)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    columns = columns or 80
    return max(min(columns, HELP_MAX_CONTENT_WIDTH) - 2, HELP_WIDTHS[0])


def prerendered_help(width: int) -> str | None:
    try:
        with open(ROOT_HELP, encoding="utf-8") as handle:
            texts = handle.read().split("\0")
    except OSError:
        return None
    index = width - HELP_WIDTHS[0]
    return texts[index] if 0 <= index < len(texts) else None


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`aether --help | head -1`); flushing at exit would raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
