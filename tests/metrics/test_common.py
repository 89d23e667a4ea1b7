"""Properties every registered metric shares (scikit-learn's test_common pattern).

A metric joins these tests by being registered in ``METRICS`` and given small settings in
``SMALL`` below.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from metric_support import IdentityData

import disentangled.metrics as M

SMALL = {
    "beta_vae": dict(batch_size=8, num_train=200, num_eval=100),
    "factor_vae": dict(batch_size=8, num_train=200, num_eval=100, num_variance_estimate=300),
    "mig": dict(num_train=500),
    "dci": dict(num_train=150, num_test=100),
    "sap": dict(num_train=300, num_test=150),
    "modularity_explicitness": dict(num_train=300, num_test=150),
    "unsupervised": dict(num_train=300),
    "downstream_logistic_regression": dict(num_train=(20,), num_test=50),
    "downstream_boosted_trees": dict(num_train=(20,), num_test=50),
    "irs": dict(num_train=300),
    "fairness": dict(num_train=200, num_test_points_per_class=20),
    "strong_downstream": dict(num_train=(100,), num_test=50, n_experiment=2),
    "reduced_downstream": dict(num_train=(100,), num_test=50),
    "unified": dict(num_train=150, num_test=100),
}

# metrics whose fits use randomised or order-dependent solvers: compared with a tolerance (the
# boosted trees on these few points, whose codes take 30 distinct values, face many exact ties
# between codes, which a permutation breaks differently)
SOLVER_TOLERANCE = {"beta_vae": 0.02, "sap": 0.02, "dci": 0.02, "downstream_logistic_regression": 0.05,
                    "downstream_boosted_trees": 0.05, "modularity_explicitness": 0.01, "fairness": 0.05,
                    "strong_downstream": 0.1, "reduced_downstream": 0.1, "unified": 0.1}

NAMES = list(M.METRICS)

SIZES = (2, 3, 5)  # small factors keep the classifiers quick
_W = np.random.RandomState(5).normal(size=(len(SIZES), 5))


def representation(observations):
    """A fixed, informative, deterministic representation with 5 codes."""
    x = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
    return (np.tanh(x @ _W / 3.0) + 0.1 * np.sin(5.0 * x @ _W[:, ::-1])).astype(np.float32)


representation.deterministic = True


def small_data():
    return IdentityData(SIZES)


def _bounds(key: str, num_codes: int):
    parts = key.split(".")
    if parts[0] == "unified":  # unified.<matrix>.<aggregation>[.<code or factor>]
        if parts[2] in ("dci_disentanglement", "dci_completeness", "dci", "modularity"):
            return 0.0, 1.0
        # MIG and SAP of matrices in other units, precision counts, merge positions
        return 0.0, math.inf
    last = key.rsplit(".", 1)[-1]
    if last == "strong_generalization_gap":  # 1 - strong / normal accuracy: negative when the shift helps
        return -math.inf, 1.0
    if last == "num_active_dims":
        return 0.0, float(num_codes)
    if last in ("gaussian_total_correlation", "gaussian_wasserstein_correlation", "mutual_info_score"):
        return -1e-9, math.inf
    if last == "gaussian_wasserstein_correlation_norm":
        return -1e-9, 2.0
    if last == "irs":
        return -1.0, 1.0
    return 0.0, 1.0  # accuracies, MIG, DCI, SAP, modularity, explicitness


def _metric(name):
    return M.get(name, **SMALL[name])


def test_every_registered_metric_has_small_settings():
    assert set(SMALL) == set(M.METRICS)


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_is_a_frozen_dataclass_with_study_defaults(name):
    cls = M.METRICS[name]
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert cls.name == name
    metric = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.batch_size = 3
    assert isinstance(M.settings_of(metric), dict)


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_namespaced_bounded_plain_floats_and_deterministic(name):
    data = small_data()
    metric = _metric(name)
    first = metric.evaluate(data, representation, rng=np.random.RandomState(0))
    assert first, name
    for key, value in first.items():
        assert key.startswith(name + "."), key
        assert type(value) is float, (key, type(value))
        low, high = _bounds(key, 5)
        assert low <= value <= high, (key, value)
    again = metric.evaluate(data, representation, rng=np.random.RandomState(0))
    assert again == first
    gen = metric.evaluate(data, representation, rng=np.random.default_rng(0))
    assert gen == metric.evaluate(data, representation, rng=np.random.default_rng(0))


@pytest.mark.parametrize("name", NAMES)
def test_invariant_to_permuting_latents(name):
    data = small_data()
    perm = np.array([3, 0, 4, 2, 1])

    def permuted(observations):
        return representation(observations)[:, perm]

    permuted.deterministic = True
    metric = _metric(name)
    base = metric.evaluate(data, representation, rng=np.random.RandomState(1))
    other = metric.evaluate(data, permuted, rng=np.random.RandomState(1))
    tol = SOLVER_TOLERANCE.get(name, 1e-9)
    assert base.keys() == other.keys()
    for key in base:
        if ".code_" in key and "dci_completeness" not in key:
            continue  # per-code values move with their code: compared as a set below
        assert other[key] == pytest.approx(base[key], abs=tol), key
    per_code = {k.rsplit(".code_", 1)[0] for k in base if ".code_" in k and "dci_completeness" not in k}
    for stem in per_code:
        ours = [base[f"{stem}.code_{j}"] for j in perm]  # code i of the permuted model is code perm[i] of the base
        theirs = [other[f"{stem}.code_{i}"] for i in range(5)]
        assert theirs == pytest.approx(ours, abs=tol), stem


@pytest.mark.parametrize("name", NAMES)
def test_rejects_nan_codes(name):
    data = small_data()

    def broken(observations):
        codes = representation(observations).astype(np.float64)
        codes[::7, 0] = np.nan
        return codes

    broken.deterministic = True
    with pytest.raises(ValueError, match=rf"{name}.*NaN"):
        _metric(name).evaluate(data, broken, rng=np.random.RandomState(0))


@pytest.mark.parametrize("name", NAMES)
def test_rejects_bad_settings(name):
    field = "num_train" if "num_train" in {f.name for f in dataclasses.fields(M.METRICS[name])} else "batch_size"
    bad = (0,) if name.startswith("downstream") and field == "num_train" else 0
    with pytest.raises(ValueError, match=name):
        M.METRICS[name](**{field: bad})


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ValueError, match="did you mean|Did you mean"):
        M.get("mgi")
    with pytest.raises(ValueError, match="num_train"):
        M.get("mig", num_trian=3)


# ---------------------------------------------------------------------------------------
# UDR scores a set of models, so it has its own entry point (evaluate(data, encoders, rng)):
# the same properties, over a set of Gaussian encoders


def _gaussian(rep, logvar=-1.0):
    def encoder(observations):
        mean = np.asarray(rep(observations), dtype=np.float64)
        return mean, np.full_like(mean, logvar)

    return encoder


_ROTATION = np.linalg.qr(np.random.RandomState(7).normal(size=(5, 5)))[0]
UDR_ENCODERS = (
    _gaussian(representation),
    _gaussian(lambda x: representation(x)[:, [2, 0, 1, 4, 3]] * np.array([1, -1, 1, -1, 1])),
    _gaussian(lambda x: representation(x) @ _ROTATION),
)


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_udr_scores_are_bounded_plain_floats_and_deterministic(correlation):
    metric = M.UDR(num_data_points=300, correlation_matrix=correlation)
    first = metric.evaluate(small_data(), UDR_ENCODERS, rng=np.random.RandomState(0))
    assert len(first["model_scores"]) == 3 and not first["reasons"]
    for value in first["model_scores"] + [v for row in first["pairwise_disentanglement_scores"] for v in row]:
        assert type(value) is float and 0.0 <= value <= 1.0, value
    assert metric.evaluate(small_data(), UDR_ENCODERS, rng=np.random.RandomState(0)) == first
    gen = metric.evaluate(small_data(), UDR_ENCODERS, rng=np.random.default_rng(0))
    assert gen == metric.evaluate(small_data(), UDR_ENCODERS, rng=np.random.default_rng(0))


@pytest.mark.parametrize("correlation, tol", [("lasso", 1e-4), ("spearman", 1e-12)])
def test_udr_invariant_to_permuting_a_models_latents(correlation, tol):
    # Spearman's matrix is permuted exactly; the Lasso's coordinate descent visits the
    # latents in another order, which moves its weights within the solver's tolerance
    metric = M.UDR(num_data_points=300, correlation_matrix=correlation)
    base = metric.evaluate(small_data(), UDR_ENCODERS, rng=np.random.RandomState(1))
    shuffled = (UDR_ENCODERS[0], _gaussian(lambda x: np.asarray(UDR_ENCODERS[1](x)[0])[:, [4, 3, 0, 2, 1]]), UDR_ENCODERS[2])
    other = metric.evaluate(small_data(), shuffled, rng=np.random.RandomState(1))
    assert other["model_scores"] == pytest.approx(base["model_scores"], abs=tol)


def test_udr_rejects_nan_codes_and_bad_settings():
    def broken(observations):
        mean, logvar = UDR_ENCODERS[0](observations)
        mean[::7, 0] = np.nan
        return mean, logvar

    with pytest.raises(ValueError, match=r"udr.*NaN"):
        M.UDR(num_data_points=100).evaluate(small_data(), [UDR_ENCODERS[0], broken], rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="udr"):
        M.UDR(num_data_points=0)
    with pytest.raises(ValueError, match="udr: num_data_points must be a multiple of batch_size"):
        M.UDR(num_data_points=105)
