"""Length-prefixed frames over a pipe: how packing workers hand their output to the writer.

A frame is a one-byte kind, an eight-byte little-endian length and the payload. The writer
side is a ``Sink`` (tar bytes become ``DATA`` frames) that can also send pickled objects;
the reader side reads payloads straight into one buffer each, without joining pieces.
"""

from __future__ import annotations

import os
import pickle
import struct

DATA = 1  # tar bytes
DONE = 2  # a pickled summary that closes one task
ERROR = 3  # a pickled exception; the worker stops after it

_HEADER = struct.Struct("<BQ")


class FrameWriter:
    """The writing end: ``write`` sends tar bytes, ``send`` a pickled object."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        if data:
            self._frame(DATA, data)

    def send(self, kind: int, value: object) -> None:
        self._frame(kind, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))

    def _frame(self, kind: int, payload: bytes) -> None:
        header = _HEADER.pack(kind, len(payload))
        views = [memoryview(header), memoryview(payload).cast("B")]
        while views:
            written = os.writev(self._fd, views)
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views:
                views[0] = views[0][written:]


class FrameReader:
    """The reading end: ``read`` returns the next frame's kind and payload."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self) -> tuple[int, bytearray]:
        kind, size = _HEADER.unpack(self._exactly(_HEADER.size))
        return kind, self._exactly(size)

    def _exactly(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        while filled < size:
            count = os.readv(self._fd, [view[filled:]])
            if not count:
                raise EOFError("the pipe closed in the middle of a frame")
            filled += count
        return buffer
