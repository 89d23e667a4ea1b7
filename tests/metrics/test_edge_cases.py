"""Bad or degenerate input: a defined result or a clear error, never a crash inside scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

import disentangled.metrics as M


def arrays(n=300, d=3, seed=0):
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n)], axis=1)
    codes = factors[:, [0, 1, 0]][:, :d] + 0.3 * rng.normal(size=(n, d))
    return codes, factors


def test_a_factor_with_one_value_is_left_out():
    codes, factors = arrays()
    with_constant = np.hstack([factors, np.full((len(factors), 1), 4)])
    assert M.mig(codes, with_constant) == pytest.approx(M.mig(codes, factors))
    assert M.sap(codes, with_constant, continuous=True) == pytest.approx(M.sap(codes, factors, continuous=True))
    me = M.modularity_explicitness(codes, with_constant)
    assert 0 <= me["modularity_score"] <= 1 and 0 <= me["explicitness_score_test"] <= 1
    assert M.dci(codes, with_constant)["disentanglement"] == pytest.approx(M.dci(codes, factors)["disentanglement"])
    with pytest.raises(ValueError, match="mig: every factor takes a single value"):
        M.mig(codes, np.zeros_like(factors))


def test_constant_codes_are_defined():
    codes, factors = arrays()
    codes[:, 2] = 1.5
    me = M.modularity_explicitness(codes, factors)
    assert np.isfinite(list(me.values())).all()
    unsup = M.unsupervised_scores(codes)
    assert np.isfinite(unsup["gaussian_total_correlation"]) and unsup["gaussian_total_correlation"] >= 0
    assert M.irs(codes, factors)["num_active_dims"] == 2.0
    assert M.unsupervised_scores(np.ones((10, 3)))["gaussian_wasserstein_correlation_norm"] == 0.0


def test_one_code_and_fewer_codes_than_factors():
    codes, factors = arrays(d=1)
    assert 0 <= M.mig(codes, factors) <= 1
    assert 0 <= M.sap(codes, factors, continuous=True) <= 1
    scores = M.dci(codes, factors)
    assert scores["completeness"] == pytest.approx(1.0)


def test_too_few_points_and_bad_arrays_are_clear_errors():
    codes, factors = arrays()
    with pytest.raises(ValueError, match="mig: needs at least 2 points"):
        M.mig(codes[:1], factors[:1])
    with pytest.raises(ValueError, match="mig: factors have 299 points but the codes have 300"):
        M.mig(codes, factors[:-1])
    with pytest.raises(ValueError, match="dci: factors must be integer class labels"):
        M.dci(codes, factors + 0.5)
    with pytest.raises(ValueError, match="sap: codes contain 1 NaN"):
        bad = codes.copy()
        bad[0, 0] = np.nan
        M.sap(bad, factors)
    with pytest.raises(ValueError, match="downstream_logistic_regression: 5-fold cross-validation needs at least 5"):
        M.downstream_scores(codes[:3], factors[:3], codes, factors, predictor="logistic_regression_cv")
    with pytest.raises(ValueError, match=r"each size in num_train must be >= 5 \(5-fold cross-validation\), got"):
        M.DownstreamLogisticRegression(num_train=(3,))
    with pytest.raises(ValueError, match="unsupervised: codes contain 2 NaN or infinite values"):
        bad = codes.copy()
        bad[:2, 1] = np.inf
        M.unsupervised_scores(bad)


def test_explicitness_with_a_class_missing_from_the_test_sample():
    codes, factors = arrays()
    keep = factors[:, 1] != 3
    me = M.modularity_explicitness(codes, factors, codes[keep], factors[keep])
    assert 0 <= me["explicitness_score_test"] <= 1


def test_fixes_are_options():
    assert M.FactorVAE().active_dims == "count" and M.IRS().active_dims == "count"
    codes, factors = arrays()
    codes[:, 2] = 0.0
    assert M.irs(codes, factors, active_dims="reference")["num_active_dims"] == pytest.approx(float(np.sum(codes[:, :2])))
    with pytest.raises(ValueError, match="active_dims"):
        M.FactorVAE(active_dims="len")



def test_allocator_tuning_is_applied_once_and_can_be_refused(monkeypatch):
    """keep_freed_memory only changes glibc's thresholds (no number moves); the environment
    variable turns it off, and a second call does nothing."""
    import platform

    from disentangled import memory

    monkeypatch.setattr(memory, "_TUNED", None)
    monkeypatch.setenv("DISENTANGLED_DEFAULT_MALLOC", "1")
    assert memory.keep_freed_memory() is False
    monkeypatch.delenv("DISENTANGLED_DEFAULT_MALLOC")
    first = memory.keep_freed_memory()
    assert first is (platform.libc_ver()[0] == "glibc")
    assert memory.keep_freed_memory() is first
