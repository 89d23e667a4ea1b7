"""FactorVAE: Kim & Mnih, "Disentangling by Factorizing", ICML 2018, eq. 2 and algorithm 2
(dlib's ``factor_vae``).

    loss = reconstruction + KL(q(z|x) || p(z)) + gamma * TC_hat,
    TC_hat = mean_batch [logit_0(z) - logit_1(z)]      (the density-ratio trick)

A discriminator D tells samples of q(z) (class 0) from samples of prod_d q(z_d) (class 1,
made by permuting each latent dimension across the batch, :func:`permute_dims`). It
maximises ``0.5 * mean log D_0(z) + 0.5 * mean log D_1(permute_dims(z))`` with its softmax
probabilities clipped to [1e-6, 1 - 1e-6], using its own Adam (lr 1e-4, betas 0.5, 0.9).

Steps. In dlib both optimisers were given TensorFlow's global step, so each training
iteration advanced it twice and its "300,000-step" FactorVAE runs made about 150,000
updates of each network. Here one step is one update (of both networks, simultaneously, on
the same batch, as in dlib: both gradients are taken at the same parameters); the study
preset reproduces dlib's count explicitly by training FactorVAE for 150,000 steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping

import torch
from torch import Tensor

from ...errors import UnknownNameError, check
from ..distributions import permute_dims
from .base import DISCRIMINATOR_OPTIMIZER, AdamSettings, Objective

#: Clip of the discriminator's softmax probabilities (dlib's ``make_discriminator``).
PROBABILITY_CLIP = 1e-6


@dataclass(frozen=True)
class FactorVAE(Objective):
    """``KL + gamma * TC_hat``. The study sweeps gamma over 10, 20, 30, 40, 50, 100."""

    gamma: float = 10.0
    discriminator_optimizer: AdamSettings = DISCRIMINATOR_OPTIMIZER

    name: ClassVar[str] = "factor_vae"
    needs_discriminator: ClassVar[bool] = True

    def __post_init__(self):
        self._check("gamma", low=0)
        owner = f"{self.name}: discriminator_optimizer"
        if isinstance(self.discriminator_optimizer, Mapping):
            allowed = [f.name for f in dataclasses.fields(AdamSettings)]
            for key in self.discriminator_optimizer:
                if key not in allowed:
                    raise UnknownNameError("setting", key, allowed, owner=owner)
            object.__setattr__(self, "discriminator_optimizer", AdamSettings(**self.discriminator_optimizer))
        check(owner, self.discriminator_optimizer, lambda v: isinstance(v, AdamSettings), "AdamSettings or a dict of its fields")

    def coefficients(self, step) -> dict:
        return {"gamma": self.gamma}

    def penalty(
        self,
        c: dict,
        kl: Tensor,
        mean: Tensor,
        logvar: Tensor,
        z: Tensor,
        *,
        discriminator: Callable[[Tensor], Tensor],
        **extra,
    ) -> Tensor:
        """``kl + gamma * mean_batch(logit_0(z) - logit_1(z))``.

        ``discriminator`` maps ``z [..., B, D]`` to logits ``[..., B, 2]``; the model passes
        one whose parameters are detached, so this term trains the encoder only.
        """
        logits = discriminator(z)
        tc = (logits[..., 0] - logits[..., 1]).mean(-1)
        return kl + c["gamma"] * tc

    def discriminator_loss(
        self, discriminator: Callable[[Tensor], Tensor], z: Tensor, *, generator: torch.Generator
    ) -> Tensor:
        """``-(0.5 * mean log p_0(z) + 0.5 * mean log p_1(permute_dims(z)))`` on ``z.detach()``: ``[...]``.

        Equals ln 2 for a discriminator that cannot tell the two apart (equal logits).
        """
        z = z.detach()
        shuffled = permute_dims(z, generator=generator)
        batch = z.shape[-2]
        logits = discriminator(torch.cat([z, shuffled], dim=-2))  # one pass for both halves
        probs = torch.softmax(logits, dim=-1).clamp(PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
        log_real = torch.log(probs[..., :batch, 0]).mean(-1)
        log_shuffled = torch.log(probs[..., batch:, 1]).mean(-1)
        return -(0.5 * log_real + 0.5 * log_shuffled)
