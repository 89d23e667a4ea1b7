"""Ground-truth data sets: ``disentangled.data.get(name, **options)``.

The registry below is the one list of data sets; the CLI and the tests iterate over it.
Options common to the file-backed sets: ``source`` ("official" or "procedural", where a
procedural renderer exists), ``data_dir`` (overrides ``DISENTANGLED_DATA``), ``strict``
(check the official factor sizes; tests read reduced grids with ``strict=False``).
"""

from __future__ import annotations

import inspect

from .base import FactorSpace, GroundTruthData, close_matches
from .cars3d import Cars3D
from .dsprites import ColorDSprites, DSprites, DSpritesNoShape, NoisyDSprites, ScreamDSprites
from .dummy import DummyData
from .mpi3d import MPI3DReal, MPI3DRealistic, MPI3DToy
from .shapes3d import Shapes3D
from .smallnorb import SmallNORB
from .paths import DataFileError

DATASETS = {
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
}


def options_of(name: str) -> list[str]:
    """The keyword options that ``get(name, ...)`` accepts."""
    cls = _lookup(name)
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p != "self" and params[p].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def get(name: str, **options) -> GroundTruthData:
    """The data set registered as ``name``, built with ``options`` (no file is read yet)."""
    cls = _lookup(name)
    allowed = options_of(name)
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ValueError(
            f"data set {name!r} has no option {unknown[0]!r}; its options are {allowed or 'none'}."
            + close_matches(unknown[0], allowed)
        )
    return cls(**options)


def _lookup(name: str):
    if name not in DATASETS:
        raise ValueError(
            f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}." + close_matches(name, list(DATASETS))
        )
    return DATASETS[name]


__all__ = [
    "DATASETS",
    "DataFileError",
    "FactorSpace",
    "GroundTruthData",
    "get",
    "options_of",
]
