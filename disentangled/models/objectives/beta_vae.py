"""beta-VAE: Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", ICLR 2017, eq. 4 (dlib's ``vae``).

    loss = reconstruction + beta * KL(q(z|x) || p(z))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from .base import Objective


@dataclass(frozen=True)
class BetaVAE(Objective):
    """``beta * KL``; ``beta = 1`` is the plain VAE. The study sweeps beta over 1, 2, 4, 6, 8, 16."""

    beta: float = 1.0

    name: ClassVar[str] = "beta_vae"

    def __post_init__(self):
        self._check("beta", low=0)

    def coefficients(self, step) -> dict:
        return {"beta": self.beta}

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, **extra) -> Tensor:
        return c["beta"] * kl
