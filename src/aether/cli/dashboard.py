"""``aether dashboard``: open the web dashboard, signed in, in a browser."""

from __future__ import annotations

from typing import Any

import click

from aether.cli.connection import open_api, token_option
from aether.cli.output import emit, format_option


@click.command(name="dashboard")
@click.option(
    "--print", "print_only", is_flag=True, help="Only print the link; do not open a browser."
)
@token_option
@format_option
def dashboard(print_only: bool, token: str | None, output_format: str) -> None:
    """Open the control plane's web dashboard in your browser, already signed in.

    Asks the server for a one-time sign-in link (it holds a random code, never your token;
    one use, within 10 minutes) and opens it; where there is no graphical browser, or with
    --print, prints it instead. The browser then acts with your token's role.

    \b
    Examples:
      aether dashboard
      aether dashboard --print      # on a server over SSH: open the link elsewhere
    """
    from aether.client.dashboard import open_browser, signin_link

    with open_api(token) as api:
        link = signin_link(api)
    opened = False if print_only else open_browser(link["url"])
    emit({**link, "opened": opened}, render)


def render(data: dict[str, Any]) -> str:
    if data["opened"]:
        return f"Opened the dashboard in your browser: {data['url']}"
    return (
        "Open this one-time sign-in link in a browser (one use, within 10 minutes):\n"
        f"  {data['url']}"
    )
