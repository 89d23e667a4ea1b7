"""Downstream classification under covariate shift (disentanglement_lib's ``strong_downstream_task``).

For each training size: a training and a test sample; one classifier per factor gives the
ordinary accuracies. Then, for each target factor i and each of ``n_experiment``
repetitions, an intervention: another factor j and a value v are drawn, factor j is set to
v in the whole training sample and drawn from the *other* values of j in the test sample;
the images are rendered and encoded again and a classifier of factor i is fitted on the
shifted training sample and tested on the shifted test sample. A representation that
separates factor i from factor j should not care.

Keys per training size n (the reference writes ``n:...``): ``n.mean_train_accuracy``,
``n.mean_test_accuracy`` (ordinary), ``n.mean_strong_train_accuracy``,
``n.mean_strong_test_accuracy`` (under the shift, over targets and repetitions) and
``n.strong_generalization_gap = 1 - mean_strong_test_accuracy / mean_test_accuracy``.

Differences from the reference, which ships no configuration (its settings are required):
the interventions are drawn from the metric's rng (the reference draws them from the
global ``numpy.random``, so its scores cannot be reproduced); the defaults (10,000 training
points, 5,000 test points, 10 repetitions, boosted trees) are this package's choice: the
study's downstream sizes and the reference's default for ``n_experiment``. Only factors
with at least two values can be intervened on. The sample is drawn whole, as in the
reference: factors of the training and of the test sample, then their images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ParameterError, check_choice, check_int
from .base import check_positive, namespaced
from .downstream import _check_sizes
from .fairness import check_factors
from .predictors import BACKENDS, PREDICTORS, _fit_one, default_jobs, fit_factors, worker_pool
from .sampling import Encoder, resolve_cache
from .utils import as_codes, randint, seed_from


def intervene(factors_train, factors_test, target: int, sizes, *, rng):
    """The reference's ``intervene``: ``(train, test, factor j, value v)`` with j != target.

    Copies of the samples with factor j set to v in every training point and drawn
    uniformly from the other values of j in every test point. j is drawn uniformly among
    the other factors that have at least two values.
    """
    sizes = list(sizes)
    candidates = [j for j in range(len(sizes)) if j != target and sizes[j] >= 2]
    if not candidates:
        raise ParameterError(
            f"strong_downstream: predicting factor {target} needs another factor with at least two values to intervene on; "
            f"the factor sizes are {sizes}"
        )
    j = candidates[int(randint(rng, len(candidates), None))]
    value = int(randint(rng, sizes[j], None))
    others = np.array([v for v in range(sizes[j]) if v != value], dtype=np.int64)
    train = np.array(factors_train, dtype=np.int64, copy=True)
    test = np.array(factors_test, dtype=np.int64, copy=True)
    train[:, j] = value
    test[:, j] = others[randint(rng, others.size, test.shape[0])]
    return train, test, j, value


@dataclass(frozen=True)
class StrongDownstream:
    """Strong generalisation of per-factor classifiers (``strong_downstream_task``).

    ``predictor``: "gradient_boosting" (default, as the reference's test binds it) or
    "logistic_regression_cv"; ``backend``: "fast" or "sklearn" boosted trees.
    """

    name: ClassVar[str] = "strong_downstream"
    num_train: tuple[int, ...] = (10_000,)
    num_test: int = 5_000
    n_experiment: int = 10
    predictor: str = "gradient_boosting"
    backend: str = "fast"
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        _check_sizes(self)
        check_positive(self.name, num_test=self.num_test, n_experiment=self.n_experiment)
        check_choice(f"{self.name}: predictor", self.predictor, PREDICTORS)
        check_choice(f"{self.name}: backend", self.backend, BACKENDS)
        if self.predictor == "logistic_regression_cv":
            for n in self.num_train:
                check_int(f"{self.name}: each size in num_train", n, low=5, why="5-fold cross-validation")

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        check_factors(self.name, data)
        cache = resolve_cache(data, representation, cache)
        sizes = data.factor_sizes
        k = data.num_factors
        out = {}
        for size in self.num_train:
            # every draw first, in the reference's order; the fits draw nothing
            train = data.sample_factors(size, rng=rng)
            test = data.sample_factors(self.num_test, rng=rng)
            encoder = Encoder(data, representation, cache=cache)
            encoder.add(train, rng)
            encoder.add(test, rng)
            shifted = []
            for i in range(k):
                for _ in range(self.n_experiment):
                    f_train, f_test, _, _ = intervene(train, test, i, sizes, rng=rng)
                    encoder.add(f_train, rng)
                    encoder.add(f_test, rng)
                    shifted.append((i, f_train[:, i], f_test[:, i]))
            codes = as_codes(encoder.codes(), self.name)
            seeds = [seed_from(rng) for _ in range(k + len(shifted))]
            plain = fit_factors(self.predictor, codes[:size], train, codes[size : size + self.num_test], test,
                                backend=self.backend, n_jobs=self.n_jobs, rng=np.random.default_rng(seeds[0]))
            jobs = []
            pos = size + self.num_test
            for (i, y_train, y_test), seed in zip(shifted, seeds[k:]):
                x_train, x_test = codes[pos : pos + size], codes[pos + size : pos + size + self.num_test]
                pos += size + self.num_test
                jobs.append((self.predictor, self.backend, x_train, y_train, x_test, y_test, seed))
            n_jobs = self.n_jobs or default_jobs(size * len(jobs) * 10)
            if n_jobs > 1 and len(jobs) > 1:
                from joblib import delayed

                fits = worker_pool(n_jobs)(delayed(_fit_one)(*job) for job in jobs)
            else:
                fits = [_fit_one(*job) for job in jobs]
            test_accuracy = float(np.mean([f.test_accuracy for f in plain]))
            strong_test = float(np.mean([f.test_accuracy for f in fits]))
            values = {
                "mean_train_accuracy": float(np.mean([f.train_accuracy for f in plain])),
                "mean_test_accuracy": test_accuracy,
                "mean_strong_train_accuracy": float(np.mean([f.train_accuracy for f in fits])),
                "mean_strong_test_accuracy": strong_test,
                "strong_generalization_gap": 1.0 - strong_test / test_accuracy if test_accuracy > 0 else float("nan"),
            }
            out.update(namespaced(self.name, {f"{size}.{key}": value for key, value in values.items()}))
        return out
