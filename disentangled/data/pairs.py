"""Pairs of observations that share all but a few factors: the data of weak supervision.

Locatello et al., "Weakly-Supervised Disentanglement Without Compromises" (ICML 2020,
arXiv 2002.02886), Section 5, build their training data from a ground-truth data set: draw
the factors ``z`` of a first image, re-sample some of them to get ``z'``, render both. The
weakly-supervised objectives (:mod:`disentangled.models.objectives.weak`) learn from the
pair ``(x1, x2)`` and, for the label variants, from the index of one changed factor.

Two samplers, chosen explicitly (``data.pairs.sampler``) and recorded with every run:

``dlib`` (the default): the reference code's dynamics (``simple_dynamics`` in
    ``methods/weak/train_weak_lib.py``). ``k_observed`` is ``k``, or for ``k = -1`` a value
    drawn uniformly in ``[1, d - 1]`` (``d`` latent factors) for each pair; then the number
    of changed factors is 1 or ``k_observed``, each with probability 1/2, so half of the
    pairs change a single factor even when ``k > 1``; that many distinct factors are picked
    uniformly, each is redrawn uniformly over its values (it may keep its value), and the
    label is the last factor picked. The reference draws the new values from NumPy's global
    generator; here every draw comes from the run's seeded generator.
``paper``: the text of Section 5: exactly ``k`` distinct factors (``k`` fixed, or for
    ``k = -1`` drawn uniformly in ``[1, d - 1]`` for each pair, the paper's "k = Rnd") are
    changed, each to a value different from the first image's; the label is one of them,
    uniformly.

``dlib`` is the default because the published models and numbers were trained with it;
the two differ (dlib issue #31, open), and ``paper`` is the protocol as written. Both
samplers draw a whole batch of pairs in one vectorised call.

Random stream, per call of :func:`sample_pair_factors` (``n`` pairs, ``d`` factors): the first
factors (``data.sample_factors``), then ``k`` per pair when ``k = -1``, then (``dlib``) the
coin between 1 and ``k``, then a random order of the factors per pair, then the new values
``[n, d]``. :func:`pair_observations` and :func:`pair_rows` then draw what rendering the
first images and then the second images draws (their nuisance factors, any noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, check_choice, check_int, message

#: The pair samplers (see the module docstring).
SAMPLERS = ("dlib", "paper")
#: ``k`` meaning "drawn uniformly in [1, d - 1] for every pair" (the paper's k = Rnd).
RANDOM_K = -1


@dataclass(frozen=True)
class PairFactors:
    """The latent factors of ``n`` pairs.

    ``first``, ``second``: int64 ``[n, d]``; ``label``: int64 ``[n]``, the factor the label
    variants keep private (the last factor picked for change); ``changed``: bool ``[n, d]``,
    the factors picked for change (with ``dlib`` a picked factor may keep its value, so
    ``changed`` can be wider than ``first != second``).
    """

    first: np.ndarray
    second: np.ndarray
    label: np.ndarray
    changed: np.ndarray

    def __len__(self) -> int:
        return int(self.first.shape[0])


def check_pairs(k, sampler: str, data, *, key: str = "data.pairs", k_key: str | None = None, sampler_key: str | None = None,
                error: type[Exception] = ParameterError) -> None:
    """Refuse a ``k`` or ``sampler`` that cannot make pairs on ``data`` (a data set).

    ``k`` must be ``-1`` (drawn per pair) or an integer in ``[1, d - 1]``: a pair must change
    at least one factor and share at least one. A data set with a single factor cannot make
    pairs at all; the ``paper`` sampler needs every factor to have two values or more.
    Messages name ``key``, ``k_key`` (default ``<key>.k``) and ``sampler_key`` (``<key>.sampler``).
    """
    k_key = k_key or f"{key}.k"
    sampler_key = sampler_key or f"{key}.sampler"
    check_choice(sampler_key, sampler, SAMPLERS, error=error)
    d = int(data.num_factors)
    name = getattr(data, "name", type(data).__name__)
    if d < 2:
        raise error(message(
            f"{key}", "used with a data set of at least two factors (a pair changes some factors and shares the others)",
            f"{name} with {d} factor", fix="choose another data set, or train an unsupervised objective without data.pairs"))
    rule = f"-1 (drawn uniformly in [1, {d - 1}] for every pair) or an integer in [1, {d - 1}]"
    why = f"{name} has {d} factors; a pair changes at least one and shares at least one"
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise error(message(k_key, rule, k, why=why))
    if k != RANDOM_K and not 1 <= k <= d - 1:
        raise error(message(k_key, rule, k, why=why))
    if sampler == "paper":
        for factor, size in zip(data.factor_names, data.factor_sizes):
            if size < 2:
                raise error(message(
                    sampler_key, "'dlib' here (the paper sampler changes every picked factor to another value)",
                    sampler, why=f"factor {factor!r} of {name} has a single value"))


def sample_pair_factors(data, n: int, *, rng: np.random.Generator, sampler: str = "dlib", k: int = 1) -> PairFactors:
    """The factors of ``n`` pairs on ``data``, drawn from ``rng`` in one vectorised call."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
                        "create one with numpy.random.default_rng(seed)")
    check_int("number of pairs", n, low=0)
    check_pairs(k, sampler, data, key="pairs", k_key="k", sampler_key="sampler")
    d = int(data.num_factors)
    sizes = np.asarray(data.factor_sizes, dtype=np.int64)
    first = data.sample_factors(int(n), rng=rng)
    per_pair_k = rng.integers(1, d, size=n, dtype=np.int64) if k == RANDOM_K else np.full(n, int(k), dtype=np.int64)
    if sampler == "dlib":
        # the reference's ``choice([1, k])``: either entry with probability 1/2 (both are 1 when k = 1)
        count = np.where(rng.integers(0, 2, size=n, dtype=np.int64) == 0, 1, per_pair_k)
    else:
        count = per_pair_k
    # A uniformly random order of the factors per pair: its first ``count`` entries are a
    # uniform draw of ``count`` distinct factors in random order, as ``choice(d, count,
    # replace=False)``, and the last of them is a uniformly chosen one among them.
    order = rng.permuted(np.broadcast_to(np.arange(d, dtype=np.int64), (n, d)), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(d, dtype=np.int64), (n, d)), axis=1)
    changed = rank < count[:, None]
    label = order[np.arange(n), count - 1] if n else np.zeros(0, dtype=np.int64)
    if sampler == "dlib":
        new = rng.integers(0, sizes, size=(n, d), dtype=np.int64)  # uniform over the values, possibly the same
    else:
        # uniform over the other values: an offset in [1, size - 1] from the first image's value
        new = (first + 1 + rng.integers(0, sizes - 1, size=(n, d), dtype=np.int64)) % sizes
    second = np.where(changed, new, first)
    return PairFactors(first, second, label.astype(np.int64), changed)


def pair_observations(data, pairs: PairFactors, *, rng) -> np.ndarray:
    """Float32 ``[2n, C, H, W]``: the ``n`` first images, then the ``n`` second images."""
    return np.concatenate([data.observations_from_factors(pairs.first, rng=rng),
                           data.observations_from_factors(pairs.second, rng=rng)])


def pair_rows(data, pairs: PairFactors, *, rng) -> np.ndarray:
    """Int64 ``[2n]``: the rows of :meth:`~disentangled.data.base.GroundTruthData.image_table`
    holding :func:`pair_observations` (same draws from ``rng``, for a data set with a table)."""
    first = data.complete_factors(pairs.first, rng=rng)
    second = data.complete_factors(pairs.second, rng=rng)
    return np.concatenate([data.space.index(first), data.space.index(second)])


__all__ = ["RANDOM_K", "SAMPLERS", "PairFactors", "check_pairs", "pair_observations", "pair_rows", "sample_pair_factors"]
