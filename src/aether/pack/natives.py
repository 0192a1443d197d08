"""Native files against the target platform, by their headers, before anything is uploaded.

Candidates are ``*.node``, shared libraries (``*.so*``, ``*.dylib``, ``*.dll``) and files with
an executable bit under ``node_modules``; a candidate that is not a binary (a script) is fine.
For a Linux target an ELF file must match the target's class and machine (x64 = 64-bit
x86-64, …), be built for Linux, link the target's libc (glibc or musl), need no glibc symbol
version newer than the target's, and, for addons that are not N-API, carry the ABI of the
target's Node.js major; Mach-O (macOS) and PE (Windows) files are refused. ELF internals are
read with ``pyelftools``; the fixed-offset headers with ``struct``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aether.pack.target import Target

SUFFIXES = re.compile(r"(\.node|\.so(\.\d+)*|\.dylib|\.dll|\.exe)$")
ELF_MACHINES = {62: "x64", 183: "arm64", 3: "ia32", 40: "arm", 21: "ppc64", 22: "s390x"}
ELF_MACHINES |= {243: "riscv64", 258: "loong64"}
ELF_BITS = {"x64": 64, "arm64": 64, "ia32": 32, "arm": 32, "ppc64": 64, "s390x": 64}
ELF_BITS |= {"riscv64": 64, "loong64": 64}
MACHO_CPUS = {0x01000007: "x64", 0x0100000C: "arm64", 7: "ia32", 12: "arm"}
PE_MACHINES = {0x8664: "x64", 0xAA64: "arm64", 0x14C: "ia32"}
# NODE_MODULE_VERSION per Node.js major: what a non-N-API addon is compiled against.
NODE_ABI = {16: 93, 17: 102, 18: 108, 19: 111, 20: 115, 21: 120, 22: 127, 23: 131, 24: 137}
_OSABI = {0: "linux", 3: "linux", 9: "freebsd"}


@dataclass(frozen=True)
class Binary:
    """What a native file's headers say it was built for."""

    format: str  # ELF | Mach-O | PE
    os: str
    cpus: tuple[str, ...]
    bits: int | None = None
    libc: str | None = None  # glibc | musl | None (static, or not Linux)
    glibc: tuple[int, int] | None = None  # the newest GLIBC_x.y symbol version it needs
    node_abi: int | None = None  # NODE_MODULE_VERSION of a non-N-API addon

    def __str__(self) -> str:
        text = f"{self.os}-{'/'.join(self.cpus) or '?'}"
        if self.libc:
            text += f"-{self.libc}"
            if self.glibc:
                text += f" (needs glibc {self.glibc[0]}.{self.glibc[1]})"
        if self.node_abi:
            text += f", Node.js ABI {self.node_abi}"
        return f"{text} ({self.format})"


@dataclass(frozen=True)
class Mismatch:
    path: str
    binary: Binary
    reason: str


def candidates(files: Iterable[tuple[str, int]]) -> list[str]:
    """Members worth a look: native suffixes anywhere, executables under node_modules."""
    found = []
    for path, mode in files:
        if SUFFIXES.search(path) or (mode & 0o111 and path.startswith("node_modules/")):
            found.append(path)
        elif mode & 0o111 and "/node_modules/" in path:
            found.append(path)
    return found


def _native() -> Callable[[list[Any]], list[str] | None] | None:
    try:
        from aether.pack._natives import candidates as native_candidates
    except ImportError:  # not built (no compiler at install time): the Python code chooses
        return None
    return native_candidates


_native_candidates = _native()


def record_candidates(records: list[Any]) -> list[str]:
    """``candidates`` of file records (path, size, mode, …): natively (``_natives``, built
    with the package) in one pass where it can, not a regular expression per path."""
    found = _native_candidates(records) if _native_candidates is not None else None
    if found is None:
        found = candidates((record[0], record[2]) for record in records)
    return found


def check_natives(
    members: Iterable[str], source_of: Callable[[str], str], target: Target
) -> list[Mismatch]:
    """Every candidate that cannot run on ``target``."""
    problems = []
    for member in members:
        binary = inspect_binary(source_of(member))
        if binary is None:
            continue
        reason = mismatch(binary, target)
        if reason:
            problems.append(Mismatch(member, binary, reason))
    return problems


def inspect_binary(path: str) -> Binary | None:
    """The platform a file was built for; None when it is not a binary (or unreadable)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] == b"\x7fELF":
                return _elf(handle, head, addon=path.endswith(".node"))
    except OSError:
        return None
    if head[:4] in (
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    ):
        little = head[0] in (0xCE, 0xCF)
        cputype = struct.unpack("<I" if little else ">I", head[4:8])[0]
        return Binary("Mach-O", "darwin", (MACHO_CPUS.get(cputype, hex(cputype)),))
    if head[:4] == b"\xca\xfe\xba\xbe" and _fat_count(head) < 20:  # not a Java class file
        count = _fat_count(head)
        cpus = [
            struct.unpack(">I", head[8 + 20 * i : 12 + 20 * i])[0] for i in range(min(count, 2))
        ]
        return Binary("Mach-O", "darwin", tuple(MACHO_CPUS.get(c, hex(c)) for c in cpus))
    if head[:2] == b"MZ":
        return _pe(path)
    return None


def _fat_count(head: bytes) -> int:
    count: int = struct.unpack(">I", head[4:8])[0]
    return count


def _pe(path: str) -> Binary | None:
    try:
        with open(path, "rb") as handle:
            handle.seek(0x3C)
            offset = struct.unpack("<I", handle.read(4))[0]
            handle.seek(offset)
            header = handle.read(6)
    except (OSError, struct.error):
        return None
    if header[:4] != b"PE\0\0":
        return None
    machine = struct.unpack("<H", header[4:6])[0]
    return Binary("PE", "win32", (PE_MACHINES.get(machine, hex(machine)),))


def _elf(handle, head: bytes, *, addon: bool) -> Binary:  # type: ignore[no-untyped-def]
    bits = 64 if head[4] == 2 else 32
    endian = "<" if head[5] == 1 else ">"
    machine = struct.unpack(endian + "H", head[18:20])[0]
    os_name = _OSABI.get(head[7], f"osabi-{head[7]}")
    libc, glibc, abi = _elf_links(handle, addon)
    cpu = ELF_MACHINES.get(machine, f"machine-{machine}")
    return Binary("ELF", os_name, (cpu,), bits, libc, glibc, abi)


def _elf_links(handle, addon: bool) -> tuple[str | None, tuple[int, int] | None, int | None]:  # type: ignore[no-untyped-def]
    """(libc, newest GLIBC_x.y needed, NODE_MODULE_VERSION) from the dynamic sections; the
    symbol table (slow to read in big libraries) only for addons."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    handle.seek(0)
    try:
        elf = ELFFile(handle)
        needed = _needed(elf)
        glibc = _newest_glibc(elf)
        abi = _node_abi(elf) if addon else None
    except (ELFError, struct.error, ValueError):
        return None, None, None
    libc = None
    if any(name.startswith(("libc.musl", "ld-musl")) for name in needed):
        libc = "musl"
    elif "libc.so.6" in needed or glibc is not None:
        libc = "glibc"
    return libc, glibc, abi


def _needed(elf) -> list[str]:  # type: ignore[no-untyped-def]
    dynamic = elf.get_section_by_name(".dynamic")
    if dynamic is None:
        return []
    return [tag.needed for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]


def _newest_glibc(elf) -> tuple[int, int] | None:  # type: ignore[no-untyped-def]
    section = elf.get_section_by_name(".gnu.version_r")
    if section is None:
        return None
    newest = None
    for _, auxiliaries in section.iter_versions():
        for aux in auxiliaries:
            match = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", aux.name)
            if match:
                version = (int(match[1]), int(match[2]))
                newest = version if newest is None or version > newest else newest
    return newest


def _node_abi(elf) -> int | None:  # type: ignore[no-untyped-def]
    symbols = elf.get_section_by_name(".dynsym")
    if symbols is None:
        return None
    registers = False
    for symbol in symbols.iter_symbols():
        name = symbol.name
        if name.startswith("node_register_module_v") and name[22:].isdigit():
            return int(name[22:])  # NODE_MODULE_INIT / NAN_MODULE_WORKER_ENABLED
        registers = registers or name == "node_module_register"
    return _registered_version(elf) if registers else None


# The static ``node::node_module`` that the NODE_MODULE macro hands to node_module_register,
# as C and C++ name it in the symbol table.
_MODULE_SYMBOLS = ("_module", "_ZL7_module")


def _registered_version(elf) -> int | None:  # type: ignore[no-untyped-def]
    """The ABI of an addon registered with the NODE_MODULE macro: its ``node_module`` struct
    starts with ``nm_version`` (a constant, so the file holds it). Found through the symbol
    table, which node-gyp's builds keep; None for a stripped addon."""
    table = elf.get_section_by_name(".symtab")
    if table is None:
        return None
    for symbol in table.iter_symbols():
        if symbol.name not in _MODULE_SYMBOLS or symbol["st_info"]["type"] != "STT_OBJECT":
            continue
        if not isinstance(symbol["st_shndx"], int):
            continue
        section = elf.get_section(symbol["st_shndx"])
        if section["sh_type"] == "SHT_NOBITS":
            continue
        start = symbol["st_value"] - section["sh_addr"]
        data = section.data()[start : start + 4]
        order = "<i" if elf.little_endian else ">i"
        version = struct.unpack(order, data)[0] if len(data) == 4 else 0
        return version if 0 < version < 10_000 else None
    return None


def mismatch(binary: Binary, target: Target) -> str | None:
    """Why ``binary`` cannot run on ``target``; None when it can."""
    if binary.os != target.os:
        return f"the server runs {target.os}"
    if target.cpu not in binary.cpus:
        return f"it is built for {'/'.join(binary.cpus)}, the server's CPU is {target.cpu}"
    if binary.bits is not None and ELF_BITS.get(target.cpu, binary.bits) != binary.bits:
        return (
            f"it is a {binary.bits}-bit binary, {target.cpu} runs {ELF_BITS[target.cpu]}-bit ones"
        )
    if target.os == "linux":
        return _linux_mismatch(binary, target)
    return None


def _linux_mismatch(binary: Binary, target: Target) -> str | None:
    if binary.libc and target.libc and binary.libc != target.libc:
        return f"it links {binary.libc}, the server's C library is {target.libc}"
    wanted = _version(target.glibc_version)
    if binary.glibc and wanted and binary.glibc > wanted:
        have = f"{binary.glibc[0]}.{binary.glibc[1]}"
        return f"it needs glibc {have}, the server has glibc {target.glibc_version}"
    expected_abi = NODE_ABI.get(target.node_major or 0)
    if binary.node_abi and expected_abi and binary.node_abi != expected_abi:
        return (
            f"it is compiled for Node.js ABI {binary.node_abi}, the server runs Node.js "
            f"{target.node_major} (ABI {expected_abi})"
        )
    return None


def _version(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    major, _, minor = text.partition(".")
    return (int(major), int(minor or 0)) if major.isdigit() and minor.isdigit() else None
