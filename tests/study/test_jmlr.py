"""The JMLR protocol: repeated evaluation, sample-size sweeps and the JMLR seed stream."""

import json

import numpy as np
import pytest

from disentangled import metrics as M
from disentangled.errors import ParameterError
from disentangled.evaluate import DLIB_METRIC_NAMES, EvaluationProtocol
from disentangled.rundir import MetricKey, StudyDir
from disentangled.study.collect import collect
from disentangled.study.execute import run_study
from disentangled.study.spec import SpecError, from_mapping, load_spec

TINY = {
    "name": "tiny_jmlr",
    "base": {"data": {"name": "dummy_data"}, "train": {"steps": 2, "batch_size": 8, "checkpoint_every": 2,
                                                      "log_every": 2, "eval_batches": 1}},
    "sweep": {"sweep": {"seed": [0, 1]}},
    "evaluation": {"representations": ["mean", "sampled"], "seeds": "jmlr", "num_eval": 2,
                   "metrics": {"mig": {}, "unsupervised": {"num_train": 100}},
                   "sample_sizes": {"mig": [200, 100]}},
}


def reference_stream(random_seed, num_eval, scores, sizes, posts=("mean", "sampled")):
    """The loop of the reference's ``dlib_reproduce_jmlr`` transcribed: the seed of every binding.

    ``scores`` are the gin configuration file names, ``sizes`` its
    ``--evaluation_num_samples_train`` (shared by every score in ``--scores_list``).
    """
    rs = np.random.RandomState(random_seed)
    out = {"model": rs.randint(2**32)}
    for post in sorted(posts):
        out[post] = rs.randint(2**32)
    for it in range(num_eval):
        for post in sorted(posts):
            for config in sorted(scores):
                for n in sizes:
                    out[(post, config, n, it)] = rs.randint(2**32)
    return out


def test_the_jmlr_stream_is_the_reference_loop():
    names = ["mig", "dci", "sap", "factor_vae", "beta_vae"]
    protocol = EvaluationProtocol(num_eval=3, sample_sizes={m: (100, 1000) for m in names}, seeds="jmlr")
    keys = protocol.keys(["sampled", "mean"], names)
    reps, seeds = protocol.seeds_for(keys, random_seed=7)
    expected = reference_stream(7, 3, [DLIB_METRIC_NAMES[m] for m in names], (100, 1000))
    assert protocol.model_seed(7) == expected["model"]
    assert reps == {"mean": expected["mean"], "sampled": expected["sampled"]}
    assert len(seeds) == 3 * 2 * 5 * 2
    for key, seed in seeds.items():
        assert seed == expected[(key.representation, DLIB_METRIC_NAMES[key.metric], key.sample_size, key.repetition)]


def test_the_first_draws_from_random_seed_zero():
    # RandomState(0).randint(2**32) drawn by hand: 2357136044, 2546248239, 3071714933 (the
    # same numbers as the ICML pipeline's postprocessing seeds, which come from RandomState(0) too)
    protocol = EvaluationProtocol(sample_sizes={"beta_vae": (10,)}, seeds="jmlr")
    reps, seeds = protocol.seeds_for(protocol.keys(["mean"], ["beta_vae"]), random_seed=0)
    assert protocol.model_seed(0) == 2357136044
    assert reps == {"mean": 2546248239}
    assert list(seeds.values()) == [3071714933]


def test_unswept_metrics_keep_seed_zero_as_in_the_reference_or_draw_their_own():
    keys_of = lambda p: p.keys(["mean"], ["mig", "dci"])
    reference = EvaluationProtocol(num_eval=2, sample_sizes={"mig": (100,)}, seeds="jmlr")
    _, seeds = reference.seeds_for(keys_of(reference), random_seed=3)
    assert [seeds[k] for k in keys_of(reference) if k.metric == "dci"] == [0, 0]
    _, other_model = reference.seeds_for(keys_of(reference), random_seed=4)
    assert [other_model[k] for k in keys_of(reference) if k.metric == "dci"] == [0, 0]
    drawn = EvaluationProtocol(num_eval=2, sample_sizes={"mig": (100,)}, seeds="jmlr", unswept_seeds="drawn")
    _, drawn_seeds = drawn.seeds_for(keys_of(drawn), random_seed=3)
    dci = [drawn_seeds[k] for k in keys_of(drawn) if k.metric == "dci"]
    assert len(set(dci)) == 2 and 0 not in dci
    # the swept metric's seeds do not move
    assert all(drawn_seeds[k] == seeds[k] for k in keys_of(drawn) if k.metric == "mig")


def test_study_seeds_are_unchanged_and_repetitions_get_their_own():
    protocol = EvaluationProtocol(num_eval=2)
    keys = protocol.keys(["mean"], ["mig"])
    _, seeds = protocol.seeds_for(keys)
    assert seeds[MetricKey("mean", "mig")] == 3638918503  # the study's seed (dlib.md)
    assert seeds[MetricKey("mean", "mig", repetition=1)] != 3638918503


@pytest.mark.parametrize("name", list(M.METRICS))
def test_a_sample_size_binds_every_metrics_num_train(name):
    key = MetricKey("mean", name, sample_size=123)
    settings = EvaluationProtocol(sample_sizes={name: (123,)}).settings(key, {})
    metric = M.get(name, **settings)
    assert metric.num_train in (123, (123,))


def test_metric_keys_name_their_files_and_read_back():
    for key, stem in [(MetricKey("mean", "mig"), "mig"), (MetricKey("mean", "mig", 100), "mig.n100"),
                      (MetricKey("sampled", "modularity_explicitness", 10, 2), "modularity_explicitness.n10.r2"),
                      (MetricKey("mean", "dci", None, 1), "dci.r1")]:
        assert key.stem == stem
        assert MetricKey.from_stem(key.representation, stem) == key


def test_a_study_with_two_repetitions_and_two_sample_sizes_collects_every_row(tmp_path):
    spec = from_mapping(TINY)
    assert [spec.run_config(n).seed for n in range(2)] == [2357136044, 1791095845]  # RandomState(0|1).randint(2**32)
    out = tmp_path / "study"
    StudyDir(out).claim(spec)
    results = run_study(spec, out, executor="inline", progress=False, echo=lambda s: None, threads=1)
    assert sorted(r["status"] for r in results) == ["done", "done"]
    table = collect(out)
    mig = table[table["metric"] == "mig"]
    # 2 runs x 2 representations x 2 repetitions x 2 sample sizes, one key each
    assert len(mig) == 16
    assert sorted(set(mig["sample_size"])) == [100, 200]
    assert sorted(set(table["repetition"])) == [0, 1]
    unsup = table[table["metric"] == "unsupervised"]
    assert len(unsup) == 2 * 2 * 2 * 4 and unsup["sample_size"].isna().all()
    run = StudyDir(out).run(1)
    record = json.loads(run.metric_file("sampled", "mig", sample_size=200, repetition=1).read_text())
    assert record["settings"]["num_train"] == 200 and record["random_seed"] == 1 and record["seed_policy"] == "jmlr"
    expected = reference_stream(1, 2, ["mig"], (100, 200))
    assert record["seed"] == expected[("sampled", "mig", 200, 1)]
    assert record["representation_seed"] == expected["sampled"]
    assert json.loads(run.metric_file("mean", "unsupervised", repetition=1).read_text())["seed"] == 0
    # deterministic encoder, same seeds: repetitions of the unswept metric agree, the swept ones differ
    values = unsup[unsup["score_key"] == "unsupervised.gaussian_total_correlation"].groupby(
        ["model_num", "representation"])["value"].nunique()
    assert (values.loc[(slice(None), "mean")] == 1).all()
    # a rerun finds everything done
    again = run_study(spec, out, executor="inline", progress=False, echo=lambda s: None, threads=1)
    assert sorted(r["status"] for r in again) == ["skipped", "skipped"]


@pytest.mark.parametrize("change, message", [
    ({"num_eval": 0}, r"evaluation.num_eval must be >= 1 .*got 0"),
    ({"sample_sizes": {"dci": [10]}}, r"sample_sizes.dci: 'dci' is not one of evaluation.metrics"),
    ({"sample_sizes": {"mig": [0]}}, r"sample_sizes.mig must be >= 1"),
    ({"sample_sizes": {"mig": 100}}, r"sample_sizes.mig must be a non-empty list"),
    ({"seeds": "jmrl"}, r"evaluation.seeds must be one of .*Did you mean 'jmlr'"),
    ({"seeds": "study", "unswept_seeds": "drawn"}, r"unswept_seeds applies to seeds: jmlr only"),
    ({"seed_per_model": True}, r"seed_per_model: true contradicts evaluation.seeds: jmlr"),
])
def test_bad_protocol_settings_are_refused_naming_them(change, message):
    raw = {**TINY, "evaluation": {**TINY["evaluation"], **change}}
    with pytest.raises(SpecError, match=message):
        from_mapping(raw)


def test_a_protocol_refuses_an_unknown_metric_and_a_bad_count():
    with pytest.raises(ParameterError, match="num_eval"):
        EvaluationProtocol(num_eval=0)
    with pytest.raises(ParameterError, match="Did you mean 'mig'"):
        EvaluationProtocol(sample_sizes={"mgi": (10,)})


def test_the_jmlr_preset():
    spec = load_spec("unsupervised_study_jmlr")
    assert len(spec) == 8 * 1800
    assert spec.evaluation.protocol.seeds == "jmlr"
    names = [spec.run_config(n).data.name for n in range(0, len(spec), 1800)]
    assert names == ["dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb", "cars3d",
                     "shapes3d", "mpi3d_toy"]
    assert set(spec.evaluation.protocol.sample_sizes) == set(M.STUDY_METRICS)
    assert spec.random_seed(1801) == 1 and spec.run_config(1801).seed == 1791095845


def test_evaluate_cli_repeats_and_sweeps_one_run(tmp_path):
    from typer.testing import CliRunner

    from disentangled import config as cfg
    from disentangled.cli import app
    from disentangled.train import train

    run_dir = tmp_path / "run"
    train(cfg.load(None, ["data.name=dummy_data", "train.steps=2", "train.batch_size=4", "train.checkpoint_every=2",
                          "train.log_every=1", "train.eval_batches=1"]), run_dir, progress=False)
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(run_dir), "--metric", "mig", "--num-eval", "2",
                                 "--sample-size", "mig=50,100"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout[result.stdout.index("{"):])
    assert sorted(printed) == ["mig.n100", "mig.n100.r1", "mig.n50", "mig.n50.r1"]
    assert set(printed["mig.n50"]) == {"mig.discrete_mig"}
    seeds = {json.loads((run_dir / "metrics" / "mean" / f"{stem}.json").read_text())["seed"] for stem in printed}
    assert len(seeds) == 4  # each evaluation its own seed
    bad = runner.invoke(app, ["evaluate", str(run_dir), "--metric", "mig", "--sample-size", "mig:50"])
    assert bad.exit_code != 0 and "--sample-size must look like METRIC=N" in str(bad.exception)
    bad = runner.invoke(app, ["evaluate", str(run_dir), "--metric", "mig", "--seeds", "jmlr"])
    assert bad.exit_code != 0 and "--random-seed" in str(bad.exception)
    bad = runner.invoke(app, ["evaluate", str(run_dir), "--metric", "mig", "--seeds", "jmlr", "--random-seed", "5"])
    assert bad.exit_code != 0 and "not the JMLR pipeline's model seed for random_seed=5" in str(bad.exception)
