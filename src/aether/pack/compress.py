"""The compressed side of the artifact: fixed-parameter zstd or gzip, hashed as written.

Determinism: zstd runs at level 3 in its multi-threaded mode, without a content size in the
frame header. Single-threaded zstd (``threads=0``) emits other bytes than the multi-threaded
mode, but the multi-threaded mode's output depends only on the level and its fixed job size,
not on how many workers run it nor on how the stream is cut into calls (tests write the same
stream with 1, 2 and 4 workers and in uneven pieces, against a pinned digest): the worker
count follows the CPUs unless the caller chooses it. gzip is raw deflate at level 6 behind a
fixed 10-byte header (mtime 0, no file name, OS "unknown"); deflate's output does not depend on
the cuts either. Compression runs on a background thread so reading and hashing files
overlaps with it. Big immutable writes (a batch of members, a large file's chunk) go to it as
they are, without a copy; small ones are gathered into recycled 1 MiB chunks. The queue between
the two holds at most ``_QUEUE_DEPTH`` writes, so memory does not grow with the tree.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable
from typing import BinaryIO

import zstandard

from aether.digests import HashingWriter

COMPRESSIONS = ("zstd", "gzip")
SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz"}
ZSTD_LEVEL = 3
MAX_ZSTD_WORKERS = 4
GZIP_LEVEL = 6
CHUNK = 1024 * 1024
# Writes at least this big that cannot change (bytes, read-only views) are not copied.
PASS_MIN = 64 * 1024
_QUEUE_DEPTH = 8
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_DONE = None


def zstd_workers() -> int:
    """Worker threads for zstd: never 0 (that is the single-threaded mode, other bytes)."""
    return max(1, min(os.cpu_count() or 1, MAX_ZSTD_WORKERS))


class _Zstd:
    def __init__(self, workers: int) -> None:
        compressor = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, threads=workers, write_checksum=True, write_content_size=False
        )
        self._stream = compressor.compressobj()

    def header(self) -> bytes:
        return b""

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._stream.compress(data)

    def finish(self) -> bytes:
        return self._stream.flush()


class _Gzip:
    def __init__(self) -> None:
        self._stream = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 8)
        self._crc = 0
        self._size = 0

    def header(self) -> bytes:
        return _GZIP_HEADER

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return self._stream.compress(data)

    def finish(self) -> bytes:
        trailer = struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
        return self._stream.flush() + trailer


def _codec(compression: str, workers: int | None) -> _Zstd | _Gzip:
    if compression == "zstd":
        return _Zstd(workers or zstd_workers())
    if compression == "gzip":
        return _Gzip()
    raise ValueError(f"unknown compression {compression!r}; use zstd or gzip")


Buffer = bytes | bytearray | memoryview
# What the compressing thread takes: a piece of the stream, and the chunk to recycle after it.
_Piece = tuple[Buffer, bytearray | None]


class CompressedSink:
    """Accepts the tar stream with ``write``; ``close`` returns the hashes and sizes.

    ``digest`` hashes the compressed bytes written to ``handle`` (the artifact's identity);
    with ``hash_tar`` (single-file artifacts, whose format records it), ``tar_sha256`` hashes
    the uncompressed stream, otherwise it is None and costs nothing. ``write`` may keep a
    ``bytes`` or a read-only memoryview it is given until it is compressed: what lies under
    such a view must not change.
    """

    def __init__(
        self,
        handle: BinaryIO,
        compression: str,
        *,
        workers: int | None = None,
        hash_tar: bool = True,
    ) -> None:
        self._codec = _codec(compression, workers)
        self._out = HashingWriter(handle)
        self._tar_hash = hashlib.sha256() if hash_tar else None
        self.tar_size = 0
        # Small writes are copied into CHUNK-sized buffers that the compressing thread hands
        # back when it is done with them (both codecs copy what they are given).
        self._chunk = bytearray(CHUNK)
        self._filled = 0
        self._spare: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._queue: queue.Queue[_Piece | None] = queue.Queue(_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="aether-compress", daemon=True)
        self._out.write(self._codec.header())
        self._thread.start()

    def write(self, data: Buffer) -> None:
        size = len(data)
        if size >= PASS_MIN and _immutable(data):
            self._put_chunk()
            self.tar_size += size
            self._put((data, None))
            return
        filled = self._filled
        if filled + size < CHUNK:
            self.tar_size += size
            self._chunk[filled : filled + size] = data
            self._filled = filled + size
            return
        view = memoryview(data)
        start = 0

        def copy(room: memoryview) -> None:
            nonlocal start
            room[:] = view[start : start + len(room)]
            start += len(room)

        self.write_from(copy, size)

    def write_from(self, read_into: Callable[[memoryview], None], size: int) -> None:
        """Take ``size`` bytes that ``read_into(view)`` puts straight into the chunks.

        A pipe's bytes land where the compressor reads them, without a copy in between.
        """
        self.tar_size += size
        while size:
            take = min(CHUNK - self._filled, size)
            read_into(memoryview(self._chunk)[self._filled : self._filled + take])
            self._filled += take
            size -= take
            if self._filled == CHUNK:
                self._put_chunk()

    def _put_chunk(self) -> None:
        """Hand over what the current chunk holds, and start another."""
        if not self._filled:
            return
        self._put((memoryview(self._chunk)[: self._filled], self._chunk))
        try:
            self._chunk = self._spare.get_nowait()
        except queue.Empty:
            self._chunk = bytearray(CHUNK)
        self._filled = 0

    def _put(self, chunk: _Piece | None) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        tar_hash = self._tar_hash
        try:
            while (piece := self._queue.get()) is not _DONE:
                data, recycle = piece
                self._out.write(self._codec.compress(data))
                if tar_hash is not None:
                    # After the compressor, which copied it: the bytes are in this core's cache.
                    tar_hash.update(data)
                del data, piece  # a batch's buffer goes back to its reader now
                if recycle is not None:
                    self._spare.put(recycle)
            self._out.write(self._codec.finish())
        except BaseException as exc:  # handed to the writer thread, which re-raises it
            self._error = exc

    def close(self) -> tuple[str | None, str, int]:
        """Flush everything; returns (tar_sha256 or None without ``hash_tar``, digest,
        compressed size)."""
        self._put_chunk()
        self._put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error
        tar_sha256 = self._tar_hash.hexdigest() if self._tar_hash is not None else None
        return tar_sha256, self._out.hexdigest(), self._out.size

    def abort(self) -> None:
        """Stop the background thread after a failure on the writing side."""
        if self._thread.is_alive():
            try:
                self._put(_DONE)
            except BaseException:  # the thread already failed; nothing left to stop
                return
            self._thread.join()


def _immutable(data: Buffer) -> bool:
    return isinstance(data, bytes) or (isinstance(data, memoryview) and data.readonly)
