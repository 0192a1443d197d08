"""The one sha256 helper that pack, blobs, the server and the worker share."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from aether.digests import CHUNK, HashingWriter, sha256_file, sha256_stream
from aether.errors import IOFailure


def test_a_file_across_chunk_boundaries(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK // 256 * 2 + 3)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_a_stream_is_hashed_from_where_it_stands() -> None:
    source = io.BytesIO(b"headbody")
    source.read(4)
    assert sha256_stream(source) == (hashlib.sha256(b"body").hexdigest(), 4)


def test_an_unreadable_file_is_an_io_failure(tmp_path: Path) -> None:
    with pytest.raises(IOFailure, match="cannot read"):
        sha256_file(tmp_path / "missing")
    with pytest.raises(IOFailure):
        sha256_file(tmp_path)  # a folder


def test_the_writer_hashes_what_it_writes() -> None:
    out = io.BytesIO()
    writer = HashingWriter(out)
    for part in (b"ab", b"", b"cd"):
        writer.write(part)
    assert out.getvalue() == b"abcd" and writer.size == 4
    assert writer.hexdigest() == hashlib.sha256(b"abcd").hexdigest()
