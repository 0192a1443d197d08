"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="fetch")
def fetch() -> None:
    """Download, verify and extract a deployment's artifact."""
    raise NotImplementedYet("`aether fetch` is not implemented yet")
