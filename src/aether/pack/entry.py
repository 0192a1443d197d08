"""What starts an app, and whether it can: the start command and the preflight checks.

The default start command is the package's ``start`` script (run as ``npm start`` runs it);
without one, ``node <main>`` (``server.js`` or ``index.js`` when ``main`` is unset). The worker
runs it; the client checks it before uploading: the command's program resolves (``node``, a
package manager, a file in the app, or a binary in ``node_modules/.bin``), the entry file it
names exists, and ``engines.node`` admits the Node.js the server runs.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable
from typing import Any

# Programs every Node.js runtime image and host has.
KNOWN_PROGRAMS = frozenset(
    {"node", "npm", "npx", "yarn", "pnpm", "corepack", "sh", "bash", "exec", "env", "true"}
)
_SHELL_SPLIT = ("&&", "||", ";", "|")

Exists = Callable[[str], bool]  # is this path (relative to the app folder) in the artifact?


def default_start_command(package: dict[str, Any], exists: Exists) -> str:
    scripts = package.get("scripts") or {}
    script = scripts.get("start") if isinstance(scripts, dict) else None
    if isinstance(script, str) and script.strip():
        return script.strip()
    main = package.get("main")
    if isinstance(main, str) and main.strip():
        return f"node {shlex.quote(main.strip())}"
    return "node server.js" if exists("server.js") else "node index.js"


def start_problems(command: str, exists: Exists) -> list[str]:
    """Why ``command`` would not start from the packed app (empty: it looks fine)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError as exc:
        return [f"the start command {command!r} is not valid shell: {exc}"]
    base = ""
    while words:
        simple, words = _first_command(words)
        simple = [w for w in simple if not _is_assignment(w)]
        if simple[:1] == ["cd"] and len(simple) == 2:
            base = posixpath.normpath(posixpath.join(base, simple[1]))
            continue
        return _program_problems(simple, base, exists, command)
    return [f"the start command {command!r} runs nothing"]


def _first_command(words: list[str]) -> tuple[list[str], list[str]]:
    for index, word in enumerate(words):
        if word in _SHELL_SPLIT:
            return words[:index], words[index + 1 :]
    return words, []


def _is_assignment(word: str) -> bool:
    name, sep, _ = word.partition("=")
    return bool(sep) and name.replace("_", "a").isalnum()


def _program_problems(words: list[str], base: str, exists: Exists, command: str) -> list[str]:
    if not words:
        return [f"the start command {command!r} runs nothing"]
    program = words[0]
    if program == "exec" and len(words) > 1:
        words = words[1:]
        program = words[0]
    if program == "node":
        return _node_entry_problems(words[1:], base, exists)
    if program in KNOWN_PROGRAMS:
        return []
    if "/" in program:
        path = posixpath.normpath(posixpath.join(base, program))
        return (
            [] if exists(path) else [f"the start command runs {program}, which is not in the app"]
        )
    for folder in _bin_folders(base):
        if exists(
            f"{folder}/node_modules/.bin/{program}" if folder else f"node_modules/.bin/{program}"
        ):
            return []
    return [
        f"the start command runs {program}, which is neither in node_modules/.bin (is the "
        "package that provides it in devDependencies? the artifact has production "
        "dependencies only) nor a program every runtime has"
    ]


def _bin_folders(base: str) -> list[str]:
    """The app folder and its parents: npm puts every node_modules/.bin above on PATH."""
    folders = []
    while base and base != ".":
        folders.append(base)
        base = posixpath.dirname(base)
    return [*folders, ""]


_NODE_VALUE_OPTIONS = frozenset(
    {"-r", "--require", "--import", "--loader", "--experimental-loader"}
)


def _node_entry(args: list[str]) -> str | None:
    """The script ``node ARGS`` runs; None for ``-e``/``-p`` or a bare REPL."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-e", "--eval", "-p", "--print"):
            return None
        elif arg in _NODE_VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _node_entry_problems(args: list[str], base: str, exists: Exists) -> list[str]:
    entry = _node_entry(args)
    if entry is None:
        return []
    path = posixpath.normpath(posixpath.join(base, entry))
    candidates = (path, f"{path}.js", f"{path}.cjs", f"{path}.mjs", f"{path}/index.js")
    if any(exists(candidate) for candidate in candidates):
        return []
    return [f"the start command runs node {entry}, but {path} is not in the app (not built?)"]
