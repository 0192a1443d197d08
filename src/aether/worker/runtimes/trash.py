"""Deleting retired releases and layers without holding up a rollout.

Deleting a tree of tens of thousands of files takes seconds. A retired folder is renamed into
``<app>/.trash/`` (instant, so the next rollout never sees it) and deleted by a daemon thread;
whatever a killed worker left in the trash goes with the next deletion.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

TRASH = ".trash"
_NOT_RELEASES = {"logs", "layers", TRASH}


def release_folders(app_dir: Path) -> list[Path]:
    """An app's extracted release folders (``<app>/<deployment id>/``)."""
    if not app_dir.is_dir():
        return []
    return [
        entry
        for entry in app_dir.iterdir()
        if entry.is_dir()
        and not entry.is_symlink()
        and entry.name not in _NOT_RELEASES
        and not entry.name.startswith(".")
    ]


def discard(app_dir: Path, paths: Iterable[Path]) -> None:
    """Move ``paths`` into the app's trash and delete the trash in the background."""
    trash = app_dir / TRASH
    moved = False
    for path in paths:
        if not path.exists():
            continue
        trash.mkdir(parents=True, exist_ok=True)
        path.rename(trash / f"{path.name}-{uuid.uuid4().hex[:8]}")
        moved = True
    if moved:
        threading.Thread(target=_empty, args=(trash,), daemon=True, name="aether-trash").start()


def _empty(trash: Path) -> None:
    for entry in list(trash.iterdir()) if trash.is_dir() else []:
        shutil.rmtree(entry, ignore_errors=True)
