"""The C extensions (fast paths of the packer); everything else is in setup.cfg.

``optional``: where it cannot be compiled (no compiler, no Python headers) the package still
installs, and ``aether.pack`` uses its pure-Python code, which writes the same bytes.

``_batchread`` carries BLAKE3's official C implementation (``src/aether/pack/vendor/blake3``):
the portable code, plus on x86-64 its assembly for SSE2, SSE4.1, AVX2 and AVX-512, which it
chooses between at run time (the assembly needs no compiler flags, so one build runs on any
x86-64 CPU); on AArch64 its NEON code is part of the baseline.
"""

import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PACK = "src/aether/pack"
BLAKE3 = f"{PACK}/vendor/blake3"
SIMD = ("sse2", "sse41", "avx2", "avx512")


def blake3_sources() -> list[str]:
    sources = [f"{BLAKE3}/{name}.c" for name in ("blake3", "blake3_dispatch", "blake3_portable")]
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64") and sys.platform != "win32":
        sources += [f"{BLAKE3}/blake3_{kind}_x86-64_unix.S" for kind in SIMD]
    elif machine in ("aarch64", "arm64"):
        sources.append(f"{BLAKE3}/blake3_neon.c")
    return sources


def blake3_macros() -> list[tuple[str, str | None]]:
    """Without the assembly (x86-64 elsewhere than on Unix), the portable code alone."""
    if any(source.endswith(".S") for source in blake3_sources()):
        return []
    return [(f"BLAKE3_NO_{kind.upper()}", None) for kind in SIMD]


class BuildExt(build_ext):
    """build_ext that also assembles ``.S`` files (the C compiler driver does it)."""

    def build_extensions(self) -> None:
        if ".S" not in self.compiler.src_extensions:
            self.compiler.src_extensions.append(".S")
        super().build_extensions()


def extension(name: str, sources: list[str], macros: list[tuple[str, str | None]]) -> Extension:
    return Extension(
        f"aether.pack.{name}",
        [f"{PACK}/{name}.c", *sources],
        define_macros=macros,
        extra_compile_args=["-O2"],
        optional=True,
    )


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        extension("_batchread", blake3_sources(), blake3_macros()),
        extension("_scanfolder", [], []),
        extension("_manifest", [], []),
        extension("_natives", [], []),
    ],
)
