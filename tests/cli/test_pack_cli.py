"""`aether pack`: the JSON contract, text output, exit codes, signing through the environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aether.cli import cli
from aether.cli.boundary import run
from aether.pack import generate_keypair, verify_signature

FIELDS = {
    "format",
    "layers",
    "artifact",
    "digest",
    "size_bytes",
    "manifest",
    "sbom",
    "signature",
    "compression",
    "files",
    "bytes_in",
    "timings_ms",
    "build",
    "node_major",
    "start_command",
    "warnings",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "src").mkdir(parents=True)
    (root / "package.json").write_text('{"name": "web", "version": "0.1.0"}')
    (root / "src" / "index.js").write_text("console.log('hi')\n")
    return root


@pytest.fixture(autouse=True)
def no_signing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AETHER_SIGNING_KEY", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def pack_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = run(cli, ["pack", *args, "--format", "json"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object on stdout
    return code, json.loads(out)


def test_json_has_the_stable_fields(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = pack_json(capsys, str(project))
    assert code == 0
    assert set(result) == FIELDS
    assert re.fullmatch("[0-9a-f]{64}", result["digest"])
    assert Path(result["artifact"]) == project / ".aether" / "app.tar.zst"
    assert Path(result["artifact"]).stat().st_size == result["size_bytes"]
    assert Path(result["manifest"]).is_file() and Path(result["sbom"]).is_file()
    assert result["signature"] is None
    assert (result["files"], result["compression"]) == (2, "zstd")
    assert set(result["timings_ms"]) == {
        *("stage", "install", "build", "walk", "pack", "natives", "sbom", "sign")
    }
    assert result["build"]["staged"] is True and result["build"]["package_manager"] is None
    assert not (project / "node_modules").exists()  # built in the cache dir


def test_flags(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dist" / "web.tar.gz"
    code, result = pack_json(
        capsys,
        str(project),
        "--out",
        str(out),
        "--compression",
        "gzip",
        "--no-sbom",
        "--no-install",
    )
    assert code == 0
    assert (result["artifact"], result["compression"], result["sbom"]) == (str(out), "gzip", None)
    assert out.read_bytes()[:2] == b"\x1f\x8b"


def test_signing_key_from_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed, public = generate_keypair()
    monkeypatch.setenv("AETHER_SIGNING_KEY", seed)
    code, result = pack_json(capsys, str(project))
    assert code == 0
    signature = Path(result["signature"]).read_text()
    assert verify_signature(public, result["digest"], signature)


def test_text_output(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli, ["pack", str(project)]) == 0
    captured = capsys.readouterr()
    assert "digest     sha256:" in captured.out
    assert "aether: pack" in captured.err  # phase lines on a non-terminal stderr


def test_no_package_json_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = pack_json(capsys, str(tmp_path))
    assert code == 2
    assert result["error"]["code"] == "usage"
    assert "no package.json" in result["error"]["message"]


def test_unwritable_output_is_exit_30(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = project / "blocker"
    blocker.write_text("a file, not a folder")
    code, result = pack_json(capsys, str(project), "--out", str(blocker / "sub"))
    assert code == 30
    assert result["error"]["code"] == "io"


def test_unsafe_entry_names_the_path(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "escape").symlink_to("/etc/passwd")
    assert run(cli, ["pack", str(project)]) == 2
    assert "escape" in capsys.readouterr().err
    assert run(cli, ["pack", str(project), "--skip-unsafe"]) == 0


def test_render_is_reused_by_deploy_pack_only(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aether.cli.pack import render_pack_result

    _, result = pack_json(capsys, str(project))
    text = render_pack_result(result)
    assert result["digest"] in text and result["artifact"] in text
