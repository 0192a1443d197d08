# The C extension's interface (src/aether/pack/_manifest.c), for the type checker; its Python
# twin is aether.pack.manifest.file_lines_python.
from typing import Any

def file_lines(records: list[Any], /) -> bytes | None: ...
