"""Per-factor classifiers of the metrics, fitted in parallel over factors.

Two predictors appear in the study (disentanglement_lib's ``utils.py``):

* ``gradient_boosting``: ``GradientBoostingClassifier()`` with scikit-learn's defaults.
  ``backend="fast"`` (the default) uses :func:`disentangled.metrics.boosting.fit_gbt`, the
  same algorithm re-implemented for speed; ``backend="sklearn"`` calls scikit-learn.
* ``logistic_regression_cv``: ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))``, other
  settings scikit-learn's defaults.

A factor that takes a single value in the training sample cannot be fitted by either; it
gets the constant predictor (which is what any classifier would learn), zero importances,
and its accuracies are computed as usual.

Allocator: the cross-validated logistic regression allocates and frees arrays of a few
MB thousands of times; glibc's malloc serves each from a fresh ``mmap`` and returns it at
once, so most of the fit is spent in page faults. A process that fits it first keeps freed
memory for reuse (:func:`disentangled.memory.keep_freed_memory`), which halves the fit's
time and changes no number.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import check_choice
from ..memory import keep_freed_memory

PREDICTORS = ("gradient_boosting", "logistic_regression_cv")
BACKENDS = ("fast", "sklearn")


@dataclass(frozen=True)
class FactorFit:
    importance: np.ndarray  # [D] (zeros for predictors without importances)
    train_accuracy: float
    test_accuracy: float


# Seconds a worker of the fits' pool may idle before it exits (joblib's default): the metrics
# of one evaluation follow each other, so one pool serves them all.
POOL_IDLE_TIMEOUT_S = 300


def worker_pool(n_jobs: int, *, deferred: bool = False):
    """The metrics' pool of worker processes (joblib, loky), one configuration for all of them,
    so that the metrics of an evaluation reuse the same workers instead of restarting them.

    ``deferred``: calling the pool returns at once, with a generator of the results in task
    order, while the workers compute them (every task is handed over at the call). The
    arguments are always sent whole (no memory-mapped copies, which belong to one call's
    temporary folder and must not be shared by calls that overlap); the metrics' arrays are
    codes of a few MB at most.
    """
    from joblib import Parallel

    if deferred:
        return Parallel(n_jobs=n_jobs, backend="loky", idle_worker_timeout=POOL_IDLE_TIMEOUT_S, max_nbytes=None,
                        return_as="generator", pre_dispatch="all")
    return Parallel(n_jobs=n_jobs, backend="loky", idle_worker_timeout=POOL_IDLE_TIMEOUT_S, max_nbytes=None)


def default_jobs(work: float) -> int:
    """Worker processes for ``work`` (points x trees or similar): 1 for small jobs."""
    cpus = os.cpu_count() or 1
    return 1 if work < 2e5 or cpus < 2 else cpus


def fit_factors(
    predictor: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    backend: str = "fast",
    n_jobs: int | None = None,
    rng=None,
) -> list[FactorFit]:
    """Fit one classifier per factor column of ``y_train`` ``[N, K]``; score on train and test.

    ``rng`` seeds the boosted trees' tie-breaking (one seed drawn per factor; default: fixed
    seeds), so results are deterministic given it.
    """
    return fit_samples(predictor, [(x_train, y_train, x_test, y_test)], backend=backend, n_jobs=n_jobs, rng=rng)[0]


def fit_samples(predictor: str, samples, *, backend: str = "fast", n_jobs: int | None = None, rng=None) -> list[list[FactorFit]]:
    """:func:`fit_factors` for several samples ``(x_train, y_train, x_test, y_test)`` at once.

    All the (sample, factor) fits share one pool of workers, the costliest first, so the
    downstream tasks' training sizes keep every core busy (one size at a time leaves cores
    idle behind its largest factor, and the small sizes would not be worth a pool alone).
    Each fit is the one :func:`fit_factors` would make: the same inputs and seeds (drawn from
    ``rng`` sample by sample, factor by factor), so the same results.
    """
    return submit_samples(predictor, samples, backend=backend, n_jobs=n_jobs, rng=rng).result()


class PendingFits:
    """Fits handed to the worker pool: :meth:`result` waits for them (the caller may do other
    work meanwhile); ``[sample][factor]`` as :func:`fit_samples` returns them."""

    def __init__(self, outputs, order, where, shape):
        self._outputs, self._order, self._where, self._shape = outputs, order, where, shape
        self._fits = None

    def result(self) -> list[list[FactorFit]]:
        if self._fits is None:
            results = [None] * len(self._order)
            for t, res in zip(self._order, self._outputs):
                results[t] = res
            fits: list[list] = [[None] * k for k in self._shape]
            for (s, j), res in zip(self._where, results):
                fits[s][j] = res
            self._fits, self._outputs = fits, None
        return self._fits


def submit_samples(predictor: str, samples, *, backend: str = "fast", n_jobs: int | None = None, rng=None) -> PendingFits:
    """:func:`fit_samples`, returning as soon as the fits are handed to the pool (with one
    worker they are made here, before it returns); the seeds are drawn from ``rng`` now."""
    check_choice("predictor", predictor, PREDICTORS)
    check_choice("backend", backend, BACKENDS)
    if rng is not None:
        from .utils import seed_from
    tasks, cost, where = [], [], []
    for s, (x_train, y_train, x_test, y_test) in enumerate(samples):
        k = y_train.shape[1]
        seeds = list(range(k)) if rng is None else [seed_from(rng) for _ in range(k)]
        for j in range(k):
            tasks.append((predictor, backend, x_train, y_train[:, j], x_test, y_test[:, j], seeds[j]))
            # both predictors' work grows with points x classes (one tree or one weight row per class)
            cost.append(x_train.shape[0] * len(np.unique(y_train[:, j])))
            where.append((s, j))
    if n_jobs is None:
        n_jobs = default_jobs(sum(cost))
    n_jobs = max(1, min(int(n_jobs), len(tasks)))
    shape = [y.shape[1] for _, y, _, _ in samples]
    if n_jobs == 1:
        return PendingFits([_fit_one(*task) for task in tasks], list(range(len(tasks))), where, shape)
    from joblib import delayed

    order = sorted(range(len(tasks)), key=lambda t: -cost[t])  # largest first, so the workers finish together
    outputs = worker_pool(n_jobs, deferred=True)(delayed(_fit_one)(*tasks[t]) for t in order)
    return PendingFits(outputs, order, where, shape)


def _fit_one(predictor, backend, x_train, y_train, x_test, y_test, seed) -> FactorFit:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit_one_inner(predictor, backend, x_train, y_train, x_test, y_test, seed)


def _fit_one_inner(predictor, backend, x_train, y_train, x_test, y_test, seed) -> FactorFit:
    d = x_train.shape[1]
    values = np.unique(y_train)
    if values.size < 2:
        pred_train = np.full(y_train.shape, values[0])
        pred_test = np.full(y_test.shape, values[0])
        importance = np.zeros(d)
    elif predictor == "gradient_boosting" and backend == "fast":
        from .boosting import fit_gbt

        res = fit_gbt(x_train, y_train, x_test, random_state=seed)
        pred_train, pred_test, importance = res.predict_train, res.predict_test, res.importances
    elif predictor == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
        pred_train, pred_test = model.predict(x_train), model.predict(x_test)
        importance = np.abs(model.feature_importances_)
    else:
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.model_selection import KFold

        keep_freed_memory()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence and small-fold warnings, as in the study
            # C chosen by accuracy, as the reference's scikit-learn did by default (from
            # scikit-learn 1.11 the default is the log-loss, which picks other models)
            model = LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), scoring="accuracy").fit(x_train, y_train)
        pred_train, pred_test = model.predict(x_train), model.predict(x_test)
        importance = np.zeros(d)
    return FactorFit(
        importance=np.asarray(importance, dtype=np.float64),
        train_accuracy=float(np.mean(pred_train == y_train)),
        test_accuracy=float(np.mean(pred_test == y_test)) if y_test.size else float("nan"),
    )
