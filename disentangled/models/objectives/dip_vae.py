"""DIP-VAE-I and DIP-VAE-II: Kumar et al., "Variational Inference of Disentangled Latent
Concepts from Unlabeled Observations", ICLR 2018, eq. 6 (I) and eq. 7 (II) (dlib's
``dip_vae`` with ``dip_type`` "i" / "ii").

    loss = reconstruction + KL + lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2,
    lambda_d = lambda_d_factor * lambda_od

DIP-VAE-I: ``C = Cov_batch[mu(x)]``; DIP-VAE-II: ``C = Cov_batch[mu(x)] + mean_batch diag(exp(logvar))``.
The covariance is the biased batch estimate on the encoder means, as in dlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..distributions import covariance
from .base import Objective


def dip_penalty(cov: Tensor, lambda_od: float, lambda_d: float) -> Tensor:
    """``lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2`` of ``cov [..., D, D]``.

    dlib's ``regularize_diag_off_diag_dip``: its test gives 90 for the 10x10 all-ones matrix.
    """
    diagonal = cov.diagonal(dim1=-2, dim2=-1)
    off_diagonal = cov - torch.diag_embed(diagonal)
    return lambda_od * off_diagonal.square().sum((-2, -1)) + lambda_d * (diagonal - 1.0).square().sum(-1)


class _DIPVAE(Objective):
    lambda_od: float
    lambda_d_factor: float

    def __post_init__(self):
        self._check("lambda_od", low=0)
        self._check("lambda_d_factor", low=0)

    @property
    def lambda_d(self) -> float:
        return self.lambda_d_factor * self.lambda_od

    def latent_covariance(self, mean: Tensor, logvar: Tensor) -> Tensor:
        raise NotImplementedError

    def coefficients(self, step) -> dict:
        return {"lambda_od": self.lambda_od, "lambda_d": self.lambda_d}

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, **extra) -> Tensor:
        return kl + dip_penalty(self.latent_covariance(mean, logvar), c["lambda_od"], c["lambda_d"])


@dataclass(frozen=True)
class DIPVAEI(_DIPVAE):
    """DIP-VAE-I (eq. 6): penalises ``Cov[mu]``. Study: lambda_d_factor 10, lambda_od in 1..100."""

    lambda_od: float = 1.0
    lambda_d_factor: float = 10.0

    name: ClassVar[str] = "dip_vae_i"

    def latent_covariance(self, mean: Tensor, logvar: Tensor) -> Tensor:
        return covariance(mean)


@dataclass(frozen=True)
class DIPVAEII(_DIPVAE):
    """DIP-VAE-II (eq. 7): penalises ``Cov[mu] + E[diag(exp(logvar))]``. Study: lambda_d_factor 1."""

    lambda_od: float = 1.0
    lambda_d_factor: float = 1.0

    name: ClassVar[str] = "dip_vae_ii"

    def latent_covariance(self, mean: Tensor, logvar: Tensor) -> Tensor:
        return covariance(mean) + torch.diag_embed(logvar.exp().mean(-2))
