"""Sampling and encoding: the reference's draw order, and the cache changes no value."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from data.fakes import FAKES  # the data set tests' fake files (tests/ is on sys.path through its conftest)
from metric_support import IdentityData, golden_representation

from disentangled import data as data_module
from disentangled import metrics as M
from disentangled.metrics.sampling import (
    Encoder,
    EncodingCache,
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


class _Sampled:
    kind = "sampled"

    def __call__(self, x):
        return x


class _Mean(_Sampled):
    kind = "mean"


def test_what_is_cached():
    assert is_deterministic_representation(_Mean()) and not is_deterministic_representation(_Sampled())
    assert not is_deterministic_representation(lambda x: x)
    # the data set's own declaration decides, never its name
    sprites = data_module.get("dsprites_full", source="procedural")
    assert isinstance(resolve_cache(sprites, _Mean()), EncodingCache)
    assert resolve_cache(sprites, _Sampled()) is False
    for noisy in ("dummy_data", "noisy_dsprites", "dsprites_noshape"):
        options = {} if noisy == "dummy_data" else {"source": "procedural"}
        assert resolve_cache(data_module.get(noisy, **options), _Mean()) is False, noisy
    with pytest.raises(ValueError, match="one data set and one representation"):
        Encoder(IdentityData(), _Mean(), cache=EncodingCache(IdentityData(), _Mean()))


# --- data sets read from files: Cars3D and Shapes3D on tiny fakes in the official formats --------

_W = np.random.default_rng(5).integers(-3, 4, size=(3 * 16, 10))


def pooled_codes(observations) -> np.ndarray:
    """Codes from 16 pixels per channel (8-bit levels, centred) in integer arithmetic up to one
    tanh per entry, so a row's code does not depend on the batch it is encoded in."""
    levels = np.rint(np.asarray(observations) * 255).astype(np.int64)[:, :, 8::16, 8::16]
    n, c = levels.shape[:2]
    return np.tanh(((levels.reshape(n, c * 16) - 128) @ _W[: c * 16]) / 1000).astype(np.float32)


class ImagesSeen:
    """A deterministic representation that counts how often it saw each distinct image."""

    deterministic = True

    def __init__(self):
        self.seen: Counter[bytes] = Counter()

    def __call__(self, observations):
        for image in np.asarray(observations):
            self.seen[image.tobytes()] += 1
        return pooled_codes(observations)


def _fake(name, root):
    FAKES[name].write(root)
    return data_module.get(name, **FAKES[name].options)


SMALL_SUITE = {
    "beta_vae": dict(batch_size=16, num_train=60, num_eval=30),
    "factor_vae": dict(batch_size=16, num_train=60, num_eval=30, num_variance_estimate=200),
    "mig": dict(num_train=300),
    "unsupervised": dict(num_train=300),
}


@pytest.mark.parametrize("name", ["cars3d", "shapes3d"])
def test_files_of_deterministic_data_sets_are_encoded_once_per_combination(name, isolated_data_dir):
    data = _fake(name, isolated_data_dir)
    assert data.observations_deterministic
    rep = ImagesSeen()
    cache = resolve_cache(data, rep)  # chosen from the data set's declaration, as `evaluate` does
    assert isinstance(cache, EncodingCache)
    cached, direct = {}, {}
    for metric, settings in SMALL_SUITE.items():
        rs_cached, rs_direct = np.random.RandomState(17), np.random.RandomState(17)
        cached[metric] = M.get(metric, **settings).evaluate(data, rep, rng=rs_cached, cache=cache)
        direct[metric] = M.get(metric, **settings).evaluate(data, pooled_codes, rng=rs_direct, cache=False)
        assert rs_cached.randint(1 << 30) == rs_direct.randint(1 << 30), metric  # the same draws
    assert cached == direct  # every score, bit for bit
    beta_vae_requests = 2 * 16 * (60 + 30)  # pairs of batches of 16, for the training and evaluation points
    assert set(rep.seen.values()) == {1}  # no image encoded twice
    assert len(rep.seen) == cache.num_encoded <= data.latent_space.num_combinations < beta_vae_requests


def test_without_the_cache_every_request_is_encoded(isolated_data_dir):
    data = _fake("cars3d", isolated_data_dir)
    rep = ImagesSeen()
    codes, factors = sample_codes(data, rep, 500, rng=np.random.RandomState(0), cache=False)
    assert sum(rep.seen.values()) == 500 > data.latent_space.num_combinations
    np.testing.assert_array_equal(codes, pooled_codes(data.observations_from_factors(factors, rng=np.random.RandomState(0))))


def _draws_one_by_one(data, rng, num_points, batch_size, batches):
    index = np.zeros(num_points, dtype=np.int64)
    factors = np.zeros((num_points, batches, batch_size, data.num_factors), dtype=np.int64)
    for i in range(num_points):
        index[i] = rng.randint(data.num_factors)
        for b in range(batches):
            factors[i, b] = data.sample_factors(batch_size, rng=rng)
    return index, factors


@pytest.mark.parametrize("batches", [1, 2])
@pytest.mark.parametrize("steps", ["one", "many", "short of words"])
def test_bulk_draws_are_the_loops_draws_and_leave_the_rng_where_the_loop_does(batches, steps, monkeypatch):
    from disentangled.metrics import sampling

    if steps == "many":  # a few points per bulk step
        monkeypatch.setattr(sampling, "DRAW_CHUNK", 500)
    if steps == "short of words":  # half the words needed at first, the rest drawn again
        monkeypatch.setattr(sampling, "WORD_SLACK", 0.5)
    data = IdentityData(sizes=(3, 1, 40, 32, 2**20 + 3))  # a factor of one value draws nothing
    bulk_rng, loop_rng = np.random.RandomState(5), np.random.RandomState(5)
    index, factors = sampling.draw_factor_batches(data, bulk_rng, 37, 16, batches)
    expected_index, expected = _draws_one_by_one(data, loop_rng, 37, 16, batches)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_array_equal(factors, expected)
    assert bulk_rng.randint(2**31) == loop_rng.randint(2**31)  # the same words used


def test_bulk_draws_decline_what_they_cannot_reproduce():
    from disentangled.metrics.sampling import draw_factor_batches

    data = IdentityData()
    assert draw_factor_batches(data, np.random.default_rng(0), 10, 4, 1) is None

    class OwnSampler(IdentityData):
        def sample_factors(self, n, *, rng):
            return super().sample_factors(n, rng=rng)[::-1].copy()

    assert draw_factor_batches(OwnSampler(), np.random.RandomState(0), 10, 4, 1) is None
