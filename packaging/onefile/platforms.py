"""The platforms a single file is built for, and the wheel tags each one accepts.

A file runs where every compiled part in it loads: the oldest glibc (or macOS) its wheels
allow. Each platform lists the tags pip may pick up to a ceiling; for Linux the oldest come
first, which pip prefers, so where a package has wheels for several glibc versions the oldest
is taken: the floor is the oldest the wheels allow and never this build machine's (``pip
download`` without ``--platform`` would pick the host's newest wheels). The floor actually reached is computed from the chosen
wheels (``wheels.floor``) and written into the file, whose entry refuses older systems.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from packaging.tags import mac_platforms

# The CPython versions every file carries compiled parts and bytecode for; aether.guard
# holds the same list for `python -m aether` and setup.cfg's python_requires.
PYTHONS: tuple[tuple[int, int], ...] = ((3, 11), (3, 12), (3, 13))


@dataclass(frozen=True)
class Override:
    """A lock pin replaced on one platform, and why (the README's download table says so)."""

    name: str
    version: str
    reason: str


@dataclass(frozen=True)
class Platform:
    name: str  # the file is aether-<name>
    title: str  # for people: "Linux x86-64"
    system: str  # sys.platform ("linux", "darwin")
    machine: str  # os.uname().machine
    elf_machine: int | None  # ELF e_machine of its .so files (Linux)
    macho_cpu: int | None  # Mach-O cputype of its .so files (macOS)
    wheel_tags: tuple[str, ...]  # pip --platform values
    glibc_max: tuple[int, int] | None = None  # the ceiling: no wheel needs a newer glibc
    macos_max: tuple[int, int] | None = None
    overrides: tuple[Override, ...] = ()

    @property
    def file_name(self) -> str:
        return f"aether-{self.name}"

    @property
    def so_suffix(self) -> str:
        """The platform part of a versioned extension's name (``x86_64-linux-gnu``)."""
        return {"linux": f"{self.machine}-linux-gnu", "darwin": "darwin"}[self.system]


def manylinux_tags(arch: str, oldest: int, newest: int) -> tuple[str, ...]:
    """``manylinux_2_<minor>_<arch>`` from the oldest minor to the newest, each with its
    legacy alias (``manylinux2014`` is 2.17, ``manylinux2010`` 2.12, ``manylinux1`` 2.5)."""
    aliases = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for minor in range(oldest, newest + 1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in aliases:
            tags.append(f"{aliases[minor]}_{arch}")
    return tuple(tags)


def _platform(
    system: str,
    machine: str,
    *,
    cpu: int,
    tags: tuple[str, ...],
    ceiling: tuple[int, int],
    overrides: tuple[Override, ...] = (),
) -> Platform:
    """A platform's record; ``cpu`` is its ELF e_machine (Linux) or Mach-O cputype (macOS),
    ``ceiling`` the newest glibc or macOS its wheels may need."""
    linux = system == "linux"
    return Platform(
        name=f"{'linux' if linux else 'macos'}-{machine}",
        title=f"{'Linux' if linux else 'macOS'} {machine.replace('_', '-')}",
        system=system,
        machine=machine,
        elf_machine=cpu if linux else None,
        macho_cpu=None if linux else cpu,
        wheel_tags=tags,
        glibc_max=ceiling if linux else None,
        macos_max=None if linux else ceiling,
        overrides=overrides,
    )


LINUX_X86_64 = _platform(
    "linux", "x86_64", cpu=62, tags=manylinux_tags("x86_64", 5, 17), ceiling=(2, 17)
)
# psycopg-binary has aarch64 wheels only from manylinux_2_27 on.
LINUX_AARCH64 = _platform(
    "linux", "aarch64", cpu=183, tags=manylinux_tags("aarch64", 17, 28), ceiling=(2, 28)
)
MACOS_ARM64 = _platform(
    "darwin", "arm64", cpu=0x0100000C, tags=tuple(mac_platforms((11, 0), "arm64")), ceiling=(11, 0)
)
MACOS_X86_64 = _platform(
    "darwin",
    "x86_64",
    cpu=0x01000007,
    tags=tuple(mac_platforms((10, 15), "x86_64")),
    ceiling=(10, 15),
    overrides=(
        Override(
            "cryptography",
            "48.0.1",
            "the newest cryptography with a macOS x86-64 wheel; later releases ship macOS "
            "wheels for arm64 only",
        ),
        Override(
            "httptools",
            "0.8.0",
            "the newest httptools with a macOS x86-64 wheel for 10.15; 0.9.0's needs macOS 11",
        ),
    ),
)
PLATFORMS = {p.name: p for p in (LINUX_X86_64, LINUX_AARCH64, MACOS_ARM64, MACOS_X86_64)}


def host() -> Platform | None:
    """The platform of this machine, when a file is built for it."""
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    machine = os.uname().machine
    return next((p for p in PLATFORMS.values() if (p.system, p.machine) == (system, machine)), None)
