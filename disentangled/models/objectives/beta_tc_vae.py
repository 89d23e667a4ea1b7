"""beta-TCVAE: Chen et al., "Isolating Sources of Disentanglement in Variational
Autoencoders", NeurIPS 2018, eq. 4 with alpha = gamma = 1 (dlib's ``beta_tc_vae``).

    loss = reconstruction + KL + (beta - 1) * TC_hat(z)

``TC_hat`` is the minibatch-weighted-sampling estimate on the batch without its constant
``log(B * N)`` terms (:func:`~disentangled.models.distributions.total_correlation`), which
shifts the reported regulariser but not its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ..distributions import total_correlation
from .base import Objective


@dataclass(frozen=True)
class BetaTCVAE(Objective):
    """``KL + (beta - 1) * TC``. The study sweeps beta over 1..10."""

    beta: float = 1.0

    name: ClassVar[str] = "beta_tc_vae"

    def __post_init__(self):
        self._check("beta", low=0)

    def coefficients(self, step) -> dict:
        return {"tc_weight": self.beta - 1.0}

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, **extra) -> Tensor:
        return kl + c["tc_weight"] * total_correlation(z, mean, logvar)
