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


def _split_inputs(seed, n=400, d=3, t=5, s=4):
    """A split search's inputs: codes with repeats and gaps below the split threshold, samples
    of nodes not being split (-1), residuals of any sign, some integer (equal gains)."""
    from disentangled.metrics.boosting import FEATURE_THRESHOLD

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[: n // 4] = x[n // 4 : n // 2]  # exact repeats
    x[n // 2 : n // 2 + 20, 0] = x[:20, 0] + FEATURE_THRESHOLD / 2  # closer than the threshold
    order = np.argsort(x, axis=0, kind="stable").T.copy()
    sorted_x = np.take_along_axis(x.T, order, axis=1)
    slot = rng.integers(-1, s, size=(n, t)).astype(np.int8)
    slot[:, 0] = -1  # a tree with nothing to split at this depth
    residual = rng.normal(size=(n, t))
    residual[:, 1:3] = rng.integers(-1, 2, size=(n, 2))
    # tree 3, one node: residuals +1, -1, +1, -1 by quarters of code 0's order give the same
    # best gain at its first and third quarter (the first is kept)
    slot[:, 3] = 0
    residual[order[0], 3] = np.repeat([1.0, -1.0, 1.0, -1.0], n // 4)
    cnt = np.zeros((t, s))
    tot = np.zeros((t, s))
    for tree in range(t):
        for i in range(n):
            if slot[i, tree] >= 0:
                cnt[tree, slot[i, tree]] += 1
                tot[tree, slot[i, tree]] += residual[i, tree]
    return order, sorted_x, residual, slot, cnt, tot


@pytest.mark.parametrize("s", [1, 2, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_split_search_is_the_scalar_one_bit_for_bit(s, seed):
    from disentangled.metrics.boosting import _masked_split_search, _split_search

    args = _split_inputs(seed, s=s)
    gain, thr = _split_search(*args)
    gain_v, thr_v = _masked_split_search(*args)
    assert np.isfinite(gain).any() and np.isinf(gain).any()
    np.testing.assert_array_equal(gain_v, gain)
    np.testing.assert_array_equal(thr_v, thr)


def test_trees_are_the_same_with_either_split_search(monkeypatch):
    from disentangled.metrics import boosting

    x, y, x_test = problem(5, n=600, d=3, k=30)  # enough classes (trees) for the vectorised search
    assert np.unique(y).size >= boosting.MASKED_TREES
    x[:100] = np.round(x[:100], 1)  # ties between samples
    fast = fit_gbt(x, y, x_test, n_estimators=15, random_state=2)
    monkeypatch.setattr(boosting, "MASKED_SLOTS", 0)
    plain = fit_gbt(x, y, x_test, n_estimators=15, random_state=2)
    np.testing.assert_array_equal(fast.importances, plain.importances)
    np.testing.assert_array_equal(fast.predict_train, plain.predict_train)
    np.testing.assert_array_equal(fast.predict_test, plain.predict_test)
