"""`aether verify`: exit 0 with one line, or 20 naming the first mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aether.cli import cli
from aether.cli.boundary import run
from aether.pack import PackOptions, build_artifact, generate_keypair, sign_digest


@pytest.fixture
def packed(tmp_path: Path):
    root = tmp_path / "web"
    root.mkdir()
    (root / "package.json").write_text('{"name": "web"}')
    (root / "index.js").write_text("1")
    return build_artifact(root, PackOptions(install=False, sbom=False), environ={})


def test_ok_prints_one_line(packed, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli, ["verify", str(packed.artifact)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("ok: ") and packed.digest in out


def test_json_and_signature(packed, capsys: pytest.CaptureFixture[str]) -> None:
    seed, public = generate_keypair()
    Path(f"{packed.artifact}.sig").write_text(sign_digest(seed, packed.digest))
    code = run(cli, ["verify", str(packed.artifact), "--public-key", public, "--format", "json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["signature_verified"], result["files"]) == (True, True, 2)
    wrong = generate_keypair()[1]
    assert run(cli, ["verify", str(packed.artifact), "--public-key", wrong]) == 20
    assert "signature mismatch" in capsys.readouterr().err


def test_mismatch_is_exit_20_naming_the_entry(
    packed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads(packed.manifest.read_text())
    manifest["files"][0]["size"] += 1
    other = tmp_path / "other.json"
    other.write_text(json.dumps(manifest))
    code = run(cli, ["verify", str(packed.artifact), "--manifest", str(other), "--format", "json"])
    assert code == 20
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "integrity"
    assert manifest["files"][0]["path"] in error["message"]


def test_missing_artifact_is_exit_30(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli, ["verify", str(tmp_path / "none.tar.zst")]) == 30
    assert "no artifact" in capsys.readouterr().err
