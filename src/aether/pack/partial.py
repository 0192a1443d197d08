"""A new private file for a write that is renamed into place once complete.

Made as ``tempfile.mkstemp`` makes one (``O_EXCL``, mode 0600, a name not in use), without
importing :mod:`tempfile`: it brings :mod:`random` into every pack's start-up, before the
first file of the tree is read (docs/benchmarks.md).
"""

from __future__ import annotations

import errno
import os

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_ATTEMPTS = 100
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def create_partial(folder: str | os.PathLike[str], prefix: str, suffix: str) -> tuple[int, str]:
    """An open descriptor and the absolute path of ``folder/<prefix><8 letters><suffix>``,
    a file that did not exist; OSError as ``open`` raises it."""
    for _ in range(_ATTEMPTS):
        path = os.path.abspath(os.path.join(folder, prefix + _letters() + suffix))
        try:
            return os.open(path, _FLAGS, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused name for a temporary file", os.fspath(folder))


def _letters() -> str:
    return "".join(_LETTERS[byte % len(_LETTERS)] for byte in os.urandom(8))
