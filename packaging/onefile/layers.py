"""The two trees a file carries: the dependencies (wheels unpacked) and Aether itself.

Wheels are unpacked directly (a wheel is a zip whose ``*.data/purelib`` and ``platlib`` also
belong at the top); ``pip install --target`` does the same for these wheels, one Python
version and one platform per run, at ~8 s each. The wheels of all versions go into one tree:
pure files are the same in each, compiled modules carry their version in their names
(``_zstd.cpython-312-x86_64-linux-gnu.so``), and a file that differs between versions stops
the build. What is never imported is trimmed (:mod:`onefile.trim`).

Aether's own C extensions are compiled once per Python version when the file is for this
machine's platform; a file for another platform carries none and its packer uses the
pure-Python twins, which write the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from onefile import trim, usercache

# Bump when what goes into a dependency tree changes, so cached trees are rebuilt.
LAYER_RULES_VERSION = "3"
# What the package tree and the C extensions are made from (their cache keys).
PROJECT_METADATA = ("setup.cfg", "setup.py", "pyproject.toml", "README.md")
PROJECT_INPUTS = ("src/aether/**/*", *PROJECT_METADATA)
# The extensions' C, headers and assembly (the vendored BLAKE3 among them).
NATIVE_INPUTS = ("src/aether/**/*.c", "src/aether/**/*.h", "src/aether/**/*.S", "setup.py")
# The dist-info of compiled wheels differs between versions in bookkeeping only.
_DIST_INFO = re.compile(r"^[^/]+\.dist-info/")


class LayerConflict(Exception):
    """Two wheels put different bytes at one path."""


def dependency_tree(cache: Path, wheels: list[Path]) -> Path:
    """The union of ``wheels`` unpacked and trimmed, in ``cache`` under a name made from the
    wheel set and the rules (:mod:`onefile.usercache`: whole or absent, shared by builds)."""
    names = sorted({wheel.name for wheel in wheels})
    key = hashlib.sha256("\n".join([LAYER_RULES_VERSION, trim.RULES, *names]).encode())
    tree = cache / key.hexdigest()[:32]
    if tree.is_dir():
        os.utime(tree)  # in use: kept by the clean-up below
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    usercache.remove_older(cache, ".staging-*", usercache.ABANDONED_SECS)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".staging-") as scratch:
        staging = Path(scratch) / "site"
        staging.mkdir()
        by_name = {wheel.name: wheel for wheel in wheels}
        for name in names:
            unpack_wheel(by_name[name], staging)
        trim.tree(staging)
        try:
            staging.rename(tree)
        except OSError:  # another build put the same tree there first
            if not tree.is_dir():
                raise
    usercache.remove_older(cache, "[0-9a-f]" * 32, usercache.UNUSED_SECS)
    return tree


def unpack_wheel(wheel: Path, site: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            target = _install_path(info.filename)
            if info.is_dir() or target is None:
                continue
            data = archive.read(info)
            path = site / target
            if path.is_file():
                if path.read_bytes() != data and not _DIST_INFO.match(target):
                    raise LayerConflict(f"{wheel.name} has another {target} than a wheel before")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _install_path(name: str) -> str | None:
    """Where a wheel member goes in site-packages; None for scripts, headers and data."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise LayerConflict(f"unsafe path in a wheel: {name}")
    if parts[0].endswith(".data"):
        if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
            return None
        parts = parts[2:]
    return "/".join(parts)


def project_tree(cache: Path, root: Path) -> Path:
    """Aether's package files (no extension modules), as ``pip install`` lays them out.

    Installed from a clean copy of the sources: setuptools builds in the source tree and never
    prunes its ``build/lib*`` folders or ``*.egg-info``, so modules deleted since would ship.
    Reused while no file of the package or its metadata changed.
    """
    tree, stamp = cache / "app", cache / "app.key"
    key = _files_key(root, PROJECT_INPUTS)
    if tree.is_dir() and stamp.is_file() and stamp.read_text() == key:
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="source-") as scratch:
        source = Path(scratch)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info")
        shutil.copytree(root / "src", source / "src", ignore=ignore)
        for name in PROJECT_METADATA:
            shutil.copy2(root / name, source / name)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
        command += ["--disable-pip-version-check", "--no-build-isolation", "--target", str(tree)]
        subprocess.run([*command, str(source)], check=True, cwd=source)
    shutil.rmtree(tree / "bin", ignore_errors=True)
    for extension in tree.rglob("*.so"):
        extension.unlink()  # built for this interpreter only; native_extensions() adds them
    trim.tree(tree)
    stamp.write_text(key)
    return tree


def native_extensions(
    cache: Path, root: Path, tools: Path, interpreters: dict[tuple[int, int], Path]
) -> dict[tuple[int, int], list[Path]]:
    """Aether's C extensions built by each interpreter: {version: [paths under its folder]}.

    ``-g0`` keeps build paths out of the files, so they are the same bytes in any checkout.
    An extension that does not compile is left out (``optional=True`` in setup.py) and the
    packer uses its Python twin; the build says so.
    """
    built = {}
    temp = cache / "native" / "temp"
    sources = _files_key(root, NATIVE_INPUTS)
    for version, python in interpreters.items():
        out = cache / "native" / f"cp{version[0]}{version[1]}"
        stamp, key = out / ".key", f"{sources} {python.resolve()}"
        if not (stamp.is_file() and stamp.read_text() == key):
            shutil.rmtree(out, ignore_errors=True)
            env = {**os.environ, "PYTHONPATH": str(tools), "CFLAGS": "-g0"}
            command = [str(python), "setup.py", "--quiet", "build_ext", "--build-lib", str(out)]
            command += ["--build-temp", str(temp), "--force"]
            subprocess.run(command, check=True, cwd=root, env=env, capture_output=True)
            shutil.rmtree(temp, ignore_errors=True)
            stamp.write_text(key)
        built[version] = sorted(path.relative_to(out) for path in out.rglob("*.so"))
    return built


def _files_key(root: Path, patterns: tuple[str, ...]) -> str:
    """A digest of the names and contents of the files ``patterns`` match under ``root``."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so":
                digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def build_tools(cache: Path, setuptools_pin: str) -> Path:
    """setuptools alone in a folder that every interpreter can import it from."""
    tools = cache / "buildtools"
    stamp = tools / ".pin"
    if stamp.is_file() and stamp.read_text() == setuptools_pin:
        return tools
    shutil.rmtree(tools, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
    subprocess.run([*command, "--target", str(tools), setuptools_pin], check=True)
    stamp.write_text(setuptools_pin)
    return tools


def glibc_needed(elf: bytes) -> tuple[int, int] | None:
    """The newest ``GLIBC_x.y`` symbol version an ELF file asks for."""
    versions = re.findall(rb"GLIBC_(\d+)\.(\d+)", elf)
    return max((int(a), int(b)) for a, b in versions) if versions else None
