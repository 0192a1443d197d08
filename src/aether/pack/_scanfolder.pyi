# The C extension's interface (src/aether/pack/_scanfolder.c), for the type checker.
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, overload

from aether.pack.walk import Entry

class Batch(Sequence[Entry]):
    """Walk entries in archive order, the natively listed ones kept as names in C."""

    def __init__(self, new_entry: Callable[[tuple[Any, ...]], Entry], /) -> None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload  # (for Sequence only: the C type takes int indices, a slice raises TypeError)
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...
    def append(self, entry: Entry, /) -> None: ...

class Walking(Iterator[Entry]):
    def __next__(self) -> Entry: ...
    def fill(self, batch: Batch, size: int, /) -> bool: ...

def scan(
    path: str,
    prefix: str,
    excluded: Collection[str],
    excluded_dir_names: Collection[str],
    new_entry: Callable[[tuple[Any, ...]], Entry],
    /,
) -> list[Entry] | None: ...
def walk(
    root: str,
    folder: Entry | None,
    excluded: Collection[str],
    excluded_dir_names: Collection[str],
    new_entry: Callable[[tuple[Any, ...]], Entry],
    children: Callable[[Entry | None], list[Entry]],
    by_children: Collection[str],
    /,
) -> Walking: ...
def stamp(path: str, prefix: bytes, /) -> bytes: ...
