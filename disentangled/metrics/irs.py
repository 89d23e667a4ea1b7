"""Interventional Robustness Score (Suter et al., 2019), as disentanglement_lib computes it.

Not one of the study's metrics; disentanglement_lib's sample configuration: 10,000 points,
factors discretised into 20 histogram bins, ``diff_quantile`` 0.99 (1.0 is the paper's
version). Constant code dimensions are dropped. For each factor i and each of its values v,
the ``diff_quantile`` quantile of ``|z - E[z | g_i = v]|`` per code, averaged over v, is the
deviation of the code from factor i; normalised by the code's largest deviation from its
mean, ``1 -`` that is the IRS matrix; each code scores its best factor and the IRS is the
average of the codes' scores weighted by their largest deviations.

``num_active_dims``: the reference reports the sum of the active codes' *values*
(``np.sum(active_mus)``) instead of their number. By default the number of active
dimensions is reported; ``active_dims="reference"`` reproduces the reference's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import check_choice
from .base import check_fraction, check_positive, namespaced
from .sampling import sample_codes
from .utils import check_pair, histogram_discretize

ACTIVE_DIMS = ("count", "reference")


def irs_matrix(factors: np.ndarray, codes: np.ndarray, diff_quantile: float = 0.99):
    """``(IRS matrix [D, K], largest deviation per code [D])`` of codes against discrete factors."""
    max_deviations = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    deviations = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(factors.shape[1]):
        values = np.unique(factors[:, i])
        for v in values:
            group = codes[factors[:, i] == v]
            diffs = np.abs(group - group.mean(axis=0))
            deviations[:, i] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        deviations[:, i] /= values.size
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized = deviations / max_deviations[:, None]
    return 1.0 - normalized, max_deviations


def irs(codes, factors, *, num_bins: int = 20, diff_quantile: float = 0.99, active_dims: str = "count") -> dict:
    codes, factors = check_pair(codes, factors, "irs")
    discrete = histogram_discretize(factors, num_bins)
    active = np.var(codes, axis=0) > 0.0
    mus = codes[:, active]
    if active_dims == "reference":
        reported = float(np.sum(mus))
    else:
        reported = float(np.count_nonzero(active))
    if not active.any():
        return {"IRS": 0.0, "num_active_dims": reported}
    matrix, max_dev = irs_matrix(discrete, mus, diff_quantile)
    scores = matrix.max(axis=1)
    if np.sum(max_dev) > 0.0:
        value = float(np.average(scores, weights=max_dev))
    else:
        value = float(np.mean(scores))
    return {"IRS": value, "num_active_dims": reported}


@dataclass(frozen=True)
class IRS:
    """IRS with disentanglement_lib's sample settings (``irs.gin``): 10,000 points, 20 bins, quantile 0.99."""

    name: ClassVar[str] = "irs"
    num_train: int = 10_000
    batch_size: int = 16
    num_bins: int = 20
    diff_quantile: float = 0.99
    active_dims: str = "count"

    def __post_init__(self):
        check_positive(self.name, num_train=self.num_train, batch_size=self.batch_size, num_bins=self.num_bins)
        check_fraction(self.name, "diff_quantile", self.diff_quantile)
        check_choice("irs: active_dims", self.active_dims, ACTIVE_DIMS)

    def score(self, codes, factors, codes_test=None, factors_test=None) -> dict[str, float]:
        values = irs(codes, factors, num_bins=self.num_bins, diff_quantile=self.diff_quantile, active_dims=self.active_dims)
        return namespaced(self.name, {"irs": values["IRS"], "num_active_dims": values["num_active_dims"]})

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        codes, factors = sample_codes(data, representation, self.num_train, rng=rng, batch_size=self.batch_size, cache=cache)
        return self.score(codes, factors)
