"""What every metric offers, and the small helpers they share.

A metric is a frozen dataclass whose fields are its settings, with the study's values as
defaults. ``evaluate(data, representation, rng=...)`` samples from a ground-truth data set
through a representation function and returns namespaced plain floats
(``{"dci.disentanglement": 0.42, ...}``). Metrics that can be computed from a fixed sample
of codes and factors also offer ``score(codes, factors, codes_test, factors_test)``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from ..data.base import Rng


@runtime_checkable
class Metric(Protocol):
    name: ClassVar[str]

    def evaluate(self, data, representation, *, rng: Rng, cache=None) -> dict[str, float]: ...


def namespaced(name: str, scores: dict) -> dict[str, float]:
    """``{"key": value}`` -> ``{"name.key": float(value)}``."""
    return {f"{name}.{key}": float(value) for key, value in scores.items()}


def settings_of(metric) -> dict:
    """The metric's settings as a plain dict (for results files)."""
    out = {}
    for field in dataclasses.fields(metric):
        value = getattr(metric, field.name)
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def check_positive(metric: str, **values) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{metric}: {key} must be a positive integer, got {value!r}")


def check_fraction(metric: str, key: str, value, *, low_open: bool = True) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = (0 < value <= 1) if low_open else (0 <= value <= 1)
    if not ok:
        raise ValueError(f"{metric}: {key} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")
