"""The compressed stream: fixed bytes whatever the CPU count, and the hashes it reports."""

from __future__ import annotations

import gzip
import hashlib
import io
import random

import pytest
import zstandard

from aether.pack.compress import PASS_MIN, CompressedSink
from aether.pack.reader import detect_compression

# 20 MB spans several zstd jobs, where the multi-threaded mode differs from the single-threaded
# one (which would hash to f4abd04d…): this pins the mode as well as the bytes.
GOLDEN_20MB_ZSTD = "95bd3a48b8dfab4272585f3a478dafc5825f55769115d1b3545c4f2a75e0d628"


def stream(size: int = 20 * 2**20) -> list[bytes]:
    """Deterministic, compressible data, cut into uneven writes."""
    rng = random.Random(20240601)
    pool = rng.randbytes(8192).hex().encode()
    chunks, total = [], 0
    while total < size:
        start = rng.randrange(len(pool) // 2)
        chunk = pool[start : start + rng.randrange(1, len(pool) // 2)]
        chunks.append(chunk)
        total += len(chunk)
    return chunks


def pack(
    chunks: list[bytes] | list[bytes | memoryview],
    compression: str,
    workers: int | None = None,
    *,
    hash_tar: bool = True,
):
    out = io.BytesIO()
    sink = CompressedSink(out, compression, workers=workers, hash_tar=hash_tar)
    for chunk in chunks:
        sink.write(chunk)
    tar_sha256, digest, size = sink.close()
    return out.getvalue(), tar_sha256, digest, size


def test_zstd_bytes_do_not_depend_on_the_worker_count() -> None:
    chunks = stream()
    results = {workers: pack(chunks, "zstd", workers) for workers in (1, 2, 4)}
    digests = {result[2] for result in results.values()}
    assert digests == {GOLDEN_20MB_ZSTD}


def test_bytes_filled_in_place_compress_like_written_ones() -> None:
    """``write_from`` (a pipe's bytes read into the chunks) and big writes: the same stream."""
    data = b"".join(stream())
    out = io.BytesIO()
    sink = CompressedSink(out, "zstd", workers=2)
    position = 0
    for index, size in enumerate([5, 3 * 2**20 + 7, 1, 2**20, 2**20 - 1, 4 * 2**20 + 3]):
        piece = data[position : position + size]
        if index % 2:
            sink.write_from(_feeder(piece), size)
        else:
            sink.write(piece)
        position += size
    sink.write(data[position:])
    assert sink.close()[1] == GOLDEN_20MB_ZSTD


def _feeder(data: bytes):
    """A ``read_into`` that hands out ``data`` in order, as a pipe would."""
    remaining = memoryview(data)

    def read_into(view: memoryview) -> None:
        nonlocal remaining
        view[:] = remaining[: len(view)]
        remaining = remaining[len(view) :]

    return read_into


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_the_bytes_do_not_depend_on_how_the_stream_is_cut(compression: str) -> None:
    """Big immutable writes reach the compressor as they are, small ones gathered in chunks:
    the compressed bytes are those of the stream, however it was cut."""
    data = b"".join(stream(7 * 2**20))
    pieces: list[bytes | memoryview] = []
    position = 0
    for index, size in enumerate([1, 70_000, 2**20 + 1, 100, PASS_MIN, 3 * 2**20, 5]):
        piece = data[position : position + size]
        pieces.append(memoryview(piece) if index % 2 else piece)
        position += size
    pieces.append(data[position:])
    assert pack(pieces, compression) == pack([data], compression)


def test_a_mutable_buffer_is_copied_before_it_is_written() -> None:
    data = b"".join(stream(2 * 2**20))
    expected = pack([data], "zstd")
    out = io.BytesIO()
    sink = CompressedSink(out, "zstd", workers=2)
    for start in range(0, len(data), 2**20):
        buffer = bytearray(data[start : start + 2**20])
        sink.write(buffer)
        buffer[:] = bytes(len(buffer))  # reused by its owner at once
    hashes = sink.close()
    assert (out.getvalue(), *hashes) == expected


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_hashes_and_round_trip(compression: str) -> None:
    chunks = stream(3 * 2**20)
    data, tar_sha256, digest, size = pack(chunks, compression)
    raw = b"".join(chunks)
    assert tar_sha256 == hashlib.sha256(raw).hexdigest()
    assert digest == hashlib.sha256(data).hexdigest() and size == len(data)
    if compression == "zstd":
        restored = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    else:
        restored = gzip.decompress(data)
    assert restored == raw
    assert detect_compression(data[:4]) == compression  # what the reader and the server sniff


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_without_hash_tar_the_same_bytes_and_no_tar_sha256(compression: str) -> None:
    """A layer's stream is not hashed uncompressed: the same bytes and digest, no tar_sha256."""
    chunks = stream(3 * 2**20)
    data, tar_sha256, digest, size = pack(chunks, compression)
    assert pack(chunks, compression, hash_tar=False) == (data, None, digest, size)


def test_anything_else_is_sniffed_as_plain_tar() -> None:
    assert detect_compression(b"") == "none"
    assert detect_compression(b"\x1f") == "none"  # half a gzip magic number
    assert detect_compression(b"ustar") == "none"


def test_a_failure_on_the_compressing_side_reaches_the_writer() -> None:
    class Broken(io.BytesIO):
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    sink = CompressedSink(Broken(), "zstd")
    with pytest.raises(OSError, match="No space"):
        for chunk in stream(40 * 2**20):
            sink.write(chunk)
        sink.close()
