"""What stays out of an artifact: `.aetherignore` (gitignore semantics) and built-ins."""

from __future__ import annotations

import json
from pathlib import Path

from aether.pack import PackOptions, build_artifact
from aether.pack.ignore import IgnoreRules
from aether.pack.walk import walk_tree


def packed_paths(project: Path, **options: object) -> set[str]:
    rules = IgnoreRules.for_project(project, **options)  # type: ignore[arg-type]
    return {entry.path for entry in walk_tree(project, rules)}


def write(root: Path, *paths: str) -> None:
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


def test_comments_globs_and_negation(tmp_path: Path) -> None:
    write(tmp_path, "a.log", "keep.log", "src/b.log", "src/app.js", "#literal")
    (tmp_path / ".aetherignore").write_text("# logs are noise\n*.log\n!keep.log\n\n\\#literal\n")
    paths = packed_paths(tmp_path)
    assert {"keep.log", "src/app.js", ".aetherignore"} <= paths
    assert not {"a.log", "src/b.log", "#literal"} & paths


def test_directory_patterns_match_only_directories(tmp_path: Path) -> None:
    write(tmp_path, "build/out.js", "src/build/x.js", "notes/build")
    (tmp_path / ".aetherignore").write_text("build/\n")
    paths = packed_paths(tmp_path)
    assert "notes/build" in paths  # a file named build is not a directory
    assert not {"build", "build/out.js", "src/build", "src/build/x.js"} & paths


def test_anchored_patterns_and_double_star(tmp_path: Path) -> None:
    write(tmp_path, "coverage/lcov.info", "pkg/coverage/keep.txt", "a/b/c/test.snap")
    (tmp_path / ".aetherignore").write_text("/coverage\n**/*.snap\n")
    paths = packed_paths(tmp_path)
    assert "pkg/coverage/keep.txt" in paths
    assert not {"coverage", "a/b/c/test.snap"} & paths


def test_files_inside_an_ignored_directory_cannot_be_reincluded(tmp_path: Path) -> None:
    write(tmp_path, "tmp/important.txt", "cache/x/keep.me", "cache/x/drop.me")
    (tmp_path / ".aetherignore").write_text(
        "tmp/\n!tmp/important.txt\ncache/x/*\n!cache/x/keep.me\n"
    )
    paths = packed_paths(tmp_path)
    assert "tmp/important.txt" not in paths  # as in git: the folder itself is excluded
    assert "cache/x/keep.me" in paths
    assert "cache/x/drop.me" not in paths


def test_git_folders_and_the_output_folder_are_always_left_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        "package.json",
        ".git/HEAD",
        "node_modules/dep/.git/config",
        ".aether/app.tar.zst",
        "node_modules/dep/index.js",
    )
    (tmp_path / "package.json").write_text("{}")
    result = build_artifact(tmp_path, PackOptions(install=False, sbom=False), environ={})
    listed = {f["path"] for f in json.loads(result.manifest.read_text())["files"]}
    assert listed == {"package.json", "node_modules/dep/index.js"}


def test_a_named_output_folder_inside_the_project_is_left_out(tmp_path: Path) -> None:
    write(tmp_path, "dist/old.tar.zst", "index.js")
    (tmp_path / "package.json").write_text("{}")
    options = PackOptions(out=tmp_path / "dist", install=False, sbom=False)
    first = build_artifact(tmp_path, options, environ={})
    second = build_artifact(tmp_path, options, environ={})
    assert first.artifact == tmp_path / "dist" / "app.tar.zst"
    assert first.digest == second.digest  # the first artifact did not end up in the second
    assert first.files == 2


def test_an_output_file_inside_the_project_and_its_sidecars_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")
    options = PackOptions(out=tmp_path / "release.tar.gz", compression="gzip", install=False)
    first = build_artifact(tmp_path, options, environ={})
    second = build_artifact(tmp_path, options, environ={})
    assert first.artifact == tmp_path / "release.tar.gz"
    assert second.digest == first.digest
    assert second.files == 1
