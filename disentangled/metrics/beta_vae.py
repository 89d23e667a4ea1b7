"""The BetaVAE score (Higgins et al., 2017), as disentanglement_lib's ``beta_vae_sklearn``.

Each training point: pick a factor k uniformly; draw two batches of ``batch_size`` factor
vectors that share factor k; the feature is the mean over the batch of ``|r(x1) - r(x2)|``
and the label is k. A ``LogisticRegression()`` (scikit-learn's defaults) is fitted on
``num_train`` points; the scores are its accuracy on them and on ``num_eval`` fresh points.

Draws follow the reference's order (per point: the factor, both batches of factors, then
both batches of observations), so a ``RandomState`` seeded as the reference's gives the
same samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import check_positive, namespaced
from .sampling import Encoder, draw_factor_batches, resolve_cache
from .utils import as_codes, randint


def beta_vae_score(train_features, train_labels, eval_features, eval_labels) -> dict:
    """Accuracies of a logistic regression from difference features to the fixed factor."""
    from sklearn.linear_model import LogisticRegression

    train_features = as_codes(train_features, "beta_vae", name="training features")
    eval_features = as_codes(eval_features, "beta_vae", name="evaluation features")
    train_labels = np.asarray(train_labels)
    eval_labels = np.asarray(eval_labels)
    if np.unique(train_labels).size < 2:
        label = train_labels[0]
        return {
            "train_accuracy": float(np.mean(train_labels == label)),
            "eval_accuracy": float(np.mean(eval_labels == label)),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression().fit(train_features, train_labels)
    return {
        "train_accuracy": float(np.mean(model.predict(train_features) == train_labels)),
        "eval_accuracy": float(np.mean(model.predict(eval_features) == eval_labels)),
    }


def beta_vae_features(data, representation, num_points: int, batch_size: int, *, rng, cache=None):
    """``(features [num_points, D], labels [num_points])`` drawn in the reference's order."""
    enc = Encoder(data, representation, cache=cache)
    # served from the cache, nothing is rendered between the draws: draw them all at once
    drawn = None if enc.cache is None else draw_factor_batches(data, rng, num_points, batch_size, 2)
    if drawn is not None:
        labels, pairs = drawn  # [P], [P, 2, B, K]
        rows = np.arange(num_points)
        pairs[rows, 1, :, labels] = pairs[rows, 0, :, labels]
        enc.add(pairs.reshape(-1, pairs.shape[-1]), rng)
    else:
        labels = _draw_one_by_one(data, enc, num_points, batch_size, rng)
    codes = as_codes(enc.codes(), "beta_vae")
    codes = codes.reshape(num_points, 2, batch_size, codes.shape[1])
    features = np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1)
    return features.astype(np.float64), labels


def _draw_one_by_one(data, enc, num_points, batch_size, rng):
    labels = np.zeros(num_points, dtype=np.int64)
    for i in range(num_points):
        index = int(randint(rng, data.num_factors, None))
        factors1 = data.sample_factors(batch_size, rng=rng)
        factors2 = data.sample_factors(batch_size, rng=rng)
        factors2[:, index] = factors1[:, index]
        enc.add(factors1, rng)
        enc.add(factors2, rng)
        labels[i] = index
    return labels


@dataclass(frozen=True)
class BetaVAE:
    """The BetaVAE score with the study's settings (``beta_vae_sklearn.gin``)."""

    name: ClassVar[str] = "beta_vae"
    batch_size: int = 64
    num_train: int = 10_000
    num_eval: int = 5_000

    def __post_init__(self):
        check_positive(self.name, batch_size=self.batch_size, num_train=self.num_train, num_eval=self.num_eval)

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        cache = resolve_cache(data, representation, cache)
        train = beta_vae_features(data, representation, self.num_train, self.batch_size, rng=rng, cache=cache)
        evaluation = beta_vae_features(data, representation, self.num_eval, self.batch_size, rng=rng, cache=cache)
        return namespaced(self.name, beta_vae_score(*train, *evaluation))
