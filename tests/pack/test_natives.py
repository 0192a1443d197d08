"""Native files by their headers: real ELF binaries of this machine, Mach-O and PE headers
written here, against targets they do and do not fit."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from aether.pack.natives import (
    candidates,
    check_natives,
    inspect_binary,
    mismatch,
    record_candidates,
)
from aether.pack.target import Target

LINUX = Target("linux", "x64", "glibc", "2.36", 20)


def _machine_binary() -> str:
    """A dynamically linked ELF of this machine: the Python running the tests."""
    return str(Path(sys.executable).resolve())


def test_this_machines_binary_fits_this_machine() -> None:
    binary = inspect_binary(_machine_binary())
    assert binary is not None and binary.format == "ELF" and binary.os == "linux"
    assert binary.libc == "glibc" and binary.glibc is not None
    assert mismatch(binary, LINUX) is None
    assert "CPU is arm64" in (mismatch(binary, Target("linux", "arm64", "glibc", "2.36")) or "")
    assert "C library is musl" in (mismatch(binary, Target("linux", "x64", "musl")) or "")


def test_a_glibc_newer_than_the_servers_is_refused() -> None:
    binary = inspect_binary(_machine_binary())
    assert binary is not None and binary.glibc is not None
    older = f"{binary.glibc[0]}.{binary.glibc[1] - 1}"
    reason = mismatch(binary, Target("linux", "x64", "glibc", older))
    assert (
        reason
        == f"it needs glibc {binary.glibc[0]}.{binary.glibc[1]}, the server has glibc {older}"
    )


def _macho(path: Path, cputype: int) -> Path:
    path.write_bytes(b"\xcf\xfa\xed\xfe" + struct.pack("<I", cputype) + b"\0" * 56)
    return path


def _pe(path: Path, machine: int) -> Path:
    header = bytearray(b"MZ" + b"\0" * 0x3E)
    struct.pack_into("<I", header, 0x3C, 0x40)
    path.write_bytes(bytes(header) + b"PE\0\0" + struct.pack("<H", machine) + b"\0" * 16)
    return path


def test_macos_and_windows_binaries_are_refused_on_linux(tmp_path: Path) -> None:
    mac = inspect_binary(str(_macho(tmp_path / "sharp.node", 0x0100000C)))
    assert mac is not None and str(mac) == "darwin-arm64 (Mach-O)"
    assert mismatch(mac, LINUX) == "the server runs linux"
    assert mismatch(mac, Target("darwin", "arm64")) is None
    win = inspect_binary(str(_pe(tmp_path / "addon.node", 0x8664)))
    assert win is not None and (win.format, win.os, win.cpus) == ("PE", "win32", ("x64",))
    assert mismatch(win, LINUX) == "the server runs linux"


def test_scripts_and_java_classes_are_not_binaries(tmp_path: Path) -> None:
    script = tmp_path / "cli.js"
    script.write_text("#!/usr/bin/env node\nconsole.log(1)\n")
    java = tmp_path / "Thing.class"
    java.write_bytes(b"\xca\xfe\xba\xbe\x00\x00\x00\x41" + b"\0" * 32)
    assert inspect_binary(str(script)) is None and inspect_binary(str(java)) is None


def test_a_foreign_addons_node_abi_is_refused() -> None:
    from aether.pack.natives import Binary

    addon = Binary("ELF", "linux", ("x64",), 64, "glibc", (2, 17), node_abi=127)
    reason = mismatch(addon, LINUX)
    assert reason == "it is compiled for Node.js ABI 127, the server runs Node.js 20 (ABI 115)"
    napi = Binary("ELF", "linux", ("x64",), 64, "glibc", (2, 17), node_abi=None)
    assert mismatch(napi, LINUX) is None


# The two ways an addon that is not N-API tells Node.js its ABI, as node.h writes them.
ADDON_SOURCES = {
    "init": "void node_register_module_v115(void *e, void *m, void *c) {}\n",
    "macro": (
        "struct node_module { int nm_version; unsigned nm_flags; void *h; const char *f; };\n"
        "extern void node_module_register(struct node_module *);\n"
        "static struct node_module _module = {108, 0, 0, __FILE__};\n"
        "__attribute__((constructor)) static void reg(void) { node_module_register(&_module); }\n"
    ),
}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build an addon")
@pytest.mark.parametrize(("style", "abi"), [("init", 115), ("macro", 108)])
def test_the_node_abi_of_a_compiled_addon_is_read(style: str, abi: int, tmp_path: Path) -> None:
    source = tmp_path / "addon.c"
    source.write_text(ADDON_SOURCES[style])
    addon = tmp_path / "addon.node"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", addon, source], check=True)
    binary = inspect_binary(str(addon))
    assert binary is not None and binary.node_abi == abi
    assert f"Node.js ABI {abi}" in (
        mismatch(binary, Target("linux", binary.cpus[0], "glibc", None, 22)) or ""
    )
    subprocess.run(["strip", addon], check=True)  # no symbol table left: nothing to read
    stripped = inspect_binary(str(addon))
    assert stripped is not None and stripped.node_abi == (115 if style == "init" else None)


def test_candidates_and_the_check_over_a_tree(tmp_path: Path) -> None:
    files = [
        ("node_modules/a/build/Release/a.node", 0o644),
        ("node_modules/b/bin/b", 0o755),
        ("node_modules/c/index.js", 0o644),
        ("lib/vendor/libfoo.so.1.2", 0o644),
        ("bin/start.sh", 0o755),  # the app's own script: not under node_modules
    ]
    assert candidates(files) == [files[0][0], files[1][0], files[3][0]]
    _macho(tmp_path / "a.node", 0x0100000C)
    (tmp_path / "b").write_text("#!/bin/sh\n")
    sources = {files[0][0]: tmp_path / "a.node", files[1][0]: tmp_path / "b"}
    found = check_natives(sources, lambda member: str(sources[member]), LINUX)
    assert [(p.path, str(p.binary)) for p in found] == [(files[0][0], "darwin-arm64 (Mach-O)")]


@pytest.mark.parametrize("target", [Target("linux", "arm64", "glibc", "2.36")])
def test_the_check_names_the_servers_cpu(target: Target) -> None:
    binary = inspect_binary(_machine_binary())
    assert binary is not None
    assert mismatch(binary, target) == "it is built for x64, the server's CPU is arm64"


RECORD_PATHS = [
    "node_modules/a/build/Release/a.node",
    "node_modules/a/a.node.js",
    "lib/libfoo.so",
    "lib/libfoo.so.1",
    "lib/libfoo.so.1.22.333",
    "lib/libfoo.so.",
    "lib/libfoo.so.1a",
    "lib/libfoo.so.x.1",
    "lib/.so",
    "so.1",
    "1.2",
    "a.dylib",
    "a.dll",
    "A.DLL",
    "a.exe",
    "a.exe\n",
    "a.exe\n\n",
    "a.so.1\n",
    "lib.so.\u0663",  # an Arabic-Indic digit: Python's \d takes it
    "lib.so.\u0663.1",
    "файл.node",
    "файл",
    "node_modules/b/bin/b",
    "pkg/node_modules/c/bin/c",
    "pkg/xnode_modules/c/bin/c",
    "node_modules",
    "bin/start.sh",
    "",
]


@pytest.mark.parametrize("mode", [0o644, 0o755, 0o700, 0o4755])
def test_the_native_candidates_are_the_python_ones(mode: int) -> None:
    native = pytest.importorskip("aether.pack._natives")
    records = [(path, 1, mode, "0" * 64) for path in RECORD_PATHS]
    expected = candidates((path, mode) for path, _, mode, _ in records)
    assert record_candidates(records) == expected
    found = native.candidates(records)
    if found is not None:  # None: a name it leaves to Python (the Unicode digit)
        assert found == expected
    plain = [record for record in records if not record[0].startswith("lib.so.\u0663")]
    assert native.candidates(plain) == candidates((p, m) for p, _, m, _ in plain)
    assert "lib/libfoo.so.1.22.333" in expected and "a.so.1\n" in expected
    assert ("node_modules/b/bin/b" in expected) == bool(mode & 0o111)


@pytest.mark.parametrize(
    "odd", [("a.node", 1), ("a.node", 1, "0644", "x"), (b"a.node", 1, 0o644, "x"), ["a", 1, 2]]
)
def test_records_the_native_candidates_do_not_expect_are_left_to_python(odd: object) -> None:
    native = pytest.importorskip("aether.pack._natives")
    assert native.candidates([("a.node", 1, 0o644, "x"), odd]) is None
    assert native.candidates([]) == []
