"""How commands print results: one JSON object with ``--format json``, text otherwise.

Commands declare ``@format_option`` and finish with ``emit(data, render_text)``. The
boundary reads ``state`` to decide how an error is printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

# A command's result: one JSON object (a plain dict, or a model of aether.models).
Result = TypeVar("Result", bound=Mapping[str, Any])


class OutputState:
    """What the boundary must know about the running command's output mode."""

    def __init__(self) -> None:
        self.json = False  # --format json: the error envelope goes to stdout
        self.debug = False  # --log-level debug|trace: tracebacks on stderr
        self.json_logs = False  # --log-format json: the error line is a JSON log line too

    def reset(self, args: list[str]) -> None:
        # Scanning argv covers failures that happen before click has parsed --format.
        self.json = _asked_for_json(args)
        self.debug = _asked_for_debug(args)
        self.json_logs = False


state = OutputState()


def _asked_for_json(args: list[str]) -> bool:
    for index, arg in enumerate(args):
        if arg == "--":
            return False
        if arg == "--format=json" or (
            arg == "--format" and args[index + 1 : index + 2] == ["json"]
        ):
            return True
    return False


def _asked_for_debug(args: list[str]) -> bool:
    for index, arg in enumerate(args):
        if arg in ("--log-level=debug", "--log-level=trace"):
            return True
        if arg == "--log-level" and args[index + 1 : index + 2] in (["debug"], ["trace"]):
            return True
    return False


def _remember_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    state.json = value == "json"
    return value


def format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--format text|json``; json prints exactly one object on stdout, errors included."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(("text", "json")),
        default="text",
        show_default=True,
        callback=_remember_format,
        is_eager=True,
        help="Output format on stdout.",
    )(command)


def emit(data: Result, render_text: Callable[[Result], str] | None = None) -> None:
    """Print the command's result: JSON (one object) or the text rendering."""
    if state.json or render_text is None:
        sys.stdout.write(json.dumps(data, indent=None, sort_keys=False) + "\n")
    else:
        text = render_text(data)
        if text:
            sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()
