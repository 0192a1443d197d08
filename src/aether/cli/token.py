"""Placeholder until this command group is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.group()
def token() -> None:
    """Administer API tokens on the server side."""


@token.command(name="list")
def list_() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("`aether token` is not implemented yet")
