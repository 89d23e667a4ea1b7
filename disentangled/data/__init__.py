"""Ground-truth data sets: ``disentangled.data.get(name, **options)``.

The registry below is the one list of data sets; the CLI and the tests iterate over it.
Options common to the file-backed sets: ``source`` ("official" or "procedural", where a
procedural renderer exists), ``data_dir`` (overrides ``DISENTANGLED_DATA``), ``strict``
(check the official factor sizes; tests read reduced grids with ``strict=False``).
"""

from __future__ import annotations

from ..registry import Registry
from .base import FactorSpace, GroundTruthData
from .cars3d import Cars3D
from .dsprites import ColorDSprites, DSprites, DSpritesNoShape, NoisyDSprites, ScreamDSprites
from .dummy import DummyData
from .mpi3d import MPI3DReal, MPI3DRealistic, MPI3DToy
from .shapes3d import Shapes3D
from .smallnorb import SmallNORB
from .paths import DataFileError

# a data set's options are its constructor's parameters
DATASETS = Registry("data set", {
    "dummy_data": DummyData,
    "dsprites_full": DSprites,
    "dsprites_noshape": DSpritesNoShape,
    "color_dsprites": ColorDSprites,
    "noisy_dsprites": NoisyDSprites,
    "scream_dsprites": ScreamDSprites,
    "smallnorb": SmallNORB,
    "cars3d": Cars3D,
    "shapes3d": Shapes3D,
    "mpi3d_toy": MPI3DToy,
    "mpi3d_realistic": MPI3DRealistic,
    "mpi3d_real": MPI3DReal,
})


def options_of(name: str) -> list[str]:
    """The keyword options that ``get(name, ...)`` accepts."""
    return DATASETS.options(name)


def get(name: str, **options) -> GroundTruthData:
    """The data set registered as ``name``, built with ``options`` (no file is read yet)."""
    return DATASETS.build(name, **options)


__all__ = [
    "DATASETS",
    "DataFileError",
    "FactorSpace",
    "GroundTruthData",
    "get",
    "options_of",
]
