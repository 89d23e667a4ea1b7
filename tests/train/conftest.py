"""Shared by the training tests: a data set that crashes in the middle of training."""

import pytest


class CrashAfter:
    """A data set that raises after ``n`` batches of observations, as a crash in the middle of training;
    everything else is the wrapped data set's."""

    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def sample_observations(self, size, *, rng):
        if self.n == 0:
            raise KeyboardInterrupt("simulated crash")
        self.n -= 1
        return self.inner.sample_observations(size, rng=rng)


@pytest.fixture
def crash_after():
    """``crash_after(n)``: the tests' ``dummy_data``, raising after ``n`` batches."""
    from disentangled import data

    return lambda n: CrashAfter(data.get("dummy_data"), n)
