"""Strong downstream task: the reference's intervene properties and task test, exact cases, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from metric_support import IdentityData

import disentangled.metrics as M
from disentangled import data as D
from disentangled.metrics.strong_downstream import intervene


def test_intervene_has_the_references_properties():
    # strong_downstream_task_test.test_intervene, on the reference's DummyData (10 factors of 5)
    dummy = D.get("dummy_data")
    rs = np.random.RandomState(0)
    train, test = dummy.sample_factors(1000, rng=rs), dummy.sample_factors(1000, rng=rs)
    for i in range(dummy.num_factors):
        y_train, y_test, j, value = intervene(train, test, i, dummy.factor_sizes, rng=rs)
        assert j != i
        assert np.all(y_train[:, j] == value)
        assert np.all(y_test[:, j] != value)
        # nothing else changes, and the samples given are left as they were
        np.testing.assert_array_equal(np.delete(y_train, j, axis=1), np.delete(train, j, axis=1))
        np.testing.assert_array_equal(np.delete(y_test, j, axis=1), np.delete(test, j, axis=1))
    # the interventions come from the rng given (the reference draws them from numpy's global state)
    a = intervene(train, test, 0, dummy.factor_sizes, rng=np.random.RandomState(3))
    b = intervene(train, test, 0, dummy.factor_sizes, rng=np.random.RandomState(3))
    assert a[2:] == b[2:] and np.array_equal(a[1], b[1])


def test_intervene_needs_another_factor_with_two_values():
    with pytest.raises(ValueError, match=r"predicting factor 0 needs another factor with at least two values.*\[3, 1\]"):
        intervene(np.zeros((4, 2), int), np.zeros((4, 2), int), 0, [3, 1], rng=np.random.RandomState(0))


def _factors(observations):
    return np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)


def identity(observations):
    return _factors(observations)


identity.deterministic = True


def test_separate_codes_generalise_under_the_shift():
    # with one code per factor, the classifier of factor i never splits on the code of the
    # factor held constant in training, so the shift changes nothing: accuracy 1 and gap 0
    metric = M.StrongDownstream(num_train=(1000,), num_test=500, n_experiment=3)
    scores = metric.evaluate(IdentityData((3, 4, 5)), identity, rng=np.random.RandomState(0))
    assert scores == {
        "strong_downstream.1000.mean_train_accuracy": 1.0,
        "strong_downstream.1000.mean_test_accuracy": 1.0,
        "strong_downstream.1000.mean_strong_train_accuracy": 1.0,
        "strong_downstream.1000.mean_strong_test_accuracy": 1.0,
        "strong_downstream.1000.strong_generalization_gap": 0.0,
    }


def test_a_data_set_with_one_factor_is_refused():
    with pytest.raises(ValueError, match="strong_downstream: the data set must have at least 2 latent factors"):
        M.StrongDownstream(num_train=(20,), num_test=10).evaluate(IdentityData((4,)), identity, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="strong_downstream: n_experiment must be >= 1, got 0"):
        M.StrongDownstream(n_experiment=0)


@pytest.mark.slow
def test_the_references_task_on_noise_stays_at_chance():
    # strong_downstream_task_test.test_task: DummyData, a column of noise pixels as the code,
    # boosted trees, 1,000/1,000 points, two repetitions: strong test accuracy in [0, 0.3]
    # (chance is 0.2); about 25 s
    def column(observations):
        return np.asarray(observations, dtype=np.float64)[:, 0, :, 0]

    scores = M.StrongDownstream(num_train=(1000,), num_test=1000, n_experiment=2).evaluate(
        D.get("dummy_data"), column, rng=np.random.RandomState(0))
    assert 0.0 <= scores["strong_downstream.1000.mean_strong_test_accuracy"] <= 0.3
