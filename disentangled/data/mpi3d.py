"""MPI3D (Gondal et al., NeurIPS 2019): robot-arm scenes, toy / realistic / real, RGB 64x64.

Official files: ``mpi3d_toy/mpi3d_toy.npz``, ``mpi3d_realistic/mpi3d_realistic.npz`` and
``mpi3d_real/mpi3d_real.npz`` (links in :mod:`disentangled.data.download`), each holding
one array ``images`` uint8 ``[N, 64, 64, 3]`` in row-major factor order over

    object_color, object_shape, object_size 2, camera_height 3, background_color 3,
    horizontal_axis 40, vertical_axis 40                                (all latent)

The factor sizes are inferred from ``N`` (or given with ``factor_sizes=``):

* 1,036,800 images -> colours 6, shapes 6: today's toy, realistic and real files;
* 460,800 images -> colours 4, shapes 4: the NeurIPS 2019 challenge file that
  disentanglement_lib's ``mpi3d_toy`` link pointed to (and ``mpi3d_real_complex``).

disentanglement_lib hard-codes 4 x 4 for toy and realistic, which is wrong for the files
published today (its index arithmetic would run past the first 460,800 images).

The array is ~12.7 GB, so it is never loaded: ``np.savez`` stores its members without
compression, and the reader finds the byte offset of ``images.npy`` inside the zip and
memory-maps it (a compressed member falls back to loading it, with a warning in the
docs). Batches are gathered with sorted reads and converted to float per batch.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from .base import FactorSpace, GroundTruthData, Prepared, Rng
from .paths import DataFileError, find_file, missing_file_message
from ..errors import ParameterError

FACTOR_NAMES = (
    "object_color", "object_shape", "object_size", "camera_height",
    "background_color", "horizontal_axis", "vertical_axis",
)
KNOWN_LAYOUTS = {
    1_036_800: (6, 6, 2, 3, 3, 40, 40),
    460_800: (4, 4, 2, 3, 3, 40, 40),
}
OFFICIAL_SIZES = KNOWN_LAYOUTS[1_036_800]
IMAGE_SHAPE = (64, 64, 3)


# ---------------------------------------------------------------------------------------
# npz members without loading them (shared with Shapes3D's dlib-layout npz)


def npz_member_info(path: str | os.PathLike, key: str) -> tuple[tuple[int, ...], np.dtype, bool, int | None]:
    """``(shape, dtype, fortran_order, data offset or None)`` of ``key`` in an npz.

    Reads only the zip directory and the ``.npy`` header. The offset is the absolute byte
    position of the array data in the file when the member is stored uncompressed (as
    ``np.savez`` writes it), else None.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo(f"{key}.npy")
            except KeyError:
                raise DataFileError(f"{path}: no array {key!r} (members: {', '.join(zf.namelist()[:8])})") from None
            with zf.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise DataFileError(f"{path}: {key}.npy uses .npy format version {version}; expected 1.0 or 2.0")
                header_len = member.tell()
        if info.compress_type != zipfile.ZIP_STORED or dtype.hasobject:
            return shape, dtype, fortran, None
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise DataFileError(f"{path}: damaged zip (no local header for {key}.npy)")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        offset = info.header_offset + 30 + name_len + extra_len + header_len
        needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset + needed > path.stat().st_size:
            raise DataFileError(f"{path}: truncated ({key} needs {needed} bytes); delete it and download it again")
        return shape, dtype, fortran, offset
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(
            f"{path}: cannot be read as an npz file ({type(err).__name__}: {err}); "
            f"it may be truncated: delete it and download it again"
        ) from err


def open_npz_member(path: str | os.PathLike, key: str) -> np.ndarray:
    """``key`` of an npz, memory-mapped when stored uncompressed, else loaded into memory."""
    shape, dtype, fortran, offset = npz_member_info(path, key)
    if offset is not None:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    with np.load(path, allow_pickle=False) as npz:
        return npz[key]


def write_official(path: str | os.PathLike, images: np.ndarray) -> Path:
    """Write an MPI3D npz as published: one array ``images`` uint8 ``[N, 64, 64, 3]``, ``np.savez``."""
    from ..io import atomic_path

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must be uint8 [N, 64, 64, 3], got {images.dtype} {list(images.shape)}")
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, images=images)
    return path


def infer_sizes(num_images: int) -> tuple[int, ...] | None:
    return KNOWN_LAYOUTS.get(int(num_images))


# ---------------------------------------------------------------------------------------
# The data sets


class MPI3D(GroundTruthData):
    """MPI3D, 3x64x64; seven latent factors (sizes inferred from the file or given).

    The family (abstract): one final class per published variant sets :attr:`name`, which
    names the file.
    """

    latent = tuple(range(7))
    observation_shape = (3, 64, 64)
    observations_deterministic = True  # one stored image per combination, no nuisance factor

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        strict: bool = True,
        factor_sizes: tuple[int, ...] | list[int] | None = None,
    ):
        self.data_dir_option = data_dir
        self.strict = bool(strict)
        if factor_sizes is not None:
            factor_sizes = tuple(int(s) for s in factor_sizes)
            if len(factor_sizes) != len(FACTOR_NAMES):
                raise ParameterError(f"{self.name}: factor_sizes needs {len(FACTOR_NAMES)} sizes ({', '.join(FACTOR_NAMES)}), got {list(factor_sizes)}")
        self.factor_sizes_option = factor_sizes
        self._space: FactorSpace | None = None
        self._images: np.ndarray | None = None
        self._path: Path | None = None

    @property
    def relative_path(self) -> str:
        return f"{self.name}/{self.name}.npz"

    def path(self) -> Path:
        path = find_file([self.relative_path], self.data_dir_option)
        if path is None:
            raise DataFileError(missing_file_message(self.name, [self.relative_path], self.data_dir_option))
        return path

    @property
    def space(self) -> FactorSpace:
        if self._space is not None:
            return self._space
        path = find_file([self.relative_path], self.data_dir_option)
        if path is None:  # nothing to read yet: describe the grid the official files have
            return FactorSpace(FACTOR_NAMES, self.factor_sizes_option or OFFICIAL_SIZES)
        try:
            self._space = self._check(path, npz_member_info(path, "images"))
        except DataFileError:  # reported by readiness() and raised by the first read
            return FactorSpace(FACTOR_NAMES, self.factor_sizes_option or OFFICIAL_SIZES)
        return self._space

    def _check(self, path: Path, member) -> FactorSpace:
        shape, dtype, fortran, _ = member
        if dtype != np.uint8 or len(shape) != 4 or tuple(shape[1:]) != IMAGE_SHAPE or fortran:
            raise DataFileError(f"{path}: 'images' must be uint8 [N, 64, 64, 3] in C order, got {dtype} {list(shape)}")
        n = shape[0]
        known = infer_sizes(n)
        sizes = self.factor_sizes_option or known
        if sizes is None:
            raise DataFileError(
                f"{path}: {n} images match no known MPI3D layout ({', '.join(f'{k:,}' for k in KNOWN_LAYOUTS)}); "
                f"give the factor sizes explicitly with factor_sizes=[...] (7 sizes, product {n})"
            )
        if int(np.prod(sizes, dtype=np.int64)) != n:
            raise DataFileError(f"{path}: factor sizes {list(sizes)} multiply to {int(np.prod(sizes))}, but the file holds {n} images")
        if self.strict and (known is None or tuple(sizes) != known):
            raise DataFileError(
                f"{path}: {n} images with factor sizes {list(sizes)} is not an official MPI3D layout "
                f"({', '.join(f'{k:,} -> {list(v)}' for k, v in KNOWN_LAYOUTS.items())}); pass strict=False to read a reduced grid"
            )
        return FactorSpace(FACTOR_NAMES, sizes)

    def _load(self) -> None:
        if self._images is not None:
            return
        path = self.path()
        self._space = self._check(path, npz_member_info(path, "images"))
        self._images, self._path = open_npz_member(path, "images"), path

    def prepare(self, *, progress: bool = True) -> Prepared:
        """Locate and check the file (header only) and map it; nothing is written."""
        self._load()
        how = "memory-mapped" if isinstance(self._images, np.memmap) else "compressed member: loaded into memory when used"
        message = (
            f"{self.name}: official file {self._path} checked ({self.space.num_combinations} images, "
            f"factor sizes {list(self.space.sizes)}, {how})"
        )
        return Prepared(self._path, False, message)

    def readiness(self) -> tuple[bool, str]:
        path = find_file([self.relative_path], self.data_dir_option)
        if path is None:
            return False, f"official file missing: {self.relative_path}; run `disentangled data download {self.name}`"
        try:
            shape, dtype, fortran, offset = npz_member_info(path, "images")
            space = self._check(path, (shape, dtype, fortran, offset))
        except DataFileError as err:
            return False, str(err)
        how = "memory-mapped" if offset is not None else "compressed: loaded into memory on first use"
        return True, f"official file {path} ({space.num_combinations:,} images, {how})"

    def describe(self) -> dict:
        info = {"name": self.name, "source": "official"}
        path = self._path or find_file([self.relative_path], self.data_dir_option)
        if path is not None:
            info["file"] = str(path)
            info["factor_sizes"] = list(self.space.sizes)
        return info

    def image_table(self):
        self._load()
        return self._images, 255.0

    def _render(self, full: np.ndarray, *, rng: Rng) -> np.ndarray:
        return self.table_observations(full)


class MPI3DToy(MPI3D):
    name = "mpi3d_toy"


class MPI3DRealistic(MPI3D):
    name = "mpi3d_realistic"


class MPI3DReal(MPI3D):
    name = "mpi3d_real"
