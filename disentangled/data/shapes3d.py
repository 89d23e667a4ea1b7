"""3D Shapes (Burgess & Kim 2018, DeepMind): 480,000 RGB 64x64 scenes, six factors.

Factors (row-major, orientation fastest), all latent:

    floor_hue 10, wall_hue 10, object_hue 10, scale 8, shape 4, orientation 15

Two sources, chosen explicitly and recorded by :meth:`Shapes3D.describe`:

* ``source="official"`` (default): DeepMind's ``3dshapes/3dshapes.h5`` (``images``
  uint8 ``[480000, 64, 64, 3]``, ``labels`` float64 ``[480000, 6]`` holding factor *values*),
  or disentanglement_lib's internal npz layout
  ``3dshapes/look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi.npz``
  (``images`` shaped ``[10, 10, 10, 8, 4, 15, 64, 64, 3]``). Class indices come from the label
  values (sorted unique values per column), checked to enumerate the row-major grid; no
  value list is hard-coded. Images stay uint8 on disk and are converted per batch (dlib
  turns the whole set into float32, ~23.6 GB of RAM). A contiguous dataset or an
  uncompressed npz member is memory-mapped; the public h5 is compressed, so it is read
  image by image in sorted order, or -- after ``disentangled data prepare shapes3d`` --
  from an uncompressed uint8 copy ``<data dir>/cache/shapes3d_<fingerprint>.npy``.
* ``source="procedural"``: this project's look-alike (:mod:`disentangled.data.shapes3d_render`),
  not the real pixels. ``disentangled data prepare shapes3d --source procedural`` writes the
  whole grid to ``<data dir>/procedural/shapes3d_procedural_v<version>.h5`` in the official
  ``images``/``labels`` layout (uncompressed, 5.9 GB, memory-mapped afterwards); without it
  the images are rendered on the fly, identical pixel for pixel.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from . import shapes3d_render
from .base import FactorSpace, GroundTruthData, Prepared, Rng, as_unit_float, gather_rows
from .mpi3d import npz_member_info, open_npz_member
from .paths import WRITABLE_FIX, DataFileError, data_dir, find_file, missing_file_message
from .smallnorb import fingerprint
from ..errors import ParameterError

NAME = "shapes3d"
OFFICIAL_H5 = "3dshapes/3dshapes.h5"
DLIB_NPZ = "3dshapes/look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi.npz"
CANDIDATES = [OFFICIAL_H5, DLIB_NPZ]
OFFICIAL_SPACE = FactorSpace(shapes3d_render.FACTOR_NAMES, shapes3d_render.FACTOR_SIZES)
IMAGE_SHAPE = (64, 64, 3)
SOURCES = ("official", "procedural")


def procedural_path(explicit_data_dir=None) -> Path:
    return data_dir(explicit_data_dir) / "procedural" / f"shapes3d_procedural_v{shapes3d_render.RENDERER_VERSION}.h5"


# ---------------------------------------------------------------------------------------
# Labels -> class indices


def classes_from_labels(path, labels: np.ndarray, *, strict: bool) -> tuple[np.ndarray, FactorSpace]:
    """Class indices ``[N, 6]`` (rank of each value among its column's sorted unique values)
    and the factor space, checked to be the row-major grid of the rows."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != 6 or not np.issubdtype(labels.dtype, np.number):
        raise DataFileError(f"{path}: 'labels' must be numeric [N, 6] ({', '.join(OFFICIAL_SPACE.names)}), got {labels.dtype} {list(labels.shape)}")
    if not np.all(np.isfinite(labels)):
        raise DataFileError(f"{path}: 'labels' holds NaN or infinite values")
    classes = np.empty(labels.shape, dtype=np.int64)
    sizes = []
    for k in range(6):
        uniq, inverse = np.unique(np.round(labels[:, k].astype(np.float64), 6), return_inverse=True)
        classes[:, k] = inverse.reshape(-1)
        sizes.append(len(uniq))
    space = FactorSpace(OFFICIAL_SPACE.names, tuple(sizes))
    check_sizes(path, space, labels.shape[0], strict=strict)
    if not np.array_equal(space.index(classes), np.arange(labels.shape[0])):
        raise DataFileError(
            f"{path}: the rows are not the row-major factor grid {list(space.sizes)} "
            f"(orientation fastest); the file is damaged or not in the official order"
        )
    return classes, space


def check_sizes(path, space: FactorSpace, num_images: int, *, strict: bool) -> None:
    if strict and space.sizes != OFFICIAL_SPACE.sizes:
        raise DataFileError(
            f"{path}: factor sizes {list(space.sizes)} differ from the official {list(OFFICIAL_SPACE.sizes)} "
            f"(pass strict=False to read a reduced grid)"
        )
    if space.num_combinations != num_images:
        raise DataFileError(f"{path}: factor sizes {list(space.sizes)} make {space.num_combinations} combinations, but the file holds {num_images} images")


def official_labels(space: FactorSpace = OFFICIAL_SPACE) -> np.ndarray:
    """The ``labels`` (factor values) of every row of ``space`` (the first values of each
    factor for a reduced grid): hues 0.0..0.9, scale 0.75..1.25, shape 0..3, orientation -30..30."""
    for name, size, full in zip(space.names, space.sizes, OFFICIAL_SPACE.sizes):
        if size > full:
            raise ParameterError(f"factor {name!r}: {size} values, the official grid has {full}")
    return shapes3d_render.label_values(space.all_factors())


# ---------------------------------------------------------------------------------------
# Reading and writing


class ImageStore:
    """uint8 ``[N, 64, 64, 3]`` images by row, from an h5 dataset, a memory map or an array."""

    def __init__(self, path: Path, *, array: np.ndarray | None = None, h5_key: str | None = None):
        self.path = path
        self.array = array
        self.h5_key = h5_key
        self._file = None
        self._lock = threading.Lock()

    @property
    def how(self) -> str:
        if self.array is None:
            return "read image by image from the compressed h5"
        return "memory-mapped" if isinstance(self.array, np.memmap) else "in memory"

    def gather(self, index: np.ndarray) -> np.ndarray:
        if self.array is not None:
            return gather_rows(self.array, index)
        import h5py

        with self._lock:
            if self._file is None:
                self._file = h5py.File(self.path, "r", rdcc_nbytes=64 << 20)
            dataset = self._file[self.h5_key]
            rows, inverse = np.unique(index, return_inverse=True)
            out = np.empty((len(rows),) + IMAGE_SHAPE, dtype=np.uint8)
            for j, row in enumerate(rows):  # single reads in order: far faster than h5py fancy indexing
                out[j] = dataset[int(row)]
        return out[inverse.reshape(-1)]

    def __getstate__(self):  # picklable for worker processes: reopen lazily there
        state = dict(self.__dict__)
        state["_file"], state["_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def read_official(path: str | os.PathLike, *, strict: bool = True) -> tuple[ImageStore, FactorSpace]:
    """Open an official h5 or dlib-layout npz: the image store (nothing loaded) and the space."""
    path = Path(path)
    if path.suffix == ".npz":
        return _read_npz(path, strict=strict)
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for key in ("images", "labels"):
                if key not in f:
                    raise DataFileError(f"{path}: missing dataset {key!r}; expected DeepMind's 3dshapes.h5 layout (images, labels)")
            images = f["images"]
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
                raise DataFileError(f"{path}: 'images' must be uint8 [N, 64, 64, 3], got {images.dtype} {list(images.shape)}")
            num = images.shape[0]
            offset = images.id.get_offset() if images.chunks is None else None  # contiguous: no filters
            labels = f["labels"][...]
    except OSError as err:
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(
            f"{path}: cannot be read as HDF5 ({err}); it may be truncated: delete it and download it again "
            f"with `disentangled data download {NAME}`"
        ) from err
    if labels.shape[0] != num:
        raise DataFileError(f"{path}: {num} images but {labels.shape[0]} label rows")
    _, space = classes_from_labels(path, labels, strict=strict)
    if offset is not None:
        array = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(num,) + IMAGE_SHAPE)
        return ImageStore(path, array=array), space
    return ImageStore(path, h5_key="images"), space


def _read_npz(path: Path, *, strict: bool) -> tuple[ImageStore, FactorSpace]:
    shape, dtype, fortran, _ = npz_member_info(path, "images")
    if dtype != np.uint8 or len(shape) not in (4, 9) or tuple(shape[-3:]) != IMAGE_SHAPE or fortran:
        raise DataFileError(
            f"{path}: 'images' must be uint8 [10, 10, 10, 8, 4, 15, 64, 64, 3] (or [N, 64, 64, 3]), got {dtype} {list(shape)}"
        )
    num = int(np.prod(shape[:-3], dtype=np.int64))
    labels = None
    with np.load(path, allow_pickle=False) as npz:  # the zip was checked by npz_member_info
        if "labels" in npz.files:
            labels = npz["labels"]
            if labels.size % 6:
                raise DataFileError(f"{path}: 'labels' {list(labels.shape)} must end in 6 factor values per image")
            labels = labels.reshape(-1, 6)
    if labels is not None:
        _, space = classes_from_labels(path, labels, strict=strict)
        check_sizes(path, space, num, strict=strict)
        if len(shape) == 9 and tuple(shape[:6]) != space.sizes:
            raise DataFileError(f"{path}: 'images' grid {list(shape[:6])} disagrees with the labels' {list(space.sizes)}")
    elif len(shape) == 9:
        space = FactorSpace(OFFICIAL_SPACE.names, tuple(shape[:6]))
        check_sizes(path, space, num, strict=strict)
    else:
        raise DataFileError(f"{path}: flat 'images' [N, 64, 64, 3] need 'labels' to give the factor grid")
    array = open_npz_member(path, "images").reshape((num,) + IMAGE_SHAPE)
    return ImageStore(path, array=array), space


def write_official(path: str | os.PathLike, images: np.ndarray, space: FactorSpace = OFFICIAL_SPACE, labels: np.ndarray | None = None) -> Path:
    """Write images in DeepMind's h5 layout (``.h5``) or disentanglement_lib's npz (``.npz``).

    h5: ``images`` uint8 ``[N, 64, 64, 3]`` and ``labels`` float64 ``[N, 6]`` (gzip-compressed,
    chunked, as a downloaded file would be); npz: ``images`` ``[*sizes, 64, 64, 3]`` and
    ``labels`` ``[*sizes, 6]`` via ``np.savez``. ``labels`` default to :func:`official_labels`.
    """
    from ..io import atomic_path

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape != (space.num_combinations,) + IMAGE_SHAPE:
        raise ValueError(f"images must be uint8 [{space.num_combinations}, 64, 64, 3] for sizes {list(space.sizes)}, got {images.dtype} {list(images.shape)}")
    labels = official_labels(space) if labels is None else np.asarray(labels, dtype=np.float64)
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, images=images.reshape(space.sizes + IMAGE_SHAPE), labels=labels.reshape(space.sizes + (6,)))
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                f.create_dataset("images", data=images, chunks=(min(len(images), 100),) + IMAGE_SHAPE, compression="gzip")
                f.create_dataset("labels", data=labels)
    return path


def write_procedural(explicit_data_dir=None, *, progress: bool = True, blocks_per_chunk: int = 10) -> Path:
    """Render the whole grid into ``procedural/shapes3d_procedural_v<version>.h5``.

    Official layout (``images`` uint8 [480000, 64, 64, 3], contiguous and uncompressed so it
    can be memory-mapped; ``labels`` float64 [480000, 6]) plus the attributes ``generator``
    and ``renderer_version``. Written under a temporary name and renamed when complete.
    """
    import h5py
    from tqdm import tqdm

    from ..io import atomic_path, check_writable

    path = procedural_path(explicit_data_dir)
    if path.is_file() and _procedural_file_ok(path):
        return path
    check_writable(path.parent, fix=WRITABLE_FIX)  # before minutes of ray casting and rendering
    keys = np.stack(np.unravel_index(np.arange(8 * 4 * 15), (8, 4, 15)), axis=1)
    store = shapes3d_render.layers()
    for key in tqdm(keys, unit="layer", desc="ray-casting Shapes3D layers", disable=not progress):
        store.get(*(int(k) for k in key))
    total = OFFICIAL_SPACE.num_combinations
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["generator"] = shapes3d_render.GENERATOR
            f.attrs["renderer_version"] = shapes3d_render.RENDERER_VERSION
            f.attrs["note"] = "procedural look-alike of DeepMind 3D Shapes, not the real data"
            f.create_dataset("labels", data=official_labels())
            images = f.create_dataset("images", shape=(total,) + IMAGE_SHAPE, dtype=np.uint8)
            with tqdm(total=total, unit="img", unit_scale=True, desc="rendering Shapes3D", disable=not progress) as bar:
                for start, chunk in shapes3d_render.render_grid_chunks(blocks_per_chunk=blocks_per_chunk):
                    images[start : start + len(chunk)] = chunk
                    bar.update(len(chunk))
    return path


def _procedural_file_ok(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return (
                f.attrs.get("generator") == shapes3d_render.GENERATOR
                and int(f.attrs.get("renderer_version", -1)) == shapes3d_render.RENDERER_VERSION
                and f["images"].shape == (OFFICIAL_SPACE.num_combinations,) + IMAGE_SHAPE
            )
    except (OSError, KeyError):
        return False


def convert_to_npy(store: ImageStore, cache: Path, *, progress: bool = True, chunk: int = 4800) -> np.ndarray:
    """Copy the images of a compressed h5 into an uncompressed ``.npy`` (atomic) and map it."""
    import h5py
    from tqdm import tqdm

    from ..io import atomic_path

    with h5py.File(store.path, "r") as f:
        images = f[store.h5_key]
        with atomic_path(cache, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=images.shape)
            with tqdm(total=images.shape[0], unit="img", unit_scale=True, desc="unpacking 3dshapes.h5", disable=not progress) as bar:
                for start in range(0, images.shape[0], chunk):
                    out[start : start + chunk] = images[start : start + chunk]
                    bar.update(min(chunk, images.shape[0] - start))
            out.flush()
            del out
    return np.load(cache, mmap_mode="r")


# ---------------------------------------------------------------------------------------
# The data set


class Shapes3D(GroundTruthData):
    """3D Shapes, 3x64x64; latent factors floor_hue, wall_hue, object_hue, scale, shape, orientation."""

    name = NAME
    latent = tuple(range(6))
    observation_shape = (3, 64, 64)
    # one image per combination (stored or rendered without randomness), no nuisance factor
    observations_deterministic = True

    def __init__(self, source: str = "official", data_dir: str | os.PathLike | None = None, strict: bool = True):
        if source not in SOURCES:
            raise ParameterError(f"{self.name}: source must be one of {list(SOURCES)}, got {source!r}")
        self.source = source
        self.data_dir_option = data_dir
        self.strict = bool(strict)
        self._store: ImageStore | None = None
        self._space: FactorSpace | None = None
        self._read_from: Path | None = None  # the file the images come from (None: rendered on the fly)
        self._loaded = False

    @property
    def space(self) -> FactorSpace:
        if self.source == "procedural" or self.strict:
            return OFFICIAL_SPACE
        self._load()
        return self._space

    def official_path(self) -> Path:
        path = find_file(CANDIDATES, self.data_dir_option)
        if path is None:
            raise DataFileError(missing_file_message(NAME, CANDIDATES, self.data_dir_option, procedural=True))
        return path

    def cache_path(self, path: Path) -> Path:
        return data_dir(self.data_dir_option) / "cache" / f"{NAME}_{fingerprint([path], 'uint8-npy')}.npy"

    def _load(self) -> None:
        if self._loaded:
            return
        if self.source == "procedural":
            path = procedural_path(self.data_dir_option)
            if path.is_file():
                if not _procedural_file_ok(path):
                    raise DataFileError(
                        f"{path}: not written by renderer v{shapes3d_render.RENDERER_VERSION} of {shapes3d_render.GENERATOR}; "
                        f"delete it and run `disentangled data prepare {NAME} --source procedural`"
                    )
                self._store, self._space = read_official(path, strict=True)
                self._read_from = path
            else:
                self._store, self._space, self._read_from = None, OFFICIAL_SPACE, None
            self._loaded = True
            return
        path = self.official_path()
        store, space = read_official(path, strict=self.strict)
        read_from = path
        if store.array is None:
            cache = self.cache_path(path)
            if cache.is_file():
                try:
                    array = np.load(cache, mmap_mode="r")
                except (ValueError, OSError):
                    array = None
                if array is not None and array.shape == (space.num_combinations,) + IMAGE_SHAPE and array.dtype == np.uint8:
                    store, read_from = ImageStore(path, array=array), cache
        self._store, self._space, self._read_from, self._loaded = store, space, read_from, True

    def prepare(self, *, progress: bool = True) -> Prepared:
        """Make the data fast to read: render the procedural grid into one file, or unpack a
        compressed official h5 into a memory-mappable copy; an official file that can be
        memory-mapped is only checked."""
        if self.source == "procedural":
            path = procedural_path(self.data_dir_option)
            built = not (path.is_file() and _procedural_file_ok(path))
            write_procedural(self.data_dir_option, progress=progress)
            self._loaded = False
            self._load()
            generator = f"{shapes3d_render.GENERATOR} v{shapes3d_render.RENDERER_VERSION}"
            return Prepared(path, built, f"{NAME}: procedural look-alike ({generator}) at {path}")
        self._load()
        path, n = self._store.path, self._space.num_combinations
        if self._store.array is None:
            cache = self.cache_path(path)
            self._store = ImageStore(path, array=convert_to_npy(self._store, cache, progress=progress))
            self._read_from = cache
            return Prepared(cache, True, f"{NAME}: official file {path} checked ({n} images), unpacked to {cache} for fast reads")
        return Prepared(self._read_from, False, f"{NAME}: official file {path} checked ({n} images, {self._store.how})")

    def readiness(self) -> tuple[bool, str]:
        if self.source == "procedural":
            path = procedural_path(self.data_dir_option)
            if path.is_file():
                return True, f"procedural, prepared at {path}"
            return True, "procedural, rendered on the fly (prepare it to write the whole grid)"
        path = find_file(CANDIDATES, self.data_dir_option)
        if path is None:
            return False, f"official file missing: {OFFICIAL_H5}; run `disentangled data download {NAME}` or use --source procedural"
        return True, f"official file {path}"

    def describe(self) -> dict:
        info = {"name": self.name, "source": self.source}
        if self.source == "procedural":
            info["generator"] = shapes3d_render.GENERATOR
            info["renderer_version"] = shapes3d_render.RENDERER_VERSION
            path = procedural_path(self.data_dir_option)
            if path.is_file():
                info["file"] = str(path)
            return info
        path = find_file(CANDIDATES, self.data_dir_option)
        if path is not None:
            info["file"] = str(path)
        return info

    def image_table(self):
        self._load()
        if self._store is None or self._store.array is None:  # rendered on the fly, or read from HDF5
            return None
        return self._store.array, 255.0

    def _render(self, full: np.ndarray, *, rng: Rng) -> np.ndarray:
        if self.image_table() is not None:
            return self.table_observations(full)
        if self._store is None:
            images = shapes3d_render.render(full)
        else:  # an HDF5 dataset read row by row
            images = self._store.gather(self._space.index(full))
        return as_unit_float(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), 255)
