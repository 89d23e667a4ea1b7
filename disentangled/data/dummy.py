"""``dummy_data``: disentanglement_lib's smoke-test set of uniform noise images.

Ten factors of five values each; every observation is 1x64x64 noise drawn from ``rng``,
independent of the factors (``random_sample`` of shape [N, 64, 64, 1] as the reference
draws it). Useful to exercise training and metrics without any files.
"""

from __future__ import annotations

import numpy as np

from .base import FactorSpace, GroundTruthData, Rng


class DummyData(GroundTruthData):
    name = "dummy_data"
    space = FactorSpace(tuple(f"factor{i}" for i in range(10)), (5,) * 10)
    latent = tuple(range(10))
    observation_shape = (1, 64, 64)
    observations_deterministic = False  # every observation is fresh noise

    def describe(self) -> dict:
        return {"name": self.name, "source": "synthetic"}

    def readiness(self) -> tuple[bool, str]:
        return True, "synthetic noise, nothing to prepare"

    def _render(self, full: np.ndarray, *, rng: Rng) -> np.ndarray:
        shape = (full.shape[0], 64, 64, 1)
        noise = rng.random_sample(shape) if isinstance(rng, np.random.RandomState) else rng.random(shape)
        return noise.transpose(0, 3, 1, 2)
