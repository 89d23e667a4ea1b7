"""Shared fixtures: every test gets its own empty data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DSPRITES_FRAMES = REPO / "tests" / "data" / "files" / "dsprites_frames"
DSPRITES_FRAME_FILES = ("dsprites.gif", "dsprites_gif_labels.csv", "dsprites.LICENSE")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch) -> Path:
    """Point DISENTANGLED_DATA at a fresh folder and hide any disentanglement_lib folder."""
    root = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("DISENTANGLED_DATA", str(root))
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    return root


@pytest.fixture
def dsprites_frames() -> Path:
    """The folder of the 320 labelled real dSprites frames shipped with the tests.

    They are part of the repository, so a missing file is a failure, not a reason to skip.
    """
    missing = [name for name in DSPRITES_FRAME_FILES if not (DSPRITES_FRAMES / name).is_file()]
    if missing:
        pytest.fail(
            f"{DSPRITES_FRAMES}: missing {', '.join(missing)}; these files are part of the repository "
            f"(see the README.md there); restore them from version control"
        )
    return DSPRITES_FRAMES
