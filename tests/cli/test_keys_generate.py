"""`aether keys generate`: key pairs the packer can sign with."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from aether.cli import cli
from aether.cli.boundary import run
from aether.pack.signing import public_key_hex, sign_digest, verify_signature


def test_generated_pem_file_is_private_and_signs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "signing.key"
    assert run(cli, ["keys", "generate", "--out", str(key_file), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "private_key_hex" not in result
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert public_key_hex(str(key_file)) == result["public_key_hex"]
    digest = "d" * 64
    assert verify_signature(result["public_key_hex"], digest, sign_digest(str(key_file), digest))


def test_generate_never_overwrites_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "signing.key"
    key_file.write_text("precious")
    assert run(cli, ["keys", "generate", "--out", str(key_file)]) == 30
    assert key_file.read_text() == "precious"


def test_printed_seed_matches_the_public_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli, ["keys", "generate", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert public_key_hex(result["private_key_hex"]) == result["public_key_hex"]


def test_add_rejects_a_bad_public_key_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(cli, ["keys", "add", "--app", "web", "--public-key", "xyz"]) == 2
    assert "64-hex" in capsys.readouterr().err
