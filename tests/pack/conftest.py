"""Fixtures for the packer's tests: the sample project in a fresh folder, and both readers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pack_support import build_sample

from aether.pack import batchread


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return build_sample(tmp_path / "sample")


@pytest.fixture(params=["native", "python"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Packs in the test use this batch reader (forked workers inherit the choice)."""
    if request.param == "native":
        if batchread.native_read_batch is None:
            pytest.skip("the _batchread extension is not built (no C compiler at install time)")
        monkeypatch.setattr(batchread, "read_batch", batchread.native_read_batch)
    else:
        monkeypatch.setattr(batchread, "read_batch", batchread.read_batch_python)
    return request.param
