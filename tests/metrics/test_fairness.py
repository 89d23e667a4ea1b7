"""Fairness: the reference's exact values, the paired design, values computed with the reference, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from metric_support import IdentityData

import disentangled.metrics as M
from disentangled.metrics.fairness import fairness_scores_dict, inter_group_fairness


def test_inter_group_fairness_of_the_references_counts():
    # fairness_test.test_inter_group_fairness: pooled 1/3 : 2/3; groups 0 : 1 and 1/2 : 1/2,
    # total variations 1/3 and 1/6, mean 1/3 * 1/3 + 2/3 * 1/6 = 2/9; computed in float32 as
    # the reference computes it, hence the tolerance
    mean, worst = inter_group_fairness(np.array([[0, 100], [100, 100]]))
    assert mean == pytest.approx(2 / 9, abs=1e-7) and worst == pytest.approx(1 / 3, abs=1e-7)
    assert inter_group_fairness([[5, 5], [3, 3]]) == (0.0, 0.0)  # every group predicted alike


def test_scores_dict_of_the_references_matrix():
    # fairness_test.test_compute_scores_dict, with the project's dots for the reference's colons
    scores = fairness_scores_dict(np.array([[0.0, 2.0, 4.0], [4.0, 0.0, 8.0], [2.0, 10.0, 0.0]]), "test")
    assert scores == {
        "test.pred0.sens1": 2.0, "test.pred0.sens2": 4.0, "test.pred1.sens0": 4.0,
        "test.pred1.sens2": 8.0, "test.pred2.sens0": 2.0, "test.pred2.sens1": 10.0,
        "test.pred0.mean_sens": 3.0, "test.pred0.max_sens": 4.0, "test.pred1.mean_sens": 6.0,
        "test.pred1.max_sens": 8.0, "test.pred2.mean_sens": 6.0, "test.pred2.max_sens": 10.0,
        "test.sens0.mean_pred": 3.0, "test.sens0.max_pred": 4.0, "test.sens1.mean_pred": 6.0,
        "test.sens1.max_pred": 10.0, "test.sens2.mean_pred": 6.0, "test.sens2.max_pred": 8.0,
        "test.mean_sens.mean_pred": 5.0, "test.mean_sens.max_pred": pytest.approx(22 / 3, abs=1e-15),
        "test.max_sens.mean_pred": 6.0, "test.max_sens.max_pred": 10.0,
        "test.mean_pred.mean_sens": 5.0, "test.mean_pred.max_sens": pytest.approx(22 / 3, abs=1e-15),
        "test.max_pred.mean_sens": 6.0, "test.max_pred.max_sens": 10.0,
    }


GRID = IdentityData((3, 4, 5))


def _factors(observations):
    return np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)


def identity(observations):
    return _factors(observations)


def mixed(observations):  # invertible: f0 and f1 can both be read back
    f = _factors(observations)
    return np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2]], axis=1)


def lossy(observations):  # f0 and f1 only through their sum
    f = _factors(observations)
    return np.stack([f[:, 0] + f[:, 1], f[:, 2]], axis=1)


for _rep in (identity, mixed, lossy):
    _rep.deterministic = True


@pytest.mark.parametrize("backend", ["fast", "sklearn"])
def test_values_computed_with_the_reference(backend):
    # disentanglement_lib's fairness.py run here (scikit-learn 1.9.1) on the grid [3, 4, 5] with
    # 2,000 training points, 100 per class and RandomState(0): exact 0 for codes from which
    # every factor can be read, and these values for the lossy code (pred0:sens2 is not 0
    # although f2 has its own code: the trees also split on the code of f0 + f1)
    metric = M.Fairness(num_train=2000, backend=backend)
    for rep in (identity, mixed):
        scores = metric.evaluate(GRID, rep, rng=np.random.RandomState(0))
        assert set(scores.values()) == {0.0}, rep.__name__
    scores = metric.evaluate(GRID, lossy, rng=np.random.RandomState(0))
    assert len(scores) == 52  # 2 x (6 pairs + 6 per target + 6 per sensitive factor + 8 totals), the reference's count
    assert scores["fairness.mean_fairness.mean_pred.mean_sens"] == pytest.approx(0.14950045845988724, abs=1e-12)
    assert scores["fairness.mean_fairness.pred0.sens1"] == pytest.approx(0.22562499158084393, abs=1e-12)
    assert scores["fairness.mean_fairness.pred0.sens2"] == pytest.approx(0.29639999568462366, abs=1e-12)


def test_one_set_of_test_points_serves_every_value_of_the_sensitive_factor():
    seen = []

    def recording(observations):
        seen.append(_factors(observations).astype(int))
        return identity(observations)

    M.Fairness(num_train=50, num_test_points_per_class=7).evaluate(GRID, recording, rng=np.random.RandomState(0), cache=False)
    tests = np.concatenate(seen)[50:]
    assert len(tests) == 7 * (2 * 12)  # each target i: 7 points for every value of each other factor j (sizes 3, 4, 5)
    pos = 0
    for i in range(3):
        for j in range(3):
            if i == j:
                continue
            groups = [tests[pos + 7 * c : pos + 7 * (c + 1)] for c in range(GRID.factor_sizes[j])]
            pos += 7 * GRID.factor_sizes[j]
            for c, group in enumerate(groups):
                assert np.all(group[:, j] == c)
                np.testing.assert_array_equal(np.delete(group, j, axis=1), np.delete(groups[0], j, axis=1))


def test_a_data_set_with_one_factor_is_refused():
    with pytest.raises(ValueError, match=r"fairness: the data set must have at least 2 latent factors .*got 1"):
        M.Fairness(num_train=20).evaluate(IdentityData((4,)), identity, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="fairness: num_test_points_per_class must be >= 1, got 0"):
        M.Fairness(num_test_points_per_class=0)
