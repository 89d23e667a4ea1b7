"""The training core: the reference's Adam through the public API, devices, metadata, old run directories."""

import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from disentangled import config as cfg
from disentangled import memory
from disentangled.cli import main
from disentangled.rundir import RunDir
from disentangled.train import core, train, train_ensemble


def tiny(*extra):
    base = ["data.name=dummy_data", "train.steps=5", "train.batch_size=4", "train.checkpoint_every=2",
            "train.log_every=1", "train.eval_batches=1"]
    return cfg.load(None, base + list(extra))


def tf1_adam_numpy(p, g, m, v, t, lr, beta1, beta2, eps):
    """TensorFlow 1's ApplyAdam in float32, written out (t: the 1-based update; the powers as float32 products)."""
    f = np.float32
    b1p, b2p = f(1), f(1)
    for _ in range(t):
        b1p, b2p = f(b1p * f(beta1)), f(b2p * f(beta2))
    alpha = f(f(lr) * np.sqrt(f(1) - b2p)) / (f(1) - b1p)
    m = m + (g - m) * (f(1) - f(beta1))
    v = v + (g * g - v) * (f(1) - f(beta2))
    return p - (m * f(alpha)) / (np.sqrt(v) + f(eps)), m, v


@pytest.mark.parametrize("objective", ["beta_vae", "factor_vae"])
def test_default_training_is_tf1_adam_on_the_public_model(tmp_path, objective):
    """train() equals the public model stepped by hand with the TF1 rule written in NumPy (both networks)."""
    config = tiny(f"objective.name={objective}")
    assert config.train.optimizer == "tf1_adam"
    train(config, tmp_path / "run", progress=False)

    data, model = core.build(config)
    s = core.seeds(config)
    rng, generator = np.random.default_rng(s["data"]), torch.Generator().manual_seed(s["sampling"])
    groups = {"vae": (list(model.vae_parameters()), config.train)}
    if model.discriminator is not None:
        groups["discriminator"] = (list(model.discriminator_parameters()), config.build_objective().discriminator_optimizer)
    moments = {name: [(np.zeros(p.shape, np.float32), np.zeros(p.shape, np.float32)) for p in ps]
               for name, (ps, _) in groups.items()}
    for step in range(config.train.steps):
        x = torch.from_numpy(data.sample_observations(config.train.batch_size, rng=rng))
        terms = model.loss_terms(x, step=step, generator=generator)
        model.zero_grad(set_to_none=True)
        terms["loss"].backward()
        grads = {"vae": [p.grad.numpy().copy() for p in groups["vae"][0]]}
        if "discriminator" in groups:
            model.zero_grad(set_to_none=True)
            terms["discriminator_loss"].backward()
            grads["discriminator"] = [p.grad.numpy().copy() for p in groups["discriminator"][0]]
        with torch.no_grad():
            for name, (ps, settings) in groups.items():
                for i, (p, g) in enumerate(zip(ps, grads[name])):
                    m, v = moments[name][i]
                    new, m, v = tf1_adam_numpy(p.numpy(), g, m, v, step + 1, settings.lr, settings.beta1,
                                               settings.beta2, settings.eps)
                    moments[name][i] = (m, v)
                    p.copy_(torch.from_numpy(new))
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))
    for key, value in model.state_dict().items():
        assert torch.equal(trained[key], value), key


def test_the_two_rules_differ_and_are_recorded(tmp_path):
    a, b = tiny(), tiny("train.optimizer=torch_adam")
    assert a.run_id != b.run_id
    train(a, tmp_path / "tf1", progress=False)
    train(b, tmp_path / "torch", progress=False)
    wa, wb = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("tf1", "torch"))
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert RunDir(tmp_path / "tf1").metadata()["optimizer"] == "tf1_adam"
    assert RunDir(tmp_path / "torch").metadata()["optimizer"] == "torch_adam"


def test_torch_rule_ensemble_equals_solo_runs(tmp_path):
    configs = [tiny("objective.name=factor_vae", "train.optimizer=torch_adam", f"seed={s}", f"objective.gamma={g}")
               for s, g in ((0, 10.0), (1, 30.0))]
    train_ensemble(configs, [tmp_path / "m0", tmp_path / "m1"], progress=False)
    for i, c in enumerate(configs):
        train(c, tmp_path / f"solo{i}", progress=False)
        wa, wb = (load_file(str(tmp_path / d / "model.safetensors")) for d in (f"m{i}", f"solo{i}"))
        for k in wa:
            assert torch.equal(wa[k], wb[k]), k


def test_unknown_optimizer_suggests_the_close_match():
    with pytest.raises(cfg.ConfigError, match=r"train.optimizer.*'tf1adam'.*Did you mean 'tf1_adam'"):
        tiny("train.optimizer=tf1adam")


def test_metadata_records_the_device_used(tmp_path):
    train(tiny(), tmp_path / "run", progress=False, device="cpu")
    meta = RunDir(tmp_path / "run").metadata()
    assert meta["device"] == "cpu" and "gpu" not in meta


def test_resuming_on_another_device_is_noted(tmp_path, monkeypatch):
    """A run whose metadata says it started on a GPU resumes on the CPU, and its log and metadata say so."""
    config = tiny()
    train(config, tmp_path / "straight", progress=False)
    calls = {"n": 0}
    real = core.Member.checkpoint

    def crash_after_first(self, *args, **kwargs):
        real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # as if the process were stopped after the step-2 checkpoint

    monkeypatch.setattr(core.Member, "checkpoint", crash_after_first)
    run = RunDir(tmp_path / "moved")
    with pytest.raises(KeyboardInterrupt):
        train(config, run.path, progress=False)
    monkeypatch.setattr(core.Member, "checkpoint", real)
    run.update_metadata(device="cuda:0")  # where it had started
    train(config, run.path, resume=True, progress=False)

    log = [json.loads(line) for line in run.log_file.read_text().splitlines()]
    events = [r for r in log if "event" in r]
    assert events == [{"event": "resumed", "step": 2, "device": "cpu", "previous_device": "cuda:0"}]
    assert [r["step"] for r in log if "event" not in r] == [1, 2, 3, 4, 5]
    meta = run.metadata()
    assert meta["device"] == "cpu" and meta["devices"] == [{"step": 0, "device": "cuda:0"}, {"step": 2, "device": "cpu"}]
    wa, wb = load_file(str(run.weights_file)), load_file(str(tmp_path / "straight" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_run_directories_from_before_the_optimizer_key_keep_their_rule(tmp_path):
    config = tiny("train.optimizer=torch_adam")
    run = RunDir(tmp_path / "old")
    run.claim(config, resume=False)
    saved = json.loads(run.config_file.read_text())
    del saved["config"]["train"]["optimizer"]
    run.config_file.write_text(json.dumps(saved))
    assert run.config().train.optimizer == "torch_adam"
    assert run.claim(config, resume=True) is False  # the same configuration: resumable


@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_train_on_a_missing_device_names_the_devices_here(tmp_path, capsys, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "data.name=dummy_data", "train.steps=2", "--out", str(tmp_path / "r"), "--device", device,
              "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"device must be one of the devices here (cpu), got '{device}'" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_train_command_on_the_cpu(tmp_path, capsys):
    main(["train", "data.name=dummy_data", "train.steps=2", "train.batch_size=4", "train.eval_batches=1",
          "--out", str(tmp_path / "r"), "--device", "cpu", "--no-progress"])
    assert "2 steps on cpu" in " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert RunDir(tmp_path / "r").is_done and RunDir(tmp_path / "r").metadata()["device"] == "cpu"


def _faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_training_steps_reuse_their_memory(tmp_path, monkeypatch):
    # both drivers set the allocator up before the first step ...
    calls = []
    from disentangled.train import ensemble, loop

    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(ensemble, "keep_freed_memory", lambda: calls.append(1) or True)
    train(tiny(), tmp_path / "solo", progress=False)
    train_ensemble([tiny(), tiny("seed=1")], [tmp_path / "a", tmp_path / "b"], progress=False)
    assert len(calls) == 2
    monkeypatch.undo()
    # ... after which a step of the study's conv VAE at batch 64 page-faults nothing in: without it, glibc
    # hands its 8 MiB activations back to the system at every step and about 8,700 pages come back
    assert memory.keep_freed_memory() is True
    config = cfg.load(None, ["data.name=dummy_data", "train.batch_size=64"])
    _, model = core.build(config)
    optimizers = core.make_optimizers(config, model)
    x, generator = torch.rand(64, 1, 64, 64), torch.Generator().manual_seed(0)
    for _ in range(3):
        core.update(model, optimizers, model.loss_terms(x, step=0, generator=generator))
    before = _faults()
    for _ in range(3):
        core.update(model, optimizers, model.loss_terms(x, step=0, generator=generator))
    assert (_faults() - before) / 3 < 200


def test_allocator_setting_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(memory, "_TUNED", None)
    monkeypatch.setenv("DISENTANGLED_DEFAULT_MALLOC", "1")
    assert memory.keep_freed_memory() is False
