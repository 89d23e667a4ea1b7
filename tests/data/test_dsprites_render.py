"""Tests of the procedural dSprites renderer (disentangled.data.dsprites_render)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from disentangled.data import dsprites_render as dr


def _real_frames(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 320 labelled real frames in ``folder``: bool [320, 64, 64] and int64 labels [320, 5]."""
    from PIL import Image, ImageSequence

    with Image.open(folder / "dsprites.gif") as gif:
        frames = np.stack([np.asarray(f.convert("L")) for f in ImageSequence.Iterator(gif)]) > 127
    with open(folder / "dsprites_gif_labels.csv", newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["frame"]))
    labels = np.array([[int(r[c]) for c in dr.FACTOR_NAMES] for r in rows], dtype=np.int64)
    assert frames.shape == (320, 64, 64) and labels.shape == (320, 5)
    return frames, labels


def _random_factors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, size, n) for size in dr.FACTOR_SIZES], axis=1)


def test_grid_constants():
    assert dr.FACTOR_NAMES == ("shape", "scale", "orientation", "posX", "posY")
    assert dr.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert dr.SHAPE_NAMES == ("square", "ellipse", "heart")
    assert dr.NUM_IMAGES == 737_280
    assert isinstance(dr.RENDERER_VERSION, int)
    np.testing.assert_allclose(dr.SCALES, np.linspace(0.5, 1, 6))
    np.testing.assert_allclose(dr.ORIENTATIONS, np.linspace(0, 2 * np.pi, 40))
    np.testing.assert_allclose(dr.POSITIONS, np.linspace(0, 1, 32))
    polygon = dr.heart_polygon()
    assert polygon.shape == (2 * len(dr.HEART_HALF_OUTLINE) - 2, 2)
    np.testing.assert_allclose(np.sort(polygon[:, 0]), np.sort(-polygon[:, 0]), atol=1e-12)  # mirror-symmetric


def test_matches_real_frames(dsprites_frames):
    frames, labels = _real_frames(dsprites_frames)
    rendered = dr.render(labels).astype(bool)
    inter = (rendered & frames).sum(axis=(1, 2))
    union = (rendered | frames).sum(axis=(1, 2))
    iou = inter / union
    for shape, name in enumerate(dr.SHAPE_NAMES):
        sel = labels[:, 0] == shape
        wrong = int((rendered[sel] != frames[sel]).sum())
        print(
            f"{name}: mean IoU {iou[sel].mean():.5f}, min {iou[sel].min():.4f}, "
            f"{int((iou[sel] == 1).sum())}/{sel.sum()} identical, {wrong} wrong pixels"
        )
        assert iou[sel].mean() >= 0.98, (name, iou[sel].mean())


def test_output_type_shape_and_values():
    factors = _random_factors(300)
    images = dr.render(factors)
    assert images.dtype == np.uint8 and images.shape == (300, 64, 64)
    assert set(np.unique(images)) <= {0, 1}
    assert (images.sum(axis=(1, 2)) > 20).all()  # every sprite is drawn
    assert dr.render(np.zeros((0, 5), dtype=np.int64)).shape == (0, 64, 64)
    # any integer dtype and non-contiguous views are accepted
    np.testing.assert_array_equal(dr.render(factors.astype(np.int16)), images)
    wide = np.concatenate([np.zeros((300, 1), np.int64), factors], axis=1)
    np.testing.assert_array_equal(dr.render(wide[:, 1:]), images)


def test_sprite_geometry():
    # Square, scale 1, orientation 0 at posX = posY = 0: a 20 x 20 block around (16, 16)
    square = dr.render(np.array([[0, 5, 0, 0, 0]]))[0]
    rows, cols = np.nonzero(square)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 25, 6, 25)
    assert square.sum() == 400
    # posY grows downward and posX to the right, by 32/31 px per class
    base = dr.render(np.array([[2, 3, 7, 10, 10], [2, 3, 7, 10, 11], [2, 3, 7, 11, 10]])).astype(float)
    centroid = [np.array(np.nonzero(im)).mean(axis=1) for im in base]  # (row, col)
    np.testing.assert_allclose(centroid[1] - centroid[0], [32 / 31, 0], atol=0.35)
    np.testing.assert_allclose(centroid[2] - centroid[0], [0, 32 / 31], atol=0.35)


def test_orientation_classes_0_and_39_identical():
    factors = _random_factors(200, seed=1)
    first, last = factors.copy(), factors.copy()
    first[:, 2], last[:, 2] = 0, 39
    np.testing.assert_array_equal(dr.render(first), dr.render(last))


def test_deterministic_and_chunking_independent():
    factors = _random_factors(257, seed=2)
    once = dr.render(factors)
    np.testing.assert_array_equal(once, dr.render(factors))
    np.testing.assert_array_equal(once, dr.render(factors, chunk_size=7))
    shuffled = np.random.default_rng(3).permutation(len(factors))
    np.testing.assert_array_equal(once[shuffled], dr.render(factors[shuffled]))


def test_fast_heart_test_matches_exact_polygon_test():
    rng = np.random.default_rng(4)
    u = (rng.random(200_000) * 28 - 14).astype(np.float32)
    v = (rng.random(200_000) * 28 - 14).astype(np.float32)
    np.testing.assert_array_equal(dr._inside_heart(u, v), dr._inside_heart_exact(u, v))


@pytest.mark.parametrize(
    "factors, message",
    [
        (np.zeros((4, 4), np.int64), r"shape \[N, 5\]"),
        (np.zeros(5, np.int64), r"shape \[N, 5\]"),
        (np.zeros((4, 5), np.float64), "integer"),
        (np.zeros((4, 5), bool), "integer"),
        ([[0, 0, 0, 0, 0]], "numpy array"),
        (np.array([[3, 0, 0, 0, 0]]), r"'shape' must be in \[0, 2\], got 3"),
        (np.array([[0, 6, 0, 0, 0]]), r"'scale' must be in \[0, 5\], got 6"),
        (np.array([[0, 0, 40, 0, 0]]), r"'orientation' must be in \[0, 39\], got 40"),
        (np.array([[0, 0, 0, -1, 0]]), r"'posX' must be in \[0, 31\], got -1"),
        (np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 32]]), r"'posY' must be in \[0, 31\], got 32 \(row 1\)"),
    ],
)
def test_input_validation(factors, message):
    with pytest.raises(ValueError, match=message):
        dr.render(factors)


def test_grid_chunks_follow_official_order():
    bases = np.cumprod((1,) + dr.FACTOR_SIZES[::-1])[-2::-1]  # [245760, 40960, 1024, 32, 1]
    assert tuple(bases) == (245_760, 40_960, 1_024, 32, 1)
    probes = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 2, 13, 5, 31], [2, 5, 39, 31, 31], [2, 4, 21, 17, 3]])
    for probe in probes:
        flat = int(probe @ bases)
        start = max(flat - 5, 0)
        chunks = list(dr.render_grid_chunks(chunk_size=4, start=start, stop=min(start + 11, dr.NUM_IMAGES)))
        assert [c[0] for c in chunks] == list(range(start, min(start + 11, dr.NUM_IMAGES), 4))
        images = np.concatenate([c[1] for c in chunks])
        np.testing.assert_array_equal(images[flat - start], dr.render(probe[None])[0])
    # the generator's factors are np.unravel_index of the flat index
    first_start, first = next(dr.render_grid_chunks(chunk_size=64))
    assert first_start == 0 and first.shape == (64, 64, 64)
    expected = np.stack([np.zeros(64, int)] * 3 + [np.arange(64) // 32, np.arange(64) % 32], axis=1)
    np.testing.assert_array_equal(first, dr.render(expected))


def test_grid_chunks_arguments():
    chunks = list(dr.render_grid_chunks(chunk_size=3, start=dr.NUM_IMAGES - 5))
    assert [(s, len(im)) for s, im in chunks] == [(dr.NUM_IMAGES - 5, 3), (dr.NUM_IMAGES - 2, 2)]
    with pytest.raises(ValueError):
        next(dr.render_grid_chunks(chunk_size=0))
    with pytest.raises(ValueError):
        next(dr.render_grid_chunks(start=10, stop=5))
