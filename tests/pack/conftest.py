"""Fixtures for the packer's tests: the sample project in a fresh folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from pack_support import build_sample


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return build_sample(tmp_path / "sample")
