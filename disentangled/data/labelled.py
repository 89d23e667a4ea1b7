"""Labelled data for semi-supervised training: labellers and the fixed labelled set of a run.

Locatello et al., "Disentangling Factors of Variation Using Few Labels" (ICLR 2020,
arXiv 1905.01258) train with a small, fixed set of labelled observations next to the usual
endless stream of unlabelled ones. The labels come from a *labeller*, which simulates how
a person would label: exactly (``perfect``), coarsely (``bin``), with mistakes (``noisy``),
without knowing the order of a factor's values (``permuted``), or only some factors
(``partial``). Each labeller returns the labels (float32 ``[N, K]``), the number of values
each label column can take, and which factor of the data set each column is.

:func:`sample_labelled` draws the set as disentanglement_lib's ``sample_supervised_data``
does, from one random state, in this order: the factors, the observations of those factors,
then the labeller's own draws. With a ``numpy.random.RandomState`` seeded as the
reference's ``supervised_seed`` the factors and the labels are the reference's own (the
data sets draw factors with ``RandomState.randint`` exactly as the reference does).
:func:`split_point` is where the training part ends: the first ``ceil(N * p)`` examples
train, the rest validate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from ..errors import ParameterError, check_float, check_int, message
from ..registry import Registry
from .base import Rng, check_rng


def _uniform(rng: Rng) -> float:
    """One uniform draw in [0, 1): ``rand()`` of a RandomState (the reference's call), ``random()`` of a Generator."""
    return float(rng.rand() if isinstance(rng, np.random.RandomState) else rng.random())


def _integer(rng: Rng, high: int) -> int:
    """One uniform integer in [0, high): ``randint(high)`` of a RandomState, ``integers(high)`` of a Generator."""
    return int(rng.randint(high) if isinstance(rng, np.random.RandomState) else rng.integers(high))


class Labeller:
    """Turns true factors ``int [N, F]`` into labels: ``labeller(factors, factor_sizes, rng=) -> Labels``."""

    name: ClassVar[str]

    def __call__(self, factors: np.ndarray, factor_sizes: Sequence[int], *, rng: Rng) -> "Labels":
        raise NotImplementedError


@dataclass(frozen=True)
class Labels:
    """What a labeller returns: ``values`` float32 ``[N, K]``; ``sizes[k]``: how many values column
    ``k`` takes (labels lie in ``0 .. sizes[k] - 1``); ``columns[k]``: the data set's factor it labels."""

    values: np.ndarray
    sizes: tuple[int, ...]
    columns: tuple[int, ...]


def _identity(factors: np.ndarray, sizes: Sequence[int]) -> Labels:
    return Labels(factors.astype(np.float32), tuple(int(s) for s in sizes), tuple(range(len(sizes))))


@dataclass(frozen=True)
class PerfectLabeller(Labeller):
    """The true factors (dlib's ``perfect_labeller``)."""

    name: ClassVar[str] = "perfect"

    def __call__(self, factors, factor_sizes, *, rng):
        return _identity(factors, factor_sizes)


@dataclass(frozen=True)
class BinLabeller(Labeller):
    """Coarse labels: a factor of more than ``num_bins`` values is cut into ``num_bins`` equal bins
    (dlib's ``bin_labeller``): ``min(y // (n / num_bins), num_bins - 1)``; its size becomes
    ``min(n, num_bins)``. Factors of at most ``num_bins`` values keep their labels."""

    num_bins: int = 5

    name: ClassVar[str] = "bin"

    def __post_init__(self):
        check_int("bin labeller: num_bins", self.num_bins, low=1)

    def __call__(self, factors, factor_sizes, *, rng):
        labels = factors.astype(np.float32)
        for i, n in enumerate(factor_sizes):
            if n > self.num_bins:
                # floor division by the float bin width, as the reference divides (float64 here; no
                # label of any data set lies on a bin edge where float32 and float64 would disagree)
                binned = np.floor_divide(labels[:, i].astype(np.float64), n / self.num_bins)
                labels[:, i] = np.minimum(binned, self.num_bins - 1)
        return Labels(labels, tuple(min(int(n), self.num_bins) for n in factor_sizes), tuple(range(len(factor_sizes))))


@dataclass(frozen=True)
class NoisyLabeller(Labeller):
    """Labels with mistakes (dlib's ``noisy_labeller``): each cell, with probability
    ``prob_random``, is replaced by a uniform draw over the factor's values (which keeps the
    true value one time in ``n``).

    The draws follow the reference's order, which matters for parity: examples in order, and
    for each the factors in order; one uniform per cell, and an integer only when it fires.
    """

    prob_random: float = 0.1

    name: ClassVar[str] = "noisy"

    def __post_init__(self):
        check_float("noisy labeller: prob_random", self.prob_random, low=0.0, high=1.0)

    def __call__(self, factors, factor_sizes, *, rng):
        noisy = np.array(factors, dtype=np.int64, copy=True)
        for j in range(noisy.shape[0]):
            for i, n in enumerate(factor_sizes):
                if _uniform(rng) < self.prob_random:
                    noisy[j, i] = _integer(rng, int(n))
        return _identity(noisy, factor_sizes)


@dataclass(frozen=True)
class PermutedLabeller(Labeller):
    """Labels without their order (dlib's ``permuted_labeller``): one random permutation of the
    values per factor, drawn factor by factor, applied to every example."""

    name: ClassVar[str] = "permuted"

    def __call__(self, factors, factor_sizes, *, rng):
        permuted = np.array(factors, dtype=np.int64, copy=True)
        for i, n in enumerate(factor_sizes):
            permuted[:, i] = rng.permutation(int(n))[permuted[:, i]]
        return _identity(permuted, factor_sizes)


@dataclass(frozen=True)
class PartialLabeller(Labeller):
    """Only ``num_observed_factors`` factors, chosen at random and kept in the random order they
    were drawn in (dlib's ``partial_labeller``: ``choice(F, k, replace=False)``). The supervised
    losses then bind the first ``k`` latents to these factors."""

    num_observed_factors: int = 2

    name: ClassVar[str] = "partial"

    def __post_init__(self):
        check_int("partial labeller: num_observed_factors", self.num_observed_factors, low=1)

    def __call__(self, factors, factor_sizes, *, rng):
        num_factors = len(factor_sizes)
        if self.num_observed_factors > num_factors:
            raise ParameterError(message("partial labeller: num_observed_factors", f"<= {num_factors}, the number of factors",
                                         self.num_observed_factors))
        keep = [int(i) for i in rng.choice(num_factors, size=self.num_observed_factors, replace=False)]
        return Labels(factors[:, keep].astype(np.float32), tuple(int(factor_sizes[i]) for i in keep), tuple(keep))


#: The labellers by name; a labeller's settings are its dataclass fields.
LABELLERS = Registry("labeller", {
    "perfect": PerfectLabeller,
    "bin": BinLabeller,
    "noisy": NoisyLabeller,
    "permuted": PermutedLabeller,
    "partial": PartialLabeller,
}, option="setting")


def label_columns(labeller: Labeller, num_factors: int) -> int:
    """How many label columns ``labeller`` gives for a data set of ``num_factors`` factors."""
    return labeller.num_observed_factors if isinstance(labeller, PartialLabeller) else num_factors


def largest_label_size(labeller: Labeller, factor_sizes: Sequence[int]) -> int:
    """The most values any label column of ``labeller`` can take on a data set of ``factor_sizes``
    (what a loss that scores every value of a column, ``embed``, allocates before the set is drawn)."""
    largest = max(int(s) for s in factor_sizes)
    return min(largest, labeller.num_bins) if isinstance(labeller, BinLabeller) else largest


def split_point(num_labelled_samples: int, train_percentage: float) -> int:
    """How many of the labelled examples train: ``ceil(n * p)`` (dlib's ``train_test_split``)."""
    return int(math.ceil(num_labelled_samples * train_percentage))


@dataclass(frozen=True)
class LabelledSet:
    """A fixed labelled set: ``observations`` float32 ``[N, C, H, W]``, the true ``factors`` int ``[N, F]``,
    and the labeller's ``labels``; the first ``num_train`` examples train, the rest validate."""

    observations: np.ndarray
    factors: np.ndarray
    labels: Labels
    num_train: int

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """``(observations, labels)`` of the training part."""
        return self.observations[: self.num_train], self.labels.values[: self.num_train]

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        """``(observations, labels)`` of the validation part (empty when every example trains)."""
        return self.observations[self.num_train:], self.labels.values[self.num_train:]


def sample_labelled(data, num_labelled_samples: int, labeller: Labeller, *, rng: Rng,
                    train_percentage: float = 1.0) -> LabelledSet:
    """Draw a labelled set from ``data``: factors, their observations, then the labels, all from ``rng``.

    ``rng`` is consumed in the reference's order (``sample_factors``, then
    ``observations_from_factors``, then the labeller), so the same random state gives the same set.
    """
    check_rng(rng)
    check_int("num_labelled_samples", num_labelled_samples, low=1)
    check_float("train_percentage", train_percentage, low=0.0, high=1.0, low_open=True)
    factors = data.sample_factors(num_labelled_samples, rng=rng)
    observations = data.observations_from_factors(factors, rng=rng)
    labels = labeller(factors, data.factor_sizes, rng=rng)
    return LabelledSet(observations, factors, labels, split_point(num_labelled_samples, train_percentage))


__all__ = [
    "BinLabeller",
    "LABELLERS",
    "Labeller",
    "LabelledSet",
    "Labels",
    "NoisyLabeller",
    "PartialLabeller",
    "PerfectLabeller",
    "PermutedLabeller",
    "label_columns",
    "largest_label_size",
    "sample_labelled",
    "split_point",
]
