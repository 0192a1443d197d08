"""The dependency layer: code-only redeploys reuse the extracted node_modules; anything that
could change what a link points to disables sharing. Real artifacts through the blob store."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from worker_support import Recorder, eventually, get_json, worker_settings

from aether.blobs.local import LocalBlobStore
from aether.pack import PackOptions, build_artifact
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.layers import split_archive
from aether.worker.runtimes.local import LocalRuntime

LAYERED_APP = Path(__file__).parent / "fixtures" / "layered-app"


def pack(project: Path, out: Path) -> Any:
    return build_artifact(project, PackOptions(out=out, install=False, sbom=False))


def project_copy(tmp_path: Path, name: str, *, code: str = "", module: str = "") -> Path:
    folder = tmp_path / name
    shutil.copytree(LAYERED_APP, folder, symlinks=True)
    if code:
        (folder / "server.js").write_text((folder / "server.js").read_text() + code)
    if module:
        (folder / "node_modules/greeting/index.js").write_text(module)
    return folder


def test_layer_hash_follows_node_modules_only(tmp_path: Path) -> None:
    base = pack(project_copy(tmp_path, "a"), tmp_path / "out-a")
    code = pack(project_copy(tmp_path, "b", code="// v2\n"), tmp_path / "out-b")
    deps = pack(
        project_copy(tmp_path, "c", module="module.exports = () => 'x';\n"), tmp_path / "out-c"
    )
    splits = [
        split_archive(p.artifact, tmp_path / f"rest-{i}.tar")
        for i, p in enumerate([base, code, deps])
    ]
    assert splits[0].layer is not None
    assert splits[0].layer == splits[1].layer != splits[2].layer
    with tarfile.open(splits[0].rest) as rest:
        names = rest.getnames()
    assert "server.js" in {n.removeprefix("./") for n in names}
    assert not any("node_modules" in n for n in names)


def _tar_with(tmp_path: Path, link_target: str) -> Path:
    path = tmp_path / f"links-{abs(hash(link_target))}.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("server.js", b"x"), ("node_modules/a/index.js", b"y")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("node_modules/a/link")
        link.type, link.linkname = tarfile.SYMTYPE, link_target
        tar.addfile(link)
    return path


@pytest.mark.parametrize(
    ("target", "shared"),
    [
        ("index.js", True),
        ("../a/index.js", True),
        ("../../server.js", False),
        ("/etc/passwd", False),
        ("..", False),
    ],
)
def test_links_leaving_node_modules_disable_the_layer(
    tmp_path: Path, target: str, shared: bool
) -> None:
    split = split_archive(_tar_with(tmp_path, target), tmp_path / "rest.tar")
    assert (split.layer is not None) == shared


async def stored_release(blobs: LocalBlobStore, packed: Any, number: int) -> Release:
    key = f"artifacts/layered/{packed.digest}/app.tar.zst"
    with packed.artifact.open("rb") as source:
        await blobs.put_file(key, source, sha256=packed.digest)
    return Release(
        app_name="layered",
        deployment_id=f"00000000-0000-0000-0000-{number:012d}",
        digest=packed.digest,
        storage_key=key,
        compression="zstd",
        start_command=None,
    )


def cached_layers(root: Path) -> list[Path]:
    return [entry for entry in root.iterdir() if not entry.name.startswith(".")]


async def test_code_only_redeploy_reuses_the_layer(tmp_path: Path, blobs: LocalBlobStore) -> None:
    runtime = LocalRuntime(worker_settings(tmp_path / "data"), blobs=blobs, stop_grace_secs=2.0)
    layers = runtime.layer_cache.root
    try:
        first = await stored_release(blobs, pack(project_copy(tmp_path, "v1"), tmp_path / "o1"), 1)
        record = Recorder()
        observed = await runtime.deploy(first, record)
        assert "reused" not in dict(record.events)["extracted"]
        assert (await get_json(observed.endpoint))[1]["greeting"] == "hello aether"
        assert len(cached_layers(layers)) == 1

        second_project = project_copy(tmp_path, "v2", code="// code only\n")
        second = await stored_release(blobs, pack(second_project, tmp_path / "o2"), 2)
        record = Recorder()
        observed = await runtime.deploy(second, record)
        assert "node_modules reused" in dict(record.events)["extracted"]
        assert (await get_json(observed.endpoint))[1]["greeting"] == "hello aether"
        folder = runtime.apps_dir / "layered" / second.deployment_id
        assert (folder / "node_modules").is_symlink()
        assert (
            json.loads((folder / ".aether/deployment.json").read_text())["digest"] == second.digest
        )

        third_project = project_copy(tmp_path, "v3", module="module.exports = (w) => `hi ${w}`;\n")
        third = await stored_release(blobs, pack(third_project, tmp_path / "o3"), 3)
        observed = await runtime.deploy(third, Recorder())
        assert (await get_json(observed.endpoint))[1]["greeting"] == "hi aether"

        async def old_layer_deleted() -> bool:
            return len(cached_layers(layers)) == 1

        await eventually(old_layer_deleted)
        assert not (runtime.apps_dir / "layered" / first.deployment_id).exists()
    finally:
        await runtime.stop_apps()  # apps outlive a stopped runtime: end them explicitly
        await runtime.stop()


def _long_name_tar(tmp_path: Path, fmt: int, link_target: str = "index.js") -> Path:
    path = tmp_path / f"long-{fmt}-{abs(hash(link_target))}.tar"
    deep = "node_modules/" + "/".join(["a" * 60] * 3)
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in (("server.js", b"x"), (f"{deep}/index.js", b"y" * 700)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{deep}/link")
        link.type, link.linkname = tarfile.SYMTYPE, link_target
        tar.addfile(link)
    return path


def test_pax_long_names_are_scanned_and_the_rest_tar_is_valid(tmp_path: Path) -> None:
    split = split_archive(_long_name_tar(tmp_path, tarfile.PAX_FORMAT), tmp_path / "r.tar")
    assert split.layer is not None and split.entries == 3
    with tarfile.open(split.rest) as rest:
        assert rest.getnames() == ["server.js"]
        assert rest.extractfile("server.js").read() == b"x"  # type: ignore[union-attr]
    escaping = _long_name_tar(tmp_path, tarfile.PAX_FORMAT, "../" * 5 + "server.js")
    assert split_archive(escaping, tmp_path / "r2.tar").layer is None


def test_gnu_long_names_fall_back_to_a_full_extract(tmp_path: Path) -> None:
    split = split_archive(_long_name_tar(tmp_path, tarfile.GNU_FORMAT), tmp_path / "r.tar")
    assert split.layer is None
