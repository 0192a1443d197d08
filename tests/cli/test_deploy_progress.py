"""The progress display: a bar on a terminal, phase lines elsewhere, never stdout."""

from __future__ import annotations

import io

from aether.cli.progress import Progress, human_bytes, render_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bar_shows_bytes_rate_and_eta() -> None:
    line = render_bar("upload", 5 * 2**20, 10 * 2**20, 2.0)
    assert "50%" in line and "5.0 MB/10.0 MB" in line
    assert "2.5 MB/s" in line and "ETA 2s" in line


def test_phase_without_total_shows_amount_and_time() -> None:
    assert render_bar("install", 3, None, 4.0).startswith("install  3 ")


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KB"
    assert human_bytes(3 * 2**30) == "3.0 GB"


def test_plain_lines_when_not_a_terminal() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(stream, tty=False, clock=clock)
    progress("pack", 0, None)
    clock.now = 1.0
    progress("upload", 0, 100)
    progress("upload", 100, 100)
    clock.now = 3.0
    progress.event({"phase": "running", "message": "healthy"})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "aether: pack…"
    assert lines[1] == "aether: pack done in 1.0s"
    assert lines[2] == "aether: upload…"
    assert "  running: healthy" in lines
    assert lines[-1] == "aether: upload done in 2.0s, 100 B"
    assert "\r" not in stream.getvalue()


def test_terminal_redraws_the_bar_in_place() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(stream, tty=True, clock=clock)
    progress("upload", 0, 1000)
    clock.now = 0.05
    progress("upload", 10, 1000)  # throttled: under the redraw interval
    clock.now = 0.5
    progress("upload", 1000, 1000)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") >= 2
    assert "100%" in text and "10/" not in text
    assert text.endswith("aether: upload done in 0.5s, 1000 B\n")
