"""Values against disentanglement_lib's own outputs on the same inputs (see golden_values.py)."""

from __future__ import annotations

import numpy as np
import pytest
from golden_values import GOLDEN
from metric_support import IdentityData, golden_arrays, golden_representation

import disentangled.metrics as M
from disentangled.metrics.utils import discrete_entropy, discrete_mutual_info, histogram_discretize

EXACT = 1e-6  # deterministic computations
# Randomised solvers: the reference's boosted trees and linear SVMs take no seed, so the
# reference itself moves between runs; the tolerances cover that spread (see docs/metrics.md).
GBT_TOL = 0.01
SVM_TOL = 0.01
# Explicitness is the AUC of an L-BFGS logistic regression that stops at scikit-learn's
# tolerance, so its coefficients carry the rounding of the BLAS kernels the CPU selects: the
# sampled test's AUCs (500 training points) came out 6e-6 away from the reference's values on
# an Intel Xeon, while they matched on the AMD EPYC the values were recorded with.
LBFGS_TOL = 1e-4


@pytest.fixture(scope="module", params=["float32", "float64"])
def arrays(request):
    return request.param, golden_arrays(dtype=np.dtype(request.param))


def test_discretizer_and_information(arrays):
    dtype, (codes, factors, _, _) = arrays
    golden = GOLDEN[dtype]
    discrete = histogram_discretize(codes, 20)
    np.testing.assert_array_equal(discrete[:5], np.array(golden["discretized_first_rows"]))
    np.testing.assert_allclose(discrete_mutual_info(discrete, factors), golden["discrete_mi"], rtol=0, atol=EXACT)
    np.testing.assert_allclose(discrete_entropy(factors), golden["entropy"], rtol=0, atol=EXACT)


def test_deterministic_metrics(arrays):
    dtype, (codes, factors, codes_test, factors_test) = arrays
    golden = GOLDEN[dtype]
    assert M.mig(codes, factors) == pytest.approx(golden["mig"], abs=EXACT)
    me = M.modularity_explicitness(codes, factors, codes_test, factors_test)
    assert me["modularity_score"] == pytest.approx(golden["modularity"], abs=EXACT)
    assert me["explicitness_score_train"] == pytest.approx(golden["explicitness_train"], abs=EXACT)
    assert me["explicitness_score_test"] == pytest.approx(golden["explicitness_test"], abs=EXACT)
    unsup = M.unsupervised_scores(codes)
    for key in (
        "gaussian_total_correlation",
        "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm",
        "mutual_info_score",
    ):
        assert unsup[key] == pytest.approx(golden[key], abs=EXACT), key
    assert M.irs(codes, factors)["IRS"] == pytest.approx(golden["irs"], abs=EXACT)
    assert M.sap(codes, factors, continuous=True) == pytest.approx(golden["sap_continuous"], abs=EXACT)


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_randomised_metrics(dtype):
    codes, factors, codes_test, factors_test = golden_arrays(dtype=np.dtype(dtype))
    golden = GOLDEN[dtype]
    ours = M.dci(codes, factors, codes_test, factors_test)
    for seed in range(3):
        for key, value in golden[f"dci_seed{seed}"].items():
            assert ours[key] == pytest.approx(value, abs=GBT_TOL), (seed, key)
    ours_sap = M.sap(codes, factors, codes_test, factors_test, rng=np.random.default_rng(0))
    for seed in range(3):
        assert ours_sap == pytest.approx(golden[f"sap_seed{seed}"], abs=SVM_TOL)


def _close(ours: dict, name: str, reference: dict, tol: float, rename=lambda k: k):
    for key, value in reference.items():
        assert ours[f"{name}.{rename(key)}"] == pytest.approx(value, abs=tol), key


SAMPLED = GOLDEN["sampled"]


def test_sampled_metrics_draw_the_reference_samples():
    """Same seed, same data, same representation: the reference's numbers."""
    data, rep, rs = IdentityData(), golden_representation, np.random.RandomState
    _close(M.MIG(num_train=1000).evaluate(data, rep, rng=rs(11)), "mig", SAMPLED["mig"], EXACT)
    _close(M.Unsupervised(num_train=500).evaluate(data, rep, rng=rs(12)), "unsupervised", SAMPLED["unsupervised"], EXACT)
    me = M.ModularityExplicitness(num_train=500, num_test=250).evaluate(data, rep, rng=rs(13))
    reference = SAMPLED["modularity_explicitness"]
    _close(me, "modularity_explicitness", {"modularity_score": reference["modularity_score"]}, EXACT)
    _close(me, "modularity_explicitness", {k: v for k, v in reference.items() if k.startswith("explicitness")}, LBFGS_TOL)
    irs = M.IRS(num_train=500, active_dims="reference").evaluate(data, rep, rng=rs(14))
    _close(irs, "irs", SAMPLED["irs"], 1e-3, rename=lambda k: "irs" if k == "IRS" else k)
    _close(M.BetaVAE(batch_size=8, num_train=300, num_eval=150).evaluate(data, rep, rng=rs(15)), "beta_vae", SAMPLED["beta_vae"], EXACT)
    fvae = M.FactorVAE(batch_size=8, num_train=300, num_eval=150, num_variance_estimate=500, active_dims="reference")
    _close(fvae.evaluate(data, rep, rng=rs(16)), "factor_vae", SAMPLED["factor_vae"], EXACT)


def _sizes(sizes, reference):
    """The reference's keys for the first ``len(sizes)`` training sizes (the draws come in order)."""
    return {k: v for k, v in reference.items() if int(k.split(":")[0]) in sizes}


def test_downstream_logistic_regression():
    # Only the first training size: at 100 points the 5-fold choice of C hangs on single
    # predictions next to the decision boundary, which the BLAS kernels' rounding moves from
    # one CPU to another (on an Intel Xeon two of the five factors got other accuracies than
    # the reference's, recorded on an AMD EPYC, by up to 0.19). The draws of the later sizes
    # are checked by test_downstream_boosted_trees, which samples the same way.
    sizes = (10,)
    data, rep = IdentityData(), golden_representation
    lr = M.DownstreamLogisticRegression(num_train=sizes, num_test=100).evaluate(data, rep, rng=np.random.RandomState(19))
    reference = _sizes(sizes, SAMPLED["downstream_logistic_regression"])
    _close(lr, "downstream_logistic_regression", reference, EXACT, rename=lambda k: k.replace(":", "."))


def test_sampled_randomised_metrics():
    data, rep, rs = IdentityData(), golden_representation, np.random.RandomState
    _close(M.DCI(num_train=300, num_test=150).evaluate(data, rep, rng=rs(17)), "dci", SAMPLED["dci"], GBT_TOL)
    sap = M.SAP(num_train=300, num_test=150).evaluate(data, rep, rng=rs(18))
    _close(sap, "sap", SAMPLED["sap"], SVM_TOL, rename=lambda k: "sap_score")


@pytest.mark.parametrize("sizes", [(10,), pytest.param((10, 100), marks=pytest.mark.slow)])
def test_downstream_boosted_trees(sizes):
    data, rep = IdentityData(), golden_representation
    bt = M.DownstreamBoostedTrees(num_train=sizes, num_test=100).evaluate(data, rep, rng=np.random.RandomState(20))
    reference = _sizes(sizes, SAMPLED["downstream_boosted_trees"])
    # 100 test points (one point is 0.01); with 10 or 100 training points the trees' ties
    # between equally good splits, which the reference breaks at random, decide more
    _close(bt, "downstream_boosted_trees", {k: v for k, v in reference.items() if "mean" in k}, 0.03, rename=lambda k: k.replace(":", "."))
