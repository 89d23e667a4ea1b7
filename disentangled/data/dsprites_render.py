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

Geometry (see the project's dataset notes, ``shared/reference/datasets.md`` section 3.1,
and ``tools/fit_dsprites_shapes.py``, which derives every constant below from the 320
labelled real frames of the official ``dsprites.gif``, shipped with the tests in
``tests/data/files/dsprites_frames/``). Coordinates are pixels, origin at the top-left corner of the
canvas, ``y`` pointing down:

* pixel (row ``i``, column ``j``) is 1 iff its centre ``(j + 0.5, i + 0.5)`` lies
  inside the shape (centre sampling, no anti-aliasing);
* the sprite's centre is ``cx = 16 + 32 * posX``, ``cy = 16 + 32 * posY``;
* the sprite is rotated by ``orientation`` radians counter-clockwise on screen about
  that centre and scaled by ``scale`` about it.

To test a pixel we map its centre into the sprite's local frame (offset from the
centre, rotated by ``+orientation`` in the y-down frame, divided by ``scale``) and test
membership in the unrotated, scale-1 shape, whose outlines are given below in pixels.

All 320 real frames (64 squares, 64 ellipses, 192 hearts) are reproduced pixel for
pixel. They cover only part of the grid (squares and ellipses only at position
(0, 0), hearts only along its border), and the heart outline is a fit: on frames
held out of the heart fit the mean IoU is ~0.998 (about half a pixel wrong per
heart). So elsewhere on the grid expect agreement up to a few boundary pixels, not
identity. It is *not* the official file: label data made with it
``dsprites_procedural`` and record :data:`RENDERER_VERSION` with it.
"""

from __future__ import annotations

from typing import Iterator
from ..errors import ParameterError

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
    "heart_polygon",
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
for _grid in (SCALES, ORIENTATIONS, POSITIONS):
    _grid.flags.writeable = False
del _grid

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

# Ellipse: semi-axes about 0.2 and 0.113 of the canvas. A grid search over the
# semi-axes of an exact ellipse finds a small region, a in [12.7656, 12.7662] x
# b in [7.2122, 7.2144], where all 64 real ellipse frames are reproduced pixel for
# pixel; these are its centre. (LÖVE draws ellipses as polygons, but inscribed regular
# N-gons fit no better: in a search over N = 30-120, several N between 50 and 120 also
# reproduced every frame for suitable axes, each in a tiny region, and none below 50
# did. The segment count cannot be told from the data, so the exact ellipse is used.)
ELLIPSE_SEMI_AXIS_X = 12.7659
ELLIPSE_SEMI_AXIS_Y = 7.2132

# Heart: a mirror-symmetric 48-vertex polygon. Listed is the right half, from the
# notch on the symmetry axis (top) clockwise on screen to the tip (bottom); the left
# half is its mirror image (x -> -x). Fitted directly to the pixels of the 168 distinct
# real heart frames (all orientations and scales at position (0, 0), and the 124
# positions along the border of the grid at scale 1, orientation 0): the polar angles
# and radii of the 25 vertices about HEART_STAR_CENTRE were optimised with a logistic
# loss of the signed radial distance (in pixels) at decreasing temperatures plus a small
# smoothness penalty, starting from a super-resolution template of the frames (0.2 px
# bins, mirror-symmetrised, threshold 0.5; that template alone gives mean IoU 0.991).
# The polygon, rounded to 1e-3 px, reproduces all 192 real heart frames exactly; with
# two-fold cross-validation over frames the held-out mean IoU is 0.998. 19.2 px wide,
# 19.0 px tall (17 pixel rows), lobes up; area 224.9 px^2, centroid 1.99 px above the
# rotation centre.
HEART_HALF_OUTLINE = (
    (0.000, -5.215),
    (0.695, -6.953),
    (1.679, -8.133),
    (2.766, -8.909),
    (3.925, -9.309),
    (5.130, -9.346),
    (6.354, -9.034),
    (7.557, -8.337),
    (8.534, -7.334),
    (9.235, -6.191),
    (9.519, -5.031),
    (9.619, -3.933),
    (9.473, -2.862),
    (9.165, -1.822),
    (8.648, -0.776),
    (7.950, 0.256),
    (7.113, 1.278),
    (6.168, 2.282),
    (5.147, 3.269),
    (4.091, 4.246),
    (3.062, 5.243),
    (2.086, 6.257),
    (1.213, 7.301),
    (0.502, 8.413),
    (0.000, 9.621),
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
    if np.any(offset == 0):
        raise AssertionError("HEART_STAR_CENTRE lies on the line of a heart edge")
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


if not _support_radius(2) < _CELL_EXTENT - 1.0 / _CELLS_PER_PX:
    raise AssertionError("the heart does not fit in its cell grid")


def _window_half(shape_index: int, scale: float) -> int:
    """Half side ``h`` of the pixel block that holds the sprite.

    The block covers columns ``floor(cx) - h`` to ``floor(cx) + h - 1`` (and the same
    rows): every pixel centre within ``h - 1.5`` px of the centre. With ``h <= 16`` and
    ``cx`` in [16, 48] it stays on the canvas.
    """
    h = int(np.ceil(_support_radius(shape_index) * scale + 1.5))
    if h > 16:
        raise AssertionError(f"{SHAPE_NAMES[shape_index]} too large for its pixel block")
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
        chunk_size: images processed at once (bounds the temporary memory, a few
            tens of kB per image).

    Returns:
        ``uint8`` array ``[N, 64, 64]`` with values in {0, 1}.

    Raises:
        ValueError: wrong type, shape or dtype, or a class index out of range (the
            message names the factor, its allowed range and the bad value).
    """
    factors = _validate(factors)
    if chunk_size < 1:
        raise ParameterError(f"chunk_size must be >= 1, got {chunk_size}")
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
        raise ParameterError(f"chunk_size must be >= 1, got {chunk_size}")
    if not 0 <= start <= stop <= NUM_IMAGES:
        raise ParameterError(f"need 0 <= start <= stop <= {NUM_IMAGES}, got start={start}, stop={stop}")
    for first in range(start, stop, chunk_size):
        last = min(first + chunk_size, stop)
        yield first, render(_grid_factors(first, last), chunk_size=chunk_size)
