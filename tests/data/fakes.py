"""Tiny fake files in every data set's official on-disk format, and the table of them.

Each writer below produces reduced grids with the package's own writers (which write the
published layouts byte for byte: NORB headers, MATLAB v5, DeepMind's npz and h5, ``np.savez``),
so the readers are exercised on the real formats without any real data. Pixel values encode
the factor combination wherever a test needs to see which image it got.

:data:`FAKES` has one entry per registered data set (``disentangled.data.DATASETS``); the
common suite (``test_common.py``) runs over the registry and fails for a data set that has no
entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from disentangled.data import FactorSpace
from disentangled.data import cars3d, dsprites, mpi3d, shapes3d
from disentangled.data import smallnorb as norb

# --- dSprites: a reduced grid of 72 binary images ------------------------------------------

DSPRITES_SMALL = FactorSpace(dsprites.OFFICIAL_SPACE.names, (1, 3, 2, 3, 2, 2))


def dsprites_images(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((DSPRITES_SMALL.num_combinations, 64, 64)) < 0.3).astype(np.uint8)


def write_dsprites(root, seed=0) -> np.ndarray:
    """The official npz (with its pickled metadata) under ``root``; returns the images."""
    images = dsprites_images(seed)
    dsprites.write_official(Path(root) / dsprites.OFFICIAL_NPZ, images, DSPRITES_SMALL)
    return images


# --- SmallNORB: category 2, instance 4 (training 1, 3; testing 0, 2), elevation 2, ----------
# azimuth codes 0, 2, 4 (3 classes), lighting 2 -> 96 images, 48 per split

NORB_SIZES = (2, 4, 2, 3, 2)
NORB_SPLIT_INSTANCES = {"training": (1, 3), "testing": (0, 2)}


def norb_grid_value(codes) -> np.ndarray:
    """The grey level of camera 0 for factor codes [N, 5]: unique per cell, above 127."""
    return 100 + np.ravel_multi_index(tuple(np.asarray(codes).T), NORB_SIZES)


def norb_all_codes() -> np.ndarray:
    return np.stack(np.unravel_index(np.arange(np.prod(NORB_SIZES)), NORB_SIZES), axis=1)


def write_smallnorb(root, *, gzipped=False, seed=0) -> None:
    """The six binary-matrix files under ``root``, rows in a shuffled (non-grid) order."""
    rng = np.random.default_rng(seed)
    for split, instances in NORB_SPLIT_INSTANCES.items():
        codes = np.array(
            [(c, i, e, a, l) for c in range(2) for i in instances for e in range(2) for a in range(3) for l in range(2)]
        )
        codes = codes[rng.permutation(len(codes))]  # the files' order is not the grid order
        values = norb_grid_value(codes).astype(np.uint8)
        dat = np.empty((len(codes), 2, 96, 96), dtype=np.uint8)
        dat[:, 0] = values[:, None, None]
        dat[:, 1] = 255 - values[:, None, None]  # camera 1 must be ignored
        info = np.stack([codes[:, 1], codes[:, 2], 2 * codes[:, 3], codes[:, 4]], axis=1)
        norb.write_split(root, split, dat, codes[:, 0], info, gzipped=gzipped)


# --- Cars3D: 3 azimuths x 2 elevations per car, each view one flat colour -------------------

CARS_AZIMUTHS, CARS_ELEVATIONS = 3, 2


def car_colour(obj, azimuth, elevation) -> np.ndarray:
    """The colour of one view: encodes (object, azimuth, elevation)."""
    return np.array([40 + 50 * obj, 30 + 60 * azimuth, 200 + 20 * elevation], dtype=np.uint8)


def car(obj, azimuths=CARS_AZIMUTHS, elevations=CARS_ELEVATIONS, size=128) -> np.ndarray:
    """``im`` [size, size, 3, azimuths, elevations] of one car, each view a flat colour."""
    im = np.zeros((size, size, 3, azimuths, elevations), dtype=np.uint8)
    for a in range(azimuths):
        for e in range(elevations):
            im[:, :, :, a, e] = car_colour(obj, a, e)
    return im


def write_cars(folder, objects=(0, 1, 2), names=None, with_list=True) -> list[Path]:
    """A ``cars/`` folder: one ``.mat`` per object and ``list.txt``."""
    return cars3d.write_official(folder, [car(o) for o in objects], names, with_list=with_list)


# --- Shapes3D: a reduced grid of 96 scenes --------------------------------------------------

SHAPES3D_SMALL = FactorSpace(shapes3d.OFFICIAL_SPACE.names, (2, 2, 2, 2, 2, 3))


def shapes3d_images(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(SHAPES3D_SMALL.num_combinations, 64, 64, 3), dtype=np.uint8)


def write_shapes3d(root, seed=0) -> np.ndarray:
    """DeepMind's ``3dshapes.h5`` (gzip-compressed, as downloaded) under ``root``; returns the images."""
    images = shapes3d_images(seed)
    shapes3d.write_official(Path(root) / shapes3d.OFFICIAL_H5, images, SHAPES3D_SMALL)
    return images


# --- MPI3D: a reduced grid of 288 scenes ----------------------------------------------------

MPI3D_SIZES = (2, 2, 2, 3, 3, 2, 2)


def mpi3d_images(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(int(np.prod(MPI3D_SIZES)), 64, 64, 3), dtype=np.uint8)


def mpi3d_writer(name: str) -> Callable[[Path], np.ndarray]:
    def write(root, seed=0) -> np.ndarray:
        images = mpi3d_images(seed)
        mpi3d.write_official(Path(root) / name / f"{name}.npz", images)
        return images

    return write


# --- the table the common suite runs over ---------------------------------------------------


@dataclass(frozen=True)
class Fake:
    """How to give one registered data set tiny files, and what to expect of it.

    ``write(data_dir)`` writes the official files under a data directory (None: the data set
    needs no file); ``options`` build the data set on them (``strict=False`` for the reduced
    grids); ``latent_sizes`` are the latent factor sizes of the fake grid; ``official_sizes``
    and ``observation_shape`` are the published ones (the reference's numbers, not read from
    the package); ``missing`` is the file that ``readiness()`` must name while the files are
    absent; ``source`` is what ``describe()["source"]`` records.
    """

    write: Callable[[Path], object] | None
    latent_sizes: tuple[int, ...]
    official_sizes: tuple[int, ...]
    observation_shape: tuple[int, int, int]
    missing: str | None
    options: dict = field(default_factory=lambda: {"strict": False})
    source: str = "official"


_DSPRITES_LATENT = (3, 2, 3, 2, 2)  # shape, scale, orientation, posX, posY of DSPRITES_SMALL
_MPI3D = dict(latent_sizes=MPI3D_SIZES, official_sizes=(6, 6, 2, 3, 3, 40, 40), observation_shape=(3, 64, 64))

FAKES: dict[str, Fake] = {
    "dummy_data": Fake(None, (5,) * 10, (5,) * 10, (1, 64, 64), None, options={}, source="synthetic"),
    "dsprites_full": Fake(write_dsprites, _DSPRITES_LATENT, (3, 6, 40, 32, 32), (1, 64, 64), dsprites.OFFICIAL_NPZ),
    "dsprites_noshape": Fake(write_dsprites, _DSPRITES_LATENT[1:], (6, 40, 32, 32), (1, 64, 64), dsprites.OFFICIAL_NPZ),
    "color_dsprites": Fake(write_dsprites, _DSPRITES_LATENT, (3, 6, 40, 32, 32), (3, 64, 64), dsprites.OFFICIAL_NPZ),
    "noisy_dsprites": Fake(write_dsprites, _DSPRITES_LATENT, (3, 6, 40, 32, 32), (3, 64, 64), dsprites.OFFICIAL_NPZ),
    "scream_dsprites": Fake(write_dsprites, _DSPRITES_LATENT, (3, 6, 40, 32, 32), (3, 64, 64), dsprites.OFFICIAL_NPZ),
    "smallnorb": Fake(write_smallnorb, (2, 2, 3, 2), (5, 9, 18, 6), (1, 64, 64), norb.relative_candidates("training", "dat")[0]),
    "cars3d": Fake(
        lambda root: write_cars(Path(root) / cars3d.FOLDER),
        (CARS_ELEVATIONS, CARS_AZIMUTHS, 3), (4, 24, 183), (3, 64, 64), f"{cars3d.FOLDER}/*.mat",
    ),
    "shapes3d": Fake(write_shapes3d, SHAPES3D_SMALL.sizes, (10, 10, 10, 8, 4, 15), (3, 64, 64), shapes3d.OFFICIAL_H5),
    "mpi3d_toy": Fake(mpi3d_writer("mpi3d_toy"), missing="mpi3d_toy/mpi3d_toy.npz",
                      options={"strict": False, "factor_sizes": MPI3D_SIZES}, **_MPI3D),
    "mpi3d_realistic": Fake(mpi3d_writer("mpi3d_realistic"), missing="mpi3d_realistic/mpi3d_realistic.npz",
                            options={"strict": False, "factor_sizes": MPI3D_SIZES}, **_MPI3D),
    "mpi3d_real": Fake(mpi3d_writer("mpi3d_real"), missing="mpi3d_real/mpi3d_real.npz",
                       options={"strict": False, "factor_sizes": MPI3D_SIZES}, **_MPI3D),
}
