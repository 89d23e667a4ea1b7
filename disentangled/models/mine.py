"""MINE estimators of the mutual information between each labelled factor and each latent.

Belghazi et al., "Mutual Information Neural Estimation", ICML 2018, eq. 10 (the
Donsker-Varadhan bound), as dlib's ``s2_mine_vae`` uses it: for a factor ``l`` and a
latent ``r``, a statistics network ``T_lr`` scores pairs (code, label), and

    I_lr ~ mean_i T_lr(mu_ir, y_il) + log N - logsumexp_i T_lr(mu_ir, y_pi(i),l)

where ``pi`` is a random permutation of the batch (one per pair, as the reference shuffles
inside each estimator). Each ``T_lr`` is the reference's network: a dense layer of 20 units on
the code plus one on the label, their sum through an ELU, then a dense layer to one output.
All ``L x D`` networks are held as one set of tensors with the pair axis first (pair
``p = l * D + r``, the reference's loop order), so one pass evaluates every pair.

Initialisation follows TensorFlow 1's dense layers: Glorot-uniform kernels (fans 1 and 20,
so ``U(-sqrt(6 / 21), sqrt(6 / 21))`` for all three) and zero biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Units of each statistics network's hidden layer (the reference's 20).
HIDDEN = 20
#: The tensors of the networks, each with the pair axis first.
PARAMETERS = ("code_weight", "code_bias", "label_weight", "label_bias", "out_weight", "out_bias")


def pair_indices(num_factors: int, num_latent: int) -> tuple[Tensor, Tensor]:
    """``(factor, latent)`` of each pair ``p = l * D + r``: two int64 tensors of length ``L * D``."""
    factor = torch.arange(num_factors).repeat_interleave(num_latent)
    latent = torch.arange(num_latent).repeat(num_factors)
    return factor, latent


def statistics(params: dict[str, Tensor], codes: Tensor, labels: Tensor) -> Tensor:
    """``T_p(codes[..., p, i], labels[..., p, i])`` for every pair ``p`` and example ``i``: ``[..., P, N]``.

    ``params``: ``code_weight``, ``code_bias``, ``label_weight``, ``label_bias``, ``out_weight``
    (each ``[..., P, H]``) and ``out_bias`` ``[..., P]``; ``codes`` and ``labels`` are ``[..., P, N]``.
    """
    hidden_code = codes.unsqueeze(-1) * params["code_weight"].unsqueeze(-2) + params["code_bias"].unsqueeze(-2)
    hidden_label = labels.unsqueeze(-1) * params["label_weight"].unsqueeze(-2) + params["label_bias"].unsqueeze(-2)
    hidden = F.elu(hidden_code + hidden_label)  # [..., P, N, H]
    return (hidden * params["out_weight"].unsqueeze(-2)).sum(-1) + params["out_bias"].unsqueeze(-1)


def dv_bound(joint: Tensor, marginal: Tensor) -> Tensor:
    """Donsker-Varadhan bound ``mean T_joint + log N - logsumexp T_marginal`` over the last axis."""
    n = joint.shape[-1]
    return joint.mean(-1) + math.log(n) - torch.logsumexp(marginal, -1)


def mine_estimates(params: dict[str, Tensor], codes: Tensor, labels: Tensor, order: Tensor, *, factor: Tensor,
                   latent: Tensor) -> Tensor:
    """The MI estimate of every pair: ``[..., P]``.

    ``codes [..., N, D]``, ``labels [..., N, L]``; ``order [..., P, N]``: each pair's permutation
    of the labels for the product of the marginals.
    """
    x = codes.index_select(-1, latent.to(codes.device)).transpose(-1, -2)  # [..., P, N]
    y = labels.index_select(-1, factor.to(labels.device)).transpose(-1, -2)
    shuffled = torch.gather(y, -1, order)
    scores = statistics(params, torch.cat([x, x], -1), torch.cat([y, shuffled], -1))  # one pass for both
    n = x.shape[-1]
    return dv_bound(scores[..., :n], scores[..., n:])


class MineEstimators(nn.Module):
    """One statistics network per (factor, latent) pair; ``forward`` gives every pair's estimate ``[..., L * D]``."""

    def __init__(self, num_factors: int, num_latent: int, *, hidden: int = HIDDEN):
        super().__init__()
        self.num_factors, self.num_latent = int(num_factors), int(num_latent)
        pairs = self.num_factors * self.num_latent
        limit = math.sqrt(6.0 / (1 + hidden))  # Glorot-uniform of a [1, H] (and an [H, 1]) kernel
        self.code_weight = nn.Parameter(torch.empty(pairs, hidden).uniform_(-limit, limit))
        self.code_bias = nn.Parameter(torch.zeros(pairs, hidden))
        self.label_weight = nn.Parameter(torch.empty(pairs, hidden).uniform_(-limit, limit))
        self.label_bias = nn.Parameter(torch.zeros(pairs, hidden))
        self.out_weight = nn.Parameter(torch.empty(pairs, hidden).uniform_(-limit, limit))
        self.out_bias = nn.Parameter(torch.zeros(pairs))

    @property
    def num_pairs(self) -> int:
        return self.num_factors * self.num_latent

    def tensors(self, detach: bool = False) -> dict[str, Tensor]:
        # read as attributes, which torch.func.functional_call substitutes (a stack's slices, models.stacked)
        return {n: (getattr(self, n).detach() if detach else getattr(self, n)) for n in PARAMETERS}

    def forward(self, codes: Tensor, labels: Tensor, order: Tensor, *, detach_parameters: bool = False) -> Tensor:
        """Every pair's MI estimate; with ``detach_parameters`` no gradient reaches the networks
        (the VAE's term: its gradient reaches the codes only)."""
        factor, latent = pair_indices(self.num_factors, self.num_latent)
        return mine_estimates(self.tensors(detach_parameters), codes, labels, order, factor=factor, latent=latent)


__all__ = ["HIDDEN", "MineEstimators", "dv_bound", "mine_estimates", "pair_indices", "statistics"]
