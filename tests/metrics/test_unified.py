"""Unified scores: the reference's identity and duplicated-code tests, exact aggregations, keys."""

from __future__ import annotations

import numpy as np
import pytest
from metric_support import IdentityData, golden_arrays

import disentangled.metrics as M
from disentangled import evaluate as ev
from disentangled.metrics.unified import merge_positions, precision, precision_curve

# the reference's IdentityObservationsData: ten factors of ten values, observed as they are
TEN = IdentityData((10,) * 10)


def identity(observations):
    return np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)


def duplicated(observations):
    return np.hstack([identity(observations)] * 2)


identity.deterministic = duplicated.deterministic = True


def _scores(rep, matrix, num_train=1000, num_test=1000):
    metric = M.Unified(num_train=num_train, num_test=num_test, matrices=(matrix,))
    return metric.evaluate(TEN, rep, rng=np.random.RandomState(0))


def test_identity_codes():
    # unified_scores_test.test_metric_mig and test_metric_dci (the reference uses 10,000
    # training points; the stated ranges hold at 1,000): every aggregation near 1
    mi = _scores(identity, "mutual_information_matrix", num_train=10_000, num_test=100)
    assert 0.9 <= mi["unified.mutual_information_matrix.mig"] <= 1.0
    assert 0.9 <= mi["unified.mutual_information_matrix.modularity"] <= 1.0
    gbt = _scores(identity, "importance_gbt_matrix")
    assert 0.9 <= gbt["unified.importance_gbt_matrix.dci_disentanglement"] <= 1.0


# unified_scores_test.test_duplicated_latent_space_{mig,dci,sap}, 1,000/1,000 points:
# duplicates kill the gaps (MIG, SAP) but leave each code modular and "disentangled" for D


def test_duplicated_codes_mutual_information():
    mi = _scores(duplicated, "mutual_information_matrix")
    assert 0.0 <= mi["unified.mutual_information_matrix.mig"] <= 0.2
    assert 0.9 <= mi["unified.mutual_information_matrix.modularity"] <= 1.0


def test_duplicated_codes_importances():
    gbt = _scores(duplicated, "importance_gbt_matrix")
    assert 0.9 <= gbt["unified.importance_gbt_matrix.dci_disentanglement"] <= 1.0


def test_duplicated_codes_svm_accuracies():
    svm = _scores(duplicated, "accuracy_svm_matrix")
    assert 0.0 <= svm["unified.accuracy_svm_matrix.sap"] <= 0.2


def test_each_matrix_with_its_own_aggregation_is_its_metric():
    codes, factors, codes_test, factors_test = golden_arrays(n=600, n_test=300)
    one = lambda name: M.unified_scores(codes, factors, codes_test, factors_test, matrices=(name,), rng=np.random.default_rng(0))
    mi = one("mutual_information_matrix")
    assert mi["mutual_information_matrix.mig"] == M.mig(codes, factors)
    assert mi["mutual_information_matrix.modularity"] == M.modularity_explicitness(codes, factors)["modularity_score"]
    gbt = one("importance_gbt_matrix")
    dci = M.dci(codes, factors, codes_test, factors_test, rng=np.random.default_rng(0))
    assert gbt["importance_gbt_matrix.dci_disentanglement"] == dci["disentanglement"]
    assert gbt["importance_gbt_matrix.dci_completeness"] == dci["completeness"]
    svm = one("accuracy_svm_matrix")
    assert svm["accuracy_svm_matrix.sap"] == M.sap(codes, factors, codes_test, factors_test, rng=np.random.default_rng(0))


def test_precision_counts_components_with_an_edge():
    assert precision(np.eye(3), 1.0) == 3
    assert precision(np.ones((3, 3)), 1.0) == 1
    assert precision(np.array([[0.9, 0.5], [0.0, 0.0]]), 0.6) == 1  # one edge; the second code has none
    assert precision(np.zeros((2, 2)), 0.0) == 0  # zero entries are never edges
    # identity: three components at every threshold; area = 3 x (1 - 0) from the drop 1 -> 0
    assert precision_curve(np.eye(3)) == {"area_precision": 3.0, "max_precision": 3.0}
    assert precision_curve(np.ones((3, 3))) == {"area_precision": 0.0, "max_precision": 1.0}


def test_merges_follow_the_entries_from_the_largest():
    # codes x factors [[0.9, 0.1], [0.2, 0.8]]: 0.9 joins code 0 to factor 0, 0.8 code 1 to
    # factor 1, and the third largest, 0.2 (code 1, factor 0), joins the two factors
    assert merge_positions(np.array([[0.9, 0.1], [0.2, 0.8]])) == {"merge_0_1": 2.0}
    # three factors: 2 joins 0 through code 0 at position 1; factor 1 joins them through code
    # 1 at 3. As in the reference, a key names first the cluster of the edge's factor, in
    # the order its members joined
    m = np.array([[0.9, 0.0, 0.8], [0.3, 0.7, 0.0]])
    assert merge_positions(m) == {"merge_2_0": 1.0, "merge_2_1": 3.0, "merge_0_1": 3.0}
    # with ties (entries rounded to one decimal), the values the reference's dendrogram_plot
    # returns for this matrix, run here: equal entries are visited in the reference's order
    tied = np.random.RandomState(0).rand(5, 4).round(1)
    assert merge_positions(tied) == {"merge_1_3": 4.0, "merge_2_0": 5.0, "merge_2_1": 6.0, "merge_2_3": 6.0,
                                     "merge_0_1": 6.0, "merge_0_3": 6.0}


def test_keys_are_the_references_including_the_misnamed_ones():
    codes, factors, codes_test, factors_test = golden_arrays(n=300, n_test=200)  # 6 codes, 4 factors
    scores = M.Unified(num_train=300, num_test=200).score(codes, factors, codes_test, factors_test)
    for name in ("importance_gbt_matrix", "mutual_information_matrix", "accuracy_svm_matrix"):
        head = f"unified.{name}."
        keys = {k[len(head):] for k in scores if k.startswith(head)}
        expected = {"dci_disentanglement", "dci_completeness", "dci", "mig", "sap", "modularity", "area_precision", "max_precision"}
        expected |= {f"dci_disentanglement.code_{i}" for i in range(6)} | {f"modularity.code_{i}" for i in range(6)}
        # the reference's "dci_completeness.code_<j>" runs over the factors
        expected |= {f"dci_completeness.code_{j}" for j in range(4)}
        expected |= {f"mig.factor_{j}" for j in range(4)} | {f"sap.factor_{j}" for j in range(4)}
        expected |= {f"merge_{a}_{b}" for a, b in _merge_pairs(scores, head)}
        assert keys == expected, name
        assert len([k for k in keys if k.startswith("merge_")]) == 6  # every pair of the 4 factors, once
        assert scores[head + "dci"] == scores[head + "dci_disentanglement"]
    assert "unified_scores.accuracy_svm_matrix.dci_completeness.code_3" in ev.to_dlib_keys(scores)
    from_codes = ev.score_codes(codes, factors, codes_test, factors_test, metrics=["unified"])
    assert set(from_codes) == set(scores)


def _merge_pairs(scores, head):
    return [tuple(k[len(head) + len("merge_"):].split("_")) for k in scores if k.startswith(head + "merge_")]


def test_a_constant_factor_is_left_out_and_the_others_keep_their_positions():
    codes, factors, codes_test, factors_test = golden_arrays(n=300, n_test=200)
    factors = factors.copy()
    factors[:, 1] = 0
    scores = M.unified_scores(codes, factors, codes_test, factors_test, matrices=("mutual_information_matrix",))
    assert "mutual_information_matrix.mig.factor_1" not in scores
    assert {"mutual_information_matrix.mig.factor_0", "mutual_information_matrix.mig.factor_3"} <= set(scores)
    with pytest.raises(ValueError, match="unified: each of matrices must be one of"):
        M.Unified(matrices=("importance",))
