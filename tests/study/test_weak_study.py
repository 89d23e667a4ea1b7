"""Weakly-supervised studies: the presets' run counts and numbering, a study run end to end,
the pair settings in every results row, and the report's weak-against-unsupervised section."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from disentangled.analysis import write_report
from disentangled.rundir import StudyDir
from disentangled.study.collect import collect
from disentangled.study.execute import run_study
from disentangled.study.spec import from_mapping, load_spec

WEAK_ORDER = ["group_vae", "ada_gvae", "ml_vae", "ada_ml_vae"]
FACTORS = {"dsprites_full": 5, "smallnorb": 4, "cars3d": 3, "shapes3d": 6, "mpi3d_real": 7}
BETAS = [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]


def test_weakly_supervised_study_count_and_numbering():
    """6300 runs; model_num as the preset's comments state it, for every run."""
    spec = load_spec("weakly_supervised_study")
    # per data set of d factors: 4 methods x d values of k x 6 betas x 10 seeds, and 6 x 10 baseline runs
    assert len(spec) == sum(240 * d + 60 for d in FACTORS.values()) == 6300
    offset, offsets = 0, {}
    for name, d in FACTORS.items():
        offsets[name] = offset
        offset += 240 * d + 60
    for n, setting in enumerate(spec.settings):
        name, d = setting["data.name"], FACTORS[setting["data.name"]]
        b, seed = BETAS.index(setting["objective.beta"]), setting["seed"]
        if setting["objective.name"] == "beta_vae":
            assert setting["data.pairs"] is None
            expected = offsets[name] + 240 * d + 10 * b + seed
        else:
            ks = list(range(1, d)) + [-1]
            expected = offsets[name] + 60 * (d * WEAK_ORDER.index(setting["objective.name"]) + ks.index(setting["data.pairs.k"])) + 10 * b + seed
        assert expected == n, setting
    # the first and last run of every block are valid configurations with the pair settings recorded
    for name, d in FACTORS.items():
        first, baseline = spec.run_config(offsets[name]), spec.run_config(offsets[name] + 240 * d)
        assert (first.data.name, first.objective["name"], first.data.pairs.k, first.data.pairs.sampler) == (name, "group_vae", 1, "dlib")
        assert (baseline.objective["name"], baseline.data.pairs) == ("beta_vae", None)
    last = spec.run_config(6299 - 60)
    assert (last.data.name, last.objective, last.data.pairs.k, last.seed) == ("mpi3d_real", {"name": "ada_ml_vae", "beta": 16.0}, -1, 9)
    assert spec.run_config(0).train.steps == 300_000 and spec.run_config(0).data.source == "official"


def test_weak_small_count_and_numbering():
    spec = load_spec("weak_small")
    configs = spec.run_configs()
    assert len(configs) == 18
    for n, c in enumerate(configs):
        if n < 16:  # model_num = 4 * method + 2 * k_index + seed
            assert (c.objective["name"], c.data.pairs.k, c.seed) == (WEAK_ORDER[n // 4], [1, -1][(n // 2) % 2], n % 2)
        else:  # the beta-VAE baseline
            assert (c.objective["name"], c.data.pairs, c.seed) == ("beta_vae", None, n - 16)


TINY = {
    "name": "tiny_weak",
    "base": {"data": {"name": "dummy_data", "pairs": {"sampler": "paper", "k": 1}},
             "train": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2, "eval_batches": 2}},
    "sweep": {"product": [
        {"chain": [
            {"product": [{"sweep": {"objective.name": ["ada_gvae", "ada_ml_vae"]}}, {"sweep": {"data.pairs.k": [1, -1]}}]},
            {"fixed": {"objective.name": "beta_vae", "data.pairs": None}},
        ]},
        {"sweep": {"seed": [0]}},
    ]},
    "evaluation": {"representations": ["mean"], "metrics": {"mig": {"num_train": 200}}},
}


def test_a_weak_study_runs_collects_and_records_the_pair_settings(tmp_path):
    spec = from_mapping(TINY)
    out = tmp_path / "study"
    StudyDir(out).claim(spec)
    results = run_study(spec, out, executor="inline", progress=False, echo=lambda s: None, threads=1)
    assert sorted(r["status"] for r in results) == ["done"] * 5
    table = collect(out)
    per_run = table.drop_duplicates("model_num").set_index("model_num")
    assert per_run["config.objective.name"].tolist() == ["ada_gvae", "ada_gvae", "ada_ml_vae", "ada_ml_vae", "beta_vae"]
    assert per_run["config.data.pairs.k"].tolist()[:4] == [1, -1, 1, -1] and np.isnan(per_run["config.data.pairs.k"].iloc[4])
    assert per_run["config.data.pairs.sampler"].tolist()[:4] == ["paper"] * 4
    assert set(table["score_key"]) == {"mig.discrete_mig"}
    saved = json.loads((out / "runs" / "00001" / "config.json").read_text())["config"]
    assert saved["data"]["pairs"] == {"sampler": "paper", "k": -1}


# --- the report ----------------------------------------------------------------------------------


def _table(methods, seeds=(0, 1, 2), datasets=("dsprites_full", "shapes3d")) -> pd.DataFrame:
    """A results table where the weak methods score 0.3 above the unsupervised ones (plus noise)."""
    rng = np.random.default_rng(0)
    rows, n = [], 0
    for dataset in datasets:
        for method in methods:
            for k in ([1, -1] if method in WEAK_ORDER else [None]):
                for seed in seeds:
                    lift = 0.3 if method in WEAK_ORDER else 0.0
                    base = {"model_num": n, "run_id": f"{n:08x}", "config.seed": seed, "config.data.name": dataset,
                            "config.objective.name": method, "config.objective.beta": 1.0,
                            "config.data.pairs.k": np.nan if k is None else k, "train.reconstruction_loss": 50.0}
                    for key, value in (("mig.discrete_mig", 0.1 + lift), ("dci.disentanglement", 0.2 + lift)):
                        rows.append({**base, "representation": "mean", "metric": key.split(".")[0], "score_key": key,
                                     "value": value + 0.01 * rng.normal()})
                    n += 1
    return pd.DataFrame(rows)


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "img":
            self.images.append(attrs["src"])


def _report(tmp_path, table):
    tmp_path.mkdir(parents=True, exist_ok=True)
    table.to_parquet(tmp_path / "results.parquet")
    index = write_report(tmp_path / "results.parquet", tmp_path / "site", num_draws=100)
    page = _Sections()
    page.feed(index.read_text())
    return index, page


def test_report_compares_weak_and_unsupervised_methods(tmp_path):
    index, page = _report(tmp_path, _table(["beta_vae", "factor_vae", "ada_gvae", "ada_ml_vae"]))
    assert "weak" in page.sections and page.sections[-1] == "runs"
    assert "figures/weak_against_unsupervised.png" in page.images
    assert (index.parent / "figures" / "weak_against_unsupervised.png").is_file()
    text = index.read_text()
    assert "this analysis failed" not in text
    # the table was built with the weak methods 0.3 above: the higher median in all 2 x 2 cells
    assert "the best weakly-supervised method has the higher median in 4 of 4 (data set, metric) cells" in text
    assert "beats an unsupervised one in 100% of pairs" in text
    cells = pd.read_csv(index.parent / "weak_against_unsupervised.csv")
    assert len(cells) == 4 and (cells["higher"] == "weak").all() and (cells["p_weak_beats_unsupervised"] == 1.0).all()
    scores = pd.read_csv(index.parent / "weak_scores.csv")
    assert set(scores["family"]) == {"weak", "unsupervised"}
    assert (scores.loc[scores["method"] == "ada_gvae", "n"] == 6).all()  # 3 seeds x 2 values of k, aggregated


def test_report_without_weak_runs_has_no_weak_section_and_weak_alone_says_what_it_needs(tmp_path):
    _, page = _report(tmp_path / "a", _table(["beta_vae", "factor_vae"]))
    assert "weak" not in page.sections
    index, page = _report(tmp_path / "b", _table(["ada_gvae", "ml_vae"]))
    assert "weak" in page.sections
    assert "needs unsupervised runs" in index.read_text()


@pytest.mark.slow
def test_weak_small_preset_trains_and_scores_a_run(tmp_path):
    """One run of the CPU preset (Ada-GVAE, k = Rnd), trained and scored with its metrics (the others run the same code)."""
    spec = load_spec("weak_small")
    out = tmp_path / "study"
    StudyDir(out).claim(spec)
    results = run_study(spec, out, executor="inline", progress=False, echo=lambda s: None, threads=2, only=[6])
    assert [r["status"] for r in results] == ["done"]
    table = collect(out)
    assert {"mig.discrete_mig", "dci.disentanglement", "beta_vae.eval_accuracy"} <= set(table["score_key"])


@pytest.mark.slow
def test_a_weak_study_killed_midway_and_rerun_gives_the_same_table(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    spec = dict(TINY)
    spec["base"] = {**TINY["base"], "train": {**TINY["base"]["train"], "steps": 40, "checkpoint_every": 5}}
    path = tmp_path / "tiny_weak.yaml"
    path.write_text(yaml.safe_dump(spec))
    exe = [sys.executable, "-m", "disentangled", "study", "run", str(path), "--executor", "inline", "--no-progress"]
    subprocess.run(exe + ["--out", str(tmp_path / "straight")], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(exe + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "runs" / "00001" / "checkpoints" / "latest.json").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "runs" / "00004" / "train.done").exists()
    subprocess.run(exe + ["--out", str(killed)], check=True, capture_output=True)
    for n in range(5):
        log = (killed / "runs" / f"{n:05d}" / "train_log.jsonl").read_text().splitlines()
        assert [json.loads(x)["step"] for x in log] == list(range(2, 41, 2)), n  # none duplicated, none lost
    a, b = collect(tmp_path / "straight"), collect(killed)
    keep = [c for c in a.columns if not c.startswith("train.elapsed")]
    pd.testing.assert_frame_equal(a[keep].reset_index(drop=True), b[keep].reset_index(drop=True))
