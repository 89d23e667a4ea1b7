"""Gaussian KL, log densities, sampling, the TC estimator, covariance and permutations.

Expected values come from closed forms, from numpy/scipy, or from dlib's own test
(``disentanglement_lib/methods/unsupervised/vae_test.py``), as noted at each number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from disentangled.models.distributions import (
    covariance,
    gaussian_kl,
    gaussian_log_density,
    permute_dims,
    sample_gaussian,
    total_correlation,
)
from disentangled.models.losses import RECONSTRUCTION_LOSSES, bernoulli_loss, l2_loss


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- KL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mean, logvar, expected",
    [
        # dlib vae_test.test_compute_gaussian_kl: a 10x10 batch, expected batch means 0, 5, 8.59.
        (0.0, 0.0, 0.0),  # N(0, 1) against N(0, 1)
        (1.0, 0.0, 5.0),  # 0.5 * 10 * mean^2
        (1.0, 1.0, 5.0 * (math.e - 1.0)),  # 0.5 * 10 * (1 + e - 1 - 1) = 8.5914
    ],
)
def test_gaussian_kl_dlib_values(mean, logvar, expected):
    m = torch.full((10, 10), mean)
    lv = torch.full((10, 10), logvar)
    kl = gaussian_kl(m, lv)
    assert kl.shape == (10,)
    torch.testing.assert_close(kl.mean(), torch.tensor(expected), rtol=1e-6, atol=1e-6)


def test_gaussian_kl_matches_closed_form_per_dimension():
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 * (mu^2 + s^2 - ln s^2 - 1), summed over dimensions.
    mean = torch.tensor([[0.5, -2.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[math.log(4.0), 0.0, math.log(0.25)]], dtype=torch.float64)
    expected = 0.5 * ((0.25 + 4 - math.log(4) - 1) + (4 + 1 - 0 - 1) + (0 + 0.25 - math.log(0.25) - 1))
    torch.testing.assert_close(gaussian_kl(mean, logvar), torch.tensor([expected], dtype=torch.float64))


# --- log density ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mean, expected",
    # dlib vae_test.test_gaussian_log_density: x = 1, logvar = 0; expected in [-1.4190, -1.4188]
    # and [-0.92, -0.91]; exactly -0.5 (1 + ln 2pi) and -0.5 ln 2pi.
    [(0.0, -0.5 * (1.0 + math.log(2 * math.pi))), (1.0, -0.5 * math.log(2 * math.pi))],
)
def test_gaussian_log_density_dlib_values(mean, expected):
    value = gaussian_log_density(torch.ones(1), torch.tensor(mean), torch.tensor(0.0))
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_gaussian_log_density_matches_scipy():
    rng = np.random.default_rng(0)
    x, mean, logvar = rng.normal(size=(3, 5, 7))
    expected = scipy.stats.norm.logpdf(x, loc=mean, scale=np.exp(logvar / 2))
    got = gaussian_log_density(*(torch.from_numpy(a) for a in (x, mean, logvar)))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


# --- sampling ---------------------------------------------------------------------------


def test_sample_gaussian_is_reparameterised_and_deterministic():
    mean = torch.tensor([[1.0, -2.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.01)]])
    a = sample_gaussian(mean, logvar, generator=_gen(3))
    b = sample_gaussian(mean, logvar, generator=_gen(3))
    assert torch.equal(a, b)
    eps = torch.randn(mean.shape, generator=_gen(3))
    torch.testing.assert_close(a, mean + torch.tensor([[1.0, 2.0, 0.1]]) * eps)
    assert not torch.equal(a, sample_gaussian(mean, logvar, generator=_gen(4)))


def test_sample_gaussian_moments():
    mean = torch.full((20000, 2), 3.0)
    logvar = torch.full((20000, 2), math.log(0.25))
    z = sample_gaussian(mean, logvar, generator=_gen(0))
    # standard errors: 0.5 / sqrt(20000) = 0.0035 for the mean, ~0.0025 for the std
    torch.testing.assert_close(z.mean(0), torch.full((2,), 3.0), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.full((2,), 0.5), atol=0.02, rtol=0)


# --- total correlation ------------------------------------------------------------------


def _tc_reference(z, mean, logvar):
    """dlib's estimator written out with scipy, in float64."""
    log_q = scipy.stats.norm.logpdf(z[:, None, :], loc=mean[None], scale=np.exp(logvar[None] / 2))
    log_qz = scipy.special.logsumexp(log_q.sum(-1), axis=1)
    log_qz_product = scipy.special.logsumexp(log_q, axis=1).sum(-1)
    return float(np.mean(log_qz - log_qz_product))


def test_total_correlation_matches_reference():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(32, 5))
    logvar = rng.normal(scale=0.5, size=(32, 5))
    z = mean + np.exp(logvar / 2) * rng.normal(size=(32, 5))
    got = total_correlation(*(torch.from_numpy(a) for a in (z, mean, logvar)))
    assert got.item() == pytest.approx(_tc_reference(z, mean, logvar), rel=1e-10, abs=1e-10)
    got32 = total_correlation(*(torch.from_numpy(a).float() for a in (z, mean, logvar)))
    assert got32.item() == pytest.approx(_tc_reference(z, mean, logvar), rel=1e-5, abs=1e-4)


def test_total_correlation_chunks_give_the_same_result():
    g = _gen(2)
    z, mean, logvar = torch.randn(3, 50, 6, generator=g)
    whole = total_correlation(z, mean, logvar)
    for chunk in (1, 7, 50, 64):
        torch.testing.assert_close(total_correlation(z, mean, logvar, chunk_size=chunk), whole, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        total_correlation(z, mean, logvar, chunk_size=0)


def test_total_correlation_one_dimension_is_zero():
    # dlib vae_test.test_total_correlation(num_dim=1): expected in [0, 0.1]; exactly 0 here,
    # since log q(z) and log prod_d q(z_d) coincide for a single dimension.
    z = torch.randn(1000, 1, generator=_gen(0))
    assert total_correlation(z, torch.zeros_like(z), torch.zeros_like(z)).item() == pytest.approx(0.0, abs=1e-5)


def test_total_correlation_offset_for_independent_latents_small():
    # With every posterior N(0, 1), each sample has the same density under all B posteriors,
    # so TC_hat = log B - D log B = -(D - 1) ln B exactly: -9 ln 1000 = -62.17 for B = 1000.
    z = torch.randn(1000, 10, generator=_gen(0))
    tc = total_correlation(z, torch.zeros_like(z), torch.zeros_like(z), chunk_size=250)
    assert tc.item() == pytest.approx(-9 * math.log(1000), abs=1e-3)


@pytest.mark.slow
def test_total_correlation_offset_dlib_value():
    # dlib vae_test.test_total_correlation(num_dim=10): 10,000 samples, expected in
    # [-82.9, -82.89]; -82.893 = (10 - 1) * ln(10000). [10000, 10000, 10] floats are 4 GB,
    # hence the chunks.
    z = torch.randn(10000, 10, generator=_gen(0))
    tc = total_correlation(z, torch.zeros_like(z), torch.zeros_like(z), chunk_size=500)
    assert -82.9 <= tc.item() <= -82.89
    assert tc.item() == pytest.approx(-9 * math.log(10000), abs=1e-3)


def test_total_correlation_is_larger_for_dependent_latents():
    # Two copies of the same code (perfectly dependent, posteriors narrow) against two
    # independent codes, same B: the dependent batch has the larger estimate.
    g = _gen(5)
    a = torch.randn(256, 1, generator=g)
    b = torch.randn(256, 1, generator=g)
    logvar = torch.full((256, 2), math.log(0.01))
    dependent = torch.cat([a, a], 1)
    independent = torch.cat([a, b], 1)
    assert total_correlation(dependent, dependent, logvar) > total_correlation(independent, independent, logvar) + 1


# --- covariance -------------------------------------------------------------------------


def test_covariance_matches_numpy_biased():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(64, 10)) @ rng.normal(size=(10, 10)) + 3.0
    expected = np.cov(mean, rowvar=False, bias=True)
    np.testing.assert_allclose(covariance(torch.from_numpy(mean)).numpy(), expected, rtol=1e-10, atol=1e-12)
    got32 = covariance(torch.from_numpy(mean).float()).numpy()
    np.testing.assert_allclose(got32, expected, rtol=1e-4, atol=1e-4)


def test_covariance_of_two_points():
    # rows (a, b) and (-a, -b): E[mu] = 0, E[mu mu^T] = [[a^2, ab], [ab, b^2]].
    mean = torch.tensor([[2.0, 1.0], [-2.0, -1.0]])
    torch.testing.assert_close(covariance(mean), torch.tensor([[4.0, 2.0], [2.0, 1.0]]))


# --- permutation ------------------------------------------------------------------------


def test_permute_dims_keeps_each_column_and_is_deterministic():
    z = torch.randn(100, 10, generator=_gen(0))
    shuffled = permute_dims(z, generator=_gen(1))
    assert shuffled.shape == z.shape
    # each column is a permutation of itself
    assert torch.equal(shuffled.sort(0).values, z.sort(0).values)
    assert torch.equal(shuffled, permute_dims(z, generator=_gen(1)))
    assert not torch.equal(shuffled, permute_dims(z, generator=_gen(2)))
    # columns are permuted independently: the ten permutations all differ
    moved = [tuple(z[:, d].tolist().index(v) for v in shuffled[:, d].tolist()) for d in range(10)]
    assert len(set(moved)) == 10


def test_permute_dims_with_leading_dims():
    z = torch.arange(2 * 50 * 4, dtype=torch.float32).reshape(2, 50, 4)
    shuffled = permute_dims(z, generator=_gen(0))
    assert torch.equal(shuffled.sort(-2).values, z)
    assert not torch.equal(shuffled, z)


# --- reconstruction losses --------------------------------------------------------------


def test_bernoulli_loss_closed_form():
    x = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]]])  # [1, 1, 2, 2]
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum()
    torch.testing.assert_close(bernoulli_loss(x, logits), expected.reshape(1))
    # zero logits: every pixel costs ln 2, whatever its value
    assert bernoulli_loss(torch.rand(3, 2, 4, 4, generator=_gen(0)), torch.zeros(3, 2, 4, 4)).allclose(
        torch.full((3,), 32 * math.log(2))
    )


def test_l2_loss_closed_form():
    x = torch.ones(2, 3, 4, 4)
    torch.testing.assert_close(l2_loss(x, torch.zeros(2, 3, 4, 4)), torch.full((2,), 48 * 0.25))


# --- leading dimensions -----------------------------------------------------------------


def test_leading_model_dimension_equals_separate_calls():
    g = _gen(7)
    M, B, D = 3, 16, 5
    mean = torch.randn(M, B, D, generator=g)
    logvar = 0.5 * torch.randn(M, B, D, generator=g)
    z = torch.randn(M, B, D, generator=g)
    x = torch.rand(M, B, 2, 8, 8, generator=g)
    logits = torch.randn(M, B, 2, 8, 8, generator=g)
    cases = {
        "kl": (gaussian_kl(mean, logvar), [gaussian_kl(mean[m], logvar[m]) for m in range(M)]),
        "log_density": (
            gaussian_log_density(z, mean, logvar),
            [gaussian_log_density(z[m], mean[m], logvar[m]) for m in range(M)],
        ),
        "tc": (total_correlation(z, mean, logvar), [total_correlation(z[m], mean[m], logvar[m]) for m in range(M)]),
        "tc_chunked": (
            total_correlation(z, mean, logvar, chunk_size=5),
            [total_correlation(z[m], mean[m], logvar[m]) for m in range(M)],
        ),
        "cov": (covariance(mean), [covariance(mean[m]) for m in range(M)]),
    }
    for name, loss in RECONSTRUCTION_LOSSES.items():
        cases[name] = (loss(x, logits), [loss(x[m], logits[m]) for m in range(M)])
    for name, (batched, separate) in cases.items():
        torch.testing.assert_close(batched, torch.stack(separate), rtol=1e-5, atol=1e-5, msg=name)
