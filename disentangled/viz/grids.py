"""Image grids: the drawing code behind ``data show`` and the model pictures.

Images are float arrays in [0, 1], channels first (``[..., C, H, W]``), as the data sets
and decoders produce them. Grids are assembled with numpy and written with Pillow (plain
grids) or matplotlib (labelled figures).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ParameterError, check_float
from ..io import atomic_path


def to_hwc_uint8(images: np.ndarray) -> np.ndarray:
    """``[..., C, H, W]`` floats in [0, 1] -> ``[..., H, W, 3]`` uint8 (grey repeated to RGB)."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim < 3 or arr.shape[-3] not in (1, 3):
        raise ParameterError(f"images must be [..., C, H, W] with C in (1, 3), got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"images contain {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    arr = np.moveaxis(arr, -3, -1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


def grid(images: np.ndarray, *, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile ``[rows, cols, C, H, W]`` images into one uint8 ``[H', W', 3]`` picture.

    A NaN image (all values NaN) marks an empty cell, drawn in the padding colour.
    """
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 5:
        raise ParameterError(f"grid expects [rows, cols, C, H, W], got shape {tuple(arr.shape)}")
    rows, cols, _, h, w = arr.shape
    empty = np.isnan(arr).all(axis=(2, 3, 4))
    tiles = to_hwc_uint8(np.where(empty[..., None, None, None], 0.0, arr))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            if not empty[r, c]:
                top, left = pad + r * (h + pad), pad + c * (w + pad)
                out[top : top + h, left : left + w] = tiles[r, c]
    return out


def save_png(picture: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 ``[H, W, 3]`` picture atomically as PNG."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return path


def factor_variations(data, *, rng, num_values: int = 10) -> tuple[np.ndarray, list[str], list[list[int]]]:
    """One row per latent factor: a random base, varying only that factor.

    Returns images ``[K, num_values, C, H, W]`` (NaN where a factor has fewer values), the
    row labels and the factor values shown in each row.
    """
    base = data.sample_factors(1, rng=rng)[0]
    rows, labels, shown = [], [], []
    c, h, w = data.observation_shape
    for k, (name, size) in enumerate(zip(data.factor_names, data.factor_sizes)):
        values = np.unique(np.round(np.linspace(0, size - 1, min(size, num_values))).astype(np.int64))
        factors = np.repeat(base[None], len(values), axis=0)
        factors[:, k] = values
        obs = data.observations_from_factors(factors, rng=rng)
        row = np.full((num_values, c, h, w), np.nan, dtype=np.float32)
        row[: len(values)] = obs
        rows.append(row)
        labels.append(f"{name} ({size})")
        shown.append(values.tolist())
    return np.stack(rows), labels, shown


def save_labelled_grid(images: np.ndarray, row_labels: list[str], path: str | os.PathLike, *, title: str = "") -> Path:
    """A grid with a label left of each row, written atomically as PNG with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picture = grid(images)
    rows = images.shape[0]
    height_in = max(2.0, picture.shape[0] / 60)
    width_in = picture.shape[1] / 60 + 2.2
    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=100)
    ax.imshow(picture, interpolation="nearest")
    cell = picture.shape[0] / rows
    ax.set_yticks([cell * (r + 0.5) for r in range(rows)])
    ax.set_yticklabels(row_labels)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def captioned_grid(images: np.ndarray, captions, *, pad: int = 2, pad_value: int = 255, caption_height: int = 12) -> np.ndarray:
    """Like :func:`grid`, with a caption band above every row (``captions[r][c]``, short text).

    The captions are drawn with Pillow's built-in bitmap font, so no font file is needed.
    """
    from PIL import Image, ImageDraw

    plain = grid(images, pad=pad, pad_value=pad_value)
    rows, cols, _, h, w = np.shape(images)
    band = h + pad
    out = np.full((plain.shape[0] + rows * caption_height, plain.shape[1], 3), pad_value, dtype=np.uint8)
    for r in range(rows):
        top = pad + r * (band + caption_height) + caption_height
        out[top : top + h] = plain[pad + r * band : pad + r * band + h]
    picture = Image.fromarray(out)
    draw = ImageDraw.Draw(picture)
    for r in range(rows):
        for c in range(cols):
            text = captions[r][c]
            if text:
                draw.text((pad + c * (w + pad) + 1, pad + r * (band + caption_height)), str(text), fill=(40, 40, 40))
    return np.asarray(picture)


def save_gif(frames: np.ndarray, path: str | os.PathLike, *, fps: float = 10.0) -> Path:
    """Write uint8 frames ``[T, H, W, 3]`` atomically as a looping GIF (imageio, Pillow plugin)."""
    import imageio.v3 as iio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ParameterError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    check_float("fps", fps, low=0, low_open=True)
    if np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 0], frames[..., 2]):
        frames = frames[..., 0]  # grey: written as 8-bit grey, exact and ~3x faster to encode
    path = Path(path)
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, frames, extension=".gif", plugin="pillow", duration=1000.0 / fps, loop=0)
    return path


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def labelled_grid(images: np.ndarray, row_labels: list[str], *, title: str = "", pad: int = 2, font_size: int = 12) -> np.ndarray:
    """:func:`grid` with a label left of each row and an optional title line, drawn with Pillow.

    A fast alternative to :func:`save_labelled_grid` (no matplotlib) returning the uint8 picture.
    """
    from PIL import Image, ImageDraw

    rows = np.shape(images)[0]
    if len(row_labels) != rows:
        raise ParameterError(f"{rows} rows but {len(row_labels)} row labels")
    plain = grid(images, pad=pad)
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [probe.textlength(str(label), font=font) for label in row_labels] or [0]
    left = int(max(widths)) + 3 * pad if any(row_labels) else 0
    top = font_size + 3 * pad if title else 0
    width = max(left + plain.shape[1], int(probe.textlength(title, font=font)) + 2 * pad if title else 0)
    picture = Image.new("RGB", (width, top + plain.shape[0]), (255, 255, 255))
    picture.paste(Image.fromarray(plain), (left, top))
    draw = ImageDraw.Draw(picture)
    if title:
        draw.text((pad, pad), title, fill=(20, 20, 20), font=font)
    cell = (plain.shape[0] - pad) / rows
    for r, label in enumerate(row_labels):
        y = top + pad + cell * r + (cell - pad) / 2 - font_size / 2
        draw.text((pad, y), str(label), fill=(20, 20, 20), font=font)
    return np.asarray(picture)
