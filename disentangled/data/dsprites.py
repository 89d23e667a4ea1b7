"""dSprites (Matthey et al. 2017) and the study's three variants: colour, noisy, scream.

Factors as stored in the official file: color 1, shape 3, scale 6, orientation 40,
posX 32, posY 32 (737,280 binary 64x64 images, row-major, posY fastest). ``color`` has a
single value and is never latent; ``dsprites_noshape`` also makes ``shape`` a nuisance.

Two sources, always chosen explicitly and recorded by :meth:`DSprites.describe`:

* ``source="official"`` (default): DeepMind's
  ``dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or the ``.hdf5`` twin) in the
  data directory. The npz's ``metadata`` member is a pickle and is never loaded: the factor
  sizes come from ``latents_classes``, which must enumerate the grid in row-major order.
* ``source="procedural"``: this project's renderer (:mod:`disentangled.data.dsprites_render`),
  fitted to real frames. ``disentangled data prepare NAME --source procedural`` writes the
  whole grid once to ``procedural/dsprites_procedural_v<version>.npy`` (memory-mapped
  afterwards); without that cache the images are rendered on the fly, pixel for pixel the
  same.

The variants post-process the binary sprite per batch, drawing from ``rng`` with the same
calls, shapes and order as disentanglement_lib (factor columns, nuisance factors, then the
variant's draws), so a ``numpy.random.RandomState`` gives the reference's numbers.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from .base import FactorSpace, GroundTruthData, Prepared, Rng, gather_rows, randint
from .paths import WRITABLE_FIX, DataFileError, data_dir, find_file, missing_file_message
from ..errors import ParameterError

OFFICIAL_NPZ = "dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
OFFICIAL_HDF5 = "dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
OFFICIAL_SPACE = FactorSpace(
    ("color", "shape", "scale", "orientation", "posX", "posY"), (1, 3, 6, 40, 32, 32)
)
SOURCES = ("official", "procedural")


def _renderer():
    """The procedural renderer, imported on first use (only procedural sources need it)."""
    from . import dsprites_render

    return dsprites_render


def procedural_cache_path(explicit_data_dir=None) -> Path:
    dsprites_render = _renderer()
    return data_dir(explicit_data_dir) / "procedural" / (
        f"dsprites_procedural_v{dsprites_render.RENDERER_VERSION}.npy"
    )


# ---------------------------------------------------------------------------------------
# Reading and writing the official files


def read_official(path: str | os.PathLike, *, strict: bool = True) -> tuple[np.ndarray, FactorSpace]:
    """Images ``uint8 [N, 64, 64]`` and the factor space of an official npz or hdf5 file.

    With ``strict`` (the default) the factor sizes must be the official
    ``[1, 3, 6, 40, 32, 32]``; tests pass ``strict=False`` to read reduced grids.
    """
    path = Path(path)
    try:
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                for key in ("imgs", "latents/classes"):
                    if key not in f:
                        raise DataFileError(f"{path}: missing dataset {key!r}; expected the official dSprites hdf5 layout (imgs, latents/classes, latents/values)")
                imgs = f["imgs"][...]
                classes = f["latents/classes"][...]
        else:
            with np.load(path, allow_pickle=False) as npz:
                for key in ("imgs", "latents_classes"):
                    if key not in npz.files:
                        raise DataFileError(f"{path}: missing array {key!r}; expected the official dSprites npz (imgs, latents_classes, latents_values, metadata)")
                imgs = npz["imgs"]
                classes = npz["latents_classes"]
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(
            f"{path}: cannot be read as the official dSprites file ({type(err).__name__}: {err}). "
            f"It may be truncated: delete it and download it again with `disentangled data download dsprites_full`."
        ) from err
    return _check_official(path, imgs, classes, strict=strict)


def _check_official(path, imgs, classes, *, strict) -> tuple[np.ndarray, FactorSpace]:
    if imgs.ndim != 3 or imgs.shape[1:] != (64, 64) or imgs.dtype != np.uint8:
        raise DataFileError(f"{path}: 'imgs' must be uint8 [N, 64, 64], got {imgs.dtype} {list(imgs.shape)}")
    if classes.ndim != 2 or classes.shape != (imgs.shape[0], 6):
        raise DataFileError(f"{path}: latent classes must be [{imgs.shape[0]}, 6], got {list(classes.shape)}")
    sizes = tuple(int(s) for s in classes.max(axis=0) + 1) if classes.size else (0,) * 6
    space = FactorSpace(OFFICIAL_SPACE.names, tuple(max(s, 1) for s in sizes))
    if strict and space.sizes != OFFICIAL_SPACE.sizes:
        raise DataFileError(
            f"{path}: factor sizes {list(space.sizes)} differ from the official {list(OFFICIAL_SPACE.sizes)}; "
            "the file is not the official dSprites release (pass strict=False to read a reduced grid)"
        )
    if space.num_combinations != imgs.shape[0] or not np.array_equal(space.index(classes), np.arange(imgs.shape[0])):
        raise DataFileError(
            f"{path}: the rows are not the row-major factor grid {list(space.sizes)} "
            f"({imgs.shape[0]} images); the file is damaged or not in the official order"
        )
    if imgs.size and imgs.max() > 1:
        raise DataFileError(f"{path}: 'imgs' must be binary (values 0 and 1), found {int(imgs.max())}")
    return imgs, space


def official_latent_values(space: FactorSpace) -> np.ndarray:
    """``latents_values`` of the official file for every row of ``space`` (float64 ``[N, 6]``)."""
    dsprites_render = _renderer()
    classes = space.all_factors()
    values = np.zeros(classes.shape, dtype=np.float64)
    values[:, 0] = 1.0
    values[:, 1] = classes[:, 1] + 1.0
    values[:, 2] = dsprites_render.SCALES[classes[:, 2]]
    values[:, 3] = dsprites_render.ORIENTATIONS[classes[:, 3]]
    values[:, 4] = dsprites_render.POSITIONS[classes[:, 4]]
    values[:, 5] = dsprites_render.POSITIONS[classes[:, 5]]
    return values


def write_official(path: str | os.PathLike, imgs: np.ndarray, space: FactorSpace = OFFICIAL_SPACE) -> Path:
    """Write images in the official npz (with its pickled metadata) or hdf5 layout.

    Used by tests to build fixtures; the layout (keys, dtypes, the 0-d object array holding
    the metadata dict) is DeepMind's release format.
    """
    from ..io import atomic_path

    path = Path(path)
    imgs = np.asarray(imgs, dtype=np.uint8)
    classes = space.all_factors()
    values = official_latent_values(space)
    if imgs.shape != (space.num_combinations, 64, 64):
        raise ValueError(f"imgs must be [{space.num_combinations}, 64, 64] for factor sizes {list(space.sizes)}, got {list(imgs.shape)}")
    with atomic_path(path) as tmp:
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(tmp, "w") as f:
                f.create_dataset("imgs", data=imgs, compression="gzip")
                f.create_dataset("latents/classes", data=classes)
                f.create_dataset("latents/values", data=values)
        else:
            metadata = {
                "date": "April 2017",
                "description": "Disentanglement test Sprites dataset.",
                "version": 1,
                "latents_names": OFFICIAL_SPACE.names,
                "latents_sizes": np.asarray(space.sizes, dtype=np.int64),
                "author": "lmatthey@google.com",
                "title": "dSprites dataset",
            }
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh, imgs=imgs, latents_classes=classes, latents_values=values,
                    metadata=np.array(metadata, dtype=object),
                )
    return path


# ---------------------------------------------------------------------------------------
# Image storage: official file, procedural cache, or on-the-fly rendering


class _Images:
    """Binary sprites by full factor vector, loaded lazily on first use."""

    def __init__(self, source: str, data_dir_option, strict: bool):
        self.source = source
        self.data_dir_option = data_dir_option
        self.strict = strict
        self._imgs: np.ndarray | None = None
        self._space: FactorSpace | None = None
        self._path: Path | None = None

    def official_path(self) -> Path:
        path = find_file([OFFICIAL_NPZ, OFFICIAL_HDF5], self.data_dir_option)
        if path is None:
            raise DataFileError(
                missing_file_message("dsprites_full", [OFFICIAL_NPZ, OFFICIAL_HDF5], self.data_dir_option, procedural=True)
            )
        return path

    @property
    def space(self) -> FactorSpace:
        if self.source == "procedural" or self.strict:
            return OFFICIAL_SPACE
        self._load()
        return self._space

    def _load(self) -> None:
        if self._imgs is not None or self._space is not None:
            return
        if self.source == "official":
            self._path = self.official_path()
            self._imgs, self._space = read_official(self._path, strict=self.strict)
            return
        cache = procedural_cache_path(self.data_dir_option)
        self._space = OFFICIAL_SPACE
        if cache.is_file():
            imgs = np.load(cache, mmap_mode="r", allow_pickle=False)
            if imgs.shape != (OFFICIAL_SPACE.num_combinations, 64, 64) or imgs.dtype != np.uint8:
                raise DataFileError(
                    f"{cache}: expected uint8 [737280, 64, 64], got {imgs.dtype} {list(imgs.shape)}; "
                    f"delete it and run `disentangled data prepare dsprites_full --source procedural`"
                )
            self._imgs, self._path = imgs, cache

    def gather(self, full: np.ndarray) -> np.ndarray:
        """uint8 ``[N, 64, 64]`` binary sprites of full factor vectors ``[N, 6]``."""
        self._load()
        if self._imgs is None:  # procedural without a cache: render now
            return _renderer().render(full[:, 1:])
        return gather_rows(self._imgs, self._space.index(full))

    def describe(self) -> dict:
        info = {"source": self.source}
        if self.source == "procedural":
            info["generator"] = "disentangled.data.dsprites_render"
            info["renderer_version"] = _renderer().RENDERER_VERSION
        path = self._path
        if path is None and self.source == "official":
            path = find_file([OFFICIAL_NPZ, OFFICIAL_HDF5], self.data_dir_option)
        if path is not None:
            info["file"] = str(path)
        return info


# ---------------------------------------------------------------------------------------
# The procedural cache


def _procedural_cache_ok(path: Path) -> bool:
    """Whether ``path`` holds the whole rendered grid (uint8 [737280, 64, 64])."""
    if not path.is_file():
        return False
    try:
        existing = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError):
        return False
    return existing.shape == (OFFICIAL_SPACE.num_combinations, 64, 64) and existing.dtype == np.uint8


def write_procedural(explicit_data_dir=None, *, progress: bool = True, chunk_size: int = 4096) -> Path:
    """Render the whole official grid into ``procedural/dsprites_procedural_v<version>.npy``.

    Nothing is rendered when a complete file is already there; a file of another shape is
    replaced. The file is written under a temporary name and renamed when complete, so an
    interrupted run leaves nothing that looks finished.
    """
    from tqdm import tqdm

    from ..io import atomic_path, check_writable

    dsprites_render = _renderer()
    path = procedural_cache_path(explicit_data_dir)
    if _procedural_cache_ok(path):
        return path
    check_writable(path.parent, fix=WRITABLE_FIX)  # before minutes of rendering
    if path.is_file():
        os.remove(path)  # not ours, or from another layout: render again
    total = OFFICIAL_SPACE.num_combinations
    with atomic_path(path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, 64, 64))
        with tqdm(total=total, unit="img", unit_scale=True, desc="rendering dSprites", disable=not progress) as bar:
            for start, images in dsprites_render.render_grid_chunks(chunk_size=chunk_size):
                out[start : start + len(images)] = images
                bar.update(len(images))
        out.flush()
        del out
    return path


# ---------------------------------------------------------------------------------------
# The data sets


class DSpritesFamily(GroundTruthData):
    """The dSprites family (abstract): binary sprites from the official file or the renderer.

    A final member sets :attr:`name`, :attr:`latent_names`, :attr:`channels` and
    :attr:`observations_deterministic` and says how an observation is drawn from the sprite
    (:meth:`_render`).
    """

    latent_names: ClassVar[tuple[str, ...]]
    channels: ClassVar[int]

    def __init__(self, source: str = "official", data_dir: str | os.PathLike | None = None, strict: bool = True):
        if source not in SOURCES:
            raise ParameterError(f"{self.name}: source must be one of {list(SOURCES)}, got {source!r}")
        self._images = _Images(source, data_dir, strict)
        self.observation_shape = (self.channels, 64, 64)

    @property
    def source(self) -> str:
        return self._images.source

    @property
    def space(self) -> FactorSpace:
        return self._images.space

    @property
    def latent(self) -> tuple[int, ...]:
        return tuple(OFFICIAL_SPACE.names.index(n) for n in self.latent_names)

    def describe(self) -> dict:
        return {"name": self.name, **self._images.describe()}

    def readiness(self) -> tuple[bool, str]:
        if self.source == "procedural":
            cache = procedural_cache_path(self._images.data_dir_option)
            if cache.is_file():
                return True, f"procedural, cached at {cache}"
            return True, "procedural, rendered on the fly (prepare it to cache it)"
        try:
            return True, f"official file {self._images.official_path()}"
        except DataFileError:
            return False, (
                f"official file missing: {OFFICIAL_NPZ}; run `disentangled data download dsprites_full` "
                f"or use --source procedural"
            )

    def prepare(self, *, progress: bool = True) -> Prepared:
        """Official: read and check the file. Procedural: render the whole grid once."""
        images = self._images
        if self.source == "procedural":
            path = procedural_cache_path(images.data_dir_option)
            built = not _procedural_cache_ok(path)
            write_procedural(images.data_dir_option, progress=progress)
            self._images = _Images(self.source, images.data_dir_option, images.strict)  # read the new file
            version = _renderer().RENDERER_VERSION
            return Prepared(path, built, f"{self.name}: procedural dSprites (renderer v{version}) at {path}")
        images._load()
        message = f"{self.name}: official file {images._path} checked ({images._space.num_combinations} images)"
        return Prepared(images._path, False, message)

    def _sprites(self, full: np.ndarray) -> np.ndarray:
        return self._images.gather(full)

    def _binary(self, full: np.ndarray) -> np.ndarray:
        return self._sprites(full)[:, None].astype(np.float32)

    def _binary_table(self):
        """The sprites as an image table (see :meth:`GroundTruthData.image_table`), for the
        members whose observation is the sprite itself; None when rendered on the fly."""
        self._images._load()
        imgs = self._images._imgs
        return None if imgs is None else (imgs, 1.0)


class DSprites(DSpritesFamily):
    """Binary dSprites, 1x64x64; latent factors shape, scale, orientation, posX, posY."""

    name = "dsprites_full"
    latent_names = ("shape", "scale", "orientation", "posX", "posY")
    channels = 1
    # the one nuisance factor, colour, has a single value: numpy draws nothing for it
    observations_deterministic = True

    def _render(self, full: np.ndarray, *, rng: Rng) -> np.ndarray:
        return self._binary(full)

    def image_table(self):
        return self._binary_table()


class DSpritesNoShape(DSpritesFamily):
    """dSprites with the shape as a nuisance factor, drawn anew for every observation."""

    name = "dsprites_noshape"
    latent_names = ("scale", "orientation", "posX", "posY")
    channels = 1
    observations_deterministic = False  # the shape is drawn from rng

    def _render(self, full: np.ndarray, *, rng: Rng) -> np.ndarray:
        return self._binary(full)

    def image_table(self):
        return self._binary_table()


class ColorDSprites(DSpritesFamily):
    """The sprite coloured by one RGB colour per image, each channel ~ U(0.5, 1); black background."""

    name = "color_dsprites"
    latent_names = DSprites.latent_names
    channels = 3
    observations_deterministic = False  # the colour is drawn from rng

    def _render(self, full, *, rng):
        sprites = self._sprites(full).astype(np.float32)[:, None]
        # dlib draws the colour as [N, 1, 1, 3] (channels last); same numbers, moved to [N, 3, 1, 1].
        color = rng.uniform(0.5, 1, [full.shape[0], 1, 1, 3]).transpose(0, 3, 1, 2)
        return sprites * color


class NoisyDSprites(DSpritesFamily):
    """A white sprite on a background of uniform noise, U(0, 1) per pixel and channel."""

    name = "noisy_dsprites"
    latent_names = DSprites.latent_names
    channels = 3
    observations_deterministic = False  # the background is drawn from rng

    def _render(self, full, *, rng):
        sprites = self._sprites(full).astype(np.float32)[:, None]
        noise = rng.uniform(0, 1, [full.shape[0], 64, 64, 3]).transpose(0, 3, 1, 2)
        return np.minimum(sprites + noise, 1.0)


class ScreamDSprites(DSpritesFamily):
    """The sprite drawn by inverting a random 64x64 patch of Munch's "The Scream".

    Per image (disentanglement_lib's order): a crop row ``randint(0, H - 64)``, a crop
    column ``randint(0, W - 64)``, a colour ``uniform(0, 1, 3)``; the background is
    ``(crop + colour) / 2`` and sprite pixels become ``1 - background``. The painting is
    ``scream/scream.jpg`` from the data directory when present (thumbnailed to fit
    350x274, as the reference does), else the thumbnail shipped with the package.
    """

    name = "scream_dsprites"
    latent_names = DSprites.latent_names
    channels = 3
    observations_deterministic = False  # the crop and its colour are drawn from rng

    def __init__(self, source="official", data_dir=None, strict=True, scream_image: str | os.PathLike | None = None):
        super().__init__(source, data_dir, strict)
        self._scream_option = scream_image
        self._scream: np.ndarray | None = None
        self._scream_path: Path | None = None

    def scream(self) -> np.ndarray:
        """The painting as float ``[3, H, W]`` in [0, 1] (H = 274 for the portrait original)."""
        if self._scream is None:
            self._scream_path, self._scream = load_scream(self._scream_option, self._images.data_dir_option)
        return self._scream

    def describe(self):
        self.scream()
        return {**super().describe(), "scream_image": str(self._scream_path)}

    def prepare(self, *, progress: bool = True) -> Prepared:
        """As the family prepares, and the painting is read and checked too."""
        done = super().prepare(progress=progress)
        self.scream()
        return Prepared(done.path, done.built, f"{done.message}; painting {self._scream_path}")

    def _render(self, full, *, rng):
        sprites = self._sprites(full).astype(bool)
        scream = self.scream()
        _, height, width = scream.shape
        n = full.shape[0]
        rows = np.empty(n, dtype=np.int64)
        cols = np.empty(n, dtype=np.int64)
        colors = np.empty((n, 3), dtype=np.float64)
        for i in range(n):  # only the draws loop, in the reference's order; the pixels are vectorised
            rows[i] = _scalar_randint(rng, height - 64)
            cols[i] = _scalar_randint(rng, width - 64)
            colors[i] = rng.uniform(0, 1, size=3)
        windows = np.lib.stride_tricks.sliding_window_view(scream, (64, 64), axis=(1, 2))
        crops = windows[:, rows, cols].transpose(1, 0, 2, 3)  # [N, 3, 64, 64]
        background = (crops + colors[:, :, None, None]) / 2.0
        mask = np.broadcast_to(sprites[:, None], background.shape)
        return np.where(mask, 1.0 - background, background)


def _scalar_randint(rng: Rng, high: int) -> int:
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(0, high))
    return int(randint(rng, high, None))


SCREAM_FILE = "scream/scream.jpg"
SCREAM_THUMBNAIL_SIZE = (350, 274)


def load_scream(explicit: str | os.PathLike | None = None, data_dir_option=None) -> tuple[Path, np.ndarray]:
    """The painting as float64 ``[3, H, W]`` in [0, 1] and the path it came from."""
    from PIL import Image

    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise DataFileError(f"scream_image={str(path)!r} does not exist; give the path of an RGB image of The Scream")
    else:
        path = find_file([SCREAM_FILE], data_dir_option) or bundled_scream_path()
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail(SCREAM_THUMBNAIL_SIZE)
            arr = np.asarray(img, dtype=np.float64) / 255.0
    except OSError as err:
        raise DataFileError(f"{path}: cannot be read as an image ({err}); replace it with a JPEG or PNG of The Scream") from err
    if arr.shape[0] < 65 or arr.shape[1] < 65:
        raise DataFileError(f"{path}: the image is {arr.shape[1]}x{arr.shape[0]} after thumbnailing; it must exceed 64x64")
    return path, arr.transpose(2, 0, 1)


def bundled_scream_path() -> Path:
    """The public-domain painting shipped with the package (215x274 thumbnail)."""
    return Path(__file__).resolve().parent.parent / "assets" / "the_scream_215x274.png"
