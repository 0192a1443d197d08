"""``.pyc`` files for every shipped Python version, compiled once per source and version.

Bytecode changes with every minor version and the unpacked tree may be read-only (a
container), so the file carries ``__pycache__/<name>.cpython-3XY.pyc`` for each version: no
start ever compiles. Compiled files are kept in the per-user cache (:mod:`onefile.usercache`)
keyed by the interpreter's version, the module's path and its source, so pure-Python files
shared by all platforms compile once, and a rebuild, in any checkout, compiles only what
changed. ``py_compile`` writes each file under another name and renames it into place.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from onefile import usercache

WORKER = Path(__file__).with_name("compile_worker.py")


class CompileFailed(Exception):
    """An interpreter could not compile the build's sources (not a syntax error: a crash)."""


def compile_all(
    cache: Path, sources: dict[str, Path], interpreters: dict[tuple[int, int], Path]
) -> tuple[dict[str, Path], dict[tuple[int, int], list[list[str]]]]:
    """``({arcname of each .pyc: compiled file}, {version: [[module, reason], …]})``.

    ``sources`` maps each ``.py`` file's path inside site-packages to the file. Sources a
    version cannot compile (a module written for another version) get no ``.pyc`` there
    and are listed, as the interpreter would fail on them too.
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            version: pool.submit(_compile_version, cache, sources, version, python)
            for version, python in interpreters.items()
        }
        results = {version: future.result() for version, future in futures.items()}
    compiled = {name: path for pycs, _ in results.values() for name, path in pycs.items()}
    return compiled, {version: failed for version, (_, failed) in results.items()}


def compile_entry(
    cache: Path, source: Path, interpreters: dict[tuple[int, int], Path]
) -> dict[tuple[int, int], Path]:
    """The file's entry module compiled by each interpreter: {version: .pyc file}."""
    compiled, failed = compile_all(cache, {source.name: source}, interpreters)
    if any(failed.values()):
        raise CompileFailed(f"the entry does not compile: {failed}")
    by_tag = {
        path.name.split(".")[-2]: pyc for path, pyc in ((Path(a), p) for a, p in compiled.items())
    }
    return {v: by_tag[f"cpython-{v[0]}{v[1]}"] for v in interpreters}


def _compile_version(
    cache: Path, sources: dict[str, Path], version: tuple[int, int], python: Path
) -> tuple[dict[str, Path], list[list[str]]]:
    tag = f"cpython-{version[0]}{version[1]}"
    folder = cache / f"{tag}-{_full_version(python)}"
    pycs, jobs = {}, []
    for name, source in sorted(sources.items()):
        digest = hashlib.sha256(name.encode() + b"\0" + source.read_bytes()).hexdigest()
        output = folder / digest[:2] / f"{digest}.pyc"
        pycs[_pyc_name(name, tag)] = output
        if not output.is_file():
            jobs.append([str(source), name, str(output)])
    failed = dict(_run_worker(python, jobs)) if jobs else {}
    # A source that failed once fails again: an empty file remembers it.
    for _, name, target in jobs:
        if name in failed:
            usercache.write_atomically(Path(target), b"")
    compiled = {arcname: path for arcname, path in pycs.items() if path.stat().st_size}
    skipped = sorted(set(sources) - {n for n in sources if _pyc_name(n, tag) in compiled})
    return compiled, [[name, failed.get(name, "failed before")] for name in skipped]


def _pyc_name(name: str, tag: str) -> str:
    """``a/b.py`` -> ``a/__pycache__/b.cpython-312.pyc``: where the import system looks."""
    directory, _, file_name = name.rpartition("/")
    return f"{directory}/__pycache__/{file_name[:-3]}.{tag}.pyc".lstrip("/")


def _run_worker(python: Path, jobs: list[list[str]]) -> list[list[str]]:
    done = subprocess.run(
        [str(python), "-S", "-E", str(WORKER)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CompileFailed(f"{python} could not compile the sources:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def _full_version(python: Path) -> str:
    probe = "import sys; print('.'.join(map(str, sys.version_info[:3])))"
    done = subprocess.run([str(python), "-S", "-c", probe], capture_output=True, text=True)
    return done.stdout.strip()
