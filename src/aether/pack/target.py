"""The platform an artifact is built for: os, cpu, libc (and glibc version), Node.js major.

The control plane reports its runtime's platform in ``GET /config`` (``target``); ``aether
deploy`` installs the production dependencies for it and checks every native file against it.
Names are Node.js's own (``process.platform``, ``process.arch``), the ones npm's ``--os``,
``--cpu`` and ``--libc`` take. As text: ``linux-x64-glibc2.36``, ``linux-arm64-musl``,
``darwin-arm64``.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass, replace
from typing import Any

from aether.errors import ConfigError

# Python's platform.machine() → Node's process.arch.
_NODE_ARCH = {
    "x86_64": "x64",
    "amd64": "x64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "ia32",
    "i686": "ia32",
    "ppc64le": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
}
KNOWN_OS = ("linux", "darwin", "win32", "freebsd")
KNOWN_CPU = ("x64", "arm64", "arm", "ia32", "ppc64", "s390x", "riscv64", "loong64")
LIBCS = ("glibc", "musl")
_TEXT = re.compile(
    r"^(?P<os>[a-z0-9]+)-(?P<cpu>[a-z0-9]+)"
    r"(?:-(?P<libc>glibc|musl)(?P<version>\d+\.\d+)?)?$"
)


@dataclass(frozen=True)
class Target:
    """Where an artifact runs. ``libc`` only for Linux; ``node_major`` None: not known."""

    os: str
    cpu: str
    libc: str | None = None
    glibc_version: str | None = None  # e.g. "2.36": the newest symbol version it provides
    node_major: int | None = None
    node_version: str | None = None  # e.g. "20.20.2" when the runtime knows it exactly

    def __str__(self) -> str:
        text = f"{self.os}-{self.cpu}"
        if self.libc:
            text += f"-{self.libc}{self.glibc_version or ''}"
        if self.node_major is not None:
            text += f", Node.js {self.node_version or self.node_major}"
        return text

    @property
    def platform(self) -> str:
        """os-cpu[-libc] without versions: what npm's platform flags and caches key on."""
        return "-".join(part for part in (self.os, self.cpu, self.libc) if part)

    def with_node(self, major: int | None, version: str | None = None) -> Target:
        return replace(self, node_major=major, node_version=version)

    def as_json(self) -> dict[str, Any]:
        return {
            "os": self.os,
            "cpu": self.cpu,
            "libc": self.libc,
            "glibc_version": self.glibc_version,
            "node_major": self.node_major,
            "node_version": self.node_version,
        }

    @classmethod
    def from_json(cls, data: object) -> Target | None:
        """The target of a ``GET /config`` answer; None when the server reports none."""
        if not isinstance(data, dict) or not isinstance(data.get("os"), str):
            return None
        major = data.get("node_major")
        return cls(
            os=data["os"],
            cpu=str(data.get("cpu") or ""),
            libc=data.get("libc") or None,
            glibc_version=data.get("glibc_version") or None,
            node_major=major if isinstance(major, int) else None,
            node_version=data.get("node_version") or None,
        )


def parse_target(text: str, *, source: str = "the target platform") -> Target:
    """``linux-x64-glibc2.36`` / ``linux-arm64-musl`` / ``darwin-arm64`` → Target."""
    match = _TEXT.match(text.strip().lower())
    if match is None or match["os"] not in KNOWN_OS or match["cpu"] not in KNOWN_CPU:
        raise ConfigError(
            f"{source} {text!r} is not a platform: write os-cpu[-libc], e.g. "
            f"linux-x64-glibc2.36, linux-arm64-musl or darwin-arm64 (os: {', '.join(KNOWN_OS)};"
            f" cpu: {', '.join(KNOWN_CPU)})"
        )
    libc = match["libc"]
    if match["os"] == "linux" and libc is None:
        libc = "glibc"
    if match["os"] != "linux" and libc is not None:
        raise ConfigError(f"{source} {text!r}: only Linux has a libc choice")
    version = match["version"] if libc == "glibc" else None
    return Target(os=match["os"], cpu=match["cpu"], libc=libc, glibc_version=version)


def host_target() -> Target:
    """This machine's platform (Node.js major not included: see ``nodeversion``)."""
    system = sys.platform
    os_name = "win32" if system.startswith("win") else "freebsd" if "freebsd" in system else system
    machine = platform.machine().lower()
    cpu = _NODE_ARCH.get(machine, machine)
    if os_name != "linux":
        return Target(os=os_name, cpu=cpu)
    libc, version = _host_libc()
    return Target(os="linux", cpu=cpu, libc=libc, glibc_version=version)


def _host_libc() -> tuple[str, str | None]:
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        found = ""
    if found.startswith("glibc "):
        return "glibc", found.split()[1]
    return "musl", None
