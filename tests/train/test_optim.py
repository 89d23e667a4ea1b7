"""Adam update rules: TF1Adam against a NumPy transcription of TensorFlow 1's float32 update,
TorchAdam against torch.optim.Adam, stacked updates against per-member optimisers, state dicts."""

import copy
import math

import numpy as np
import pytest
import torch

from disentangled.models.objectives.base import AdamSettings
from disentangled.train.optim import DEFAULT_OPTIMIZER, OPTIMIZERS, TF1Adam, TorchAdam, make_optimizer

SHAPES = [(), (1,), (37,), (5, 7), (4, 16), (3, 2, 11)]  # 37, 35, 66: not multiples of 16
STUDY = dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
OTHER = dict(lr=3e-2, betas=(0.5, 0.9), eps=1e-3)  # eps large enough to matter in every coordinate


def gradients(shapes, steps, seed=0):
    """Fixed float32 gradients, per step and shape, spanning magnitudes 1e-9 .. 10."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        out.append([np.asarray(rng.standard_normal(s) * 10.0 ** rng.uniform(-9, 1, size=s), dtype=np.float32)
                    for s in shapes])
    return out


def initial(shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [np.asarray(rng.standard_normal(s), dtype=np.float32) for s in shapes]


def tf1_reference(p0, grads, lr, betas, eps):
    """TensorFlow 1's ApplyAdam, transcribed in NumPy float32: every operation rounds once."""
    f = np.float32
    one, lr, eps, b1, b2 = f(1), f(lr), f(eps), f(betas[0]), f(betas[1])
    p, m, v = np.array(p0), np.zeros_like(p0), np.zeros_like(p0)
    b1_power, b2_power = b1, b2
    for g in grads:
        alpha = f(f(lr * f(np.sqrt(f(one - b2_power)))) / f(one - b1_power))
        m = (m + (g - m) * f(one - b1)).astype(np.float32)
        v = (v + (g * g - v) * f(one - b2)).astype(np.float32)
        p = (p - (m * alpha) / (np.sqrt(v) + eps)).astype(np.float32)
        b1_power, b2_power = f(b1_power * b1), f(b2_power * b2)
    return p, m, v, b1_power, b2_power


def run(opt_cls, params, grads, **kwargs):
    opt = opt_cls(params, **kwargs)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.from_numpy(g).clone()
        opt.step()
    return opt


def test_tf1_adam_compiled_pass_is_exact_on_long_tensors_and_gives_nan_on_zero_divisors():
    # the compiled pass runs in SIMD lanes plus a scalar tail: both must round as the transcription;
    # with eps = 0 a coordinate whose gradients are all zero divides 0 by 0: NaN (as TensorFlow), no error
    shapes = [(10_007,), (64, 33)]
    p0, grads = initial(shapes, seed=5), gradients(shapes, 5, seed=6)
    params = [torch.tensor(p, requires_grad=True) for p in p0]
    run(TF1Adam, params, grads, **STUDY)
    for i, p in enumerate(params):
        want = tf1_reference(p0[i], [g[i] for g in grads], **STUDY)[0]
        np.testing.assert_array_equal(p.detach().numpy(), want)
    param = torch.ones(40, requires_grad=True)
    param.grad = torch.zeros(40)
    TF1Adam([param], lr=1e-3, betas=(0.9, 0.999), eps=0.0).step()
    assert torch.isnan(param).all()


@pytest.mark.parametrize("settings", [STUDY, OTHER], ids=["study", "other"])
def test_tf1_adam_matches_numpy_transcription_bit_for_bit(settings):
    p0, grads = initial(SHAPES), gradients(SHAPES, 30)
    params = [torch.from_numpy(x).clone().requires_grad_() for x in p0]
    opt = run(TF1Adam, params, grads, **settings)
    for i, p in enumerate(params):
        ref_p, ref_m, ref_v, b1_power, b2_power = tf1_reference(p0[i], [g[i] for g in grads], **settings)
        state = opt.state[p]
        np.testing.assert_array_equal(p.detach().numpy(), ref_p)
        np.testing.assert_array_equal(state["exp_avg"].numpy(), ref_m)
        np.testing.assert_array_equal(state["exp_avg_sq"].numpy(), ref_v)
        assert state["step"].dtype == torch.float32 and state["step"].item() == 30.0
        assert state["beta1_power"].dtype == torch.float32 and state["beta1_power"].item() == float(b1_power)
        assert state["beta2_power"].dtype == torch.float32 and state["beta2_power"].item() == float(b2_power)
        # The powers are float32 products beta^31 (powers after the 30th update), near the exact value.
        assert state["beta1_power"].item() == pytest.approx(settings["betas"][0] ** 31, rel=1e-5)
        assert state["beta2_power"].item() == pytest.approx(settings["betas"][1] ** 31, rel=1e-5)
    assert not np.array_equal(params[2].detach().numpy(), p0[2])


def test_tf1_adam_differs_from_torch_adam_in_its_first_update():
    # First update from p = 0 with gradient g: m = (1-b1) g, v = (1-b2) g^2, and
    # TF1: p = -lr sqrt(1-b2)/(1-b1) * (1-b1) g / (sqrt(1-b2)|g| + eps) = -lr g / (|g| + eps/sqrt(1-b2))
    # torch: p = -lr g / (|g| + eps), with m_hat = g and v_hat = g^2.
    lr, b1, b2, eps = 1e-4, 0.9, 0.999, 1e-8
    g = np.array([1e-7, -3e-8, 1e-9, 2e-6], dtype=np.float32)
    g64 = g.astype(np.float64)
    expect_tf = -lr * g64 / (np.abs(g64) + eps / math.sqrt(1 - b2))
    expect_torch = -lr * g64 / (np.abs(g64) + eps)
    out = {}
    for name, cls in [("tf1", TF1Adam), ("torch", torch.optim.Adam)]:
        p = torch.zeros(4, requires_grad=True)
        run(cls, [p], [[g]], lr=lr, betas=(b1, b2), eps=eps)
        out[name] = p.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(out["tf1"], expect_tf, rtol=1e-5)
    np.testing.assert_allclose(out["torch"], expect_torch, rtol=1e-5)
    # At |g| = 1e-7 TF1's step is (1e-7 + 1e-8) / (1e-7 + 3.162e-7) = 0.264 of torch's.
    assert out["tf1"][0] / out["torch"][0] == pytest.approx(1.1e-7 / (1e-7 + 1e-8 / math.sqrt(1e-3)), rel=1e-5)
    assert out["tf1"][0] / out["torch"][0] == pytest.approx(0.2642, abs=1e-4)


def test_torch_adam_equals_torch_optim_adam_bit_for_bit():
    p0, grads = initial(SHAPES), gradients(SHAPES, 30)
    a = [torch.from_numpy(x).clone().requires_grad_() for x in p0]
    b = [torch.from_numpy(x).clone().requires_grad_() for x in p0]
    opt_a = run(TorchAdam, a, grads, **STUDY)
    opt_b = run(torch.optim.Adam, b, grads, foreach=False, **STUDY)
    for pa, pb in zip(a, b):
        assert torch.equal(pa, pb)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a.state[pa][key], opt_b.state[pb][key])
    assert set(opt_a.state[a[0]]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("cls", [TF1Adam, TorchAdam])
def test_stacked_equals_independent_members_bit_for_bit(cls):
    shapes, M = [(37,), (5, 7)], 3
    member_shapes = [s for _ in range(M) for s in shapes]
    p0, grads = initial(member_shapes), gradients(member_shapes, 30)
    singles = [torch.from_numpy(x).clone().requires_grad_() for x in p0]
    opts = [run(cls, singles[m * 2:(m + 1) * 2], [g[m * 2:(m + 1) * 2] for g in grads], **STUDY) for m in range(M)]
    stacks = [torch.stack([torch.from_numpy(p0[m * 2 + j]) for m in range(M)]).requires_grad_() for j in range(2)]
    stacked_grads = [[np.stack([g[m * 2 + j] for m in range(M)]) for j in range(2)] for g in grads]
    opt = run(cls, stacks, stacked_grads, stacked=True, **STUDY)
    for j, stack in enumerate(stacks):
        state = opt.state[stack]
        for m in range(M):
            single = singles[m * 2 + j]
            assert torch.equal(stack[m], single)
            for key, value in opts[m].state[single].items():
                if key in cls.shared_state:
                    assert value.shape == () and torch.equal(state[key], value)
                else:
                    assert torch.equal(state[key][m], value)
    assert not torch.equal(stacks[0], torch.stack([torch.from_numpy(p0[m * 2]) for m in range(M)]))


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("cls", [TF1Adam, TorchAdam])
def test_state_dict_round_trip_resumes_bit_for_bit(cls, stacked):
    shapes = [(3, 37), (3, 5, 7)] if stacked else [(37,), (5, 7), ()]
    p0, grads = initial(shapes), gradients(shapes, 20)
    whole = [torch.from_numpy(x).clone().requires_grad_() for x in p0]
    run(cls, whole, grads, stacked=stacked, **STUDY)
    first = [torch.from_numpy(x).clone().requires_grad_() for x in p0]
    saved = copy.deepcopy(run(cls, first, grads[:10], stacked=stacked, **STUDY).state_dict())
    resumed = [p.detach().clone().requires_grad_() for p in first]
    opt = cls(resumed, stacked=stacked, **STUDY)
    opt.load_state_dict(saved)
    for step in grads[10:]:
        for p, g in zip(resumed, step):
            p.grad = torch.from_numpy(g).clone()
        opt.step()
    for a, b in zip(whole, resumed):
        assert torch.equal(a, b)
    assert all(opt.state[p]["step"].item() == 20.0 for p in resumed)


def test_make_optimizer_and_registry():
    assert DEFAULT_OPTIMIZER == "tf1_adam" and OPTIMIZERS == {"tf1_adam": TF1Adam, "torch_adam": TorchAdam}
    assert TF1Adam.shared_state == ("step", "beta1_power", "beta2_power") and TorchAdam.shared_state == ("step",)
    p = torch.zeros(3, requires_grad=True)
    opt = make_optimizer("torch_adam", [p], AdamSettings(lr=1e-3, beta1=0.5, beta2=0.9, eps=1e-6), stacked=True)
    assert type(opt) is TorchAdam and opt.stacked and opt.param_groups[0]["foreach"] is False
    assert (opt.param_groups[0]["lr"], opt.param_groups[0]["betas"], opt.param_groups[0]["eps"]) == (1e-3, (0.5, 0.9), 1e-6)
    opt = make_optimizer(DEFAULT_OPTIMIZER, [p], AdamSettings())
    assert type(opt) is TF1Adam and not opt.stacked and opt.defaults == {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8}
    assert copy.deepcopy(make_optimizer("tf1_adam", [p], AdamSettings(), stacked=True)).stacked


def test_unknown_rule_names_the_key_and_suggests():
    with pytest.raises(ValueError, match=r"train\.optimizer must be one of \['tf1_adam', 'torch_adam'\], got 'tf1adam'. Did you mean 'tf1_adam'"):
        make_optimizer("tf1adam", [torch.zeros(1, requires_grad=True)], AdamSettings())


@pytest.mark.parametrize("cls", [TF1Adam, TorchAdam])
def test_closure_is_refused(cls):
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match="closure is not supported"):
        cls([p]).step(lambda: 0.0)
    assert torch.equal(p, torch.zeros(2))
