# The C extension's interface (src/aether/pack/_scanfolder.c), for the type checker.
from collections.abc import Callable, Collection, Iterator
from typing import Any

from aether.pack.walk import Entry

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
) -> Iterator[Entry]: ...
def stamp(path: str, prefix: bytes, /) -> bytes: ...
