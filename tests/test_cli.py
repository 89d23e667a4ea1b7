"""The command line, through typer's runner and the console script's error handling."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from disentangled.cli import app, main
from disentangled.data import DATASETS

runner = CliRunner()


def test_data_list_shows_every_data_set():
    result = runner.invoke(app, ["data", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in DATASETS:
        assert name in result.output
    assert "posY 32" in result.output and "3x64x64" in result.output
    assert "official file missing" in result.output  # no official file in the test data dir


def test_data_list_procedural_is_ready():
    result = runner.invoke(app, ["data", "list", "--source", "procedural"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "rendered on the fly" in result.output
    ready = {line.split("│")[1].strip(): line.split("│")[4].strip() for line in result.output.splitlines() if line.count("│") > 5}
    for name in ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "shapes3d", "dummy_data"):
        assert ready[name] == "yes", name
    assert ready["smallnorb"] == "no"  # no procedural source: its official files are missing here


def test_data_show_writes_one_row_per_factor(tmp_path):
    out = tmp_path / "show.png"
    result = runner.invoke(app, ["data", "show", "color_dsprites", "--source", "procedural", "-o", str(out)])
    assert result.exit_code == 0, result.output
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[0] > 200 and img.shape[1] > 500  # five rows of ten 64-pixel images, labelled
    assert img.std() > 20  # not a blank picture


def test_data_prepare_dummy(tmp_path):
    result = runner.invoke(app, ["data", "prepare", "dummy_data"])
    assert result.exit_code == 0, result.output
    assert "nothing to prepare" in result.output


def test_missing_official_file_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "prepare", "dsprites_full"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "disentangled data download dsprites_full" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, words", [
    (["study", "run", "quickstart", "--out", "s", "--eval-workers", "-1"], "--eval-workers"),
    (["study", "run", "quickstart", "--out", "s", "--ensemble", "0"], "--ensemble"),
    (["evaluate", "--no-such-option"], "--no-such-option"),
])
def test_bad_options_are_a_usage_message_not_a_traceback(capsys, argv, words):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_unknown_name_lists_close_matches(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "show", "dsprite_full", "-o", "x.png"])
    assert exit_.value.code == 2
    assert "Did you mean 'dsprites_full'" in capsys.readouterr().err


@pytest.mark.parametrize("what, registry", [
    ("objectives", "disentangled.models:ALL_OBJECTIVES"),
    ("architectures", "disentangled.models:ARCHITECTURES"),
    ("datasets", "disentangled.data:DATASETS"),
    ("metrics", "disentangled.metrics:METRICS"),
    ("presets", "disentangled.study.spec:PRESETS"),
])
def test_list_prints_one_line_per_entry_in_registry_order(what, registry):
    import importlib

    module, attr = registry.split(":")
    names = list(getattr(importlib.import_module(module), attr))
    result = runner.invoke(app, ["list", what])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines] == names


def test_list_objectives_names_every_family_in_groups():
    from disentangled.models import OBJECTIVES, SEMI_OBJECTIVES

    lines = runner.invoke(app, ["list", "objectives"]).output.splitlines()
    assert len(lines) == len(OBJECTIVES) + len(SEMI_OBJECTIVES) == 17
    families = [line[line.rindex("(") + 1:-1] for line in lines]
    assert families == ["unsupervised"] * 6 + ["weakly supervised"] * 4 + ["semi-supervised"] * 7
    assert lines[0] == "beta_vae: beta=1.0 (unsupervised)"
    assert lines[8] == "ada_gvae: beta=1.0 (weakly supervised)"
    # the settings of the supervised losses not chosen by default (l2's learn_scale, embed's sigma) are left out
    assert lines[10] == ("s2_vae: gamma_sup=1.0, annealer=fixed, iteration_threshold=1, supervised_loss=xent, beta=1.0 "
                         "(semi-supervised)")
    assert lines[11] == "supervised: supervised_loss=xent (semi-supervised)"
    assert lines[16] == "s2_mine_vae: gamma_sup=1.0, annealer=fixed, iteration_threshold=1, beta=1.0 (semi-supervised)"


def test_list_metrics_shows_the_settings_and_presets_their_size():
    metrics = runner.invoke(app, ["list", "metrics"]).output.splitlines()
    assert "mig: num_train=10000, batch_size=16, num_bins=20" in metrics
    assert any(line.startswith("downstream_logistic_regression: num_train=[10, 100, 1000, 10000]") for line in metrics)
    presets = runner.invoke(app, ["list", "presets"]).output.splitlines()
    assert any(line.startswith("quickstart: 4 runs. beta-VAE") for line in presets)
    assert any(line.startswith("unsupervised_study_v1: 12600 runs.") for line in presets)


@pytest.mark.parametrize("argv, message", [
    (["list", "metrcs"], "error: unknown list 'metrcs'; known lists: objectives, architectures, datasets, metrics, presets. "
                         "Did you mean 'metrics'?"),
    (["train", "--out", "r", "objective.name=beta_vea"], "error: objective.name: unknown objective 'beta_vea'; known objectives: "),
    (["study", "plan", "quikstart"], "error: unknown study preset 'quikstart'; known study presets: "),
])
def test_an_unknown_name_is_one_line_on_stderr_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_an_unknown_metric_for_saved_codes_is_one_line(tmp_path, capsys):
    path = tmp_path / "codes.npz"
    rng = np.random.default_rng(0)
    np.savez(path, codes=rng.normal(size=(50, 2)), factors=rng.integers(0, 3, size=(50, 2)))
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--codes", str(path), "--metric", "mgi"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: unknown metric 'mgi'; known metrics: beta_vae, factor_vae, mig, dci, sap, modularity_explicitness, "
        "unsupervised, downstream_logistic_regression, downstream_boosted_trees, irs, fairness, strong_downstream, "
        "reduced_downstream, unified. Did you mean 'mig'?\n"
    )


def test_a_project_error_exits_with_its_own_code(monkeypatch, capsys):
    from disentangled import metrics
    from disentangled.errors import DisentangledError

    class Diverged(DisentangledError):
        exit_code = 1

    def diverge(metric):
        raise Diverged("the loss became NaN at step 3")

    monkeypatch.setattr(metrics, "settings_of", diverge)
    with pytest.raises(SystemExit) as exit_:
        main(["list", "metrics"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: the loss became NaN at step 3\n"


@pytest.mark.parametrize("bug", [RuntimeError, ValueError, TypeError, FileNotFoundError])
def test_any_other_exception_is_a_bug_and_keeps_its_traceback(monkeypatch, bug):
    """Only the project's own errors are turned into one line; a plain exception propagates."""
    from disentangled import metrics

    def broken(metric):
        raise bug("internal invariant broken")

    monkeypatch.setattr(metrics, "settings_of", broken)
    with pytest.raises(bug, match="internal invariant broken"):
        main(["list", "metrics"])


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, monkeypatch):
    """The main job's path (prepare, factors picture, study, table, report) on a tiny spec."""
    import pandas as pd

    from disentangled.study import spec as spec_module

    real = spec_module.load_spec("quickstart").to_dict()
    real["base"]["train"].update(steps=6, checkpoint_every=3, log_every=3, eval_batches=1)
    real["evaluation"]["metrics"] = {"mig": {"num_train": 300}, "unsupervised": {"num_train": 300}}
    tiny = spec_module.from_mapping(real)
    monkeypatch.setattr(spec_module, "load_spec", lambda name: tiny)
    out = tmp_path / "out"
    result = runner.invoke(app, ["quickstart", "--out", str(out), "--executor", "inline", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "dsprites_factors.png").is_file() and (out / "report" / "index.html").is_file()
    table = pd.read_parquet(out / "results.parquet")
    assert table["model_num"].nunique() == 4 and set(table["data.source"]) == {"procedural"}
    assert "report" in result.output and "results table" in result.output
