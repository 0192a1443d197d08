"""create_partial: a new private file that no other writer holds."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aether.pack import partial
from aether.pack.partial import create_partial


def test_a_new_private_file_with_the_prefix_and_suffix(tmp_path: Path) -> None:
    fd, name = create_partial(tmp_path, ".deps.", ".partial")
    try:
        os.write(fd, b"abc")
    finally:
        os.close(fd)
    path = Path(name)
    assert path.is_absolute() and path.parent == tmp_path
    assert path.name.startswith(".deps.") and path.name.endswith(".partial")
    assert len(path.name) == len(".deps.") + 8 + len(".partial")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"abc"


def test_a_name_in_use_is_never_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = tmp_path / ".x.aaaaaaaa.partial"
    taken.write_bytes(b"someone else's")
    names = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(partial, "_letters", lambda: next(names))
    fd, name = create_partial(tmp_path, ".x.", ".partial")
    os.close(fd)
    assert Path(name).name == ".x.bbbbbbbb.partial"
    assert taken.read_bytes() == b"someone else's"


def test_gives_up_when_every_name_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".x.aaaaaaaa.partial").write_bytes(b"")
    monkeypatch.setattr(partial, "_letters", lambda: "aaaaaaaa")
    with pytest.raises(FileExistsError):
        create_partial(tmp_path, ".x.", ".partial")


def test_a_symlink_in_the_way_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / ".x.aaaaaaaa.partial").symlink_to(target)
    names = iter(["aaaaaaaa", "cccccccc"])
    monkeypatch.setattr(partial, "_letters", lambda: next(names))
    fd, name = create_partial(tmp_path, ".x.", ".partial")
    os.close(fd)
    assert Path(name).name == ".x.cccccccc.partial"
    assert not target.exists()


def test_a_missing_folder_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        create_partial(tmp_path / "gone", ".x.", ".partial")
