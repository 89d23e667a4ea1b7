"""The follow-up studies' statistics (UDR, fairness, the JMLR stability analyses), the choice of
each run's primary evaluation, and the TC trend with two hyperparameter values; on tables built
so that every expected number can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from analysis_support import add_scores, synthetic_table, with_evaluations

from disentangled.analysis import stats as st

MIG, DCI = st.METRICS["MIG"], st.METRICS["DCI"]


def rows_of(records, **common) -> pd.DataFrame:
    """A results table from ``(model_num, score_key, value, extra columns)`` tuples."""
    out = []
    for n, key, value, *extra in records:
        row = {"model_num": n, "run_id": f"r{n}", "representation": "mean", "metric": key.split(".")[0], "score_key": key,
               "value": value, "config.data.name": "d", "config.objective.name": "beta_vae", "config.objective.beta": 1.0,
               "config.seed": n, **common}
        row.update(extra[0] if extra else {})
        out.append(row)
    return pd.DataFrame(out)


# -- the primary evaluation ----------------------------------------------------------------------


def test_primary_rows_without_the_evaluation_columns_pass_unchanged():
    table = rows_of([(0, MIG, 0.1), (1, MIG, 0.2)])
    pd.testing.assert_frame_equal(st.primary_rows(table), table)


def test_primary_rows_keep_repetition_zero_and_count_a_missing_one_as_zero():
    table = rows_of([(0, MIG, 0.1, {"repetition": 0}), (0, MIG, 0.5, {"repetition": 1}),
                     (1, MIG, 0.2, {"repetition": np.nan}), (1, MIG, 0.9, {"repetition": 2})])
    assert st.primary_rows(table)["value"].tolist() == [0.1, 0.2]


def test_primary_rows_prefer_the_metrics_own_sample_size_else_the_largest_for_the_whole_table():
    # MIG has rows without a sample size: those win. DCI was only swept (100, 1000; run 1 lacks
    # 1000): the table-wide largest, 1000, wins, and run 1 keeps no DCI rather than its 100.
    # The sampled representation's DCI has only 100: it is that key's largest.
    size = pd.array([pd.NA, 100, 1000, pd.NA, 100, 100, 1000, 100, 100], dtype="Int64")
    table = rows_of([(0, MIG, 0.1), (0, MIG, 0.11), (0, MIG, 0.12), (1, MIG, 0.2), (1, MIG, 0.21),
                     (0, DCI, 0.3), (0, DCI, 0.31), (1, DCI, 0.4), (0, DCI, 0.5, {"representation": "sampled"})])
    table["sample_size"] = size
    kept = st.primary_rows(table)
    assert list(zip(kept["model_num"], kept["score_key"], kept["value"])) == [
        (0, MIG, 0.1), (1, MIG, 0.2), (0, DCI, 0.31), (0, DCI, 0.5)]
    frame = st.models(table)
    assert frame[MIG].tolist() == [0.1, 0.2]
    assert frame.loc[0, DCI] == 0.31 and np.isnan(frame.loc[1, DCI])
    assert st.models(table, "sampled").loc[0, DCI] == 0.5


@pytest.mark.parametrize("keep_own", [True, False])
def test_every_per_run_analysis_sees_the_ordinary_table_in_a_jmlr_style_one(keep_own):
    # with_evaluations shifts every non-primary evaluation by at least 1: an average or a
    # duplicate anywhere would change these frames
    base = synthetic_table(datasets=("dsprites_full",), methods=("beta_vae", "dip_vae_i"), seeds=(0, 1))
    jmlr = with_evaluations(base, num_eval=3, sizes=(100, 1000), swept=(MIG, DCI), keep_own=keep_own)
    assert len(jmlr) > 3 * len(base)
    for rep in ("mean", "sampled"):
        expected = st.models(base, rep)
        pd.testing.assert_frame_equal(st.models(jmlr, rep)[expected.columns], expected)
    # a CSV round trip turns the nullable integers into floats with NaN; the choice is the same
    pd.testing.assert_frame_equal(st.models(jmlr.assign(sample_size=jmlr["sample_size"].astype(float))), st.models(base))


def test_validation_scores_of_several_label_counts_are_never_averaged_into_a_column():
    table = rows_of([(0, MIG, 0.1, {"validation": False}),
                     (0, "mig_validation", 0.3, {"validation": True, "validation.num_labelled_samples": 100}),
                     (0, "mig_validation", 0.7, {"validation": True, "validation.num_labelled_samples": 1000})])
    frame = st.models(table)
    assert frame[MIG].tolist() == [0.1] and "mig_validation" not in frame.columns


def test_evaluation_axes():
    assert st.evaluation_axes(rows_of([(0, MIG, 0.1)])) == ([0], [])
    table = rows_of([(0, MIG, 0.1, {"repetition": 0}), (0, MIG, 0.2, {"repetition": 4})])
    table["sample_size"] = pd.array([pd.NA, 1000], dtype="Int64")
    assert st.evaluation_axes(table) == ([0, 4], [1000])


# -- UDR -----------------------------------------------------------------------------------------


def test_udr_rank_correlation_per_data_set():
    table = synthetic_table(methods=("beta_vae",), seeds=(0, 1))
    frame = st.models(table)
    mig = frame.set_index("model_num")[MIG]
    dataset = frame.set_index("model_num")["dataset"]
    # UDR an increasing function of MIG on dSprites (rho +1) and a decreasing one on Color-dSprites (rho -1)
    udr = {n: (2 * v + 1 if dataset[n] == "dsprites_full" else -v) for n, v in mig.items()}
    frame = st.models(add_scores(table, "udr", {st.UDR_KEY: udr}))
    result = st.udr_correlation(frame, [MIG]).set_index("dataset")
    assert result.loc["dsprites_full", "spearman"] == pytest.approx(1.0)
    assert result.loc["color_dsprites", "spearman"] == pytest.approx(-1.0)
    assert result["runs"].tolist() == [6, 6]  # 3 beta values x 2 seeds per data set


def test_udr_rank_correlation_by_hand_and_with_missing_runs():
    # ranks 1 2 3 4 against 1 2 4 3: d = (0, 0, 1, 1), rho = 1 - 6*2/(4*15) = 0.8
    frame = pd.DataFrame({"dataset": "d", st.UDR_KEY: [0.1, 0.2, 0.3, 0.4, np.nan], DCI: [1.0, 2.0, 4.0, 3.0, 9.0],
                          MIG: [0.5, 0.5, 0.5, 0.5, 0.1]})
    result = st.udr_correlation(frame, [DCI, MIG]).set_index("metric")
    assert result.loc[DCI, "spearman"] == pytest.approx(0.8) and result.loc[DCI, "runs"] == 4
    assert np.isnan(result.loc[MIG, "spearman"])  # constant MIG over the runs with UDR: no ranking


def test_udr_is_a_column_whatever_the_representation():
    table = add_scores(rows_of([(0, MIG, 0.1), (1, MIG, 0.2)]), "udr", {st.UDR_KEY: {0: 0.7, 1: 0.6}})
    assert st.models(table, "sampled")[st.UDR_KEY].tolist() == [0.7, 0.6]


# -- fairness ------------------------------------------------------------------------------------


def test_fairness_columns_and_largest_accuracies():
    frame = pd.DataFrame({st.FAIRNESS["mean unfairness"]: [0.1, 0.2],
                          "downstream_boosted_trees.100.mean_test_accuracy": [0.5, 0.6],
                          "downstream_boosted_trees.10000.mean_test_accuracy": [0.8, 0.9],
                          "downstream_logistic_regression.10:mean_test_accuracy": [0.3, 0.4]})
    assert st.fairness_columns(frame) == {"mean unfairness": "fairness.mean_fairness.mean_pred.mean_sens"}
    assert st.largest_accuracies(frame) == {"GBT acc@10000": "downstream_boosted_trees.10000.mean_test_accuracy",
                                            "LR acc@10": "downstream_logistic_regression.10:mean_test_accuracy"}


# -- the JMLR stability analyses -------------------------------------------------------------------


def test_repetition_spread_by_hand():
    # run 0 scores 1 and 3 (variance 2, ddof 1), run 1 scores 5 and 5 (variance 0), run 2 once
    # (left out): pooled within-run SD sqrt((2 + 0) / 2) = 1; run means 2 and 5 have SD
    # 3 / sqrt(2); the ratio is sqrt(2) / 3. At n=100 run 0 scores 0 and 2, run 1 scores 1 and 1:
    # within 1 again, means 1 and 1: no spread between runs, so no ratio.
    records = [(0, MIG, 1.0, {"repetition": 0}), (0, MIG, 3.0, {"repetition": 1}),
               (1, MIG, 5.0, {"repetition": 0}), (1, MIG, 5.0, {"repetition": 1}), (2, MIG, 7.0, {"repetition": 0}),
               (0, MIG, 0.0, {"repetition": 0, "sample_size": 100}), (0, MIG, 2.0, {"repetition": 1, "sample_size": 100}),
               (1, MIG, 1.0, {"repetition": 0, "sample_size": 100}), (1, MIG, 1.0, {"repetition": 1, "sample_size": 100})]
    spread = st.repetition_spread(rows_of(records), "mean", [MIG])
    assert spread["sample_size"].iloc[0] == 100 and np.isnan(spread["sample_size"].iloc[1])  # sizes first, then the own
    own = spread.iloc[1]
    assert (own["runs"], own["repetitions"]) == (2, 2)
    assert own["within_sd"] == pytest.approx(1.0)
    assert own["between_sd"] == pytest.approx(3 / math.sqrt(2))
    assert own["ratio"] == pytest.approx(math.sqrt(2) / 3)
    small = spread.iloc[0]
    assert small["within_sd"] == pytest.approx(1.0) and small["between_sd"] == 0 and np.isnan(small["ratio"])


def test_repetition_spread_is_empty_with_one_evaluation_per_run():
    assert st.repetition_spread(rows_of([(0, MIG, 0.1), (1, MIG, 0.2)]), "mean", [MIG]).empty


def test_sample_size_agreement_by_hand():
    # repetition 0 of four runs: at 10,000 the scores rank 1 2 3 4, at 1,000 1 2 4 3, at 100 4 3 2 1.
    # Spearman: (1000, 10000) 1 - 6*2/60 = 0.8; (100, 10000) -1; (100, 1000): d = (3, 1, -2, -2),
    # 1 - 6*18/60 = -0.8. Repetition 1 (reversed at 10,000) and the unsized rows are ignored.
    ranks = {10_000: [1, 2, 3, 4], 1_000: [1, 2, 4, 3], 100: [4, 3, 2, 1]}
    records = [(n, MIG, float(r), {"repetition": 0, "sample_size": size}) for size, order in ranks.items() for n, r in enumerate(order)]
    records += [(n, MIG, float(-r), {"repetition": 1, "sample_size": 10_000}) for n, r in enumerate(ranks[10_000])]
    records += [(n, MIG, float(r), {"repetition": 0, "sample_size": np.nan}) for n, r in enumerate([4, 1, 3, 2])]
    result = st.sample_size_agreement(rows_of(records), "mean", [MIG])
    rho = {(a, b): v for a, b, v in zip(result["size_a"], result["size_b"], result["spearman"])}
    assert len(rho) == 9 and set(result["largest"]) == {10_000} and set(result["runs"]) == {4}
    assert rho[(1_000, 10_000)] == pytest.approx(0.8)
    assert rho[(100, 10_000)] == pytest.approx(-1.0)
    assert rho[(100, 1_000)] == pytest.approx(-0.8) and rho[(1_000, 100)] == pytest.approx(-0.8)
    assert rho[(10_000, 10_000)] == pytest.approx(1.0)


def test_sample_size_agreement_needs_two_sizes():
    records = [(n, MIG, float(n), {"sample_size": 1000}) for n in range(4)]
    assert st.sample_size_agreement(rows_of(records), "mean", [MIG]).empty


# -- Fig. 1 with two hyperparameter values ---------------------------------------------------------


def test_tc_trend_with_two_values_is_the_sign_of_the_change_or_says_why_not():
    frame = pd.DataFrame([
        # beta_vae: one run at each of two values; sampled TC falls (rho -1), mean TC rises (+1)
        {"dataset": "a", "method": "beta_vae", "strength": 1.0, "tc_sampled": 3.0, "tc_mean": 1.0},
        {"dataset": "a", "method": "beta_vae", "strength": 4.0, "tc_sampled": 1.0, "tc_mean": 2.0},
        # factor_vae: the same TC at both values
        {"dataset": "a", "method": "factor_vae", "strength": 10.0, "tc_sampled": 2.0, "tc_mean": 2.0},
        {"dataset": "a", "method": "factor_vae", "strength": 40.0, "tc_sampled": 2.0, "tc_mean": np.nan},
        # dip_vae_i: a single value
        {"dataset": "a", "method": "dip_vae_i", "strength": 1.0, "tc_sampled": 2.0, "tc_mean": 2.0},
        # beta_tc_vae: two values with two seeds: ranks of strength (1.5, 1.5, 3.5, 3.5) against
        # TC ranks (1, 2, 3, 4): rho = 4 / sqrt(4 * 5) = 2 / sqrt(5)
        {"dataset": "a", "method": "beta_tc_vae", "strength": 1.0, "tc_sampled": 1.0, "tc_mean": 1.0},
        {"dataset": "a", "method": "beta_tc_vae", "strength": 1.0, "tc_sampled": 2.0, "tc_mean": 2.0},
        {"dataset": "a", "method": "beta_tc_vae", "strength": 4.0, "tc_sampled": 3.0, "tc_mean": 3.0},
        {"dataset": "a", "method": "beta_tc_vae", "strength": 4.0, "tc_sampled": 4.0, "tc_mean": 4.0},
    ])
    trends = st.tc_trends(frame).set_index(["method", "representation"])
    assert trends.loc[("beta_vae", "sampled"), "spearman_strength_tc"] == pytest.approx(-1.0)
    assert trends.loc[("beta_vae", "mean"), "spearman_strength_tc"] == pytest.approx(1.0)
    assert trends.loc[("beta_tc_vae", "mean"), "spearman_strength_tc"] == pytest.approx(2 / math.sqrt(5))
    assert np.isnan(trends.loc[("factor_vae", "sampled"), "spearman_strength_tc"])
    assert trends.loc[("factor_vae", "sampled"), "note"] == "the same TC at every hyperparameter value (no ranking)"
    assert trends.loc[("factor_vae", "mean"), "note"] == "TC known at only one hyperparameter value"
    assert trends.loc[("dip_vae_i", "sampled"), "note"] == "a single hyperparameter value (1)"
    assert trends.loc[("beta_vae", "sampled"), "note"] == ""


# -- a collected JMLR-style study --------------------------------------------------------------------


def test_a_collected_study_with_repetitions_and_sample_sizes(tmp_path):
    """The table ``study collect`` writes (its column types included) from hand-written metric
    files of six runs: MIG at 100 and 1,000 training points, twice each; DCI at its own
    ``num_train``, twice; UDR once. Run n scores MIG 0.1 n (+0.02 in repetition 1) at 1,000 and
    0.5 - 0.1 n at 100, DCI 0.2 n in both repetitions and UDR n."""
    import json

    from disentangled.rundir import StudyDir
    from disentangled.study.collect import collect
    from disentangled.study.spec import from_mapping

    spec = from_mapping({"name": "jmlr_tiny", "base": {"data": {"name": "dummy_data"}, "train": {"steps": 2}},
                         "sweep": {"product": [{"sweep": {"objective.beta": [1.0, 4.0]}}, {"sweep": {"seed": [0, 1, 2]}}]},
                         "evaluation": {"metrics": {"mig": {}, "dci": {}}}})
    study = StudyDir(tmp_path / "study")
    study.claim(spec)

    def write(run, metric, scores, **where):
        path = run.metric_file("mean", metric, **where)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"metric": metric, "scores": scores}))

    for n in range(len(spec)):
        run = study.run(n)
        run.claim(spec.run_config(n), resume=False)
        for r in (0, 1):
            write(run, "mig", {MIG: 0.1 * n + 0.02 * r}, sample_size=1000, repetition=r)
            write(run, "mig", {MIG: 0.5 - 0.1 * n + 0.02 * r}, sample_size=100, repetition=r)
            write(run, "dci", {DCI: 0.2 * n}, repetition=r)
        write(run, "udr", {st.UDR_KEY: float(n)})
    table = collect(study.path)
    assert len(table) == 6 * (4 + 2 + 1)

    frame = st.models(table)
    np.testing.assert_allclose(frame[MIG], 0.1 * np.arange(6))  # repetition 0 at the largest size, 1,000
    np.testing.assert_allclose(frame[DCI], 0.2 * np.arange(6))
    assert st.udr_correlation(frame, [MIG, DCI])["spearman"].tolist() == pytest.approx([1.0, 1.0])

    spread = st.repetition_spread(table, "mean", [MIG, DCI]).set_index(["metric", "sample_size"])
    # MIG: each run's two scores differ by 0.02, variance 0.02^2 / 2; the run means 0.1 n + 0.01
    # have the SD of 0.1 * (0..5), 0.1 * sqrt(3.5). DCI repeats exactly: no spread within runs.
    mig = spread.loc[(MIG, 1000)]
    assert mig["within_sd"] == pytest.approx(0.02 / math.sqrt(2)) and mig["between_sd"] == pytest.approx(0.1 * math.sqrt(3.5))
    assert mig["ratio"] == pytest.approx(0.02 / math.sqrt(2) / (0.1 * math.sqrt(3.5)))
    dci = spread.xs(DCI, level="metric").iloc[0]
    assert dci["within_sd"] == 0 and dci["ratio"] == 0 and dci["runs"] == 6

    agreement = st.sample_size_agreement(table, "mean", [MIG, DCI])
    assert set(agreement["metric"]) == {MIG}  # DCI was not swept
    rho = {(a, b): v for a, b, v in zip(agreement["size_a"], agreement["size_b"], agreement["spearman"])}
    assert rho[(100, 1000)] == pytest.approx(-1.0) and rho[(1000, 1000)] == pytest.approx(1.0)
