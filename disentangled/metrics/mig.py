"""Mutual Information Gap (Chen et al., 2018), as disentanglement_lib computes it.

Codes are discretised into 20 equal-width bins per dimension (the reference's
``histogram_discretizer``); for each factor, the gap between the largest and the second
largest mutual information with a code dimension is divided by the factor's entropy; the
score is the mean over factors. This is the "histogram of means" MIG of the study, not Chen
et al.'s sampling estimator.

Defined edge cases: a factor with a single value in the sample (entropy 0) is left out of
the mean (the reference divides 0 by 0); with a single code dimension the second largest
mutual information is taken as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import check_positive, namespaced
from .sampling import sample_codes
from .utils import check_pair, discrete_entropy, discrete_mutual_info, histogram_discretize, require_informative, top_two_gap


def mig(codes, factors, *, num_bins: int = 20) -> float:
    """MIG of codes ``[N, D]`` against discrete factors ``[N, K]`` (natural-log information)."""
    codes, factors = check_pair(codes, factors, "mig")
    keep = require_informative(factors, "mig")
    factors = factors[:, keep]
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)  # [D, K]
    entropy = discrete_entropy(factors)
    return float(np.mean(top_two_gap(mi) / entropy))


@dataclass(frozen=True)
class MIG:
    """MIG with the study's settings (``mig.gin``): 10,000 points, 20 bins."""

    name: ClassVar[str] = "mig"
    num_train: int = 10_000
    batch_size: int = 16
    num_bins: int = 20

    def __post_init__(self):
        check_positive(self.name, num_train=self.num_train, batch_size=self.batch_size, num_bins=self.num_bins)

    def score(self, codes, factors, codes_test=None, factors_test=None) -> dict[str, float]:
        return namespaced(self.name, {"discrete_mig": mig(codes, factors, num_bins=self.num_bins)})

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        codes, factors = sample_codes(data, representation, self.num_train, rng=rng, batch_size=self.batch_size, cache=cache)
        return self.score(codes, factors)
