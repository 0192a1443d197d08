"""Every environment variable Aether reads is in the README's configuration table, and back.

The source is scanned for ``AETHER_*`` names and ``DATABASE_URL`` (settings, click ``envvar=``,
docstrings that promise a variable), and so is the single-file build, whose launcher and build
script read their own; the table is the one under ``## Configuration``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "aether"
SINGLE_FILE = [
    *sorted((ROOT / "packaging" / "onefile").glob("*.py")),
    ROOT / "scripts" / "build-zipapp",
]
README = ROOT / "README.md"
NAME = re.compile(r"\b(AETHER_[A-Z0-9_]*[A-Z0-9]|DATABASE_URL)\b")
# Variables Aether *sets* in the environment of the apps it runs: not configuration, so they
# are documented in the README's prose instead of the configuration table.
APP_ENVIRONMENT = frozenset({"AETHER_DEPLOYMENT_ID", "AETHER_DIGEST"})


def names_in_source() -> dict[str, list[str]]:
    """Each variable name found under src/aether and where (path:line)."""
    found: dict[str, list[str]] = {}
    for path in [*sorted(SOURCE.rglob("*.py")), *SINGLE_FILE]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for name in NAME.findall(line):
                found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def configuration_table() -> set[str]:
    """Names in the first column of the table in README's ``## Configuration`` section."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Configuration\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, "README.md has no '## Configuration' section followed by another section"
    names: set[str] = set()
    for line in match.group(1).splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            names.update(NAME.findall(first_cell))
    return names


def test_the_configuration_table_is_found() -> None:
    assert {"AETHER_API_BASE", "AETHER_TOKEN", "DATABASE_URL"} <= configuration_table()


def test_every_variable_read_in_src_is_in_the_configuration_table() -> None:
    documented = configuration_table() | APP_ENVIRONMENT
    missing = {name: where for name, where in names_in_source().items() if name not in documented}
    where = "\n".join(f"  {name}  ({', '.join(at[:3])})" for name, at in sorted(missing.items()))
    assert not missing, (
        "add these to README.md's configuration table (variables Aether sets for apps go in "
        f"APP_ENVIRONMENT here and in the README's prose instead):\n{where}"
    )


def test_variables_given_to_apps_are_documented() -> None:
    readme = README.read_text(encoding="utf-8")
    undocumented = sorted(name for name in APP_ENVIRONMENT if f"`{name}`" not in readme)
    assert not undocumented, f"README.md should say what these app variables hold: {undocumented}"


def test_every_documented_variable_is_read_somewhere() -> None:
    stale = configuration_table() - set(names_in_source())
    assert not stale, f"README.md documents variables nothing reads: {sorted(stale)}"
