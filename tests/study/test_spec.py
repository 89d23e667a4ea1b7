"""Study specs: sweep combinators, the study's numbering, presets, bad specs."""

import json

import pytest
from typer.testing import CliRunner

from disentangled.cli import app
from disentangled.study.spec import from_mapping, load_spec
from disentangled.study.sweep import SpecError, expand

# disentanglement_lib's unsupervised_study_v1 (dlib.md section 4): data sets, methods in chain
# order with their grids, seeds 0..49; model_num = 1800 d + 300 m + 50 h + s.
DATASETS = ["dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb", "cars3d", "shapes3d"]
METHODS = [
    ("beta_vae", "beta", [1, 2, 4, 6, 8, 16]),
    ("factor_vae", "gamma", [10, 20, 30, 40, 50, 100]),
    ("dip_vae_i", "lambda_od", [1, 2, 5, 10, 20, 50]),
    ("dip_vae_ii", "lambda_od", [1, 2, 5, 10, 20, 50]),
    ("beta_tc_vae", "beta", [1, 2, 4, 6, 8, 10]),
    ("annealed_vae", "c_max", [5, 10, 25, 50, 75, 100]),
]


def decode(n):
    d, rest = divmod(n, 1800)
    m, rest = divmod(rest, 300)
    h, s = divmod(rest, 50)
    name, key, grid = METHODS[m]
    return DATASETS[d], name, key, grid[h], s


def test_combinators():
    node = {"product": [{"sweep": {"a": [1, 2]}}, {"chain": [{"fixed": {"b": "x"}}, {"zip": [{"sweep": {"b": ["y", "z"]}}, {"sweep": {"c": [3, 4]}}]}]}]}
    assert expand(node) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y", "c": 3}, {"a": 1, "b": "z", "c": 4},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y", "c": 3}, {"a": 2, "b": "z", "c": 4},
    ]


@pytest.mark.parametrize("node, message", [
    ({"prodcut": [{"fixed": {"a": 1}}]}, r"sweep: unknown combinator 'prodcut'.*Did you mean 'product'"),
    ({"product": [{"sweep": {"a": 1}}]}, r"sweep.product\[0\].sweep.a: expected a non-empty list"),
    ({"zip": [{"sweep": {"a": [1, 2]}}, {"sweep": {"b": [1]}}]}, r"zip needs nodes of equal length"),
    ({"product": [{"fixed": {"a": 1}}, {"fixed": {"a": 2}}]}, r"key 'a' is set twice"),
])
def test_bad_sweeps_name_their_path(node, message):
    with pytest.raises(SpecError, match=message):
        expand(node)


def test_model_num_parity_for_all_12600_runs():
    spec = load_spec("unsupervised_study_v1")
    assert len(spec) == 12600
    for n, setting in enumerate(spec.settings):
        dataset, name, key, value, seed = decode(n)
        assert setting["data.name"] == dataset and setting["objective.name"] == name, n
        assert setting[f"objective.{key}"] == value and setting["seed"] == seed, n
    # the reference's examples
    assert decode(0) == ("dsprites_full", "beta_vae", "beta", 1, 0)
    assert decode(1500) == ("dsprites_full", "annealed_vae", "c_max", 5, 0)
    assert decode(10800)[0] == "shapes3d"


@pytest.mark.parametrize("n", [0, 77, 300, 649, 950, 1523, 4321, 9999, 12599])
def test_plan_json_matches_decoding(n):
    result = CliRunner().invoke(app, ["study", "plan", "unsupervised_study_v1", "--model-num", str(n), "--json"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    dataset, name, key, value, seed = decode(n)
    assert config["model_num"] == n and config["data"]["name"] == dataset and config["seed"] == seed
    assert config["objective"]["name"] == name and config["objective"][key] == value
    assert config["train"]["steps"] == (150_000 if name == "factor_vae" else 300_000)
    if name == "dip_vae_i":
        assert config["objective"]["lambda_d_factor"] == 10
    if name == "annealed_vae":
        assert (config["objective"]["gamma"], config["objective"]["iteration_threshold"]) == (1000, 100000)


def test_plan_reports_the_count():
    result = CliRunner().invoke(app, ["study", "plan", "unsupervised_study_v1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "12600 runs" in result.output


def test_presets_validate():
    for name in ("quickstart", "small", "unsupervised_study_v1"):
        spec = load_spec(name)
        spec.run_config(len(spec) - 1)
    assert len(load_spec("quickstart").run_configs()) == 4
    assert len(load_spec("small").run_configs()) == 24


def test_preset_metric_settings_build_the_metrics():
    """Every metric setting a preset writes (YAML lists included) builds its metric."""
    from disentangled import metrics as M

    for name in ("quickstart", "small", "unsupervised_study_v1"):
        for metric, settings in load_spec(name).evaluation.metrics.items():
            M.get(metric, **settings)
    lr = M.get("downstream_logistic_regression", num_train=[10, 100], num_test=50)
    assert lr.num_train == (10, 100) and M.settings_of(lr)["num_train"] == [10, 100]
    for bad in ([], 5, [0, 10]):
        with pytest.raises(ValueError, match="num_train"):
            M.get("downstream_boosted_trees", num_train=bad)


def test_bad_specs():
    base = {"name": "t", "sweep": {"sweep": {"seed": [0, 1]}}}
    with pytest.raises(SpecError, match=r"unknown key 'evalution'.*Did you mean 'evaluation'"):
        from_mapping({**base, "evalution": {}})
    with pytest.raises(SpecError, match=r"evaluation.metrics: unknown metric 'mgi'.*Did you mean 'mig'"):
        from_mapping({**base, "evaluation": {"metrics": {"mgi": {}}}})
    with pytest.raises(SpecError, match=r"evaluation.metrics: metric 'mig' has no setting 'num_bin'.*Did you mean 'num_bins'"):
        from_mapping({**base, "evaluation": {"metrics": {"mig": {"num_bin": 3}}}})
    with pytest.raises(SpecError, match=r"evaluation.metrics: mig: num_bins must be >= 1, got 0"):
        from_mapping({**base, "evaluation": {"metrics": {"mig": {"num_bins": 0}}}})
    with pytest.raises(SpecError, match=r"unknown configuration key 'train.stepz'"):
        from_mapping({**base, "base": {"train": {"stepz": 3}}})
    collide = from_mapping({"name": "t", "sweep": {"sweep": {"objective.name": ["beta_vae", "beta_vae"]}}})
    with pytest.raises(SpecError, match="same configuration"):
        collide.run_configs()
    with pytest.raises(SpecError, match="unknown study preset 'quikstart'.*Did you mean 'quickstart'"):
        load_spec("quikstart")
