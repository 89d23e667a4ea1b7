#!/usr/bin/env python
"""Fit the procedural dSprites geometry to the labelled real frames.

Derives the constants written down in ``disentangled/data/dsprites_render.py``
(square half-side, ellipse semi-axes, heart polygon) from the 320 real frames of
``dsprites.gif`` and their labels, prints them in the module's format, and prints the
per-shape IoU of the module's committed renderer against the frames.

Run by hand (takes a minute or two; needs numpy, scipy and Pillow)::

    python tools/fit_dsprites_shapes.py [--data-dir tests/data/files/dsprites_frames]

Method (geometry conventions as in the module: pixel centres, y down, sprite centre
``16 + 32 * pos``, rotation by +orientation in the y-down frame):

* every pixel centre of every frame is mapped into the sprite's local, unrotated,
  scale-1 frame, giving a labelled point (inside / outside the shape);
* square: the pixel centres' Chebyshev norms give the exact interval of half-sides
  that reproduces every frame; we take its middle (rounded);
* ellipse: grid search over the two semi-axes of an exact ellipse for the region with
  the fewest wrong pixels, and take its centre;
* heart: a super-resolution template (0.2 px bins, mirror-symmetrised, threshold 0.5)
  gives an initial outline; then a mirror-symmetric polygon, star-shaped about a point
  on the axis, with free vertex angles and radii, is fitted to the labelled points near
  the outline by minimising a logistic loss of the signed radial distance (in pixels)
  with a decreasing temperature plus a small smoothness penalty on the vertices.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence
from scipy.optimize import minimize

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from disentangled.data import dsprites_render as dr  # noqa: E402

LABEL_COLUMNS = ("shape", "scale", "orientation", "posX", "posY")


# ------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------


def load_frames(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames bool [N, 64, 64] and labels int [N, 5], with duplicate tuples removed."""
    with Image.open(data_dir / "dsprites.gif") as gif:
        frames = np.stack([np.asarray(f.convert("L")) for f in ImageSequence.Iterator(gif)]) > 127
    with open(data_dir / "dsprites_gif_labels.csv", newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["frame"]))
    labels = np.array([[int(r[c]) for c in LABEL_COLUMNS] for r in rows], dtype=np.int64)
    assert len(labels) == len(frames), (len(labels), len(frames))
    unique, first, inverse = np.unique(labels, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    assert all((frames[inverse == k] == frames[first[k]]).all() for k in range(len(unique)))
    print(f"{len(frames)} frames, {len(unique)} distinct latent tuples (duplicates identical)")
    return frames[first], unique


def local_coordinates(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel centre of every frame in the local scale-1 frame: u, v [N, 64, 64]."""
    scale = dr.SCALES[labels[:, 1]][:, None, None]
    theta = dr.ORIENTATIONS[labels[:, 2]][:, None, None]
    cx = (16.0 + 32.0 * dr.POSITIONS[labels[:, 3]])[:, None, None]
    cy = (16.0 + 32.0 * dr.POSITIONS[labels[:, 4]])[:, None, None]
    centres = np.arange(dr.IMAGE_SIZE) + 0.5
    dx = centres[None, None, :] - cx
    dy = centres[None, :, None] - cy
    u = (np.cos(theta) * dx - np.sin(theta) * dy) / scale
    v = (np.sin(theta) * dx + np.cos(theta) * dy) / scale
    return u, v


def iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    inter = (pred & true).sum(axis=(1, 2))
    union = (pred | true).sum(axis=(1, 2))
    return inter / np.maximum(union, 1)


# ------------------------------------------------------------------------------------
# Square and ellipse
# ------------------------------------------------------------------------------------


def fit_square(frames: np.ndarray, labels: np.ndarray) -> float:
    u, v = local_coordinates(labels)
    norm = np.maximum(np.abs(u), np.abs(v))
    largest_in, smallest_out = norm[frames].max(), norm[~frames].min()
    print(f"square: every frame exact for half-side in ({largest_in:.5f}, {smallest_out:.5f}]")
    if largest_in < smallest_out:
        half = round(float(largest_in + smallest_out) / 2, 3)
    else:  # no exact value: least wrong pixels on a fine grid
        cand = np.arange(9.4, 9.8, 0.0005)
        half = float(cand[np.argmin([((norm < c) != frames).sum() for c in cand])])
    print(f"square: SQUARE_HALF_SIDE = {half}  (side {2 * half} px at scale 1)")
    return half


def fit_ellipse(frames: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    u, v = local_coordinates(labels)
    rho = np.hypot(u / 12.8, v / 7.2)
    band = (rho > 0.9) & (rho < 1.1)
    fixed_errors = ((rho <= 0.9) != frames)[~band].sum()
    uu, vv, truth = u[band] ** 2, v[band] ** 2, frames[band]

    def errors(a: float, b: float) -> int:
        return int(((uu / a**2 + vv / b**2 < 1.0) != truth).sum()) + int(fixed_errors)

    def search(a_values, b_values):
        grid = np.array([[errors(a, b) for b in b_values] for a in a_values])
        return grid, grid.min()

    a_values, b_values = np.arange(12.5, 13.1, 0.01), np.arange(7.0, 7.5, 0.01)
    grid, best = search(a_values, b_values)
    ia, ib = np.unravel_index(np.argmin(grid), grid.shape)
    a_values = np.arange(a_values[ia] - 0.02, a_values[ia] + 0.02, 0.0002)
    b_values = np.arange(b_values[ib] - 0.02, b_values[ib] + 0.02, 0.0002)
    grid, best = search(a_values, b_values)
    ia, ib = np.nonzero(grid == best)
    a, b = round(float(a_values[ia].mean()), 4), round(float(b_values[ib].mean()), 4)
    print(
        f"ellipse: {best} wrong pixels at best; best region a in [{a_values[ia].min():.4f}, "
        f"{a_values[ia].max():.4f}], b in [{b_values[ib].min():.4f}, {b_values[ib].max():.4f}]"
    )
    print(f"ellipse: ELLIPSE_SEMI_AXIS_X = {a}, ELLIPSE_SEMI_AXIS_Y = {b}  ({errors(a, b)} wrong pixels)")
    return a, b


# ------------------------------------------------------------------------------------
# Heart
# ------------------------------------------------------------------------------------

STAR_CENTRE_Y = -1.0  # the polygon is parametrised in polar form about (0, -1)
BIN = 0.2  # template bin size, px at scale 1
EXTENT = 12.0


def heart_template(frames: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Fraction of hits per 0.2 px bin of the local frame, mirror-symmetrised (NaN: no data)."""
    n = int(2 * EXTENT / BIN)
    iu = np.floor((u + EXTENT) / BIN).astype(int)
    iv = np.floor((v + EXTENT) / BIN).astype(int)
    ok = (iu >= 0) & (iu < n) & (iv >= 0) & (iv < n)
    hits, counts = np.zeros((n, n)), np.zeros((n, n))
    np.add.at(hits, (iv[ok], iu[ok]), frames[ok])
    np.add.at(counts, (iv[ok], iu[ok]), 1.0)
    hits, counts = hits + hits[:, ::-1], counts + counts[:, ::-1]
    with np.errstate(invalid="ignore"):
        return hits / counts


def template_lookup(template: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    n = template.shape[0]
    iu = np.clip(np.floor((u + EXTENT) / BIN).astype(int), 0, n - 1)
    iv = np.clip(np.floor((v + EXTENT) / BIN).astype(int), 0, n - 1)
    return np.nan_to_num(template[iv, iu], nan=0.0) > 0.5


def polar(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle (0 = up, pi = down, right half) about the star centre."""
    x, y = np.abs(u), v - STAR_CENTRE_Y
    return np.hypot(x, y), np.arctan2(x, -y)


def template_radii(template: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Outline radius of the template along each ray from the star centre.

    The first step into a bin that the data says is outside; bins without data
    (NaN) are skipped.
    """
    steps = np.arange(0.5, EXTENT, 0.02)
    n = template.shape[0]
    radii = []
    for a in angles:
        u, v = steps * np.sin(a), STAR_CENTRE_Y - steps * np.cos(a)
        iu = np.clip(np.floor((u + EXTENT) / BIN).astype(int), 0, n - 1)
        iv = np.clip(np.floor((v + EXTENT) / BIN).astype(int), 0, n - 1)
        with np.errstate(invalid="ignore"):
            outside = template[iv, iu] <= 0.5  # False for NaN
        radii.append(steps[np.argmax(outside)] if outside.any() else steps[-1])
    return np.array(radii)


def boundary_radius(alpha, angles, radii, with_grad=False):
    """Radius of the polygon outline along the rays ``alpha`` (and its derivatives)."""
    points = np.stack([radii * np.sin(angles), -radii * np.cos(angles)], axis=1)
    k = np.clip(np.searchsorted(angles, alpha, side="right") - 1, 0, len(angles) - 2)
    x0, y0, x1, y1 = points[k, 0], points[k, 1], points[k + 1, 0], points[k + 1, 1]
    dx, dy = np.sin(alpha), -np.cos(alpha)
    num = x0 * y1 - y0 * x1
    den = dx * (y1 - y0) - dy * (x1 - x0)
    r = num / den
    if not with_grad:
        return r
    # d r / d p = (d num - r d den) / den, for both end points of the edge.
    grads = ((y1 - r * dy) / den, (-x1 + r * dx) / den, (-y0 + r * dy) / den, (x0 - r * dx) / den)
    return r, k, grads


def objective(angles, radii, alpha, rho, signed_scale, tau, smooth):
    """Mean logistic loss of the signed radial margin in pixels, plus smoothness."""
    r, k, (g0x, g0y, g1x, g1y) = boundary_radius(alpha, angles, radii, with_grad=True)
    margin = (r - rho) * signed_scale / tau
    loss = np.logaddexp(0.0, -margin).mean()
    d_r = -np.exp(-np.logaddexp(0.0, margin)) * signed_scale / tau / len(alpha)
    n = len(angles)
    gx = np.bincount(k, d_r * g0x, n) + np.bincount(k + 1, d_r * g1x, n)
    gy = np.bincount(k, d_r * g0y, n) + np.bincount(k + 1, d_r * g1y, n)
    points = np.stack([radii * np.sin(angles), -radii * np.cos(angles)], axis=1)
    second = points[:-2] - 2 * points[1:-1] + points[2:]
    loss += smooth * (second**2).sum()
    g_points = np.zeros_like(points)
    g_points[:-2] += 2 * smooth * second
    g_points[1:-1] -= 4 * smooth * second
    g_points[2:] += 2 * smooth * second
    gx, gy = gx + g_points[:, 0], gy + g_points[:, 1]
    g_angles = gx * radii * np.cos(angles) + gy * radii * np.sin(angles)
    g_radii = gx * np.sin(angles) - gy * np.cos(angles)
    return loss, g_angles, g_radii


def fit_heart_polygon(alpha, rho, signed_scale, angles, radii, smooth, taus=(0.1, 0.03, 0.01, 0.003, 0.001)):
    k = len(angles) - 1
    for tau in taus:

        def fun(p):
            a = np.concatenate([[0.0], p[: k - 1], [np.pi]])
            loss, g_a, g_r = objective(a, p[k - 1 :], alpha, rho, signed_scale, tau, smooth)
            return loss, np.concatenate([g_a[1:-1], g_r])

        bounds = [(0.0, np.pi)] * (k - 1) + [(0.5, EXTENT)] * (k + 1)
        p0 = np.concatenate([angles[1:-1], radii])
        res = minimize(fun, p0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 5000})
        angles = np.concatenate([[0.0], np.sort(res.x[: k - 1]), [np.pi]])
        radii = res.x[k - 1 :]
    return angles, radii


def fit_heart(frames, labels, half_edges: int, smooth: float):
    u, v = local_coordinates(labels)
    scale = dr.SCALES[labels[:, 1]][:, None, None] * np.ones_like(u)
    template = heart_template(frames, u, v)
    q = iou(template_lookup(template, u, v), frames)
    print(f"heart: 0.2 px template (in-sample): mean IoU {q.mean():.4f}, min {q.min():.4f}")

    rho, alpha = polar(u, v)
    fine = np.linspace(0.0, np.pi, 181)
    ref = np.interp(alpha, fine, template_radii(template, fine))
    band = np.abs(rho - ref) < 1.2  # points that can matter; the rest are far in/out
    outside_band_wrong = ((rho < ref) != frames)[~band].sum()
    print(f"heart: {band.sum()} labelled points near the outline ({outside_band_wrong} wrong far from it)")
    signed = np.where(frames, 1.0, -1.0) * scale

    def run(mask):
        angles = np.linspace(0.0, np.pi, half_edges + 1)
        radii = template_radii(template, angles)
        return fit_heart_polygon(alpha[mask], rho[mask], signed[mask], angles, radii, smooth)

    def frame_iou(angles, radii, which):
        return iou(rho[which] < boundary_radius(alpha[which], angles, radii), frames[which])

    # Two-fold cross-validation over frames, then the fit on all of them.
    halves = np.random.default_rng(0).permutation(len(frames)) % 2 == 0
    held_out = []
    for part in (halves, ~halves):
        angles, radii = run(band & part[:, None, None])
        held_out.append(frame_iou(angles, radii, ~part))
    held_out = np.concatenate(held_out)
    print(f"heart: 2-fold held-out mean IoU {held_out.mean():.4f}, min {held_out.min():.4f}")
    angles, radii = run(band)
    q = frame_iou(angles, radii, np.ones(len(frames), bool))
    print(f"heart: fitted polygon (in-sample): mean IoU {q.mean():.5f}, min {q.min():.4f}")
    points = np.stack([radii * np.sin(angles), STAR_CENTRE_Y - radii * np.cos(angles)], axis=1)
    points[[0, -1], 0] = 0.0
    return np.round(points, 3)


# ------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / "tests" / "data" / "files" / "dsprites_frames",
        help="folder holding dsprites.gif and dsprites_gif_labels.csv (default: the copy shipped with the tests)",
    )
    parser.add_argument("--half-edges", type=int, default=24, help="heart edges per half (polygon has twice as many vertices)")
    parser.add_argument("--smooth", type=float, default=0.01, help="weight of the heart smoothness penalty")
    args = parser.parse_args()

    frames, labels = load_frames(args.data_dir)
    by_shape = [labels[:, 0] == s for s in range(3)]
    half = fit_square(frames[by_shape[0]], labels[by_shape[0]])
    axes = fit_ellipse(frames[by_shape[1]], labels[by_shape[1]])
    for name, fitted, committed in (
        ("square", (half,), (dr.SQUARE_HALF_SIDE,)),
        ("ellipse", axes, (dr.ELLIPSE_SEMI_AXIS_X, dr.ELLIPSE_SEMI_AXIS_Y)),
    ):
        print(f"{name}: committed constants {'match' if np.allclose(fitted, committed) else 'DIFFER from'} this fit")
    outline = fit_heart(frames[by_shape[2]], labels[by_shape[2]], args.half_edges, args.smooth)
    print(f"heart: HEART_STAR_CENTRE = (0.0, {STAR_CENTRE_Y})")
    print("HEART_HALF_OUTLINE = (")
    for x, y in outline:
        print(f"    ({x:.3f}, {y:.3f}),")
    print(")")
    committed = np.asarray(dr.HEART_HALF_OUTLINE)
    same = committed.shape == outline.shape and np.allclose(committed, outline, atol=1.5e-3)
    print(f"heart: committed outline {'matches' if same else 'DIFFERS from'} this fit")

    print(f"\ncommitted renderer (RENDERER_VERSION {dr.RENDERER_VERSION}) against all 320 frames:")
    with Image.open(args.data_dir / "dsprites.gif") as gif:
        all_frames = np.stack([np.asarray(f.convert("L")) for f in ImageSequence.Iterator(gif)]) > 127
    with open(args.data_dir / "dsprites_gif_labels.csv", newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["frame"]))
    all_labels = np.array([[int(r[c]) for c in LABEL_COLUMNS] for r in rows], dtype=np.int64)
    q = iou(dr.render(all_labels).astype(bool), all_frames)
    for s, name in enumerate(dr.SHAPE_NAMES):
        m = all_labels[:, 0] == s
        exact = int((q[m] == 1).sum())
        print(f"  {name:8s} mean IoU {q[m].mean():.5f}  min {q[m].min():.4f}  identical {exact}/{m.sum()}")


if __name__ == "__main__":
    main()
