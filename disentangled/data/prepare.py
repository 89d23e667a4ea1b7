"""``disentangled data prepare``: make a data set ready to sample from.

Each data set prepares itself (:meth:`~disentangled.data.base.GroundTruthData.prepare`):

* procedural sources are rendered once into a memory-mappable file under
  ``<data dir>/procedural/`` (dSprites: ``.npy``; Shapes3D: an h5 in the official layout);
* official sources are located and checked (keys, shapes, dtypes, factor grid), so a
  missing or damaged file is reported now rather than in the middle of training;
  SmallNORB and Cars3D are resized once into ``<data dir>/cache/``, and a compressed
  ``3dshapes.h5`` is unpacked there into a memory-mappable uint8 ``.npy``.

Everything is written under a temporary name and renamed when complete, so an interrupted
run leaves nothing that looks finished.
"""

from __future__ import annotations

from . import get
from .base import GroundTruthData


def prepare(name: str, *, progress: bool = True, **options) -> tuple[GroundTruthData, str]:
    """Prepare data set ``name`` built with ``options``; return it and a sentence saying what is where."""
    data = get(name, **options)
    return data, data.prepare(progress=progress).message
