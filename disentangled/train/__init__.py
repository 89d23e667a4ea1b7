"""Training: the single-model loop, ensembles, their shared core, checkpoints, representations of trained runs."""

from ..rundir import RunConfigMismatch
from .core import TrainingDiverged, build
from .ensemble import train_ensemble
from .loop import train
from .represent import Representation, load_model, representation

__all__ = ["Representation", "RunConfigMismatch", "TrainingDiverged", "build", "load_model", "representation", "train",
           "train_ensemble"]
