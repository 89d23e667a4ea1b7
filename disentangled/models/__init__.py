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
from .vae import VAE, build_model

# an objective's hyperparameters are its dataclass fields
OBJECTIVES = Registry("objective", {
    "beta_vae": BetaVAE,
    "annealed_vae": AnnealedVAE,
    "factor_vae": FactorVAE,
    "dip_vae_i": DIPVAEI,
    "dip_vae_ii": DIPVAEII,
    "beta_tc_vae": BetaTCVAE,
}, option="hyperparameter")


def objective_options(name: str) -> list[str]:
    """The hyperparameter names of the objective registered as ``name``."""
    return OBJECTIVES.options(name)


def get_objective(name: str, **hyperparameters) -> Objective:
    """The objective registered as ``name``; unset hyperparameters take the study's defaults."""
    return OBJECTIVES.build(name, **hyperparameters)


__all__ = [
    "ARCHITECTURES",
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
    "architecture_options",
    "build_architecture",
    "build_model",
    "get_objective",
    "objective_options",
]
