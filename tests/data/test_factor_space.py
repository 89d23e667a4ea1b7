import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disentangled.data import FactorSpace
from disentangled.data.base import randint

sizes_strategy = st.lists(st.integers(1, 7), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_strategy, data=st.data())
def test_index_factor_round_trip(sizes, data):
    space = FactorSpace(tuple(f"f{i}" for i in range(len(sizes))), tuple(sizes))
    idx = np.array(data.draw(st.lists(st.integers(0, space.num_combinations - 1), min_size=1, max_size=20)))
    factors = space.factors(idx)
    assert factors.dtype == np.int64 and factors.shape == (len(idx), len(sizes))
    np.testing.assert_array_equal(space.index(factors), idx)
    # every column stays inside its factor's range
    assert np.all(factors >= 0) and np.all(factors < np.array(sizes))


@settings(max_examples=40, deadline=None)
@given(sizes=sizes_strategy)
def test_all_factors_is_row_major_last_fastest(sizes):
    space = FactorSpace(tuple(f"f{i}" for i in range(len(sizes))), tuple(sizes))
    grid = space.all_factors()
    expected = np.array(list(np.ndindex(*sizes)), dtype=np.int64).reshape(-1, len(sizes))
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(space.index(grid), np.arange(space.num_combinations))


def test_dsprites_bases_match_the_official_file():
    # datasets.md 1.1: bases [737280, 245760, 40960, 1024, 32, 1] for sizes [1, 3, 6, 40, 32, 32]
    space = FactorSpace(("color", "shape", "scale", "orientation", "posX", "posY"), (1, 3, 6, 40, 32, 32))
    assert space.bases.tolist() == [737280, 245760, 40960, 1024, 32, 1]
    assert space.num_combinations == 737280
    assert space.index([[0, 2, 5, 39, 31, 31]]).tolist() == [737279]


def test_out_of_range_and_bad_shape_are_named():
    space = FactorSpace(("shape", "scale"), (3, 6))
    with pytest.raises(ValueError, match=r"factor 'scale' has size 6 .* got 6"):
        space.index([[0, 6]])
    with pytest.raises(ValueError, match=r"factor 'shape' has size 3 .* got -1"):
        space.index([[-1, 0]])
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        space.index([0, 1])
    with pytest.raises(ValueError, match="non-integer"):
        space.index([[0.5, 1]])
    with pytest.raises(ValueError, match=r"0\.\.17"):
        space.factors([18])
    with pytest.raises(ValueError, match="unique"):
        FactorSpace(("a", "a"), (2, 2))


def test_sampling_is_deterministic_and_uniform():
    space = FactorSpace(("a", "b", "c"), (3, 4, 5))
    first = space.sample(5000, rng=np.random.default_rng(7))
    again = space.sample(5000, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    counts = np.bincount(first[:, 2], minlength=5) / 5000
    np.testing.assert_allclose(counts, 0.2, atol=0.03)  # 5 sigma of a binomial(5000, 0.2) share is 0.028


def test_randomstate_draws_like_the_reference():
    # disentanglement_lib draws one randint(size, size=n) column per factor, in order.
    space = FactorSpace(("a", "b"), (3, 40))
    got = space.sample(6, rng=np.random.RandomState(0))
    ref = np.random.RandomState(0)
    expected = np.stack([ref.randint(3, size=6), ref.randint(40, size=6)], axis=1)
    np.testing.assert_array_equal(got, expected)


def test_rng_type_is_checked():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        randint(42, 3, 2)
