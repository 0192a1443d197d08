"""Partition a tree into pieces that can be packed independently, and group them into tasks.

The archive order is a depth-first walk with each folder's children sorted, so a folder and
everything under it is one contiguous run of members. A plan lists the top of the tree in
archive order, opening folders breadth-first until it holds enough pieces; each piece is one
member, or one folder with its whole subtree (walked later, by whoever packs the piece).
Writing the pieces one after another gives exactly the archive of the serial walk, whoever
writes each of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple

from aether.pack.walk import DIRECTORY, Entry, Walker

PLAN_PIECES = 512  # open folders until the plan holds this many pieces
SUBTREE_WEIGHT = 32  # a guess at a subtree's size in members, to size tasks
TASK_WEIGHT = 128


class Piece(NamedTuple):
    """One member, or (``subtree``) a folder's member followed by everything under it."""

    entry: Entry
    subtree: bool


class Plan(NamedTuple):
    pieces: list[Piece]

    @property
    def complete(self) -> bool:
        """True when every member is listed (no subtree is left to walk)."""
        return not any(piece.subtree for piece in self.pieces)

    def tasks(self) -> list[list[Piece]]:
        """Consecutive runs of pieces of about ``TASK_WEIGHT`` members each."""
        tasks: list[list[Piece]] = []
        current: list[Piece] = []
        weight = 0
        for piece in self.pieces:
            current.append(piece)
            weight += SUBTREE_WEIGHT if piece.subtree else 1
            if weight >= TASK_WEIGHT:
                tasks.append(current)
                current, weight = [], 0
        if current:
            tasks.append(current)
        return tasks


def plan_tree(walker: Walker, pieces: int = PLAN_PIECES) -> Plan:
    """The tree's top levels as pieces, folders opened breadth-first until ``pieces``."""
    return plan_entries(walker, walker.children(None), pieces)


def plan_entries(walker: Walker, top: Iterable[Entry], pieces: int = PLAN_PIECES) -> Plan:
    """Like :func:`plan_tree`, for some of the tree's top entries (one layer's members)."""
    plan = [_piece(entry) for entry in top]
    while len(plan) < pieces:
        opened: list[Piece] = []
        grew = False
        for index, piece in enumerate(plan):
            if piece.subtree and len(opened) + len(plan) - index < pieces:
                opened.append(Piece(piece.entry, False))
                opened.extend(_piece(entry) for entry in walker.children(piece.entry))
                grew = True
            else:
                opened.append(piece)
        plan = opened
        if not grew:
            break
    return Plan(plan)


def entries_of(pieces: Iterable[Piece], walker: Walker) -> Members:
    """The members of ``pieces`` in archive order, walking their subtrees as it goes."""
    return Members(pieces, walker)


@dataclass(frozen=True, eq=False, repr=False)
class Members:
    """The members of some pieces: iterated one by one, or cut into batches."""

    pieces: Iterable[Piece]
    walker: Walker

    def __iter__(self) -> Iterator[Entry]:
        for entry, subtree in self.pieces:
            yield entry
            if subtree:
                yield from self.walker.below(entry)

    def batches(self, size: int) -> Iterator[Sequence[Entry]]:
        """The members in order, ``size`` at a time (the last batch may hold fewer).

        Natively walked, a batch holds the entries listed in C as names (``Batch``): no
        ``Entry`` per member, which the native reader reads as they are.
        """
        new_batch = self.walker.new_batch()
        if new_batch is None:
            iterator = iter(self)
            while listed := list(islice(iterator, size)):
                yield listed
            return
        batch = new_batch()
        for entry, subtree in self.pieces:
            batch.append(entry)
            if subtree:
                walking = self.walker.below(entry)
                while walking.fill(batch, size):  # type: ignore[attr-defined]
                    yield batch
                    batch = new_batch()
            elif len(batch) >= size:
                yield batch
                batch = new_batch()
        if len(batch):
            yield batch


def _piece(entry: Entry) -> Piece:
    return Piece(entry, entry.kind == DIRECTORY)
