"""The semi-supervised model: the study's encoder and decoder, an S2 objective, and the parts it adds.

``SemiSupervisedVAE.loss_terms`` takes a batch of unlabelled and one of labelled observations
(``{"unlabelled", "labelled", "labels", "sizes"}``, from
:class:`~disentangled.train.labelled.LabelledBatches`) and computes what dlib's
``BaseS2VAE.model_fn`` computes::

    mean, logvar = encoder(unlabelled);  mean_l, _ = encoder(labelled)
    z = mean + exp(logvar / 2) * eps;  logits = decoder(z)        (supervised: decoder(stop_gradient(z)))
    reconstruction = mean_batch(per-image reconstruction loss);  kl = mean_batch(KL)
    supervised_loss = R_s(mean_l, labels)                        (s2_mine_vae: sum_{l != r} MI_lr^2)
    regularizer = R_u(kl, mean, logvar, z) + gamma_sup(step) * supervised_loss
    loss = reconstruction + regularizer;  elbo = -(reconstruction + kl)

The unlabelled and labelled batches go through the encoder separately, as in the reference.
Besides the encoder and decoder (and ``s2_factor_vae``'s discriminator) the model holds

* ``loss_parameters``: the supervised loss's learned parameters (l2's scale, embed's
  embedding, order and temperature), trained by the VAE's optimiser
  (:attr:`~disentangled.models.objectives.s2.SemiSupervised.trains_loss_parameters`);
* ``estimators``: ``s2_mine_vae``'s MINE networks, trained by their own optimiser on
  ``mine_loss`` (minus the sum of every pair's estimate, on detached codes), while the VAE's
  term uses them with detached parameters, so each network gets exactly its own gradient
  from one backward pass, as FactorVAE's discriminator does.

Label columns. A labeller gives ``K`` label columns (the data set's factors, or
``num_observed_factors`` of them); how many values each takes (``sizes``) comes with every
batch, so the model's shapes depend only on the configuration: embed's embedding is
``[K, S]`` with ``S`` the most values a column can take, columns with fewer values ignore the
rest.
"""

from __future__ import annotations

import functools
import itertools
from types import SimpleNamespace
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import ParameterError, message
from .architectures import Discriminator, build_architecture
from .distributions import draw, gaussian_kl, sample_gaussian
from .mine import MineEstimators, pair_indices
from .objectives.base import AdamSettings, Objective
from .objectives.s2 import SemiSupervised
from .supervised_losses import LossParameters, supervised_loss
from .vae import VAE


def _per_model(x: Tensor) -> bool:
    from .stacked import _per_model as per_model  # the stacks' own rule: model by model on the CPU

    return per_model(x)


def _spec(objective: Objective) -> SemiSupervised:
    """The objective's settings (the first member's, for a stack of objectives: they share their kind)."""
    return getattr(objective, "members", (objective,))[0]


def _as_tensor(value, like: Tensor):
    """A per-model list of coefficients (from a stacked objective) as a tensor; a float as it is."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device) if isinstance(value, list) else value


class SemiSupervisedVAE(VAE):
    """A :class:`VAE` trained on labelled and unlabelled batches; see the module docstring."""

    #: Parts with parameters of their own, stacked member by member in an ensemble (models.stacked).
    parts = ("encoder", "decoder", "discriminator", "loss_parameters", "estimators")

    def __init__(self, encoder: nn.Module, decoder: nn.Module, objective: Objective, *, num_columns: int,
                 label_width: int, reconstruction: str = "bernoulli", discriminator: nn.Module | None = None,
                 loss_parameters: nn.Module | None = None, estimators: nn.Module | None = None, init: str = "tf1"):
        spec = _spec(objective)
        if not isinstance(spec, SemiSupervised):
            raise TypeError(f"objective must be a semi-supervised objective (s2_vae, ...), got {type(spec).__name__}")
        super().__init__(encoder, decoder, objective, reconstruction=reconstruction, discriminator=discriminator, init=init)
        self.num_columns, self.label_width = int(num_columns), int(label_width)
        self.loss_parameters = loss_parameters
        self.estimators = estimators
        if loss_parameters is not None and not spec.trains_loss_parameters:
            loss_parameters.requires_grad_(False)  # kept at their initial values, as the reference's s2_factor_vae keeps them
        if estimators is not None:  # the pairs whose squared estimate the VAE pays for: factor l != latent r
            factor, latent = pair_indices(self.num_columns, self.num_latent)
            self.register_buffer("off_diagonal", torch.nonzero(factor != latent).squeeze(-1), persistent=False)

    def with_parts(self, parts: dict, objective: Objective) -> "SemiSupervisedVAE":
        """A model shaped like this one from other parts (a stack of members' parts, models.stacked)."""
        return SemiSupervisedVAE(parts["encoder"], parts["decoder"], objective, num_columns=self.num_columns,
                                 label_width=self.label_width, reconstruction=self.reconstruction,
                                 discriminator=parts.get("discriminator"), loss_parameters=parts.get("loss_parameters"),
                                 estimators=parts.get("estimators"))

    def loss_terms(self, batch: dict, *, step, generator) -> dict[str, Tensor]:
        """The batch's loss and the quantities dlib reports, as tensors of shape ``[...]``.

        Keys: those of :meth:`VAE.loss_terms` (``loss``, ``reconstruction``, ``kl``,
        ``regularizer``, ``elbo``, and ``discriminator_loss`` for ``s2_factor_vae``), plus
        ``supervised_loss`` and, for ``s2_mine_vae``, ``mine_loss`` (minimised over the MINE
        networks' parameters, see :meth:`extra_optimizers`).
        """
        spec = _spec(self.objective)
        x, labelled, labels, sizes = batch["unlabelled"], batch["labelled"], batch["labels"], batch["sizes"]
        mean, logvar = self.encoder(x)
        mean_labelled, _ = self.encoder(labelled)
        z = sample_gaussian(mean, logvar, generator=generator)
        logits = self.decoder(z.detach() if spec.decoder_detached else z)
        reconstruction = self._reconstruction_loss(x, logits).mean(-1)
        kl = gaussian_kl(mean, logvar).mean(-1)
        c = self.objective.coefficients(step)
        terms = {}
        if self.estimators is not None:
            # one permutation of the labelled batch per pair, drawn after the posterior sample
            shape = (*mean_labelled.shape[:-2], self.num_columns * self.num_latent, mean_labelled.shape[-2])
            order = draw(torch.rand, shape, generator=generator, device=mean_labelled.device).argsort(-1)
            estimates = self.estimators(mean_labelled, labels, order, detach_parameters=True)
            supervised = estimates.index_select(-1, self.off_diagonal).square().sum(-1)
            terms["mine_loss"] = -self.estimators(mean_labelled.detach(), labels, order).sum(-1)
        else:
            supervised = self._supervised_loss(spec, mean_labelled, labels, sizes, _as_tensor(c.get("sigma"), kl))
        extra = {"supervised": supervised}
        if self.discriminator is not None:
            extra["discriminator"] = functools.partial(self.discriminator, detach_parameters=True)
        regularizer = self.objective.penalty(c, kl, mean, logvar, z, **extra)
        terms = {
            "loss": reconstruction + regularizer,
            "reconstruction": reconstruction,
            "kl": kl,
            "regularizer": regularizer,
            "elbo": -(reconstruction + kl),
            "supervised_loss": supervised,
            **terms,
        }
        if spec.needs_discriminator:
            terms["discriminator_loss"] = self.objective.discriminator_loss(self.discriminator, z, generator=generator)
        return terms

    def _supervised_loss(self, spec: SemiSupervised, mean: Tensor, labels: Tensor, sizes: Tensor, sigma) -> Tensor:
        """The supervised loss; for a stack of models on the CPU, member by member.

        The backward pass of the batch statistics (``cov``'s centring sums over the batch) sums
        in another order over a stack than over one model's batch, so on the CPU each member's
        loss is computed on its own slices, as it is alone, to keep ensembles bit for bit.
        """
        loss = spec.loss()
        if mean.dim() <= 2 or not _per_model(mean):
            return supervised_loss(loss, mean, labels, sizes, parameters=self.loss_parameters, width=self.label_width,
                                   sigma=sigma)
        each = []
        for m in range(mean.shape[0]):
            own = None
            if self.loss_parameters is not None:
                own = SimpleNamespace(**{n: p[m] for n, p in self.loss_parameters.named_parameters()})
            own_sigma = sigma[m] if torch.is_tensor(sigma) and sigma.dim() > 0 else sigma
            each.append(supervised_loss(loss, mean[m], labels[m], sizes[m], parameters=own, width=self.label_width,
                                        sigma=own_sigma))
        return torch.stack(each)

    def vae_parameters(self) -> list[nn.Parameter]:
        """Encoder, decoder and, when they are trained, the supervised loss's parameters."""
        params = list(itertools.chain(self.encoder.parameters(), self.decoder.parameters()))
        if self.loss_parameters is not None and _spec(self.objective).trains_loss_parameters:
            params += list(self.loss_parameters.parameters())
        return params

    def extra_optimizers(self) -> dict[str, tuple[list[nn.Parameter], AdamSettings, str]]:
        """The networks trained besides the VAE and the discriminator: ``{name: (parameters, settings, loss term)}``."""
        if self.estimators is None:
            return {}
        return {"mine": (list(self.estimators.parameters()), _spec(self.objective).mine_optimizer, "mine_loss")}


def build_semi_model(objective: SemiSupervised, *, observation_shape: Sequence[int], num_columns: int, label_width: int,
                     column_sizes: Sequence[int] | None = None, architecture: str = "conv", num_latent: int = 10,
                     reconstruction: str = "bernoulli", **arch_options) -> SemiSupervisedVAE:
    """A :class:`SemiSupervisedVAE` for labels of ``num_columns`` columns of at most ``label_width`` values.

    ``column_sizes`` (the labelled set's, when known) shapes the initialisation of embed's
    embedding. The parts are initialised in the order encoder, decoder, discriminator, loss
    parameters, MINE networks, so the first three start as in the unsupervised model of the same seed.
    """
    if not isinstance(objective, SemiSupervised):
        raise TypeError(f"objective must be a semi-supervised objective (s2_vae, ...), got {type(objective).__name__}")
    init = arch_options.get("init", "tf1")
    encoder, decoder = build_architecture(architecture, observation_shape, num_latent, **arch_options)
    discriminator = Discriminator(num_latent, init=init) if objective.needs_discriminator else None
    loss = objective.loss()
    if loss is not None and loss.name != "cov" and num_columns > num_latent:
        raise ParameterError(message("model.num_latent", f">= {num_columns}", num_latent,
                                     why=f"the {loss.name} loss binds latent k to label column k of the {num_columns} "
                                         f"labelled columns"))
    loss_parameters = None
    if loss is not None and loss.learns():
        loss_parameters = LossParameters(loss, num_columns, label_width, num_latent=num_latent, sizes=column_sizes)
    estimators = MineEstimators(num_columns, num_latent) if objective.uses_mine else None
    return SemiSupervisedVAE(encoder, decoder, objective, num_columns=num_columns, label_width=label_width,
                             reconstruction=reconstruction, discriminator=discriminator, loss_parameters=loss_parameters,
                             estimators=estimators, init=init)


__all__ = ["SemiSupervisedVAE", "build_semi_model"]
