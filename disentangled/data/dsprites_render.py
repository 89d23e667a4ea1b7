"""Procedural dSprites renderer, fitted to the real frames.

The official dSprites images (Matthey et al. 2017) were drawn with the LÖVE engine
from vector shapes; the drawing script is not public. This module redraws the whole
official grid from the factor classes:

* shape: square, ellipse, heart (3)
* scale: ``linspace(0.5, 1, 6)``
* orientation: ``linspace(0, 2*pi, 40)`` radians (both ends included, so classes 0
  and 39 give the same image)
* posX, posY: ``linspace(0, 1, 32)``

in the official row-major order over ``(shape, scale, orientation, posX, posY)``
(posY fastest), 737,280 binary 64x64 images.

Geometry (see ``docs``/``datasets.md`` section 3.1 and ``tools/fit_dsprites_shapes.py``,
which derives every constant below from the 320 labelled real frames in
``dsprites.gif``). Coordinates are pixels, origin at the top-left corner of the
canvas, ``y`` pointing down:

* pixel (row ``i``, column ``j``) is 1 iff its centre ``(j + 0.5, i + 0.5)`` lies
  inside the shape (centre sampling, no anti-aliasing);
* the sprite's centre is ``cx = 16 + 32 * posX``, ``cy = 16 + 32 * posY``;
* the sprite is rotated by ``orientation`` radians counter-clockwise on screen about
  that centre and scaled by ``scale`` about it.

To test a pixel we map its centre into the sprite's local frame (offset from the
centre, rotated by ``+orientation`` in the y-down frame, divided by ``scale``) and test
membership in the unrotated, scale-1 shape, whose outlines are given below in pixels.

The result matches the real frames up to a few boundary pixels (mean IoU per shape
on the 320 real frames: square 1.0, ellipse 1.0, heart 0.9997; see the tests). It is
*not* the official file: label data made with it ``dsprites_procedural`` and record
:data:`RENDERER_VERSION` with it.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "SHAPE_NAMES",
    "SCALES",
    "ORIENTATIONS",
    "POSITIONS",
    "IMAGE_SIZE",
    "NUM_IMAGES",
    "RENDERER_VERSION",
    "render",
    "render_grid_chunks",
]

# --------------------------------------------------------------------------------------
# The official grid
# --------------------------------------------------------------------------------------

#: Bump whenever the geometry or the rasterisation rule changes (any pixel may change).
RENDERER_VERSION = 1

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
IMAGE_SIZE = 64
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280

# --------------------------------------------------------------------------------------
# Fitted geometry, at scale 1, in pixels, in the sprite's local frame (origin at the
# rotation centre, y down). All constants come from tools/fit_dsprites_shapes.py.
# --------------------------------------------------------------------------------------

# Square: nominal side 0.3 of the canvas = 19.2 px (half-side 9.6). The 64 real square
# frames are all reproduced exactly for any half-side in (9.5966, 9.5998]: in two
# rotated frames four pixel centres lie 1.5e-4 px *inside* the exact 9.6 edge and are
# off in the real data (sub-pixel vertex snapping of the GPU, presumably). We take a
# value inside that interval.
SQUARE_HALF_SIDE = 9.598

# Ellipse: nominal semi-axes 0.2 and ~0.113 of the canvas. A grid search over the
# semi-axes of an exact ellipse finds a small region, a in [12.7655, 12.7663] and
# b in [12.7655, 12.7663] x [7.2121, 7.2144], that reproduces all 64 real ellipse
# frames pixel for pixel; these are its centre. (LÖVE draws ellipses as polygons, but
# regular 50-120-gons fit no better than the exact curve, so the segment count cannot
# be told from the data and the exact ellipse is used.)
ELLIPSE_SEMI_AXIS_X = 12.766
ELLIPSE_SEMI_AXIS_Y = 7.2132

# Heart: a mirror-symmetric 48-vertex polygon. Listed is the right half, from the
# notch on the symmetry axis (top) clockwise on screen to the tip (bottom); the left
# half is its mirror image (x -> -x). Fitted directly to the pixels of the 168 distinct
# real heart frames (40 orientations, 6 scales, 124 border positions): the radii and
# angles of 25 vertices around HEART_STAR_CENTRE were optimised with an annealed
# logistic loss on the signed boundary distance plus a small smoothness penalty,
# starting from a super-resolution template of the frames (0.2 px bins,
# mirror-symmetrised, threshold 0.5). About 20 px wide and 19 px tall, lobes up;
# its area centroid sits ~1.9 px above the rotation centre.
HEART_HALF_OUTLINE = (
    (0.000, -5.214),
    (0.692, -6.942),
    (1.672, -8.126),
    (2.765, -8.904),
    (3.928, -9.303),
    (5.127, -9.343),
    (6.318, -9.048),
    (7.460, -8.400),
    (8.455, -7.428),
    (9.191, -6.268),
    (9.510, -5.084),
    (9.621, -3.968),
    (9.475, -2.872),
    (9.162, -1.819),
    (8.642, -0.766),
    (7.938, 0.270),
    (7.100, 1.297),
    (6.148, 2.301),
    (5.123, 3.297),
    (4.059, 4.279),
    (3.024, 5.280),
    (2.051, 6.294),
    (1.196, 7.334),
    (0.490, 8.429),
    (0.000, 9.628),
)
# A point on the symmetry axis from which the whole outline is visible (the polygon is
# star-shaped about it); used only by the fast inside test below.
HEART_STAR_CENTRE = (0.0, -1.0)


def heart_polygon() -> np.ndarray:
    """The full heart outline at scale 1 as a closed ``[48, 2]`` array ``(x, y)``.

    Vertices run clockwise on screen starting at the notch; the last vertex connects
    back to the first.
    """
    right = np.asarray(HEART_HALF_OUTLINE, dtype=np.float64)
    left = right[-2:0:-1] * np.array([-1.0, 1.0])
    return np.concatenate([right, left])


# --------------------------------------------------------------------------------------
# Membership tests in the local frame (u, v: float arrays of any equal shape)
# --------------------------------------------------------------------------------------


def _inside_square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) < np.float32(SQUARE_HALF_SIDE)


def _inside_ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    ka = np.float32(1.0 / ELLIPSE_SEMI_AXIS_X**2)
    kb = np.float32(1.0 / ELLIPSE_SEMI_AXIS_Y**2)
    return (u * u) * ka + (v * v) * kb < np.float32(1.0)


def _heart_edges() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-edge data of the right half outline, relative to the star centre.

    Returns the polar angle of every vertex (0 = straight up, pi = straight down,
    increasing along the outline) and, for every edge, an outward normal ``(nx, ny)``
    and offset ``d`` such that a point of the edge's angular sector is inside iff
    ``nx * x + ny * y < d``.
    """
    p = np.asarray(HEART_HALF_OUTLINE, dtype=np.float64) - np.asarray(HEART_STAR_CENTRE)
    angles = np.arctan2(p[:, 0], -p[:, 1])
    if not np.all(np.diff(angles) > 0):
        raise AssertionError("heart outline is not star-shaped about HEART_STAR_CENTRE")
    edge = p[1:] - p[:-1]
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
    offset = np.einsum("ij,ij->i", normal, p[:-1])
    sign = np.sign(offset)  # put the star centre (the origin here) on the inner side
    return angles, normal[:, 0] * sign, normal[:, 1] * sign, offset * sign


def _inside_heart_exact(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exact point-in-polygon test (float64), using mirror symmetry and star-shapedness."""
    angles, nx, ny, offset = _heart_edges()
    x = np.abs(np.asarray(u, dtype=np.float64)) - HEART_STAR_CENTRE[0]
    y = np.asarray(v, dtype=np.float64) - HEART_STAR_CENTRE[1]
    phi = np.arctan2(x, -y)  # in [0, pi]
    k = np.clip(np.searchsorted(angles, phi, side="right") - 1, 0, len(offset) - 1)
    return nx[k] * x + ny[k] * y < offset[k]


# The fast heart test looks each point up in a grid of small cells over the local frame,
# computed once: cells wholly inside (1) or wholly outside (0) the polygon answer
# directly; only points in cells that touch the outline (2) get the exact test.
_CELLS_PER_PX = 16  # cell side 1/16 px at scale 1 (a power of two: exact arithmetic)
_CELL_EXTENT = 12.0  # the grid covers [-12, 12)^2, beyond the heart's support radius
_heart_cells: np.ndarray | None = None


def _heart_cell_states() -> np.ndarray:
    """uint8 ``[n, n]`` cell states (0 out, 1 in, 2 touches the outline), cached."""
    global _heart_cells
    if _heart_cells is None:
        n = int(2 * _CELL_EXTENT * _CELLS_PER_PX)
        centres = (np.arange(n) + 0.5) / _CELLS_PER_PX - _CELL_EXTENT
        cu, cv = np.meshgrid(centres, centres)  # [row = v, column = u]
        states = _inside_heart_exact(cu, cv).astype(np.uint8)
        # A cell is uniform if its centre is farther from every edge than its half
        # diagonal, plus a margin for float32 rounding of the cell index. Each edge
        # only needs checking against the cells of its bounding box.
        margin = np.sqrt(0.5) / _CELLS_PER_PX + 1e-3
        polygon = heart_polygon()
        for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
            lo = np.floor((np.minimum(a, b) - margin + _CELL_EXTENT) * _CELLS_PER_PX).astype(int)
            hi = np.ceil((np.maximum(a, b) + margin + _CELL_EXTENT) * _CELLS_PER_PX).astype(int)
            rows, cols = slice(max(lo[1], 0), hi[1] + 1), slice(max(lo[0], 0), hi[0] + 1)
            px, py = cu[rows, cols] - a[0], cv[rows, cols] - a[1]
            ab = b - a
            t = np.clip((px * ab[0] + py * ab[1]) / (ab @ ab), 0.0, 1.0)
            near = np.hypot(px - t * ab[0], py - t * ab[1]) <= margin
            states[rows, cols][near] = 2
        _heart_cells = states
    return _heart_cells


def _inside_heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cells = _heart_cell_states()
    n = cells.shape[0]
    lo, hi = np.float32(_CELL_EXTENT), np.float32(_CELLS_PER_PX)
    # Points beyond the grid clip onto its border cells, which are all outside.
    iu = np.clip((u + lo) * hi, 0, n - 1).astype(np.intp)
    iv = np.clip((v + lo) * hi, 0, n - 1).astype(np.intp)
    state = cells[iv, iu]
    inside = state == 1
    edge = np.flatnonzero(state == 2)
    inside.flat[edge] = _inside_heart_exact(u.flat[edge], v.flat[edge])
    return inside


_INSIDE = (_inside_square, _inside_ellipse, _inside_heart)


def _support_radius(shape_index: int) -> float:
    """Largest distance of a point of the shape from the rotation centre at scale 1."""
    return (
        SQUARE_HALF_SIDE * np.sqrt(2.0),
        max(ELLIPSE_SEMI_AXIS_X, ELLIPSE_SEMI_AXIS_Y),
        float(np.hypot(*np.asarray(HEART_HALF_OUTLINE).T).max()),
    )[shape_index]


assert _support_radius(2) < _CELL_EXTENT - 1.0 / _CELLS_PER_PX


def _window_half(shape_index: int, scale: float) -> int:
    """Half side ``h`` of the pixel block that holds the sprite.

    The block covers columns ``floor(cx) - h`` to ``floor(cx) + h - 1`` (and the same
    rows): every pixel centre within ``h - 1.5`` px of the centre. With ``h <= 16`` and
    ``cx`` in [16, 48] it stays on the canvas.
    """
    h = int(np.ceil(_support_radius(shape_index) * scale + 1.5))
    assert h <= 16
    return h


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------

_DEFAULT_CHUNK = 1024


def _validate(factors: np.ndarray) -> np.ndarray:
    if not isinstance(factors, np.ndarray):
        raise ValueError(f"factors must be a numpy array of shape [N, 5], got {type(factors).__name__}")
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_NAMES):
        raise ValueError(
            f"factors must have shape [N, {len(FACTOR_NAMES)}] (columns {FACTOR_NAMES}), got {factors.shape}"
        )
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be an integer array of class indices, got dtype {factors.dtype}")
    for col, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES)):
        values = factors[:, col]
        bad = (values < 0) | (values >= size)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"factor {name!r} must be in [0, {size - 1}], got {int(values[row])} (row {row})"
            )
    return factors.astype(np.int64, copy=False)


def _render_group(factors: np.ndarray, out: np.ndarray) -> None:
    """Render validated factors ``[m, 5]`` of one shape and one scale into ``out``."""
    shape_index, scale_index = int(factors[0, 0]), int(factors[0, 1])
    scale = SCALES[scale_index]
    h = _window_half(shape_index, scale)
    theta = ORIENTATIONS[factors[:, 2]]
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    cx = 16.0 + 32.0 * POSITIONS[factors[:, 3]]
    cy = 16.0 + 32.0 * POSITIONS[factors[:, 4]]
    j0 = np.floor(cx).astype(np.intp) - h  # first column of each sprite's block
    i0 = np.floor(cy).astype(np.intp) - h  # first row
    offsets = np.arange(2 * h)
    dx = (j0[:, None] + offsets) + 0.5 - cx[:, None]  # [m, 2h] pixel centre - centre
    dy = (i0[:, None] + offsets) + 0.5 - cy[:, None]
    # Into the local frame: rotate by +theta (y down) and divide by the scale. The
    # [m, 1, 2h] and [m, 2h, 1] factors broadcast to the [m, 2h, 2h] block; the
    # per-pixel work is done in float32 (errors ~1e-6 px).
    f32 = np.float32
    u = (cos[:, None] * dx).astype(f32)[:, None, :] - (sin[:, None] * dy).astype(f32)[:, :, None]
    v = (sin[:, None] * dx).astype(f32)[:, None, :] + (cos[:, None] * dy).astype(f32)[:, :, None]
    block = _INSIDE[shape_index](u, v)
    for k in range(len(factors)):
        out[k, i0[k] : i0[k] + 2 * h, j0[k] : j0[k] + 2 * h] = block[k]


def _render_chunk(factors: np.ndarray) -> np.ndarray:
    """Render validated factors ``[n, 5]`` (int64) into ``uint8 [n, 64, 64]``."""
    out = np.zeros((len(factors), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    group = factors[:, 0] * FACTOR_SIZES[1] + factors[:, 1]  # (shape, scale) pairs
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        if len(rows) == len(factors):
            _render_group(factors, out)
        else:
            block = np.zeros((len(rows), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
            _render_group(factors[rows], block)
            out[rows] = block
    return out


def render(factors: np.ndarray, chunk_size: int = _DEFAULT_CHUNK) -> np.ndarray:
    """Render dSprites images from factor classes.

    Args:
        factors: integer array ``[N, 5]`` of class indices in the order
            :data:`FACTOR_NAMES` (shape 0-2, scale 0-5, orientation 0-39, posX 0-31,
            posY 0-31).
        chunk_size: images processed at once (bounds the temporary memory, about
            100 kB per image).

    Returns:
        ``uint8`` array ``[N, 64, 64]`` with values in {0, 1}.

    Raises:
        ValueError: wrong type, shape or dtype, or a class index out of range (the
            message names the factor, its allowed range and the bad value).
    """
    factors = _validate(factors)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if len(factors) <= chunk_size:
        return _render_chunk(factors)
    out = np.empty((len(factors), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for start in range(0, len(factors), chunk_size):
        out[start : start + chunk_size] = _render_chunk(factors[start : start + chunk_size])
    return out


def _grid_factors(start: int, stop: int) -> np.ndarray:
    """Factor classes ``[stop - start, 5]`` of official flat indices ``start..stop-1``."""
    flat = np.arange(start, stop, dtype=np.int64)
    return np.stack(np.unravel_index(flat, FACTOR_SIZES), axis=1).astype(np.int64)


def render_grid_chunks(
    chunk_size: int = 4096, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Render the official grid in official order, chunk by chunk.

    Yields ``(first_flat_index, images)`` with ``images`` ``uint8 [n, 64, 64]``,
    ``n <= chunk_size``, covering flat indices ``start`` to ``stop - 1`` (default: all
    737,280) in row-major order over :data:`FACTOR_SIZES`, posY fastest. Image ``k``
    of a chunk is ``render`` of the unravelled flat index ``first_flat_index + k``.
    """
    stop = NUM_IMAGES if stop is None else stop
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not 0 <= start <= stop <= NUM_IMAGES:
        raise ValueError(f"need 0 <= start <= stop <= {NUM_IMAGES}, got start={start}, stop={stop}")
    for first in range(start, stop, chunk_size):
        last = min(first + chunk_size, stop)
        yield first, render(_grid_factors(first, last), chunk_size=chunk_size)
