"""Training: the single-model loop, ensembles, checkpoints, representations of trained runs."""

from .ensemble import train_ensemble
from .loop import DONE, TrainingDiverged, RunConfigMismatch, build, train
from .represent import Representation, load_model, representation

__all__ = ["DONE", "Representation", "RunConfigMismatch", "TrainingDiverged", "build", "load_model", "representation", "train",
           "train_ensemble"]
