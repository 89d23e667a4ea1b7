"""The weakly-supervised model: one encoder and decoder trained on pairs of observations.

:class:`WeakVAE` is a :class:`~disentangled.models.vae.VAE` whose ``loss_terms`` take a pair
batch (:class:`~disentangled.train.pair_batches.PairBatches`)::

    {"x": [..., 2B, C, H, W],   # the B first images, then the B second images
     "label": [..., B]}         # int64: the factor each pair's label names

and compute what dlib's ``GroupVAEBase.model_fn`` and ``MLVae.model_fn`` compute (the
formulas are in :mod:`disentangled.models.objectives.weak`): both halves through the encoder
(one call on the 2B images), the shared posterior, each image's aggregated posterior, one
reparameterised sample of all 2B codes, one decoder call, and

    reconstruction = (mean_batch recon(x1) + mean_batch recon(x2)) / 2
    kl             = (mean_batch KL(agg1) + mean_batch KL(agg2)) / 2
    loss           = reconstruction + beta * kl;   elbo = -(reconstruction + kl)

Everything else is the VAE's: ``encode`` is the single-image encoder, so the
representations, every metric, ``evaluate``, ``visualize`` and the report treat a weak model
as any other; the checkpoint has the same keys. A leading model axis (an ensemble,
:mod:`~disentangled.models.stacked`) passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..errors import check_choice
from .distributions import gaussian_kl, sample_gaussian
from .objectives.weak import (
    AGGREGATIONS,
    SELECTION_MASKS,
    SELECTIONS,
    SHARED_POSTERIORS,
    pair_distance,
)
from .vae import VAE


class WeakVAE(VAE):
    """A VAE trained on pairs. ``aggregation`` (``group``/``ml``) and ``selection``
    (``labels``/``argmax``) default to the objective's; a stack of models passes them
    explicitly (its objective is the members' stack)."""

    def __init__(self, encoder, decoder, objective, *, reconstruction: str = "bernoulli", aggregation: str | None = None,
                 selection: str | None = None, discriminator=None, init: str = "tf1"):
        super().__init__(encoder, decoder, objective, reconstruction=reconstruction, discriminator=discriminator, init=init)
        self.aggregation = aggregation if aggregation is not None else getattr(objective, "aggregation", None)
        self.selection = selection if selection is not None else getattr(objective, "selection", None)
        check_choice("aggregation", self.aggregation, AGGREGATIONS)
        check_choice("selection", self.selection, SELECTIONS)

    def with_parts(self, parts: dict, objective) -> "WeakVAE":
        """The same kind of model from other parts (a stack), keeping this one's aggregation and selection."""
        return WeakVAE(parts["encoder"], parts["decoder"], objective, reconstruction=self.reconstruction,
                       aggregation=self.aggregation, selection=self.selection)

    def aggregate(self, mean: Tensor, logvar: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """The aggregated posteriors of both images ``[..., 2B, D]`` from the encoder's ``[..., 2B, D]``."""
        b = label.shape[-1]
        m1, m2 = mean[..., :b, :], mean[..., b:, :]
        lv1, lv2 = logvar[..., :b, :], logvar[..., b:, :]
        delta = pair_distance(m1, lv1, m2, lv2)
        shared_mean, shared_logvar = SHARED_POSTERIORS[self.aggregation](m1, lv1, m2, lv2)
        private = SELECTION_MASKS[self.selection](delta.detach(), label)
        agg_mean = torch.cat([torch.where(private, m1, shared_mean), torch.where(private, m2, shared_mean)], dim=-2)
        agg_logvar = torch.cat([torch.where(private, lv1, shared_logvar), torch.where(private, lv2, shared_logvar)], dim=-2)
        return agg_mean, agg_logvar

    def loss_terms(self, batch, *, step, generator) -> dict[str, Tensor]:
        """The pair batch's loss and the quantities dlib reports (keys as :meth:`VAE.loss_terms`)."""
        if not isinstance(batch, Mapping) or "x" not in batch or "label" not in batch:
            raise TypeError(
                f"{self.objective.name} trains on pairs: loss_terms takes {{'x': [2B, C, H, W], 'label': [B]}} "
                f"(disentangled.train.pair_batches.PairBatches draws them; set data.pairs in the run's config), "
                f"got {type(batch).__name__}"
            )
        x, label = batch["x"], batch["label"]
        b = label.shape[-1]
        if x.shape[-4] != 2 * b:
            raise ValueError(f"pair batch: x must hold 2 x {b} images (first images, then second images), got {x.shape[-4]}")
        mean, logvar = self.encoder(x)
        agg_mean, agg_logvar = self.aggregate(mean, logvar, label)
        z = sample_gaussian(agg_mean, agg_logvar, generator=generator)
        per_image = self._reconstruction_loss(x, self.decoder(z))  # [..., 2B]
        reconstruction = 0.5 * per_image[..., :b].mean(-1) + 0.5 * per_image[..., b:].mean(-1)
        kl_each = gaussian_kl(agg_mean, agg_logvar)
        kl = 0.5 * kl_each[..., :b].mean(-1) + 0.5 * kl_each[..., b:].mean(-1)
        regularizer = self.objective.regularizer(kl, agg_mean, agg_logvar, z, step)
        return {
            "loss": reconstruction + regularizer,
            "reconstruction": reconstruction,
            "kl": kl,
            "regularizer": regularizer,
            "elbo": -(reconstruction + kl),
        }


__all__ = ["WeakVAE"]
