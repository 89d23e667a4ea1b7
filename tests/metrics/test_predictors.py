"""Per-factor fits over several samples at once are the fits made one sample at a time."""

from __future__ import annotations

import numpy as np
import pytest

from disentangled.metrics.predictors import fit_factors, fit_samples


def _sample(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.stack([(x[:, 0] > 0).astype(int), np.clip((x[:, 1] * 2 + 3).astype(int), 0, 5), np.zeros(n, int)], axis=1)
    x_test = rng.normal(size=(40, 3))
    y_test = np.stack([(x_test[:, 0] > 0).astype(int), np.clip((x_test[:, 1] * 2 + 3).astype(int), 0, 5), np.zeros(40, int)], axis=1)
    return x, y, x_test, y_test


@pytest.mark.parametrize("predictor", ["gradient_boosting", "logistic_regression_cv"])
def test_fits_of_several_samples_in_one_pool_are_the_one_by_one_fits(predictor):
    samples = [_sample(0, 30), _sample(1, 120)]
    pooled = fit_samples(predictor, samples, n_jobs=2)
    for sample, fits in zip(samples, pooled):
        alone = fit_factors(predictor, *sample, n_jobs=1)
        assert len(fits) == len(alone) == 3
        for a, b in zip(fits, alone):
            np.testing.assert_array_equal(a.importance, b.importance)
            assert (a.train_accuracy, a.test_accuracy) == (b.train_accuracy, b.test_accuracy)


def test_seeds_drawn_from_an_rng_are_drawn_sample_by_sample():
    samples = [_sample(2, 60), _sample(3, 60)]
    pooled = fit_samples("gradient_boosting", samples, n_jobs=1, rng=np.random.RandomState(4))
    rng = np.random.RandomState(4)
    alone = [fit_factors("gradient_boosting", *s, n_jobs=1, rng=rng) for s in samples]
    for fits, expected in zip(pooled, alone):
        for a, b in zip(fits, expected):
            np.testing.assert_array_equal(a.importance, b.importance)


def test_fits_handed_to_the_pool_overlap_and_are_the_one_by_one_fits():
    from disentangled.metrics.predictors import submit_samples

    first = [_sample(5, 150), _sample(6, 40)]
    second = [_sample(7, 90)]
    # two submissions outstanding at once, collected in the other order
    pending_trees = submit_samples("gradient_boosting", first, n_jobs=2)
    pending_lr = submit_samples("logistic_regression_cv", second, n_jobs=2)
    lr, trees = pending_lr.result(), pending_trees.result()
    assert pending_trees.result() is trees  # collected once
    for predictor, samples, got in (("gradient_boosting", first, trees), ("logistic_regression_cv", second, lr)):
        for sample, fits in zip(samples, got):
            for a, b in zip(fits, fit_factors(predictor, *sample, n_jobs=1)):
                np.testing.assert_array_equal(a.importance, b.importance)
                assert (a.train_accuracy, a.test_accuracy) == (b.train_accuracy, b.test_accuracy)
