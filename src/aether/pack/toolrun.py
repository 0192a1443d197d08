"""Running the project's tools (npm, pnpm, yarn, node, the build script) for the staged build.

A failing command is an InternalError (exit 20) that quotes the tool's own last words. Tool
versions are asked once per binary and remembered in the cache dir by the binary's path, size
and mtime: ``npm --version`` alone takes ~140 ms, and every deploy needs the version for its
cache keys.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from aether.errors import ConfigError, InternalError

OUTPUT_TAIL = 4000
log = logging.getLogger("aether.pack")
OutputCallback = Callable[[str], None]


def run_tool(
    argv: Sequence[str],
    cwd: Path,
    environ: Mapping[str, str],
    *,
    what: str | None = None,
    on_output: OutputCallback | None = None,
) -> float:
    """Run ``argv`` in ``cwd``; seconds taken. Output lines go to ``on_output`` (debug log)."""
    import subprocess  # ~5 ms to import: only for packs that run a tool

    shown = what or " ".join((Path(argv[0]).name, *argv[1:]))
    started = time.perf_counter()
    tail: list[str] = []
    try:
        with subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                del tail[:-60]
                (on_output or _debug)(line)
            code = process.wait()
    except OSError as exc:
        raise InternalError(f"cannot run `{shown}`: {exc.strerror or exc}") from exc
    if code != 0:
        detail = "\n".join(tail)[-OUTPUT_TAIL:]
        raise InternalError(f"`{shown}` failed with exit code {code} in {cwd}:\n{detail}")
    return time.perf_counter() - started


def _debug(line: str) -> None:
    log.debug("| %s", line)


def tool_version(argv: str | Sequence[str], environ: Mapping[str, str], cache: Path) -> str:
    """``argv --version``, remembered per binary (path, size, mtime) in ``cache``."""
    command = [argv] if isinstance(argv, str) else list(argv)
    key = _binary_key(command)
    known = _read_versions(cache)
    if key is not None and key in known:
        return known[key]
    version = _ask_version(command, environ)
    if key is not None:
        known[key] = version
        _write_versions(cache, known)
    return version


def _binary_key(command: list[str]) -> str | None:
    if len(command) != 1:
        return " ".join(command)  # npx with a pinned version: the text says it all
    try:
        info = os.stat(command[0])
    except OSError:
        return None
    return f"{command[0]}:{info.st_size}:{info.st_mtime_ns}"


def _ask_version(command: list[str], environ: Mapping[str, str]) -> str:
    import subprocess

    try:
        result = subprocess.run(
            [*command, "--version"],
            env={**environ, "npm_config_yes": "true", "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run `{' '.join(command)} --version`: {exc}") from exc
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        detail = (result.stderr.strip() or result.stdout.strip())[-OUTPUT_TAIL:]
        raise ConfigError(f"`{' '.join(command)} --version` failed: {detail}")
    return lines[-1].strip().lstrip("v")


def _versions_file(cache: Path) -> Path:
    return cache / "tool-versions.json"


def _read_versions(cache: Path) -> dict[str, str]:
    try:
        data = json.loads(_versions_file(cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_versions(cache: Path, versions: dict[str, str]) -> None:
    path = _versions_file(cache)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(json.dumps(versions, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:  # only a cache: the next run asks again
        log.debug("cannot remember tool versions in %s: %s", path, exc)
