"""Mirroring a project into its build folder: copies, never links; the project is only read."""

from __future__ import annotations

import os
from pathlib import Path

from aether.pack.mirror import mirror_project


def _project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src/app.ts").write_text("export const a = 1;\n")
    (root / "package.json").write_text('{"name": "p"}')
    (root / ".aetherignore").write_text("secrets/\n")
    (root / "secrets").mkdir()
    (root / "secrets/key").write_text("hush")
    (root / "node_modules/dep").mkdir(parents=True)
    (root / "node_modules/dep/index.js").write_text("dev tree")
    (root / ".git").mkdir()
    (root / ".git/HEAD").write_text("ref")
    os.symlink("src/app.ts", root / "entry.ts")
    return root


def test_mirror_copies_what_is_packed_and_nothing_else(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    dest = tmp_path / "tree"
    stats = mirror_project(project, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        ".aetherignore",
        "entry.ts",
        "package.json",
        "src",
        "src/app.ts",
    ]
    assert os.readlink(dest / "entry.ts") == "src/app.ts"
    copy, original = dest / "src/app.ts", project / "src/app.ts"
    assert copy.stat().st_ino != original.stat().st_ino  # a copy: the build may rewrite it
    assert copy.stat().st_mtime_ns == original.stat().st_mtime_ns
    assert (stats.files, stats.copied) == (3, 3)


def test_a_second_mirror_copies_only_changes_and_removes_leftovers(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    dest = tmp_path / "tree"
    mirror_project(project, dest)
    (dest / "node_modules/.bin").mkdir(parents=True)  # the build's own install stays
    (dest / "dist").mkdir()
    (dest / "dist/app.js").write_text("stale build output")
    (dest / "src/app.ts").write_text("rewritten in place by a build step")
    (project / "src/new.ts").write_text("new")
    stats = mirror_project(project, dest)
    assert (stats.copied, stats.removed) == (2, 1)  # app.ts restored, new.ts; dist/ removed
    assert (dest / "src/app.ts").read_text() == "export const a = 1;\n"
    assert (project / "src/app.ts").read_text() == "export const a = 1;\n"
    assert not (dest / "dist").exists() and (dest / "node_modules/.bin").is_dir()
    assert mirror_project(project, dest).copied == 0
