"""What every objective shares: the ``Objective`` contract, validation, and Adam settings.

An objective is a small frozen dataclass whose fields are its hyperparameters (with the
study's values as defaults) and whose :meth:`Objective.regularizer` turns the posterior, the
sample and the step into the term added to the reconstruction loss. The model
(:mod:`disentangled.models.vae`) does everything else.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ...errors import check_float


@dataclass(frozen=True)
class AdamSettings:
    """Adam's settings. The defaults are the study's VAE optimiser (dlib ``shared.gin``).

    TensorFlow 1's Adam adds ``eps`` to ``sqrt(v_hat * (1 - beta2^t))`` where PyTorch adds it
    to ``sqrt(v_hat)``; with ``eps = 1e-8`` the two differ only in the first few steps.
    """

    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        check_float("adam: lr", self.lr, low=0, low_open=True)
        check_float("adam: beta1", self.beta1, low=0, high=1, high_open=True)
        check_float("adam: beta2", self.beta2, low=0, high=1, high_open=True)
        check_float("adam: eps", self.eps, low=0)

    def torch_kwargs(self) -> dict:
        """Keyword arguments for :class:`torch.optim.Adam`."""
        return {"lr": float(self.lr), "betas": (float(self.beta1), float(self.beta2)), "eps": float(self.eps)}

    def build(self, params) -> torch.optim.Adam:
        return torch.optim.Adam(params, **self.torch_kwargs())


#: The study's VAE optimiser: Adam(lr 1e-4, beta1 0.9, beta2 0.999, eps 1e-8).
VAE_OPTIMIZER = AdamSettings()
#: The study's FactorVAE discriminator optimiser: Adam(lr 1e-4, beta1 0.5, beta2 0.9, eps 1e-8).
DISCRIMINATOR_OPTIMIZER = AdamSettings(lr=1e-4, beta1=0.5, beta2=0.9, eps=1e-8)


class Objective(abc.ABC):
    """Base of the objectives; each subclass is a frozen dataclass and final.

    A subclass writes its regulariser in two parts: :meth:`coefficients` turns the
    hyperparameters and the step into the numbers the formula uses (plain Python floats,
    computed in double precision, e.g. ``beta - 1`` or the annealed capacity), and
    :meth:`penalty` applies them to the tensors. ``penalty`` reads every hyperparameter
    from the coefficients, never from ``self``: that is what lets an ensemble
    (:class:`~disentangled.models.stacked.StackedObjective`) pass one tensor of
    per-model coefficients ``[M]`` and get, for each model, exactly the number the model
    trained alone computes.

    ``regularizer(kl, mean, logvar, z, step, **extra)`` receives

    * ``kl``: the batch-mean KL to N(0, I), shape ``[...]`` (a scalar for one model);
    * ``mean``, ``logvar``: the encoder's posterior, ``[..., B, D]``;
    * ``z``: the reparameterised sample that was decoded, ``[..., B, D]``;
    * ``step``: the number of completed updates (int or tensor broadcastable to ``kl``);
    * ``extra``: what the model provides besides (FactorVAE: ``discriminator``);

    and returns the term added to the batch-mean reconstruction loss, shape ``[...]``.
    Every batch statistic is averaged over the batch as dlib does.
    """

    name: ClassVar[str]
    #: True when the model must carry a discriminator trained alongside (FactorVAE).
    needs_discriminator: ClassVar[bool] = False
    #: What a training batch holds, a key of :data:`disentangled.train.batches.BATCH_SOURCES`:
    #: ``"images"`` (observations only) for the unsupervised objectives.
    batch_kind: ClassVar[str] = "images"

    @abc.abstractmethod
    def coefficients(self, step) -> dict:
        """The numbers :meth:`penalty` uses at ``step`` (an int, or a tensor of steps)."""

    @abc.abstractmethod
    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, **extra) -> Tensor:
        """The regulariser from the coefficients ``c``: floats, or tensors broadcastable to ``kl``."""

    def regularizer(self, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, step, **extra) -> Tensor:
        """The term added to the reconstruction loss."""
        return self.penalty(self.coefficients(step), kl, mean, logvar, z, **extra)

    def hyperparameters(self) -> dict:
        """The fields as plain values (nested settings become dicts); ``type(self)(**h)`` rebuilds it."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def _check(self, field: str, **bounds) -> None:
        """Refuse a field that is not a finite number within ``bounds`` (``low=0``, ...: the
        keywords of :func:`~disentangled.errors.check_float`), naming the objective and the field."""
        check_float(f"{self.name}: {field}", getattr(self, field), **bounds)
