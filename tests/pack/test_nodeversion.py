"""Which Node.js a project asks for: .node-version, .nvmrc and engines.node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aether.errors import UsageError
from aether.pack.nodeversion import NodeRequest, admits_major, parse_major, read_node_request


@pytest.mark.parametrize(
    ("text", "major"),
    [("20", 20), ("v22.11.0", 22), ("18.x", 18), ("lts/iron", 20), ("lts/*", None), ("node", None)],
)
def test_parse_major(text: str, major: int | None) -> None:
    assert parse_major(text) == major


@pytest.mark.parametrize(
    ("engines", "runtime", "chosen"),
    [
        (None, 20, 20),
        (">=18", 20, 20),  # the runtime's own major when admitted
        (">=22", 20, 22),  # else the nearest newer one admitted
        ("^18", 20, 18),  # else the newest older one
        ("20.x || 22.x", 22, 22),
    ],
)
def test_choose_major(engines: str | None, runtime: int, chosen: int) -> None:
    assert NodeRequest(engines=engines).choose_major(runtime) == chosen


def test_a_pinned_version_file_wins_and_engines_must_admit_it(tmp_path: Path) -> None:
    (tmp_path / ".nvmrc").write_text("v22.3.0\n")
    request = read_node_request(tmp_path, {"engines": {"node": ">=18 <21"}})
    assert request.pinned_major == 22 and request.pinned_from == ".nvmrc"
    assert request.choose_major(20) == 22
    assert request.problems(22) == ['engines.node ">=18 <21" admits no Node.js 22 release']
    (tmp_path / ".node-version").write_text("20  # the LTS\n")
    assert read_node_request(tmp_path, {}).pinned_major == 20  # .node-version first


def test_an_exact_runtime_version_is_checked_exactly() -> None:
    request = NodeRequest(engines=">=20.5")
    assert request.problems(20, "20.20.2") == []
    assert request.problems(20, "20.1.0") == ['engines.node ">=20.5" does not admit Node.js 20.1.0']
    assert admits_major(">=20.5", 20) and not admits_major("<20", 20)


def test_a_broken_engines_field_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a version range"):
        read_node_request(tmp_path, {"engines": {"node": "twenty"}})
    with pytest.raises(UsageError, match="must be a string"):
        read_node_request(tmp_path, json.loads('{"engines": {"node": 20}}'))


SIMPLE_RANGES = [">=18", ">= 18", ">=18.17", ">=18.17.1", ">=v20.0.0", "^20", "^ 20", "^0", "20"]
SIMPLE_RANGES += ["20.x", "20.*", "20.x.x", "v20", " >=16 ", "0.x", ">=0"]
VERSIONS = ["18.0.0", "18.17.0", "18.17.1", "18.999.999", "20.0.0", "20.20.2", "21.0.0", "0.1.0"]


@pytest.mark.parametrize("range_text", SIMPLE_RANGES)
def test_simple_ranges_are_answered_as_nodesemver_would(range_text: str) -> None:
    import nodesemver

    from aether.pack import nodeversion

    assert nodeversion._simple_range(range_text)
    for version in VERSIONS:
        expected = bool(nodesemver.satisfies(version, range_text, loose=True))
        assert nodeversion._satisfies(version, range_text) is expected, (range_text, version)
    for major in (0, 16, 18, 20, 21):
        candidates = [f"{major}.{minor}.{patch}" for minor in (0, 99, 999) for patch in (0, 999)]
        expected = nodesemver.max_satisfying(candidates, range_text, loose=True) is not None
        assert admits_major(range_text, major) is expected, (range_text, major)


@pytest.mark.parametrize("range_text", ["<21", ">=18 <21", "18 || 20", "~20.1", "^20.1", "020"])
def test_other_ranges_go_to_nodesemver(range_text: str) -> None:
    from aether.pack import nodeversion

    assert not nodeversion._simple_range(range_text)
