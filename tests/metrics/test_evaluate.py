"""Evaluating saved codes, trained runs and TorchScript encoders; the CLI command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import typer
from metric_support import golden_arrays
from typer.testing import CliRunner

from disentangled import evaluate as ev
from disentangled.cli.evaluate import evaluate as evaluate_command

DLIB_KEYS = {
    "mig.discrete_mig",
    "dci.disentanglement",
    "dci.completeness",
    "dci.informativeness_train",
    "dci.informativeness_test",
    "sap_score.SAP_score",
    "modularity_explicitness.modularity_score",
    "modularity_explicitness.explicitness_score_train",
    "modularity_explicitness.explicitness_score_test",
    "unsupervised.gaussian_total_correlation",
    "unsupervised.gaussian_wasserstein_correlation",
    "unsupervised.gaussian_wasserstein_correlation_norm",
    "unsupervised.mutual_info_score",
}


def cli():
    app = typer.Typer()
    app.command()(evaluate_command)
    return app


@pytest.fixture(scope="module")
def codes_file(tmp_path_factory):
    codes, factors, codes_test, factors_test = golden_arrays(n=400, n_test=200)
    path = tmp_path_factory.mktemp("codes") / "codes.npz"
    np.savez(path, codes=codes, factors=factors, codes_test=codes_test, factors_test=factors_test)
    return path


def test_study_seeds_are_the_reference_stream():
    rs = np.random.RandomState(0)
    stream = [int(rs.randint(2**32)) for _ in range(22)]
    assert stream[:2] == [ev.POSTPROCESS_SEEDS["mean"], ev.POSTPROCESS_SEEDS["sampled"]]
    study = ["beta_vae", "dci", "downstream_boosted_trees", "downstream_logistic_regression", "factor_vae", "mig",
             "modularity_explicitness", "sap", "unsupervised"]  # sorted by the reference's config file names
    expected = {(r, m): stream[2 + 9 * i + j] for i, r in enumerate(("mean", "sampled")) for j, m in enumerate(study)}
    expected[("mean", "irs")], expected[("sampled", "irs")] = stream[20], stream[21]
    assert ev.STUDY_SEEDS == expected
    assert ev.metric_seed("mean", "mig") == 3638918503
    assert ev.metric_seed("mean", "mig", model_seed=3, seed_per_model=True) != 3638918503


def test_score_codes_uses_train_and_test_arrays(codes_file):
    arrays = ev.load_codes(codes_file)
    scores = ev.score_codes(*arrays, fmt="dlib")
    assert set(scores) == DLIB_KEYS
    assert all(type(v) is float for v in scores.values())
    project = ev.score_codes(*arrays, metrics=["sap"])
    assert project["sap.sap_score"] == scores["sap_score.SAP_score"]
    # without test arrays the training arrays serve as both
    alone = ev.score_codes(arrays[0], arrays[1], metrics=["dci"])
    assert alone["dci.informativeness_train"] == alone["dci.informativeness_test"]


def test_score_codes_rejects_sampling_metrics_and_bad_files(tmp_path, codes_file):
    arrays = ev.load_codes(codes_file)
    with pytest.raises(ValueError, match="beta_vae.*cannot be computed from saved codes"):
        ev.score_codes(*arrays, metrics=["beta_vae"])
    bad = tmp_path / "bad.npz"
    np.savez(bad, codes=arrays[0])
    with pytest.raises(ValueError, match="factors"):
        ev.load_codes(bad)
    nan = tmp_path / "nan.npz"
    codes = arrays[0].copy()
    codes[:3, 1] = np.nan
    np.savez(nan, codes=codes, factors=arrays[1])
    with pytest.raises(ValueError, match=r"mig: codes contain 3 NaN"):
        ev.score_codes(*ev.load_codes(nan), metrics=["mig"])


def test_cli_codes_prints_dlib_keys(codes_file):
    result = CliRunner().invoke(cli(), ["--codes", str(codes_file), "--format", "dlib", "--metric", "mig", "--metric", "unsupervised"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {k for k in DLIB_KEYS if k.startswith(("mig.", "unsupervised."))}


def test_cli_needs_exactly_one_source(codes_file):
    result = CliRunner().invoke(cli(), [])
    assert result.exit_code != 0 and "exactly one" in str(result.exception)


class _Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(64 * 64, 4)

    def forward(self, x):
        mean = self.linear(x.flatten(1))
        return mean, torch.zeros_like(mean)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cli_scores_a_torchscript_encoder(tmp_path):
    path = tmp_path / "encoder.pt"
    torch.jit.script(_Encoder()).save(str(path))
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(cli(), ["--encoder", str(path), "--dataset", "dummy_data", "--metric", "mig", "-o", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert set(scores) == {"mig.discrete_mig"} and 0.0 <= scores["mig.discrete_mig"] <= 1.0


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from disentangled import config as cfg
    from disentangled.train import train

    run_dir = tmp_path_factory.mktemp("run")
    config = cfg.load(None, ["data.name=dummy_data", "train.steps=2", "train.batch_size=4", "train.checkpoint_every=2",
                             "train.log_every=1", "train.eval_batches=1"])
    train(config, run_dir, progress=False)
    return run_dir


SMALL_RUN = {"mig": {"num_train": 200}, "unsupervised": {"num_train": 200}}


def test_evaluate_run_writes_one_file_per_metric_and_skips_done_ones(trained_run):
    records = ev.evaluate_run(trained_run, metrics=["mig", "unsupervised"], settings=SMALL_RUN)
    path = trained_run / "metrics" / "mean" / "mig.json"
    saved = json.loads(path.read_text())
    assert saved["scores"] == records["mig"]["scores"]
    assert saved["seed"] == ev.STUDY_SEEDS[("mean", "mig")] and saved["seed_policy"] == "study"
    assert saved["settings"]["num_train"] == 200 and "elapsed_s" in saved and saved["encoded_on"] == "cpu"
    before = path.stat().st_mtime_ns
    again = ev.evaluate_run(trained_run, metrics=["mig", "unsupervised"], settings=SMALL_RUN)
    assert path.stat().st_mtime_ns == before and again["mig"]["scores"] == records["mig"]["scores"]
    sampled = ev.evaluate_run(trained_run, representation="sampled", metrics=["mig"], settings=SMALL_RUN)
    assert (trained_run / "metrics" / "sampled" / "mig.json").is_file()
    assert sampled["mig"]["seed"] == ev.STUDY_SEEDS[("sampled", "mig")]
    per_model = ev.evaluate_run(trained_run, metrics=["mig"], settings=SMALL_RUN, seed_per_model=True, force=True)
    assert per_model["mig"]["seed_policy"] == "per_model"


def test_pooled_metrics_start_first_and_score_as_they_do_alone():
    """The metrics that fit in the worker pool are started first and the others computed
    meanwhile; every score is the one the metric gives on its own."""
    from metric_support import IdentityData, golden_representation

    from disentangled import metrics as M
    from disentangled.metrics.base import PooledMetric

    data, rep = IdentityData(), golden_representation
    # SAP fits its SVMs in the same pool while the pooled metrics' fits are outstanding
    names = ["mig", "dci", "downstream_logistic_regression", "sap", "unsupervised"]
    settings = {"mig": {"num_train": 300}, "dci": {"num_train": 200, "num_test": 100},
                "downstream_logistic_regression": {"num_train": [20, 60], "num_test": 50},
                "sap": {"num_train": 200, "num_test": 100}, "unsupervised": {"num_train": 200}}
    finished = []
    together = ev.evaluate_representation(data, rep, metrics=names, settings=settings, n_jobs=2,
                                          on_result=lambda name, record: finished.append(name))
    assert list(together) == names
    pooled = [n for n in names if isinstance(M.get(n), PooledMetric)]
    assert pooled == ["dci", "downstream_logistic_regression"]
    assert finished == ["mig", "sap", "unsupervised", *pooled]  # the pooled ones are collected last
    for name in names:
        alone = ev.evaluate_representation(data, rep, metrics=[name], settings=settings, n_jobs=1)[name]
        assert together[name]["scores"] == alone["scores"], name
        assert together[name]["seed"] == alone["seed"] and together[name]["elapsed_s"] >= 0
