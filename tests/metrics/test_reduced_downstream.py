"""Reduced downstream task: removal of the most important codes, recomputed; keys; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from metric_support import IdentityData

import disentangled.metrics as M
from disentangled import evaluate as ev

GRID = IdentityData((3, 4, 5))


def _factors(observations):
    return np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)


def identity(observations):
    return _factors(observations)


def duplicated(observations):
    return np.hstack([_factors(observations)] * 2)


identity.deterministic = duplicated.deterministic = True


def _sample(rep, n=600, seed=0):
    from disentangled.metrics.sampling import sample_codes

    rs = np.random.RandomState(seed)
    return sample_codes(GRID, rep, n, rng=rs), sample_codes(GRID, rep, 300, rng=rs)


def test_removing_a_factors_code_leaves_the_others_intact():
    (codes, factors), (codes_test, factors_test) = _sample(identity)
    scores = M.reduced_downstream_scores(codes, factors, codes_test, factors_test, num_factors_to_remove=1)
    for f in range(3):
        # the other factors keep their own codes: predicted without error
        assert scores[f"reduced_factor_{f}.mean_test_accuracy_non_reduced_factor"] == 1.0
        # factor f has lost its only code; the factors are independent, so what is left is
        # at most the most frequent class plus what the trees overfit
        assert scores[f"reduced_factor_{f}.mean_test_accuracy_reduced_factor"] < 0.6
    assert scores["mean_test_accuracy_other_factors"] == 1.0
    # with nothing removed it is the ordinary downstream task
    untouched = M.reduced_downstream_scores(codes, factors, codes_test, factors_test, num_factors_to_remove=0)
    assert untouched["mean_test_accuracy_reduced_factor"] == 1.0


def test_a_copy_of_the_removed_code_is_found_at_the_next_removal():
    (codes, factors), (codes_test, factors_test) = _sample(duplicated)
    one = M.reduced_downstream_scores(codes, factors, codes_test, factors_test, num_factors_to_remove=1)
    assert one["mean_test_accuracy_reduced_factor"] == 1.0  # the copy still carries the factor
    two = M.reduced_downstream_scores(codes, factors, codes_test, factors_test, num_factors_to_remove=2)
    (c1, f1), (ct1, ft1) = _sample(identity)
    alone = M.reduced_downstream_scores(c1, f1, ct1, ft1, num_factors_to_remove=1)
    # both copies gone: the same predictions as with the single code removed
    for f in range(3):
        key = f"reduced_factor_{f}.mean_test_accuracy_reduced_factor"
        assert two[key] == alone[key]


def test_keys_are_the_references_and_the_codes_path_computes_it():
    metric = M.ReducedDownstream(num_train=(200,), num_test=100)
    scores = metric.evaluate(GRID, identity, rng=np.random.RandomState(0))
    expected = {f"reduced_downstream.200.mean_{s}_accuracy_{w}" for s in ("train", "test") for w in ("reduced_factor", "other_factors")}
    for f in range(3):
        head = f"reduced_downstream.200.reduced_factor_{f}.mean_"
        expected |= {head + f"{s}_accuracy_{w}" for s in ("train", "test") for w in ("reduced_factor", "non_reduced_factor")}
        expected |= {head + f"{s}_accuracy_factor_{i}" for s in ("train", "test") for i in range(3)}
    assert set(scores) == expected
    dlib = ev.to_dlib_keys(scores)
    assert "reduced_downstream_task.200:reduced_factor_1:mean_test_accuracy_factor_2" in dlib
    (codes, factors), (codes_test, factors_test) = _sample(identity, n=200)
    from_codes = ev.score_codes(codes, factors, codes_test, factors_test, metrics=["reduced_downstream"])
    assert set(from_codes) == expected


def test_removing_every_code_is_refused_naming_the_setting():
    (codes, factors), (codes_test, factors_test) = _sample(identity, n=50)
    with pytest.raises(ValueError, match=r"reduced_downstream: num_factors_to_remove must be in \[0, 2\] .*3 codes.*got 3"):
        M.reduced_downstream_scores(codes, factors, codes_test, factors_test, num_factors_to_remove=3)
    with pytest.raises(ValueError, match="reduced_downstream: num_factors_to_remove must be >= 0, got -1"):
        M.ReducedDownstream(num_factors_to_remove=-1)
