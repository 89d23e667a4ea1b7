"""The FactorVAE score (Kim & Mnih, 2018), as disentanglement_lib's ``factor_vae_score``.

1. The variance of every code dimension over ``num_variance_estimate`` observations (ddof 1);
   dimensions whose standard deviation is below ``prune_threshold`` are inactive (if none
   is active, every score is 0).
2. Each vote: pick a factor k; draw ``batch_size`` factor vectors, all with the first one's
   value of factor k; the vote goes to (k, the active dimension with the smallest ratio of
   its variance in the batch to its global variance).
3. The classifier maps each dimension to the factor with most votes for it; the accuracy is
   the fraction of votes it gets right, on ``num_train`` votes and on ``num_eval`` new ones.

``num_active_dims``: the reference reports the length of its boolean mask, i.e. always the
code size. By default the number of active dimensions is reported;
``active_dims="reference"`` reproduces the reference's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import check_choice, check_float, check_int
from .base import check_positive, namespaced
from .sampling import Encoder, draw_factor_batches, resolve_cache
from .utils import as_codes, randint

ACTIVE_DIMS = ("count", "reference")


def factor_vae_votes(batch_codes: np.ndarray, labels: np.ndarray, global_variances: np.ndarray, active: np.ndarray, num_factors: int):
    """Vote matrix ``[num_factors, num_active]`` from batches of codes ``[V, B, D]``."""
    local = np.var(batch_codes, axis=1, ddof=1)  # [V, D]
    ratio = local[:, active] / global_variances[active]
    argmin = np.argmin(ratio, axis=1)
    votes = np.zeros((num_factors, int(np.count_nonzero(active))), dtype=np.int64)
    np.add.at(votes, (labels, argmin), 1)
    return votes


def factor_vae_accuracy(train_votes: np.ndarray, eval_votes: np.ndarray) -> dict:
    """Majority-vote classifier from the training votes; accuracy on both vote matrices."""
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    return {
        "train_accuracy": float(np.sum(train_votes[classifier, columns]) / np.sum(train_votes)),
        "eval_accuracy": float(np.sum(eval_votes[classifier, columns]) / np.sum(eval_votes)),
    }


def _batches(data, representation, num_points, batch_size, rng, cache):
    enc = Encoder(data, representation, cache=cache)
    # served from the cache, nothing is rendered between the draws: draw them all at once
    drawn = None if enc.cache is None else draw_factor_batches(data, rng, num_points, batch_size, 1)
    if drawn is not None:
        labels, batches = drawn[0], drawn[1][:, 0]  # [P], [P, B, K]
        rows = np.arange(num_points)
        batches[rows, :, labels] = batches[rows, 0, labels][:, None]
        enc.add(batches.reshape(-1, batches.shape[-1]), rng)
    else:
        labels = np.zeros(num_points, dtype=np.int64)
        for i in range(num_points):
            index = int(randint(rng, data.num_factors, None))
            factors = data.sample_factors(batch_size, rng=rng)
            factors[:, index] = factors[0, index]
            enc.add(factors, rng)
            labels[i] = index
    codes = as_codes(enc.codes(), "factor_vae")
    return codes.reshape(num_points, batch_size, codes.shape[1]), labels


@dataclass(frozen=True)
class FactorVAE:
    """The FactorVAE score with the study's settings (``factor_vae_metric.gin``)."""

    name: ClassVar[str] = "factor_vae"
    batch_size: int = 64
    num_train: int = 10_000
    num_eval: int = 5_000
    num_variance_estimate: int = 10_000
    prune_threshold: float = 0.05
    active_dims: str = "count"

    def __post_init__(self):
        check_positive(
            self.name,
            batch_size=self.batch_size,
            num_train=self.num_train,
            num_eval=self.num_eval,
            num_variance_estimate=self.num_variance_estimate,
        )
        for key in ("batch_size", "num_variance_estimate"):
            check_int(f"{self.name}: {key}", getattr(self, key), low=2, why="a variance needs two points")
        check_float(f"{self.name}: prune_threshold", self.prune_threshold, low=0)
        check_choice(f"{self.name}: active_dims", self.active_dims, ACTIVE_DIMS)

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        cache = resolve_cache(data, representation, cache)
        enc = Encoder(data, representation, cache=cache)
        factors = data.sample_factors(self.num_variance_estimate, rng=rng)
        enc.add(factors, rng)
        codes = as_codes(enc.codes(), self.name)
        global_variances = np.var(codes, axis=0, ddof=1)
        active = np.sqrt(global_variances) >= self.prune_threshold
        size = codes.shape[1]
        if not active.any():
            return namespaced(self.name, {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0})
        k = data.num_factors
        train_codes, train_labels = _batches(data, representation, self.num_train, self.batch_size, rng, cache)
        train_votes = factor_vae_votes(train_codes, train_labels, global_variances, active, k)
        del train_codes
        eval_codes, eval_labels = _batches(data, representation, self.num_eval, self.batch_size, rng, cache)
        eval_votes = factor_vae_votes(eval_codes, eval_labels, global_variances, active, k)
        scores = factor_vae_accuracy(train_votes, eval_votes)
        scores["num_active_dims"] = float(size if self.active_dims == "reference" else np.count_nonzero(active))
        return namespaced(self.name, scores)
