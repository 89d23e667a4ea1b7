"""Downstream classification tasks (disentanglement_lib's ``downstream_task``).

For each training size (10, 100, 1,000 and 10,000 in the study), a fresh training sample and
a fresh test sample of 5,000 points; one classifier per factor predicts the factor from the
codes. Two predictors appear in the study: ``LogisticRegressionCV(Cs=10, cv=KFold(5))`` and
``GradientBoostingClassifier()`` (see :mod:`disentangled.metrics.predictors`).

Keys per training size n: ``n.mean_train_accuracy``, ``n.mean_test_accuracy``,
``n.min_train_accuracy``, ``n.min_test_accuracy``, ``n.train_accuracy_factor_<i>`` and
``n.test_accuracy_factor_<i>`` (the reference writes ``n:...``).

A factor with a single value in a training sample gets the constant predictor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ParameterError, check, check_choice, check_int
from .base import Pending, PooledMetric, check_positive, namespaced
from .predictors import BACKENDS, fit_samples, submit_samples
from .sampling import resolve_cache, sample_codes
from .utils import check_pair

MIN_TRAIN_CV = 5  # LogisticRegressionCV's 5 folds need 5 training points


def downstream_scores(
    codes_train, factors_train, codes_test, factors_test, *, predictor: str, backend: str = "fast", n_jobs=None, prefix="", rng=None
) -> dict:
    """Accuracies of per-factor classifiers trained on one sample and tested on another."""
    sample = _checked_sample(predictor, codes_train, factors_train, codes_test, factors_test)
    fits = fit_samples(predictor, [sample], backend=backend, n_jobs=n_jobs, rng=rng)[0]
    return _accuracies(fits, prefix)


def _checked_sample(predictor, codes_train, factors_train, codes_test, factors_test):
    metric = "downstream_" + ("logistic_regression" if predictor == "logistic_regression_cv" else "boosted_trees")
    codes_train, factors_train = check_pair(codes_train, factors_train, metric, min_points=1)
    codes_test, factors_test = check_pair(codes_test, factors_test, metric, min_points=1, suffix="_test")
    if predictor == "logistic_regression_cv" and codes_train.shape[0] < MIN_TRAIN_CV:
        raise ParameterError(
            f"{metric}: 5-fold cross-validation needs at least {MIN_TRAIN_CV} training points, got {codes_train.shape[0]}"
        )
    return codes_train, factors_train, codes_test, factors_test


def _accuracies(fits, prefix: str) -> dict:
    train = [f.train_accuracy for f in fits]
    test = [f.test_accuracy for f in fits]
    out = {
        f"{prefix}mean_train_accuracy": float(np.mean(train)),
        f"{prefix}mean_test_accuracy": float(np.mean(test)),
        f"{prefix}min_train_accuracy": float(np.min(train)),
        f"{prefix}min_test_accuracy": float(np.min(test)),
    }
    for i, (a, b) in enumerate(zip(train, test)):
        out[f"{prefix}train_accuracy_factor_{i}"] = a
        out[f"{prefix}test_accuracy_factor_{i}"] = b
    return out


def _check_sizes(metric) -> None:
    """``num_train`` as a tuple (a list, as YAML and JSON give it, is accepted), each size positive."""
    num_train = metric.num_train
    if isinstance(num_train, (list, tuple)):
        object.__setattr__(metric, "num_train", tuple(num_train))
    check(f"{metric.name}: num_train", num_train, lambda v: isinstance(v, (list, tuple)) and len(v) > 0,
          "a non-empty list of training sizes such as [10, 100, 1000]")
    for n in num_train:
        check_positive(metric.name, num_train=n)


@dataclass(frozen=True)
class DownstreamLogisticRegression(PooledMetric):
    """Downstream task with ``LogisticRegressionCV`` (``downstream_task_logistic_regression.gin``)."""

    name: ClassVar[str] = "downstream_logistic_regression"
    predictor: ClassVar[str] = "logistic_regression_cv"
    num_train: tuple[int, ...] = (10, 100, 1_000, 10_000)
    num_test: int = 5_000
    batch_size: int = 16
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        _check_sizes(self)
        check_positive(self.name, num_test=self.num_test, batch_size=self.batch_size)
        for n in self.num_train:
            check_int(f"{self.name}: each size in num_train", n, low=MIN_TRAIN_CV, why="5-fold cross-validation")

    def score(self, codes, factors, codes_test=None, factors_test=None) -> dict[str, float]:
        if codes_test is None:
            codes_test, factors_test = codes, factors
        n = np.shape(codes)[0]
        values = downstream_scores(codes, factors, codes_test, factors_test, predictor=self.predictor, n_jobs=self.n_jobs, prefix=f"{n}.")
        return namespaced(self.name, values)

    def start(self, data, representation, *, rng, cache=None) -> Pending:
        return _start(self, data, representation, rng, cache, backend="fast")


@dataclass(frozen=True)
class DownstreamBoostedTrees(PooledMetric):
    """Downstream task with ``GradientBoostingClassifier`` (``downstream_task_boosted_trees.gin``).

    ``backend``: "fast" (default, this package's boosted trees) or "sklearn".
    """

    name: ClassVar[str] = "downstream_boosted_trees"
    predictor: ClassVar[str] = "gradient_boosting"
    num_train: tuple[int, ...] = (10, 100, 1_000, 10_000)
    num_test: int = 5_000
    batch_size: int = 16
    backend: str = "fast"
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        _check_sizes(self)
        check_positive(self.name, num_test=self.num_test, batch_size=self.batch_size)
        check_choice(f"{self.name}: backend", self.backend, BACKENDS)

    def score(self, codes, factors, codes_test=None, factors_test=None) -> dict[str, float]:
        if codes_test is None:
            codes_test, factors_test = codes, factors
        n = np.shape(codes)[0]
        values = downstream_scores(
            codes, factors, codes_test, factors_test, predictor=self.predictor, backend=self.backend, n_jobs=self.n_jobs, prefix=f"{n}."
        )
        return namespaced(self.name, values)

    def start(self, data, representation, *, rng, cache=None) -> Pending:
        return _start(self, data, representation, rng, cache, backend=self.backend)


def _start(metric, data, representation, rng, cache, backend) -> Pending:
    cache = resolve_cache(data, representation, cache)
    samples = []
    for size in metric.num_train:
        train = sample_codes(data, representation, size, rng=rng, batch_size=metric.batch_size, cache=cache)
        test = sample_codes(data, representation, metric.num_test, rng=rng, batch_size=metric.batch_size, cache=cache)
        samples.append(_checked_sample(metric.predictor, *train, *test))
    # every size's fits in one pool (the draws above are done first, in the reference's order);
    # the trees' tie-breaking uses fixed seeds: drawing them from ``rng`` would change the
    # samples of the next training size
    pending = submit_samples(metric.predictor, samples, backend=backend, n_jobs=metric.n_jobs)

    def finish():
        out = {}
        for size, size_fits in zip(metric.num_train, pending.result()):
            out.update(namespaced(metric.name, _accuracies(size_fits, f"{size}.")))
        return out

    return Pending(finish)
