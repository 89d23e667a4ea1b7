"""The six objectives: registry, validation, and regularisers against hand-computed values.

Numbers come from closed forms or from dlib's ``methods/unsupervised/vae_test.py`` (noted).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from disentangled.models import (
    OBJECTIVES,
    AdamSettings,
    AnnealedVAE,
    BetaTCVAE,
    BetaVAE,
    DIPVAEI,
    DIPVAEII,
    FactorVAE,
    Objective,
    get_objective,
    objective_options,
)
from disentangled.models.distributions import total_correlation
from disentangled.models.objectives import DISCRIMINATOR_OPTIMIZER, VAE_OPTIMIZER, dip_penalty


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _posterior(batch=8, dims=4, seed=0, lead=()):
    g = _gen(seed)
    mean = torch.randn(*lead, batch, dims, generator=g)
    logvar = 0.3 * torch.randn(*lead, batch, dims, generator=g)
    z = mean + torch.exp(logvar / 2) * torch.randn(*lead, batch, dims, generator=g)
    return mean, logvar, z


def _zero_discriminator(z):
    return torch.zeros(*z.shape[:-1], 2)


# --- registry ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_registry_entry(name):
    cls = OBJECTIVES[name]
    objective = cls()
    assert isinstance(objective, Objective)
    assert cls.name == name
    assert dataclasses.is_dataclass(objective)
    assert cls.__doc__
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__
    assert module_doc and ("eq." in module_doc), f"{cls.__module__} must cite the paper and equation"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(objective, dataclasses.fields(objective)[0].name, 0.5)
    # hyperparameters() round trip through get_objective
    rebuilt = get_objective(name, **objective.hyperparameters())
    assert rebuilt == objective
    assert list(objective.hyperparameters()) == objective_options(name)


def test_study_defaults():
    # dlib config/unsupervised_study_v1 (dlib.md sections 1 and 3)
    assert BetaVAE().beta == 1.0
    assert (AnnealedVAE().gamma, AnnealedVAE().c_max, AnnealedVAE().iteration_threshold) == (1000.0, 25.0, 100000)
    assert FactorVAE().gamma == 10.0
    assert FactorVAE().discriminator_optimizer == AdamSettings(1e-4, 0.5, 0.9, 1e-8)
    assert (DIPVAEI().lambda_od, DIPVAEI().lambda_d_factor) == (1.0, 10.0)
    assert (DIPVAEII().lambda_od, DIPVAEII().lambda_d_factor) == (1.0, 1.0)
    assert BetaTCVAE().beta == 1.0
    assert VAE_OPTIMIZER == AdamSettings(1e-4, 0.9, 0.999, 1e-8)
    assert DISCRIMINATOR_OPTIMIZER == FactorVAE().discriminator_optimizer
    assert FactorVAE.needs_discriminator and not any(
        cls.needs_discriminator for name, cls in OBJECTIVES.items() if name != "factor_vae"
    )


def test_adam_settings_to_torch():
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = DISCRIMINATOR_OPTIMIZER.build(params)
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (1e-4, (0.5, 0.9), 1e-8)
    with pytest.raises(ValueError, match=r"beta2 must be in \[0, 1\), got 1.0"):
        AdamSettings(beta2=1.0)


def test_factor_vae_accepts_optimizer_as_dict():
    objective = FactorVAE(gamma=20.0, discriminator_optimizer={"lr": 1e-3, "beta1": 0.5, "beta2": 0.9, "eps": 1e-8})
    assert objective.discriminator_optimizer == AdamSettings(1e-3, 0.5, 0.9, 1e-8)
    with pytest.raises(ValueError, match="discriminator_optimizer"):
        FactorVAE(discriminator_optimizer="adam")
    with pytest.raises(ValueError, match=r"discriminator_optimizer has no setting 'lrr'.*Did you mean 'lr'"):
        FactorVAE(discriminator_optimizer={"lrr": 1e-3})


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, field, value, rule",
    [
        (BetaVAE, "beta", -1.0, ">= 0"),
        (AnnealedVAE, "gamma", -1.0, ">= 0"),
        (AnnealedVAE, "c_max", -5.0, ">= 0"),
        (AnnealedVAE, "iteration_threshold", 0, "> 0"),
        (AnnealedVAE, "iteration_threshold", -10, "> 0"),
        (FactorVAE, "gamma", -2.0, ">= 0"),
        (DIPVAEI, "lambda_od", -1.0, ">= 0"),
        (DIPVAEI, "lambda_d_factor", -1.0, ">= 0"),
        (DIPVAEII, "lambda_od", -0.5, ">= 0"),
        (BetaTCVAE, "beta", -3.0, ">= 0"),
        (BetaVAE, "beta", float("nan"), ">= 0"),
    ],
)
def test_validation_names_field_rule_and_value(cls, field, value, rule):
    with pytest.raises(ValueError) as info:
        cls(**{field: value})
    message = str(info.value)
    assert message.startswith(f"{cls.name}: {field} must be")
    assert rule in message and repr(value) in message


def test_validation_message_format():
    with pytest.raises(ValueError, match=r"^beta_vae: beta must be >= 0, got -1.0$"):
        BetaVAE(beta=-1.0)
    with pytest.raises(ValueError, match=r"^beta_vae: beta must be a finite number >= 0, got '4'$"):
        BetaVAE(beta="4")
    with pytest.raises(ValueError, match="must be a finite number"):
        BetaVAE(beta=True)


def test_unknown_objective_lists_close_matches():
    with pytest.raises(ValueError, match="unknown objective 'beta_vea'.*Did you mean 'beta_vae'"):
        get_objective("beta_vea")
    with pytest.raises(ValueError, match="Did you mean 'dip_vae_i'"):
        get_objective("dip_vae_1")


def test_unknown_hyperparameter_lists_close_matches():
    with pytest.raises(ValueError, match="no hyperparameter 'betta'.*Did you mean 'beta'"):
        get_objective("beta_vae", betta=4.0)
    with pytest.raises(ValueError, match="Did you mean 'c_max'"):
        get_objective("annealed_vae", cmax=4.0)
    assert get_objective("beta_vae", beta=4.0) == BetaVAE(beta=4.0)


# --- beta-VAE ---------------------------------------------------------------------------


def test_beta_vae_regularizer():
    mean, logvar, z = _posterior()
    assert BetaVAE(beta=4.0).regularizer(torch.tensor(2.5), mean, logvar, z, step=0).item() == 10.0


# --- AnnealedVAE ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c_max, step, expected",
    [
        # dlib vae_test.test_anneal: c_max 100, threshold 100; steps 0/10/100/101 -> 0/10/100/100
        (100.0, 0, 0.0),
        (100.0, 10, 10.0),
        (100.0, 100, 100.0),
        (100.0, 101, 100.0),
        # the same ramp with c_max 5: 5 * step / 100, capped at 5
        (5.0, 0, 0.0),
        (5.0, 10, 0.5),
        (5.0, 100, 5.0),
        (5.0, 101, 5.0),
    ],
)
def test_anneal_schedule(c_max, step, expected):
    objective = AnnealedVAE(gamma=1.0, c_max=c_max, iteration_threshold=100)
    assert objective.capacity(step) == expected
    assert objective.capacity(torch.tensor(step)).item() == pytest.approx(expected, abs=1e-6)
    # gamma * |KL - C|: with KL = 3
    mean, logvar, z = _posterior()
    reg = AnnealedVAE(gamma=10.0, c_max=c_max, iteration_threshold=100).regularizer(
        torch.tensor(3.0), mean, logvar, z, step=step
    )
    assert reg.item() == pytest.approx(10.0 * abs(3.0 - expected), abs=1e-5)


def test_anneal_with_a_step_per_model():
    objective = AnnealedVAE(gamma=2.0, c_max=5.0, iteration_threshold=100)
    kl = torch.tensor([1.0, 1.0, 1.0])
    reg = objective.regularizer(kl, None, None, None, step=torch.tensor([0, 50, 200]))
    torch.testing.assert_close(reg, torch.tensor([2.0, 3.0, 8.0]))


# --- DIP-VAE ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "matrix, expected",
    # dlib vae_test.test_regularize_diag_off_diag_dip with lambda_od = lambda_d = 1 on 10x10:
    # all ones -> 90 off-diagonal ones; zeros -> 10 diagonal (0 - 1)^2; I -> 0; 2I -> 10.
    [(torch.ones(10, 10), 90.0), (torch.zeros(10, 10), 10.0), (torch.eye(10), 0.0), (2 * torch.eye(10), 10.0)],
)
def test_dip_penalty_dlib_values(matrix, expected):
    assert dip_penalty(matrix, 1.0, 1.0).item() == pytest.approx(expected)


def test_dip_vae_i_on_a_known_covariance():
    # rows (2, 1), (-2, -1): Cov[mu] = [[4, 2], [2, 1]];
    # off-diagonal: 2 * 2^2 = 8; diagonal: (4 - 1)^2 + (1 - 1)^2 = 9.
    mean = torch.tensor([[2.0, 1.0], [-2.0, -1.0]])
    logvar = torch.zeros(2, 2)
    kl = torch.tensor(3.0)
    # lambda_od 1, lambda_d 10 * 1: 3 + 8 + 90 = 101
    assert DIPVAEI(lambda_od=1.0, lambda_d_factor=10.0).regularizer(kl, mean, logvar, mean, 0).item() == 101.0
    # lambda_od 2, lambda_d 10 * 2: 3 + 16 + 180 = 199
    assert DIPVAEI(lambda_od=2.0, lambda_d_factor=10.0).regularizer(kl, mean, logvar, mean, 0).item() == 199.0


def test_dip_vae_ii_adds_the_mean_encoder_variance():
    # Cov[mu] = [[4, 2], [2, 1]] plus mean_batch exp(logvar) = 0.5 on the diagonal:
    # C = [[4.5, 2], [2, 1.5]]; off-diagonal 8; diagonal 3.5^2 + 0.5^2 = 12.5.
    mean = torch.tensor([[2.0, 1.0], [-2.0, -1.0]])
    logvar = torch.log(torch.tensor([[0.25, 0.75], [0.75, 0.25]]))  # batch mean of exp = 0.5
    kl = torch.tensor(3.0)
    got = DIPVAEII(lambda_od=1.0, lambda_d_factor=1.0).regularizer(kl, mean, logvar, mean, 0)
    assert got.item() == pytest.approx(3.0 + 8.0 + 12.5)
    got = DIPVAEII(lambda_od=10.0, lambda_d_factor=2.0).regularizer(kl, mean, logvar, mean, 0)
    assert got.item() == pytest.approx(3.0 + 10.0 * 8.0 + 20.0 * 12.5)
    assert DIPVAEII(lambda_od=2.0, lambda_d_factor=3.0).lambda_d == 6.0


# --- beta-TCVAE -------------------------------------------------------------------------


def test_beta_tc_vae_regularizer():
    mean, logvar, z = _posterior(batch=16)
    kl = torch.tensor(1.5)
    tc = total_correlation(z, mean, logvar)
    torch.testing.assert_close(BetaTCVAE(beta=6.0).regularizer(kl, mean, logvar, z, 0), kl + 5.0 * tc)
    # beta = 1 is the plain VAE
    assert BetaTCVAE(beta=1.0).regularizer(kl, mean, logvar, z, 0).item() == 1.5


# --- FactorVAE --------------------------------------------------------------------------


def test_factor_vae_tc_is_the_logit_difference():
    mean, logvar, z = _posterior(batch=6)

    def discriminator(codes):  # logit_0 - logit_1 = 0.5 for every sample
        return torch.stack([torch.full(codes.shape[:-1], 1.0), torch.full(codes.shape[:-1], 0.5)], -1)

    reg = FactorVAE(gamma=10.0).regularizer(torch.tensor(2.0), mean, logvar, z, 0, discriminator=discriminator)
    assert reg.item() == pytest.approx(2.0 + 10.0 * 0.5)


def test_factor_vae_discriminator_loss_is_ln2_for_equal_logits():
    # -(0.5 ln 0.5 + 0.5 ln 0.5) = ln 2 = 0.6931
    _, _, z = _posterior(batch=32)
    loss = FactorVAE().discriminator_loss(_zero_discriminator, z, generator=_gen(0))
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-6)


def test_factor_vae_discriminator_loss_clips_probabilities():
    # logits (+50, -50): p_0 = 1 - 1e-6 after clipping, p_1 = 1e-6, for real and shuffled alike;
    # loss = -(0.5 ln(1 - 1e-6) + 0.5 ln 1e-6) = 6.9078
    _, _, z = _posterior(batch=8)

    def confident(codes):
        return torch.stack([torch.full(codes.shape[:-1], 50.0), torch.full(codes.shape[:-1], -50.0)], -1)

    loss = FactorVAE().discriminator_loss(confident, z, generator=_gen(0))
    assert loss.item() == pytest.approx(-(0.5 * math.log(1 - 1e-6) + 0.5 * math.log(1e-6)), rel=1e-4)


def test_factor_vae_discriminator_loss_sees_real_and_shuffled_codes():
    # A discriminator that says "real" (class 0) exactly for the original rows is perfect:
    # the loss is at its clipped minimum -ln(1 - 1e-6) ~ 1e-6.
    _, _, z = _posterior(batch=16, dims=3)

    def oracle(codes):
        real = (codes[..., None, :] == z).all(-1).any(-1)
        score = torch.where(real, 50.0, -50.0)
        return torch.stack([score, -score], -1)

    loss = FactorVAE().discriminator_loss(oracle, z, generator=_gen(0))
    assert loss.item() < 1e-5


def test_factor_vae_discriminator_loss_does_not_reach_the_encoder():
    _, _, z = _posterior(batch=8)
    z = z.clone().requires_grad_(True)
    weight = torch.nn.Parameter(torch.ones(z.shape[-1], 2))
    loss = FactorVAE().discriminator_loss(lambda c: c @ weight, z, generator=_gen(0))
    loss.backward()
    assert z.grad is None and weight.grad is not None


# --- leading dimensions -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_regularizer_with_a_leading_model_dimension(name):
    objective = OBJECTIVES[name]()
    if name == "annealed_vae":
        objective = AnnealedVAE(gamma=3.0, c_max=5.0, iteration_threshold=10)
    mean, logvar, z = _posterior(batch=8, dims=4, lead=(3,))
    kl = torch.tensor([0.5, 1.0, 7.0])
    extra = {}
    if objective.needs_discriminator:
        extra["discriminator"] = lambda c: torch.stack([c.sum(-1), c[..., 0]], -1)
    batched = objective.regularizer(kl, mean, logvar, z, 4, **extra)
    separate = torch.stack([objective.regularizer(kl[m], mean[m], logvar[m], z[m], 4, **extra) for m in range(3)])
    assert batched.shape == (3,)
    torch.testing.assert_close(batched, separate)
    if objective.needs_discriminator:
        loss = objective.discriminator_loss(_zero_discriminator, z, generator=_gen(0))
        assert loss.shape == (3,)
        torch.testing.assert_close(loss, torch.full((3,), math.log(2.0)))
