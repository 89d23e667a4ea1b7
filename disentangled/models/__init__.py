"""Models of the study: ``build_model(get_objective("beta_vae", beta=4), observation_shape=(1, 64, 64))``.

The registries below are the one list of objectives and architectures; the CLI, the
configs and the tests iterate over them.
"""

from __future__ import annotations

from ..registry import Registry
from .architectures import (
    ARCHITECTURES,
    ConvEncoder,
    DeconvDecoder,
    Discriminator,
    FCDecoder,
    FCEncoder,
    architecture_options,
    build_architecture,
)
from .losses import RECONSTRUCTION_LOSSES
from .objectives import (
    DISCRIMINATOR_OPTIMIZER,
    VAE_OPTIMIZER,
    AdamSettings,
    AnnealedVAE,
    BetaTCVAE,
    BetaVAE,
    DIPVAEI,
    DIPVAEII,
    FactorVAE,
    Objective,
)
from .objectives.weak import AdaGVAE, AdaMLVAE, GroupVAE, MLVAE
from .objectives.s2 import S2VAE, S2BetaTCVAE, S2DIPVAEI, S2DIPVAEII, S2FactorVAE, S2MineVAE, SemiSupervised, Supervised
from .vae import VAE, build_model
from .weak import WeakVAE

# an objective's hyperparameters are its dataclass fields
OBJECTIVES = Registry("objective", {
    "beta_vae": BetaVAE,
    "annealed_vae": AnnealedVAE,
    "factor_vae": FactorVAE,
    "dip_vae_i": DIPVAEI,
    "dip_vae_ii": DIPVAEII,
    "beta_tc_vae": BetaTCVAE,
    # weakly supervised (pairs of observations, data.pairs; docs/weak.md)
    "group_vae": GroupVAE,
    "ml_vae": MLVAE,
    "ada_gvae": AdaGVAE,
    "ada_ml_vae": AdaMLVAE,
}, option="hyperparameter")


# semi-supervised: each step a labelled and an unlabelled batch (the run's supervision section;
# docs/semi.md). A registry of their own: everything that iterates OBJECTIVES trains them on
# batches of observations alone.
SEMI_OBJECTIVES = Registry("semi-supervised objective", {
    "s2_vae": S2VAE,
    "supervised": Supervised,
    "s2_factor_vae": S2FactorVAE,
    "s2_dip_vae_i": S2DIPVAEI,
    "s2_dip_vae_ii": S2DIPVAEII,
    "s2_beta_tc_vae": S2BetaTCVAE,
    "s2_mine_vae": S2MineVAE,
}, option="hyperparameter")

#: Every objective a run can name (``objective.name``): OBJECTIVES, then SEMI_OBJECTIVES.
ALL_OBJECTIVES = Registry("objective", {**OBJECTIVES, **SEMI_OBJECTIVES}, option="hyperparameter")


def objective_options(name: str) -> list[str]:
    """The hyperparameter names of the objective registered as ``name``."""
    return ALL_OBJECTIVES.options(name)


def get_objective(name: str, **hyperparameters) -> Objective:
    """The objective registered as ``name``; unset hyperparameters take the study's defaults."""
    return ALL_OBJECTIVES.build(name, **hyperparameters)


__all__ = [
    "ALL_OBJECTIVES",
    "ARCHITECTURES",
    "SEMI_OBJECTIVES",
    "S2BetaTCVAE",
    "S2DIPVAEI",
    "S2DIPVAEII",
    "S2FactorVAE",
    "S2MineVAE",
    "S2VAE",
    "SemiSupervised",
    "Supervised",
    "AdaGVAE",
    "AdaMLVAE",
    "GroupVAE",
    "MLVAE",
    "AdamSettings",
    "AnnealedVAE",
    "BetaTCVAE",
    "BetaVAE",
    "ConvEncoder",
    "DIPVAEI",
    "DIPVAEII",
    "DISCRIMINATOR_OPTIMIZER",
    "DeconvDecoder",
    "Discriminator",
    "FCDecoder",
    "FCEncoder",
    "FactorVAE",
    "OBJECTIVES",
    "Objective",
    "RECONSTRUCTION_LOSSES",
    "VAE",
    "VAE_OPTIMIZER",
    "WeakVAE",
    "architecture_options",
    "build_architecture",
    "build_model",
    "get_objective",
    "objective_options",
]
