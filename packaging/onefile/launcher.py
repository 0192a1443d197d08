"""The rest of the single file's entry: unpack the payload once, then start Aether.

``scripts/build-zipapp`` writes the file's entry (``_aether_main.py``, see
``onefile.archive``) as ``aether/guard.py``, then this source, then the two calls
``refuse_unsupported(TARGET)`` and ``launch(FOLDER, PAYLOAD)``: by the time this code runs,
the interpreter is known to be one the file has compiled parts for. Until then it must still
parse on any Python, like the guard (no annotations, no f-strings).

The payload is one tar (a deflated member of the zip), so a start reads a zip directory of
eight entries instead of thousands (each entry costs every start ~4 µs). It is unpacked once per build
into ``$AETHER_UNPACK_DIR`` (default ``${XDG_CACHE_HOME:-~/.cache}/aether/unpacked``) under
a name carrying the build's digest; later starts only check that folder exists.
"""

import os
import sys

EXIT_IO = 30  # aether.errors.EXIT_IO


def launch(build_id, payload):
    folder = os.path.join(unpack_root(), build_id)
    if not os.path.isdir(folder):
        unpack(sys.argv[0], payload, folder)
    add_site_packages(folder)
    from aether.entry import main

    main()


def unpack_root():
    configured = os.environ.get("AETHER_UNPACK_DIR")
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "aether", "unpacked")


def unpack(archive_path, payload, folder):
    """Extract the payload into a fresh folder, then rename it into place (atomic)."""
    import shutil
    import tarfile
    import zipfile
    import zlib

    if sys.stderr.isatty():
        sys.stderr.write("aether: first start of this build: unpacking into " + folder + "\n")
    partial = folder + ".partial-" + str(os.getpid())
    try:
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        with zipfile.ZipFile(archive_path) as archive, archive.open(payload) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                # The "data" filter (3.11.4+) refuses anything but plain files and folders.
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(partial, filter="data")
                else:
                    tar.extractall(partial)
        os.rename(partial, folder)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if os.path.isdir(folder):  # another start of the same build got there first
            return
        where = os.path.dirname(folder)
        fail("cannot unpack into " + where + ": " + (exc.strerror or str(exc))
             + "; set AETHER_UNPACK_DIR to a writable folder")  # fmt: skip
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, ValueError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        fail(archive_path + " is damaged (" + str(exc) + "); download it again")


def fail(message):
    sys.stderr.write("aether: error: " + message + "\n")
    sys.exit(EXIT_IO)


def add_site_packages(folder):
    """After the standard library, before any site-packages of the interpreter's own."""
    for index, entry in enumerate(sys.path):
        if entry.endswith(("site-packages", "dist-packages")):
            sys.path.insert(index, folder)
            return
    sys.path.append(folder)
