"""SmallNORB (LeCun, Huang & Bottou 2004) as the study uses it: 48,600 grey 64x64 images.

The official release is six NYU *binary-matrix* files (plain, or gzipped ``.mat.gz`` as
published) under ``small_norb/`` in the data directory::

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat

``dat`` is a byte matrix ``[24300, 2, 96, 96]`` (stereo pairs), ``cat`` int32 ``[24300]``
(category), ``info`` int32 ``[24300, 4]`` (instance, elevation, azimuth code 0,2,..,34,
lighting). As disentanglement_lib does, both splits are concatenated, only the first camera
is kept, each image is shrunk 96 -> 64 with a Lanczos filter, and the factors are

    category 5, instance 10 (nuisance), elevation 9, azimuth 18 (code / 2), lighting 6

stored in row-major grid order through a lookup from factor code to file row; the files'
own order is not the grid order, so the lookup is checked to cover every cell once.

Differences from disentanglement_lib, on purpose:

* pixels are read as **unsigned** bytes and resized as Pillow mode ``"L"``, which clips the
  Lanczos overshoot. dlib reads the byte matrix as int8 and, on current Pillow, resizes a
  32-bit ``"I"`` image whose Lanczos ringing is not clipped, so its floats fall slightly
  outside [0, 1] (down to about -20/255 on random data) and depend on the Pillow version.
* the resize runs once: the resized uint8 grid is cached in
  ``<data dir>/cache/smallnorb_<fingerprint>.npz`` (written under a temporary name, then
  renamed), the fingerprint covering the source files' names, sizes and first/last MiB.
  Observations are converted to float per batch.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .base import FactorSpace, GroundTruthData, Prepared, Rng
from .paths import DataFileError, data_dir, find_file, missing_file_message

NAME = "smallnorb"
OFFICIAL_SPACE = FactorSpace(("category", "instance", "elevation", "azimuth", "lighting"), (5, 10, 9, 18, 6))
LATENT = (0, 2, 3, 4)
SPLITS = {
    "training": "small_norb/smallnorb-5x46789x9x18x6x2x96x96-training",
    "testing": "small_norb/smallnorb-5x01235x9x18x6x2x96x96-testing",
}
KINDS = ("dat", "cat", "info")
OFFICIAL_ROWS = 24300  # per split
OFFICIAL_IMAGE = (96, 96)
SIZE = 64
RESIZE_METHOD = "pillow-L-lanczos-64"  # part of the cache fingerprint
CACHE_FORMAT = 1

# Magic numbers of the NORB binary-matrix format (little-endian int32).
MAGIC_DTYPES = {
    0x1E3D4C55: np.dtype(np.uint8),  # "byte matrix" (dlib reads it as int8; the pixels are 0..255)
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C56: np.dtype("<i2"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
}
DTYPE_MAGICS = {dtype: magic for magic, dtype in MAGIC_DTYPES.items()}
_MAGIC_NAMES = {
    0x1E3D4C55: "byte matrix",
    0x1E3D4C54: "int32 matrix",
    0x1E3D4C56: "int16 matrix",
    0x1E3D4C51: "float32 matrix",
    0x1E3D4C53: "float64 matrix",
}


def relative_candidates(split: str, kind: str) -> list[str]:
    """Where one official file may lie under a data directory: plain first, then gzipped."""
    stem = f"{SPLITS[split]}-{kind}.mat"
    return [stem, stem + ".gz"]


# ---------------------------------------------------------------------------------------
# The NORB binary-matrix format


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def read_header(fh, path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse a binary-matrix header: ``(dtype, shape, header bytes)``.

    Header: int32 magic, int32 ndim, then ``max(3, ndim)`` int32 dimensions (unused slots
    of 1-D and 2-D matrices are present and hold 1), all little-endian.
    """
    head = fh.read(8)
    if len(head) < 8:
        raise DataFileError(f"{path}: only {len(head)} bytes; a NORB binary matrix starts with an 8-byte magic/ndim header")
    magic, ndim = struct.unpack("<Ii", head)
    if magic not in MAGIC_DTYPES:
        expected = ", ".join(f"0x{m:08X} ({n})" for m, n in _MAGIC_NAMES.items())
        raise DataFileError(
            f"{path}: magic number 0x{magic:08X} is not a NORB binary matrix (expected one of {expected}); "
            f"the file is damaged or not a SmallNORB .mat file (a gzipped file must end in .gz)"
        )
    if not 1 <= ndim <= 16:
        raise DataFileError(f"{path}: NORB header gives ndim={ndim}; expected 1..16")
    slots = max(3, ndim)
    raw = fh.read(4 * slots)
    if len(raw) < 4 * slots:
        raise DataFileError(f"{path}: truncated NORB header (expected {slots} dimension sizes)")
    dims = struct.unpack(f"<{slots}i", raw)
    shape = tuple(int(d) for d in dims[:ndim])
    if any(d < 0 for d in shape):
        raise DataFileError(f"{path}: negative dimension in NORB header {shape}")
    return MAGIC_DTYPES[magic], shape, 8 + 4 * slots


def read_matrix(path: str | os.PathLike) -> np.ndarray:
    """A whole binary-matrix file (plain or ``.gz``) as an array of its dtype and shape."""
    path = Path(path)
    try:
        with _open(path) as fh:
            dtype, shape, _ = read_header(fh, path)
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            data = fh.read(expected + 1)
    except (OSError, EOFError) as err:
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(f"{path}: cannot be read as a NORB binary matrix ({type(err).__name__}: {err})") from err
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataFileError(
            f"{path}: {what}: header {list(shape)} {dtype} needs {expected} data bytes; "
            f"delete it and download it again with `disentangled data download {NAME}`"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def write_matrix(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as a NORB binary matrix (gzipped when ``path`` ends in ``.gz``).

    The layout is the official one: magic for the dtype (uint8 -> byte matrix 0x1E3D4C55,
    int32 -> 0x1E3D4C54, ...), ndim, ``max(3, ndim)`` dimensions padded with 1, raw C-order
    little-endian data.
    """
    from ..io import atomic_path

    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in DTYPE_MAGICS:
        raise ValueError(f"NORB matrices hold uint8, int32, int16, float32 or float64, not {array.dtype}")
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = struct.pack(f"<Ii{len(dims)}i", DTYPE_MAGICS[dtype], array.ndim, *dims)
    payload = np.ascontiguousarray(array, dtype=dtype).tobytes()
    with atomic_path(path) as tmp:
        if path.name.endswith(".gz"):
            with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
                fh.write(header + payload)
        else:
            tmp.write_bytes(header + payload)
    return path


def iter_first_camera(path: str | os.PathLike, *, chunk: int = 2048, strict: bool = True) -> Iterator[np.ndarray]:
    """Camera-0 images of a ``dat`` file, uint8 ``[n, H, W]`` chunks in file order."""
    path = Path(path)
    with _open(path) as fh:
        dtype, shape, header = read_header(fh, path)
        _check_dat(path, dtype, shape, strict)
        rows, cams, height, width = shape
        per_row = cams * height * width
        if not path.name.endswith(".gz"):
            size = path.stat().st_size
            if size != header + rows * per_row:
                raise DataFileError(
                    f"{path}: {size} bytes but its header {list(shape)} needs {header + rows * per_row}; "
                    f"the file is truncated: delete it and download it again with `disentangled data download {NAME}`"
                )
            mm = np.memmap(path, dtype=np.uint8, mode="r", offset=header, shape=shape)
            for start in range(0, rows, chunk):
                yield np.array(mm[start : start + chunk, 0])
            del mm
            return
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            data = fh.read(n * per_row)
            if len(data) != n * per_row:
                raise DataFileError(f"{path}: truncated after {start} of {rows} images; download it again")
            yield np.frombuffer(data, dtype=np.uint8).reshape(n, cams, height, width)[:, 0].copy()


def _check_dat(path, dtype, shape, strict) -> None:
    if dtype != np.uint8 or len(shape) != 4 or shape[1] < 1:
        raise DataFileError(f"{path}: expected a byte matrix [N, 2, 96, 96] (magic 0x1E3D4C55), got {dtype} {list(shape)}")
    if strict and tuple(shape) != (OFFICIAL_ROWS, 2, *OFFICIAL_IMAGE):
        raise DataFileError(
            f"{path}: shape {list(shape)} differs from the official [24300, 2, 96, 96] "
            f"(pass strict=False to read a reduced grid)"
        )


# ---------------------------------------------------------------------------------------
# Writing the official files (fixtures), reading them into the factor grid


def write_split(root: str | os.PathLike, split: str, dat: np.ndarray, cat: np.ndarray, info: np.ndarray, *, gzipped: bool = False) -> list[Path]:
    """Write one split's three files under ``root`` with the official names and layout.

    ``dat`` uint8 ``[N, 2, H, W]``, ``cat`` ``[N]`` and ``info`` ``[N, 4]`` (written as int32;
    ``info`` columns: instance, elevation, azimuth code (even, 0..34), lighting).
    """
    dat = np.asarray(dat)
    if dat.dtype != np.uint8 or dat.ndim != 4:
        raise ValueError(f"dat must be uint8 [N, 2, H, W], got {dat.dtype} {list(dat.shape)}")
    n = dat.shape[0]
    cat = np.asarray(cat, dtype=np.int32)
    info = np.asarray(info, dtype=np.int32)
    if cat.shape != (n,) or info.shape != (n, 4):
        raise ValueError(f"cat must be [{n}] and info [{n}, 4], got {list(cat.shape)} and {list(info.shape)}")
    suffix = ".gz" if gzipped else ""
    root = Path(root)
    return [
        write_matrix(root / (relative_candidates(split, kind)[0] + suffix), arr)
        for kind, arr in zip(KINDS, (dat, cat, info))
    ]


def split_features(cat_path, info_path, *, rows: int) -> np.ndarray:
    """Factor codes ``[N, 5]`` (category, instance, elevation, azimuth/2, lighting) of one split."""
    cat = read_matrix(cat_path)
    info = read_matrix(info_path)
    if cat.dtype != np.int32 or cat.shape != (rows,):
        raise DataFileError(f"{cat_path}: expected an int32 matrix [{rows}] (magic 0x1E3D4C54), got {cat.dtype} {list(cat.shape)}")
    if info.dtype != np.int32 or info.shape != (rows, 4):
        raise DataFileError(f"{info_path}: expected an int32 matrix [{rows}, 4] (magic 0x1E3D4C54), got {info.dtype} {list(info.shape)}")
    if np.any(info[:, 2] % 2):
        raise DataFileError(f"{info_path}: azimuth codes must be even (0, 2, ..., 34), found {int(info[info[:, 2] % 2 == 1, 2][0])}")
    return np.stack([cat, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]], axis=1).astype(np.int64)


def read_official(files: dict[str, dict[str, Path]], *, strict: bool = True, progress: bool = False) -> tuple[np.ndarray, FactorSpace]:
    """Resized images uint8 ``[N, 64, 64]`` in row-major grid order, and the factor space.

    ``files[split][kind]`` is the path of each of the six files. Factor sizes come from the
    codes (``max + 1``) unless ``strict``, which asserts the official [5, 10, 9, 18, 6].
    Every grid cell must occur exactly once across the two splits.
    """
    features, images = [], []
    for split in SPLITS:
        paths = files[split]
        with _open(Path(paths["dat"])) as fh:
            _, shape, _ = read_header(fh, paths["dat"])
        rows = shape[0]
        features.append(split_features(paths["cat"], paths["info"], rows=rows))
        images.append(resize_all(iter_first_camera(paths["dat"], strict=strict), rows, progress=progress, desc=f"resizing SmallNORB {split}"))
    codes = np.concatenate(features)
    imgs = np.concatenate(images)
    names = ", ".join(str(files[s][k]) for s in SPLITS for k in ("cat", "info"))
    if strict:
        space = OFFICIAL_SPACE
    else:
        space = FactorSpace(OFFICIAL_SPACE.names, tuple(int(s) for s in codes.max(axis=0) + 1))
    if codes.min() < 0:
        raise DataFileError(f"{names}: negative factor codes; expected the SmallNORB layout")
    try:
        index = space.index(codes)
    except ValueError as err:
        raise DataFileError(f"{names}: {err} (the official factor sizes are {list(OFFICIAL_SPACE.sizes)})") from err
    counts = np.bincount(index, minlength=space.num_combinations)
    if len(codes) != space.num_combinations or np.any(counts != 1):
        missing, repeated = int(np.sum(counts == 0)), int(np.sum(counts > 1))
        raise DataFileError(
            f"{names}: the images do not cover the factor grid {list(space.sizes)} exactly once "
            f"({len(codes)} images, {missing} combinations missing, {repeated} repeated)"
        )
    grid = np.empty_like(imgs)
    grid[index] = imgs
    return grid, space


# ---------------------------------------------------------------------------------------
# Resizing and the resize cache (shared with Cars3D)


def resize_lanczos(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """uint8 ``[N, H, W]`` (grey, Pillow "L") or ``[N, H, W, 3]`` (RGB) -> ``[N, size, size(, 3)]``.

    Pillow's LANCZOS on 8-bit images clips to 0..255, so the result stays in range.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"resize_lanczos needs uint8 images, got {images.dtype}")
    out = np.empty((images.shape[0], size, size) + images.shape[3:], dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size, size), Image.LANCZOS))
    return out


def resize_all(chunks: Iterator[np.ndarray], total: int, *, progress: bool = False, desc: str = "resizing") -> np.ndarray:
    from tqdm import tqdm

    parts = []
    with tqdm(total=total, unit="img", desc=desc, disable=not progress) as bar:
        for chunk in chunks:
            parts.append(resize_lanczos(chunk))
            bar.update(len(chunk))
    if not parts:
        return np.zeros((0, SIZE, SIZE), dtype=np.uint8)
    return np.concatenate(parts)


def fingerprint(paths: Sequence[Path], method: str) -> str:
    """A short hash of the source files (name, size, first and last MiB) and the method."""
    h = hashlib.sha256(f"format={CACHE_FORMAT};method={method}".encode())
    block = 1 << 20
    for path in paths:
        path = Path(path)
        size = path.stat().st_size
        h.update(f";{path.name}:{size}:".encode())
        with open(path, "rb") as fh:
            h.update(fh.read(block))
            if size > block:
                fh.seek(max(block, size - block))
                h.update(fh.read(block))
    return h.hexdigest()[:16]


def load_cache(path: Path) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """``(images, factor sizes)`` of a complete cache file, or None if absent or unusable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            sizes = tuple(int(s) for s in npz["factor_sizes"])
            images = npz["images"]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile):
        return None
    if images.dtype != np.uint8 or images.shape[0] != int(np.prod(sizes, dtype=np.int64)):
        return None
    return images, sizes


def cached_grid(path: Path, build: Callable[[], tuple[np.ndarray, FactorSpace]]) -> tuple[np.ndarray, tuple[int, ...], bool]:
    """Images and factor sizes from the cache ``path``, building and writing it if needed.

    Returns ``(images, sizes, built)``. The cache is written under a temporary name and
    renamed, so an interrupted run leaves no file that could pass for a complete one; an
    unreadable or inconsistent cache is rebuilt.
    """
    from ..io import atomic_path

    found = load_cache(path)
    if found is not None:
        return found[0], found[1], False
    images, space = build()
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, images=images, factor_sizes=np.asarray(space.sizes, dtype=np.int64))
    return images, space.sizes, True


def prepared_resize(name: str, num_images: int, cache: Path, built: bool) -> Prepared:
    """What preparing a data set resized once into ``cache`` did (SmallNORB, Cars3D)."""
    done = "resized and cached at" if built else "resized cache already at"
    return Prepared(cache, built, f"{name}: official files checked ({num_images} images), {done} {cache}")


# ---------------------------------------------------------------------------------------
# The data set


class SmallNORB(GroundTruthData):
    """SmallNORB, 1x64x64; latent factors category, elevation, azimuth, lighting (instance is nuisance)."""

    name = NAME
    latent = LATENT
    observation_shape = (1, SIZE, SIZE)
    observations_deterministic = False  # the instance is a nuisance factor, drawn from rng

    def __init__(self, data_dir: str | os.PathLike | None = None, strict: bool = True):
        self.data_dir_option = data_dir
        self.strict = bool(strict)
        self._images: np.ndarray | None = None
        self._space: FactorSpace | None = None
        self._cache: Path | None = None

    @property
    def space(self) -> FactorSpace:
        if self.strict:
            return OFFICIAL_SPACE
        self._load()
        return self._space

    def find_files(self) -> tuple[dict[str, dict[str, Path]], list[list[str]]]:
        """The six files found, and the candidate names of any missing ones."""
        found: dict[str, dict[str, Path]] = {split: {} for split in SPLITS}
        missing = []
        for split in SPLITS:
            for kind in KINDS:
                candidates = relative_candidates(split, kind)
                path = find_file(candidates, self.data_dir_option)
                if path is None:
                    missing.append(candidates)
                else:
                    found[split][kind] = path
        return found, missing

    def files(self) -> dict[str, dict[str, Path]]:
        found, missing = self.find_files()
        if missing:
            raise DataFileError(missing_file_message(NAME, [c for pair in missing for c in pair], self.data_dir_option))
        return found

    def cache_path(self) -> Path:
        files = self.files()
        paths = [files[s][k] for s in SPLITS for k in KINDS]
        return data_dir(self.data_dir_option) / "cache" / f"{NAME}_{fingerprint(paths, RESIZE_METHOD)}.npz"

    def prepare(self, *, progress: bool = True) -> Prepared:
        """Check the files and build the resize cache if it is not there yet."""
        built = self._load(progress=progress)
        return prepared_resize(self.name, self.space.num_combinations, self._cache, built)

    def _load(self, *, progress: bool = False) -> bool:
        if self._images is not None:
            return False
        files = self.files()
        self._cache = self.cache_path()
        # the cache is built leniently, then checked against the mode asked for
        images, sizes, built = cached_grid(self._cache, lambda: read_official(files, strict=self.strict, progress=progress))
        if self.strict and sizes != OFFICIAL_SPACE.sizes:
            raise DataFileError(
                f"{files['training']['dat'].parent}: factor sizes {list(sizes)} differ from the official "
                f"{list(OFFICIAL_SPACE.sizes)} (pass strict=False to read a reduced grid)"
            )
        if images.shape[1:] != (SIZE, SIZE):
            raise DataFileError(f"{self._cache}: cached images are {list(images.shape)}, expected [N, 64, 64]; delete the file")
        self._images, self._space = images, FactorSpace(OFFICIAL_SPACE.names, sizes)
        return built

    def readiness(self) -> tuple[bool, str]:
        found, missing = self.find_files()
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            return False, f"official file missing: {missing[0][0]}{more}; run `disentangled data download {NAME}`"
        where = found["training"]["dat"].parent
        cache = self.cache_path()
        if cache.is_file():
            return True, f"official files in {where}, resized cache {cache}"
        return True, f"official files in {where} (the first use resizes them once; `data prepare` does it now)"

    def describe(self) -> dict:
        info = {"name": self.name, "source": "official", "resize": RESIZE_METHOD}
        found, missing = self.find_files()
        if not missing:
            info["files"] = [str(found[s][k]) for s in SPLITS for k in KINDS]
        if self._cache is not None:
            info["cache"] = str(self._cache)
        return info

    def image_table(self):
        self._load()
        return self._images, 255.0

    def _render(self, full: np.ndarray, *, rng: Rng) -> np.ndarray:
        return self.table_observations(full)
