"""`build_artifact` as the CLI and the deploy client call it: progress, layout, settings."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from aether.errors import ConfigError, IOFailure, UsageError
from aether.pack import PackOptions, build_artifact, generate_keypair, sha256_file
from plugins.fresh_imports import modules_loaded_by


def test_progress_reports_every_phase_in_order(sample: Path) -> None:
    calls: list[tuple[str, int, int | None]] = []
    seed, _ = generate_keypair()
    result = build_artifact(
        sample,
        PackOptions(signing_key=seed, install=False),
        on_progress=lambda phase, done, total: calls.append((phase, done, total)),
        environ={"PATH": ""},
    )
    phases = list(dict.fromkeys(phase for phase, _, _ in calls))
    assert phases == ["walk", "pack", "natives", "sbom", "sign"]
    packed = [done for phase, done, _ in calls if phase == "pack"]
    assert packed == sorted(packed) and packed[-1] > 0
    assert set(result.timings_ms) == {
        *("stage", "install", "build", "walk", "pack", "natives", "sbom", "sign")
    }


def test_default_layout_and_sidecar_names(sample: Path) -> None:
    result = build_artifact(sample, PackOptions(install=False), environ={})
    folder = sample / ".aether"
    assert result.artifact == folder / "app.tar.zst"
    assert result.manifest == folder / "app.tar.zst.manifest.json"
    assert result.sbom == folder / "app.tar.zst.cdx.json"
    assert sorted(p.name for p in folder.iterdir()) == [
        "app.tar.zst",
        "app.tar.zst.cdx.json",
        "app.tar.zst.cdx.key",
        "app.tar.zst.manifest.json",
    ]  # no temporary files left behind


def test_an_existing_folder_as_out(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "release.tar.zst"  # a folder, despite the name
    out.mkdir()
    result = build_artifact(sample, PackOptions(out=out, install=False), environ={})
    assert result.artifact == out / "app.tar.zst"


@pytest.mark.parametrize("value", ["yesterday", "-5"])
def test_a_bad_source_date_epoch_is_a_config_error(sample: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        build_artifact(sample, PackOptions(install=False), environ={"SOURCE_DATE_EPOCH": value})


def test_an_unknown_compression_is_a_usage_error(sample: Path) -> None:
    with pytest.raises(UsageError, match="zstd or gzip"):
        build_artifact(sample, PackOptions(install=False, compression="xz"), environ={})


def test_result_json_uses_strings_for_paths(sample: Path) -> None:
    result = build_artifact(sample, PackOptions(install=False, sbom=False), environ={})
    data = result.as_json()
    assert data["artifact"] == str(result.artifact)
    assert data["sbom"] is None and data["signature"] is None
    assert data["size_bytes"] == result.artifact.stat().st_size


def test_a_repack_replaces_the_artifact_then_the_manifest(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    options = PackOptions(out=out, install=False, sbom=False)
    first = build_artifact(sample, options, environ={})
    (sample / "index.js").write_text("// changed\n")
    second = build_artifact(sample, options, environ={})
    assert second.digest != first.digest
    assert sha256_file(second.artifact) == second.digest
    assert json.loads(second.manifest.read_text())["digest"] == second.digest
    assert sorted(path.name for path in out.iterdir()) == [
        "app.tar.zst",
        "app.tar.zst.manifest.json",
    ]  # no temporary files left behind


def test_an_artifact_that_cannot_take_its_place_keeps_the_old_manifest(
    sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "app.tar.zst" / "in-the-way").mkdir(parents=True)  # the rename onto it fails
    manifest = out / "app.tar.zst.manifest.json"
    manifest.write_text("the old manifest")
    with pytest.raises(IOFailure, match="cannot write .*app.tar.zst"):
        build_artifact(sample, PackOptions(out=out, install=False, sbom=False), environ={})
    assert manifest.read_text() == "the old manifest"
    assert sorted(path.name for path in out.iterdir()) == ["app.tar.zst", manifest.name]


def test_the_node_major_is_chosen_and_engines_must_admit_the_target(tmp_path: Path) -> None:
    from aether.pack.target import Target

    (tmp_path / "package.json").write_text('{"name": "p", "engines": {"node": ">=20.5"}}')
    (tmp_path / "index.js").write_text("1")
    server = Target("linux", "x64", "glibc", "2.36", 20, "20.20.2")
    options = PackOptions(install=False, sbom=False, target=server)
    assert build_artifact(tmp_path, options, environ={}).node_major == 20
    old = Target("linux", "x64", "glibc", "2.36", 20, "20.1.0")
    with pytest.raises(UsageError, match='">=20.5" does not admit Node.js 20.1.0'):
        build_artifact(tmp_path, PackOptions(install=False, sbom=False, target=old), environ={})
    (tmp_path / ".nvmrc").write_text("22\n")  # a pin the server may run: recorded as asked
    assert build_artifact(tmp_path, options, environ={}).node_major == 22


@pytest.mark.parametrize("layered", [False, True])
def test_no_native_check_packs_foreign_natives_without_looking(
    sample: Path, tmp_path: Path, layered: bool
) -> None:
    addon = sample / "node_modules" / "mac" / "mac.node"
    addon.parent.mkdir(parents=True)
    addon.write_bytes(b"\xcf\xfa\xed\xfe" + (0x0100000C).to_bytes(4, "little") + bytes(56))
    with pytest.raises(UsageError, match=r"node_modules/mac/mac\.node: built for darwin-arm64"):
        build_artifact(
            sample,
            PackOptions(out=tmp_path / "checked", install=False, layered=layered),
            environ={},
        )
    result = build_artifact(
        sample,
        PackOptions(out=tmp_path / "unchecked", install=False, layered=layered, native_check=False),
        environ={},
    )
    assert "natives" not in result.timings_ms and result.warnings == ()
    assert result.artifact.is_file()


def test_a_kept_packs_records_outlive_it_out_of_the_collectors_reach(
    sample: Path, tmp_path: Path
) -> None:
    kept: list[object] = []
    try:
        result = build_artifact(
            sample, PackOptions(out=tmp_path, install=False, layered=True), environ={}, keep=kept
        )
        records = [
            record
            for value in kept
            if isinstance(value, list)
            for layer in value
            for record in layer.contents.files
        ]
        assert len(records) == result.files > 0
        assert gc.get_freeze_count() >= len(records)
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("native_check", [False, True])
def test_a_folder_packed_as_it_is_loads_no_staged_build_module(
    sample: Path, native_check: bool
) -> None:
    loaded = modules_loaded_by(
        "from pathlib import Path; from aether.pack import PackOptions, build_artifact; "
        f"build_artifact(Path({str(sample)!r}), PackOptions(install=False, "
        f"native_check={native_check}, layered=True), environ={{}})",
        prefix="aether.pack.",
    )
    assert "aether.pack.layered" in loaded  # it did pack
    staged = {"aether.pack.staged", "aether.pack.deps", "aether.pack.managers"}
    assert not loaded & {*staged, "aether.pack.mirror", "aether.pack.workspaces"}
    assert ("aether.pack.natives" in loaded) == native_check
