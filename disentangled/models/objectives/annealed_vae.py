"""AnnealedVAE: Burgess et al., "Understanding disentangling in beta-VAE", 2018, eq. 8
(dlib's ``annealed_vae``).

    loss = reconstruction + gamma * |KL(q(z|x) || p(z)) - C(step)|,
    C(step) = min(c_max, c_max * step / iteration_threshold)

The capacity ``C`` grows linearly from 0 to ``c_max`` over ``iteration_threshold`` updates.
dlib reads ``step`` from TensorFlow's global step, which advances once per update for this
model, so C reaches ``c_max`` after 100,000 updates in the study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import Objective


@dataclass(frozen=True)
class AnnealedVAE(Objective):
    """``gamma * |KL - C(step)|``. The study fixes gamma = 1000 and sweeps c_max over 5..100."""

    gamma: float = 1000.0
    c_max: float = 25.0
    iteration_threshold: int = 100000

    name: ClassVar[str] = "annealed_vae"

    def __post_init__(self):
        self._check("gamma", low=0)
        self._check("c_max", low=0)
        self._check("iteration_threshold", low=0, low_open=True)

    def capacity(self, step):
        """``C(step) = min(c_max, c_max * step / iteration_threshold)``; a float for an int step."""
        if isinstance(step, Tensor):
            ramp = step.to(torch.get_default_dtype() if not step.is_floating_point() else step.dtype)
            return torch.clamp(self.c_max * ramp / self.iteration_threshold, max=self.c_max)
        return min(float(self.c_max), float(self.c_max) * step / self.iteration_threshold)

    def coefficients(self, step) -> dict:
        return {"gamma": self.gamma, "capacity": self.capacity(step)}

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, **extra) -> Tensor:
        return c["gamma"] * torch.abs(kl - c["capacity"])
