"""Ensembles: members end bit for bit as separate runs; checkpoints, resume and failures per member."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from disentangled import config as cfg
from disentangled import data as data_module
from disentangled.models import OBJECTIVES, stacked
from disentangled.train import TrainingDiverged, load_model, train, train_ensemble
from disentangled.train.loop import build

HYPER = {"beta_vae": "beta", "beta_tc_vae": "beta", "factor_vae": "gamma", "dip_vae_i": "lambda_od",
         "dip_vae_ii": "lambda_od", "annealed_vae": "c_max"}
VALUES = [1.5, 4.0, 9.1]


def tiny(seed, objective="beta_vae", value=1.0, **overrides):
    base = ["data.name=dummy_data", "train.steps=4", "train.batch_size=4", "train.checkpoint_every=2",
            "train.log_every=1", "train.eval_batches=2", f"objective.name={objective}", f"seed={seed}",
            f"objective.{HYPER[objective]}={value}"]
    return cfg.load(None, base + [f"{k}={v}" for k, v in overrides.items()])


def configs(objective="beta_vae", n=3, **overrides):
    return [tiny(s, objective, VALUES[s], **overrides) for s in range(n)]


def assert_same_run(a: Path, b: Path, checkpoints=True):
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ra, rb = (json.loads((d / "train_results.json").read_text()) for d in (a, b))
    assert {k: v for k, v in ra.items() if k != "elapsed_time"} == {k: v for k, v in rb.items() if k != "elapsed_time"}
    la, lb = ([{k: v for k, v in json.loads(x).items() if k != "elapsed"} for x in (d / "train_log.jsonl").read_text().splitlines()]
              for d in (a, b))
    assert la == lb
    if checkpoints:  # weights, both Adam states and the generator, in the single-run format
        name = json.loads((b / "checkpoints" / "latest.json").read_text())["path"]
        ca = load_file(str(a / "checkpoints" / name / "tensors.safetensors"))
        cb = load_file(str(b / "checkpoints" / name / "tensors.safetensors"))
        assert ca.keys() == cb.keys()
        for k in ca:
            assert torch.equal(ca[k], cb[k]), k
        sa, sb = (json.loads((d / "checkpoints" / name / "state.json").read_text()) for d in (a, b))
        timing = ("elapsed", "log_bytes")  # wall time, and the log's length that its digits change
        assert {k: v for k, v in sa.items() if k not in timing} == {k: v for k, v in sb.items() if k not in timing}


@pytest.fixture(scope="module")
def separate(tmp_path_factory):
    """Each configuration trained alone by ``train()``, once for the module."""
    root = tmp_path_factory.mktemp("separate")
    done = {}

    def get(objective, seed, **overrides):
        key = (objective, seed, tuple(sorted(overrides.items())))
        if key not in done:
            run = root / f"{objective}_{seed}_{len(done)}"
            train(tiny(seed, objective, VALUES[seed], **overrides), run, progress=False)
            done[key] = run
        return done[key]

    return get


# --- equivalence -------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["beta_vae", "factor_vae"])
def test_members_end_as_separate_runs(tmp_path, separate, objective):
    n = 2
    runs = [tmp_path / f"m{i}" for i in range(n)]
    out = train_ensemble(configs(objective, n), runs, progress=False)
    assert all(isinstance(r, dict) for r in out)
    for i, run in enumerate(runs):
        for name in ("config.json", "metadata.json", "train_log.jsonl", "model.safetensors", "train_results.json", "train.done"):
            assert (run / name).is_file(), name
        assert_same_run(run, separate(objective, i))
    meta = json.loads((runs[0] / "metadata.json").read_text())
    assert meta["ensemble"] == {"size": n} and meta["device"] == "cpu"
    # a finished ensemble is not trained again; its members load like any run
    assert train_ensemble(configs(objective, n), runs, progress=False) == out
    model, config = load_model(runs[1])
    assert config == configs(objective, n)[1]


# objectives on single images; those on other batches (pairs: tests/models/test_weak.py) test their own stacks
@pytest.mark.parametrize("objective", [name for name, cls in OBJECTIVES.items() if cls.batch_kind == "images"])
def test_stacked_step_is_bit_for_bit(objective):
    """Loss terms and gradients of a stack equal those of each model alone, for every objective."""
    cs = configs(objective, 2)
    data, models = None, []
    for c in cs:
        data, m = build(c, data)
        models.append(m)
    model = stacked.stack_models(models)
    x = torch.rand(2, 4, *data.observation_shape, generator=torch.Generator().manual_seed(0))
    terms = model.loss_terms(x, step=3, generator=[torch.Generator().manual_seed(i) for i in range(2)])
    (terms["loss"].sum() + terms.get("discriminator_loss", torch.zeros(2)).sum()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for i, m in enumerate(models):
        alone = m.loss_terms(x[i], step=3, generator=torch.Generator().manual_seed(i))
        (alone["loss"] + alone.get("discriminator_loss", 0)).backward()
        for k in alone:
            assert torch.equal(alone[k], terms[k][i]), (i, k)
        for n, p in m.named_parameters():
            assert torch.equal(p.grad, grads[n][i]), (i, n)


def test_gpu_kernels_agree_within_tolerance(monkeypatch):
    """The grouped/batched kernels a GPU runs, here on the CPU: equal to float32 rounding."""
    data, models = None, []
    for c in configs("beta_tc_vae", 2):
        data, m = build(c, data)
        models.append(m)
    x = torch.rand(2, 4, *data.observation_shape, generator=torch.Generator().manual_seed(0))
    results = []
    for batched in (False, True):
        monkeypatch.setattr(stacked, "BATCHED_ON_CPU", batched)
        model = stacked.stack_models(models)
        terms = model.loss_terms(x, step=0, generator=[torch.Generator().manual_seed(i) for i in range(2)])
        terms["loss"].sum().backward()
        results.append((terms, {n: p.grad for n, p in model.named_parameters()}))
    (t0, g0), (t1, g1) = results
    for k in t0:
        torch.testing.assert_close(t0[k], t1[k], rtol=1e-5, atol=1e-5)
    for n in g0:
        scale = g0[n].abs().max()
        assert (g0[n] - g1[n]).abs().max() <= 1e-4 * scale + 1e-12, n


def test_training_with_the_gpu_kernels_stays_close(tmp_path, separate, monkeypatch):
    monkeypatch.setattr(stacked, "BATCHED_ON_CPU", True)
    runs = [tmp_path / "m0", tmp_path / "m1"]
    train_ensemble(configs("beta_vae", 2), runs, progress=False)
    for i, run in enumerate(runs):
        wa = load_file(str(run / "model.safetensors"))
        wb = load_file(str(separate("beta_vae", i) / "model.safetensors"))
        for k in wa:  # float32 rounding, which Adam can turn into up to lr (1e-4) per step where a gradient is ~0
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-3, atol=4e-4)


def test_members_that_cannot_stack_are_refused(tmp_path):
    mixed = [tiny(0), tiny(1, **{"train.batch_size": 8}), tiny(2, "beta_tc_vae")]
    with pytest.raises(ValueError, match=r"these differ: objective.name, train.batch_size"):
        train_ensemble(mixed, [tmp_path / str(i) for i in range(3)], progress=False)
    with pytest.raises(ValueError, match="own run directory"):
        train_ensemble(configs(n=2), [tmp_path / "a", tmp_path / "a"], progress=False)


# --- checkpoints, resume, failures -------------------------------------------------------


class _Draws:
    """A data set that counts draws: NaN images on some, or a crash (KeyboardInterrupt) at one."""

    def __init__(self, inner, *, nan_at=(), crash_at=None):
        self.inner, self.nan_at, self.crash_at, self.n = inner, set(nan_at), crash_at, 0
        self.observation_shape = inner.observation_shape

    def describe(self):
        return self.inner.describe()

    def sample_observations(self, size, *, rng):
        if self.n == self.crash_at:
            raise KeyboardInterrupt("simulated crash")
        obs = self.inner.sample_observations(size, rng=rng)
        self.n += 1
        return obs * np.nan if self.n - 1 in self.nan_at else obs


def test_resume_after_a_crash_with_members_at_different_steps(tmp_path, separate):
    cs = configs("annealed_vae", 2, **{"objective.iteration_threshold": 3})
    runs = [tmp_path / f"m{i}" for i in range(2)]
    # the members draw in turn each step: the crash comes during the third step (after the step-2 checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(cs, runs, progress=False, data=_Draws(data_module.get("dummy_data"), crash_at=5))
    assert all(json.loads((r / "checkpoints" / "latest.json").read_text())["step"] == 2 for r in runs)
    shutil.rmtree(runs[0] / "checkpoints")  # member 0 lost its checkpoint: it restarts at step 0 and catches up
    with pytest.raises(Exception, match="--resume"):
        train_ensemble(cs, runs, progress=False)
    out = train_ensemble(cs, runs, resume=True, progress=False)
    assert all(isinstance(r, dict) for r in out)
    for i, run in enumerate(runs):
        assert_same_run(run, separate("annealed_vae", i, **{"objective.iteration_threshold": 3}))


def test_a_member_resumes_alone_with_train(tmp_path, separate):
    cs = configs("beta_vae", 2)
    runs = [tmp_path / "m0", tmp_path / "m1"]
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(cs, runs, progress=False, data=_Draws(data_module.get("dummy_data"), crash_at=5))
    train(cs[1], runs[1], resume=True, progress=False)
    assert_same_run(runs[1], separate("beta_vae", 1))


def test_diverging_members_fail_and_the_others_go_on(tmp_path, separate):
    cs = configs("beta_vae", 3)
    runs = [tmp_path / f"m{i}" for i in range(3)]
    # member 1's batch of step 2 (draw 2 * 3 + 1) is NaN; then, among the two left, member 2's of step 3 (draw 10)
    out = train_ensemble(cs, runs, progress=False, data=_Draws(data_module.get("dummy_data"), nan_at=[7, 10]))
    assert isinstance(out[0], dict) and not (runs[0] / "failed.json").exists()
    assert_same_run(runs[0], separate("beta_vae", 0))
    for i, step in ((1, 2), (2, 3)):
        assert isinstance(out[i], TrainingDiverged) and f"step {step}" in str(out[i])
        failed = json.loads((runs[i] / "failed.json").read_text())
        assert failed["step"] == step and failed["status"] == "failed" and failed["last_checkpoint"] == "step_000000002"
        assert (runs[i] / "checkpoints" / "step_000000002" / "tensors.safetensors").is_file()
        assert not (runs[i] / "train.done").exists()
        # the failed member retries from its last checkpoint, as train() would
        train(cs[i], runs[i], resume=True, progress=False)
        assert_same_run(runs[i], separate("beta_vae", i))


# --- more members than are stacked at once; batches through the image table ----------------


def test_more_members_than_the_cap_train_as_consecutive_ensembles(tmp_path, separate):
    runs = [tmp_path / f"m{i}" for i in range(3)]
    out = train_ensemble(configs("beta_vae", 3), runs, progress=False, max_members=2)
    assert all(isinstance(r, dict) for r in out)
    for i, run in enumerate(runs):
        assert_same_run(run, separate("beta_vae", i))
    sizes = [json.loads((r / "metadata.json").read_text())["ensemble"]["size"] for r in runs]
    assert sizes == [2, 2, 1]
    with pytest.raises(ValueError, match="max_members"):
        train_ensemble(configs("beta_vae", 2), [tmp_path / "x0", tmp_path / "x1"], progress=False, max_members=0)


class _Table(data_module.base.GroundTruthData):
    """Twenty stored 64x64 byte images over a 4 x 5 grid: an observation is a lookup."""

    name = "table_data"
    space = data_module.base.FactorSpace(("a", "b"), (4, 5))
    latent = (0, 1)
    observation_shape = (1, 64, 64)
    images = np.random.default_rng(7).integers(0, 256, (20, 64, 64), dtype=np.uint8)

    def _render(self, full, *, rng):
        return data_module.base.as_unit_float(self.images[self.space.index(full)][:, None], 255)

    def image_table(self):
        return self.images, 255.0


def test_batches_through_the_image_table_change_nothing(tmp_path):
    cs = configs("beta_vae", 2)
    a, b = [tmp_path / "a0", tmp_path / "a1"], [tmp_path / "b0", tmp_path / "b1"]
    train_ensemble(cs, a, progress=False, data=_Table(), table=False)
    train_ensemble(cs, b, progress=False, data=_Table(), table=True)
    for x, y in zip(a, b):
        assert_same_run(x, y)
