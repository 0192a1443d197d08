"""Which Node.js the project asks for: ``.node-version``, ``.nvmrc`` and ``engines.node``.

``.node-version`` or ``.nvmrc`` (in that order) name a version or a major (``20``,
``v20.11.1``, ``lts/iron``); ``engines.node`` is a range that must admit whatever runs the app.
The major the app is built for and recorded with is the file's major, else the runtime's own
major when the range admits it, else the nearest major the range admits. Ranges are npm's
(``nodesemver``, a port of node-semver), so ``>=18 <21``, ``^20``, ``20.x`` mean what npm says.
The commonest ranges (``>=18``, ``>=18.17.0``, ``^20``, ``20``, ``20.x``) are answered without
it (importing it costs a noticeable part of a deploy's start-up); a test holds both equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether.errors import IOFailure, UsageError

VERSION_FILES = (".node-version", ".nvmrc")
# nvm's LTS code names → majors (nvm resolves "lts/<name>" to the newest of that line).
LTS_NAMES = {
    "argon": 4,
    "boron": 6,
    "carbon": 8,
    "dubnium": 10,
    "erbium": 12,
    "fermium": 14,
    "gallium": 16,
    "hydrogen": 18,
    "iron": 20,
    "jod": 22,
    "krypton": 24,
}
_MAJOR_SEARCH = range(4, 60)
_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$")
_N = r"0|[1-9]\d{0,8}"  # a version number as npm reads it (no leading zeros)
# Ranges answered without nodesemver: ">=A[.B[.C]]", or one major ("^A", "A", "A.x", "A.x.x").
_AT_LEAST = re.compile(rf"^>=\s*v?({_N})(?:\.({_N})(?:\.({_N}))?)?$")
_ONE_MAJOR = re.compile(rf"^(?:\^\s*)?v?({_N})(?:\.[x*](?:\.[x*])?)?$")
_PLAIN = re.compile(rf"^({_N})\.({_N})\.({_N})$")


@dataclass(frozen=True)
class NodeRequest:
    """What the project says about Node.js (each part optional)."""

    pinned_major: int | None = None  # from .node-version / .nvmrc
    pinned_from: str | None = None  # the file it came from
    engines: str | None = None  # engines.node, verbatim

    def choose_major(self, runtime_major: int | None) -> int | None:
        """The major to build for and record; None when nothing decides it."""
        if self.pinned_major is not None:
            return self.pinned_major
        if self.engines is None:
            return runtime_major
        if runtime_major is not None and admits_major(self.engines, runtime_major):
            return runtime_major
        admitted = [major for major in _MAJOR_SEARCH if admits_major(self.engines, major)]
        if not admitted:
            return runtime_major
        if runtime_major is None:
            return admitted[-1]
        newer = [major for major in admitted if major > runtime_major]
        return newer[0] if newer else admitted[-1]

    def problems(self, major: int | None, version: str | None = None) -> list[str]:
        """Why Node.js ``version`` (or any release of ``major``) cannot run the project."""
        if major is None or self.engines is None:
            return []
        if version is not None and not _satisfies(version, self.engines):
            return [f'engines.node "{self.engines}" does not admit Node.js {version}']
        if version is None and not admits_major(self.engines, major):
            return [f'engines.node "{self.engines}" admits no Node.js {major} release']
        return []


def read_node_request(project_dir: Path, package: dict[str, Any]) -> NodeRequest:
    pinned, source = _pinned_major(project_dir)
    engines = package.get("engines")
    range_text = engines.get("node") if isinstance(engines, dict) else None
    if range_text is not None and not isinstance(range_text, str):
        raise UsageError('package.json: engines.node must be a string such as ">=20"')
    if range_text is not None:
        _check_range(range_text)
    return NodeRequest(pinned, source, range_text.strip() if range_text else None)


def parse_major(text: str) -> int | None:
    """``v20.11.1`` / ``20`` / ``lts/iron`` → 20; None for names like ``node`` or ``lts/*``."""
    value = text.strip().lower()
    if value.startswith("lts/"):
        return LTS_NAMES.get(value[4:])
    match = _VERSION.match(value)
    return int(match[1]) if match else None


def admits_major(range_text: str, major: int) -> bool:
    """True when some Node.js ``major``.x.y satisfies the npm range."""
    candidates = [f"{major}.{minor}.{patch}" for minor in (0, 99, 999) for patch in (0, 999)]
    if _simple_range(range_text):
        return any(_satisfies(candidate, range_text) for candidate in candidates)
    import nodesemver  # ~30 ms to import: only for ranges the simple forms do not cover

    return nodesemver.max_satisfying(candidates, range_text, loose=True) is not None


def _satisfies(version: str, range_text: str) -> bool:
    plain = _PLAIN.match(version.strip().lstrip("v"))
    if plain and _simple_range(range_text):
        wanted = tuple(int(part) for part in plain.groups())
        one_major = _ONE_MAJOR.match(range_text.strip())
        if one_major:
            return wanted[0] == int(one_major[1])
        at_least = _AT_LEAST.match(range_text.strip())
        assert at_least is not None
        return wanted >= tuple(int(part or 0) for part in at_least.groups())
    import nodesemver

    return bool(nodesemver.satisfies(version.lstrip("v"), range_text, loose=True))


def _simple_range(range_text: str) -> bool:
    text = range_text.strip()
    return bool(_AT_LEAST.match(text) or _ONE_MAJOR.match(text))


def _check_range(range_text: str) -> None:
    if _simple_range(range_text):
        return
    import nodesemver

    if nodesemver.valid_range(range_text, loose=True) is None:
        raise UsageError(f'package.json: engines.node "{range_text}" is not a version range')


def _pinned_major(project_dir: Path) -> tuple[int | None, str | None]:
    for name in VERSION_FILES:
        path = project_dir / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise IOFailure(f"cannot read {path}: {exc}") from exc
        lines = [line.split("#")[0].strip() for line in text.splitlines()]
        value = next((line for line in lines if line), "")
        if value:
            return parse_major(value), name
    return None, None


def binary_version(binary: str) -> str | None:
    """What ``binary --version`` says (``20.20.2``); None when it cannot run."""
    import subprocess  # only the server and worker ask, once per binary

    try:
        result = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = result.stdout.strip().lstrip("v")
    return text if result.returncode == 0 and parse_major(text) is not None else None
