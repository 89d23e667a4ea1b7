"""The model: every objective on every architecture, the loss terms, FactorVAE's two updates."""

from __future__ import annotations

import itertools

import pytest
import torch

from disentangled.models import ARCHITECTURES, OBJECTIVES, VAE, BetaVAE, FactorVAE, build_model, get_objective
from disentangled.models.architectures import build_architecture
from disentangled.models.distributions import gaussian_kl, sample_gaussian
from disentangled.models.losses import bernoulli_loss, l2_loss

KEYS = {"loss", "reconstruction", "kl", "regularizer", "elbo"}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _objective(name):
    if name == "annealed_vae":  # a short ramp so that C(step) is neither 0 nor c_max
        return get_objective(name, c_max=5.0, iteration_threshold=10)
    if name in ("beta_vae", "beta_tc_vae"):
        return get_objective(name, beta=4.0)
    return get_objective(name)


@pytest.fixture(scope="module")
def architectures():
    """One encoder/decoder pair per (architecture, channels), shared by the objectives."""
    torch.manual_seed(0)
    return {
        (arch, channels): build_architecture(arch, (channels, 64, 64), 10)
        for arch, channels in itertools.product(ARCHITECTURES, (1, 3))
    }


@pytest.mark.parametrize("name", list(OBJECTIVES))
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_backward_every_objective(architectures, name, arch, channels):
    encoder, decoder = architectures[(arch, channels)]
    model = VAE(encoder, decoder, _objective(name))
    model.zero_grad(set_to_none=True)
    x = torch.rand(4, channels, 64, 64, generator=_gen(1))
    terms = model.loss_terms(x, step=3, generator=_gen(2))
    expected_keys = KEYS | ({"discriminator_loss"} if model.objective.needs_discriminator else set())
    assert set(terms) == expected_keys
    for key, value in terms.items():
        assert value.shape == () and torch.isfinite(value), key
    total = terms["loss"] + terms.get("discriminator_loss", 0.0)
    total.backward()
    for param in model.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_loss_terms_are_consistent():
    torch.manual_seed(0)
    model = build_model(BetaVAE(beta=3.0), observation_shape=(1, 64, 64))
    x = torch.rand(8, 1, 64, 64, generator=_gen(0))
    terms = model.loss_terms(x, step=0, generator=_gen(5))
    # recompute by hand with the same draw
    mean, logvar = model.encode(x)
    z = sample_gaussian(mean, logvar, generator=_gen(5))
    reconstruction = bernoulli_loss(x, model.decode(z)).mean()
    kl = gaussian_kl(mean, logvar).mean()
    torch.testing.assert_close(terms["reconstruction"], reconstruction)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["regularizer"], 3.0 * kl)
    torch.testing.assert_close(terms["loss"], reconstruction + 3.0 * kl)
    torch.testing.assert_close(terms["elbo"], -(reconstruction + kl))


def test_l2_reconstruction_option():
    torch.manual_seed(0)
    model = build_model(BetaVAE(), observation_shape=(1, 64, 64), architecture="fc", reconstruction="l2")
    x = torch.rand(4, 1, 64, 64, generator=_gen(0))
    terms = model.loss_terms(x, step=0, generator=_gen(1))
    mean, logvar = model.encode(x)
    z = sample_gaussian(mean, logvar, generator=_gen(1))
    torch.testing.assert_close(terms["reconstruction"], l2_loss(x, model.decode(z)).mean())
    assert model.reconstruction == "l2"
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        build_model(BetaVAE(), observation_shape=(1, 64, 64), reconstruction="gaussian")


def test_same_generator_same_result_bit_for_bit():
    torch.manual_seed(0)
    model = build_model(FactorVAE(), observation_shape=(3, 64, 64))
    x = torch.rand(6, 3, 64, 64, generator=_gen(0))
    a = model.loss_terms(x, step=1, generator=_gen(9))
    b = model.loss_terms(x, step=1, generator=_gen(9))
    c = model.loss_terms(x, step=1, generator=_gen(10))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["reconstruction"], c["reconstruction"])


def test_factor_vae_gradients_reach_only_their_own_networks():
    torch.manual_seed(0)
    model = build_model(FactorVAE(gamma=30.0), observation_shape=(1, 64, 64))
    assert model.discriminator is not None
    vae_ids = {id(p) for p in model.vae_parameters()}
    disc_ids = {id(p) for p in model.discriminator_parameters()}
    assert not vae_ids & disc_ids
    assert vae_ids | disc_ids == {id(p) for p in model.parameters()}
    x = torch.rand(8, 1, 64, 64, generator=_gen(0))

    # The VAE loss moves the encoder/decoder only...
    terms = model.loss_terms(x, step=0, generator=_gen(1))
    terms["loss"].backward()
    assert all(p.grad is None for p in model.discriminator_parameters())
    assert all(p.grad is not None for p in model.vae_parameters())
    model.zero_grad(set_to_none=True)
    # ...and the discriminator loss the discriminator only.
    terms = model.loss_terms(x, step=0, generator=_gen(1))
    terms["discriminator_loss"].backward()
    assert all(p.grad is None for p in model.vae_parameters())
    assert all(p.grad is not None for p in model.discriminator_parameters())
    model.zero_grad(set_to_none=True)

    # One backward of the sum gives each network exactly its own gradient (dlib's
    # simultaneous update with two var_lists).
    terms = model.loss_terms(x, step=0, generator=_gen(1))
    vae_grads = torch.autograd.grad(terms["loss"], model.vae_parameters(), retain_graph=True)
    disc_grads = torch.autograd.grad(terms["discriminator_loss"], model.discriminator_parameters(), retain_graph=True)
    (terms["loss"] + terms["discriminator_loss"]).backward()
    for p, g in zip(model.vae_parameters(), vae_grads):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(model.discriminator_parameters(), disc_grads):
        torch.testing.assert_close(p.grad, g)
    # the TC term does reach the encoder: with gamma, the encoder gradient changes
    model.zero_grad(set_to_none=True)
    plain = build_model(FactorVAE(gamma=0.0), observation_shape=(1, 64, 64))
    plain.load_state_dict(model.state_dict())
    g_plain = torch.autograd.grad(plain.loss_terms(x, step=0, generator=_gen(1))["loss"], plain.encoder.conv1.weight)
    g_tc = torch.autograd.grad(model.loss_terms(x, step=0, generator=_gen(1))["loss"], model.encoder.conv1.weight)
    assert not torch.allclose(g_plain[0], g_tc[0])


def test_discriminator_only_when_needed():
    for name in OBJECTIVES:
        model = build_model(_objective(name), observation_shape=(1, 64, 64), architecture="fc")
        assert (model.discriminator is not None) == (name == "factor_vae")
        assert (len(model.discriminator_parameters()) > 0) == (name == "factor_vae")
        assert model.num_latent == 10


def test_state_dict_round_trip():
    torch.manual_seed(0)
    model = build_model(FactorVAE(), observation_shape=(1, 64, 64), num_latent=6)
    torch.manual_seed(1)
    other = build_model(FactorVAE(), observation_shape=(1, 64, 64), num_latent=6)
    other.load_state_dict(model.state_dict())
    x = torch.rand(4, 1, 64, 64, generator=_gen(0))
    a = model.loss_terms(x, step=2, generator=_gen(3))
    b = other.loss_terms(x, step=2, generator=_gen(3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert set(model.state_dict()) == set(other.state_dict())
    assert any(k.startswith("discriminator.") for k in model.state_dict())


def test_build_model_arguments():
    model = build_model(
        get_objective("dip_vae_i"), observation_shape=(3, 64, 64), num_latent=4, kernel_size_34=4, init="torch"
    )
    assert model.encoder.conv3.kernel_size == (4, 4) and model.num_latent == 4
    assert torch.count_nonzero(model.encoder.dense.bias) > 0
    model = build_model(FactorVAE(), observation_shape=(1, 64, 64), init="torch")
    assert torch.count_nonzero(model.discriminator.logits.bias) > 0
    with pytest.raises(TypeError, match="get_objective"):
        build_model("beta_vae", observation_shape=(1, 64, 64))
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(BetaVAE(), observation_shape=(1, 64, 64), architecture="resnet")
    with pytest.raises(ValueError, match="64x64"):
        build_model(BetaVAE(), observation_shape=(1, 28, 28))


def test_leading_model_dimension_through_the_model():
    # a stack of two batches gives one value per stack entry, each equal to that batch's
    # terms given the same posterior sample
    torch.manual_seed(0)
    model = build_model(get_objective("beta_tc_vae", beta=6.0), observation_shape=(1, 64, 64))
    x = torch.rand(2, 4, 1, 64, 64, generator=_gen(0))
    stacked = model.loss_terms(x, step=0, generator=_gen(1))
    assert all(v.shape == (2,) for v in stacked.values())
    mean, logvar = model.encode(x)
    z = sample_gaussian(mean, logvar, generator=_gen(1))
    for m in range(2):
        reconstruction = bernoulli_loss(x[m], model.decode(z[m])).mean()
        kl = gaussian_kl(mean[m], logvar[m]).mean()
        loss = reconstruction + model.objective.regularizer(kl, mean[m], logvar[m], z[m], 0)
        torch.testing.assert_close(stacked["loss"][m], loss, rtol=1e-5, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, cls in OBJECTIVES.items() if cls.batch_kind == "images"])  # pairs: test_weak.py
def test_loss_goes_down(name):
    # Adam steps on one fixed batch of bar images lower the reconstruction loss (the small
    # fc model on 16x16 images keeps this quick; the conv path is covered above).
    torch.manual_seed(0)
    model = build_model(_objective(name), observation_shape=(1, 16, 16), architecture="fc", num_latent=4)
    x = torch.zeros(12, 1, 16, 16)
    for i in range(12):
        x[i, 0, i : i + 4, 2:14] = 1.0
    opt = torch.optim.Adam(model.vae_parameters(), lr=1e-3)
    disc_opt = torch.optim.Adam(model.discriminator_parameters(), lr=1e-4) if model.discriminator else None
    g = _gen(0)
    first = model.loss_terms(x, step=0, generator=g)["reconstruction"].item()
    for step in range(30):
        terms = model.loss_terms(x, step=step, generator=g)
        opt.zero_grad()
        if disc_opt:
            disc_opt.zero_grad()
        (terms["loss"] + terms.get("discriminator_loss", 0.0)).backward()
        opt.step()
        if disc_opt:
            disc_opt.step()
    last = model.loss_terms(x, step=30, generator=g)["reconstruction"].item()
    assert last < 0.5 * first
