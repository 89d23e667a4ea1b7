"""The re-implemented boosted trees against scikit-learn's GradientBoostingClassifier."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from disentangled.metrics.boosting import fit_gbt
from disentangled.metrics.predictors import fit_factors


def problem(seed, n=300, d=4, k=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x_test = rng.normal(size=(150, d)).astype(np.float32)
    y = np.clip((x[:, 0] + 0.5 * x[:, 1] + 0.5 * rng.normal(size=n)) * k / 4 + k / 2, 0, k - 1).astype(int)
    return x, y, x_test


@pytest.mark.parametrize("k", [2, 4])
def test_stumps_match_sklearn_exactly(k):
    x, y, x_test = problem(k, k=k)
    ref = GradientBoostingClassifier(n_estimators=20, max_depth=1, random_state=0).fit(x, y)
    ours = fit_gbt(x, y, x_test, n_estimators=20, max_depth=1)
    np.testing.assert_allclose(ours.importances, ref.feature_importances_, atol=1e-10)
    np.testing.assert_array_equal(ours.predict_train, ref.predict(x))
    np.testing.assert_array_equal(ours.predict_test, ref.predict(x_test))


@pytest.mark.parametrize("k", [2, 4])
def test_depth_two_trees_match_sklearn_up_to_ties(k):
    """Equally good splits of a small node on different features (a tie, broken at random by
    both) give the same training partition: training predictions match exactly."""
    x, y, x_test = problem(10 + k, k=k)
    ref = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x, y)
    ours = fit_gbt(x, y, x_test, n_estimators=20, max_depth=2)
    np.testing.assert_array_equal(ours.predict_train, ref.predict(x))
    np.testing.assert_allclose(ours.importances, ref.feature_importances_, atol=1e-3)
    assert np.mean(ours.predict_test == ref.predict(x_test)) >= 0.98


def test_default_trees_agree_with_sklearn_up_to_its_own_tie_breaking():
    x, y, x_test = problem(0, n=300, k=4)
    ours = fit_gbt(x, y, x_test, n_estimators=20)
    refs = [GradientBoostingClassifier(n_estimators=20, random_state=s).fit(x, y) for s in (0, 1)]
    spread = np.abs(refs[0].feature_importances_ - refs[1].feature_importances_).max()
    diff = np.abs(ours.importances - refs[0].feature_importances_).max()
    assert diff <= max(5 * spread, 5e-3)
    assert np.mean(ours.predict_test == refs[0].predict(x_test)) >= 0.95


def test_duplicated_features_share_importance_and_seed_is_reproducible():
    x, y, x_test = problem(3, n=300, d=2, k=3)
    dup = np.hstack([x, x])
    a = fit_gbt(dup, y, n_estimators=20, random_state=1)
    b = fit_gbt(dup, y, n_estimators=20, random_state=1)
    np.testing.assert_array_equal(a.importances, b.importances)
    # each feature's importance is split between its two copies, roughly evenly
    assert 0.25 <= a.importances[0] / (a.importances[0] + a.importances[2]) <= 0.75


def test_one_class_is_an_error_and_fit_factors_uses_the_constant_predictor():
    x, y, x_test = problem(4)
    with pytest.raises(ValueError, match="2 classes"):
        fit_gbt(x, np.zeros(len(x), int))
    factors = np.stack([y, np.full(len(y), 7)], axis=1)
    fits = fit_factors("gradient_boosting", x, factors, x_test, np.full((len(x_test), 2), 7), n_jobs=1)
    assert fits[1].train_accuracy == 1.0 and not fits[1].importance.any()
