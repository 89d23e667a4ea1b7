"""The model: a Gaussian encoder, a decoder, an objective (and FactorVAE's discriminator).

``VAE.loss_terms`` computes, for one batch, what dlib's ``BaseVAE.model_fn`` computes::

    mean, logvar = encoder(x);  z = mean + exp(logvar / 2) * eps;  logits = decoder(z)
    reconstruction = mean_batch(per-image reconstruction loss)
    kl             = mean_batch(KL(q(z|x) || N(0, I)))
    regularizer    = objective.regularizer(kl, mean, logvar, z, step)
    loss           = reconstruction + regularizer
    elbo           = -(reconstruction + kl)

Gradients for FactorVAE are arranged so that one backward pass of
``loss + discriminator_loss`` gives each network exactly its own gradient, as dlib's two
``minimize`` calls with separate ``var_list`` do: the discriminator enters ``loss`` with
detached parameters (its gradient reaches the encoder only) and ``discriminator_loss`` sees
``z.detach()`` (its gradient reaches the discriminator only). Stepping both optimisers
afterwards is dlib's simultaneous update.
"""

from __future__ import annotations

import functools
import itertools
from typing import ClassVar, Sequence

from torch import Tensor, nn

from ..errors import check_choice
from .architectures import Discriminator, build_architecture
from .distributions import gaussian_kl, sample_gaussian
from .losses import RECONSTRUCTION_LOSSES
from .objectives.base import Objective


class VAE(nn.Module):
    """Encoder + decoder (+ discriminator when ``objective.needs_discriminator``) + objective.

    ``encoder(x) -> (mean, logvar)`` and ``decoder(z) -> logits``. When the objective needs a
    discriminator and none is given, a :class:`Discriminator` of ``encoder.num_latent`` inputs
    is built here with ``init``.
    """

    #: The networks of the model, in the order they are initialised; an ensemble stacks each
    #: (:func:`disentangled.models.stacked.stack`). A part may be None (no discriminator).
    parts: ClassVar[tuple[str, ...]] = ("encoder", "decoder", "discriminator")
    #: The parts a reduced ``train.precision`` runs in that precision (disentangled.train.precision):
    #: the convolutional and dense networks. Parts added by subclasses (the semi-supervised
    #: models' loss parameters and MINE estimators) stay in float32.
    reduced_precision_parts: ClassVar[tuple[str, ...]] = ("encoder", "decoder", "discriminator")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        objective: Objective,
        *,
        reconstruction: str = "bernoulli",
        discriminator: nn.Module | None = None,
        init: str = "tf1",
    ):
        super().__init__()
        if not isinstance(objective, Objective):
            raise TypeError(
                f"objective must be an Objective (e.g. disentangled.models.get_objective('beta_vae', beta=4)), "
                f"got {type(objective).__name__}"
            )
        check_choice("reconstruction", reconstruction, sorted(RECONSTRUCTION_LOSSES))
        self.encoder = encoder
        self.decoder = decoder
        self.objective = objective
        self.reconstruction = reconstruction
        self._reconstruction_loss = RECONSTRUCTION_LOSSES[reconstruction]
        if objective.needs_discriminator and discriminator is None:
            discriminator = Discriminator(encoder.num_latent, init=init)
        self.discriminator = discriminator

    @property
    def num_latent(self) -> int:
        return int(self.encoder.num_latent)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, logvar)`` of q(z|x), each ``[..., B, D]``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Logits of p(x|z), ``[..., B, C, H, W]``."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode(x)

    def loss_terms(self, x: Tensor, *, step, generator) -> dict[str, Tensor]:
        """The batch's loss and the quantities dlib reports, as tensors of shape ``[...]``.

        Keys: ``loss`` (minimise over :meth:`vae_parameters`), ``reconstruction``, ``kl``,
        ``regularizer``, ``elbo`` and, with a discriminator, ``discriminator_loss``
        (minimise over :meth:`discriminator_parameters`). ``step`` is the number of
        completed updates; ``generator`` draws the posterior sample (and the permutation):
        a :class:`torch.Generator`, or one per model for a stack of models
        (:mod:`~disentangled.models.stacked`).
        """
        mean, logvar = self.encoder(x)
        z = sample_gaussian(mean, logvar, generator=generator)
        logits = self.decoder(z)
        reconstruction = self._reconstruction_loss(x, logits).mean(-1)
        kl = gaussian_kl(mean, logvar).mean(-1)
        extra = {}
        if self.discriminator is not None:
            extra["discriminator"] = functools.partial(self.discriminator, detach_parameters=True)
        regularizer = self.objective.regularizer(kl, mean, logvar, z, step, **extra)
        terms = {
            "loss": reconstruction + regularizer,
            "reconstruction": reconstruction,
            "kl": kl,
            "regularizer": regularizer,
            "elbo": -(reconstruction + kl),
        }
        if self.objective.needs_discriminator:
            terms["discriminator_loss"] = self.objective.discriminator_loss(
                self.discriminator, z, generator=generator
            )
        return terms

    def with_parts(self, parts: dict, objective: Objective) -> "VAE":
        """A model shaped like this one from other parts (a stack of members' parts) and objective."""
        return VAE(parts["encoder"], parts["decoder"], objective, reconstruction=self.reconstruction,
                   discriminator=parts.get("discriminator"))

    def vae_parameters(self) -> list[nn.Parameter]:
        """Encoder and decoder parameters (what the VAE optimiser updates)."""
        return list(itertools.chain(self.encoder.parameters(), self.decoder.parameters()))

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """The discriminator's parameters; empty without one."""
        return [] if self.discriminator is None else list(self.discriminator.parameters())


def build_model(
    objective: Objective,
    *,
    observation_shape: Sequence[int],
    architecture: str = "conv",
    num_latent: int = 10,
    reconstruction: str = "bernoulli",
    **arch_options,
) -> VAE:
    """A :class:`VAE` with the registered ``architecture`` (options such as ``init`` and
    ``kernel_size_34`` go to it; ``init`` also initialises the discriminator)."""
    if not isinstance(objective, Objective):
        raise TypeError(
            f"objective must be an Objective (e.g. disentangled.models.get_objective('beta_vae', beta=4)), "
            f"got {type(objective).__name__}"
        )
    encoder, decoder = build_architecture(architecture, observation_shape, num_latent, **arch_options)
    model_class = VAE
    if objective.batch_kind == "pairs":  # weakly supervised: the same networks, a loss on pairs
        from .weak import WeakVAE

        model_class = WeakVAE
    return model_class(encoder, decoder, objective, reconstruction=reconstruction, init=arch_options.get("init", "tf1"))
