"""The start command and the preflight checks that it can start the packed app."""

from __future__ import annotations

import pytest

from aether.pack.entry import default_start_command, start_problems

FILES = {"server.js", "dist/main.js", "node_modules/.bin/next", "packages/api/index.js"}


def exists(path: str) -> bool:
    return path in FILES


@pytest.mark.parametrize(
    ("package", "command"),
    [
        ({"scripts": {"start": "node dist/main.js"}}, "node dist/main.js"),
        ({"main": "lib/app.js"}, "node lib/app.js"),
        ({}, "node server.js"),
    ],
)
def test_default_start_command(package: dict, command: str) -> None:
    assert default_start_command(package, exists) == command


@pytest.mark.parametrize(
    "command",
    [
        "node dist/main",  # node resolves the .js itself
        "NODE_ENV=production node -r dotenv/config server.js",
        "exec node server.js",
        "next start -p $PORT",
        "npm run serve",
        "cd packages/api && node index.js",
        "node -e 'require(\"http\")'",
    ],
)
def test_commands_that_resolve(command: str) -> None:
    assert start_problems(command, exists) == []


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("node dist/server.js", "dist/server.js is not in the app (not built?)"),
        ("ts-node src/index.ts", "ts-node, which is neither in node_modules/.bin"),
        ("./run.sh", "runs ./run.sh, which is not in the app"),
        ("cd packages/web && node index.js", "packages/web/index.js is not in the app"),
        ("node 'unclosed", "is not valid shell"),
    ],
)
def test_commands_that_do_not(command: str, problem: str) -> None:
    (found,) = start_problems(command, exists)
    assert problem in found
