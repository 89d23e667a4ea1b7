"""Semi-supervised studies: the presets, the validation stage of a study (files, completeness,
collection), the disjoint draw, and the report's S2-against-unsupervised selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from disentangled import config as cfg
from disentangled.rundir import StudyDir
from disentangled.study.collect import collect
from disentangled.study.spec import from_mapping, load_spec
from disentangled.study.sweep import SpecError

S2_SETTINGS = 31  # s2_vae x 6, supervised, s2_factor_vae / s2_dip_vae_i / s2_dip_vae_ii / s2_beta_tc_vae x 6
LOSSES = ["l2", "xent", "cov", "embed"]
COUNTS = [100, 1000]
LABELLERS = ["perfect", "bin", "noisy", "permuted", "partial"]
KEYS = {"mig": "mig_validation", "dci": "dci_validation.disentanglement", "sap": "sap_validation"}


def tiny_spec(validation=None, **base):
    raw = {"name": "semi_tiny",
           "base": {"data": {"name": "dummy_data"}, "train": {"steps": 2, "batch_size": 4, "eval_batches": 1,
                                                               "checkpoint_every": 2},
                    "supervision": {"num_labelled_samples": 20, "train_percentage": 0.75}, **base},
           "sweep": {"product": [{"chain": [{"fixed": {"objective.name": "s2_vae"}},
                                            {"fixed": {"objective.name": "beta_vae", "supervision": None}}]},
                                 {"sweep": {"seed": [0, 1]}}]},
           "evaluation": {"representations": ["mean"], "metrics": {"mig": {"num_train": 50}},
                          "validation": validation if validation is not None else {"metrics": ["mig", "dci", "sap"]}}}
    return from_mapping(raw)


def test_semi_supervised_study_count_and_numbering():
    """3990 runs; model_num as the preset's comments state it, for every run."""
    spec = load_spec("semi_supervised_study")
    assert len(spec) == 3990
    methods = ["s2_vae"] * 6 + ["supervised"] + ["s2_factor_vae"] * 6 + ["s2_dip_vae_i"] * 6 + ["s2_dip_vae_ii"] * 6 \
        + ["s2_beta_tc_vae"] * 6
    unsupervised = [m for m in ("beta_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tc_vae") for _ in range(6)]
    h_seen: dict[str, int] = {}
    for n, s in enumerate(spec.settings):
        name, seed = s["objective.name"], s["seed"]
        if n < 3720:
            h = n // 120  # 4 losses x 2 counts x 5 labellers x 3 seeds per (method, hyperparameter)
            assert name == methods[h]
            expected = 3 * (5 * (2 * (4 * h + LOSSES.index(s["objective.supervised_loss"]))
                                 + COUNTS.index(s["supervision.num_labelled_samples"]))
                            + LABELLERS.index(s["supervision.labeller"])) + seed
        elif n < 3900:
            assert name == "s2_mine_vae"
            b = [1.0, 2.0, 4.0, 6.0, 8.0, 16.0].index(s["objective.beta"])
            expected = 3720 + 3 * (5 * (2 * b + COUNTS.index(s["supervision.num_labelled_samples"]))
                                   + LABELLERS.index(s["supervision.labeller"])) + seed
        else:
            assert s["supervision"] is None and name == unsupervised[(n - 3900) // 3]
            expected = n
        assert expected == n, (n, s)
        h_seen[name] = h_seen.get(name, 0) + 1
    assert h_seen["s2_vae"] == 6 * 120 and h_seen["supervised"] == 120 and h_seen["beta_vae"] == 18
    v = spec.evaluation.validation
    assert v.metrics == ("mig", "dci", "sap", "unified") and v.draw == "training" and v.labels == (100, 1000)
    assert spec.validation_counts(0) == [100] and spec.validation_counts(3) == [100]
    assert spec.validation_counts(15) == [1000] and spec.validation_counts(3900) == [100, 1000]


def test_semi_small_preset_validates_every_run_on_100_labels():
    spec = load_spec("semi_small")
    assert len(spec) == 12
    assert spec.evaluation.validation.metrics == ("mig", "dci", "sap")
    assert [spec.validation_counts(n) for n in range(12)] == [[100]] * 12
    assert spec.run_config(10).supervision is None and spec.validation_supervision()["num_labelled_samples"] == 100
    study = StudyDir("unused")
    assert [p.name for p in study.validations(spec, 10)] == ["mig_100.json", "dci_100.json", "sap_100.json"]


@pytest.mark.parametrize("validation, message", [
    ({"metrics": ["mig", "modularity"]}, "evaluation.validation.metrics: unknown form 'modularity'"),
    ({"metrics": []}, "evaluation.validation.metrics must be a non-empty list"),
    ({"draw": "fresh"}, r"evaluation.validation.draw must be one of \['training', 'disjoint'\], got 'fresh'"),
    ({"labels": [100, 1]}, r"evaluation.validation.labels must be a non-empty list of integers >= 2 .*got \[100, 1\]"),
    ({"label": [100]}, "unknown key 'evaluation.validation.label'"),
])
def test_validation_section_errors_name_key_rule_and_value(validation, message):
    with pytest.raises(SpecError, match=message):
        tiny_spec(validation)


def test_validation_needs_base_supervision_for_unlabelled_runs():
    raw = {"name": "x", "base": {"data": {"name": "dummy_data"}}, "sweep": {"sweep": {"seed": [0]}},
           "evaluation": {"validation": {"metrics": ["mig"]}}}
    with pytest.raises(SpecError, match="evaluation.validation needs base.supervision"):
        from_mapping(raw)


def test_spec_without_validation_keeps_its_digest():
    a = tiny_spec()
    raw = a.to_dict()
    del raw["evaluation"]["validation"]
    assert "validation" not in from_mapping(raw).to_dict()["evaluation"]
    assert from_mapping(raw).digest != a.digest


def test_disjoint_draw_shares_no_factors_with_the_training_draw():
    from disentangled import data as data_module
    from disentangled.train.validation import supervision_of, validation_set

    config = cfg.load(None, ["data.name=dummy_data", "objective.name=s2_vae", "supervision.num_labelled_samples=200", "seed=3"])
    data = data_module.get("dummy_data")
    s = supervision_of(config)
    trained, seed = validation_set(config, data, s, "training")
    disjoint, other = validation_set(config, data, s, "disjoint")
    again, _ = validation_set(config, data, s, "disjoint")
    assert other != seed and len(disjoint.factors) == 200 and disjoint.num_train == 180
    assert not {tuple(r) for r in trained.factors.tolist()} & {tuple(r) for r in disjoint.factors.tolist()}
    np.testing.assert_array_equal(disjoint.observations, again.observations)  # a function of the run's seed


def _fake_study(tmp_path):
    """A claimed study whose runs hold hand-written metric and validation files (no training)."""
    spec = tiny_spec()
    study = StudyDir(tmp_path / "study")
    study.claim(spec)
    for n in range(len(spec)):
        run = study.run(n)
        run.claim(spec.run_config(n), resume=False)
        run.metric_file("mean", "mig").parent.mkdir(parents=True, exist_ok=True)
        run.metric_file("mean", "mig").write_text(json.dumps({"metric": "mig", "scores": {"mig.discrete_mig": 0.1 * n}}))
        for form in spec.evaluation.validation.metrics:
            path = run.validation_file("mean", form, 20)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"metric": f"{form}_validation", "settings": {"labeller": "perfect",
                                        "own_labels": n < 2}, "scores": {KEYS[form]: 0.5 + n}}))
    return spec, study


def test_collect_tells_validation_rows_apart(tmp_path):
    spec, study = _fake_study(tmp_path)
    assert not study.is_complete(spec, 0)  # files written, but the run has not trained
    assert study.stage_status(spec, 0)["evaluations_done"] == "4/4"
    table = collect(study.path)
    assert len(table) == 4 * 4
    plain = table[~table["validation"]]
    assert list(plain["score_key"]) == ["mig.discrete_mig"] * 4
    assert plain["validation.num_labelled_samples"].isna().all()
    val = table[table["validation"]]
    assert sorted(set(val["metric"])) == ["dci_validation", "mig_validation", "sap_validation"]
    assert set(val["validation.num_labelled_samples"]) == {20} and set(val["validation.draw"]) == {"training"}
    row = val[(val["model_num"] == 3) & (val["score_key"] == "sap_validation")].iloc[0]
    assert row["value"] == 3.5 and not row["validation.own_labels"] and row["config.objective.name"] == "beta_vae"


def test_semi_selection_picks_the_best_validated_model_per_seed():
    from disentangled.analysis import stats as st

    rows = []

    def run(n, method, seed, labels, test, val):
        base = {"model_num": n, "run_id": f"r{n}", "representation": "mean", "config.objective.name": method,
                "config.seed": seed, "config.data.name": "d", "config.supervision.num_labelled_samples": labels}
        rows.append({**base, "metric": "mig", "score_key": "mig.discrete_mig", "value": test, "validation": False})
        rows.append({**base, "metric": "mig_validation", "score_key": "mig_validation", "value": val, "validation": True,
                     "validation.num_labelled_samples": 100})

    # seed 0: S2 models 0 (val 0.9, test 0.2) and 1 (val 0.1, test 0.8); unsupervised 4 (val 0.3, test 0.5), 5 (val 0.4, test 0.1)
    run(0, "s2_vae", 0, 100, 0.2, 0.9)
    run(1, "s2_vae", 0, 100, 0.8, 0.1)
    run(2, "s2_vae", 1, 100, 0.6, 0.5)
    run(4, "beta_vae", 0, np.nan, 0.5, 0.3)
    run(5, "beta_vae", 0, np.nan, 0.1, 0.4)
    run(6, "beta_vae", 1, np.nan, 0.3, 0.2)
    selected, cells = st.semi_selection(pd.DataFrame(rows), "mean", ["mig.discrete_mig"])
    picked = {(r.family, r.seed): (r.model_num, r.value) for r in selected.itertuples()}
    assert picked == {("s2", 0): (0, 0.2), ("s2", 1): (2, 0.6), ("unsupervised", 0): (5, 0.1), ("unsupervised", 1): (6, 0.3)}
    assert len(cells) == 1
    cell = cells.iloc[0]
    assert cell["s2_median"] == pytest.approx(0.4) and cell["unsupervised_median"] == pytest.approx(0.2)
    assert cell["higher"] == "s2" and cell["seeds_s2"] == 2 and cell["num_labels"] == 100


def test_report_has_the_semi_section(tmp_path):
    from disentangled.analysis import write_report
    from disentangled.study.collect import write_table

    _, study = _fake_study(tmp_path)
    table = collect(study.path)
    write_table(table, tmp_path / "t.parquet")
    html = write_report(tmp_path / "t.parquet", tmp_path / "report", visualize_missing=False).read_text()
    section = html[html.index('id="semi"'):]
    section = section[:section.index("</section>")]
    # per seed the unsupervised model (2 or 3) has the higher validation score and the higher MIG (0.1 n)
    assert "in 0 of 3 (data set, labels, validation score, test metric) cells" in section
    assert 'src="figures/semi_selection.png"' in section
    cells = pd.read_csv(tmp_path / "report" / "semi_against_unsupervised.csv")
    assert sorted(cells["validation"]) == ["dci_validation.disentanglement", "mig_validation", "sap_validation"]
    assert cells["s2_median"].tolist() == pytest.approx([0.05] * 3)
    assert cells["unsupervised_median"].tolist() == pytest.approx([0.25] * 3)


@pytest.mark.slow
def test_study_validates_s2_and_unsupervised_runs_on_the_same_draw(tmp_path):
    from disentangled.study.execute import run_study

    spec = tiny_spec({"metrics": ["mig", "dci", "sap"], "labels": [20, 30]})
    study = StudyDir(tmp_path / "s")
    study.claim(spec)
    results = run_study(spec, study.path, executor="inline", progress=False)
    assert [r["status"] for r in results] == ["done"] * 4
    assert all(study.is_complete(spec, n) for n in range(4))
    s2, unsup = study.run(0), study.run(2)  # seed 0, S2 and beta-VAE
    assert [p.name for _, _, _, _, p in unsup.validation_files()] == [
        "dci_20.json", "dci_30.json", "mig_20.json", "mig_30.json", "sap_20.json", "sap_30.json"]
    assert [p.name for _, _, _, _, p in s2.validation_files()] == ["dci_20.json", "mig_20.json", "sap_20.json"]
    a = json.loads(s2.validation_file("mean", "mig", 20).read_text())
    b = json.loads(unsup.validation_file("mean", "mig", 20).read_text())
    assert a["seed"] == b["seed"] and a["settings"]["own_labels"] and not b["settings"]["own_labels"]
    # a validation score lost is recomputed alone on the next run
    unsup.validation_file("mean", "sap", 30).unlink()
    before = unsup.validation_file("mean", "dci", 30).stat().st_mtime_ns
    assert not study.is_complete(spec, 2)
    run_study(spec, study.path, executor="inline", progress=False)
    assert study.is_complete(spec, 2) and unsup.validation_file("mean", "dci", 30).stat().st_mtime_ns == before
    table = collect(study.path)
    # 6 score keys per (run, count): dci's 4, mig's and sap's; the S2 runs at 20 labels, the others at 20 and 30
    assert int(table["validation"].sum()) == 2 * 6 + 2 * 2 * 6


SHORT_STEPS = 24  # every run of the shortened semi_small; checkpoints every 4 steps


def short_semi_small(path):
    """semi_small with its sweep, supervision and validation as they are, shortened to run twice in a test:
    ``SHORT_STEPS`` steps at batch 16 and smaller metric sizes. Written to ``path``; returns the spec."""
    import yaml

    raw = load_spec("semi_small").to_dict()
    raw["name"] = "semi_small_short"
    raw["base"]["train"] = {"steps": SHORT_STEPS, "batch_size": 16, "checkpoint_every": 4, "log_every": 4,
                            "eval_batches": 2}
    raw["evaluation"]["metrics"] = {
        "beta_vae": {"num_train": 40, "num_eval": 20, "batch_size": 8},
        "factor_vae": {"num_variance_estimate": 200, "num_train": 40, "num_eval": 20, "batch_size": 8},
        "mig": {"num_train": 200}, "dci": {"num_train": 100, "num_test": 50}, "unsupervised": {"num_train": 200}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return from_mapping(raw)


def _selected_medians(table, validation_key, test_key):
    """Per family, the median over seeds of ``test_key`` of the model each seed selects by ``validation_key``
    (highest score, the lower model number on a tie): the paper's comparison, computed here from the long table."""
    rows = table[table["representation"] == "mean"]
    flagged = rows["validation"].fillna(False).astype(bool)
    val = rows[flagged & (rows["score_key"] == validation_key) & np.isfinite(rows["value"].astype(float))]
    test = rows[~flagged & (rows["score_key"] == test_key)].set_index("model_num")["value"].astype(float)
    s2 = val["config.supervision.num_labelled_samples"].notna()
    medians = {}
    for family, group in (("s2", val[s2]), ("unsupervised", val[~s2])):
        picks = []
        for _, seed in group.groupby("config.seed"):
            best = seed.sort_values(["value", "model_num"], ascending=[False, True], kind="stable")["model_num"].iloc[0]
            picks.append(test[best])
        medians[family] = float(np.median(picks))
    return medians


@pytest.mark.slow
def test_semi_small_killed_mid_training_reruns_to_the_undisturbed_study_and_reports(tmp_path):
    """`study run` of semi_small (shortened) through the CLI, SIGKILLed while an S2 run trains and rerun,
    ends with the undisturbed study's weights and table; `report` on that table compares S2 with beta-VAE."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec_path = tmp_path / "semi_small_short.yaml"
    spec = short_semi_small(spec_path)
    assert len(spec) == 12
    exe = [sys.executable, "-m", "disentangled"]
    # one thread: on a loaded two-core machine a second one mostly waits for the first
    run = exe + ["study", "run", str(spec_path), "--executor", "inline", "--no-progress", "--threads", "1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(run + ["--out", str(straight)], check=True, capture_output=True)
    proc = subprocess.Popen(run + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # run 2 is s2_vae with the l2 loss: its learned scale and that scale's optimiser moments must resume too
    victim = killed / "runs" / "00002"
    deadline = time.time() + 600
    while time.time() < deadline and not (victim / "checkpoints" / "latest.json").exists():
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (victim / "train.done").exists()  # killed mid-training, between two checkpoints
    assert json.loads((victim / "checkpoints" / "latest.json").read_text())["step"] < SHORT_STEPS
    subprocess.run(run + ["--out", str(killed)], check=True, capture_output=True)

    for n in range(12):
        log = (killed / "runs" / f"{n:05d}" / "train_log.jsonl").read_text().splitlines()
        assert [json.loads(x)["step"] for x in log] == list(range(4, SHORT_STEPS + 1, 4)), n  # none lost, none twice
        done = [json.loads((d / "runs" / f"{n:05d}" / "train.done").read_text()) for d in (straight, killed)]
        assert done[0]["weights_sha256"] == done[1]["weights_sha256"], n
    a, b = collect(straight), collect(killed)
    keep = [c for c in a.columns if not c.startswith("train.elapsed")]
    pd.testing.assert_frame_equal(a[keep].reset_index(drop=True), b[keep].reset_index(drop=True))
    # every run scored and validated: 5 S2 methods x 2 seeds on their own 100 labels, beta-VAE on its seed's draw
    val = b[b["validation"].fillna(False).astype(bool)]
    assert set(val["model_num"]) == set(range(12)) and set(val["validation.num_labelled_samples"]) == {100}
    assert set(val["score_key"]) == {"mig_validation", "sap_validation", "dci_validation.disentanglement",
                                     "dci_validation.completeness", "dci_validation.informativeness_train",
                                     "dci_validation.informativeness_test"}

    table = tmp_path / "results.parquet"
    subprocess.run(exe + ["study", "collect", str(killed), "-o", str(table)], check=True, capture_output=True)
    subprocess.run(exe + ["report", str(table), "-o", str(tmp_path / "report"), "--study-dir", str(killed),
                          "--draws", "100"], check=True, capture_output=True)
    html = (tmp_path / "report" / "index.html").read_text()
    section = html[html.index('id="semi"'):]
    section = section[:section.index("</section>")]
    assert 'src="figures/semi_selection.png"' in section
    cells = pd.read_csv(tmp_path / "report" / "semi_against_unsupervised.csv")
    tests = ["beta_vae.eval_accuracy", "dci.disentanglement", "factor_vae.eval_accuracy", "mig.discrete_mig"]
    assert sorted(set(cells["metric"])) == tests and len(cells) == 3 * 4 and set(cells["num_labels"]) == {100}
    assert (cells["seeds_s2"] == 2).all() and (cells["seeds_unsupervised"] == 2).all()
    higher = 0
    for cell in cells.itertuples():
        medians = _selected_medians(b, cell.validation, cell.metric)
        assert (cell.s2_median, cell.unsupervised_median) == pytest.approx((medians["s2"], medians["unsupervised"]),
                                                                           abs=1e-12), cell
        higher += medians["s2"] > medians["unsupervised"]
    assert f"in {higher} of 12 (data set, labels, validation score, test metric) cells" in section
