"""Sampling and encoding: the reference's draw order, and the cache changes no value."""

from __future__ import annotations

import numpy as np
import pytest
from metric_support import IdentityData, golden_representation

from disentangled.metrics.sampling import (
    EncodingCache,
    is_deterministic_data,
    is_deterministic_representation,
    resolve_cache,
    sample_codes,
)


def calls_counted(fn):
    def wrapped(observations):
        wrapped.images += len(observations)
        return fn(observations)

    wrapped.images = 0
    wrapped.deterministic = True
    return wrapped


@pytest.mark.parametrize("make_rng", [np.random.RandomState, np.random.default_rng])
def test_cache_gives_the_same_codes_factors_and_rng_state(make_rng):
    data = IdentityData()
    rep = calls_counted(golden_representation)
    rng_a, rng_b = make_rng(3), make_rng(3)
    cached = sample_codes(data, rep, 3000, rng=rng_a, cache=True)
    direct = sample_codes(data, golden_representation, 3000, rng=rng_b, cache=False)
    np.testing.assert_array_equal(cached[1], direct[1])
    np.testing.assert_array_equal(cached[0], direct[0])
    assert rng_a.random() == rng_b.random()  # the same amount drawn
    assert rep.images <= data.latent_space.num_combinations < 3000  # each combination encoded once


def test_factors_are_drawn_in_the_reference_order():
    data = IdentityData()
    _, factors = sample_codes(data, golden_representation, 40, rng=np.random.RandomState(0), batch_size=16)
    rs = np.random.RandomState(0)
    expected = []
    for size in (16, 16, 8):  # per batch, one randint column per factor
        expected.append(np.stack([rs.randint(s, size=size) for s in data.factor_sizes], axis=1))
    np.testing.assert_array_equal(factors, np.concatenate(expected))


def test_a_shared_cache_encodes_each_combination_once_across_calls():
    data = IdentityData()
    rep = calls_counted(golden_representation)
    cache = EncodingCache(data, rep)
    sample_codes(data, rep, 2000, rng=np.random.RandomState(0), cache=cache)
    first = rep.images
    sample_codes(data, rep, 2000, rng=np.random.RandomState(0), cache=cache)
    assert rep.images == first == cache.num_encoded


def test_what_is_cached():
    class Sampled:
        kind = "sampled"

        def __call__(self, x):
            return x

    class Mean(Sampled):
        kind = "mean"

    assert is_deterministic_representation(Mean()) and not is_deterministic_representation(Sampled())
    assert not is_deterministic_representation(lambda x: x)
    assert is_deterministic_data(IdentityData())
    from disentangled import data as data_module

    assert not is_deterministic_data(data_module.get("dummy_data"))  # noise images
    assert resolve_cache(data_module.get("dummy_data"), Mean()) is False
    with pytest.raises(ValueError, match="one data set and one representation"):
        from disentangled.metrics.sampling import Encoder

        Encoder(IdentityData(), Mean(), cache=EncodingCache(IdentityData(), Mean()))
