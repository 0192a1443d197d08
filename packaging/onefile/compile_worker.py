"""Compile sources to ``.pyc`` files with the interpreter that runs this script.

Run by :mod:`onefile.bytecode` as ``pythonX.Y -S -E compile_worker.py`` with a JSON list of
``[source path, name shown in tracebacks, output path]`` on stdin; prints a JSON list of
``[name, reason]`` for the sources this version cannot compile. The files are
unchecked-hash ``.pyc``: valid whatever the unpacked files' modification times, and never
compared with their source at import (the unpacked tree is not edited).
"""

import json
import py_compile
import sys


def main():
    failed = []
    for source, name, output in json.load(sys.stdin):
        try:
            py_compile.compile(
                source,
                cfile=output,
                dfile=name,
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError as exc:
            failed.append([name, exc.exc_type_name])
    json.dump(failed, sys.stdout)


if __name__ == "__main__":
    main()
