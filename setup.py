"""The C extensions (fast paths of the packer); everything else is in setup.cfg.

``optional``: where it cannot be compiled (no compiler, no Python headers) the package still
installs, and ``aether.pack`` uses its pure-Python code, which writes the same bytes.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"aether.pack.{name}",
            [f"src/aether/pack/{name}.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
        for name in ("_batchread", "_scanfolder")
    ]
)
