# The C extension's interface (src/aether/pack/_natives.c), for the type checker; its Python
# twin is aether.pack.natives.candidates.
from typing import Any

def candidates(records: list[Any], /) -> list[str] | None: ...
