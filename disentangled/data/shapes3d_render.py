"""An offline look-alike of DeepMind's 3D Shapes, rendered with numpy by layered compositing.

Not the real data (that was rendered with MuJoCo; camera, lights and textures are
unknown): same factor grid, image size and semantics, drawn by this project. Data sets
built from it say so in ``describe()`` (``generator``, ``renderer_version``).

Scene: a floor and two walls meeting in a corner behind an object that stands on the
floor at the origin, a light-blue sky above the walls, a key light from the upper left
(hard shadows, falling to the lower right) and a soft fill light from the camera's side.
Factors (row-major, orientation fastest), as in the official file:

    floor_hue 10, wall_hue 10, object_hue 10   hues 0.0, 0.1, ..., 0.9 (HSV, full saturation)
    scale 8                                    0.75 ... 1.25 (object size multiplier)
    shape 4                                    cube, cylinder, sphere, capsule
    orientation 15                             camera azimuth -30 ... 30 degrees about the object

How it is fast: every pixel colour is linear in the three hue colours, so an image is

    image = L_floor * rgb(floor_hue) + L_wall * rgb(wall_hue) + L_object * rgb(object_hue) + L_sky * sky

where each ``L`` map (64x64) is a surface's coverage times its shading (shadows included),
averaged over 4x4 rays per pixel. The maps depend on (shape, scale, orientation) only:
480 layers, ray-cast once (analytic intersections) and kept (31 MB), after which an image
costs four multiply-adds per pixel and channel. Floor and wall shading depends on the
orientation only; the object (shape, scale) adds its coverage, shading and shadow. So a
floor hue changes floor pixels only, a wall hue wall pixels only, an object hue object
pixels only; scale and shape change the object and its shadow; orientation the view.
"""

from __future__ import annotations

import colorsys
import threading
from typing import Iterator

import numpy as np

GENERATOR = "disentangled.data.shapes3d_render"
RENDERER_VERSION = 1

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
HUES = np.arange(10) / 10.0
SCALES = np.linspace(0.75, 1.25, 8)
SHAPES = ("cube", "cylinder", "sphere", "capsule")
ORIENTATIONS = np.linspace(-30.0, 30.0, 15)  # degrees
FACTOR_VALUES = (HUES, HUES, HUES, SCALES, np.arange(4, dtype=np.float64), ORIENTATIONS)

SIZE = 64
SUPERSAMPLE = 4  # rays per pixel along each axis
SURFACES = ("floor", "wall", "object", "sky")

# Scene (world units; y up; the camera at azimuth 0 looks along -z at the object)
CAMERA_DISTANCE = 5.2
CAMERA_HEIGHT = 2.1
LOOK_AT = np.array([0.0, 0.75, 0.0])
FIELD_OF_VIEW = 46.0  # degrees, vertical
CORNER = np.array([0.0, 0.0, -3.0])
WALL_NORMALS = np.array([[1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]) / np.sqrt(2.0)
WALL_HEIGHT = 2.5
SKY_RGB = np.array([0.62, 0.80, 0.95])
KEY_LIGHT = np.array([-0.55, 1.0, -0.25]) / np.linalg.norm([-0.55, 1.0, -0.25])
FILL_LIGHT = np.array([0.0, 0.6, 1.0]) / np.linalg.norm([0.0, 0.6, 1.0])
AMBIENT, KEY, FILL = 0.30, 0.50, 0.35
EPS = 1e-6


def hue_rgb(hue) -> np.ndarray:
    """RGB in [0, 1] of HSV (hue, 1, 1); ``hue`` scalar or array -> ``[..., 3]``."""
    hue = np.asarray(hue, dtype=np.float64)
    flat = [colorsys.hsv_to_rgb(float(h), 1.0, 1.0) for h in hue.ravel()]
    return np.asarray(flat, dtype=np.float64).reshape(hue.shape + (3,))


# ---------------------------------------------------------------------------------------
# Rays and analytic intersections (float64, vectorised over rays)


def camera_rays(orientation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Origin ``[3]`` and unit directions ``[64*S, 64*S, 3]`` (rows top to bottom)."""
    azimuth = np.deg2rad(orientation_deg)
    origin = np.array([CAMERA_DISTANCE * np.sin(azimuth), CAMERA_HEIGHT, CAMERA_DISTANCE * np.cos(azimuth)])
    forward = LOOK_AT - origin
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    n = SIZE * SUPERSAMPLE
    half = np.tan(np.deg2rad(FIELD_OF_VIEW) / 2)
    coords = ((np.arange(n) + 0.5) / n * 2 - 1) * half
    x, y = np.meshgrid(coords, -coords)  # y: up is positive, row 0 is the top
    dirs = forward + x[..., None] * right + y[..., None] * up
    return origin, dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)


def _sphere(o, d, center, radius):
    oc = o - center
    b = np.sum(oc * d, axis=-1)
    c = np.sum(oc * oc, axis=-1) - radius**2
    disc = b * b - c
    with np.errstate(invalid="ignore"):
        t = -b - np.sqrt(disc)
    t = np.where((disc >= 0) & (t > EPS), t, np.inf)
    p = o + t[..., None] * d
    return t, (p - center) / radius


def _vertical_side(o, d, radius, y0, y1):
    """First hit of the open vertical cylinder x^2 + z^2 = r^2, y0 <= y <= y1."""
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2]
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - radius**2
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / a
    y = o[..., 1] + t * d[..., 1]
    t = np.where((disc >= 0) & (a > 1e-12) & (t > EPS) & (y >= y0) & (y <= y1), t, np.inf)
    p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
    normal = np.stack([p[..., 0], np.zeros_like(t), p[..., 2]], axis=-1) / radius
    return t, normal


def _disc_top(o, d, radius, height):
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (height - o[..., 1]) / d[..., 1]
    p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
    inside = p[..., 0] ** 2 + p[..., 2] ** 2 <= radius**2
    t = np.where(inside & (t > EPS) & (d[..., 1] < 0), t, np.inf)
    normal = np.broadcast_to(np.array([0.0, 1.0, 0.0]), t.shape + (3,))
    return t, normal


def _box(o, d, half):
    lo = np.array([-half, 0.0, -half])
    hi = np.array([half, 2 * half, half])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - o) / d
        t2 = (hi - o) / d
    tnear = np.minimum(t1, t2)
    tfar = np.maximum(t1, t2)
    tnear = np.where(np.isnan(tnear), -np.inf, tnear)
    tfar = np.where(np.isnan(tfar), np.inf, tfar)
    t_in = tnear.max(axis=-1)
    t_out = tfar.min(axis=-1)
    t = np.where((t_out >= t_in) & (t_in > EPS), t_in, np.inf)
    axis = tnear.argmax(axis=-1)
    normal = np.zeros(t.shape + (3,))
    sign = -np.sign(np.take_along_axis(d, axis[..., None], axis=-1)[..., 0])
    np.put_along_axis(normal, axis[..., None], sign[..., None], axis=-1)
    return t, normal


def _closest(*hits):
    ts = np.stack([t for t, _ in hits])
    which = ts.argmin(axis=0)
    t = np.take_along_axis(ts, which[None], axis=0)[0]
    normals = np.stack([np.broadcast_to(nrm, ts.shape[1:] + (3,)) for _, nrm in hits])
    normal = np.take_along_axis(normals, which[None, ..., None], axis=0)[0]
    return t, normal


def intersect_object(shape: int, scale: float, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (``inf`` on a miss) and outward unit normal of the first hit with the object."""
    o = np.broadcast_to(o, d.shape)
    name = SHAPES[shape]
    if name == "cube":
        return _box(o, d, 0.55 * scale)
    if name == "cylinder":
        radius, height = 0.55 * scale, 1.15 * scale
        return _closest(_vertical_side(o, d, radius, 0.0, height), _disc_top(o, d, radius, height))
    if name == "sphere":
        radius = 0.65 * scale
        return _sphere(o, d, np.array([0.0, radius, 0.0]), radius)
    if name == "capsule":
        radius, length = 0.42 * scale, 0.75 * scale
        bottom, top = np.array([0.0, radius, 0.0]), np.array([0.0, radius + length, 0.0])
        return _closest(
            _vertical_side(o, d, radius, radius, radius + length), _sphere(o, d, bottom, radius), _sphere(o, d, top, radius)
        )
    raise ValueError(f"unknown shape index {shape}")


def _shade(normal: np.ndarray, lit: np.ndarray | bool = True) -> np.ndarray:
    key = np.clip(normal @ KEY_LIGHT, 0, None) * lit
    fill = np.clip(normal @ FILL_LIGHT, 0, None)
    return np.clip(AMBIENT + KEY * key + FILL * fill, 0, 1)


# ---------------------------------------------------------------------------------------
# Layers


def _pool(values: np.ndarray) -> np.ndarray:
    """Average SxS ray blocks into pixels: ``[64*S, 64*S] -> [64, 64]``."""
    s = SUPERSAMPLE
    return values.reshape(SIZE, s, SIZE, s).mean(axis=(1, 3))


class _View:
    """Everything of one orientation that does not depend on the object."""

    def __init__(self, orientation_deg: float):
        self.origin, self.dirs = camera_rays(orientation_deg)
        o, d = self.origin, self.dirs
        with np.errstate(divide="ignore", invalid="ignore"):
            t_floor = np.where(d[..., 1] < 0, -o[1] / d[..., 1], np.inf)
            t_walls = []
            for n in WALL_NORMALS:
                denom = d @ n
                t_walls.append(np.where(denom < 0, ((CORNER - o) @ n) / denom, np.inf))
        t_wall = np.minimum(*t_walls)
        wall_which = np.where(t_walls[0] <= t_walls[1], 0, 1)
        y_wall = o[1] + t_wall * d[..., 1]
        is_floor = t_floor <= t_wall
        is_wall = ~is_floor & np.isfinite(t_wall) & (y_wall <= WALL_HEIGHT)
        self.surface = np.where(is_floor, 0, np.where(is_wall, 1, 3))  # floor, wall, -, sky
        self.t = np.where(is_floor, t_floor, np.where(is_wall, t_wall, np.inf))
        normal = np.zeros(d.shape)
        normal[is_floor] = [0.0, 1.0, 0.0]
        normal[is_wall] = WALL_NORMALS[wall_which[is_wall]]
        self.normal = normal
        points = o + np.where(np.isfinite(self.t), self.t, 0.0)[..., None] * d
        self.points = points
        # a gentle fall-off with distance gives the room depth; it depends on the view only
        dist = np.where(np.isfinite(self.t), self.t, 0.0)
        self.falloff = 1.0 - 0.18 * np.clip((dist - 4.0) / 6.0, 0.0, 1.0)
        self.lit_shade = _shade(normal) * self.falloff
        self.shadow_shade = _shade(normal, lit=False) * self.falloff


class Layers:
    """The 480 compositing layers, ray-cast on first use and kept (thread-safe)."""

    def __init__(self):
        self._views: dict[int, _View] = {}
        self._layers: np.ndarray | None = None  # [scale, shape, orientation, surface, H, W], allocated on first use
        self._done = np.zeros((8, 4, 15), dtype=bool)
        self._lock = threading.Lock()

    def view(self, orientation: int) -> _View:
        if orientation not in self._views:
            self._views[orientation] = _View(float(ORIENTATIONS[orientation]))
        return self._views[orientation]

    def background(self, orientation: int) -> np.ndarray:
        """float32 ``[4, 64, 64]`` maps (floor, wall, object, sky) of the empty room."""
        v = self.view(orientation)
        maps = [_pool(np.where(v.surface == k, v.lit_shade if k < 2 else 1.0, 0.0)) for k in (0, 1)]
        maps += [np.zeros((SIZE, SIZE)), _pool((v.surface == 3).astype(np.float64))]
        return np.stack(maps).astype(np.float32)

    def _compute(self, scale: int, shape: int, orientation: int) -> np.ndarray:
        v = self.view(orientation)
        t_obj, n_obj = intersect_object(shape, float(SCALES[scale]), v.origin, v.dirs)
        on_object = t_obj < v.t
        # shadow rays from visible floor/wall points towards the key light
        room = ~on_object & (v.surface < 2)
        starts = v.points[room] + 1e-4 * v.normal[room]
        t_shadow, _ = intersect_object(shape, float(SCALES[scale]), starts, np.broadcast_to(KEY_LIGHT, starts.shape))
        shade = v.lit_shade.copy()
        shadowed = np.zeros(room.shape, dtype=bool)
        shadowed[room] = np.isfinite(t_shadow)
        shade[shadowed] = v.shadow_shade[shadowed]
        surface = np.where(on_object, 2, v.surface)
        object_shade = np.zeros(on_object.shape)
        object_shade[on_object] = _shade(n_obj[on_object])
        maps = [
            _pool(np.where(surface == 0, shade, 0.0)),
            _pool(np.where(surface == 1, shade, 0.0)),
            _pool(object_shade),
            _pool((surface == 3).astype(np.float64)),
        ]
        return np.stack(maps).astype(np.float32)

    def get(self, scale: int, shape: int, orientation: int) -> np.ndarray:
        """float32 ``[4, 64, 64]`` maps (floor, wall, object, sky) of one object and view."""
        if not self._done[scale, shape, orientation]:
            layer = self._compute(scale, shape, orientation)
            with self._lock:
                if self._layers is None:
                    self._layers = np.zeros((8, 4, 15, 4, SIZE, SIZE), dtype=np.float32)
                self._layers[scale, shape, orientation] = layer
                self._done[scale, shape, orientation] = True
                if self._done[:, :, orientation].all():  # the view's rays (~6 MB) are no longer needed
                    self._views.pop(orientation, None)
        return self._layers[scale, shape, orientation]

    def ensure(self, keys: np.ndarray) -> None:
        """Compute the layers of every ``(scale, shape, orientation)`` row of ``keys``."""
        for scale, shape, orientation in np.unique(keys, axis=0):
            self.get(int(scale), int(shape), int(orientation))

    def gather(self, keys: np.ndarray) -> np.ndarray:
        self.ensure(keys)
        return self._layers[keys[:, 0], keys[:, 1], keys[:, 2]]


_LAYERS = Layers()


def layers() -> Layers:
    """The process-wide layer store."""
    return _LAYERS


# ---------------------------------------------------------------------------------------
# Rendering


_HUE_RGB = hue_rgb(HUES).astype(np.float32)  # [10, 3]


def colours(factors: np.ndarray) -> np.ndarray:
    """float32 ``[N, 4, 3]``: the RGB of floor, wall, object and sky of each factor row."""
    factors = np.asarray(factors)
    out = np.empty((factors.shape[0], 4, 3), dtype=np.float32)
    out[:, 0] = _HUE_RGB[factors[:, 0]]
    out[:, 1] = _HUE_RGB[factors[:, 1]]
    out[:, 2] = _HUE_RGB[factors[:, 2]]
    out[:, 3] = SKY_RGB
    return out


def compose(layer_maps: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 64, 64, 3]`` from layers ``[N, 4, 64, 64]`` and colours ``[N or 1, 4, 3]``.

    Element-wise float32 arithmetic in a fixed order, so an image comes out bit for bit the
    same whether it is composed alone, in a batch or with the whole grid.
    """
    rgb255 = (np.asarray(rgb, dtype=np.float32) * np.float32(255.0)).astype(np.float32)
    n = layer_maps.shape[0]
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    acc = np.empty((n, SIZE, SIZE), dtype=np.float32)
    tmp = np.empty_like(acc)
    for c in range(3):
        np.multiply(layer_maps[:, 0], rgb255[:, 0, c, None, None], out=acc)
        for k in range(1, 4):
            np.multiply(layer_maps[:, k], rgb255[:, k, c, None, None], out=tmp)
            acc += tmp
        np.rint(acc, out=acc)
        np.clip(acc, 0, 255, out=acc)
        out[..., c] = acc
    return out


def render(factors: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """uint8 ``[N, 64, 64, 3]`` images of factor class vectors ``[N, 6]`` (official order)."""
    factors = np.asarray(factors, dtype=np.int64)
    if factors.ndim != 2 or factors.shape[1] != 6:
        raise ValueError(f"factors must be [N, 6] ({', '.join(FACTOR_NAMES)}), got {list(factors.shape)}")
    for k, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES)):
        if factors.size and (factors[:, k].min() < 0 or factors[:, k].max() >= size):
            raise ValueError(f"factor {name!r} has size {size}, got values outside 0..{size - 1}")
    out = np.empty((factors.shape[0], SIZE, SIZE, 3), dtype=np.uint8)
    for start in range(0, factors.shape[0], chunk):
        part = factors[start : start + chunk]
        out[start : start + len(part)] = compose(_LAYERS.gather(part[:, 3:]), colours(part))
    return out


def label_values(factors: np.ndarray) -> np.ndarray:
    """float64 ``[N, 6]`` factor values (the official file's ``labels``) of class vectors."""
    factors = np.asarray(factors, dtype=np.int64)
    return np.stack([FACTOR_VALUES[k][factors[:, k]] for k in range(6)], axis=1).astype(np.float64)


def render_grid_chunks(*, blocks_per_chunk: int = 10, start_block: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, uint8 images)`` over the whole grid in row-major order.

    A block is the 480 images of one (floor, wall, object) hue triple: all layers once, in
    order, so each block is one vectorised composition with three fixed colours.
    """
    per_block = 8 * 4 * 15
    all_keys = np.stack(np.unravel_index(np.arange(per_block), (8, 4, 15)), axis=1)
    layer_maps = _LAYERS.gather(all_keys)  # [480, 4, 64, 64]
    num_blocks = 1000
    for first in range(start_block, num_blocks, blocks_per_chunk):
        blocks = np.arange(first, min(first + blocks_per_chunk, num_blocks))
        hues = np.stack(np.unravel_index(blocks, (10, 10, 10)), axis=1)  # [B, 3]
        rgb = np.empty((len(blocks), 4, 3), dtype=np.float32)
        rgb[:, :3] = _HUE_RGB[hues]
        rgb[:, 3] = SKY_RGB
        images = np.empty((len(blocks), per_block, SIZE, SIZE, 3), dtype=np.uint8)
        for i in range(len(blocks)):
            images[i] = compose(layer_maps, rgb[i : i + 1])
        yield int(first) * per_block, images.reshape(-1, SIZE, SIZE, 3)
