"""The file itself: a few lines of shell that start Python on it, then a zip.

    #!/bin/sh … exec python3 -S -c 'import sys; …; import _aether_start' "$0" "$@"
    __main__.py           import _aether_start (for `python3 aether …`)
    _aether_start.py      imports _aether_main_3XY for this Python, else _aether_main
    _aether_main.py       aether/guard.py + onefile/launcher.py + this build's target and id
    _aether_main_3XY.pyc  the same, compiled by each supported version
    BUILD.json            what is inside: platform, Pythons, floors, wheels, extensions
    payload.tar           site-packages: the dependencies, Aether, and .pyc for every version

Python imports from a zip with anything in front of it, and the shell stops at ``exec``: so
``./aether`` finds a ``python3`` (``-S``: the interpreter's own site-packages and their
start-up hooks stay out) and imports the entry straight from the zip, and ``python3 aether``
runs it as a zipapp. ``-c`` puts the working folder first on ``sys.path``; the shell lines
take it off, so a ``json.py`` or ``typing.py`` in the project being deployed is never imported
in place of the standard library's (and no import looks through that folder first). Every
start costs what it compiles and imports: run as a command the file skips ``runpy`` (which
running a zipapp imports, ~5 ms), and the entry (~3 ms to compile) is precompiled for each
supported version under its own name, as a zip holds only one ``.pyc`` per module. Any other interpreter compiles ``_aether_main.py``, whose first act is to
refuse it in one line. Everything is written in a fixed order with fixed times and modes:
the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

PAYLOAD = "payload.tar"
# zlib level 4: for the payload 4 % larger than the default 6 in 40 % less time (measured).
LEVEL = 4
# 1980-01-01, the earliest time a zip can hold; also the payload's mtimes.
EPOCH = 315532800
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
PRELUDE = """#!/bin/sh
# @TITLE@: a zip that Python runs (python3 -S this-file, or run it as it is).
for python in ${AETHER_PYTHON:-python3 python3.13 python3.12 python3.11}; do
  command -v "$python" >/dev/null 2>&1 && exec "$python" -S -c '
import sys
if sys.path[:1] == [""]: del sys.path[0]
sys.path.insert(0, sys.argv[1]); del sys.argv[0]; import _aether_start' "$0" "$@"
done
echo "aether: error: @NAME@ needs @NEEDS@; found no python3 on PATH (or set AETHER_PYTHON)" >&2
exit 10
"""


def write_payload(path: Path, files: dict[str, Path]) -> str:
    """A tar of ``files`` ({name inside: file}) in name order; returns its build id."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = files[name].stat().st_size, EPOCH, 0o644
            with files[name].open("rb") as handle:
                tar.addfile(info, handle)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


ENTRY = "_aether_main"
START = f"""\
# Run this file's entry for this Python: precompiled for the versions the file supports;
# any other compiles the source, whose first act is to refuse it. Parses on any Python.
import sys

name = "{ENTRY}_%d%d" % tuple(sys.version_info[:2])
try:
    __import__(name)
except ImportError as exc:
    if getattr(exc, "name", name) != name:  # Python 2 names no module
        raise
    import {ENTRY}  # noqa: F401
"""


def entry_source(guard: str, launcher: str, target: dict, folder_name: str) -> str:
    """``_aether_main.py``: check the interpreter first, then unpack and start."""
    calls = f"refuse_unsupported({target!r})\nlaunch({folder_name!r}, {PAYLOAD!r})\n"
    return "\n\n".join([guard.rstrip(), launcher.rstrip(), calls])


def prelude(title: str, name: str, needs: str) -> bytes:
    text = PRELUDE.replace("@TITLE@", title).replace("@NAME@", name).replace("@NEEDS@", needs)
    return text.encode()


def write_file(
    out: Path,
    head: bytes,
    main: str,
    compiled: dict[tuple[int, int], Path],
    build_info: dict,
    payload: Path,
) -> None:
    """Write the file atomically: a partial file renamed into place, mode 0755.

    ``main`` is the entry's source and ``compiled`` its ``.pyc`` for each version.
    """
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as handle:
            handle.write(head)
            with zipfile.ZipFile(handle, "w") as archive:
                # Stored, not deflated: a start that decompresses imports zlib first.
                start = b"import _aether_start  # noqa: F401\n"
                archive.writestr(_entry("__main__.py", stored=True), start)
                archive.writestr(_entry("_aether_start.py", stored=True), START.encode())
                archive.writestr(_entry(f"{ENTRY}.py", stored=True), main.encode())
                for (major, minor), pyc in sorted(compiled.items()):
                    name = f"{ENTRY}_{major}{minor}.pyc"
                    archive.writestr(_entry(name, stored=True), pyc.read_bytes())
                info = json.dumps(build_info, indent=2, sort_keys=True) + "\n"
                archive.writestr(_entry("BUILD.json"), info.encode())
                with payload.open("rb") as source, archive.open(_entry(PAYLOAD), "w") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
        partial.chmod(0o755)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _entry(name: str, *, stored: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    # ZipFile.open(…, "w") takes the level from here only.
    info._compresslevel = LEVEL  # type: ignore[attr-defined]
    info.create_system = 3  # Unix, whatever system builds it
    info.external_attr = 0o644 << 16
    return info


def build_info(path: Path) -> dict:
    """The ``BUILD.json`` of a built file."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("BUILD.json"))
