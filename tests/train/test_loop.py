"""The training loop: configs, checkpoints, bit-for-bit resume, failure, representations."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from disentangled import config as cfg
from disentangled.train import RunConfigMismatch, TrainingDiverged, representation, train


def tiny(**overrides):
    base = ["data.name=dummy_data", "train.steps=6", "train.batch_size=4", "train.checkpoint_every=2",
            "train.log_every=1", "train.eval_batches=2"]
    return cfg.load(None, base + [f"{k}={v}" for k, v in overrides.items()])


def weights(run_dir):
    return load_file(str(Path(run_dir) / "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# --- configuration -----------------------------------------------------------------------


def test_defaults_are_the_study_settings():
    c = cfg.load()
    assert (c.train.steps, c.train.batch_size, c.train.lr, c.train.beta1, c.train.beta2, c.train.eps) == (
        300_000, 64, 1e-4, 0.9, 0.999, 1e-8)
    assert (c.model.architecture, c.model.num_latent, c.model.reconstruction, c.model.kernel_size_34) == ("conv", 10, "bernoulli", 2)
    assert c.objective == {"name": "beta_vae", "beta": 1.0}


def test_overrides_and_run_id():
    c = cfg.load(None, ["objective.name=beta_tc_vae", "objective.beta=6", "train.steps=500", "seed=3"])
    assert c.objective == {"name": "beta_tc_vae", "beta": 6.0} and c.train.steps == 500 and c.seed == 3
    assert c.run_id == cfg.load(None, ["seed=3", "train.steps=500", "objective.name=beta_tc_vae", "objective.beta=6"]).run_id
    assert c.run_id != cfg.load(None, ["objective.name=beta_tc_vae", "objective.beta=6", "train.steps=500", "seed=4"]).run_id


def test_yaml_file_and_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 2\nobjective: {name: annealed_vae, c_max: 5}\ntrain: {steps: 10, lr: 1e-3}\n")
    c = cfg.load(path, ["objective.gamma=100"])
    assert c.objective["c_max"] == 5 and c.objective["gamma"] == 100 and c.train.lr == 1e-3
    assert cfg.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("override, message", [
    (["objective.beta=-1"], r"beta must be >= 0, got -1"),
    (["train.steps=0"], r"train.steps must be >= 1, got 0"),
    (["train.batch_size=1"], r"train.batch_size must be >= 2 .*two samples.*got 1"),
    (["trian.steps=3"], r"unknown configuration key 'trian'.*Did you mean 'train'"),
    (["train.step=3"], r"unknown configuration key 'train.step'.*Did you mean 'steps'"),
    (["objective.name=beta_tcvae"], r"unknown objective 'beta_tcvae'.*Did you mean 'beta_tc_vae'"),
    (["data.name=dsprite"], r"unknown data set 'dsprite'"),
    (["train.steps"], r"key=value"),
])
def test_bad_configs_name_the_field(override, message):
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load(None, override)


# --- training ----------------------------------------------------------------------------


def test_run_directory_explains_itself(tmp_path):
    run = tmp_path / "run"
    results = train(tiny(), run, progress=False)
    for name in ("config.json", "metadata.json", "train_log.jsonl", "model.safetensors", "train_results.json", "train.done"):
        assert (run / name).is_file(), name
    assert set(results) >= {"loss", "reconstruction_loss", "kl_loss", "elbo", "regularizer", "elapsed_time"}
    np.testing.assert_allclose(results["elbo"], -(results["reconstruction_loss"] + results["kl_loss"]), rtol=1e-6)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["data"]["name"] == "dummy_data" and meta["torch_version"] == torch.__version__
    # a finished run is not trained again
    assert train(tiny(), run, progress=False) == results


def test_same_config_same_weights(tmp_path):
    train(tiny(), tmp_path / "a", progress=False)
    train(tiny(), tmp_path / "b", progress=False)
    assert_same_weights(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("objective", ["beta_vae", "factor_vae", "annealed_vae"])
def test_resume_is_bit_for_bit(tmp_path, objective, crash_after):
    c = tiny(**{"objective.name": objective})
    train(c, tmp_path / "straight", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path / "resumed", progress=False, data=crash_after(5))
    assert not (tmp_path / "resumed" / "train.done").exists()
    with pytest.raises(RunConfigMismatch, match="--resume"):
        train(c, tmp_path / "resumed", progress=False)
    train(c, tmp_path / "resumed", resume=True, progress=False)
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    a = [json.loads(x) for x in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in a] == [(r["step"], r["loss"]) for r in b]


def test_resume_with_another_config_lists_the_keys(tmp_path):
    train(tiny(), tmp_path / "run", progress=False)
    with pytest.raises(RunConfigMismatch, match=r"objective.beta, train.steps"):
        train(tiny(**{"objective.beta": 4, "train.steps": 8}), tmp_path / "run", resume=True, progress=False)


class _NaNAt:
    def __init__(self, inner, n):
        self.inner, self.n = inner, n
        self.observation_shape = inner.observation_shape

    def describe(self):
        return self.inner.describe()

    def sample_observations(self, size, *, rng):
        obs = self.inner.sample_observations(size, rng=rng)
        self.n -= 1
        return obs * np.nan if self.n < 0 else obs


def test_non_finite_loss_marks_the_run_failed(tmp_path):
    from disentangled import data

    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="step 3"):
        train(tiny(), run, progress=False, data=_NaNAt(data.get("dummy_data"), 3))
    failed = json.loads((run / "failed.json").read_text())
    assert failed["step"] == 3 and failed["last_checkpoint"] == "step_000000002"
    assert (run / "checkpoints" / "step_000000002" / "tensors.safetensors").is_file()
    assert not (run / "train.done").exists()


def test_representations(tmp_path):
    run = tmp_path / "run"
    train(tiny(), run, progress=False)
    obs = np.random.default_rng(0).random((5, 1, 64, 64), dtype=np.float32)
    mean = representation(run, "mean")(obs)
    assert mean.shape == (5, 10) and mean.dtype == np.float32
    np.testing.assert_array_equal(mean, representation(run, "mean")(obs))
    s1, s2 = representation(run, "sampled", seed=1)(obs), representation(run, "sampled", seed=1)(obs)
    np.testing.assert_array_equal(s1, s2)
    assert not np.allclose(s1, mean)


def test_sampled_noise_is_one_stream_in_request_order(tmp_path, monkeypatch):
    from disentangled.train import represent

    run = tmp_path / "run"
    train(tiny(), run, progress=False)
    obs = np.random.default_rng(1).random((70, 1, 64, 64), dtype=np.float32)
    whole = representation(run, "sampled", seed=4)(obs)
    # the draw, written out: mean + exp(logvar / 2) * eps, eps the first rows of one (NOISE_BLOCK, D) draw
    model, _ = represent.load_model(run)
    with torch.no_grad():
        mean, logvar = model.encode(torch.as_tensor(obs))
    eps = torch.randn((represent.NOISE_BLOCK, 10), generator=torch.Generator().manual_seed(4))[:70]
    np.testing.assert_allclose(whole, (mean + torch.exp(logvar / 2) * eps).numpy(), rtol=0, atol=1e-6)
    # however the rows are split into calls, and across blocks of noise, each row gets the same draw
    monkeypatch.setattr(represent, "NOISE_BLOCK", 16)
    features = represent.GaussianEncoder(model).features(obs)
    one_call = represent.Representation(model, "sampled", seed=4).finish(features)
    split = represent.Representation(model, "sampled", seed=4)
    parts = np.concatenate([split.finish(features[:3]), split.finish(features[3:40]), split.finish(features[40:])])
    np.testing.assert_array_equal(parts, one_call)
    eps16 = torch.randn((80, 10), generator=torch.Generator().manual_seed(4))  # five blocks of 16 rows
    np.testing.assert_allclose(parts, (mean + torch.exp(logvar / 2) * eps16[:70]).numpy(), rtol=0, atol=1e-6)


def test_mean_codes_do_not_depend_on_the_batch(tmp_path):
    """On one thread the dense layer's product rounds otherwise for 1-3 rows; a last batch that
    small is padded (train.represent.MIN_BATCH), so every split gives the codes of one batch of 64."""
    from disentangled.train.represent import GaussianEncoder, load_model

    run = tmp_path / "run"
    train(tiny(), run, progress=False)
    model, _ = load_model(run)
    obs = np.random.default_rng(2).random((64, 1, 64, 64), dtype=np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = GaussianEncoder(model, batch_size=64)(obs)
        for size in (1, 2, 3, 5, 17, 32):
            split = GaussianEncoder(model, batch_size=size)
            parts = [split(obs[i : i + size]) for i in range(0, 64, size)]
            for k in range(2):
                np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k], err_msg=f"batches of {size}")
    finally:
        torch.set_num_threads(threads)


def test_both_representations_are_served_from_one_encoding_cache(tmp_path):
    from disentangled import data
    from disentangled.metrics.sampling import Encoder, EncodingCache, resolve_cache, sample_codes
    from disentangled.train.represent import GaussianEncoder, Representation, load_model

    run = tmp_path / "run"
    train(tiny(), run, progress=False)
    model, _ = load_model(run)
    sprites = data.get("dsprites_full", source="procedural")
    gaussian = GaussianEncoder(model)
    mean_rep, sampled_rep = Representation(model, "mean", encoder=gaussian), Representation(model, "sampled", seed=2, encoder=gaussian)
    cache = resolve_cache(sprites, sampled_rep)
    assert isinstance(cache, EncodingCache) and resolve_cache(sprites, mean_rep, cache) is cache
    mean, factors = sample_codes(sprites, mean_rep, 300, rng=np.random.RandomState(0), cache=cache)
    encoded = cache.num_encoded
    assert 0 < encoded <= 300
    sampled, factors_again = sample_codes(sprites, sampled_rep, 300, rng=np.random.RandomState(0), cache=cache)
    assert cache.num_encoded == encoded  # the sampled codes came from the mean's encoding
    np.testing.assert_array_equal(factors, factors_again)
    # the same codes as each representation computed image by image, without a cache
    direct_mean, _ = sample_codes(sprites, Representation(model, "mean"), 300, rng=np.random.RandomState(0), cache=False)
    direct_sampled, _ = sample_codes(sprites, Representation(model, "sampled", seed=2), 300, rng=np.random.RandomState(0), cache=False)
    np.testing.assert_allclose(mean, direct_mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sampled, direct_sampled, rtol=0, atol=1e-6)
    assert np.abs(sampled - mean).mean() > 0.1
    # a sampled request is drawn once: asking for the codes again gives the same rows
    enc = Encoder(sprites, sampled_rep, cache=cache)
    enc.add(factors[:10], np.random.RandomState(0))
    np.testing.assert_array_equal(enc.codes(), enc.codes())
    # another model's representation cannot use this cache
    with pytest.raises(ValueError, match="one data set and one representation"):
        Encoder(sprites, Representation(model, "sampled"), cache=cache)


def test_loss_goes_down(tmp_path):
    c = cfg.load(None, ["data.name=dsprites_full", "data.source=procedural", "train.steps=150",
                        "train.log_every=10", "train.eval_batches=1", "train.checkpoint_every=1000"])
    train(c, tmp_path / "run", progress=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    first, last = np.mean([r["loss"] for r in log[:3]]), np.mean([r["loss"] for r in log[-3:]])
    # a 64x64 binary sprite starts at ~4096 ln 2 = 2839 nats and drops fast as the decoder learns the black background
    assert first > 1500 and last < 0.5 * first


@pytest.mark.slow
def test_sigkill_midway_then_resume_matches(tmp_path):
    """The issue's check: a CLI run killed with SIGKILL midway and resumed ends with the same weights."""
    args = ["data.name=dsprites_full", "data.source=procedural", "train.steps=120", "train.checkpoint_every=10",
            "train.log_every=10", "train.eval_batches=2", "objective.name=beta_tc_vae", "objective.beta=6"]
    exe = [sys.executable, "-m", "disentangled"]
    subprocess.run(exe + ["train", *args, "--out", str(tmp_path / "straight"), "--no-progress"], check=True)
    proc = subprocess.Popen(exe + ["train", *args, "--out", str(tmp_path / "killed"), "--no-progress"])
    latest = tmp_path / "killed" / "checkpoints" / "latest.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (latest.exists() and json.loads(latest.read_text())["step"] >= 50):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "train.done").exists()
    subprocess.run(exe + ["train", *args, "--out", str(tmp_path / "killed"), "--resume", "--no-progress"], check=True)
    assert_same_weights(tmp_path / "straight", tmp_path / "killed")


def test_representation_devices(tmp_path, monkeypatch):
    from disentangled.train.represent import resolve_device

    run = tmp_path / "run"
    train(tiny(), run, progress=False)
    obs = np.random.default_rng(0).random((300, 1, 64, 64), dtype=np.float32)  # more than one encoding batch
    # the CPU named explicitly gives the default's codes
    for kind in ("mean", "sampled"):
        base = representation(run, kind, seed=3)(obs)
        np.testing.assert_array_equal(base, representation(run, kind, seed=3, device="cpu")(obs))
    assert resolve_device(None).type == "cpu"
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'; devices here: cpu"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N', got 'not a device'"):
        resolve_device("not a device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device must be one of the devices here \(cpu\), got 'cuda'"):
        representation(run, "mean", device="cuda")
