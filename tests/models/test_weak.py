"""The weakly-supervised objectives: the reference's aggregation tests, hand-computed
posteriors, the loss against a NumPy transcription, one model and a stack, training.

Exact numbers come from dlib's ``methods/weak/weak_vae_test.py`` (the two Ada masks) or
from closed forms computed in the comments.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from disentangled import config as cfg
from disentangled.models import OBJECTIVES, WeakVAE, build_model, get_objective, stacked
from disentangled.models.objectives.weak import (
    adaptive_mask,
    group_posterior,
    label_mask,
    ml_posterior,
    pair_distance,
)
from disentangled.train import train, train_ensemble
from disentangled.train.loop import build

WEAK = [name for name, cls in OBJECTIVES.items() if cls.batch_kind == "pairs"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def t(values):
    return torch.tensor(values, dtype=torch.float32)


def test_the_four_methods_are_registered():
    assert WEAK == ["group_vae", "ml_vae", "ada_gvae", "ada_ml_vae"]
    assert {n: (OBJECTIVES[n].aggregation, OBJECTIVES[n].selection) for n in WEAK} == {
        "group_vae": ("group", "labels"), "ml_vae": ("ml", "labels"),
        "ada_gvae": ("group", "argmax"), "ada_ml_vae": ("ml", "argmax")}
    assert get_objective("ada_gvae", beta=4).hyperparameters() == {"beta": 4.0}
    with pytest.raises(ValueError, match=r"ada_gvae: beta must be >= 0, got -1"):
        get_objective("ada_gvae", beta=-1)


# --- dlib's weak_vae_test: aggregate_argmax ---------------------------------------------------


def _aggregate_argmax(z_mean, z_logvar, new_mean, new_logvar, delta):
    """The reference's ``aggregate_argmax``: own posterior where delta is in the upper bin."""
    mask = adaptive_mask(delta)
    return torch.where(mask, z_mean, new_mean), torch.where(mask, z_logvar, new_logvar)


def test_reference_case_1_half_the_dimensions_private():
    # zeros as the own posterior, ones as the shared one, delta [0]*5 + [1]*5 (64 x 10): expected [1]*5 + [0]*5
    zeros, ones = torch.zeros(64, 10), torch.ones(64, 10)
    delta = torch.cat([torch.zeros(64, 5), torch.ones(64, 5)], 1)
    target = torch.cat([torch.ones(64, 5), torch.zeros(64, 5)], 1)
    mean, logvar = _aggregate_argmax(zeros, zeros, ones, ones, delta)
    assert torch.equal(mean, target) and torch.equal(logvar, target)


def test_reference_case_2_one_pair_two_dimensions():
    # own [[1, 1]], shared [[0, 0]], delta [[0, 0.1]]: expected [[0, 1]]
    mean, logvar = _aggregate_argmax(t([[1, 1]]), t([[1, 1]]), t([[0, 0]]), t([[0, 0]]), t([[0, 0.1]]))
    assert torch.equal(mean, t([[0, 1]])) and torch.equal(logvar, t([[0, 1]]))


def test_adaptive_threshold_is_the_midpoint_and_equal_deltas_share_everything():
    # min 0, max 4: tau = 2; 2 is at the threshold (bin 1), 1.999 below it
    assert adaptive_mask(t([[0, 1.999, 2, 4]])).tolist() == [[False, False, True, True]]
    assert adaptive_mask(t([[3, 3, 3]])).tolist() == [[False, False, False]]  # 0/0: bin 0, as TF on x86
    assert adaptive_mask(t([[[0, 1], [5, 1]]])).tolist() == [[[False, True], [True, False]]]  # per pair


def test_label_mask_keeps_the_label_dimension_private():
    assert label_mask(torch.tensor([2, 0]), 4).tolist() == [[False, False, True, False], [True, False, False, False]]
    # a label beyond the latent dimensions: the reference's one-hot row is all zero and equals its
    # maximum everywhere, so every dimension stays private
    assert label_mask(torch.tensor([5]), 4).tolist() == [[True, True, True, True]]


# --- the posteriors against hand-computed values -----------------------------------------------


def test_pair_distance_is_twice_the_kl_without_the_half():
    # KL(N(0, 1) || N(1, 2)) = 1/2 (log 2 + (1 + 1) / 2 - 1) = log(2) / 2, so delta = log 2
    d = pair_distance(t([0.0]), t([0.0]), t([1.0]), t([math.log(2.0)]))
    torch.testing.assert_close(d, t([math.log(2.0)]), rtol=0, atol=1e-7)
    m, lv = torch.randn(8, 5, generator=_gen(0)), torch.randn(8, 5, generator=_gen(1))
    assert torch.equal(pair_distance(m, lv, m, lv), torch.zeros(8, 5))


def test_equal_posteriors_are_left_unchanged():
    m, lv = torch.randn(16, 10, generator=_gen(2)), 0.5 * torch.randn(16, 10, generator=_gen(3))
    for posterior in (group_posterior, ml_posterior):
        mean, logvar = posterior(m, lv, m, lv)
        torch.testing.assert_close(mean, m, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(logvar, lv, rtol=1e-6, atol=1e-6)
    assert torch.equal(group_posterior(m, lv, m, lv)[0], m)  # 0.5 m + 0.5 m is exact


def test_group_and_ml_posteriors_of_two_gaussians():
    # N(1, 1) and N(3, 3):
    #   GroupVAE: mean (1 + 3) / 2 = 2, variance (1 + 3) / 2 = 2
    #   ML-VAE:   variance 2 * 1 * 3 / (1 + 3) = 1.5, mean (1 / 1 + 3 / 3) * 1.5 / 2 = 1.5
    m1, lv1, m2, lv2 = t([1.0]), t([0.0]), t([3.0]), t([math.log(3.0)])
    mean, logvar = group_posterior(m1, lv1, m2, lv2)
    torch.testing.assert_close(mean, t([2.0]))
    torch.testing.assert_close(logvar, t([math.log(2.0)]))
    mean, logvar = ml_posterior(m1, lv1, m2, lv2)
    torch.testing.assert_close(mean, t([1.5]))
    torch.testing.assert_close(logvar, t([math.log(1.5)]))


# --- the model's loss against a NumPy transcription --------------------------------------------


def _pairs_batch(b=6, channels=1, size=64, seed=0):
    x = torch.rand(2 * b, channels, size, size, generator=_gen(seed))
    return {"x": x, "label": torch.tensor([i % 3 for i in range(b)])}


def _numpy_terms(model, batch, eps, beta):
    """The loss of dlib's weak model_fn, in NumPy (float64) from the encoder's outputs and the noise."""
    with torch.no_grad():
        mean, logvar = (v.double().numpy() for v in model.encode(batch["x"]))
    b = batch["label"].shape[0]
    m1, m2, lv1, lv2 = mean[:b], mean[b:], logvar[:b], logvar[b:]
    v1, v2 = np.exp(lv1), np.exp(lv2)
    delta = v1 / v2 + (m2 - m1) ** 2 / v2 - 1 + lv2 - lv1
    if model.aggregation == "group":
        new_mean, new_logvar = 0.5 * m1 + 0.5 * m2, np.log(0.5 * v1 + 0.5 * v2)
    else:
        var = 2 * v1 * v2 / (v1 + v2)
        new_mean, new_logvar = (m1 / v1 + m2 / v2) * var * 0.5, np.log(var)
    if model.selection == "labels":
        onehot = np.eye(mean.shape[1])[batch["label"].numpy()]
        mask = onehot == onehot.max(1, keepdims=True)
    else:
        lo, hi = delta.min(1, keepdims=True), delta.max(1, keepdims=True)
        mask = np.clip(np.floor(2 * (delta - lo) / (hi - lo)), 0, 1) == 1
    aggs = [(np.where(mask, m, new_mean), np.where(mask, lv, new_logvar)) for m, lv in ((m1, lv1), (m2, lv2))]
    z = np.concatenate([am + np.exp(alv / 2) * e for (am, alv), e in zip(aggs, np.split(eps, 2))])
    with torch.no_grad():
        logits = model.decode(torch.from_numpy(z).float()).double().numpy()
    x = batch["x"].double().numpy()
    per_image = (np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))).sum((1, 2, 3))
    recon = 0.5 * per_image[:b].mean() + 0.5 * per_image[b:].mean()
    kls = [(0.5 * (am**2 + np.exp(alv) - alv - 1).sum(1)).mean() for am, alv in aggs]
    kl = 0.5 * kls[0] + 0.5 * kls[1]
    return {"reconstruction": recon, "kl": kl, "regularizer": beta * kl, "loss": recon + beta * kl, "elbo": -(recon + kl)}


@pytest.mark.parametrize("name", WEAK)
def test_loss_terms_match_the_numpy_transcription(name):
    torch.manual_seed(0)
    model = build_model(get_objective(name, beta=3.0), observation_shape=(1, 64, 64))
    assert isinstance(model, WeakVAE)
    batch = _pairs_batch()
    terms = model.loss_terms(batch, step=0, generator=_gen(9))
    eps = torch.randn(12, 10, generator=_gen(9)).double().numpy()  # the model's one draw of all 2B codes
    expected = _numpy_terms(model, batch, eps, 3.0)
    for key, value in expected.items():
        assert terms[key].shape == ()
        # float32 against float64: relative 2e-6 on the pixel sums; the fresh model's KL (about 4e-3) is a
        # difference of terms near 1, whose float32 rounding leaves about 1e-8 absolute
        np.testing.assert_allclose(terms[key].item(), value, rtol=2e-6, atol=1e-6, err_msg=key)


def test_the_label_variant_shares_all_but_the_label_dimension():
    torch.manual_seed(0)
    model = build_model(get_objective("group_vae"), observation_shape=(1, 64, 64), architecture="fc")
    batch = _pairs_batch(b=4, seed=3)
    mean, logvar = model.encode(batch["x"])
    agg_mean, agg_logvar = model.aggregate(mean, logvar, batch["label"])
    shared = group_posterior(mean[:4], logvar[:4], mean[4:], logvar[4:])[0]
    for i, lab in enumerate(batch["label"].tolist()):
        others = [j for j in range(10) if j != lab]
        assert torch.equal(agg_mean[i, others], shared[i, others]) and torch.equal(agg_mean[4 + i, others], shared[i, others])
        assert agg_mean[i, lab] == mean[i, lab] and agg_mean[4 + i, lab] == mean[4 + i, lab]
        assert agg_logvar[i, lab] == logvar[i, lab]


def test_a_single_image_batch_is_refused_with_the_key_to_set():
    model = build_model(get_objective("ada_gvae"), observation_shape=(1, 64, 64), architecture="fc")
    with pytest.raises(TypeError, match="set data.pairs"):
        model.loss_terms(torch.rand(4, 1, 64, 64), step=0, generator=_gen())
    mean, _ = model.encode(torch.rand(3, 1, 64, 64))  # the exported encoder is the single-image one
    assert mean.shape == (3, 10)


# --- one model and a stack: forward, backward, bit for bit ---------------------------------------


@pytest.mark.parametrize("name", WEAK)
@pytest.mark.parametrize("arch", ["conv", "fc"])
def test_forward_backward(name, arch):
    torch.manual_seed(0)
    model = build_model(get_objective(name, beta=2.0), observation_shape=(3, 64, 64), architecture=arch)
    terms = model.loss_terms(_pairs_batch(b=4, channels=3), step=1, generator=_gen(1))
    assert set(terms) == {"loss", "reconstruction", "kl", "regularizer", "elbo"}
    assert all(v.shape == () and torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def _tiny(seed, name, beta, k, **overrides):
    base = ["data.name=dummy_data", "train.steps=4", "train.batch_size=4", "train.checkpoint_every=2", "train.log_every=1",
            "train.eval_batches=2", f"objective.name={name}", f"objective.beta={beta}", f"data.pairs.k={k}", f"seed={seed}"]
    return cfg.load(None, base + [f"{k}={v}" for k, v in overrides.items()])


@pytest.mark.parametrize("name", WEAK)
def test_stacked_step_is_bit_for_bit(name):
    """A stack's loss terms and gradients equal each member's alone (different beta)."""
    configs = [_tiny(0, name, 1.5, 1), _tiny(1, name, 6.0, 2)]
    data, models = None, []
    for c in configs:
        data, m = build(c, data)
        models.append(m)
    model = stacked.stack_models(models)
    assert isinstance(model, WeakVAE) and (model.aggregation, model.selection) == (models[0].aggregation, models[0].selection)
    batches = [_pairs_batch(b=4, seed=s) for s in (0, 1)]
    batch = {k: torch.stack([b[k] for b in batches]) for k in ("x", "label")}
    terms = model.loss_terms(batch, step=3, generator=[_gen(0), _gen(1)])
    terms["loss"].sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for i, m in enumerate(models):
        alone = m.loss_terms(batches[i], step=3, generator=_gen(i))
        alone["loss"].backward()
        for k in alone:
            assert torch.equal(alone[k], terms[k][i]), (i, k)
        for n, p in m.named_parameters():
            assert torch.equal(p.grad, grads[n][i]), (i, n)


def _files_equal(a, b):
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    name = json.loads((b / "checkpoints" / "latest.json").read_text())["path"]
    ca = load_file(str(a / "checkpoints" / name / "tensors.safetensors"))
    cb = load_file(str(b / "checkpoints" / name / "tensors.safetensors"))
    assert ca.keys() == cb.keys() and all(torch.equal(ca[k], cb[k]) for k in ca)
    ra, rb = (json.loads((d / "train_results.json").read_text()) for d in (a, b))
    assert {k: v for k, v in ra.items() if k != "elapsed_time"} == {k: v for k, v in rb.items() if k != "elapsed_time"}
    la, lb = ([{k: v for k, v in json.loads(x).items() if k != "elapsed"} for x in (d / "train_log.jsonl").read_text().splitlines()]
              for d in (a, b))
    assert la == lb


def test_ensemble_of_different_beta_k_and_seeds_equals_solo_runs(tmp_path):
    configs = [_tiny(0, "ada_gvae", 1.0, 1), _tiny(1, "ada_gvae", 4.0, -1), _tiny(2, "ada_gvae", 2.0, 3, **{"data.pairs.sampler": "dlib"})]
    out = train_ensemble(configs, [tmp_path / f"e{i}" for i in range(3)], progress=False)
    assert all(isinstance(r, dict) for r in out)
    for i, c in enumerate(configs):
        train(c, tmp_path / f"s{i}", progress=False)
        _files_equal(tmp_path / f"s{i}", tmp_path / f"e{i}")
    saved = json.loads((tmp_path / "e1" / "config.json").read_text())
    assert saved["config"]["data"]["pairs"] == {"sampler": "dlib", "k": -1}


def test_members_with_another_sampler_do_not_stack():
    from disentangled.train.ensemble import check_stackable, stack_key

    a, b = _tiny(0, "ml_vae", 1.0, 1), _tiny(1, "ml_vae", 2.0, 2)
    assert stack_key(a) == stack_key(b)
    with pytest.raises(ValueError, match="data.pairs.sampler"):
        check_stackable([a, _tiny(1, "ml_vae", 2.0, 2, **{"data.pairs.sampler": "paper"})])


def test_resume_after_a_crash_is_bit_for_bit(tmp_path, monkeypatch):
    from disentangled.train import RunConfigMismatch, pair_batches

    c = _tiny(3, "ada_ml_vae", 2.0, -1, **{"train.steps": 6})
    train(c, tmp_path / "straight", progress=False)
    real, calls = pair_batches.sample_pair_factors, {"n": 0}

    def crash_after_five(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(pair_batches, "sample_pair_factors", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(pair_batches, "sample_pair_factors", real)
    assert not (tmp_path / "resumed" / "train.done").exists()
    with pytest.raises(RunConfigMismatch, match="--resume"):
        train(c, tmp_path / "resumed", progress=False)
    train(c, tmp_path / "resumed", resume=True, progress=False)
    _files_equal(tmp_path / "straight", tmp_path / "resumed")


def test_a_weak_run_loads_and_represents_like_any_run(tmp_path):
    from disentangled.train import load_model, representation

    c = _tiny(0, "ada_gvae", 1.0, 2)
    train(c, tmp_path / "run", progress=False)
    model, config = load_model(tmp_path / "run")
    assert isinstance(model, WeakVAE) and config == c
    codes = representation(tmp_path / "run", "mean")(np.random.default_rng(0).random((5, 1, 64, 64), dtype=np.float32))
    assert codes.shape == (5, 10)


# --- the configuration -------------------------------------------------------------------------


def test_config_refuses_a_weak_objective_without_pairs_and_pairs_without_one():
    with pytest.raises(cfg.ConfigError, match=r"data.pairs must be set for objective 'ada_gvae'.*got None; set data.pairs.k=1"):
        cfg.load(None, ["objective.name=ada_gvae"])
    with pytest.raises(cfg.ConfigError, match=r"data.pairs must be unset \(null\) for objective 'beta_vae'.*data.pairs=null"):
        cfg.load(None, ["data.pairs.k=1"])
    with pytest.raises(cfg.ConfigError, match=r"unknown configuration key 'data.pairs.kk'.*Did you mean 'k'"):
        cfg.load(None, ["objective.name=ada_gvae", "data.pairs.kk=1"])
    c = cfg.load(None, ["objective.name=ml_vae", "data.pairs.k=2", "data.pairs.sampler=paper", "objective.beta=4"])
    assert cfg.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert cfg.flatten(c.to_dict())["data.pairs.k"] == 2
    # single observations keep their configuration (and run ids) as before: no pairs key at all
    assert "pairs" not in cfg.load().to_dict()["data"]


# --- training lowers the loss --------------------------------------------------------------------


@pytest.mark.parametrize("name", WEAK)
def test_loss_goes_down(name):
    # Adam steps on one fixed batch of bar-image pairs (the bar moves by one row within a pair)
    # lower the reconstruction loss; the small fc model on 16x16 images keeps this quick.
    torch.manual_seed(0)
    model = build_model(get_objective(name), observation_shape=(1, 16, 16), architecture="fc", num_latent=4)
    x = torch.zeros(20, 1, 16, 16)
    for i in range(10):
        x[i, 0, i : i + 4, 2:14] = 1.0
        x[10 + i, 0, i + 1 : i + 5, 2:14] = 1.0
    batch = {"x": x, "label": torch.zeros(10, dtype=torch.long)}
    opt = torch.optim.Adam(model.vae_parameters(), lr=1e-3)
    g = _gen(0)
    first = model.loss_terms(batch, step=0, generator=g)["reconstruction"].item()
    for step in range(30):
        terms = model.loss_terms(batch, step=step, generator=g)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    last = model.loss_terms(batch, step=30, generator=g)["reconstruction"].item()
    assert last < 0.5 * first


def test_visualize_adds_the_pairs_a_weak_run_trained_on(tmp_path):
    from disentangled.viz import visualize

    c = _tiny(0, "ada_gvae", 1.0, 2, **{"data.pairs.sampler": "paper"})
    train(c, tmp_path / "run", progress=False)
    manifest = visualize(tmp_path / "run", num_animations=1, animations=("fitted_gaussian",), num_frames=2, num_values=2)
    weak = [f for f in manifest["files"] if f.startswith("weak/")]
    assert weak == ["weak/pairs.png", "weak/animation.gif", "weak/pairs.json"]
    record = json.loads((tmp_path / "run" / "visualizations" / "weak" / "pairs.json").read_text())
    assert (record["sampler"], record["k"], len(record["pairs"])) == ("paper", 2, 10)
    assert all(len(p["changed"]) == 2 and p["label"] in p["changed"] for p in record["pairs"])  # paper: exactly k
    from PIL import Image

    with Image.open(tmp_path / "run" / "visualizations" / "weak" / "animation.gif") as gif:
        assert gif.n_frames == 2  # the first images, then the second images
