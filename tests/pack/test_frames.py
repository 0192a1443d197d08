"""Frames over a pipe: payloads of any size arrive whole and in order; a cut pipe is noticed."""

from __future__ import annotations

import os
import threading

import pytest

from aether.pack.frames import DATA, DONE, FrameReader, FrameWriter


def test_frames_arrive_whole_and_in_order() -> None:
    read_fd, write_fd = os.pipe()
    payloads = [b"", b"x", os.urandom(5 * 1024 * 1024 + 3), b"tail" * 1000]

    def produce() -> None:
        writer = FrameWriter(write_fd)
        for payload in payloads:
            writer.write(payload)
        writer.write(bytearray(b"from a bytearray"))
        writer.send(DONE, {"records": [("a.js", 1)]})
        os.close(write_fd)

    thread = threading.Thread(target=produce)
    thread.start()  # the payloads are bigger than the pipe: the writer blocks until read
    reader = FrameReader(read_fd)
    received = []
    for _ in range(len(payloads)):  # the empty payload sends no frame
        kind, payload = reader.read()
        received.append((kind, bytes(payload)))
    last = reader.read()
    thread.join()
    os.close(read_fd)
    assert received[:3] == [(DATA, payload) for payload in payloads if payload]
    assert received[3] == (DATA, b"from a bytearray")
    assert last[0] == DONE and bytes(last[1]).startswith(b"\x80")  # a pickle


def test_a_pipe_cut_in_the_middle_of_a_frame_is_an_eof() -> None:
    read_fd, write_fd = os.pipe()
    FrameWriter(write_fd).write(b"whole")
    os.write(write_fd, b"\x01\x10\x00\x00\x00\x00\x00\x00\x00half")  # promises 16 bytes
    os.close(write_fd)
    reader = FrameReader(read_fd)
    assert bytes(reader.read()[1]) == b"whole"
    with pytest.raises(EOFError):
        reader.read()
    os.close(read_fd)


def test_a_writer_with_a_backlog_goes_on_while_nobody_reads() -> None:
    read_fd, write_fd = os.pipe()
    writer = FrameWriter(write_fd, backlog=8 * 1024 * 1024)
    payloads = [os.urandom(1024 * 1024) for _ in range(4)]  # far more than the pipe holds
    for payload in payloads:
        writer.write(payload)  # returns at once: nothing reads yet
    flushing = threading.Thread(target=writer.flush)
    flushing.start()  # waits for the reader below
    reader = FrameReader(read_fd)
    received = [bytes(reader.read()[1]) for _ in payloads]
    flushing.join()
    os.close(write_fd)
    os.close(read_fd)
    assert received == payloads


def test_a_payload_can_be_read_into_the_callers_buffer() -> None:
    read_fd, write_fd = os.pipe()
    writer = FrameWriter(write_fd)
    writer.write(b"0123456789")
    writer.send(DONE, "after")
    reader = FrameReader(read_fd)
    assert reader.read_header() == (DATA, 10)
    buffer = bytearray(10)
    reader.read_into(memoryview(buffer)[:4])
    reader.read_into(memoryview(buffer)[4:])
    assert buffer == b"0123456789"
    assert reader.read()[0] == DONE
    os.close(write_fd)
    os.close(read_fd)
