"""Disentanglement, Completeness and Informativeness (Eastwood & Williams, 2018).

As in disentanglement_lib: for each factor a ``GradientBoostingClassifier()`` is fitted on
the training codes; the absolute feature importances form the importance matrix
``R [D codes, K factors]``; informativeness is the mean classification **accuracy** over
factors (train and test; the reference's keys say "informativeness" for accuracy).

* Disentanglement: per code ``1 - H_K(R_i / sum_k R_ik)`` (entropy in base K, each entry
  plus 1e-11), weighted by the code's share of the total importance.
* Completeness: per factor ``1 - H_D(R_k / sum_i R_ik)`` (base D), weighted by the factor's
  share of the total importance. An all-zero matrix gets uniform weights.

Defined edge cases: factors with a single value in the training sample are left out; with
a single factor (or a single code) the entropy of the one-outcome distribution is 0, so
disentanglement (or completeness) is 1 (the reference divides by log 1 = 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ParameterError, check_choice
from .base import Pending, PooledMetric, check_positive, namespaced
from .predictors import BACKENDS, submit_samples
from .sampling import resolve_cache, sample_codes
from .utils import check_pair, require_informative


def _entropy_columns(p: np.ndarray) -> np.ndarray:
    """Entropy of each column of ``p`` (normalised first) in base = number of rows."""
    size = p.shape[0]
    if size <= 1:
        return np.zeros(p.shape[1])
    q = p / np.sum(p, axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, -q * np.log(q), 0.0)
    return np.sum(terms, axis=0) / np.log(size)


def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    return 1.0 - _entropy_columns(np.asarray(importance, dtype=np.float64).T + 1e-11)


def disentanglement(importance) -> float:
    """Disentanglement of an importance matrix ``[D codes, K factors]``."""
    importance = np.asarray(importance, dtype=np.float64)
    per_code = disentanglement_per_code(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    code_importance = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_code * code_importance))


def completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    return 1.0 - _entropy_columns(np.asarray(importance, dtype=np.float64) + 1e-11)


def completeness(importance) -> float:
    """Completeness of an importance matrix ``[D codes, K factors]``."""
    importance = np.asarray(importance, dtype=np.float64)
    per_factor = completeness_per_factor(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    factor_importance = importance.sum(axis=0) / importance.sum()
    return float(np.sum(per_factor * factor_importance))


def importance_matrix(
    codes_train, factors_train, codes_test=None, factors_test=None, *, backend: str = "fast", n_jobs: int | None = None, rng=None
):
    """``(R [D, K], train accuracies [K], test accuracies [K])`` from boosted trees per factor."""
    return _start_importance(codes_train, factors_train, codes_test, factors_test, backend=backend, n_jobs=n_jobs, rng=rng)()


def _start_importance(codes_train, factors_train, codes_test, factors_test, *, backend, n_jobs, rng):
    """Hand the per-factor fits to the pool; returns the function that waits for
    :func:`importance_matrix`'s result."""
    codes_train, factors_train = check_pair(codes_train, factors_train, "dci")
    if codes_test is None:
        codes_test, factors_test = codes_train, factors_train
    codes_test, factors_test = check_pair(codes_test, factors_test, "dci", min_points=1, suffix="_test")
    if codes_test.shape[1] != codes_train.shape[1] or factors_test.shape[1] != factors_train.shape[1]:
        raise ParameterError("dci: training and test arrays must have the same number of codes and factors")
    keep = require_informative(factors_train, "dci")
    sample = (codes_train, factors_train[:, keep], codes_test, factors_test[:, keep])
    pending = submit_samples("gradient_boosting", [sample], backend=backend, n_jobs=n_jobs, rng=rng)

    def finish():
        fits = pending.result()[0]
        matrix = np.stack([f.importance for f in fits], axis=1)
        train = np.array([f.train_accuracy for f in fits])
        test = np.array([f.test_accuracy for f in fits])
        return np.abs(matrix), train, test

    return finish


def dci(codes_train, factors_train, codes_test=None, factors_test=None, *, backend: str = "fast", n_jobs=None, rng=None) -> dict:
    """DCI scores; without test arrays the training arrays serve as both.

    ``rng`` breaks the boosted trees' exact ties between codes (default: fixed seeds).
    """
    return _start_dci(codes_train, factors_train, codes_test, factors_test, backend=backend, n_jobs=n_jobs, rng=rng)()


def _start_dci(codes_train, factors_train, codes_test, factors_test, *, backend, n_jobs, rng):
    importance = _start_importance(codes_train, factors_train, codes_test, factors_test, backend=backend, n_jobs=n_jobs, rng=rng)

    def finish():
        matrix, train, test = importance()
        return {
            "disentanglement": disentanglement(matrix),
            "completeness": completeness(matrix),
            "informativeness_train": float(np.mean(train)),
            "informativeness_test": float(np.mean(test)),
        }

    return finish


@dataclass(frozen=True)
class DCI(PooledMetric):
    """DCI with the study's settings (``dci.gin``): 10,000 training and 5,000 test points.

    ``backend``: "fast" (default, this package's boosted trees) or "sklearn".
    ``n_jobs``: worker processes for the per-factor fits (None: all cores for large jobs).
    """

    name: ClassVar[str] = "dci"
    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = 16
    backend: str = "fast"
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        check_positive(self.name, num_train=self.num_train, num_test=self.num_test, batch_size=self.batch_size)
        check_choice("dci: backend", self.backend, BACKENDS)

    def score(self, codes, factors, codes_test=None, factors_test=None, *, rng=None) -> dict[str, float]:
        values = dci(codes, factors, codes_test, factors_test, backend=self.backend, n_jobs=self.n_jobs, rng=rng)
        return namespaced(self.name, values)

    def start(self, data, representation, *, rng, cache=None) -> Pending:
        cache = resolve_cache(data, representation, cache)
        train = sample_codes(data, representation, self.num_train, rng=rng, batch_size=self.batch_size, cache=cache)
        test = sample_codes(data, representation, self.num_test, rng=rng, batch_size=self.batch_size, cache=cache)
        finish = _start_dci(*train, *test, backend=self.backend, n_jobs=self.n_jobs, rng=rng)
        return Pending(lambda: namespaced(self.name, finish()))
