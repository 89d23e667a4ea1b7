"""The report's statistics on synthetic tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_support import synthetic_table
from scipy.stats import spearmanr

from disentangled.analysis import stats as st

KEYS = list(st.METRICS.values())


def frame_of(records) -> pd.DataFrame:
    """A per-model frame (as :func:`stats.models` returns) from dicts with method/strength/..."""
    frame = pd.DataFrame(records)
    frame["setting"] = [f"{m} {s:g}" for m, s in zip(frame["method"], frame["strength"])]
    return frame


def grid_frame(value, *, datasets=("a", "b"), methods=("m1", "m2"), strengths=(1.0, 2.0, 3.0), seeds=range(4), keys=("x",)):
    """Every combination, with ``value(dataset, method, strength, seed, key)`` as the score."""
    records = []
    for d in datasets:
        for m in methods:
            for s in strengths:
                for seed in seeds:
                    row = {"dataset": d, "method": m, "strength": s, "seed": seed}
                    row.update({k: value(d, m, s, seed, k) for k in keys})
                    records.append(row)
    return frame_of(records)


# -- rank correlation ------------------------------------------------------------------------


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=40).astype(float)
    y = x + rng.normal(size=40)
    assert st.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_monotone_reversed_constant_and_missing():
    x = np.arange(10.0)
    assert st.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert st.spearman(x, -(x**3)) == pytest.approx(-1.0)
    assert np.isnan(st.spearman(x, np.ones(10)))
    assert np.isnan(st.spearman([1.0, 2.0], [2.0, 1.0]))  # fewer than three pairs
    y = np.exp(x)
    y[[2, 5]] = np.nan  # pairwise complete: the NaN pairs are dropped
    assert st.spearman(x, y) == pytest.approx(1.0)
    y[9] = np.inf  # an infinite TC (singular covariance) ranks highest
    assert st.spearman(x, y) == pytest.approx(1.0)


def test_rank_correlation_matrix():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=30)})
    frame["b"] = 2 * frame["a"] + 1
    frame["c"] = -frame["a"]
    m = st.rank_correlation(frame, ["a", "b", "c"])
    np.testing.assert_allclose(np.diag(m.to_numpy()), 1.0)
    assert m.loc["a", "b"] == pytest.approx(1.0) and m.loc["a", "c"] == pytest.approx(-1.0)
    np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T)
    rect = st.rank_correlation(frame, ["a"], ["b", "c"])
    assert rect.shape == (1, 2)


# -- Table 5: variance explained -------------------------------------------------------------


def test_r_squared_equals_ols_on_one_hot():
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 5, size=60)
    y = groups * 0.7 + rng.normal(size=60)
    design = np.eye(5)[groups]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    expected = 1 - ((y - design @ coef) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert st.r_squared(y, groups) == pytest.approx(expected, abs=1e-12)


def test_r_squared_known_values():
    # two groups with means 0 and 2, each +-1 around its mean: between 4 (x 4 points), within 4 -> 0.5
    y = [-1, 1, 1, 3]
    assert st.r_squared(y, ["a", "a", "b", "b"]) == pytest.approx(0.5)
    assert st.r_squared([1, 1, 5, 5], ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert np.isnan(st.r_squared([3, 3, 3], ["a", "b", "c"]))  # no variance
    assert st.r_squared([1, np.nan, 5, 5], ["a", "a", "b", "b"]) == pytest.approx(1.0)  # NaN dropped


def test_variance_explained_separates_method_and_hyperparameter():
    method_effect = {"m1": 0.0, "m2": 3.0}
    # within each method the strength effects sum to zero: the method alone explains only its own part
    strength_effect = {1.0: -1.0, 2.0: 0.0, 3.0: 1.0}
    seed_noise = {0: -0.5, 1: 0.5}  # balanced in every cell: within-cell SS known

    frame = grid_frame(lambda d, m, s, seed, k: method_effect[m] + strength_effect[s] + seed_noise[seed], datasets=("a",), seeds=(0, 1))
    table = st.variance_explained(frame, ["x"])
    row = table.iloc[0]
    # 12 models: method SS = 12 * 1.5^2 = 27; strength SS = 8 * 1 = 8; seed SS = 12 * 0.25 = 3
    assert row["method"] == pytest.approx(27 / 38)
    assert row["method_x_strength"] == pytest.approx(35 / 38)
    assert row["rest"] == pytest.approx(3 / 38)
    assert row["n"] == 12 and row["num_methods"] == 2 and row["num_settings"] == 6

    only_method = grid_frame(lambda d, m, s, seed, k: method_effect[m], datasets=("a",))
    row = st.variance_explained(only_method, ["x"]).iloc[0]
    assert row["method"] == pytest.approx(1.0) and row["method_x_strength"] == pytest.approx(1.0)


# -- Table 1: transfer against random ------------------------------------------------------


def _table1(frame, keys, **kw) -> dict:
    result = st.transfer_vs_random(frame, keys, num_draws=4000, rng=0, **kw)
    return {(m, d): p for m, d, p in zip(result["metric"], result["data_set"], result["probability"])}


def test_transfer_always_wins_when_settings_alone_decide():
    effect = {("m1", 1.0): 0.1, ("m1", 2.0): 0.5, ("m1", 3.0): 0.9, ("m2", 1.0): 0.3, ("m2", 2.0): 0.7, ("m2", 3.0): 0.2}
    frame = grid_frame(lambda d, m, s, seed, k: effect[(m, s)] * (2 if k == "y" else 1), keys=("x", "y"))
    for p in _table1(frame, ["x", "y"]).values():
        assert p == 1.0


def test_transfer_is_a_coin_flip_on_noise():
    rng = np.random.default_rng(3)
    frame = grid_frame(lambda *a: rng.normal(), keys=("x", "y"), seeds=range(10))
    result = st.transfer_vs_random(frame, ["x", "y"], num_draws=10_000, rng=0)
    assert (result["draws"] == 10_000).all()
    np.testing.assert_allclose(result["probability"], 0.5, atol=0.025)


def test_transfer_to_an_opposite_metric_wins_only_by_matching_the_random_setting():
    # metric y = -x and settings alone decide: the best setting by x is the worst by y; the
    # transferred model is beaten unless the random model has the same setting (prob. 1/6)
    effect = {("m1", 1.0): 1, ("m1", 2.0): 2, ("m1", 3.0): 3, ("m2", 1.0): 4, ("m2", 2.0): 5, ("m2", 3.0): 6}
    frame = grid_frame(lambda d, m, s, seed, k: effect[(m, s)] * (-1 if k == "y" else 1), keys=("x", "y"))
    p = _table1(frame, ["x", "y"])
    assert p[("same", "same")] == 1.0 and p[("same", "other")] == 1.0
    assert p[("other", "same")] == pytest.approx(1 / 6, abs=0.02)
    assert p[("other", "other")] == pytest.approx(1 / 6, abs=0.02)


def test_transfer_uses_the_source_seed_to_pick_the_setting():
    # the best setting differs by seed (it is "seed-specific luck"): same-data transfer at
    # another seed is then no better than the random model (ties count as wins)
    def value(d, m, s, seed, k):
        return 1.0 if (m, s) == (("m1", "m2")[seed % 2], 1.0 + seed % 3) else 0.0

    frame = grid_frame(value, seeds=range(6), datasets=("a",))
    p = _table1(frame, ["x"])[("same", "same")]
    # transferred setting hits the target seed's lucky setting only if the seeds match mod 6 (never: another seed)
    # so transferred = 0 and wins only when the random model also scores 0 (5/6)
    assert p == pytest.approx(5 / 6, abs=0.02)


def test_transfer_says_what_it_needs():
    frame = grid_frame(lambda *a: 1.0, datasets=("a",), seeds=(0,))
    result = st.transfer_vs_random(frame, ["x"], num_draws=100, rng=0)
    notes = dict(zip(zip(result["metric"], result["data_set"]), result["note"]))
    assert "two seeds" in notes[("same", "same")]
    assert "two data sets" in notes[("same", "other")]
    assert "two metrics" in notes[("other", "same")]
    assert result["probability"].isna().all()


def test_transfer_is_seeded_and_skips_missing_scores():
    rng = np.random.default_rng(4)
    frame = grid_frame(lambda *a: rng.normal(), keys=("x", "y"))
    frame.loc[frame.index[::3], "y"] = np.nan
    a = st.transfer_vs_random(frame, ["x", "y"], num_draws=500, rng=7)
    b = st.transfer_vs_random(frame, ["x", "y"], num_draws=500, rng=7)
    pd.testing.assert_frame_equal(a, b)
    assert (a["draws"] == 500).all()


def test_transfer_matrix_of_identical_data_sets_is_one():
    effect = {("m1", 1.0): 1, ("m1", 2.0): 3, ("m1", 3.0): 2, ("m2", 1.0): 6, ("m2", 2.0): 4, ("m2", 3.0): 5}
    frame = grid_frame(lambda d, m, s, seed, k: effect[(m, s)] + 0.01 * seed, datasets=("a", "b", "c"))
    matrix = st.transfer_matrix(frame, "x")
    np.testing.assert_allclose(matrix.to_numpy(), 1.0)
    reversed_c = frame.copy()
    reversed_c.loc[reversed_c["dataset"] == "c", "x"] *= -1
    matrix = st.transfer_matrix(reversed_c, "x")
    assert matrix.loc["a", "c"] == pytest.approx(-1.0)


# -- the per-model frame and the derived quantities ------------------------------------------


def test_models_pivots_the_results_table():
    table = synthetic_table(datasets=("dsprites_full",), methods=("beta_vae", "factor_vae"), seeds=(0, 1))
    frame = st.models(table)
    assert len(frame) == table["model_num"].nunique() == 12
    assert set(frame["method"]) == {"beta_vae", "factor_vae"}
    beta = frame[frame["method"] == "beta_vae"]
    assert sorted(beta["strength"].unique()) == [1.0, 4.0, 16.0]
    assert sorted(frame.loc[frame["method"] == "factor_vae", "strength"].unique()) == [10.0, 40.0, 100.0]
    assert frame["strength_name"].tolist()[0] == "beta"
    for key in KEYS + ["tc_mean", "tc_sampled", "train.elbo"]:
        assert frame[key].notna().all(), key
    # the mean representation's value, not the sampled one's
    row = table[(table["model_num"] == 0) & (table["score_key"] == "beta_vae.eval_accuracy")]
    assert frame.loc[frame["model_num"] == 0, "beta_vae.eval_accuracy"].item() == row[row["representation"] == "mean"]["value"].item()
    sampled = st.models(table, "sampled")
    assert sampled.loc[0, "beta_vae.eval_accuracy"] == pytest.approx(frame.loc[0, "beta_vae.eval_accuracy"] - 0.02)


def test_models_names_the_source_when_one_data_set_has_two():
    table = synthetic_table(datasets=("dsprites_full",), methods=("beta_vae",), seeds=(0,))
    other = table.copy()
    other["model_num"] += 100
    other["config.data.source"] = "official"
    frame = st.models(pd.concat([table, other]))
    assert set(frame["dataset"]) == {"dsprites_full (procedural)", "dsprites_full (official)"}


def test_downstream_quantities_and_efficiency():
    frame = pd.DataFrame({
        "downstream_logistic_regression.100.mean_test_accuracy": [0.5, 0.6],
        "downstream_logistic_regression.10000.mean_test_accuracy": [0.8, 0.9],
        "downstream_boosted_trees.10:mean_test_accuracy": [0.3, 0.4],  # the reference's separator
    })
    derived, described = st.downstream_quantities(frame)
    assert list(derived.columns) == ["LR acc@100", "LR acc@10000", "LR efficiency (100/10000)", "GBT acc@10"]
    np.testing.assert_allclose(derived["LR efficiency (100/10000)"], [0.5 / 0.8, 0.6 / 0.9])
    assert "100 training points" in described["LR efficiency (100/10000)"]


def test_tc_trends_on_the_synthetic_study():
    frame = st.models(synthetic_table())
    trends = st.tc_trends(frame)
    sampled = trends[trends["representation"] == "sampled"]
    mean = trends[trends["representation"] == "mean"]
    assert (sampled["spearman_strength_tc"] < -0.5).all()
    assert (mean[mean["method"] != "dip_vae_i"]["spearman_strength_tc"] > 0.5).all()
    assert 0.5 < st.fraction_mean_above_sampled(frame) < 1.0
    summary = st.tc_summary(frame)
    assert set(summary["representation"]) == {"mean", "sampled"}
    assert summary["n"].eq(4).all()


def test_distribution_summary_and_seed_effects():
    frame = grid_frame(lambda d, m, s, seed, k: s + 0.1 * seed, datasets=("a",), seeds=range(3))
    summary = st.distribution_summary(frame, ["x"])
    cell = summary[(summary["method"] == "m1") & (summary["strength"] == 2.0)].iloc[0]
    assert cell["n"] == 3 and cell["median"] == pytest.approx(2.1) and cell["min"] == 2.0 and cell["max"] == pytest.approx(2.2)
    overall = summary[(summary["method"] == "m1") & summary["strength"].isna()].iloc[0]
    assert overall["n"] == 9
    beats = st.seed_beats_setting(frame, ["x"])
    assert not beats["some_worse_run_beats_some_best_run"].any()  # strengths 1 apart, seeds 0.2 apart
    noisy = grid_frame(lambda d, m, s, seed, k: 0.1 * s + seed, datasets=("a",), seeds=range(3))
    assert st.seed_beats_setting(noisy, ["x"])["some_worse_run_beats_some_best_run"].all()
