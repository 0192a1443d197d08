"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="gc")
def gc() -> None:
    """Delete stale pending uploads."""
    raise NotImplementedYet("`aether gc` is not implemented yet")
