"""Which modules a piece of code loads, asked of a fresh interpreter (the test's own has
loaded nearly everything already): for the tests that keep a path's imports short."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_loaded_by(code: str, prefix: str = "") -> set[str]:
    """The names in ``sys.modules`` starting with ``prefix`` once ``code`` ran in a new
    ``python -c``."""
    probe = (
        f"{code}\nimport json as _json, sys as _sys\n"
        f"print(_json.dumps(sorted(m for m in _sys.modules if m.startswith({prefix!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))
