"""On a GPU: ensembles, batches from the device table, the encoder and evaluation (skipped without CUDA).

These run where a CUDA device is present (``benchmarks/gpu.sh`` runs them first); the
expected values come from the same computation on the CPU: the table lookup and its
float conversion are exact, so batches must be equal bit for bit; a GPU's convolutions
sum in another order, so losses, weights and codes must agree to float32 rounding
(the tolerances of ``docs/ensembles.md``: gradients within about 1e-6 of the largest
entry per step, the evaluation loss within 1e-6 relative after a few steps).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from disentangled.data import cars3d, get
from disentangled.train import train_ensemble
from disentangled.train.batches import MemberBatches
from disentangled.train.represent import representation

from test_batches import SEEDS, write_cars
from test_ensemble import configs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_table_on_the_gpu_gives_the_cpu_batches_exactly(isolated_data_dir):
    write_cars(isolated_data_dir)  # an RGB table with scale 255: the conversion is exercised
    data = get(cars3d.NAME, strict=False)
    gpu = MemberBatches(data, 5, "cuda", table=True, placement="device")
    host = MemberBatches(data, 5, "cuda", table=True, placement="host")
    assert (gpu.via, host.via) == ("table on device", "table in host memory")
    for _ in range(2):
        want = np.stack([data.sample_observations(5, rng=r) for r in [np.random.default_rng(s) for s in SEEDS]])
        for batches in (gpu, host):
            x = batches([np.random.default_rng(s) for s in SEEDS])
            assert x.device.type == "cuda" and x.dtype == torch.float32
            np.testing.assert_array_equal(x.cpu().numpy(), want)


@pytest.mark.parametrize("objective", ["beta_vae", "factor_vae", "beta_tc_vae"])
def test_an_ensemble_on_the_gpu_tracks_its_cpu_twin(tmp_path, objective):
    cs = configs(objective, 2)
    cpu = train_ensemble(cs, [tmp_path / "c0", tmp_path / "c1"], progress=False, device="cpu")
    gpu = train_ensemble(cs, [tmp_path / "g0", tmp_path / "g1"], progress=False, device="cuda")
    for a, b in zip(cpu, gpu):
        assert isinstance(b, dict)
        for key in ("reconstruction_loss", "kl_loss", "loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-5), key
    meta = json.loads((tmp_path / "g0" / "metadata.json").read_text())
    assert meta["device"].startswith("cuda")


def test_codes_encoded_on_the_gpu_match_the_cpu(tmp_path):
    run = tmp_path / "run"
    train_ensemble(configs("beta_vae", 1), [run], progress=False, device="cpu")
    obs = np.random.default_rng(0).random((600, 1, 64, 64), dtype=np.float32)
    for kind in ("mean", "sampled"):
        cpu = representation(run, kind, seed=5)(obs)
        gpu = representation(run, kind, seed=5, device="cuda")(obs)
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)


def test_evaluation_on_the_gpu_records_it(tmp_path):
    from disentangled import evaluate as ev

    run = tmp_path / "run"
    train_ensemble(configs("beta_vae", 1), [run], progress=False, device="cuda")
    small = {"mig": {"num_train": 200}}
    on_gpu = ev.evaluate_run(run, metrics=["mig"], settings=small, device="cuda")
    on_cpu = ev.evaluate_run(run, metrics=["mig"], settings=small, device="cpu", force=True)
    assert on_gpu["mig"]["encoded_on"] == "cuda" and on_cpu["mig"]["encoded_on"] == "cpu"
    assert on_gpu["mig"]["scores"].keys() == on_cpu["mig"]["scores"].keys()
    for key, value in on_cpu["mig"]["scores"].items():
        # the codes agree to about 1e-5 (above); a code that close to a histogram bin's edge may
        # still change bins, which moves MIG by about one sample's share of the information
        assert on_gpu["mig"]["scores"][key] == pytest.approx(value, abs=0.02), key


@pytest.mark.parametrize("rule", ["tf1_adam", "torch_adam"])
def test_one_model_trained_on_the_gpu_tracks_its_cpu_twin(tmp_path, rule):
    from disentangled.rundir import RunDir
    from disentangled.train import train

    from test_ensemble import tiny

    config = tiny(0, "factor_vae", 10.0, **{"train.optimizer": rule})
    cpu = train(config, tmp_path / "cpu", progress=False, device="cpu")
    gpu = train(config, tmp_path / "gpu", progress=False, device="cuda")
    for key in ("reconstruction_loss", "kl_loss", "loss"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-5, abs=1e-5), key
    meta = RunDir(tmp_path / "gpu").metadata()
    assert meta["device"].startswith("cuda:") and meta["gpu"]


def test_a_run_started_on_the_gpu_resumes_on_the_cpu(tmp_path):
    from disentangled.rundir import RunDir
    from disentangled.train import core, train

    from test_ensemble import tiny

    config = tiny(1)
    real, calls = core.Member.checkpoint, {"n": 0}

    def stop_after_first(self, *args, **kwargs):
        real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    core.Member.checkpoint = stop_after_first
    try:
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "run", progress=False, device="cuda")
    finally:
        core.Member.checkpoint = real
    results = train(config, tmp_path / "run", resume=True, progress=False, device="cpu")
    run = RunDir(tmp_path / "run")
    events = [json.loads(x) for x in run.log_file.read_text().splitlines() if "event" in x]
    assert events and events[0]["previous_device"].startswith("cuda:") and events[0]["device"] == "cpu"
    assert run.is_done and np.isfinite(results["loss"])
