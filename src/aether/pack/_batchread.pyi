# The C extension's interface (src/aether/pack/_batchread.c), for the type checker; its
# Python twin is aether.pack.batchread.read_batch_python.
from collections.abc import Callable, Sequence
from typing import Any

from aether.pack.walk import Entry

def read_batch(
    entries: Sequence[Entry],  # a list, or a _scanfolder.Batch
    start: int,
    mtime: bytes,
    budget: int,
    inline_max: int,
    files: list[Any],
    directories: list[str],
    symlinks: list[tuple[str, str]],
    new_record: Callable[..., Any],
    /,
) -> tuple[bytes, int, int]: ...
def blake3_hex(data: bytes | bytearray | memoryview, /) -> str: ...
def drop_spares() -> None: ...
