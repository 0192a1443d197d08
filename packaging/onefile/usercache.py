"""The per-user cache that every checkout's build shares: ``$XDG_CACHE_HOME/aether-build``
(``~/.cache/aether-build`` without it).

What is kept there is named by what it was made from (wheels by their file names and digests,
bytecode by its source and interpreter, dependency trees by their wheel set), so a fresh clone
reuses what another checkout made, and a change of inputs never reads an old entry. Entries
are made under another name and renamed into place: builds running at the same time, or one
killed halfway, never leave a part where a whole is expected.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

# Staging folders older than this were left by a build that was killed; entries unused for
# this long give their space back.
ABANDONED_SECS = 24 * 3600
UNUSED_SECS = 14 * 24 * 3600


def root(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aether-build"


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` whole, or what it held before: never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, path)


def remove_older(folder: Path, pattern: str, seconds: float) -> None:
    """Remove what matches ``pattern`` in ``folder`` and was last changed over ``seconds``
    ago; what another build removes first is no error."""
    cutoff = time.time() - seconds
    for path in folder.glob(pattern):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
