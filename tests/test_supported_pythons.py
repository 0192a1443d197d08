"""One list of supported Pythons: the package metadata, the interpreter check and the build.

pip reads ``python_requires`` from setup.cfg, ``python -m aether`` checks
``aether.guard.SUPPORTED_PYTHONS``, and every single file carries compiled parts for
``onefile.platforms.PYTHONS``; they must name the same versions.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.specifiers import SpecifierSet

from aether.guard import SUPPORTED_PYTHONS
from onefile.platforms import PYTHONS

ROOT = Path(__file__).resolve().parent.parent


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_the_build_and_the_check_name_the_same_versions() -> None:
    assert tuple(SUPPORTED_PYTHONS) == PYTHONS


def test_pip_accepts_exactly_the_supported_versions() -> None:
    allowed = SpecifierSet(setup_cfg()["options"]["python_requires"])
    for minor in range(8, 16):
        assert (f"3.{minor}.0" in allowed) == ((3, minor) in SUPPORTED_PYTHONS), f"3.{minor}"


def test_classifiers_list_the_supported_versions() -> None:
    classifiers = setup_cfg()["metadata"]["classifiers"].split("\n")
    listed = {
        c.rsplit(":: ", 1)[1]
        for c in classifiers
        if c.startswith("Programming Language :: Python :: 3.")
    }
    assert listed == {f"{a}.{b}" for a, b in SUPPORTED_PYTHONS}


def test_the_command_starts_at_the_click_free_entry() -> None:
    scripts = setup_cfg()["options.entry_points"]["console_scripts"]
    assert scripts.strip() == "aether = aether.entry:main"
