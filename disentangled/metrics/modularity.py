"""Modularity and explicitness (Ridgeway & Mozer, 2018), as disentanglement_lib computes them.

Modularity: from the mutual information ``I [D codes, K factors]`` of the 20-bin
discretised training codes, per code ``1 - (sum_k I_ik^2 - m_i) / (m_i (K - 1))`` with
``m_i = max_k I_ik^2`` (0 for a code with no information); the mean over codes.

Explicitness: codes z-scored with the training mean and standard deviation; per factor a
``LogisticRegression()`` (scikit-learn's defaults); the macro ROC-AUC of its class
probabilities against the one-hot labels, on the training and on the test sample; the mean
over factors.

Defined edge cases (the reference fails or returns NaN): a constant code is centred but not
scaled (it becomes 0); factors with a single value in the training sample are left out;
with a single factor every code is modular (modularity 1 where it has information); for
the test ROC-AUC the one-hot columns are the classifier's classes, and a class whose column
holds a single label value in that sample is left out of the average.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .base import check_positive, namespaced
from .sampling import resolve_cache, sample_codes
from .utils import check_pair, discrete_mutual_info, histogram_discretize, require_informative, standardize


def modularity(mutual_information) -> float:
    """Modularity of a mutual-information matrix ``[D codes, K factors]``."""
    mi = np.asarray(mutual_information, dtype=np.float64)
    squared = np.square(mi)
    max_squared = np.max(squared, axis=1)
    numerator = np.sum(squared, axis=1) - max_squared
    denominator = max_squared * (squared.shape[1] - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)
    score = 1.0 - delta
    score[max_squared == 0.0] = 0.0
    return float(np.mean(score))


def explicitness_per_factor(codes_train, labels_train, codes_test, labels_test) -> tuple[float, float]:
    """ROC-AUC (train, test) of a logistic regression on standardised codes for one factor."""
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression().fit(codes_train, labels_train)
    return (
        _macro_auc(labels_train, model.predict_proba(codes_train), model.classes_),
        _macro_auc(labels_test, model.predict_proba(codes_test), model.classes_),
    )


def _macro_auc(labels, proba, classes) -> float:
    from sklearn.metrics import roc_auc_score

    onehot = (labels[:, None] == classes[None, :]).astype(np.int64)
    positives = onehot.sum(axis=0)
    # the reference binarises with the labels present in the sample; a class absent from
    # the sample (or the only class there) has no ROC curve and is left out
    present = (positives > 0) & (positives < len(labels))
    if not present.any():
        return float("nan")
    return float(roc_auc_score(onehot[:, present], proba[:, present], average="macro"))


def _explicitness_job(*args):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return explicitness_per_factor(*args)


def modularity_explicitness(
    codes_train, factors_train, codes_test=None, factors_test=None, *, num_bins: int = 20, n_jobs: int | None = None
) -> dict:
    codes_train, factors_train = check_pair(codes_train, factors_train, "modularity_explicitness")
    if codes_test is None:
        codes_test, factors_test = codes_train, factors_train
    codes_test, factors_test = check_pair(codes_test, factors_test, "modularity_explicitness", min_points=1, suffix="_test")
    keep = require_informative(factors_train, "modularity_explicitness")
    factors_train, factors_test = factors_train[:, keep], factors_test[:, keep]
    mi = discrete_mutual_info(histogram_discretize(codes_train, num_bins), factors_train)
    train_norm, test_norm = standardize(codes_train, codes_test)
    jobs = [(train_norm, factors_train[:, j], test_norm, factors_test[:, j]) for j in range(factors_train.shape[1])]
    if n_jobs is None:
        from .predictors import default_jobs

        classes = sum(len(np.unique(factors_train[:, j])) for j in range(factors_train.shape[1]))
        n_jobs = default_jobs(codes_train.shape[0] * classes)
    if n_jobs > 1 and len(jobs) > 1:
        from joblib import delayed

        from .predictors import worker_pool

        aucs = worker_pool(min(n_jobs, len(jobs)))(delayed(_explicitness_job)(*job) for job in jobs)
    else:
        aucs = [explicitness_per_factor(*job) for job in jobs]
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(np.nanmean([a[0] for a in aucs])),
        "explicitness_score_test": float(np.nanmean([a[1] for a in aucs])),
    }


@dataclass(frozen=True)
class ModularityExplicitness:
    """Modularity and explicitness with the study's settings: 10,000/5,000 points, 20 bins."""

    name: ClassVar[str] = "modularity_explicitness"
    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = 16
    num_bins: int = 20
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        check_positive(self.name, num_train=self.num_train, num_test=self.num_test, batch_size=self.batch_size, num_bins=self.num_bins)

    def score(self, codes, factors, codes_test=None, factors_test=None) -> dict[str, float]:
        values = modularity_explicitness(codes, factors, codes_test, factors_test, num_bins=self.num_bins, n_jobs=self.n_jobs)
        return namespaced(self.name, values)

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        cache = resolve_cache(data, representation, cache)
        train = sample_codes(data, representation, self.num_train, rng=rng, batch_size=self.batch_size, cache=cache)
        test = sample_codes(data, representation, self.num_test, rng=rng, batch_size=self.batch_size, cache=cache)
        return self.score(*train, *test)
