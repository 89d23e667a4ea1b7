"""``disentangled data prepare``: make a data set ready to sample from.

* Procedural sources are rendered once, in chunks, into a memory-mappable ``.npy`` under
  ``<data dir>/procedural/``. The file is written under a temporary name and renamed when
  complete, so an interrupted run leaves nothing that looks finished.
* Official sources are located and checked (keys, shapes, dtypes, factor grid), so a
  missing or damaged file is reported now rather than in the middle of training.
  SmallNORB and Cars3D are resized once into ``<data dir>/cache/``; a compressed
  ``3dshapes.h5`` is unpacked there into a memory-mappable uint8 ``.npy``.
* ``shapes3d --source procedural`` renders the look-alike grid into
  ``<data dir>/procedural/shapes3d_procedural_v<version>.h5`` (official layout).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import get
from .base import GroundTruthData
from .cars3d import Cars3D
from .dsprites import DSprites, procedural_cache_path, read_official
from .mpi3d import MPI3D
from .shapes3d import Shapes3D
from .smallnorb import SmallNORB
from ..io import atomic_path


def prepare(name: str, *, progress: bool = True, **options) -> tuple[GroundTruthData, str]:
    """Prepare data set ``name``; return it and a sentence saying what is where."""
    data = get(name, **options)
    if isinstance(data, DSprites):
        if data.source == "procedural":
            path = render_dsprites_cache(options.get("data_dir"), progress=progress)
            from . import dsprites_render  # imported when needed, as in dsprites.py

            return data, f"{name}: procedural dSprites (renderer v{dsprites_render.RENDERER_VERSION}) at {path}"
        path = data._images.official_path()
        _, space = read_official(path, strict=options.get("strict", True))
        message = f"{name}: official file {path} checked ({space.num_combinations} images)"
        if hasattr(data, "scream"):
            data.scream()
            message += f"; painting {data.describe()['scream_image']}"
        return data, message
    if isinstance(data, Shapes3D):
        return data, data.prepare(progress=progress)
    if isinstance(data, (SmallNORB, Cars3D)):
        cache, built = data.prepare(progress=progress)
        n = data.space.num_combinations
        done = "resized and cached at" if built else "resized cache already at"
        return data, f"{name}: official files checked ({n} images), {done} {cache}"
    if isinstance(data, MPI3D):
        path, mapped = data.prepare()
        how = "memory-mapped" if mapped else "compressed member: loaded into memory when used"
        return data, f"{name}: official file {path} checked ({data.space.num_combinations} images, factor sizes {list(data.space.sizes)}, {how})"
    ready, why = data.readiness()
    return data, f"{name}: {why}"


def render_dsprites_cache(data_dir_option=None, *, progress: bool = True, chunk_size: int = 4096) -> Path:
    """Render the whole official dSprites grid to the procedural cache (if not already there)."""
    from tqdm import tqdm

    from . import dsprites_render

    path = procedural_cache_path(data_dir_option)
    total = int(np.prod(dsprites_render.FACTOR_SIZES))
    if path.is_file():
        existing = np.load(path, mmap_mode="r")
        if existing.shape == (total, 64, 64) and existing.dtype == np.uint8:
            return path
        os.remove(path)  # not ours, or from another layout: render again
    with atomic_path(path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, 64, 64))
        with tqdm(total=total, unit="img", unit_scale=True, desc="rendering dSprites", disable=not progress) as bar:
            for start, images in dsprites_render.render_grid_chunks(chunk_size=chunk_size):
                out[start : start + len(images)] = images
                bar.update(len(images))
        out.flush()
        del out
    return path
