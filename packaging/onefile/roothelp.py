"""``aether --help`` rendered by click at every width, for the click-free answer in
``aether.entry``.

Rendered from the trees being packed (their click, their command table) by a separate
interpreter that sees nothing else, so the texts are exactly what the shipped CLI prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RENDER = """
import contextlib, io, os, sys
from aether.cli import cli
from aether.entry import HELP_WIDTHS
texts = []
for width in HELP_WIDTHS:
    os.environ["COLUMNS"] = str(width + 2)  # click wraps at min(columns, 100) - 2
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(args=["--help"], prog_name="aether", standalone_mode=False)
    texts.append(out.getvalue())
sys.stdout.write("\\0".join(texts))
"""


def write(app: Path, deps: Path) -> Path:
    """Write ``aether/roothelp.dat`` into the project tree ``app``; returns its path."""
    path_setup = f"import sys; sys.path[:0] = [{str(app)!r}, {str(deps)!r}]\n"
    done = subprocess.run(
        [sys.executable, "-S", "-E", "-B", "-c", path_setup + RENDER],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )
    target = app / "aether" / "roothelp.dat"
    target.write_text(done.stdout, encoding="utf-8")
    return target
