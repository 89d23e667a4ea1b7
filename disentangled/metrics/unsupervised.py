"""Unsupervised scores of a representation (disentanglement_lib's ``unsupervised_metrics``).

Only the codes are used. With ``S`` the sample covariance of the codes (ddof 1):

* ``gaussian_total_correlation``: ``0.5 (sum_i log S_ii - log det S)``, the KL divergence
  between ``N(0, S)`` and ``N(0, diag S)``;
* ``gaussian_wasserstein_correlation``: ``2 tr S - 2 tr (diag(S) S)^(1/2)``, the squared
  2-Wasserstein distance between the same two Gaussians; ``..._norm`` divides it by tr S;
* ``mutual_info_score``: the mean pairwise mutual information between different code
  dimensions after 20-bin discretisation.

``tr (diag(S) S)^(1/2)`` is computed as the sum of the square roots of the eigenvalues of
the symmetric ``diag(S)^(1/2) S diag(S)^(1/2)`` (the same matrix up to similarity), which
agrees with the reference's ``scipy.linalg.sqrtm`` and never turns complex.

Defined edge cases: constant code dimensions are independent of everything and contribute
nothing to the total correlation, so it is computed over the other dimensions (the
reference takes the log of 0); a singular covariance among non-constant dimensions
(duplicated codes) has infinite total correlation, reported as ``inf``; with all dimensions
constant the normalised Wasserstein correlation is 0; with one dimension the mutual
information score is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import ParameterError
from .base import check_positive, namespaced
from .sampling import sample_codes
from .utils import as_codes, discrete_mutual_info, histogram_discretize


def gaussian_total_correlation(cov) -> float:
    """KL divergence between ``N(0, cov)`` and ``N(0, diag(cov))``."""
    cov = np.asarray(cov, dtype=np.float64)
    diag = np.diag(cov)
    keep = diag > 0
    if not keep.any():
        return 0.0
    sub = cov[np.ix_(keep, keep)]
    sign, logdet = np.linalg.slogdet(sub)
    if sign <= 0 or not np.isfinite(logdet):
        return float("inf")
    return float(0.5 * (np.sum(np.log(diag[keep])) - logdet))


def gaussian_wasserstein_correlation(cov) -> float:
    """Squared 2-Wasserstein distance between ``N(0, cov)`` and ``N(0, diag(cov))``."""
    cov = np.asarray(cov, dtype=np.float64)
    scale = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    sym = cov * scale[:, None] * scale[None, :]
    eig = np.linalg.eigvalsh((sym + sym.T) / 2.0)
    return float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eig, 0.0, None))))


def unsupervised_scores(codes, *, num_bins: int = 20) -> dict:
    codes = as_codes(codes, "unsupervised")
    if codes.shape[0] < 2:
        raise ParameterError(f"unsupervised: needs at least 2 points for a covariance, got {codes.shape[0]}")
    d = codes.shape[1]
    cov = np.cov(codes, rowvar=False, ddof=1).reshape(d, d)
    wasserstein = gaussian_wasserstein_correlation(cov)
    trace = float(np.sum(np.diag(cov)))
    discrete = histogram_discretize(codes, num_bins)
    mi = discrete_mutual_info(discrete, discrete)
    np.fill_diagonal(mi, 0.0)
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / trace if trace > 0 else 0.0,
        "mutual_info_score": float(np.sum(mi) / (d * d - d)) if d > 1 else 0.0,
    }


@dataclass(frozen=True)
class Unsupervised:
    """Unsupervised scores with the study's settings (``unsupervised.gin``): 10,000 points, 20 bins."""

    name: ClassVar[str] = "unsupervised"
    num_train: int = 10_000
    batch_size: int = 16
    num_bins: int = 20

    def __post_init__(self):
        check_positive(self.name, num_train=self.num_train, batch_size=self.batch_size, num_bins=self.num_bins)

    def score(self, codes, factors=None, codes_test=None, factors_test=None) -> dict[str, float]:
        return namespaced(self.name, unsupervised_scores(codes, num_bins=self.num_bins))

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        codes, _ = sample_codes(data, representation, self.num_train, rng=rng, batch_size=self.batch_size, cache=cache)
        return self.score(codes)
