"""``train.precision``: float32 by default (run ids and numbers unchanged), bfloat16 as mixed precision."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from disentangled import config as cfg
from disentangled.errors import ParameterError
from disentangled.models.architectures import _OneChannelDeconv
from disentangled.train import train, train_ensemble
from disentangled.train.core import build, training_device

needs_bf16 = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                                reason="this CPU has no oneDNN bfloat16 convolutions")


def tiny(precision="float32", **overrides):
    base = ["data.name=dummy_data", "train.steps=4", "train.batch_size=4", "train.checkpoint_every=2",
            "train.log_every=1", "train.eval_batches=2", f"train.precision={precision}"]
    return cfg.load(None, base + [f"{k}={v}" for k, v in overrides.items()])


def weights(run):
    return load_file(str(Path(run) / "model.safetensors"))


def test_float32_is_the_default_and_keeps_run_ids():
    c = cfg.load()
    assert c.train.precision == "float32"
    assert "precision" not in c.to_dict()["train"]  # so the run ids of every earlier run stay what they were
    assert c.run_id == cfg.load(None, ["train.precision=float32"]).run_id
    b = cfg.load(None, ["train.precision=bfloat16"])
    assert b.to_dict()["train"]["precision"] == "bfloat16" and b.run_id != c.run_id
    assert cfg.from_dict(json.loads(json.dumps(b.to_dict()))) == b


def test_an_unknown_precision_names_the_key():
    with pytest.raises(cfg.ConfigError, match=r"train.precision must be one of \['float32', 'bfloat16'\], got 'fp16'"):
        cfg.load(None, ["train.precision=fp16"])


def test_a_cpu_without_bfloat16_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(ParameterError, match="train.precision=bfloat16 needs a CPU with AVX-512.*train.precision=float32"):
        training_device("cpu", "bfloat16")
    with pytest.raises(ParameterError, match="train.precision=bfloat16"):
        train(tiny("bfloat16"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    assert training_device("cpu", "float32").type == "cpu"


@needs_bf16
def test_networks_compute_in_bfloat16_while_training_and_hand_on_float32():
    c32, c16 = tiny(), tiny("bfloat16")
    _, m32 = build(c32)
    _, m16 = build(c16, None)
    m16.load_state_dict(m32.state_dict())
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    mean32, logvar32 = m32.encoder(x)
    mean16, logvar16 = m16.encoder(x)
    assert mean16.dtype == logvar16.dtype == torch.float32
    # bfloat16 keeps 8 significant bits: the outputs differ, by about its rounding (2^-8 relative), not more
    assert not torch.equal(mean16, mean32)
    assert torch.allclose(mean16, mean32, rtol=0, atol=0.05 * mean32.abs().max().item())
    logits16, logits32 = m16.decoder(mean32), m32.decoder(mean32)
    assert logits16.dtype == torch.float32 and not torch.equal(logits16, logits32)
    assert torch.allclose(logits16, logits32, rtol=0, atol=0.05 * logits32.abs().max().item())
    assert not torch.is_autocast_enabled("cpu")
    # the loss terms and every gradient are float32; the weights stay float32
    terms = m16.loss_terms(x, step=0, generator=torch.Generator().manual_seed(0))
    assert all(v.dtype == torch.float32 for v in terms.values())
    terms["loss"].backward()
    assert all(p.dtype == p.grad.dtype == torch.float32 for p in m16.vae_parameters())
    # in evaluation mode (the post-training evaluation, representations) the model is float32's, bit for bit
    m16.eval(), m32.eval()
    assert all(torch.equal(a, b) for a, b in zip(m16.encoder(x), m32.encoder(x)))


@needs_bf16
def test_a_failing_forward_pass_leaves_autocast():
    _, model = build(tiny("bfloat16"))
    with pytest.raises(RuntimeError):
        model.encoder(torch.rand(4, 3, 64, 64))  # three channels into a one-channel encoder
    assert not torch.is_autocast_enabled("cpu")
    assert model.encoder(torch.rand(4, 1, 64, 64))[0].dtype == torch.float32


@needs_bf16
def test_the_one_channel_layer_computes_in_bfloat16_under_autocast():
    """The product-and-overlap-add layer against ``F.conv_transpose2d`` of the same bfloat16 inputs."""
    g = torch.Generator().manual_seed(1)
    h = torch.rand(2, 32, 32, 32, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = (torch.randn(32, 1, 4, 4, generator=g) * 0.1).requires_grad_()
    bias = torch.randn(1, generator=g).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _OneChannelDeconv.apply(h.bfloat16(), weight, bias)
    assert out.dtype == torch.float32  # the overlap-add and the logits stay float32
    expected = F.conv_transpose2d(h.bfloat16().float(), weight.bfloat16().float(), bias, stride=2, padding=1)
    # the product's four overlapping windows are each rounded to bfloat16 once
    assert torch.allclose(out, expected, rtol=2 ** -7, atol=2 ** -7 * expected.abs().max().item())
    out.sum().backward()
    assert (h.grad.dtype, weight.grad.dtype, bias.grad.dtype) == (torch.float32, torch.float32, torch.float32)
    assert torch.allclose(bias.grad, torch.tensor([float(out.numel())]))


@needs_bf16
def test_bfloat16_training_resumes_bit_for_bit_and_stacks_like_single_runs(tmp_path, crash_after):
    c = tiny("bfloat16", **{"objective.name": "factor_vae"})
    train(c, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path / "b", progress=False, data=crash_after(3))
    train(c, tmp_path / "b", resume=True, progress=False)
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert all(v.dtype == torch.float32 for v in wa.values())
    float32 = tiny(**{"objective.name": "factor_vae"})
    train(float32, tmp_path / "f32", progress=False)
    w32 = weights(tmp_path / "f32")
    assert any(not torch.equal(wa[k], w32[k]) for k in wa)  # the option changes the arithmetic
    # an ensemble of bfloat16 members ends with each member's single-run weights
    configs = [tiny("bfloat16", seed=s, **{"objective.name": "factor_vae"}) for s in (0, 1)]
    train_ensemble(configs, [tmp_path / "e0", tmp_path / "e1"], progress=False)
    we = weights(tmp_path / "e0")
    assert all(torch.equal(wa[k], we[k]) for k in wa)
