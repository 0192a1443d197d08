"""The one place where errors become output and exit codes.

Aether errors print ``aether: error: <message>`` on stderr (or, when the command was asked
for ``--format json``, exactly one ``{"error": {"code", "message"}}`` object on stdout; with
JSON logs, one JSON error line on stderr) and exit with the error's code. Anything unexpected exits 20; its traceback is shown only with
``--log-level debug`` or ``trace``.
"""

from __future__ import annotations

import json
import os
import sys

import click

from aether.cli import output
from aether.errors import EXIT_INTERNAL, EXIT_IO, EXIT_USAGE, AetherError


def run(command: click.Command, argv: list[str] | None) -> int:
    """Run ``command`` with ``argv`` and return the process exit code; never raises."""
    args = list(sys.argv[1:] if argv is None else argv)
    output.state.reset(args)
    try:
        command.main(args=args, prog_name="aether", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aether: aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        # `aether` alone: the help is the answer, but the invocation is still a usage error.
        if output.state.json:
            return _fail("usage", "no command given; see `aether --help`", EXIT_USAGE)
        click.echo(exc.format_message(), err=True)
        return EXIT_USAGE
    except click.FileError as exc:
        return _fail("io", exc.format_message(), EXIT_IO)
    except click.ClickException as exc:
        return _fail("usage", exc.format_message(), EXIT_USAGE, hint=_usage_hint(exc))
    except AetherError as exc:
        return _fail(exc.code, exc.message, exc.exit_code)
    except KeyboardInterrupt:
        click.echo("aether: interrupted", err=True)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as exc:  # the boundary: nothing escapes as a raw traceback
        return _unexpected(exc)
    return 0


def _unexpected(exc: Exception) -> int:
    if output.state.debug:
        import traceback

        traceback.print_exc()
    message = f"unexpected {type(exc).__name__}: {exc}"
    if not output.state.debug:
        message += " (run with --log-level debug for the traceback)"
    return _fail("internal", message, EXIT_INTERNAL)


def _silence_stdout() -> None:
    # The reader went away (`aether list | head -1`); flushing at exit would raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _usage_hint(exc: click.ClickException) -> str | None:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return None
    return f"Try '{ctx.command_path} --help' for help."


def _fail(code: str, message: str, exit_code: int, *, hint: str | None = None) -> int:
    if output.state.json:
        sys.stdout.write(json.dumps({"error": {"code": code, "message": message}}) + "\n")
        sys.stdout.flush()
    elif output.state.json_logs:
        import logging  # only here: `aether --help` should not pay for it

        fields = {"code": code, "exit_code": exit_code}
        logging.getLogger("aether").error(message, extra={"fields": fields})
    else:
        click.echo(f"aether: error: {message}", err=True)
        if hint:
            click.echo(hint, err=True)
    return exit_code
