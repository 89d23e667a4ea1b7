"""The pair samplers: the distribution of the changes under both, the label, determinism, and
the batch source's two ways to the images (data set, uint8 table) agreeing bit for bit.

Expected frequencies come from the samplers' definitions (disentangled.data.pairs, after dlib's
``simple_dynamics`` and the paper's Section 5); with N pairs a frequency p is checked within
5 standard errors, sqrt(p (1 - p) / N), so a correct sampler fails about once in 3.5 million.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disentangled import config as cfg
from disentangled.data import FactorSpace, GroundTruthData, get
from disentangled.data import dsprites as dsprites_module
from disentangled.data.pairs import (
    check_pairs,
    pair_observations,
    pair_rows,
    sample_pair_factors,
)
from disentangled.errors import ParameterError
from disentangled.train.pair_batches import PairBatches

N = 20_000


def within(frequency, p, n=N):
    return abs(frequency - p) <= 5 * np.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def dummy():
    return get("dummy_data")  # 10 factors of 5 values


def counts(pairs):
    return pairs.changed.sum(1)


# --- the dlib sampler --------------------------------------------------------------------


def test_dlib_k1_changes_one_factor_redrawn_uniformly(dummy):
    pairs = sample_pair_factors(dummy, N, rng=np.random.default_rng(0), sampler="dlib", k=1)
    assert (counts(pairs) == 1).all()
    assert (pairs.changed[np.arange(N), pairs.label]).all()  # the label is the changed factor
    # the changed factor is redrawn over its 5 values, the old one included: same value 1/5 of the time
    same = pairs.first[np.arange(N), pairs.label] == pairs.second[np.arange(N), pairs.label]
    assert within(same.mean(), 1 / 5)
    assert ((pairs.first == pairs.second) | pairs.changed).all()  # nothing else moves
    assert within(np.bincount(pairs.label, minlength=10)[3] / N, 1 / 10)


def test_dlib_half_the_pairs_change_one_factor_when_k_is_larger(dummy):
    pairs = sample_pair_factors(dummy, N, rng=np.random.default_rng(1), sampler="dlib", k=3)
    c = counts(pairs)
    assert set(np.unique(c)) == {1, 3}
    assert within((c == 1).mean(), 1 / 2)
    # the label is one of the changed factors, each with probability 1/3 among three
    three = c == 3
    assert pairs.changed[np.arange(N), pairs.label].all()
    order = np.argsort(~pairs.changed[three], axis=1, kind="stable")[:, :3]  # the changed factors, in index order
    first_of_three = (order[:, 0] == pairs.label[three]).mean()
    assert within(first_of_three, 1 / 3, three.sum())


def test_dlib_random_k(dummy):
    # k drawn in [1, 9], then 1 or k: P(1 change) = 1/2 + 1/2 * 1/9, P(j changes) = 1/18 for j = 2..9
    pairs = sample_pair_factors(dummy, N, rng=np.random.default_rng(2), sampler="dlib", k=-1)
    c = counts(pairs)
    assert c.min() >= 1 and c.max() <= 9
    assert within((c == 1).mean(), 0.5 + 0.5 / 9)
    for j in (2, 5, 9):
        assert within((c == j).mean(), 0.5 / 9)


# --- the paper's sampler -----------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 9])
def test_paper_changes_exactly_k_factors_all_to_other_values(dummy, k):
    pairs = sample_pair_factors(dummy, N, rng=np.random.default_rng(3), sampler="paper", k=k)
    assert (counts(pairs) == k).all()
    assert ((pairs.first != pairs.second) == pairs.changed).all()  # every picked factor moves, no other
    assert pairs.changed[np.arange(N), pairs.label].all()
    assert within(pairs.changed[:, 7].mean(), k / 10)  # each factor picked with probability k / d
    # the new value is uniform over the 4 others: an offset of +1 (mod 5) a quarter of the time
    picked = pairs.changed
    offset = (pairs.second[picked] - pairs.first[picked]) % 5
    assert set(np.unique(offset)) == {1, 2, 3, 4}
    assert within((offset == 1).mean(), 1 / 4, picked.sum())


def test_paper_random_k_is_uniform_in_1_to_d_minus_1(dummy):
    pairs = sample_pair_factors(dummy, N, rng=np.random.default_rng(4), sampler="paper", k=-1)
    c = counts(pairs)
    assert set(np.unique(c)) == set(range(1, 10))
    for j in (1, 5, 9):
        assert within((c == j).mean(), 1 / 9)


# --- determinism, shapes, errors -----------------------------------------------------------


@pytest.mark.parametrize("sampler", ["dlib", "paper"])
def test_same_seed_same_pairs(dummy, sampler):
    a = sample_pair_factors(dummy, 64, rng=np.random.default_rng(7), sampler=sampler, k=-1)
    b = sample_pair_factors(dummy, 64, rng=np.random.default_rng(7), sampler=sampler, k=-1)
    c = sample_pair_factors(dummy, 64, rng=np.random.default_rng(8), sampler=sampler, k=-1)
    for field in ("first", "second", "label", "changed"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.second, c.second)
    assert a.first.dtype == np.int64 and a.first.shape == (64, 10) and a.label.shape == (64,) and len(a) == 64


def test_observations_are_the_first_then_the_second_images():
    data = get("dsprites_full", source="procedural")
    pairs = sample_pair_factors(data, 6, rng=np.random.default_rng(0), k=2)
    obs = pair_observations(data, pairs, rng=np.random.default_rng(1))
    twin = np.random.default_rng(1)
    expected = np.concatenate([data.observations_from_factors(pairs.first, rng=twin),
                               data.observations_from_factors(pairs.second, rng=twin)])
    assert obs.shape == (12, 1, 64, 64) and np.array_equal(obs, expected)


class OneFactor(GroundTruthData):
    name = "one_factor"
    space = FactorSpace(("only",), (4,))
    latent = (0,)
    observation_shape = (1, 64, 64)

    def _render(self, full, *, rng):
        return np.zeros((len(full), 1, 64, 64), dtype=np.float32)


class WithConstantFactor(OneFactor):
    name = "constant_factor"
    space = FactorSpace(("a", "fixed"), (4, 1))
    latent = (0, 1)


def test_bad_input_names_k_the_range_and_the_factor_count(dummy):
    with pytest.raises(ParameterError, match=r"k must be -1 .* or an integer in \[1, 9\] \(dummy_data has 10 factors.*got 10"):
        sample_pair_factors(dummy, 4, rng=np.random.default_rng(0), k=10)
    with pytest.raises(ParameterError, match=r"got 0"):
        sample_pair_factors(dummy, 4, rng=np.random.default_rng(0), k=0)
    with pytest.raises(ParameterError, match=r"got -2"):
        check_pairs(-2, "dlib", dummy)
    with pytest.raises(ParameterError, match=r"sampler must be one of \['dlib', 'paper'\], got 'papr'.*'paper'"):
        check_pairs(1, "papr", dummy)
    with pytest.raises(ParameterError, match=r"at least two factors.*one_factor with 1 factor"):
        sample_pair_factors(OneFactor(), 4, rng=np.random.default_rng(0), k=1)
    with pytest.raises(ParameterError, match=r"factor 'fixed' of constant_factor has a single value.*got 'paper'"):
        check_pairs(1, "paper", WithConstantFactor())
    check_pairs(1, "dlib", WithConstantFactor())  # the reference redraws a single value to itself
    with pytest.raises(TypeError, match="default_rng"):
        sample_pair_factors(dummy, 4, rng=np.random.RandomState(0), k=1)


def test_config_names_k_the_range_and_the_factor_count():
    with pytest.raises(cfg.ConfigError, match=r"data.pairs.k must be -1 .*\[1, 2\] \(cars3d has 3 factors.*got 3"):
        cfg.load(None, ["data.name=cars3d", "objective.name=ada_gvae", "data.pairs.k=3"])
    c = cfg.load(None, ["data.name=cars3d", "objective.name=ada_gvae", "data.pairs.k=-1", "data.pairs.sampler=paper"])
    assert c.to_dict()["data"]["pairs"] == {"sampler": "paper", "k": -1}


# --- the batch source ----------------------------------------------------------------------


SMALL = FactorSpace(dsprites_module.OFFICIAL_SPACE.names, (1, 3, 2, 3, 2, 2))  # 72 images


@pytest.fixture
def small_dsprites(tmp_path):
    imgs = (np.random.default_rng(0).random((SMALL.num_combinations, 64, 64)) < 0.3).astype(np.uint8)
    dsprites_module.write_official(tmp_path / dsprites_module.OFFICIAL_NPZ, imgs, SMALL)
    return lambda: get("dsprites_full", data_dir=tmp_path, strict=False)


def runs(settings):
    return [cfg.load(None, ["data.name=dsprites_full", "train.batch_size=5", "objective.name=ada_gvae",
                            f"data.pairs.sampler={s}", f"data.pairs.k={k}", f"seed={i}"]) for i, (s, k) in enumerate(settings)]


@pytest.mark.parametrize("placement", ["device", "host"])
def test_table_and_data_set_give_the_same_pairs(small_dsprites, placement):
    configs = runs([("dlib", 2), ("paper", -1), ("paper", 4)])
    data = small_dsprites()
    via_table = PairBatches(data, 5, "cpu", [c.data.pairs for c in configs], table=True, placement=placement)
    via_data = PairBatches.for_runs(configs, small_dsprites(), "cpu", table=False)
    assert via_table.via != "data set" and via_data.via == "data set"
    a = [np.random.default_rng(s) for s in (11, 12, 13)]
    b = [np.random.default_rng(s) for s in (11, 12, 13)]
    for _ in range(2):
        x, y = via_table(a, [0, 1, 2]), via_data(b, [0, 1, 2])
        assert x["x"].shape == (3, 10, 1, 64, 64) and x["label"].shape == (3, 5) and x["label"].dtype == torch.int64
        assert torch.equal(x["x"], y["x"]) and torch.equal(x["label"], y["label"])
    assert all(ra.bit_generator.state == rb.bit_generator.state for ra, rb in zip(a, b))


def test_each_member_draws_with_its_own_settings_as_alone(small_dsprites):
    """Member m of a stack (its own k and sampler, at its position) draws what its run draws alone."""
    configs = runs([("dlib", 1), ("paper", 3), ("dlib", -1)])
    data = small_dsprites()
    stack = PairBatches.for_runs(configs, data, "cpu")
    batch = stack([np.random.default_rng(5), np.random.default_rng(6)], [2, 1])
    for row, (position, seed) in enumerate([(2, 5), (1, 6)]):
        alone = PairBatches.for_runs([configs[position]], data, "cpu")([np.random.default_rng(seed)], [0])
        assert torch.equal(batch["x"][row], alone["x"][0]) and torch.equal(batch["label"][row], alone["label"][0])
        # the pair's images are the renderings of the sampled factors
        twin = np.random.default_rng(seed)
        pairs = sample_pair_factors(data, 5, rng=twin, sampler=configs[position].data.pairs.sampler, k=configs[position].data.pairs.k)
        rows = pair_rows(data, pairs, rng=twin)
        assert np.array_equal(alone["label"][0].numpy(), pairs.label)
        assert torch.equal(alone["x"][0, :, 0], torch.from_numpy(data.image_table()[0][rows].astype(np.float32)))


def test_a_run_without_pairs_is_refused(small_dsprites):
    with pytest.raises(cfg.ConfigError, match="data.pairs must be set"):
        PairBatches.for_runs([cfg.load(None, ["data.name=dsprites_full"])], small_dsprites(), "cpu")


def test_data_show_pairs_writes_png_gif_and_the_factors(tmp_path):
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from disentangled.cli import app

    result = CliRunner().invoke(app, ["data", "show", "dummy_data", "--pairs", "--k", "3", "--sampler", "paper",
                                      "--num-pairs", "4", "-o", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "p.json").read_text())
    assert [len(p["changed"]) for p in record["pairs"]] == [3, 3, 3, 3]
    with Image.open(tmp_path / "p.png") as png:
        assert png.size[0] == 4 * 66 + 2  # four pairs side by side (64-pixel cells, 2-pixel padding)
    with Image.open(tmp_path / "animation.gif") as gif:
        assert gif.n_frames == 2
    bad = CliRunner().invoke(app, ["data", "show", "dummy_data", "--pairs", "--k", "10", "-o", str(tmp_path / "q.png")])
    assert isinstance(bad.exception, ParameterError)  # the console entry prints it as one line, exit status 2
    assert "--k must be -1" in str(bad.exception) and "dummy_data has 10 factors" in str(bad.exception)
