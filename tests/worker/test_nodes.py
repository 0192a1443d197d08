"""The local runtime's node per Node.js major: AETHER_NODE_BINARIES, PATH's node, or a refusal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aether.pack.nodeversion import binary_version, parse_major
from aether.settings import WorkerSettings
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.nodes import node_folder
from aether.worker.runtimes.startcmd import process_env


def _fake_node(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True)
    node = folder / "node"
    node.write_text(f"#!/bin/sh\necho v{version}\n")
    node.chmod(0o755)
    return node


def test_a_release_of_paths_major_runs_on_paths_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    major = parse_major(binary_version(node) or "")
    assert node_folder(major, (), {"PATH": str(Path(node).parent)}) is None
    assert node_folder(None, (), {"PATH": ""}) is None  # a release that names no major


def test_a_configured_node_is_put_first_on_path(tmp_path: Path) -> None:
    node = _fake_node(tmp_path / "node-23/bin", "23.1.0")
    settings = WorkerSettings.from_env({"AETHER_NODE_BINARIES": f'{{"23": "{node}"}}'})
    folder = node_folder(23, settings.node_binaries, {"PATH": ""})
    assert folder == str(node.parent)
    env = process_env(
        {"PATH": "/usr/bin"},
        tmp_path,
        port=1,
        deployment_id="d",
        digest="x",
        app_env={},
        scratch=tmp_path / "scratch",
        node_dir=folder,
    )
    assert env["PATH"].split(":")[:3] == [str(tmp_path / "node_modules/.bin"), folder, "/usr/bin"]


def test_a_major_the_worker_does_not_have_is_refused_with_the_remedy(tmp_path: Path) -> None:
    wrong = _fake_node(tmp_path / "bin", "18.20.0")
    with pytest.raises(Fatal) as refused:
        node_folder(23, (), {"PATH": str(wrong.parent)})
    assert "built for Node.js 23, but the node on its PATH is 18.20.0" in refused.value.message
    assert 'AETHER_NODE_BINARIES=\'{"23": "/path/to/node"}\'' in refused.value.message
    with pytest.raises(Fatal, match="but it is 18.20.0"):
        node_folder(23, ((23, str(wrong)),), {"PATH": ""})
