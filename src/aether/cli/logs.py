"""``aether logs``: an app's output, history first, then live with ``--follow``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from aether.cli.connection import app_option, one_app, open_api, resolve_app, token_option


@click.command(name="logs")
@click.argument("app_argument", metavar="[APP]", required=False)
@app_option()
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new lines until Ctrl-C.")
@click.option(
    "--tail", type=click.IntRange(min=0), default=None, help="Start with the last N lines."
)
@click.option(
    "--since",
    metavar="DURATION|RFC3339",
    help="Only lines newer than 30s, 10m, 1.5h, 2d or an RFC 3339 time.",
)
@click.option(
    "--container",
    metavar="NAME",
    help="Kubernetes: only this container's lines (fetch or app); default both.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="text lines, or one JSON object per line.",
)
@token_option
def logs(
    app_argument: str | None,
    app: str | None,
    follow: bool,
    tail: int | None,
    since: str | None,
    container: str | None,
    output_format: str,
    token: str | None,
) -> None:
    """Show APP's recent output; with --follow, stream it live (reconnecting as needed).

    APP (or --app NAME) defaults to config.toml's default_app.

    \b
    Examples:
      aether logs hello-node -f
      aether logs web --since 10m --tail 100
    """
    from aether.client.logs import LogQuery, stream_logs

    query = LogQuery(
        app=resolve_app(one_app(app_argument, app)),
        tail=tail,
        since=parse_since(since),
        follow=follow,
        container=container,
    )
    printer = print_json_line if output_format == "json" else print_text_line
    with open_api(token) as api:
        try:
            stream_logs(api, query, printer)
        except KeyboardInterrupt:
            return  # Ctrl-C ends a follow; that is success


def parse_since(value: str | None, *, now: datetime | None = None) -> str | None:
    """A duration (``10m``, ``1.5h``) → an RFC 3339 UTC timestamp; an RFC 3339 time passes
    through (the server reads it the same way)."""
    from aether.since import parse_duration
    from aether.since import parse_since as since_moment

    if value is None:
        return None
    try:
        moment = since_moment(value, now=now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    if parse_duration(value) is None:
        return value
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_line(entry: dict[str, Any]) -> str:
    stream = entry.get("stream", "stdout")
    marker = {"stderr": " !", "notice": " aether:"}.get(stream, "")
    return f"{entry.get('ts', '')}{marker} {entry.get('line', '')}"


def print_text_line(entry: dict[str, Any]) -> None:
    # A notice (Kubernetes: a pod not scheduled, still fetching, gone) is not the app's output.
    out = sys.stderr if entry.get("stream") == "notice" else sys.stdout
    out.write(format_line(entry) + "\n")
    out.flush()


def print_json_line(entry: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(entry) + "\n")
    sys.stdout.flush()
