"""Models of the study: ``build_model(get_objective("beta_vae", beta=4), observation_shape=(1, 64, 64))``.

The registries below are the one list of objectives and architectures; the CLI, the
configs and the tests iterate over them.
"""

from __future__ import annotations

import dataclasses
import difflib

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

OBJECTIVES = {
    "beta_vae": BetaVAE,
    "annealed_vae": AnnealedVAE,
    "factor_vae": FactorVAE,
    "dip_vae_i": DIPVAEI,
    "dip_vae_ii": DIPVAEII,
    "beta_tc_vae": BetaTCVAE,
}


def _did_you_mean(word: str, options) -> str:
    found = difflib.get_close_matches(str(word), list(options), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(f) for f in found)}?" if found else ""


def objective_options(name: str) -> list[str]:
    """The hyperparameter names of the objective registered as ``name``."""
    return [f.name for f in dataclasses.fields(_lookup(name))]


def get_objective(name: str, **hyperparameters) -> Objective:
    """The objective registered as ``name``; unset hyperparameters take the study's defaults."""
    allowed = objective_options(name)
    for key in hyperparameters:
        if key not in allowed:
            raise ValueError(
                f"objective {name!r} has no hyperparameter {key!r}; its hyperparameters are {allowed}."
                + _did_you_mean(key, allowed)
            )
    return OBJECTIVES[name](**hyperparameters)


def _lookup(name: str):
    if name not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {name!r}; known objectives: {', '.join(OBJECTIVES)}." + _did_you_mean(name, OBJECTIVES)
        )
    return OBJECTIVES[name]


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
