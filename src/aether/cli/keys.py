"""Placeholder until this command group is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.group()
def keys() -> None:
    """Create and register artifact signing keys."""


@keys.command(name="list")
def list_() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("`aether keys` is not implemented yet")
