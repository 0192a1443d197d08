"""Target platforms: the text form, this machine, and the server's JSON."""

from __future__ import annotations

import pytest

from aether.errors import ConfigError
from aether.pack.target import Target, host_target, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux-x64-glibc2.36", Target("linux", "x64", "glibc", "2.36")),
        ("linux-arm64-musl", Target("linux", "arm64", "musl")),
        ("linux-x64", Target("linux", "x64", "glibc")),
        ("darwin-arm64", Target("darwin", "arm64")),
        ("Linux-X64-GLIBC2.17", Target("linux", "x64", "glibc", "2.17")),
    ],
)
def test_parse(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["linux", "amiga-x64", "linux-sparc", ""])
def test_parse_refuses_what_is_not_a_platform(text: str) -> None:
    with pytest.raises(ConfigError, match="os-cpu"):
        parse_target(text)


def test_host_is_what_node_calls_this_machine() -> None:
    import platform

    host = host_target()
    assert host.os == "linux"  # the suite runs on Linux
    assert host.cpu == {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine())
    assert host.libc in ("glibc", "musl")


def test_json_round_trip_and_old_servers() -> None:
    target = Target("linux", "x64", "glibc", "2.36", 20, "20.20.2")
    assert Target.from_json(target.as_json()) == target
    assert Target.from_json(None) is None  # a server that reports no target
    assert str(target) == "linux-x64-glibc2.36, Node.js 20.20.2"
    assert target.platform == "linux-x64-glibc"


def test_only_linux_has_a_libc() -> None:
    with pytest.raises(ConfigError, match="only Linux"):
        parse_target("darwin-arm64-musl")
