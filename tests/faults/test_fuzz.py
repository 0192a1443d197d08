"""Property-based fuzzing (hypothesis) of what reads untrusted bytes: the archive reader and safe
extractor, the worker's layer scanner, and the manifest and package.json parsers.

Whatever the input: the only exceptions are Aether's own errors (each with its exit code),
nothing lands outside the target folder, nothing half-extracted is left, and memory stays
bounded (the traced peak of each example is checked).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aether.errors import AetherError
from aether.pack.extract import safe_extract
from aether.pack.manifest import read_manifest
from aether.pack.project import read_package_json
from aether.pack.verify import verify_artifact
from aether.settings import ExpansionLimits
from aether.worker.runtimes.layers import split_archive

EXAMPLES = int(os.environ.get("AETHER_FUZZ_EXAMPLES", "150"))
PEAK_BYTES = 64 << 20  # what one example may hold in Python objects at once
LIMITS = ExpansionLimits(max_bytes=8 << 20, max_ratio=200)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAMES = st.one_of(
    st.sampled_from(
        [
            "a",
            "dir/b",
            "../x",
            "/abs",
            "./c",
            "node_modules/p/index.js",
            "a/../../y",
            "",
            ".",
            "x" * 300,
            "d/" * 60 + "f",
            "\x00nul",
            "é/ü",
            "node_modules",
            "a//b",
        ]
    ),  # fmt: skip
    st.text(min_size=1, max_size=40),
)
KINDS = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
     tarfile.FIFOTYPE, tarfile.BLKTYPE]
)  # fmt: skip


@st.composite
def members(draw: st.DrawFn) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(draw(NAMES))
    info.type = draw(KINDS)
    info.mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o2755, 0o1777, 0o000]))
    data = None
    if info.type == tarfile.REGTYPE:
        data = draw(st.binary(max_size=2048)) * draw(st.sampled_from([1, 1, 64, 4096]))
        info.size = len(data)
    else:
        info.linkname = draw(NAMES)
    if draw(st.booleans()):
        info.pax_headers = {"comment": "x" * draw(st.sampled_from([1, 1000, 2 << 20]))}
    return info, data


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """A tar (zstd, gzip or plain) of drawn members, sometimes with bytes flipped or cut."""
    raw = io.BytesIO()
    tar_format = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]))
    with tarfile.open(fileobj=raw, mode="w", format=tar_format) as tar:
        for info, data in draw(st.lists(members(), max_size=8)):
            try:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
            except (ValueError, UnicodeError):  # a name tarfile itself cannot write
                continue
    body = bytearray(raw.getvalue())
    for position in draw(st.lists(st.integers(0, max(0, len(body) - 1)), max_size=4)):
        if body:
            body[position] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    codec = draw(st.sampled_from(["zstd", "gzip", "none"]))
    if codec == "zstd":
        return zstandard.ZstdCompressor().compress(bytes(body))
    if codec == "gzip":
        import gzip

        return gzip.compress(bytes(body), mtime=0)
    return bytes(body)


def bounded(run: Callable[[], Any]) -> None:
    """Run one example; only Aether's errors may escape, and the traced peak stays small."""
    tracemalloc.start()
    try:
        run()
    except AetherError as exc:
        assert exc.exit_code in (2, 10, 20, 30, 40), exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"peak {peak} bytes"


@pytest.fixture(scope="module")
def sandbox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=archives())
@example(data=b"\x28\xb5\x2f\xfd" + b"\x00" * 64)
@example(data=b"\x1f\x8b" + b"\xff" * 64)
def test_safe_extract_and_the_layer_scanner(data: bytes, sandbox_root: Path) -> None:
    sandbox = Path(tempfile.mkdtemp(dir=sandbox_root))
    try:
        archive = sandbox / "a.tar.zst"
        archive.write_bytes(data)
        bounded(lambda: safe_extract(archive, sandbox / "out", limits=LIMITS))
        outside = {p.name for p in sandbox.iterdir()} - {"a.tar.zst", "out"}
        assert outside == set(), outside  # no temporary folder, nothing escaped
        bounded(lambda: split_archive(archive, sandbox / "rest.tar", LIMITS))
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
MANIFESTS = st.fixed_dictionaries(
    {"format": st.sampled_from(["aether-manifest/1", "other"])},
    optional={
        "digest": st.text(max_size=64),
        "tar_sha256": st.text(max_size=64),
        "files": JSON_VALUES,
        "directories": JSON_VALUES,
        "symlinks": JSON_VALUES,
        "totals": JSON_VALUES,
    },
).map(json.dumps)


@FUZZ
@given(text=st.one_of(MANIFESTS, st.text(max_size=200)))
@example(text="[" * 100_000 + "]" * 100_000)
@example(text='{"format": "aether-manifest/1", "totals": [1], "files": []}')
def test_manifest_parser(text: str, sandbox_root: Path) -> None:
    sandbox = Path(tempfile.mkdtemp(dir=sandbox_root))
    try:
        artifact = sandbox / "a.tar.zst"
        artifact.write_bytes(zstandard.ZstdCompressor().compress(b"\0" * 1024))
        manifest = sandbox / "a.manifest.json"
        manifest.write_text(text, encoding="utf-8", errors="surrogatepass")
        bounded(lambda: read_manifest(manifest))
        bounded(lambda: verify_artifact(artifact, manifest=manifest))
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


@FUZZ
@given(text=st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=200)))
@example(text="{" * 50_000)
def test_package_json_parser(text: str, sandbox_root: Path) -> None:
    sandbox = Path(tempfile.mkdtemp(dir=sandbox_root))
    try:
        (sandbox / "package.json").write_text(text, encoding="utf-8", errors="surrogatepass")
        bounded(lambda: read_package_json(sandbox))
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
