"""Semi-supervised training: the labelled stream, configs, run directories, ensembles and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from disentangled import config as cfg
from disentangled import data as data_module
from disentangled.config import ConfigError
from disentangled.train import load_model, representation, train, train_ensemble
from disentangled.train.core import seeds
from disentangled.train.labelled import LABELLED_STREAM, LabelledBatches, labelled_seed, labelled_set


def tiny(seed=0, **overrides):
    base = {"data.name": "dummy_data", "train.steps": 4, "train.batch_size": 4,
            "train.checkpoint_every": 2, "train.log_every": 1, "train.eval_batches": 2, "objective.name": "s2_vae",
            "supervision.num_labelled_samples": 10, "seed": seed}
    return cfg.load(None, [f"{k}={v}" for k, v in {**base, **overrides}.items()])


def weights(run):
    return load_file(str(Path(run) / "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def log_rows(run):
    return [{k: v for k, v in json.loads(x).items() if k != "elapsed"} for x in (Path(run) / "train_log.jsonl").read_text().splitlines()]


# --- configuration -------------------------------------------------------------------------------


def test_supervision_section_resolved_and_recorded():
    c = tiny(**{"supervision.labeller": "bin"})
    assert c.supervision.num_bins == 5 and c.supervision.prob_random is None  # the labeller's default written out
    d = c.to_dict()["supervision"]
    assert d == {"num_labelled_samples": 10, "train_percentage": 0.9, "labeller": "bin", "num_bins": 5, "prob_random": None,
                 "num_observed_factors": None, "shuffle": False, "seed": None}
    assert cfg.from_dict(c.to_dict()) == c  # config.json round trip
    # unsupervised configurations carry no supervision key: their run ids are what they were
    assert "supervision" not in cfg.load(None, ["data.name=dummy_data"]).to_dict()


@pytest.mark.parametrize("overrides, match", [
    ({"supervision.num_labelled_samples": 1}, r"supervision.num_labelled_samples must be >= 2 \(the labelled set is split"),
    ({"supervision.train_percentage": 0.0}, r"supervision.train_percentage must be in \(0.0, 1.0\]"),
    ({"supervision.train_percentage": 1.5}, r"supervision.train_percentage must be in \(0.0, 1.0\]"),
    ({"supervision.num_bins": 3}, r"supervision.num_bins must be unset for the labeller 'perfect' \(it is a setting of the "
                                  r"'bin' labeller\), got 3; remove it, or set supervision.labeller=bin"),
    ({"supervision.labeller": "noisy", "supervision.num_observed_factors": 2}, r"num_observed_factors must be unset for the labeller 'noisy'"),
    ({"supervision.labeller": "partial", "supervision.num_observed_factors": 11},
     r"supervision.num_observed_factors must be in \[1, 10\], the factors of dummy_data, got 11"),
    ({"supervision.labeller": "partial", "supervision.num_observed_factors": 0}, r"num_observed_factors must be >= 1, got 0"),
    ({"supervision.labeller": "noisy", "supervision.prob_random": 2.0}, r"prob_random must be in \[0.0, 1.0\], got 2.0"),
    ({"supervision.labeller": "perfekt"}, r"supervision.labeller: unknown labeller 'perfekt'.*Did you mean 'perfect'"),
    ({"supervision.seed": -1}, r"supervision.seed must be in \[0, 4294967295\]"),
    ({"supervision.shuffle": "sometimes"}, r"supervision.shuffle must be true or false, got 'sometimes'"),
    ({"supervision.labelled": 3}, r"unknown configuration key 'supervision.labelled'"),
    ({"model.num_latent": 4}, r"model.num_latent must be >= 10 \(the xent loss binds latent k to label column k"),
    ({"objective.supervised_loss": "embed", "objective.learn_scale": True}, r"learn_scale must be unset for the 'embed' loss"),
])
def test_bad_supervision_names_the_key_the_rule_and_the_value(overrides, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**overrides)


def test_objectives_and_the_supervision_section_go_together():
    with pytest.raises(ConfigError, match=r"supervision must be set for the semi-supervised objective 's2_vae', got None"):
        cfg.load(None, ["data.name=dummy_data", "objective.name=s2_vae"])
    with pytest.raises(ConfigError, match=r"supervision must be unset for the objective 'beta_vae'.*gamma_sup=0"):
        cfg.load(None, ["data.name=dummy_data", "supervision.num_labelled_samples=10"])
    # fewer latents are fine for the loss that binds none, and with a partial labeller
    tiny(**{"model.num_latent": 2, "objective.supervised_loss": "cov"})
    tiny(**{"model.num_latent": 2, "supervision.labeller": "partial"})


def test_the_labelled_seed_is_a_stream_of_its_own():
    c = tiny(seed=3)
    child = np.random.SeedSequence(3).spawn(LABELLED_STREAM + 1)[LABELLED_STREAM]  # spawn key 4: after the four streams
    assert labelled_seed(c) == int(child.generate_state(1, dtype=np.uint32)[0])
    assert labelled_seed(c) not in seeds(c).values() and labelled_seed(tiny(seed=4)) != labelled_seed(c)
    assert labelled_seed(tiny(**{"supervision.seed": 17})) == 17  # the reference's supervised_seed, given


# --- the labelled stream ---------------------------------------------------------------------------


def test_labelled_part_repeated_in_order_then_validation_in_order():
    c = tiny(**{"supervision.num_labelled_samples": 10, "supervision.train_percentage": 0.7})  # 7 train, 3 validate
    data = data_module.get("dummy_data")
    source = LabelledBatches.for_runs([c], data, "cpu")
    drawn = labelled_set(c, data)
    train_x, train_y = drawn.train
    for step in (0, 1, 5):  # step t reads examples t*4 .. t*4+3 modulo 7 (the reference's repeat, then batch)
        batch = source([np.random.default_rng(0)], [0], step=step)
        rows = [(step * 4 + j) % 7 for j in range(4)]
        assert np.array_equal(batch["labels"][0].numpy(), train_y[rows])
        assert np.array_equal(batch["labelled"][0].numpy(), train_x[rows])
        assert batch["sizes"][0].tolist() == [5.0] * 10
    val_y = drawn.validation[1]
    batch = source([np.random.default_rng(0)], [0], step=1, evaluation=True)
    assert np.array_equal(batch["labels"][0].numpy(), val_y[[1, 2, 0, 1]])  # evaluation batch 1: 4..7 modulo 3
    # the unlabelled batch is the one an unsupervised run draws from the same generator
    from disentangled.train.batches import MemberBatches

    plain = MemberBatches(data, 4, "cpu")([np.random.default_rng(5)])
    assert torch.equal(source([np.random.default_rng(5)], [0], step=3)["unlabelled"], plain)
    with pytest.raises(ValueError, match="step must be given"):
        source([np.random.default_rng(0)], [0])


def test_shuffled_passes_are_permutations_drawn_from_the_step():
    c = tiny(**{"supervision.num_labelled_samples": 10, "supervision.train_percentage": 0.8, "supervision.shuffle": True})
    source = LabelledBatches.for_runs([c], data_module.get("dummy_data"), "cpu")
    rows = np.concatenate([source.rows(step, 8, 0, shuffle=True) for step in range(4)])  # 16 reads: two passes of 8
    assert sorted(rows[:8]) == list(range(8)) and sorted(rows[8:]) == list(range(8))
    assert not np.array_equal(rows[:8], np.arange(8)) and not np.array_equal(rows[:8], rows[8:])
    assert np.array_equal(rows[4:8], source.rows(1, 8, 0, shuffle=True))  # a function of the step alone


def test_every_example_trains_then_evaluation_reads_the_training_part():
    c = tiny(**{"supervision.train_percentage": 1.0})
    data = data_module.get("dummy_data")
    source = LabelledBatches.for_runs([c], data, "cpu")
    batch = source([np.random.default_rng(0)], [0], step=0, evaluation=True)
    assert np.array_equal(batch["labels"][0].numpy(), labelled_set(c, data).train[1][:4])


# --- training ---------------------------------------------------------------------------------------


def test_run_directory_records_the_labelled_set(tmp_path):
    c = tiny(**{"supervision.labeller": "partial", "supervision.num_observed_factors": 3})
    results = train(c, tmp_path / "run", progress=False)
    assert {"supervised_loss", "reconstruction_loss", "kl_loss", "loss"} <= set(results)
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())["labelled"]
    columns = labelled_set(c, data_module.get("dummy_data")).labels.columns
    assert meta == {"seed": labelled_seed(c), "seed_from": "run seed (SeedSequence spawn key 4)",
                    "labeller": {"name": "partial", "num_observed_factors": 3}, "num_labelled_samples": 10, "num_train": 9,
                    "num_validation": 1, "shuffle": False, "factors": [f"factor{i}" for i in columns], "factor_sizes": [5, 5, 5]}
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["supervision"]["labeller"] == "partial"
    model, config = load_model(tmp_path / "run")  # rebuilt from the configuration alone
    assert config == c and model.num_columns == 3
    codes = representation(tmp_path / "run", "mean")(np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32))
    assert codes.shape == (3, 10)


def test_gamma_sup_zero_trains_the_unsupervised_model(tmp_path):
    """s2_vae with gamma_sup = 0 (the reference's "vae through the S2 library") ends with beta-VAE's weights."""
    s2 = tiny(**{"objective.beta": 4.0, "objective.gamma_sup": 0.0})
    plain = cfg.load(None, ["data.name=dummy_data", "train.steps=4", "train.batch_size=4",
                            "train.checkpoint_every=2", "train.log_every=1", "train.eval_batches=2", "objective.beta=4.0"])
    train(s2, tmp_path / "s2", progress=False)
    train(plain, tmp_path / "plain", progress=False)
    a, b = weights(tmp_path / "s2"), weights(tmp_path / "plain")
    assert {k: v for k, v in a.items() if k.split(".")[0] in ("encoder", "decoder")}.keys() == b.keys()
    for k in b:
        assert torch.equal(a[k], b[k]), k
    assert [r["reconstruction"] for r in log_rows(tmp_path / "s2")] == [r["reconstruction"] for r in log_rows(tmp_path / "plain")]


@pytest.mark.parametrize("overrides", [
    {"objective.name": "s2_mine_vae"},
    {"objective.supervised_loss": "embed", "objective.sigma": "learn", "supervision.shuffle": True},
])
def test_resume_is_bit_for_bit(tmp_path, overrides, crash_after):
    c = tiny(**{"train.steps": 6, "supervision.num_labelled_samples": 7, **overrides})
    train(c, tmp_path / "straight", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path / "resumed", progress=False, data=crash_after(3))
    assert not (tmp_path / "resumed" / "train.done").exists()
    train(c, tmp_path / "resumed", resume=True, progress=False)
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    assert log_rows(tmp_path / "straight") == log_rows(tmp_path / "resumed")
    if overrides.get("objective.name") == "s2_mine_vae":  # the MINE networks' Adam is checkpointed too
        latest = json.loads((tmp_path / "resumed" / "checkpoints" / "latest.json").read_text())["path"]
        state = json.loads((tmp_path / "resumed" / "checkpoints" / latest / "state.json").read_text())
        assert set(state["optimizers"]) == {"vae", "mine"}
        assert state["optimizers"]["mine"]["param_groups"][0]["lr"] == 0.01


@pytest.mark.parametrize("objective, extra", [
    ("s2_vae", {"objective.supervised_loss": "embed", "objective.sigma": "learn"}),
    ("s2_factor_vae", {"objective.supervised_loss": "l2", "objective.train_loss_parameters": True}),
    ("s2_mine_vae", {}),
])
def test_ensemble_members_end_as_separate_runs(tmp_path, objective, extra):
    configs = [tiny(seed=s, **{"objective.name": objective, "objective.gamma_sup": 1.0 + s, **extra}) for s in range(2)]
    runs = [tmp_path / f"m{i}" for i in range(2)]
    out = train_ensemble(configs, runs, progress=False)
    assert all(isinstance(r, dict) for r in out)
    for i, c in enumerate(configs):
        train(c, tmp_path / f"alone{i}", progress=False)
        assert_same_weights(runs[i], tmp_path / f"alone{i}")
        assert log_rows(runs[i]) == log_rows(tmp_path / f"alone{i}")
        ra, rb = (json.loads((d / "train_results.json").read_text()) for d in (runs[i], tmp_path / f"alone{i}"))
        assert {k: v for k, v in ra.items() if k != "elapsed_time"} == {k: v for k, v in rb.items() if k != "elapsed_time"}
    assert json.loads((runs[1] / "metadata.json").read_text())["labelled"]["seed"] == labelled_seed(configs[1])


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["s2_vae", "supervised", "s2_factor_vae", "s2_dip_vae_i", "s2_dip_vae_ii",
                                       "s2_beta_tc_vae", "s2_mine_vae"])
def test_the_reference_training_grid(tmp_path, objective):
    """dlib's train_semi_supervised_test: two-step trainings with n = 100, p = 0.9 and threshold 1 over
    fixed/fine_tune x {xent, l2, cov}, fixed x embed (sigma 1 and learned), fixed x xent x partial (2 factors)."""
    combos = [{"objective.annealer": a, "objective.supervised_loss": loss} for a in ("fixed", "fine_tune")
              for loss in ("xent", "l2", "cov")]
    combos += [{"objective.supervised_loss": "embed", "objective.sigma": s} for s in (1.0, "learn")]
    combos += [{"objective.supervised_loss": "xent", "supervision.labeller": "partial", "supervision.num_observed_factors": 2}]
    for i, combo in enumerate(combos):
        if objective == "supervised":
            combo = {k: v for k, v in combo.items() if k != "objective.annealer"}
        if objective == "s2_mine_vae":
            combo = {k: v for k, v in combo.items() if not k.startswith("objective.") or k == "objective.annealer"}
        c = tiny(**{"objective.name": objective, "train.steps": 2, "supervision.num_labelled_samples": 100,
                    "supervision.train_percentage": 0.9, **({"objective.iteration_threshold": 1}
                                                           if objective != "supervised" else {}), **combo})
        results = train(c, tmp_path / str(i), progress=False)
        assert np.isfinite(results["loss"]) and results["global_step"] == 2


# --- validation on the labelled set ----------------------------------------------------------------


def test_validation_scores_of_perfect_codes():
    from disentangled.train.validation import validation_scores

    # every combination of two factors of 5 values, 4 times: codes equal to the labels are perfectly
    # disentangled, and on a full grid each code shares no information with the other factor: MIG = 1
    grid = np.array([[a, b] for a in range(5) for b in range(5)] * 4, dtype=np.float32)
    assert validation_scores(grid, grid, 80, "mig") == {"mig_validation": pytest.approx(1.0, abs=1e-12)}
    dci = validation_scores(grid, grid, 80, "dci")
    assert set(dci) == {"dci_validation.disentanglement", "dci_validation.completeness",
                        "dci_validation.informativeness_train", "dci_validation.informativeness_test"}
    assert dci["dci_validation.disentanglement"] > 0.9 and dci["dci_validation.informativeness_test"] == 1.0
    assert 0.0 <= validation_scores(grid, grid, 80, "sap")["sap_validation"] <= 1.0


def test_validate_run_writes_one_metric_file_each(tmp_path):
    from disentangled.errors import ParameterError
    from disentangled.train.validation import DEFAULT_FORMS, validate_run

    c = tiny(**{"supervision.num_labelled_samples": 40, "supervision.train_percentage": 0.75, "train.steps": 2})
    train(c, tmp_path / "run", progress=False)
    records = validate_run(tmp_path / "run")
    assert list(records) == list(DEFAULT_FORMS)
    for form, record in records.items():
        path = tmp_path / "run" / "metrics" / "mean" / "validation" / f"{form}_40.json"
        assert record["metric"] == f"{form}_validation"
        assert json.loads(path.read_text()) == record
        assert record["settings"]["num_train"] == 30 and record["seed"] == labelled_seed(c)
        assert all(np.isfinite(v) for v in record["scores"].values())
    assert validate_run(tmp_path / "run") == records  # written once, then read back
    plain = cfg.load(None, ["data.name=dummy_data", "train.steps=1", "train.batch_size=4", "train.eval_batches=0"])
    train(plain, tmp_path / "plain", progress=False)
    with pytest.raises(ParameterError, match="supervision must be given to validate the run"):
        validate_run(tmp_path / "plain")
    # an unsupervised run is validated on the draw a semi-supervised run of its seed and settings trains on
    plain_records = validate_run(tmp_path / "plain", forms=["mig"], supervision={"num_labelled_samples": 12})
    assert plain_records["mig"]["settings"]["num_train"] == 11 and not plain_records["mig"]["settings"]["own_labels"]
    assert (tmp_path / "plain" / "metrics" / "mean" / "validation" / "mig_12.json").is_file()
