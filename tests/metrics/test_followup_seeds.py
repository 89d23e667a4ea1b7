"""The follow-up studies' seeds and keys: fairness_study_v1's shifted seed stream, the new metrics' draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from disentangled import evaluate as ev
from disentangled.study.spec import from_mapping, load_spec

STREAM = [int(v) for v in (lambda rs: [rs.randint(2**32) for _ in range(30)])(np.random.RandomState(0))]
# the reference's metric configuration files of each study, sorted by file name
UNSUPERVISED = ["beta_vae", "dci", "downstream_boosted_trees", "downstream_logistic_regression", "factor_vae", "mig",
                "modularity_explicitness", "sap", "unsupervised"]
FAIRNESS = UNSUPERVISED[:5] + ["fairness"] + UNSUPERVISED[5:]  # fairness.gin sorts between factor_vae_metric and mig


def test_unsupervised_table_keeps_the_study_seeds_and_seeds_the_new_metrics_after_irs():
    table = ev.SEED_TABLES["unsupervised_study_v1"]
    assert {k: table[k] for k in ev.STUDY_SEEDS} == ev.STUDY_SEEDS
    after_irs = [(r, m) for m in ev.FOLLOWUP_METRICS for r in ("mean", "sampled")]
    assert [table[k] for k in after_irs] == STREAM[22:30]
    assert ev.study_seed("mean", "fairness") == STREAM[22]


def test_fairness_study_seeds_are_the_references_shifted_stream():
    table = ev.SEED_TABLES["fairness_study_v1"]
    expected = {(r, m): STREAM[2 + 10 * i + j] for i, r in enumerate(("mean", "sampled")) for j, m in enumerate(FAIRNESS)}
    assert {k: table[k] for k in expected} == expected
    # the values followups.md lists for the reference's fairness_study_v1
    assert table[("mean", "fairness")] == 3638918503 == ev.STUDY_SEEDS[("mean", "mig")]
    assert table[("mean", "mig")] == 1819583497 and table[("mean", "modularity_explicitness")] == 2678185683
    assert table[("mean", "sap")] == 2774094101 and table[("mean", "unsupervised")] == 1650906866
    assert table[("sampled", "beta_vae")] == 1879422756 and table[("sampled", "fairness")] == 1171049868
    # the first five configurations keep their seeds
    assert all(table[("mean", m)] == ev.STUDY_SEEDS[("mean", m)] for m in UNSUPERVISED[:5])
    assert ev.study_seed("mean", "mig", "fairness_study_v1") == 1819583497


def test_fairness_preset_is_the_unsupervised_grid_plus_fairness_with_the_shifted_seeds():
    fairness, unsupervised = load_spec("fairness_study_v1"), load_spec("unsupervised_study_v1")
    assert len(fairness) == len(unsupervised) == 12_600
    for n in (0, 4321, 12_599):  # the same models, numbered the same
        assert fairness.run_config(n).run_id == unsupervised.run_config(n).run_id
    assert sorted(fairness.evaluation.metrics) == FAIRNESS
    assert dict(fairness.evaluation.metrics["fairness"]) == {"num_train": 10000, "num_test_points_per_class": 100}
    assert fairness.evaluation.seed_table == "fairness_study_v1"
    assert unsupervised.evaluation.seed_table == "unsupervised_study_v1"
    assert "seed_table" not in unsupervised.to_dict()["evaluation"]  # older specs keep their digest
    assert fairness.to_dict()["evaluation"]["seed_table"] == "fairness_study_v1"


def test_an_unknown_seed_table_is_refused_naming_it():
    raw = {"name": "t", "sweep": {"fixed": {"seed": 0}}, "evaluation": {"seed_table": "fairness_study"}}
    with pytest.raises(ValueError, match=r"evaluation.seed_table must be one of .*got 'fairness_study'.*Did you mean 'fairness_study_v1'"):
        from_mapping(raw)


def test_evaluate_run_uses_and_records_the_table(tmp_path):
    from disentangled import config as cfg
    from disentangled.train import train

    config = cfg.load(None, ["data.name=dummy_data", "train.steps=2", "train.batch_size=4", "train.checkpoint_every=2",
                             "train.log_every=1", "train.eval_batches=1"])
    train(config, tmp_path, progress=False)
    records = ev.evaluate_run(tmp_path, metrics=["mig"], settings={"mig": {"num_train": 100}}, seed_table="fairness_study_v1")
    saved = json.loads((tmp_path / "metrics" / "mean" / "mig.json").read_text())
    assert records["mig"]["seed"] == saved["seed"] == 1819583497 and saved["seed_table"] == "fairness_study_v1"


def test_reference_keys_of_the_new_metrics():
    scores = {"fairness.mean_fairness.pred0.sens1": 0.1, "fairness.max_fairness.mean_pred.max_sens": 0.2,
              "strong_downstream.1000.strong_generalization_gap": 0.3,
              "unified.importance_gbt_matrix.dci_completeness.code_2": 0.4}
    assert ev.to_dlib_keys(scores) == {
        "fairness.mean_fairness:pred0:sens1": 0.1, "fairness.max_fairness:mean_pred:max_sens": 0.2,
        "strong_downstream_task.1000:strong_generalization_gap": 0.3,
        "unified_scores.importance_gbt_matrix.dci_completeness.code_2": 0.4,
    }
