"""The ``aether`` command line: the root group and its lazily loaded subcommands.

Only click is imported here. Each subcommand lives in its own module under ``aether.cli`` and
is imported when it is invoked, so ``aether --help`` and the client commands never pay for
the server's stack (starlette, hypercorn, psycopg, s3fs, pykube).
"""

from __future__ import annotations

import importlib

import click

from aether import __version__
from aether.cli import output
from aether.cli.boundary import run

# name -> (module:attribute, one-line help shown by `aether --help`, hidden)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "login": ("aether.cli.login:login", "Store an API token for a control plane.", False),
    "logout": (
        "aether.cli.login:logout",
        "Forget (and optionally revoke) the stored token.",
        False,
    ),
    "whoami": ("aether.cli.login:whoami", "Show who the stored token belongs to.", False),
    "deploy": (
        "aether.cli.deploy:deploy",
        "Build, pack, upload and roll out a Node.js app.",
        False,
    ),
    "list": ("aether.cli.listing:list_apps", "List apps and their deployments.", False),
    "logs": ("aether.cli.logs:logs", "Show or stream an app's output.", False),
    "rollback": ("aether.cli.rollback:rollback", "Go back to an earlier release of an app.", False),
    "releases": ("aether.cli.releases:releases", "List an app's releases (v1, v2, …).", False),
    "sbom": ("aether.cli.sbom:sbom", "Show the SBOM of an app's release.", False),
    "ps": ("aether.cli.instances:ps", "List an app's instances and their health.", False),
    "status": (
        "aether.cli.instances:status",
        "Show what an app runs and its last rollout.",
        False,
    ),
    "scale": ("aether.cli.instances:scale", "Run N instances of an app (0: stop it).", False),
    "restart": ("aether.cli.instances:restart", "Restart an app, instance by instance.", False),
    "config": ("aether.cli.config:config", "Show and change an app's config vars.", False),
    "apps": ("aether.cli.apps:apps", "Create, show and destroy apps.", False),
    "keys": ("aether.cli.signing_keys:keys", "Create and register artifact signing keys.", False),
    "pack": ("aether.cli.pack:pack", "Build a deterministic artifact without deploying.", False),
    "verify": ("aether.cli.verify:verify", "Check an artifact against its manifest.", False),
    "serve": ("aether.cli.serve:serve", "Run the control-plane API (and a worker).", False),
    "worker": ("aether.cli.worker:worker", "Run the reconciliation loop on its own.", False),
    "fetch": ("aether.cli.fetch:fetch", "Download, verify and extract a deployment.", False),
    "migrate": ("aether.cli.migrate:migrate", "Apply database schema migrations.", False),
    "token": ("aether.cli.token:token", "Administer API tokens on the server side.", False),
    "gc": ("aether.cli.gc:gc", "Delete stale pending uploads.", False),
    "workers": ("aether.cli.workers:workers", "List workers and whether they are alive.", False),
    "admin": ("aether.cli.admin:admin", "Rotate the secrets key that seals config values.", False),
    "dashboard": (
        "aether.cli.dashboard:dashboard",
        "Open the web dashboard in a browser, signed in.",
        False,
    ),
    "completions": ("aether.cli.completions:completions", "Print a shell completion script.", True),
}

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


class LazyGroup(click.Group):
    """click's "lazily loading subcommands" recipe, with help text kept in the table."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        command.hidden = entry[2]
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing from the table keeps `aether --help` from importing every command module.
        rows = [
            (name, help_) for name, (_, help_, hidden) in sorted(COMMANDS.items()) if not hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        "Examples:\n\n"
        "\b\n"
        "  aether serve                      # embedded control plane on 127.0.0.1:8080\n"
        "  aether deploy examples/hello-node # pack, upload, roll out, print the URL\n"
        "  aether logs hello-node -f         # stream the app's output\n"
        "  aether list                       # apps and their current deployments\n"
        "\n"
        "Config: ${XDG_CONFIG_HOME:-~/.config}/aether/config.toml; "
        "session: ${XDG_CACHE_HOME:-~/.cache}/aether/session.json.\n\n"
        "Exit codes: 0 ok, 2 usage, 10 config, 20 internal, 30 I/O, 40 network."
    ),
)
@click.version_option(__version__, "--version", "-V", prog_name="aether")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="AETHER_LOG_LEVEL",
    help="Verbosity of the logs on stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(("auto", "text", "json"), case_sensitive=False),
    default="auto",
    show_default=True,
    envvar="AETHER_LOG_FORMAT",
    help="Log format on stderr; auto = text on a terminal, JSON otherwise.",
)
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    envvar="AETHER_ALLOW_INSECURE_HTTP",
    help="Send the API token over plain http:// to hosts other than this machine "
    "(refused otherwise: anyone on the path could read it).",
)
def cli(log_level: str, log_format: str, allow_insecure_http: bool) -> None:
    """Aether: build on your machine, ship a content-addressed artifact, roll it out.

    Machine-readable results go to stdout, logs and progress to stderr.
    """
    import os

    from aether.cli.logsetup import configure_logging

    if allow_insecure_http:  # the commands read their settings from the environment
        os.environ["AETHER_ALLOW_INSECURE_HTTP"] = "1"

    level = log_level.lower()
    # Also covers AETHER_LOG_LEVEL and upper-case spellings, which the argv scan cannot see.
    output.state.debug = level in ("debug", "trace")
    json_logs = configure_logging(level, log_format.lower())
    # The final error becomes a JSON line only when asked for by name: with `auto`, a pod's
    # termination message or a CI log keeps the readable `aether: error: …` line.
    output.state.json_logs = json_logs and log_format.lower() == "json"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI inside the one error boundary, then leave."""
    exit_now(run(cli, argv))


def exit_now(code: int) -> None:
    """End the process once the command is done, without the interpreter's teardown.

    Freeing every module and object at exit took tens of milliseconds after a deploy
    (measured), on a command whose wall time is the product. Nothing is lost: the exit
    handlers still run (temporary files, finalizers), logs and both streams are flushed.
    """
    import atexit
    import logging
    import os
    import sys

    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader has gone, nothing to keep
            pass
    os._exit(code)
