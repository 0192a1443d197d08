"""The one C extension; everything else about the package is in setup.cfg.

``optional``: where it cannot be compiled (no compiler, no Python headers) the package still
installs, and ``aether.pack.batchread`` uses its pure-Python reader, which writes the same bytes.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "aether.pack._batchread",
            ["src/aether/pack/_batchread.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
