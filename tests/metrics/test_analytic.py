"""The reference's analytic cases: exact answers and good/bad representations."""

from __future__ import annotations

import numpy as np
import pytest
from metric_support import IdentityData, duplicated_representation, identity_representation, zero_representation

import disentangled.metrics as M
from disentangled.metrics.utils import discrete_entropy, discrete_mutual_info, histogram_discretize

SMALL = (4, 5, 6, 3)  # an identity data set small enough for quick tests


def rs(seed=0):
    return np.random.RandomState(seed)


# -- utilities ---------------------------------------------------------------------------


def test_histogram_discretizer():
    codes = np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [5.0] * 10]).T
    out = histogram_discretize(codes, num_bins=5)
    np.testing.assert_array_equal(out[:, 0], [1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    assert len(np.unique(out[:, 1])) == 1  # a constant code lands in one bin


def test_discrete_entropy_and_mutual_information():
    labels = np.array([[0], [1], [2]] * 10)
    assert discrete_entropy(labels)[0] == pytest.approx(np.log(3))
    a = np.array([0, 0, 1, 1, 2, 2])
    b = np.array([0, 0, 1, 1, 1, 1])
    mi = discrete_mutual_info(np.stack([a, b], 1), np.stack([a, b], 1))
    # I(a; a) = H(a) = ln 3, I(b; b) = H(b) = H(1/3, 2/3), I(a; b) = H(b) (b is a function of a)
    h_b = -(1 / 3) * np.log(1 / 3) - (2 / 3) * np.log(2 / 3)
    np.testing.assert_allclose(mi, [[np.log(3), h_b], [h_b, h_b]], atol=1e-12)


# -- DCI on hand-built importance matrices -----------------------------------------------

DIAG = np.diag(5.0 * np.ones(5))


@pytest.mark.parametrize(
    "matrix, expected_d, expected_c",
    [
        (DIAG, 1.0, 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),  # empty code
        (np.zeros((10, 10)), 0.0, 0.0),
        (np.vstack([DIAG, DIAG]), 1.0, 1 - np.log(2) / np.log(10)),  # redundant codes
        (DIAG[:2, :], 1.0, 1.0),  # missed factors
        (np.hstack([DIAG, DIAG]), 1 - np.log(2) / np.log(10), 1.0),  # one code for two factors
    ],
)
def test_dci_importance_matrices(matrix, expected_d, expected_c):
    assert M.disentanglement(matrix) == pytest.approx(expected_d, abs=1e-7)
    assert M.completeness(matrix) == pytest.approx(expected_c, abs=1e-7)


def test_dci_single_factor_or_code_is_defined():
    assert M.disentanglement(np.array([[2.0], [1.0]])) == pytest.approx(1.0)
    assert M.completeness(np.array([[2.0, 1.0]])) == pytest.approx(1.0)


# -- modularity on hand-built mutual information -------------------------------------------


@pytest.mark.parametrize(
    "matrix, expected",
    [
        (DIAG, 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 2.0 / 3.0),
        (np.zeros((10, 10)), 0.0),
        (np.vstack([DIAG, DIAG]), 1.0),
        (DIAG[:2, :], 1.0),
        (np.hstack([DIAG, DIAG]), 1.0 - 1.0 / 9.0),
    ],
)
def test_modularity_matrices(matrix, expected):
    assert M.modularity(matrix) == pytest.approx(expected)


# -- unsupervised scores: closed forms ------------------------------------------------------


def test_gaussian_total_correlation_closed_forms():
    assert M.gaussian_total_correlation(np.eye(4)) == pytest.approx(0.0, abs=1e-12)
    a, b, c = 2.0, 0.5, 0.6
    cov = np.array([[a, c], [c, b]])
    rho2 = c * c / (a * b)
    assert M.gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - rho2))


def test_gaussian_wasserstein_correlation_closed_forms():
    assert M.gaussian_wasserstein_correlation(np.diag([1.0, 2.0, 3.0])) == pytest.approx(0.0, abs=1e-12)
    a, b, c = 2.0, 0.5, 0.6
    cov = np.array([[a, c], [c, b]])
    # tr sqrt(M) of a 2x2 matrix with real non-negative eigenvalues: sqrt(tr M + 2 sqrt(det M)),
    # M = diag(cov) cov, tr M = a^2 + b^2, det M = a b (a b - c^2)
    expected = 2 * (a + b) - 2 * np.sqrt(a * a + b * b + 2 * np.sqrt(a * b * (a * b - c * c)))
    assert M.gaussian_wasserstein_correlation(cov) == pytest.approx(expected)


# -- good and bad representations on the identity data set ----------------------------------


def test_identity_scores_high():
    data = IdentityData(SMALL)
    rep = identity_representation
    assert M.MIG(num_train=2000).evaluate(data, rep, rng=rs())["mig.discrete_mig"] >= 0.9
    bvae = M.BetaVAE(batch_size=5, num_train=500, num_eval=500).evaluate(data, rep, rng=rs())
    assert bvae["beta_vae.train_accuracy"] >= 0.9 and bvae["beta_vae.eval_accuracy"] >= 0.9
    fvae = M.FactorVAE(batch_size=5, num_train=500, num_eval=500, num_variance_estimate=500).evaluate(data, rep, rng=rs())
    assert fvae["factor_vae.train_accuracy"] >= 0.9 and fvae["factor_vae.eval_accuracy"] >= 0.9
    assert fvae["factor_vae.num_active_dims"] == 4.0
    dci = M.DCI(num_train=500, num_test=500).evaluate(data, rep, rng=rs())
    assert dci["dci.disentanglement"] >= 0.9 and dci["dci.completeness"] >= 0.9
    assert M.IRS(num_train=2000).evaluate(data, rep, rng=rs())["irs.irs"] >= 0.9
    mod = M.ModularityExplicitness(num_train=1000, num_test=500).evaluate(data, rep, rng=rs())
    assert mod["modularity_explicitness.modularity_score"] >= 0.9
    sap = M.SAP(num_train=1000, continuous_factors=True).evaluate(data, rep, rng=rs())
    assert sap["sap.sap_score"] >= 0.9


def test_zero_codes_score_low():
    data = IdentityData(SMALL)
    rep = zero_representation
    assert M.MIG(num_train=1000).evaluate(data, rep, rng=rs())["mig.discrete_mig"] <= 0.2
    fvae = M.FactorVAE(batch_size=5, num_train=200, num_eval=200, num_variance_estimate=200).evaluate(data, rep, rng=rs())
    assert fvae["factor_vae.eval_accuracy"] <= 0.2 and fvae["factor_vae.num_active_dims"] == 0.0
    assert M.IRS(num_train=1000).evaluate(data, rep, rng=rs())["irs.irs"] <= 0.1
    assert M.SAP(num_train=1000, continuous_factors=True).evaluate(data, rep, rng=rs())["sap.sap_score"] <= 0.2


def test_duplicated_latent():
    data = IdentityData(SMALL)
    rep = duplicated_representation
    assert M.MIG(num_train=2000).evaluate(data, rep, rng=rs())["mig.discrete_mig"] <= 0.1
    assert M.SAP(num_train=1000, continuous_factors=True).evaluate(data, rep, rng=rs())["sap.sap_score"] <= 0.2
    mod = M.ModularityExplicitness(num_train=1000, num_test=500).evaluate(data, rep, rng=rs())
    assert mod["modularity_explicitness.modularity_score"] >= 0.9
    dci = M.DCI(num_train=500, num_test=500).evaluate(data, rep, rng=rs())
    assert dci["dci.disentanglement"] >= 0.9
    target = 1 - np.log(2) / np.log(8)  # two codes share each factor's importance, D = 8
    assert dci["dci.completeness"] == pytest.approx(target, abs=0.1)


def test_permuted_codes_score_low():
    """Codes whose order is shuffled per sample: DCI and modularity near 0 (the reference's "bad metric")."""
    data = IdentityData((6, 6, 6, 6))
    perm_rng = np.random.RandomState(0)

    def shuffled(observations):
        codes = identity_representation(observations)
        return np.stack([perm_rng.permutation(row) for row in codes])

    shuffled.deterministic = False
    dci = M.DCI(num_train=500, num_test=500).evaluate(data, shuffled, rng=rs())
    assert dci["dci.disentanglement"] <= 0.2 and dci["dci.completeness"] <= 0.2
    mod = M.ModularityExplicitness(num_train=3000, num_test=500).evaluate(data, shuffled, rng=rs())
    assert mod["modularity_explicitness.modularity_score"] <= 0.25
