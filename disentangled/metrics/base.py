"""What every metric offers, and the small helpers they share.

A metric is a frozen dataclass whose fields are its settings, with the study's values as
defaults. ``evaluate(data, representation, rng=...)`` samples from a ground-truth data set
through a representation function and returns namespaced plain floats
(``{"dci.disentanglement": 0.42, ...}``). Metrics that can be computed from a fixed sample
of codes and factors also offer ``score(codes, factors, codes_test, factors_test)``.

A metric whose classifiers are fitted in the worker pool (:class:`PooledMetric`) can also be
started: ``start(...)`` samples, hands the fits to the pool and returns at once, and the
:class:`Pending` it returns gives the scores when they are done. The evaluation starts these
first and computes the other metrics meanwhile.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Protocol, runtime_checkable

from ..data.base import Rng
from ..errors import check_float, check_int


@runtime_checkable
class Metric(Protocol):
    name: ClassVar[str]

    def evaluate(self, data, representation, *, rng: Rng, cache=None) -> dict[str, float]: ...


class Pending:
    """Scores still being computed: :meth:`result` waits for them (once; later calls return them)."""

    def __init__(self, finish: Callable[[], dict[str, float]]):
        self._finish = finish
        self._scores = None

    def result(self) -> dict[str, float]:
        if self._scores is None:
            self._scores, self._finish = self._finish(), None
        return self._scores


class PooledMetric(ABC):
    """A metric that fits its classifiers in the worker pool and can be started without waiting."""

    name: ClassVar[str]

    @abstractmethod
    def start(self, data, representation, *, rng: Rng, cache=None) -> Pending:
        """Draw the samples (from ``rng``, in the reference's order), hand the fits to the pool
        and return; the scores are the returned :class:`Pending`'s result."""

    def evaluate(self, data, representation, *, rng: Rng, cache=None) -> dict[str, float]:
        return self.start(data, representation, rng=rng, cache=cache).result()


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
    """Each setting an integer >= 1: ``mig: num_bins must be >= 1, got 0``."""
    for key, value in values.items():
        check_int(f"{metric}: {key}", value, low=1)


def check_fraction(metric: str, key: str, value, *, low_open: bool = True) -> None:
    """A setting in (0, 1] (or [0, 1] with ``low_open=False``)."""
    check_float(f"{metric}: {key}", value, low=0, high=1, low_open=low_open)
