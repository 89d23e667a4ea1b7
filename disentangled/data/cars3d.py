"""Cars3D (Reed et al., "Deep Visual Analogy-Making", NeurIPS 2015): 17,568 RGB 64x64 images.

The official files are the 183 MATLAB v5 files ``cars/car_XXX_mesh.mat`` of
``nips2015-analogy-data.tar.gz`` (``data/cars/`` in the archive, moved to ``cars/`` in the
data directory, as disentanglement_lib expects), plus the archive's ``cars/list.txt``. Each
``.mat`` holds ``im``, uint8 ``[128, 128, 3, 24, 4]`` = height, width, RGB, azimuth (24 steps
of 15 degrees), elevation (4). Factors, in disentanglement_lib's order (row-major, object
fastest):

    elevation 4, azimuth 24, object 183      (all latent)

Every image is shrunk 128 -> 64 with ``resize((64, 64), LANCZOS)`` (dlib's ``thumbnail``
call no longer runs on current Pillow; for this exact 2x reduction both give the same
filter) and kept as uint8; observations are converted to float per batch. The resized grid
is cached once in ``<data dir>/cache/cars3d_<fingerprint>.npz`` (temporary name, then
renamed).

**Object order differs from disentanglement_lib on purpose.** dlib numbers the cars in the
*unsorted* order in which the file system lists ``cars/``, so its object labels can differ
between machines. Here the objects follow ``list.txt`` when it is present (the archive's
own order, as ``disent`` does) and the sorted file names otherwise; :meth:`Cars3D.describe`
records which. With the archive's ``list.txt`` (names ``car_001_mesh`` ...) both orders
coincide.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import FactorSpace, GroundTruthData, Prepared, Rng
from .paths import DataFileError, data_dir, search_dirs
from .smallnorb import cached_grid, fingerprint, prepared_resize, resize_lanczos

NAME = "cars3d"
FOLDER = "cars"
LIST_FILE = "list.txt"
OFFICIAL_SPACE = FactorSpace(("elevation", "azimuth", "object"), (4, 24, 183))
OFFICIAL_IM_SHAPE = (128, 128, 3, 24, 4)
SIZE = 64
RESIZE_METHOD = "pillow-RGB-lanczos-64"
_FINGERPRINT_BYTES = 1 << 16  # per .mat file: 183 files stay cheap to fingerprint


# ---------------------------------------------------------------------------------------
# Files: locate, order, read, write


def find_folder(explicit=None) -> Path | None:
    """The first ``cars/`` folder under the search directories that holds ``.mat`` files."""
    for root in search_dirs(explicit):
        folder = root / FOLDER
        if folder.is_dir() and any(p.suffix == ".mat" for p in folder.iterdir()):
            return folder
    return None


def ordered_files(folder: str | os.PathLike) -> tuple[list[Path], str]:
    """The ``.mat`` files in object order and how that order was chosen.

    ``list.txt`` (one name per line, with or without ``.mat``) when present, else the sorted
    file names. A name listed but absent, or a ``.mat`` file not listed, is an error.
    """
    folder = Path(folder)
    on_disk = sorted(p.name for p in folder.iterdir() if p.suffix == ".mat" and p.is_file())
    listing = folder / LIST_FILE
    if not listing.is_file():
        return [folder / n for n in on_disk], "sorted file names"
    names = []
    for line in listing.read_text().splitlines():
        line = line.strip()
        if line:
            names.append(line if line.endswith(".mat") else line + ".mat")
    missing = [n for n in names if n not in on_disk]
    extra = sorted(set(on_disk) - set(names))
    if missing or extra or len(set(names)) != len(names):
        raise DataFileError(
            f"{listing}: does not match the .mat files beside it "
            f"({len(missing)} listed but missing, e.g. {missing[:2]}; {len(extra)} not listed, e.g. {extra[:2]}; "
            f"{len(names) - len(set(names))} listed twice); unpack the archive again with `disentangled data download {NAME}`"
        )
    return [folder / n for n in names], LIST_FILE


def read_car(path: str | os.PathLike, *, strict: bool = True) -> np.ndarray:
    """One car's ``im`` array, uint8 ``[H, W, 3, azimuths, elevations]``."""
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=["im"])
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError... on bad files
        raise DataFileError(f"{path}: cannot be read as a MATLAB v5 .mat file ({type(err).__name__}: {err})") from err
    if "im" not in mat:
        raise DataFileError(f"{path}: no variable 'im'; expected a Cars3D .mat with im uint8 [128, 128, 3, 24, 4]")
    im = mat["im"]
    if im.dtype != np.uint8 or im.ndim != 5 or im.shape[2] != 3:
        raise DataFileError(f"{path}: 'im' must be uint8 [128, 128, 3, 24, 4] (H, W, RGB, azimuth, elevation), got {im.dtype} {list(im.shape)}")
    if strict and im.shape != OFFICIAL_IM_SHAPE:
        raise DataFileError(
            f"{path}: 'im' is {list(im.shape)}, the official shape is {list(OFFICIAL_IM_SHAPE)} "
            f"(pass strict=False to read a reduced grid)"
        )
    return im


def write_car(path: str | os.PathLike, im: np.ndarray) -> Path:
    """Write one car as the official MATLAB v5 ``.mat``: ``im`` and its ``mask``."""
    import scipy.io

    from ..io import atomic_path

    im = np.asarray(im)
    if im.dtype != np.uint8 or im.ndim != 5 or im.shape[2] != 3:
        raise ValueError(f"im must be uint8 [H, W, 3, azimuths, elevations], got {im.dtype} {list(im.shape)}")
    mask = (im.max(axis=2) > 0).astype(np.uint8)  # the release's mask [H, W, azimuths, elevations]
    path = Path(path)
    with atomic_path(path, suffix=".mat") as tmp:
        scipy.io.savemat(tmp, {"im": im, "mask": mask}, format="5", do_compression=True)
    return path


def write_official(folder: str | os.PathLike, cars: list[np.ndarray], names: list[str] | None = None, *, with_list: bool = True) -> list[Path]:
    """Write a ``cars/`` folder: one ``.mat`` per car and (``with_list``) ``list.txt``.

    ``names`` default to ``car_001_mesh``, ``car_002_mesh``, ...; ``list.txt`` lists them in
    the given order, which is the object order the reader uses.
    """
    from ..io import write_bytes_atomic

    folder = Path(folder)
    names = names or [f"car_{i + 1:03d}_mesh" for i in range(len(cars))]
    if len(names) != len(cars):
        raise ValueError(f"{len(cars)} cars but {len(names)} names")
    paths = [write_car(folder / f"{name}.mat", im) for name, im in zip(names, cars)]
    if with_list:
        write_bytes_atomic(folder / LIST_FILE, ("\n".join(names) + "\n").encode())
    return paths


def read_official(folder: str | os.PathLike, *, strict: bool = True, progress: bool = False) -> tuple[np.ndarray, FactorSpace, str]:
    """Resized images uint8 ``[N, 64, 64, 3]`` in grid order, the factor space, the order used."""
    from tqdm import tqdm

    files, order = ordered_files(folder)
    if strict and len(files) != OFFICIAL_SPACE.sizes[2]:
        raise DataFileError(
            f"{folder}: {len(files)} .mat files, the official release has {OFFICIAL_SPACE.sizes[2]} "
            f"(pass strict=False to read a reduced set)"
        )
    grid = None
    for obj, path in enumerate(tqdm(files, unit="car", desc="resizing Cars3D", disable=not progress)):
        im = read_car(path, strict=strict)
        azimuths, elevations = im.shape[3], im.shape[4]
        if grid is None:
            grid = np.empty((elevations, azimuths, len(files), SIZE, SIZE, 3), dtype=np.uint8)
            first = path
        elif grid.shape[:2] != (elevations, azimuths):
            raise DataFileError(
                f"{path}: {azimuths} azimuths x {elevations} elevations, but {first} has "
                f"{grid.shape[1]} x {grid.shape[0]}; every car must have the same grid"
            )
        views = im.transpose(4, 3, 0, 1, 2).reshape(-1, *im.shape[:3])  # [E*A, H, W, 3], azimuth fastest
        grid[:, :, obj] = resize_lanczos(views).reshape(elevations, azimuths, SIZE, SIZE, 3)
    if grid is None:
        raise DataFileError(f"{folder}: no .mat files")
    space = FactorSpace(OFFICIAL_SPACE.names, grid.shape[:3])
    return grid.reshape(-1, SIZE, SIZE, 3), space, order


# ---------------------------------------------------------------------------------------
# The data set


class Cars3D(GroundTruthData):
    """Cars3D, 3x64x64; latent factors elevation, azimuth, object."""

    name = NAME
    latent = (0, 1, 2)
    observation_shape = (3, SIZE, SIZE)
    observations_deterministic = True  # one stored view per combination, no nuisance factor

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

    def folder(self) -> Path:
        folder = find_folder(self.data_dir_option)
        if folder is None:
            from .paths import missing_file_message

            raise DataFileError(missing_file_message(NAME, [f"{FOLDER}/car_001_mesh.mat", f"{FOLDER}/{LIST_FILE}"], self.data_dir_option))
        return folder

    def cache_path(self) -> Path:
        folder = self.folder()
        files, order = ordered_files(folder)
        method = f"{RESIZE_METHOD};order={[p.name for p in files]}"
        return data_dir(self.data_dir_option) / "cache" / f"{NAME}_{_fingerprint(files, method)}.npz"

    def prepare(self, *, progress: bool = True) -> Prepared:
        """Check the files and build the resize cache if it is not there yet."""
        built = self._load(progress=progress)
        return prepared_resize(self.name, self.space.num_combinations, self._cache, built)

    def _load(self, *, progress: bool = False) -> bool:
        if self._images is not None:
            return False
        folder = self.folder()
        self._cache = self.cache_path()

        def build():
            images, space, _ = read_official(folder, strict=self.strict, progress=progress)
            return images, space

        images, sizes, built = cached_grid(self._cache, build)
        if self.strict and sizes != OFFICIAL_SPACE.sizes:
            raise DataFileError(
                f"{folder}: factor sizes {list(sizes)} differ from the official {list(OFFICIAL_SPACE.sizes)} "
                f"(pass strict=False to read a reduced set)"
            )
        if images.shape[1:] != (SIZE, SIZE, 3):
            raise DataFileError(f"{self._cache}: cached images are {list(images.shape)}, expected [N, 64, 64, 3]; delete the file")
        self._images, self._space = images, FactorSpace(OFFICIAL_SPACE.names, sizes)
        return built

    def readiness(self) -> tuple[bool, str]:
        folder = find_folder(self.data_dir_option)
        if folder is None:
            return False, f"official files missing: {FOLDER}/*.mat; run `disentangled data download {NAME}`"
        try:
            cache = self.cache_path()
        except DataFileError as err:
            return False, str(err).splitlines()[0]
        if cache.is_file():
            return True, f"official files in {folder}, resized cache {cache}"
        return True, f"official files in {folder} (the first use resizes them once; `data prepare` does it now)"

    def describe(self) -> dict:
        info = {"name": self.name, "source": "official", "resize": RESIZE_METHOD}
        folder = find_folder(self.data_dir_option)
        if folder is not None:
            info["folder"] = str(folder)
            info["object_order"] = LIST_FILE if (folder / LIST_FILE).is_file() else "sorted file names"
        if self._cache is not None:
            info["cache"] = str(self._cache)
        return info

    def image_table(self):
        self._load()
        return self._images, 255.0

    def _render(self, full: np.ndarray, *, rng: Rng) -> np.ndarray:
        return self.table_observations(full)


def _fingerprint(files: list[Path], method: str) -> str:
    """Names, sizes and the first 64 KiB of every car file (all 183 in a few milliseconds)."""
    import hashlib

    h = hashlib.sha256(method.encode())
    for path in files:
        h.update(f";{path.name}:{path.stat().st_size}:".encode())
        with open(path, "rb") as fh:
            h.update(fh.read(_FINGERPRINT_BYTES))
    return fingerprint([], h.hexdigest())
