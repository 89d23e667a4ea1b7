"""Separated Attribute Predictability (Kumar et al., 2018), as disentanglement_lib computes it.

Score matrix ``S [D codes, K factors]``: for discrete factors (the study's setting), the test
accuracy of ``LinearSVC(C=0.01, class_weight="balanced")`` fitted on the single code i to
predict factor j; for continuous factors, the squared correlation of code i and factor j on
the training sample (0 if the code's variance is at most 1e-12). The SAP score is the mean
over factors of the gap between the two best codes.

LinearSVC's solver is randomised (the reference passes no seed); here its seed is drawn
from the metric's ``rng``, so the score is deterministic given the rng, and agrees with the
reference to within the solver's tolerance (see docs/metrics.md).

Defined edge cases: factors with a single value in the training sample are left out; with
a single code the second-best score is taken as 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..data.base import check_rng
from ..errors import ParameterError
from .base import check_positive, namespaced
from .sampling import resolve_cache, sample_codes
from .utils import check_pair, require_informative, seed_from, top_two_gap


def sap_matrix(codes, factors, codes_test=None, factors_test=None, *, continuous: bool = False, rng=None, n_jobs=None):
    """The score matrix ``[D, K]`` (see the module docstring)."""
    codes, factors = check_pair(codes, factors, "sap")
    if continuous:
        return _continuous_matrix(codes, factors)
    if codes_test is None:
        codes_test, factors_test = codes, factors
    codes_test, factors_test = check_pair(codes_test, factors_test, "sap", min_points=1, suffix="_test")
    if codes_test.shape[1] != codes.shape[1] or factors_test.shape[1] != factors.shape[1]:
        raise ParameterError("sap: training and test arrays must have the same number of codes and factors")
    rng = np.random.default_rng(0) if rng is None else check_rng(rng)
    d, k = codes.shape[1], factors.shape[1]
    seeds = [[seed_from(rng) for _ in range(k)] for _ in range(d)]
    jobs = [(codes[:, i], factors[:, j], codes_test[:, i], factors_test[:, j], seeds[i][j]) for i in range(d) for j in range(k)]
    if n_jobs is None:
        from .predictors import default_jobs

        n_jobs = default_jobs(codes.shape[0] * d * k * 4)
    if n_jobs > 1 and len(jobs) > 1:
        from joblib import delayed

        from .predictors import worker_pool

        values = worker_pool(n_jobs)(delayed(_svm_accuracy)(*job) for job in jobs)
    else:
        values = [_svm_accuracy(*job) for job in jobs]
    return np.asarray(values, dtype=np.float64).reshape(d, k)


def _svm_accuracy(code, factor, code_test, factor_test, seed) -> float:
    from sklearn.svm import LinearSVC

    classes = np.unique(factor)
    if classes.size < 2:
        return float(np.mean(factor_test == classes[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at C=0.01, as in the study
        model = LinearSVC(C=0.01, class_weight="balanced", random_state=seed).fit(code[:, None], factor)
    return float(np.mean(model.predict(code_test[:, None]) == factor_test))


def _continuous_matrix(codes, factors):
    d, k = codes.shape[1], factors.shape[1]
    out = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            cov = np.cov(codes[:, i], factors[:, j], ddof=1)
            if cov[0, 0] > 1e-12:
                out[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1])
    return out


def sap(codes, factors, codes_test=None, factors_test=None, *, continuous: bool = False, rng=None, n_jobs=None) -> float:
    """SAP score; without test arrays the training arrays serve as both."""
    codes, factors = check_pair(codes, factors, "sap")
    keep = require_informative(factors, "sap")
    if factors_test is not None:
        factors_test = np.asarray(factors_test)[:, keep] if np.ndim(factors_test) == 2 else factors_test
    matrix = sap_matrix(codes, factors[:, keep], codes_test, factors_test, continuous=continuous, rng=rng, n_jobs=n_jobs)
    return float(np.mean(top_two_gap(matrix)))


@dataclass(frozen=True)
class SAP:
    """SAP with the study's settings (``sap_score.gin``): 10,000/5,000 points, discrete factors."""

    name: ClassVar[str] = "sap"
    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = 16
    continuous_factors: bool = False
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        check_positive(self.name, num_train=self.num_train, num_test=self.num_test, batch_size=self.batch_size)

    def score(self, codes, factors, codes_test=None, factors_test=None, *, rng=None) -> dict[str, float]:
        value = sap(codes, factors, codes_test, factors_test, continuous=self.continuous_factors, rng=rng, n_jobs=self.n_jobs)
        return namespaced(self.name, {"sap_score": value})

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        cache = resolve_cache(data, representation, cache)
        train = sample_codes(data, representation, self.num_train, rng=rng, batch_size=self.batch_size, cache=cache)
        test = sample_codes(data, representation, self.num_test, rng=rng, batch_size=self.batch_size, cache=cache)
        return self.score(*train, *test, rng=rng)
