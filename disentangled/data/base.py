"""The ground-truth data set contract and the index arithmetic behind it.

A ground-truth data set is a finite grid of factor combinations, each rendering to one
image (or, for the noisy variants, to a distribution of images). Two pieces live here:

* :class:`FactorSpace`: the factor sizes and the one place where a factor vector maps to
  the flat row of the official files (row-major, last factor fastest) and back.
* :class:`GroundTruthData`: what every data set offers to training and metrics, and what
  it says about itself (:meth:`~GroundTruthData.describe`, :meth:`~GroundTruthData.readiness`,
  :meth:`~GroundTruthData.prepare`, :attr:`~GroundTruthData.observations_deterministic`).

Randomness is always passed in. ``rng`` may be a :class:`numpy.random.Generator` (the
project's default) or a :class:`numpy.random.RandomState` (disentanglement_lib's type):
data sets draw from it with the same calls, shapes and order as disentanglement_lib, so a
``RandomState`` seeded like the reference gives the same factors and the same variant
noise as the reference.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator, Union

import numpy as np

# the close-match hint of every error message lives with the project's errors (re-exported here for the data sets)
from ..errors import ParameterError, close_matches  # noqa: F401

if TYPE_CHECKING:
    import torch

Rng = Union[np.random.Generator, np.random.RandomState]


def randint(rng: Rng, high: int, size) -> np.ndarray:
    """Uniform integers in ``[0, high)`` as int64, for either kind of numpy rng.

    ``RandomState.randint(high, size=...)`` is the call disentanglement_lib makes, so a
    ``RandomState`` consumes its stream exactly as the reference does.
    """
    if isinstance(rng, np.random.RandomState):
        return np.asarray(rng.randint(high, size=size), dtype=np.int64)
    if isinstance(rng, np.random.Generator):
        return rng.integers(high, size=size, dtype=np.int64)
    raise TypeError(
        f"rng must be a numpy.random.Generator or numpy.random.RandomState, got {type(rng).__name__}; "
        "create one with numpy.random.default_rng(seed)"
    )


def check_rng(rng: Rng) -> Rng:
    if not isinstance(rng, (np.random.Generator, np.random.RandomState)):
        raise TypeError(
            f"rng must be a numpy.random.Generator or numpy.random.RandomState, got {type(rng).__name__}; "
            "create one with numpy.random.default_rng(seed)"
        )
    return rng


@dataclass(frozen=True)
class FactorSpace:
    """Named discrete factors and the row-major map between factor vectors and flat indices.

    The official files store images in row-major order over the factors, the last factor
    varying fastest, so ``index = sum_k factors[k] * bases[k]`` with
    ``bases[k] = prod(sizes[k+1:])``.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]

    def __post_init__(self):
        names, sizes = tuple(self.names), tuple(int(s) for s in self.sizes)
        if len(names) != len(sizes):
            raise ValueError(f"FactorSpace: {len(names)} names but {len(sizes)} sizes")
        if len(set(names)) != len(names):
            raise ValueError(f"FactorSpace: factor names must be unique, got {names}")
        for name, size in zip(names, sizes):
            if size < 1:
                raise ValueError(f"FactorSpace: factor {name!r} must have size >= 1, got {size}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "sizes", sizes)

    @property
    def num_factors(self) -> int:
        return len(self.sizes)

    @property
    def num_combinations(self) -> int:
        return int(np.prod(self.sizes, dtype=np.int64))

    @property
    def bases(self) -> np.ndarray:
        sizes = np.asarray(self.sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def validate(self, factors) -> np.ndarray:
        """Return ``factors`` as int64 ``[N, K]`` or raise ValueError naming the bad factor."""
        arr = np.asarray(factors)
        if arr.ndim != 2 or arr.shape[1] != self.num_factors:
            raise ValueError(
                f"factors must have shape [N, {self.num_factors}] (one column per factor: "
                f"{', '.join(self.names)}), got shape {tuple(arr.shape)}"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise ValueError("factors must be integer class indices, got non-integer values")
        arr = arr.astype(np.int64, copy=False)
        for k, (name, size) in enumerate(zip(self.names, self.sizes)):
            col = arr[:, k]
            bad = (col < 0) | (col >= size)
            if bad.any():
                raise ValueError(
                    f"factor {name!r} has size {size} (allowed values 0..{size - 1}), "
                    f"got {int(col[bad][0])}"
                )
        return arr

    def index(self, factors) -> np.ndarray:
        """Flat row-major indices (int64 ``[N]``) of factor vectors ``[N, K]``."""
        return self.validate(factors) @ self.bases

    def factors(self, index) -> np.ndarray:
        """Factor vectors (int64 ``[N, K]``) of flat indices ``[N]``."""
        idx = np.asarray(index)
        if idx.ndim != 1:
            raise ValueError(f"index must be a 1-D array of flat indices, got shape {tuple(idx.shape)}")
        idx = idx.astype(np.int64, copy=False)
        bad = (idx < 0) | (idx >= self.num_combinations)
        if bad.any():
            raise ValueError(
                f"flat index must be in 0..{self.num_combinations - 1}, got {int(idx[bad][0])}"
            )
        if idx.size == 0:
            return np.zeros((0, self.num_factors), dtype=np.int64)
        return np.stack(np.unravel_index(idx, self.sizes), axis=1).astype(np.int64)

    def sample(self, n: int, *, rng: Rng) -> np.ndarray:
        """``n`` uniform factor vectors, one ``randint`` column per factor in order."""
        n = _check_count(n)
        out = np.zeros((n, self.num_factors), dtype=np.int64)
        for k, size in enumerate(self.sizes):
            out[:, k] = randint(rng, size, n)
        return out

    def all_factors(self) -> np.ndarray:
        """Every factor combination in row-major order, int64 ``[num_combinations, K]``."""
        return self.factors(np.arange(self.num_combinations, dtype=np.int64))


def _check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ParameterError(f"number of samples must be a non-negative integer, got {n!r}")
    return int(n)


@dataclass(frozen=True)
class Prepared:
    """What :meth:`GroundTruthData.prepare` did.

    ``path`` is the file or folder observations are read from after this call (an
    official file, a resize cache, a rendered grid), or None when they are generated in memory;
    ``built`` says whether this call wrote it (a first resize, a rendering) rather than
    finding it ready; ``message`` is one sentence saying what is where, for people.
    """

    path: Path | None
    built: bool
    message: str


class GroundTruthData(abc.ABC):
    """A data set of images generated from discrete ground-truth factors.

    A data set is abstract (this class, or a family base such as MPI3D's) or final (the
    registered classes, never subclassed). A final data set sets :attr:`name`,
    :attr:`space` (all factors, as stored), :attr:`latent` (the positions in ``space`` of the
    factors exposed to models and metrics; the others are nuisance factors, re-sampled for
    every observation), :attr:`observation_shape` (channels first) and
    :attr:`observations_deterministic`, and implements :meth:`_render`. A data set read from
    files also answers :meth:`describe`, :meth:`readiness` and :meth:`prepare` for its
    files; the defaults here describe a data set generated in memory by its own code.
    """

    name: ClassVar[str]
    space: FactorSpace
    latent: tuple[int, ...]
    observation_shape: tuple[int, int, int]

    #: Whether an observation is a pure function of the latent factors: rendering draws
    #: nothing from ``rng`` (no nuisance factor with more than one value, no per-image
    #: noise), so the same latent factors give the same image whatever the rng. Metrics then
    #: encode each distinct combination once and skip rendering it again
    #: (:mod:`disentangled.metrics.sampling`), which leaves the rng's stream unchanged only
    #: because rendering would have drawn nothing. False unless a data set says otherwise:
    #: a data set that does not claim it is rendered afresh for every request.
    observations_deterministic: ClassVar[bool] = False

    # -- description -----------------------------------------------------------------
    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(self.space.names[i] for i in self.latent)

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return tuple(self.space.sizes[i] for i in self.latent)

    @property
    def nuisance(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.space.num_factors) if i not in self.latent)

    @property
    def num_factors(self) -> int:
        return len(self.latent)

    @property
    def latent_space(self) -> FactorSpace:
        return FactorSpace(self.factor_names, self.factor_sizes)

    # -- what the data set says about itself ----------------------------------------------
    def describe(self) -> dict:
        """What to record wherever results are recorded.

        Always ``name`` and ``source`` (``"official"`` for the published files,
        ``"procedural"`` for this project's renderers, ``"synthetic"`` for data made up in
        memory), plus the ``file`` (or folder, cache) read or the ``generator`` used.
        """
        return {"name": self.name, "source": "synthetic"}

    def readiness(self) -> tuple[bool, str]:
        """``(ready, why)``: whether observations can be drawn now, and a sentence saying why,
        or what is missing and the command that fixes it."""
        return True, "generated in memory, nothing to prepare"

    def prepare(self, *, progress: bool = True) -> Prepared:
        """Make the data set ready and fast to read (check the official files, build the
        caches, render the procedural grid), with a progress bar when ``progress``; a missing
        or damaged file raises :class:`~disentangled.data.paths.DataFileError` naming the
        file and the fix. Preparing again finds the work done and only checks it."""
        _, why = self.readiness()
        return Prepared(path=None, built=False, message=f"{self.name}: {why}")

    # -- sampling ----------------------------------------------------------------------
    def sample_factors(self, n: int, *, rng: Rng) -> np.ndarray:
        """``n`` uniform latent factor vectors, int64 ``[n, num_factors]``."""
        n = _check_count(n)
        check_rng(rng)
        out = np.zeros((n, self.num_factors), dtype=np.int64)
        for pos, k in enumerate(self.latent):
            out[:, pos] = randint(rng, self.space.sizes[k], n)
        return out

    def complete_factors(self, factors, *, rng: Rng) -> np.ndarray:
        """Latent factors ``[N, num_factors]`` -> all stored factors, nuisance ones drawn."""
        latent = self.latent_space.validate(factors)
        full = np.zeros((latent.shape[0], self.space.num_factors), dtype=np.int64)
        full[:, list(self.latent)] = latent
        for k in self.nuisance:
            full[:, k] = randint(rng, self.space.sizes[k], latent.shape[0])
        return full

    def observations_from_factors(self, factors, *, rng: Rng) -> np.ndarray:
        """Float32 ``[N, C, H, W]`` observations in [0, 1] for latent factors ``[N, K]``."""
        check_rng(rng)
        full = self.complete_factors(factors, rng=rng)
        obs = self._render(full, rng=rng)
        return np.ascontiguousarray(obs, dtype=np.float32)

    def sample(self, n: int, *, rng: Rng) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(n, rng=rng)
        return factors, self.observations_from_factors(factors, rng=rng)

    def sample_observations(self, n: int, *, rng: Rng) -> np.ndarray:
        return self.sample(n, rng=rng)[1]

    def sample_rows(self, n: int, *, rng: Rng) -> np.ndarray:
        """Flat indices ``space.index(full)`` of ``n`` factor vectors drawn as :meth:`sample` draws them.

        The same draws from ``rng`` in the same order as :meth:`sample_factors` followed by
        :meth:`complete_factors` (latent factors in order, then the nuisance ones), summed
        straight into row numbers; for a data set with an :meth:`image_table` the rows
        pick exactly the observations :meth:`sample_observations` returns.
        """
        n = _check_count(n)
        check_rng(rng)
        sizes, bases = self.space.sizes, self.space.bases
        rows = np.zeros(n, dtype=np.int64)
        for k in (*self.latent, *self.nuisance):
            rows += randint(rng, sizes[k], n) * bases[k]
        return rows

    def image_table(self) -> tuple[np.ndarray, float] | None:
        """The stored images as one lookup table, when an observation is nothing but a lookup.

        Returns ``(images, scale)``: uint8 ``images`` of shape ``[num_combinations, H, W]``
        or ``[num_combinations, H, W, C]`` whose row ``space.index(full)`` holds the
        observation of the full factor vector ``full``; that row, as float32 divided by
        ``scale``, channels first, is exactly what :meth:`observations_from_factors`
        returns, and drawing it consumes from ``rng`` only what :meth:`complete_factors`
        consumes. ``None`` (the default) when observations draw randomness of their own
        or are rendered on the fly. Ensembles on a GPU keep the table on the device and
        gather batches there (:mod:`disentangled.train.batches`).
        """
        return None

    def table_observations(self, full_factors: np.ndarray) -> np.ndarray:
        """Observations of full factor vectors looked up in :meth:`image_table` (the one
        definition of what a table row means: float32 ``row / scale``, channels first)."""
        images, scale = self.image_table()
        rows = gather_rows(images, self.space.index(full_factors))
        rows = rows[:, None] if rows.ndim == 3 else rows.transpose(0, 3, 1, 2)
        return as_unit_float(np.ascontiguousarray(rows), scale)

    def batches(self, batch_size: int, *, rng: Rng, device="cpu") -> Iterator["torch.Tensor"]:
        """Endless i.i.d. training batches as float32 tensors ``[B, C, H, W]``.

        Each batch draws its factors uniformly over the grid and renders them in one
        vectorised call (as the reference's stream, but a batch at a time rather than one
        image per Python call).
        """
        import torch  # here, so that the data sets (and the metrics' worker processes) load without it

        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
        while True:
            obs = self.sample_observations(int(batch_size), rng=rng)
            yield torch.from_numpy(obs).to(device, non_blocking=True)

    @abc.abstractmethod
    def _render(self, full_factors: np.ndarray, *, rng: Rng) -> np.ndarray:
        """Observations ``[N, C, H, W]`` (float in [0, 1] or uint8 {0..255}/{0,1} with a
        documented scale) for validated full factor vectors."""

    def __repr__(self) -> str:
        factors = ", ".join(f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes))
        return f"<{type(self).__name__} {self.name!r} [{factors}] obs={self.observation_shape}>"


def gather_rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]``, reading a memory map in increasing row order (kinder to the page cache)."""
    if not isinstance(array, np.memmap):
        return array[index]
    order = np.argsort(index, kind="stable")
    out = np.empty((len(index),) + array.shape[1:], dtype=array.dtype)
    out[order] = array[index[order]]
    return out


def as_unit_float(images: np.ndarray, scale: float) -> np.ndarray:
    """uint8 images -> float32 in [0, 1] by ``images / scale`` (1 for binary, 255 for bytes)."""
    out = images.astype(np.float32)
    if scale != 1:
        out *= np.float32(1.0 / scale)
    return out

