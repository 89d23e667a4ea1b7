"""UDR: the reference's test cases with their stated values, agreement with its solvers, trained runs, studies."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import disentangled.metrics as M
from disentangled import data as D
from disentangled.metrics.udr import lasso_matrix, relative_strength, spearman_matrix, udr_scores


# --- relative strength (udr_test.test_relative_strength_disentanglement) -------------------


def test_relative_strength_of_the_references_matrices():
    assert relative_strength(np.eye(3)) == 1.0
    # columns: 1/2, 1/2, 1; rows the same: (2/3 + 2/3) / 2 (the reference asserts [0.6, 0.7])
    assert relative_strength([[1, 1, 0], [1, 1, 0], [0, 0, 1]]) == pytest.approx(2 / 3, abs=1e-15)
    assert relative_strength(np.ones((3, 3))) == pytest.approx(1 / 3, abs=1e-15)  # reference: [0.3, 0.4]
    assert relative_strength(np.zeros((3, 3))) == 0.0  # 0/0 counts 0
    with pytest.raises(ValueError, match="non-empty"):
        relative_strength(np.zeros((0, 3)))


# --- correlation matrices (udr_test.test_spearman_correlation / test_lasso_correlation) ----


def test_correlation_matrices_of_the_references_inputs():
    rs = np.random.RandomState(0)
    vec1 = rs.random_sample((1000, 3))
    np.testing.assert_allclose(spearman_matrix(vec1, vec1.copy()), np.eye(3), atol=0.1)
    vec1 = rs.random_sample((1000, 3))
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    duplicated = [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    np.testing.assert_allclose(spearman_matrix(vec1, vec2), duplicated, atol=0.1)
    rs = np.random.RandomState(0)
    vec1 = rs.random_sample((1000, 3)) * 10.0
    np.testing.assert_allclose(lasso_matrix(vec1, vec1.copy()), np.eye(3), atol=0.2)
    vec1 = rs.random_sample((1000, 3)) * 10.0
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    np.testing.assert_allclose(lasso_matrix(vec1, vec2), duplicated, atol=0.2)


@pytest.mark.parametrize("seed", range(4))
def test_lasso_and_spearman_agree_with_scikit_learn_and_scipy(seed):
    from scipy.stats import spearmanr
    from sklearn.linear_model import Lasso

    rs = np.random.RandomState(seed)
    x = rs.normal(size=(500, 6))
    x[:, 2] = 0.0  # a latent the KL filter zeroed
    y = x @ rs.normal(size=(6, 6)) * (rs.rand(6) > 0.3) + 0.5 * rs.normal(size=(500, 6))
    reference = np.abs(Lasso(alpha=0.1).fit(x, y).coef_).T
    np.testing.assert_allclose(lasso_matrix(x, y), reference, rtol=0, atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spearmanr warns about the constant latent
        expected = np.array([[abs(spearmanr(x[:, i], y[:, j]).statistic) for j in range(6)] for i in range(6)])
    ours = spearman_matrix(x, y)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    np.testing.assert_allclose(ours[~np.isnan(ours)], expected[~np.isnan(expected)], rtol=0, atol=1e-12)


# --- permuted sign-flipped copies (udr_test.test_metric_lasso / test_metric_spearman) -----

NUM_FACTORS = 10
PERMUTATION = np.array([2, 9, 6, 4, 0, 3, 1, 7, 8, 5])
FLIPPED = np.array([8, 6, 2])


def _pixels(observations):
    return np.reshape(observations, (len(observations), -1))[:, :NUM_FACTORS].astype(np.float64)


def pixels(observations):
    mean = _pixels(observations)
    return mean, np.full_like(mean, np.log(0.5))


def flipped(observations):
    mean = _pixels(observations)[:, PERMUTATION]
    mean[:, FLIPPED] *= -1.0
    return mean, np.full_like(mean, np.log(0.5))


@pytest.mark.parametrize("correlation, expected", [
    # Lasso shrinks the unit coefficient of a copy to 1 - alpha and the others to 0: max²/sum = 0.9
    ("lasso", 0.9),
    # the reference's udr.py on its own DummyData (RandomState(0), 1,000 points, batches of 10),
    # run here: the |rho| of independent latents (~N^-1/2 each) inflate the sums
    ("spearman", 0.8219968106053599),
])
def test_copies_up_to_permutation_and_sign_score_as_in_the_reference(correlation, expected):
    dummy = D.get("dummy_data")  # the reference's DummyData: 10 factors of 5 values, uniform noise images
    metric = M.UDR(correlation_matrix=correlation)
    for encoders in ([pixels, pixels], [pixels, flipped], [pixels, flipped, pixels]):
        scores = metric.evaluate(dummy, encoders, rng=np.random.RandomState(0))["model_scores"]
        assert scores == pytest.approx([expected] * len(encoders), abs=1e-12)
        assert all(0.8 <= s <= 1.0 for s in scores)  # the reference's assertion


def test_kl_filter_keeps_only_the_informative_latent():
    # udr_test.test_metric_kl: one latent carries the data, nine are noise with KL 0
    dummy = D.get("dummy_data")
    observations = M.UDR().sample_observations(dummy, rng=np.random.RandomState(0))
    noise = np.random.default_rng(0)
    codes = [np.hstack([_pixels(observations)[:, :1], noise.random((1000, NUM_FACTORS - 1))]) for _ in range(2)]
    kl = np.zeros(NUM_FACTORS)
    kl[0] = 1.0
    unfiltered = udr_scores(codes, [kl, kl], filter_low_kl=False)["model_scores"]
    assert all(0.0 <= s <= 0.2 for s in unfiltered)  # the reference's range
    # with the filter a 1x1 matrix remains: the Lasso weight 0.9, max²/sum = 0.9
    assert udr_scores(codes, [kl, kl], filter_low_kl=True)["model_scores"] == pytest.approx([0.9, 0.9], abs=1e-12)


def test_a_collapsed_model_gets_nan_with_a_reason_and_the_others_are_scored_without_it():
    dummy = D.get("dummy_data")
    observations = M.UDR().sample_observations(dummy, rng=np.random.RandomState(0))
    good = _pixels(observations)
    ones = np.ones(NUM_FACTORS)
    result = udr_scores([good, good[:, PERMUTATION], good], [ones, ones, np.zeros(NUM_FACTORS)])
    scores = result["model_scores"]
    assert math.isnan(scores[2]) and "fully collapsed" in result["reasons"][2]
    assert scores[:2] == pytest.approx([0.9, 0.9], abs=1e-12)  # as if the collapsed model were not there
    assert math.isnan(result["pairwise_disentanglement_scores"][0][2])
    assert set(result["reasons"]) == {2}


def test_pairwise_scores_and_raw_correlations_have_the_references_shapes():
    dummy = D.get("dummy_data")
    result = M.UDR(num_data_points=200).evaluate(dummy, [pixels, flipped, pixels], rng=np.random.RandomState(0))
    pairwise = np.array(result["pairwise_disentanglement_scores"])
    assert pairwise.shape == (3, 3) and np.all(np.diag(pairwise) == 0.0)
    assert np.array(result["raw_correlations"]).shape == (3, 3, NUM_FACTORS, NUM_FACTORS)
    # model i's score: the median of the pairs (j, i), j != i
    assert result["model_scores"][1] == pytest.approx(float(np.median(pairwise[[0, 2], 1])), abs=0)


def test_udr_refuses_one_model_and_mismatched_codes():
    with pytest.raises(ValueError, match="at least two"):
        M.UDR().evaluate(D.get("dummy_data"), [pixels], rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="same number of latents"):
        udr_scores([np.zeros((10, 3)), np.zeros((10, 4))], [np.ones(3), np.ones(4)])
    with pytest.raises(ValueError, match="correlation_matrix must be one of"):
        M.UDR(correlation_matrix="pearson")


# --- trained runs and studies ----------------------------------------------------------


# an autoencoder (beta 0) trained fast on noise images: its latents carry information after
# ten steps; the third group, trained with a learning rate of 1e-6, is still at its
# initialisation, whose posteriors are the prior's (every KL below 0.01): fully collapsed
TINY_STUDY = {
    "name": "tiny_udr",
    "base": {"data": {"name": "dummy_data"}, "model": {"num_latent": 4}, "objective": {"name": "beta_vae", "beta": 0.0},
             "train": {"steps": 10, "batch_size": 8, "checkpoint_every": 10, "log_every": 5, "eval_batches": 1}},
    "sweep": {"product": [{"sweep": {"train.lr": [0.01, 0.02, 1.0e-6]}}, {"sweep": {"seed": [0, 1, 2]}}]},
    "evaluation": {"representations": ["mean"], "metrics": {"mig": {"num_train": 100}}},
}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from disentangled.rundir import StudyDir
    from disentangled.study.execute import run_study
    from disentangled.study.spec import from_mapping

    spec = from_mapping(TINY_STUDY)
    out = tmp_path_factory.mktemp("udr_study")
    StudyDir(out).claim(spec)
    run_study(spec, out, executor="inline", progress=False, echo=lambda s: None, threads=1, ensemble=1)
    return out


def test_udr_of_runs_scores_finished_runs_against_each_other(tiny_study):
    from disentangled.rundir import StudyDir
    from disentangled.udr import udr_of_runs

    study = StudyDir(tiny_study)
    runs = [study.run(n).path for n in (0, 1, 2)]
    result = udr_of_runs(runs, settings={"num_data_points": 200})
    assert list(result["model_scores"]) == [str(r) for r in runs]
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in result["model_scores"].values())
    assert result["seed"] == 0 and result["settings"]["correlation_matrix"] == "lasso"
    assert udr_of_runs(runs, settings={"num_data_points": 200})["model_scores"] == result["model_scores"]


def test_udr_of_runs_names_the_runs_it_cannot_compare(tiny_study, tmp_path):
    from disentangled.rundir import StudyDir
    from disentangled.udr import udr_of_runs

    study = StudyDir(tiny_study)
    with pytest.raises(ValueError, match=r"at least two run directories, got 1 \(.*00000\)"):
        udr_of_runs([study.run(0).path])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(ValueError, match=rf"not finished.*{unfinished}"):
        udr_of_runs([study.run(0).path, unfinished])
    other = tmp_path / "other_latents"
    _copy_run(study.run(1).path, other, "model", {"num_latent": 6})
    with pytest.raises(ValueError, match=r"differ in latent size \(4: .*00000; 6: .*other_latents\)"):
        udr_of_runs([study.run(0).path, other])
    elsewhere = tmp_path / "other_data"
    _copy_run(study.run(1).path, elsewhere, "data", {"name": "dsprites_full", "source": "procedural"})
    with pytest.raises(ValueError, match=r"differ in data set \(dummy_data: .*00000, .*00002; dsprites_full \(source=procedural\): .*other_data\)"):
        udr_of_runs([study.run(0).path, study.run(2).path, elsewhere])


def _copy_run(origin, target, section, changes):
    """A finished run whose saved configuration says something else (only the checks read it)."""
    import shutil

    shutil.copytree(origin, target)
    saved = json.loads((target / "config.json").read_text())
    saved["config"][section].update(changes)
    (target / "config.json").write_text(json.dumps(saved))


def test_study_udr_writes_one_score_per_run_into_the_table(tiny_study):
    from disentangled.study.collect import collect
    from disentangled.udr import seed_groups, udr_of_study

    from disentangled.rundir import StudyDir

    assert seed_groups(StudyDir(tiny_study)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # three learning rates, three seeds each
    summaries = udr_of_study(tiny_study, settings={"num_data_points": 200})
    assert [s["status"] for s in summaries] == ["scored"] * 3
    again = udr_of_study(tiny_study, settings={"num_data_points": 200})
    assert [s["status"] for s in again] == ["done"] * 3  # nothing recomputed
    table = collect(tiny_study)
    udr = table[table["score_key"] == "udr.model_score"]
    assert sorted(udr["model_num"]) == list(range(9)) and set(udr["metric"]) == {"udr"}
    values = udr.set_index("model_num")["value"].to_dict()
    assert values[1] == summaries[0]["scores"][1] and all(0.0 <= values[n] <= 1.0 for n in range(6))
    # the collapsed group: NaN in the table, the reason in each run's file (the reference stops with an error)
    assert all(math.isnan(values[n]) for n in (6, 7, 8))
    collapsed = json.loads((StudyDir(tiny_study).run(7).metric_file("mean", "udr")).read_text())
    assert "fully collapsed" in collapsed["reason"]
    record = json.loads((StudyDir(tiny_study).run(4).metric_file("mean", "udr")).read_text())
    assert record["group"] == [3, 4, 5] and set(record["pair_scores"]) == {"3", "5"}
    assert record["scores"]["udr.model_score"] == pytest.approx(float(np.median(list(record["pair_scores"].values()))), abs=0)


def test_cli_udr_of_runs_and_of_a_study(tiny_study):
    from disentangled.cli import app
    from disentangled.rundir import StudyDir

    study = StudyDir(tiny_study)
    runs = [str(study.run(n).path) for n in (3, 4)]
    result = CliRunner().invoke(app, ["evaluate", "--udr", *runs, "--format", "dlib", "--udr-correlation", "spearman"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert len(printed["udr.model_scores"]) == 2 and np.array(printed["udr.pairwise_disentanglement_scores"]).shape == (2, 2, 1)
    result = CliRunner().invoke(app, ["evaluate", "--udr", str(tiny_study), "--udr-correlation", "spearman"])
    assert result.exit_code == 0, result.output
    assert [g["status"] for g in json.loads(result.stdout)["groups"]] == ["scored"] * 3
    result = CliRunner().invoke(app, ["evaluate", "--udr", runs[0]])
    assert result.exit_code != 0 and "at least two run directories" in str(result.exception)
