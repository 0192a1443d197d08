"""Helpers for the tests of the single files: run one as a user would, read what is inside.

The files are built once per run by ``plugins.release_build`` with ``scripts/build-zipapp
--platform all --sums`` into the run's temporary folder (``dist/`` is left alone); the caches under
``build/`` make later sessions fast and offline.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from onefile import archive
from onefile.layers import glibc_needed
from onefile.platforms import PLATFORMS
from plugins.live_server import clean_environ

ROOT = Path(__file__).resolve().parents[2]
# ELF e_machine and Mach-O cputype of each platform's compiled files.
MACHO_MAGIC_64 = b"\xcf\xfa\xed\xfe"
FAT_MAGIC = b"\xca\xfe\xba\xbe"


@dataclass(frozen=True)
class Release:
    folder: Path
    public_key_pem: str  # of the key the session signed SHA256SUMS with
    build_log: str

    def file(self, platform: str) -> Path:
        return self.folder / PLATFORMS[platform].file_name


@dataclass(frozen=True)
class Installed:
    """One file run by one interpreter, with its own HOME, XDG folders and unpack folder."""

    path: Path
    python: Path  # the real binary; its folder is first on PATH, so `python3` is this one
    env: dict[str, str]

    def run(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``./aether ARGS``: the file's own first lines find python3 on PATH."""
        return subprocess.run(
            [str(self.path), *args],
            env=env or self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def popen(self, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as handle:
            return subprocess.Popen([str(self.path), *args], env=env, stdout=handle, stderr=handle)


def user_env(root: Path, python: Path) -> dict[str, str]:
    """A clean environment whose ``python3`` is ``python`` and whose folders are under root."""
    env = {k: v for k, v in clean_environ().items() if not k.startswith("PYTHON")}
    folders = {
        "HOME": root / "home",
        "XDG_CONFIG_HOME": root / "home" / ".config",
        "XDG_CACHE_HOME": root / "home" / ".cache",
        "XDG_DATA_HOME": root / "home" / ".local" / "share",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    env.update({key: str(folder) for key, folder in folders.items()})
    env["PATH"] = f"{python.parent}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return env


@dataclass(frozen=True)
class Member:
    """A payload entry; for compiled files, the CPUs and newest glibc version it names."""

    name: str
    arches: frozenset[str] = frozenset()
    glibc: tuple[int, int] | None = None


@functools.cache
def payload(path: Path) -> tuple[Member, ...]:
    """The payload's entries, read once per file and session (as the launcher streams it)."""
    members = []
    with zipfile.ZipFile(path) as outer, outer.open(archive.PAYLOAD) as stream:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for entry in tar:
                reader = tar.extractfile(entry)
                if entry.name.endswith(".so") and reader is not None:
                    data = reader.read()
                    members.append(
                        Member(entry.name, binary_arches(data[:4096]), glibc_needed(data))
                    )
                else:
                    members.append(Member(entry.name))
    return tuple(members)


def binary_arches(head: bytes) -> frozenset[str]:
    """The CPU types an ELF or Mach-O (thin or universal) file's first bytes name."""
    if head[:4] == b"\x7fELF":
        machine = int.from_bytes(head[18:20], "little")
        return frozenset({{62: "x86_64", 183: "aarch64"}.get(machine, f"elf-{machine}")})
    if head[:4] == MACHO_MAGIC_64:
        return frozenset({_macho_cpu(int.from_bytes(head[4:8], "little"))})
    if head[:4] == FAT_MAGIC:
        count = int.from_bytes(head[4:8], "big")
        cpus = [int.from_bytes(head[8 + 20 * i : 12 + 20 * i], "big") for i in range(count)]
        return frozenset(_macho_cpu(cpu) for cpu in cpus)
    return frozenset({"unknown"})


def _macho_cpu(cputype: int) -> str:
    return {0x0100000C: "arm64", 0x01000007: "x86_64"}.get(cputype, f"macho-{cputype:#x}")
