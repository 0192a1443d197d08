"""Length-prefixed frames over a pipe: how packing workers hand their output to the writer.

A frame is a one-byte kind, an eight-byte little-endian length and the payload. The writer
side is a ``Sink`` (tar bytes become ``DATA`` frames) that can also send pickled objects;
the reader side reads payloads into one reused buffer, without joining pieces.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
from collections import deque
from itertools import islice

DATA = 1  # tar bytes
DONE = 2  # a pickled summary that closes one task
ERROR = 3  # a pickled exception; the worker stops after it

_HEADER = struct.Struct("<BQ")
_IOV_MAX = 512  # buffers per writev call, well under every system's limit


class FrameWriter:
    """The writing end: ``write`` sends tar bytes, ``send`` a pickled object.

    Frames the pipe cannot take yet wait in a backlog of up to ``backlog`` bytes, so the
    writer goes on working while the reader is busy with another pipe; beyond that it waits
    for room. ``flush`` writes out whatever is left.
    """

    def __init__(self, fd: int, backlog: int = 0) -> None:
        self._fd = fd
        self._limit = backlog
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)
        os.set_blocking(fd, False)

    def write(self, data: bytes | memoryview) -> None:
        if data:
            self._frame(DATA, data)

    def send(self, kind: int, value: object) -> None:
        self._frame(kind, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))

    def flush(self) -> None:
        self._push(0)

    def _frame(self, kind: int, payload: bytes | memoryview) -> None:
        self._pending.append(memoryview(_HEADER.pack(kind, len(payload))))
        self._pending.append(memoryview(payload).cast("B"))
        self._pending_bytes += _HEADER.size + len(payload)
        self._push(self._limit)

    def _push(self, limit: int) -> None:
        """Write what the pipe takes; wait for room while more than ``limit`` bytes are left."""
        pending = self._pending
        while pending:
            try:
                written = os.writev(self._fd, list(islice(pending, _IOV_MAX)))
            except BlockingIOError:
                if self._pending_bytes <= limit:
                    return
                self._poll.poll()
                continue
            self._pending_bytes -= written
            while written and written >= len(pending[0]):
                written -= len(pending.popleft())
            if written:
                pending[0] = pending[0][written:]


class FrameReader:
    """The reading end: ``read`` returns the next frame's kind and payload.

    The payload is a view of a buffer that the next ``read`` reuses: use it (or copy it)
    before reading on. Fresh buffers for every frame would cost a page fault per 4 KiB.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray(_HEADER.size)

    def read(self) -> tuple[int, memoryview]:
        kind, size = self.read_header()
        return kind, self._exactly(size)

    def read_header(self) -> tuple[int, int]:
        """The next frame's kind and payload size; the payload is read next (or ``read_into``)."""
        return _HEADER.unpack(self._exactly(_HEADER.size))

    def read_into(self, view: memoryview) -> None:
        """Fill ``view`` with the next bytes of the payload whose header was just read."""
        filled, size = 0, len(view)
        while filled < size:
            count = os.readv(self._fd, [view[filled:]])
            if not count:
                raise EOFError("the pipe closed before the frame was complete")
            filled += count

    def _exactly(self, size: int) -> memoryview:
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)[:size]
        self.read_into(view)
        return view
