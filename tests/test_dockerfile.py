"""The Dockerfile runs the single file for the image's architecture, as a non-root user.

No container engine runs here, so this reads the Dockerfile's instructions instead of
building the image: which file each architecture copies, the base image's Python, the
unpack at build time, the user, and what the build context lets through.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aether.guard import SUPPORTED_PYTHONS
from onefile.platforms import PLATFORMS

ROOT = Path(__file__).resolve().parent.parent
# Docker's architecture names (TARGETARCH) -> the platform of the file built for it.
ARCHES = {"amd64": "linux-x86_64", "arm64": "linux-aarch64"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def arguments(keyword: str) -> list[str]:
    return [rest for kw, rest in instructions() if kw == keyword]


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name (the unnamed last one is "final")."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            words = rest.split()
            current = found.setdefault(words[2] if len(words) == 3 else "final", [])
        current.append((keyword, rest))
    return found


def test_each_architecture_copies_its_own_file() -> None:
    assert instructions()[0] == ("ARG", "TARGETARCH")  # global: usable in FROM
    built = stages()
    for arch, platform in ARCHES.items():
        stage = built[f"file-{arch}"]
        assert stage[0] == ("FROM", f"scratch AS file-{arch}")
        assert ("COPY", f"dist/{PLATFORMS[platform].file_name} /aether") in stage
    assert built["file"] == [("FROM", "file-${TARGETARCH} AS file")]
    assert ("COPY", "--from=file /aether /usr/local/bin/aether") in built["final"]


def test_the_build_context_lets_the_linux_files_through() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    for platform in ARCHES.values():
        assert f"!dist/{PLATFORMS[platform].file_name}" in ignore
    assert "--platform all" in (ROOT / "Makefile").read_text()  # make dist builds both


def test_base_image_runs_a_python_the_file_supports() -> None:
    (base,) = [rest for kw, rest in stages()["final"] if kw == "FROM"]
    match = re.fullmatch(r"python:3\.(\d+)-slim", base)
    assert match and (3, int(match.group(1))) in SUPPORTED_PYTHONS


def test_unpacks_at_build_time_into_a_folder_the_user_can_read() -> None:
    env = " ".join(arguments("ENV"))
    match = re.search(r"AETHER_UNPACK_DIR=(\S+)", env)
    assert match, "AETHER_UNPACK_DIR is not set in the image"
    runs = " ".join(arguments("RUN"))
    assert "aether --version" in runs
    assert f"chmod -R a+rX {match.group(1)}" in runs


def test_runs_as_a_non_root_user() -> None:
    users = arguments("USER")
    assert users, "no USER instruction: the container would run as root"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("0", "root")
    keywords = [kw for kw, _ in instructions()]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw in ("RUN", "COPY"))


def test_entrypoint_and_default_command() -> None:
    assert [json.loads(rest) for rest in arguments("ENTRYPOINT")] == [["aether"]]
    assert [json.loads(rest) for rest in arguments("CMD")] == [["serve", "--host", "0.0.0.0"]]
    (health,) = arguments("HEALTHCHECK")
    assert '"python3", "-c"' in health


def test_data_dir_is_a_volume() -> None:
    env = " ".join(arguments("ENV"))
    match = re.search(r"AETHER_DATA_DIR=(\S+)", env)
    assert match, "AETHER_DATA_DIR is not set in the image"
    assert [json.loads(rest) for rest in arguments("VOLUME")] == [[match.group(1)]]
