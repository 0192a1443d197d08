"""``aether completions --shell bash|zsh|fish``: click's own completion script."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--shell",
    type=click.Choice(("bash", "zsh", "fish")),
    required=True,
    help="Which shell to print the script for.",
)
def completions(shell: str) -> None:
    """Print a completion script for SHELL.

    \b
    Install, for example:
      aether completions --shell bash > ~/.local/share/bash-completion/completions/aether
      aether completions --shell zsh  > "${fpath[1]}/_aether"
      aether completions --shell fish > ~/.config/fish/completions/aether.fish
    """
    from click.shell_completion import get_completion_class

    from aether.cli import cli

    completion_class = get_completion_class(shell)
    assert completion_class is not None  # --shell admits only shells click knows
    script = completion_class(cli, {}, "aether", "_AETHER_COMPLETE").source()
    click.echo(script)
