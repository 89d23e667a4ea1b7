"""Properties every registered data set has, checked on tiny fake files in its official format.

Parametrised over the registry, so a data set is tested by being registered: one that has no
entry in ``fakes.FAKES`` fails every test here with a message saying to add one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from disentangled.data import DATASETS, get
from disentangled.data.base import Prepared

from .fakes import FAKES, Fake

NAMES = list(DATASETS)
RNGS = {"Generator": np.random.default_rng, "RandomState": np.random.RandomState}


def fake_for(name: str) -> Fake:
    if name not in FAKES:
        pytest.fail(
            f"data set {name!r} is registered in disentangled.data.DATASETS but tests/data/fakes.py has no fake "
            f"for it; add a Fake entry to FAKES that writes tiny files in its official format (with the writer "
            f"beside its reader) so that the common suite can test it"
        )
    return FAKES[name]


@pytest.fixture
def ready(name, isolated_data_dir):
    """The data set ``name`` built on its fake files, prepared."""
    fake = fake_for(name)
    if fake.write is not None:
        fake.write(isolated_data_dir)
    data = get(name, **fake.options)
    data.prepare(progress=False)
    return data


def _rng_state(rng):
    if isinstance(rng, np.random.RandomState):
        kind, keys, pos, has_gauss, gauss = rng.get_state()
        return kind, keys.tolist(), pos, has_gauss, gauss
    return rng.bit_generator.state


def _some_factors(data, n=64):
    space = data.latent_space
    if space.num_combinations <= n:
        return space.all_factors()
    return data.sample_factors(n, rng=np.random.default_rng(0))


@pytest.mark.parametrize("name", NAMES)
def test_official_factor_sizes_and_shape_without_any_file(name):
    fake = fake_for(name)
    data = get(name)
    assert data.factor_sizes == fake.official_sizes
    assert len(data.factor_names) == len(fake.official_sizes) == data.num_factors
    assert data.observation_shape == fake.observation_shape


@pytest.mark.parametrize("name", NAMES)
def test_readiness_names_what_is_missing_then_prepare_makes_it_ready(name, isolated_data_dir):
    fake = fake_for(name)
    if fake.write is not None:
        ready, why = get(name, **fake.options).readiness()
        assert ready is False
        assert fake.missing in why and "disentangled data download" in why, why
        fake.write(isolated_data_dir)
    data = get(name, **fake.options)
    done = data.prepare(progress=False)
    assert isinstance(done, Prepared) and done.message.startswith(f"{name}: ")
    assert done.path is None or done.path.exists()
    assert data.readiness()[0] is True and get(name, **fake.options).readiness()[0] is True
    again = get(name, **fake.options).prepare(progress=False)
    assert again.built is False and again.path == done.path  # the work is found done


@pytest.mark.parametrize("name", NAMES)
def test_describe_records_the_source(name, ready):
    info = ready.describe()
    assert info["name"] == name and info["source"] == fake_for(name).source
    assert json.loads(json.dumps(info)) == info  # recorded in run configs and results rows


@pytest.mark.parametrize("name", NAMES)
def test_factor_grid_and_index_round_trips(name, ready):
    assert ready.factor_sizes == fake_for(name).latent_sizes
    for space in (ready.latent_space, ready.space):
        n = space.num_combinations
        probe = np.unique(np.r_[0, n - 1, np.random.default_rng(0).integers(0, n, 200)])
        factors = space.factors(probe)
        np.testing.assert_array_equal(space.index(factors), probe)
        np.testing.assert_array_equal(factors.max(axis=0) < np.array(space.sizes), True)
    if ready.latent_space.num_combinations <= 4096:
        every = ready.latent_space.all_factors()
        np.testing.assert_array_equal(ready.latent_space.index(every), np.arange(len(every)))


@pytest.mark.parametrize("name", NAMES)
def test_observations_are_float32_in_unit_range_with_the_declared_shape(name, ready):
    factors = _some_factors(ready)
    obs = ready.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert obs.dtype == np.float32 and obs.shape == (len(factors), *ready.observation_shape)
    assert np.isfinite(obs).all() and obs.min() >= 0.0 and obs.max() <= 1.0
    assert ready.observation_shape == fake_for(name).observation_shape


@pytest.mark.parametrize("kind", RNGS)
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_factors_and_observations(name, ready, kind):
    make = RNGS[kind]
    a = ready.sample(24, rng=make(7))
    b = ready.sample(24, rng=make(7))
    assert a[0].dtype == np.int64 and a[0].shape == (24, ready.num_factors)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("name", NAMES)
def test_observations_deterministic_is_truthful(name, ready):
    """A deterministic data set renders the same images whatever the rng, drawing nothing from
    it (the encoding cache skips rendering on that promise); any other shows randomness."""
    assert isinstance(type(ready).observations_deterministic, bool)
    factors = _some_factors(ready)
    if ready.observations_deterministic:
        renders = []
        for rng in (np.random.RandomState(1), np.random.default_rng(2)):
            before = _rng_state(rng)
            renders.append(ready.observations_from_factors(factors, rng=rng))
            assert _rng_state(rng) == before, "rendering drew from the rng"
        np.testing.assert_array_equal(renders[0], renders[1])
    else:
        a = ready.observations_from_factors(factors, rng=np.random.default_rng(1))
        b = ready.observations_from_factors(factors, rng=np.random.default_rng(2))
        assert not np.array_equal(a, b), "declared non-deterministic, but two rngs gave the same images"


def test_a_registered_data_set_without_a_fake_fails_the_suite():
    with pytest.raises(pytest.fail.Exception, match=r"'new_data_set' is registered .* add a Fake entry to FAKES"):
        fake_for("new_data_set")
    assert set(FAKES) == set(DATASETS)  # and no fake outlives its data set
