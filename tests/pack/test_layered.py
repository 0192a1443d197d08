"""Format 2: a manifest naming a deps and an app layer; deterministic, verified, cached."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pack_support import build_sample
from test_determinism import read_members, scramble

from aether.cli import cli
from aether.cli.boundary import run
from aether.errors import IntegrityError
from aether.pack import PackOptions, build_artifact, safe_extract
from aether.pack.artifact_manifest import (
    MEDIA_TYPES,
    artifact_digest,
    canonical_bytes,
    parse_artifact_manifest,
)
from aether.pack.compose import extract_layers
from aether.pack.ignore import IgnoreRules
from aether.pack.layered import deps_cache_key, write_layers
from aether.pack.layout import manifest_path
from aether.pack.verify import verify_layered
from aether.pack.walk import Walker
from plugins.older_artifacts import record_tar_sha256


def pack_layered(project: Path, out: Path, **options: object):  # type: ignore[no-untyped-def]
    return build_artifact(
        project,
        PackOptions(out=out, install=False, layered=True, **options),  # type: ignore[arg-type]
        environ={},
    )


def test_layers_split_node_modules_from_the_app(sample: Path, tmp_path: Path) -> None:
    result = pack_layered(sample, tmp_path / "out")
    raw = result.artifact.read_bytes()
    manifest = parse_artifact_manifest(raw)
    assert result.digest == artifact_digest(raw)
    assert [layer.name for layer in manifest.layers] == ["deps", "app"]
    by_name = {layer["name"]: Path(layer["path"]) for layer in result.layers}
    deps = [m.name for m in read_members(by_name["deps"])]
    app = [m.name for m in read_members(by_name["app"])]
    assert deps and all(
        n in ("node_modules", "package-lock.json") or n.startswith("node_modules/") for n in deps
    )
    assert "package-lock.json" in deps  # the lockfile changes with the deps, not the code
    assert "index.js" in app and not any(n.startswith("node_modules") for n in app)
    assert "package-lock.json" not in app
    assert result.size_bytes == sum(layer.size for layer in manifest.layers) + len(raw)
    report = verify_layered(result.artifact)
    assert report.digest == result.digest and len(report.layers) == 2


def test_the_layers_compose_the_single_file_tree(sample: Path, tmp_path: Path) -> None:
    layered = pack_layered(sample, tmp_path / "layered")
    single = build_artifact(sample, PackOptions(out=tmp_path / "single", install=False), environ={})
    manifest = parse_artifact_manifest(layered.artifact.read_bytes())
    files = {layer["name"]: Path(layer["path"]) for layer in layered.layers}
    extract_layers(manifest, files, tmp_path / "a")
    safe_extract(single.artifact, tmp_path / "b")
    assert tree_of(tmp_path / "a") == tree_of(tmp_path / "b")


def tree_of(root: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return found


def test_same_inputs_give_the_same_bytes_anywhere(sample: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing the owner needs root")
    previous = os.umask(0o077)
    try:
        other = build_sample(tmp_path / "elsewhere" / "deeper", exec_mode=0o700, file_mode=0o600)
    finally:
        os.umask(previous)
    scramble(other, owner=4242)
    first = pack_layered(sample, tmp_path / "one")
    second = pack_layered(other, tmp_path / "two")
    assert first.artifact.read_bytes() == second.artifact.read_bytes()
    for a, b in zip(first.layers, second.layers, strict=True):
        assert Path(a["path"]).read_bytes() == Path(b["path"]).read_bytes()


def test_a_code_change_changes_only_the_app_layer(sample: Path, tmp_path: Path) -> None:
    first = pack_layered(sample, tmp_path / "out")
    (sample / "index.js").write_text("console.log('changed');\n", encoding="utf-8")
    second = pack_layered(sample, tmp_path / "out")
    assert first.layers[0]["digest"] == second.layers[0]["digest"]
    assert first.layers[1]["digest"] != second.layers[1]["digest"]
    assert first.digest != second.digest
    # the earlier app layer is gone from the folder, the shared deps layer stays
    names = {p.name for p in (tmp_path / "out" / "layers").iterdir()}
    assert len(names) == 4
    verify_layered(second.artifact)


def test_a_lockfile_change_changes_the_deps_layer(sample: Path, tmp_path: Path) -> None:
    first = pack_layered(sample, tmp_path / "out")
    lock = sample / "package-lock.json"
    lock.write_text(lock.read_text().replace('"1.2.3"', '"1.2.4"', 1))
    second = pack_layered(sample, tmp_path / "out")
    assert first.layers[0]["digest"] != second.layers[0]["digest"]
    assert first.layers[1]["digest"] == second.layers[1]["digest"]


def test_layers_record_no_tar_sha256(sample: Path, tmp_path: Path) -> None:
    """The layer's digest pins its compressed bytes and its index every member: a hash of the
    uncompressed stream is neither computed nor written, in the manifest or the indexes."""
    result = pack_layered(sample, tmp_path / "out")
    raw = result.artifact.read_bytes()
    assert b"tar_sha256" not in raw
    assert all(layer.tar_sha256 is None for layer in parse_artifact_manifest(raw).layers)
    for listed in result.layers:
        assert "tar_sha256" not in listed
        assert "tar_sha256" not in json.loads(manifest_path(Path(listed["path"])).read_text())
    report = verify_layered(result.artifact)
    assert [layer.tar_sha256 for layer in report.layers] == [None, None]


def test_an_artifact_recording_tar_sha256_still_verifies(sample: Path, tmp_path: Path) -> None:
    """Earlier builds recorded tar_sha256 per layer: such an artifact still parses, verifies
    and has it checked; a recorded hash the tar does not have is refused."""
    result = pack_layered(sample, tmp_path / "out")
    digest = record_tar_sha256(result.artifact)
    manifest = parse_artifact_manifest(result.artifact.read_bytes())
    assert manifest.encode() == result.artifact.read_bytes()  # one canonical form still
    assert all(layer.tar_sha256 for layer in manifest.layers)
    report = verify_layered(result.artifact)
    assert report.digest == digest
    assert [layer.tar_sha256 for layer in report.layers] == [
        layer.tar_sha256 for layer in manifest.layers
    ]
    assert run(cli, ["verify", str(result.artifact)]) == 0
    record_tar_sha256(result.artifact, wrong=True)
    with pytest.raises(IntegrityError, match="tar_sha256 mismatch"):
        verify_layered(result.artifact)


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("recorded", [False, True], ids=["current", "with-tar-sha256"])
def test_a_tampered_byte_in_any_layer_exits_20(
    sample: Path, tmp_path: Path, layer: int, recorded: bool
) -> None:
    result = pack_layered(sample, tmp_path / "out")
    if recorded:
        record_tar_sha256(result.artifact)
    has_field = parse_artifact_manifest(result.artifact.read_bytes()).layers[layer].tar_sha256
    assert bool(has_field) == recorded
    path = Path(result.layers[layer]["path"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        verify_layered(result.artifact)
    assert run(cli, ["verify", str(result.artifact)]) == 20


def test_a_changed_manifest_or_missing_layer_is_refused(sample: Path, tmp_path: Path) -> None:
    result = pack_layered(sample, tmp_path / "out")
    raw = result.artifact.read_bytes()
    spaced = raw.replace(b'","', b'", "', 1)
    result.artifact.write_bytes(spaced)
    with pytest.raises(IntegrityError, match="canonical"):
        verify_layered(result.artifact)
    result.artifact.write_bytes(raw)
    Path(result.layers[0]["path"]).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        verify_layered(result.artifact)


def test_a_signed_artifact_verifies_with_its_key(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aether.pack import generate_keypair

    seed, public = generate_keypair()
    result = pack_layered(sample, tmp_path / "out", signing_key=seed)
    assert result.signature is not None and result.signature.is_file()
    assert verify_layered(result.artifact, public_key_hex=public).signature_verified
    assert run(cli, ["verify", str(result.artifact), "--public-key", generate_keypair()[1]]) == 20


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(IntegrityError):
        parse_artifact_manifest(canonical_bytes({"format": "aether-artifact/2", "layers": []}))
    with pytest.raises(IntegrityError):
        parse_artifact_manifest(b"\x28\xb5\x2f\xfd")


@pytest.mark.parametrize("value", [None, "", "A" * 64, "0" * 63, 7])
def test_a_recorded_tar_sha256_must_be_a_digest(value: object) -> None:
    layer = {
        "bytes": 10,
        "digest": "a" * 64,
        "files": 1,
        "index_sha256": "b" * 64,
        "media_type": MEDIA_TYPES["zstd"],
        "name": "app",
        "size": 5,
    }
    data = {
        "format": "aether-artifact/2",
        "layers": [layer],
        "node_major": None,
        "sbom_sha256": None,
        "source_date_epoch": 0,
    }
    assert parse_artifact_manifest(canonical_bytes(data)).layers[0].tar_sha256 is None
    recorded = {**data, "layers": [{**layer, "tar_sha256": "c" * 64}]}
    assert parse_artifact_manifest(canonical_bytes(recorded)).layers[0].tar_sha256 == "c" * 64
    with pytest.raises(IntegrityError, match="malformed"):
        parse_artifact_manifest(
            canonical_bytes({**data, "layers": [{**layer, "tar_sha256": value}]})
        )


def test_the_deps_layer_is_cached_until_the_install_changes(sample: Path, tmp_path: Path) -> None:
    installed = sample / "node_modules"
    key = deps_cache_key(tmp_path / "cache", "deps-key", installed, "zstd", 0, "")
    walker = Walker(os.fspath(sample), IgnoreRules.for_project(sample, []))

    def layers() -> list:  # type: ignore[type-arg]
        return write_layers(walker, tmp_path / "out", "zstd", 0, lambda *a: None, key)

    first = layers()
    second = layers()
    assert [first[0].reused, second[0].reused] == [False, True]
    assert first[0].ref == second[0].ref
    (installed / "left-pad" / "index.js").write_text("// edited by hand\n", encoding="utf-8")
    third = layers()
    assert not third[0].reused and third[0].ref.digest != first[0].ref.digest
    shutil.rmtree(tmp_path / "out")
    assert layers()[0].reused


def test_out_naming_an_archive_is_refused_for_a_layered_pack(sample: Path, tmp_path: Path) -> None:
    from aether.errors import UsageError

    with pytest.raises(UsageError, match="folder"):
        pack_layered(sample, tmp_path / "x.tar.zst")


def test_the_deps_layer_cache_keeps_a_few_recent_layers(sample: Path, tmp_path: Path) -> None:
    from aether.pack.layered import KEEP_CACHED

    walker = Walker(os.fspath(sample), IgnoreRules.for_project(sample, []))
    for index in range(KEEP_CACHED + 3):
        key = deps_cache_key(
            tmp_path / "cache", f"key-{index}", sample / "node_modules", "zstd", 0, ""
        )
        write_layers(walker, tmp_path / "out", "zstd", 0, lambda *a: None, key)
    assert len(list((tmp_path / "cache" / "layers").iterdir())) == KEEP_CACHED + 1
    assert key.folder.is_dir()


def test_an_older_artifact_with_the_lockfile_in_the_app_layer_composes(
    sample: Path, tmp_path: Path
) -> None:
    lock = (sample / "package-lock.json").read_bytes()
    no_lock = shutil.copytree(sample, tmp_path / "no-lock", symlinks=True)
    (no_lock / "package-lock.json").unlink()
    older_deps = pack_layered(no_lock, tmp_path / "deps")  # node_modules alone
    shutil.rmtree(sample / "node_modules")  # no deps layer: the lockfile stays in the app layer
    older_app = pack_layered(sample, tmp_path / "app")
    manifest = parse_artifact_manifest(older_deps.artifact.read_bytes())
    files = {"deps": Path(older_deps.layers[0]["path"]), "app": Path(older_app.layers[0]["path"])}
    extract_layers(manifest, files, tmp_path / "x")
    assert (tmp_path / "x" / "package-lock.json").read_bytes() == lock
    assert (tmp_path / "x" / "node_modules" / "left-pad").is_dir()


def test_a_lockfile_in_both_layers_is_refused(sample: Path, tmp_path: Path) -> None:
    from aether.pack.extract import UnsafeArchive

    current = pack_layered(sample, tmp_path / "now")
    shutil.rmtree(sample / "node_modules")
    app_with_lock = pack_layered(sample, tmp_path / "older")
    manifest = parse_artifact_manifest(current.artifact.read_bytes())
    files = {"deps": Path(current.layers[0]["path"]), "app": Path(app_with_lock.layers[0]["path"])}
    with pytest.raises(UnsafeArchive, match="package-lock.json"):
        extract_layers(manifest, files, tmp_path / "x")
