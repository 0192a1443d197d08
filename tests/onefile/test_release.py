"""What a release adds around the files: SHA256SUMS, its signature and the documented check,
and byte-identical files on rebuild."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dist_support import ROOT, Release

from onefile.platforms import PLATFORMS
from onefile.release import file_sha256

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_sums_list_every_file(release: Release) -> None:
    lines = (release.folder / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ")) for line in lines)
    assert sorted(listed) == sorted(p.file_name for p in PLATFORMS.values())
    for name, digest in listed.items():
        assert file_sha256(release.folder / name) == digest


def documented_check() -> str:
    """The shell block under README's "Checking a download"."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Checking a download") :]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert match, "README's 'Checking a download' has no sh block"
    return match.group(1)


def run_check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", documented_check()],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_s_check_accepts_the_signed_files(release: Release, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    for path in release.folder.iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    (tmp_path / "aether-release.pem").write_text(release.public_key_pem)
    done = run_check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Signature Verified Successfully" in done.stdout

    sums = tmp_path / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("aether-macos-arm64", "aether-macos-arm65"))
    forged = run_check(tmp_path)
    assert forged.returncode != 0
    assert "Signature Verified Successfully" not in forged.stdout


def test_a_rebuild_gives_the_same_bytes(release: Release, tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "scripts" / "build-zipapp"), "--out-dir", str(tmp_path)]
    done = subprocess.run(
        [*command, "--platform", "linux-x86_64"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    name = PLATFORMS["linux-x86_64"].file_name
    assert (tmp_path / name).read_bytes() == release.file("linux-x86_64").read_bytes()
