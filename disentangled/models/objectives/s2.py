"""The semi-supervised objectives: Locatello et al., "Disentangling Factors of Variation Using Few
Labels", ICLR 2020 (arXiv 1905.01258), sec. 3, eq. 2 (dlib's ``semi_supervised_vae``).

    loss = reconstruction + R_u(q) + gamma_sup(t) * R_s(mu(x_labelled), y)

Each step sees a batch of unlabelled observations, on which the unsupervised objective
``R_u`` is computed exactly as in the unsupervised models, and a batch of labelled ones,
whose encoder means enter the supervised loss ``R_s``
(:mod:`disentangled.models.supervised_losses`; ``supervised_loss`` names it, with its
settings ``learn_scale``, ``sigma``, ``use_order``). ``gamma_sup`` follows an annealer
(``annealer``, ``iteration_threshold``).

=================  ===================================================================
``s2_vae``          ``beta * KL`` (beta-VAE, Higgins et al. 2017, eq. 4)
``s2_factor_vae``   ``KL + gamma * TC`` with FactorVAE's discriminator (Kim & Mnih 2018, eq. 2)
``s2_dip_vae_i``    DIP-VAE-I (Kumar et al. 2018, eq. 6); ``s2_dip_vae_ii``: eq. 7
``s2_beta_tc_vae``  ``KL + (beta - 1) * TC`` (Chen et al. 2018, eq. 4)
``s2_mine_vae``     ``beta * KL``; ``R_s = sum_{l != r} I(y_l; mu_r)^2`` by MINE (no supervised loss)
``supervised``      no ``R_u`` and no KL: ``reconstruction(decoder(stop_gradient(z))) + R_s``
=================  ===================================================================

``supervised`` trains the encoder from the labels alone; its decoder learns to reconstruct
from the codes without changing them (the reference's model for visualising a supervised
encoder). ``s2_mine_vae`` estimates the mutual information of every (factor, latent) pair
with its own small network (:mod:`disentangled.models.mine`), trained alongside by its own
Adam (lr 0.01) on the Donsker-Varadhan bound; the VAE is penalised for the squared
estimates off the diagonal only, so the loss decorrelates and never rewards ``I(y_l; mu_l)``.

Steps. ``t`` is the number of completed updates. The reference's ``s2_factor_vae`` passes the
global step to both of its optimisers, so there the annealer sees ``2 t`` after ``t`` updates
(FactorVAE's double count, see :mod:`~disentangled.models.objectives.factor_vae`); halve the
reference's ``iteration_threshold`` to follow its schedule here.

The reference's ``s2_factor_vae`` trains the encoder and decoder only: the supervised loss's
own parameters (l2's scale, embed's embeddings and temperature) keep their initial values.
That is the default here too; ``train_loss_parameters: true`` trains them with the VAE, as
every other model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

from torch import Tensor

from ...errors import ParameterError, UnknownNameError, check, check_choice, check_int, message
from ..supervised_losses import ANNEALERS, SUPERVISED_LOSSES, Embed, SupervisedLoss, anneal
from .base import DISCRIMINATOR_OPTIMIZER, AdamSettings, Objective
from .beta_tc_vae import BetaTCVAE
from .beta_vae import BetaVAE
from .dip_vae import DIPVAEI, DIPVAEII
from .factor_vae import FactorVAE

#: Each loss setting and the loss it belongs to.
LOSS_SETTINGS = {"learn_scale": "l2", "sigma": "embed", "use_order": "embed"}

#: The optimiser of each MINE statistics network: TensorFlow's Adam at lr 0.01 and its defaults.
MINE_OPTIMIZER = AdamSettings(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)


def _adam(owner: str, value) -> AdamSettings:
    if isinstance(value, Mapping):
        allowed = list(AdamSettings.__dataclass_fields__)
        for key in value:
            if key not in allowed:
                raise UnknownNameError("setting", key, allowed, owner=owner)
        value = AdamSettings(**value)
    check(owner, value, lambda v: isinstance(v, AdamSettings), "AdamSettings or a dict of its fields")
    return value


@dataclass(frozen=True)
class AnnealedSettings:
    """The weight of the supervised term and its schedule (``supervision_annealer`` in the reference)."""

    gamma_sup: float = 1.0
    annealer: str = "fixed"
    iteration_threshold: int = 1


@dataclass(frozen=True)
class LossSettings:
    """The supervised loss and its own settings, each belonging to one loss (:data:`LOSS_SETTINGS`)."""

    supervised_loss: str = "xent"
    learn_scale: bool | None = None
    sigma: float | str | None = None
    use_order: bool | None = None


class SemiSupervised(Objective):
    """Base of the semi-supervised objectives (abstract; each subclass is a final frozen dataclass).

    :meth:`penalty` receives ``supervised``, the supervised term of the labelled batch (the
    model computes it: it needs the labelled batch and, for some losses, learned
    parameters), and returns ``R_u + gamma_sup * supervised``.
    """

    batch_kind: ClassVar[str] = "labelled"
    #: The decoder reconstructs from ``stop_gradient(z)`` (``supervised``: the codes come from the labels alone).
    decoder_detached: ClassVar[bool] = False
    #: The supervised term is MINE's (``s2_mine_vae``) rather than a supervised loss.
    uses_mine: ClassVar[bool] = False
    #: Networks trained besides the VAE (and FactorVAE's discriminator), each by an optimiser of its own.
    extra_optimizers: ClassVar[tuple[str, ...]] = ()

    def unsupervised(self) -> Objective | None:
        """The unsupervised objective ``R_u`` (None for ``supervised``)."""
        return None

    def loss(self) -> SupervisedLoss | None:
        """The supervised loss and its settings (None for ``s2_mine_vae``)."""
        if not isinstance(self, LossSettings):
            return None
        own = {k: getattr(self, k) for k, owner in LOSS_SETTINGS.items() if owner == self.supervised_loss}
        return SUPERVISED_LOSSES.build(self.supervised_loss, **own)

    @property
    def trains_loss_parameters(self) -> bool:
        """Whether the VAE's optimiser trains the supervised loss's own parameters."""
        return True

    def annealed_gamma_sup(self, step) -> float:
        return anneal(self.annealer, self.gamma_sup, step, self.iteration_threshold)

    def coefficients(self, step) -> dict:
        unsupervised = self.unsupervised()
        c = dict(unsupervised.coefficients(step)) if unsupervised is not None else {}
        c["gamma_sup"] = self.annealed_gamma_sup(step)
        loss = self.loss()
        if isinstance(loss, Embed) and loss.sigma != "learn":
            c["sigma"] = loss.sigma
        return c

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, *, supervised: Tensor,
                **extra) -> Tensor:
        return self.unsupervised().penalty(c, kl, mean, logvar, z, **extra) + c["gamma_sup"] * supervised

    # -- validation -----------------------------------------------------------------------------

    def _check_supervision(self) -> None:
        if isinstance(self, AnnealedSettings):
            self._check("gamma_sup", low=0)
            check_choice(f"{self.name}: annealer", self.annealer, list(ANNEALERS))
            low = 1 if self.annealer == "anneal" else 0  # the ramp divides by the threshold
            check_int(f"{self.name}: iteration_threshold", self.iteration_threshold, low=low)
        if isinstance(self, LossSettings):
            check_choice(f"{self.name}: supervised_loss", self.supervised_loss, list(SUPERVISED_LOSSES))
            own = {}
            for key, owner in LOSS_SETTINGS.items():
                value = getattr(self, key)
                if value is None:
                    continue
                if owner != self.supervised_loss:
                    raise ParameterError(message(
                        f"{self.name}: {key}", f"unset for the {self.supervised_loss!r} loss (it is a setting of the {owner!r} loss)",
                        value, fix=f"remove it, or choose supervised_loss: {owner}"))
                own[key] = value
            try:
                resolved = SUPERVISED_LOSSES.build(self.supervised_loss, **own)
            except ParameterError as err:
                raise type(err)(f"{self.name}: {err}") from err
            for key in LOSS_SETTINGS:  # the chosen loss's defaults, written out (they land in config.json)
                if LOSS_SETTINGS[key] == self.supervised_loss:
                    object.__setattr__(self, key, getattr(resolved, key))


@dataclass(frozen=True)
class S2VAE(SemiSupervised, LossSettings, AnnealedSettings):
    """Semi-supervised beta-VAE: ``beta * KL + gamma_sup(t) * R_s`` (dlib's ``s2_vae``)."""

    beta: float = 1.0

    name: ClassVar[str] = "s2_vae"

    def __post_init__(self):
        self._check("beta", low=0)
        self._check_supervision()

    def unsupervised(self) -> Objective:
        return BetaVAE(beta=self.beta)


@dataclass(frozen=True)
class S2FactorVAE(SemiSupervised, LossSettings, AnnealedSettings):
    """Semi-supervised FactorVAE: ``KL + gamma * TC + gamma_sup(t) * R_s``, discriminator as FactorVAE's
    (dlib's ``s2_factor_vae``). ``train_loss_parameters``: see the module docstring."""

    gamma: float = 10.0
    train_loss_parameters: bool = False
    discriminator_optimizer: AdamSettings = DISCRIMINATOR_OPTIMIZER

    name: ClassVar[str] = "s2_factor_vae"
    needs_discriminator: ClassVar[bool] = True

    def __post_init__(self):
        self._check("gamma", low=0)
        self._check_supervision()
        check(f"{self.name}: train_loss_parameters", self.train_loss_parameters, lambda v: isinstance(v, bool), "true or false")
        object.__setattr__(self, "discriminator_optimizer",
                           _adam(f"{self.name}: discriminator_optimizer", self.discriminator_optimizer))

    @property
    def trains_loss_parameters(self) -> bool:
        return self.train_loss_parameters

    def unsupervised(self) -> Objective:
        return FactorVAE(gamma=self.gamma, discriminator_optimizer=self.discriminator_optimizer)

    def discriminator_loss(self, discriminator, z: Tensor, *, generator) -> Tensor:
        return self.unsupervised().discriminator_loss(discriminator, z, generator=generator)


@dataclass(frozen=True)
class S2DIPVAEI(SemiSupervised, LossSettings, AnnealedSettings):
    """Semi-supervised DIP-VAE-I: DIP-VAE-I's regulariser + ``gamma_sup(t) * R_s`` (dlib's ``s2_dip_vae``, ``dip_type="i"``)."""

    lambda_od: float = 1.0
    lambda_d_factor: float = 10.0

    name: ClassVar[str] = "s2_dip_vae_i"

    def __post_init__(self):
        self._check("lambda_od", low=0)
        self._check("lambda_d_factor", low=0)
        self._check_supervision()

    def unsupervised(self) -> Objective:
        return DIPVAEI(lambda_od=self.lambda_od, lambda_d_factor=self.lambda_d_factor)


@dataclass(frozen=True)
class S2DIPVAEII(SemiSupervised, LossSettings, AnnealedSettings):
    """Semi-supervised DIP-VAE-II: DIP-VAE-II's regulariser + ``gamma_sup(t) * R_s`` (dlib's ``s2_dip_vae``, ``dip_type="ii"``)."""

    lambda_od: float = 1.0
    lambda_d_factor: float = 1.0

    name: ClassVar[str] = "s2_dip_vae_ii"

    def __post_init__(self):
        self._check("lambda_od", low=0)
        self._check("lambda_d_factor", low=0)
        self._check_supervision()

    def unsupervised(self) -> Objective:
        return DIPVAEII(lambda_od=self.lambda_od, lambda_d_factor=self.lambda_d_factor)


@dataclass(frozen=True)
class S2BetaTCVAE(SemiSupervised, LossSettings, AnnealedSettings):
    """Semi-supervised beta-TCVAE: ``KL + (beta - 1) * TC + gamma_sup(t) * R_s`` (dlib's ``s2_beta_tc_vae``)."""

    beta: float = 1.0

    name: ClassVar[str] = "s2_beta_tc_vae"

    def __post_init__(self):
        self._check("beta", low=0)
        self._check_supervision()

    def unsupervised(self) -> Objective:
        return BetaTCVAE(beta=self.beta)


@dataclass(frozen=True)
class S2MineVAE(SemiSupervised, AnnealedSettings):
    """``beta * KL + gamma_sup(t) * sum_{l != r} I(y_l; mu_r)^2``, the MI estimated by MINE (dlib's ``s2_mine_vae``).

    ``mine_optimizer``: the update of every statistics network (Adam, lr 0.01 as in the reference).
    """

    beta: float = 1.0
    mine_optimizer: AdamSettings = MINE_OPTIMIZER

    name: ClassVar[str] = "s2_mine_vae"
    uses_mine: ClassVar[bool] = True
    extra_optimizers: ClassVar[tuple[str, ...]] = ("mine",)

    def __post_init__(self):
        self._check("beta", low=0)
        self._check_supervision()
        object.__setattr__(self, "mine_optimizer", _adam(f"{self.name}: mine_optimizer", self.mine_optimizer))

    def unsupervised(self) -> Objective:
        return BetaVAE(beta=self.beta)


@dataclass(frozen=True)
class Supervised(SemiSupervised, LossSettings):
    """Fully supervised encoder: ``reconstruction(decoder(stop_gradient(z))) + R_s``, no KL (dlib's ``supervised``)."""


    name: ClassVar[str] = "supervised"
    decoder_detached: ClassVar[bool] = True

    def __post_init__(self):
        self._check_supervision()

    def annealed_gamma_sup(self, step) -> float:
        return 1.0  # the reference adds the supervised loss unweighted

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, *, supervised: Tensor,
                **extra) -> Tensor:
        return c["gamma_sup"] * supervised


__all__ = [
    "LOSS_SETTINGS",
    "MINE_OPTIMIZER",
    "AnnealedSettings",
    "LossSettings",
    "S2BetaTCVAE",
    "S2DIPVAEI",
    "S2DIPVAEII",
    "S2FactorVAE",
    "S2MineVAE",
    "S2VAE",
    "SemiSupervised",
    "Supervised",
]
