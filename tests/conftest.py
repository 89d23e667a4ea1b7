"""Shared fixtures: every test gets its own empty data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch) -> Path:
    """Point DISENTANGLED_DATA at a fresh folder and hide any disentanglement_lib folder."""
    root = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("DISENTANGLED_DATA", str(root))
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    return root


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "dsprites.gif").is_file():
        pytest.skip(f"real dSprites frames not found at {SHARED_DATA}")
    return SHARED_DATA
