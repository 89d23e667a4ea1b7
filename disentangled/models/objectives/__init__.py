"""The six objectives of the study, one small frozen dataclass each."""

from .annealed_vae import AnnealedVAE
from .base import DISCRIMINATOR_OPTIMIZER, VAE_OPTIMIZER, AdamSettings, Objective
from .beta_tc_vae import BetaTCVAE
from .beta_vae import BetaVAE
from .dip_vae import DIPVAEI, DIPVAEII, dip_penalty
from .factor_vae import FactorVAE
from .weak import AdaGVAE, AdaMLVAE, GroupVAE, MLVAE, WeakObjective

__all__ = [
    "AdamSettings",
    "AnnealedVAE",
    "BetaTCVAE",
    "BetaVAE",
    "DIPVAEI",
    "DIPVAEII",
    "DISCRIMINATOR_OPTIMIZER",
    "FactorVAE",
    "Objective",
    "VAE_OPTIMIZER",
    "dip_penalty",
    "AdaGVAE",
    "AdaMLVAE",
    "GroupVAE",
    "MLVAE",
    "WeakObjective",
]
