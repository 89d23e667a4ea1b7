"""Shared test inputs: an identity data set, fixed representations, the golden arrays.

``golden_arrays`` and ``golden_representation`` are the exact inputs from which the numbers
in ``golden_values.py`` were computed with disentanglement_lib (see that file).
"""

from __future__ import annotations

import numpy as np

from disentangled.data.base import FactorSpace, GroundTruthData

SIZES = (3, 6, 10, 8)


class IdentityData(GroundTruthData):
    """Observations are the factors themselves, ``[N, K, 1, 1]`` (the reference's test set).

    Factors are drawn one ``randint`` column per factor, as disentanglement_lib's data sets
    draw them; rendering draws nothing.
    """

    name = "identity"
    observations_deterministic = True

    def __init__(self, sizes=SIZES):
        self.space = FactorSpace(tuple(f"f{i}" for i in range(len(sizes))), tuple(sizes))
        self.latent = tuple(range(len(sizes)))
        self.observation_shape = (len(sizes), 1, 1)

    def _render(self, full, *, rng):
        return full.astype(np.float32)[:, :, None, None]


def identity_representation(observations):
    return np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)


def zero_representation(observations):
    return np.zeros((len(observations), 4))


def duplicated_representation(observations):
    x = identity_representation(observations)
    return np.hstack([x, x])


def golden_arrays(seed=0, n=1000, n_test=500, dtype=np.float32):
    rs = np.random.RandomState(seed)
    total = n + n_test
    factors = np.stack([rs.randint(s, size=total) for s in SIZES], axis=1)
    w = rs.normal(size=(len(SIZES), 6))
    codes = (factors / np.array(SIZES) - 0.5) @ w + 0.3 * rs.normal(size=(total, 6))
    codes[:, 5] = 0.01 * rs.normal(size=total)
    codes = codes.astype(dtype)
    return codes[:n], factors[:n], codes[n:], factors[n:]


_REP = np.random.RandomState(1)
_W = _REP.normal(size=(len(SIZES), 5))
_V = _REP.normal(size=(len(SIZES), 5))


def golden_representation(observations):
    x = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
    return (np.tanh(x @ _W / 5.0) + 0.05 * np.sin(7.0 * x @ _V)).astype(np.float32)


golden_representation.deterministic = True
