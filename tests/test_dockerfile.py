"""The Dockerfile runs the zipapp that scripts/build-zipapp writes, as a non-root user.

No container engine runs here, so this reads the Dockerfile's instructions instead of
building the image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def test_base_is_python_3_11_slim_matching_the_zipapp_shebang() -> None:
    assert arguments("FROM") == ["python:3.11-slim"]
    shebang = (ROOT / "scripts" / "build-zipapp").read_text()
    assert 'SHEBANG = "/usr/bin/env -S python3.11 -S"' in shebang


def test_copies_the_file_that_make_zipapp_builds() -> None:
    build_script = (ROOT / "scripts" / "build-zipapp").read_text()
    assert 'default=ROOT / "dist" / "aether"' in build_script
    assert "scripts/build-zipapp" in (ROOT / "Makefile").read_text()
    copies = [rest.split() for rest in arguments("COPY")]
    assert ["dist/aether", "/usr/local/bin/aether"] in copies
    # The build context must let the zipapp through .dockerignore.
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!dist/aether" in ignore


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


def test_data_dir_is_a_volume() -> None:
    env = " ".join(arguments("ENV"))
    match = re.search(r"AETHER_DATA_DIR=(\S+)", env)
    assert match, "AETHER_DATA_DIR is not set in the image"
    assert [json.loads(rest) for rest in arguments("VOLUME")] == [[match.group(1)]]
