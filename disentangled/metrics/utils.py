"""Shared pieces of the metrics: input checks, the discretiser, discrete information.

Arrays are samples-first: codes are float ``[N, D]``, factors int ``[N, K]``.

Discrete entropy and mutual information are computed here from their definition (natural
logarithm, plug-in estimates from the contingency table) rather than through
``sklearn.metrics.mutual_info_score``, whose behaviour changed between versions and moved
the reference's scores (disentanglement_lib issue #33).
"""

from __future__ import annotations

import numpy as np

from ..data.base import Rng, check_rng, randint  # noqa: F401  (re-exported for the metric modules)
from ..errors import ParameterError, check_int


# ---------------------------------------------------------------------------------------
# Input checks


def as_codes(codes, metric: str, *, name: str = "codes") -> np.ndarray:
    """``codes`` as a float array ``[N, D]``, or a ParameterError naming ``metric``.

    Floating arrays keep their dtype (float32 codes discretise exactly as the reference's
    float32 codes do); anything else becomes float64. NaN or infinite values are rejected
    with their count.
    """
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ParameterError(f"{metric}: {name} must be a 2-D array [num_points, num_codes], got shape {tuple(arr.shape)}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ParameterError(f"{metric}: {name} must be real numbers, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.float16:
        arr = arr.astype(np.float64)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ParameterError(
            f"{metric}: {name} contain {bad} NaN or infinite value{'s' if bad != 1 else ''} "
            f"(of {arr.size}); a representation must give finite codes"
        )
    if arr.shape[1] < 1:
        raise ParameterError(f"{metric}: {name} must have at least one code dimension, got shape {tuple(arr.shape)}")
    return arr


def as_factors(factors, metric: str, num_points: int | None = None, *, name: str = "factors") -> np.ndarray:
    """``factors`` as int64 ``[N, K]`` class labels, or a ParameterError naming ``metric``."""
    arr = np.asarray(factors)
    if arr.ndim != 2:
        raise ParameterError(f"{metric}: {name} must be a 2-D array [num_points, num_factors], got shape {tuple(arr.shape)}")
    if arr.shape[1] < 1:
        raise ParameterError(f"{metric}: {name} must have at least one factor, got shape {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == np.bool_:
            arr = arr.astype(np.int64)
        elif not np.issubdtype(arr.dtype, np.floating):
            raise ParameterError(f"{metric}: {name} must be integer class labels, got dtype {arr.dtype}")
        else:
            finite = np.isfinite(arr)
            if not finite.all():
                bad = int(arr.size - np.count_nonzero(finite))
                raise ParameterError(f"{metric}: {name} contain {bad} NaN or infinite value{'s' if bad != 1 else ''} (of {arr.size})")
            if not np.all(arr == np.round(arr)):
                raise ParameterError(
                    f"{metric}: {name} must be integer class labels (discrete factors), got non-integer values"
                )
    arr = arr.astype(np.int64, copy=False)
    if num_points is not None and arr.shape[0] != num_points:
        raise ParameterError(f"{metric}: {name} have {arr.shape[0]} points but the codes have {num_points}")
    return arr


def check_pair(codes, factors, metric: str, *, min_points: int = 2, suffix: str = ""):
    """Checked ``(codes, factors)`` with the same number of points, at least ``min_points``."""
    codes = as_codes(codes, metric, name="codes" + suffix)
    factors = as_factors(factors, metric, codes.shape[0], name="factors" + suffix)
    if codes.shape[0] < min_points:
        raise ParameterError(f"{metric}: needs at least {min_points} points{suffix.replace('_', ' ')}, got {codes.shape[0]}")
    return codes, factors


def informative_factors(factors: np.ndarray) -> np.ndarray:
    """Indices of the factors that take more than one value in ``factors`` ``[N, K]``.

    A factor with a single value carries no information (its entropy is 0), so the metrics
    that average over factors leave it out (the reference divides by zero or fails inside
    scikit-learn there).
    """
    if factors.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    varies = np.any(factors != factors[:1], axis=0)
    return np.flatnonzero(varies)


def require_informative(factors: np.ndarray, metric: str) -> np.ndarray:
    keep = informative_factors(factors)
    if keep.size == 0:
        raise ParameterError(
            f"{metric}: every factor takes a single value in the sample, so there is nothing to score"
        )
    return keep


def is_constant(codes: np.ndarray) -> np.ndarray:
    """Boolean ``[D]``: which code dimensions take a single value."""
    return np.all(codes == codes[:1], axis=0) if codes.shape[0] else np.ones(codes.shape[1], bool)


# ---------------------------------------------------------------------------------------
# Discretisation and discrete information


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Per code dimension, the index (1..num_bins) of its equal-width histogram bin.

    Each dimension gets ``num_bins`` bins spanning its own minimum to maximum (the edges
    ``numpy.histogram`` uses); a value is assigned the number of inner edges it reaches, so
    the maximum falls in the last bin. A constant dimension lands in a single bin.
    Returns int64 ``[N, D]``.
    """
    check_int("num_bins", num_bins, low=1)
    codes = np.asarray(codes)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        column = codes[:, j]
        edges = np.histogram_bin_edges(column, bins=int(num_bins))
        out[:, j] = np.searchsorted(edges[:-1], column, side="right")
    return out


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels mapped to 0..m-1 (m distinct values)."""
    uniques, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), int(uniques.size)


def _entropy_from_counts(counts: np.ndarray, total: int) -> float:
    counts = counts[counts > 0].astype(np.float64)
    if counts.size <= 1:
        return 0.0
    p = counts / total
    return float(-np.sum(p * np.log(p)))


def discrete_entropy(labels) -> np.ndarray:
    """Plug-in entropy (nats) of each column of integer labels ``[N, K]`` -> ``[K]``."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    n = labels.shape[0]
    out = np.zeros(labels.shape[1])
    for k in range(labels.shape[1]):
        dense, m = _dense_labels(labels[:, k])
        out[k] = _entropy_from_counts(np.bincount(dense, minlength=m), n)
    return out


def _mutual_info_dense(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> float:
    """Plug-in mutual information (nats) of two dense label vectors."""
    n = a.shape[0]
    if n == 0 or na <= 1 or nb <= 1:
        return 0.0
    joint = np.bincount(a * nb + b, minlength=na * nb).astype(np.float64)
    nz = joint > 0
    pa = np.bincount(a, minlength=na).astype(np.float64)
    pb = np.bincount(b, minlength=nb).astype(np.float64)
    outer = np.outer(pa, pb).reshape(-1)[nz]
    nij = joint[nz]
    # sum_ij (n_ij / n) * log(n * n_ij / (n_i * n_j))
    value = float(np.sum(nij / n * (np.log(nij) + np.log(n) - np.log(outer))))
    return max(value, 0.0)


def discrete_mutual_info(codes, factors) -> np.ndarray:
    """Mutual information (nats) between every column pair: ``[N, D]`` x ``[N, K]`` -> ``[D, K]``.

    Both arguments are integer labels (discretised codes, factors).
    """
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    dense_a = [_dense_labels(codes[:, i]) for i in range(codes.shape[1])]
    dense_b = dense_a if factors is codes else [_dense_labels(factors[:, j]) for j in range(factors.shape[1])]
    out = np.zeros((codes.shape[1], factors.shape[1]))
    for i, (a, na) in enumerate(dense_a):
        for j, (b, nb) in enumerate(dense_b):
            out[i, j] = _mutual_info_dense(a, na, b, nb)
    return out


# ---------------------------------------------------------------------------------------
# Small numeric helpers


def top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column of ``matrix`` ``[D, K]``, the largest entry minus the second largest.

    With a single row the second largest is taken as 0.
    """
    if matrix.shape[0] == 1:
        return matrix[0].astype(np.float64)
    ordered = np.sort(matrix, axis=0)
    return ordered[-1] - ordered[-2]


def normalized_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy along ``axis`` of the (unnormalised, non-negative) weights ``p`` in base = length.

    ``p`` is normalised along ``axis`` first, as ``scipy.stats.entropy`` does. With a single
    entry along ``axis`` the entropy is 0 (base 1 is undefined; one outcome is certain).
    """
    size = p.shape[axis]
    if size <= 1:
        shape = list(p.shape)
        del shape[axis]
        return np.zeros(shape)
    q = p / np.sum(p, axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, -q * np.log(q), 0.0)
    return np.sum(terms, axis=axis) / np.log(size)


def standardize(train: np.ndarray, test: np.ndarray | None = None):
    """Z-score with the training mean and (population) standard deviation.

    A constant dimension (standard deviation 0) is centred and left unscaled, so it becomes
    0 rather than NaN (the reference divides by zero there).
    """
    mean = np.mean(train, axis=0)
    std = np.std(train, axis=0)
    std = np.where(std > 0, std, np.ones_like(std))
    out_train = (train - mean) / std
    out_test = None if test is None else (test - mean) / std
    return out_train, out_test


def seed_from(rng: Rng) -> int:
    """A 31-bit seed drawn from ``rng`` for estimators that take an integer ``random_state``."""
    check_rng(rng)
    return int(randint(rng, 2**31 - 1, None))


def plain(value) -> float:
    """A Python float from a numpy scalar or 0-d array."""
    return float(np.asarray(value, dtype=np.float64))
