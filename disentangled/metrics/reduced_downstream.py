"""Downstream classification after removing the codes most informative of a factor
(disentanglement_lib's ``reduced_downstream_task``).

For each training size and each factor of interest f: starting from the full codes, the
code most important for predicting f is removed, ``num_factors_to_remove`` times, each time
recomputing the importances **on the codes that remain** (greedy); importance is DCI's,
the absolute feature importances of a ``GradientBoostingClassifier()`` fitted to predict f
(the reference's ``factorwise_dci``). Then one classifier per factor is fitted on the
reduced codes. Information about f that is left in other codes shows as accuracy on f.

Keys per training size n (the reference writes ``n:...:...``):
``n.reduced_factor_<f>.mean_<train|test>_accuracy_reduced_factor``,
``n.reduced_factor_<f>.mean_<train|test>_accuracy_factor_<i>`` for every factor i,
``n.reduced_factor_<f>.mean_<train|test>_accuracy_non_reduced_factor`` and the totals
``n.mean_<train|test>_accuracy_reduced_factor``, ``n.mean_<train|test>_accuracy_other_factors``.

The reference fits the importances of every factor to use one column; each factor's trees
are fitted independently, so fitting only f's gives the same column (and the first removal
shares one fit per factor across all f), K times fewer fits. Its classifiers are unseeded;
here their tie-breaking seeds are drawn from the metric's rng after the samples. Its
settings are required and only a test configuration ships (100 training points, 100 test
points, one code removed); the defaults here are the study's downstream sizes, one code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ParameterError, check_choice, check_int
from .base import check_positive, namespaced
from .downstream import _check_sizes
from .predictors import BACKENDS, PREDICTORS, _fit_one, fit_factors
from .sampling import resolve_cache, sample_codes
from .utils import check_pair


def reduced_downstream_scores(
    codes_train, factors_train, codes_test, factors_test, *, num_factors_to_remove: int = 1,
    predictor: str = "gradient_boosting", backend: str = "fast", n_jobs=None, rng=None, prefix: str = "",
) -> dict[str, float]:
    """The reduced downstream task's scores for one training sample (see the module docstring)."""
    metric = "reduced_downstream"
    codes_train, factors_train = check_pair(codes_train, factors_train, metric)
    codes_test, factors_test = check_pair(codes_test, factors_test, metric, min_points=1, suffix="_test")
    if codes_test.shape[1] != codes_train.shape[1] or factors_test.shape[1] != factors_train.shape[1]:
        raise ParameterError(f"{metric}: training and test arrays must have the same number of codes and factors")
    d, k = codes_train.shape[1], factors_train.shape[1]
    check_int(f"{metric}: num_factors_to_remove", num_factors_to_remove, low=0, high=d - 1,
              why=f"at least one of the {d} codes must be left to predict from")
    check_choice("predictor", predictor, PREDICTORS)
    rng = np.random.default_rng(0) if rng is None else rng
    full_importance = None
    if num_factors_to_remove:
        # the first removal of every factor looks at the same full codes: one fit per factor
        fits = fit_factors("gradient_boosting", codes_train, factors_train, codes_test, factors_test,
                           backend=backend, n_jobs=n_jobs, rng=rng)
        full_importance = np.stack([f.importance for f in fits], axis=1)
    out: dict[str, float] = {}
    reduced_train, reduced_test, other_train, other_test = [], [], [], []
    for f in range(k):
        keep = np.arange(d)
        for step in range(num_factors_to_remove):
            if step == 0:
                importance = full_importance[:, f]
            else:
                from .utils import seed_from

                fit = _fit_one("gradient_boosting", backend, codes_train[:, keep], factors_train[:, f],
                               codes_test[:, keep], factors_test[:, f], seed_from(rng))
                importance = fit.importance
            keep = np.delete(keep, int(np.argmax(importance)))  # the first of equally important codes, as numpy.argmax
        fits = fit_factors(predictor, codes_train[:, keep], factors_train, codes_test[:, keep], factors_test,
                           backend=backend, n_jobs=n_jobs, rng=rng)
        train = [fit.train_accuracy for fit in fits]
        test = [fit.test_accuracy for fit in fits]
        head = f"{prefix}reduced_factor_{f}."
        out[head + "mean_train_accuracy_reduced_factor"] = train[f]
        out[head + "mean_test_accuracy_reduced_factor"] = test[f]
        for i in range(k):
            out[head + f"mean_train_accuracy_factor_{i}"] = train[i]
            out[head + f"mean_test_accuracy_factor_{i}"] = test[i]
        others_train = [train[i] for i in range(k) if i != f]
        others_test = [test[i] for i in range(k) if i != f]
        # with a single factor there is no other factor: the reference takes the mean of nothing (NaN)
        out[head + "mean_train_accuracy_non_reduced_factor"] = float(np.mean(others_train)) if others_train else float("nan")
        out[head + "mean_test_accuracy_non_reduced_factor"] = float(np.mean(others_test)) if others_test else float("nan")
        reduced_train.append(train[f])
        reduced_test.append(test[f])
        other_train.append(out[head + "mean_train_accuracy_non_reduced_factor"])
        other_test.append(out[head + "mean_test_accuracy_non_reduced_factor"])
    out[f"{prefix}mean_train_accuracy_reduced_factor"] = float(np.mean(reduced_train))
    out[f"{prefix}mean_test_accuracy_reduced_factor"] = float(np.mean(reduced_test))
    out[f"{prefix}mean_train_accuracy_other_factors"] = float(np.mean(other_train))
    out[f"{prefix}mean_test_accuracy_other_factors"] = float(np.mean(other_test))
    return {key: float(value) for key, value in out.items()}


@dataclass(frozen=True)
class ReducedDownstream:
    """The reduced downstream task (``reduced_downstream_task``, ``correlation_measure = @factorwise_dci``).

    ``predictor``: "gradient_boosting" (default, as the reference's configuration binds it)
    or "logistic_regression_cv"; ``backend``: "fast" or "sklearn" boosted trees.
    """

    name: ClassVar[str] = "reduced_downstream"
    num_factors_to_remove: int = 1
    num_train: tuple[int, ...] = (10_000,)
    num_test: int = 5_000
    batch_size: int = 16
    predictor: str = "gradient_boosting"
    backend: str = "fast"
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        _check_sizes(self)
        check_positive(self.name, num_test=self.num_test, batch_size=self.batch_size)
        check_int(f"{self.name}: num_factors_to_remove", self.num_factors_to_remove, low=0)
        check_choice(f"{self.name}: predictor", self.predictor, PREDICTORS)
        check_choice(f"{self.name}: backend", self.backend, BACKENDS)
        if self.predictor == "logistic_regression_cv":
            for n in self.num_train:
                check_int(f"{self.name}: each size in num_train", n, low=5, why="5-fold cross-validation")

    def _scores(self, train, test, rng, size) -> dict[str, float]:
        values = reduced_downstream_scores(*train, *test, num_factors_to_remove=self.num_factors_to_remove,
                                           predictor=self.predictor, backend=self.backend, n_jobs=self.n_jobs,
                                           rng=rng, prefix=f"{size}.")
        return namespaced(self.name, values)

    def score(self, codes, factors, codes_test=None, factors_test=None, *, rng=None) -> dict[str, float]:
        if codes_test is None:
            codes_test, factors_test = codes, factors
        return self._scores((codes, factors), (codes_test, factors_test), rng, np.shape(codes)[0])

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        cache = resolve_cache(data, representation, cache)
        samples = []
        for size in self.num_train:  # every sample first, in the reference's order; then the seeded fits
            train = sample_codes(data, representation, size, rng=rng, batch_size=self.batch_size, cache=cache)
            test = sample_codes(data, representation, self.num_test, rng=rng, batch_size=self.batch_size, cache=cache)
            samples.append((size, train, test))
        out = {}
        for size, train, test in samples:
            out.update(self._scores(train, test, rng, size))
        return out
