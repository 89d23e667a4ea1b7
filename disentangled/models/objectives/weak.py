"""Weakly-supervised objectives: GroupVAE and ML-VAE on pairs of observations, told which factor
changed (label variants) or finding it adaptively (Ada variants).

Locatello et al., "Weakly-Supervised Disentanglement Without Compromises", ICML 2020
(arXiv 2002.02886), Section 4; the aggregations come from GroupVAE (Hosoya, IJCAI 2019,
arXiv 1809.02383) and ML-VAE (Bouchacourt et al., AAAI 2018, arXiv 1705.08841). The formulas
below are those of the reference code (dlib ``methods/weak/weak_vae.py``); its paper's eq.
numbers are not quoted here because the published PDF was not at hand to check them.

For a pair ``(x1, x2)`` encoded by one encoder into ``(m1, lv1)`` and ``(m2, lv2)``
(``v = exp(lv)``), per latent dimension:

    delta  = v1 / v2 + (m2 - m1)^2 / v2 - 1 + lv2 - lv1        (2 KL(q1 || q2); the 1/2 dropped)
    GroupVAE shared posterior: mean = (m1 + m2) / 2,  logvar = log((v1 + v2) / 2)
    ML-VAE shared posterior:   var = 2 v1 v2 / (v1 + v2),  mean = (m1 / v1 + m2 / v2) var / 2

Each image's aggregated posterior takes the shared posterior on the dimensions believed
shared and keeps its own on the others:

* ``labels`` (``group_vae``, ``ml_vae``): the pair's label (the index of a changed factor)
  names the one private dimension; every other dimension is shared;
* ``argmax`` (``ada_gvae``, ``ada_ml_vae``): per pair, the dimensions whose ``delta`` lies in
  the upper of two equal-width bins between its minimum and maximum, i.e. at or above
  ``(min + max) / 2`` (the paper's threshold tau), stay private.

The loss, with ``recon_i`` and ``KL_i`` the batch means for image ``i`` under its aggregated
posterior (sampled once, decoded)::

    loss = (recon_1 + recon_2) / 2 + beta * (KL_1 + KL_2) / 2

``beta`` is the only hyperparameter (the number of changed factors ``k`` belongs to the data:
``data.pairs.k``). :class:`~disentangled.models.weak.WeakVAE` computes everything above the
last line; the objective adds ``beta * KL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import Objective

#: How the two posteriors are merged into the shared one.
AGGREGATIONS = ("group", "ml")
#: How the shared dimensions are chosen.
SELECTIONS = ("labels", "argmax")


def pair_distance(m1: Tensor, lv1: Tensor, m2: Tensor, lv2: Tensor) -> Tensor:
    """``delta`` per dimension: twice KL(N(m1, v1) || N(m2, v2)), as the reference computes it."""
    v1, v2 = torch.exp(lv1), torch.exp(lv2)
    return v1 / v2 + (m2 - m1).square() / v2 - 1 + lv2 - lv1


def group_posterior(m1: Tensor, lv1: Tensor, m2: Tensor, lv2: Tensor) -> tuple[Tensor, Tensor]:
    """GroupVAE's shared posterior: the arithmetic means of the means and of the variances."""
    return 0.5 * m1 + 0.5 * m2, torch.log(0.5 * torch.exp(lv1) + 0.5 * torch.exp(lv2))


def ml_posterior(m1: Tensor, lv1: Tensor, m2: Tensor, lv2: Tensor) -> tuple[Tensor, Tensor]:
    """ML-VAE's shared posterior: the normalised product of the two Gaussians with doubled variances."""
    v1, v2 = torch.exp(lv1), torch.exp(lv2)
    var = 2 * v1 * v2 / (v1 + v2)
    return (m1 / v1 + m2 / v2) * var * 0.5, torch.log(var)


SHARED_POSTERIORS = {"group": group_posterior, "ml": ml_posterior}


def label_mask(label: Tensor, num_latent: int) -> Tensor:
    """Bool ``[..., B, D]``: True on the dimensions kept private, the pair's label.

    As the reference's ``tf.where(one_hot == max(one_hot))``: a label outside ``[0, D)``
    (possible only with fewer latent dimensions than factors) gives an all-zero one-hot
    row, equal to its maximum everywhere, so that pair keeps every dimension private.
    """
    onehot = torch.nn.functional.one_hot(label.clamp(0, num_latent), num_latent + 1)[..., :num_latent]
    return onehot == onehot.amax(-1, keepdim=True)


def adaptive_mask(delta: Tensor) -> Tensor:
    """Bool ``[..., B, D]``: True where ``delta`` falls in the upper of two equal-width bins.

    The reference's ``histogram_fixed_width_bins(delta, [min, max], nbins=2)``: bin
    ``floor(2 * (delta - min) / (max - min))`` clipped to ``[0, 1]``. When every ``delta`` of
    a pair is equal the ratio is 0/0; TensorFlow's cast of that NaN to an integer lands in
    bin 0 on x86, so such a pair shares every dimension, and so it does here.
    """
    low = delta.amin(-1, keepdim=True)
    high = delta.amax(-1, keepdim=True)
    scaled = (delta - low) / (high - low)
    return torch.floor(2.0 * scaled) >= 1.0  # NaN compares False: bin 0


SELECTION_MASKS = {"labels": lambda delta, label: label_mask(label, delta.shape[-1]),
                   "argmax": lambda delta, label: adaptive_mask(delta)}


@dataclass(frozen=True)
class WeakObjective(Objective):
    """The shared part of the four weakly-supervised objectives (abstract: no ``name``).

    Its regulariser is ``beta * KL`` of the aggregated posteriors, computed by
    :class:`~disentangled.models.weak.WeakVAE`, which reads :attr:`aggregation` and
    :attr:`selection` from the subclass.
    """

    beta: float = 1.0

    batch_kind: ClassVar[str] = "pairs"
    aggregation: ClassVar[str]
    selection: ClassVar[str]

    def __post_init__(self):
        self._check("beta", low=0)

    def coefficients(self, step) -> dict:
        return {"beta": self.beta}

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, **extra) -> Tensor:
        return c["beta"] * kl


@dataclass(frozen=True)
class GroupVAE(WeakObjective):
    """GroupVAE with the changed factor's label (dlib's ``group_vae_labels``)."""

    name: ClassVar[str] = "group_vae"
    aggregation: ClassVar[str] = "group"
    selection: ClassVar[str] = "labels"


@dataclass(frozen=True)
class MLVAE(WeakObjective):
    """ML-VAE with the changed factor's label (dlib's ``mlvae_labels``)."""

    name: ClassVar[str] = "ml_vae"
    aggregation: ClassVar[str] = "ml"
    selection: ClassVar[str] = "labels"


@dataclass(frozen=True)
class AdaGVAE(WeakObjective):
    """Ada-GVAE: GroupVAE with the shared dimensions found from ``delta`` (dlib's ``group_vae_argmax``)."""

    name: ClassVar[str] = "ada_gvae"
    aggregation: ClassVar[str] = "group"
    selection: ClassVar[str] = "argmax"


@dataclass(frozen=True)
class AdaMLVAE(WeakObjective):
    """Ada-ML-VAE: ML-VAE with the shared dimensions found from ``delta`` (dlib's ``mlvae_argmax``)."""

    name: ClassVar[str] = "ada_ml_vae"
    aggregation: ClassVar[str] = "ml"
    selection: ClassVar[str] = "argmax"


__all__ = [
    "AGGREGATIONS",
    "MLVAE",
    "SELECTIONS",
    "SELECTION_MASKS",
    "SHARED_POSTERIORS",
    "AdaGVAE",
    "AdaMLVAE",
    "GroupVAE",
    "WeakObjective",
    "adaptive_mask",
    "group_posterior",
    "label_mask",
    "ml_posterior",
    "pair_distance",
]
