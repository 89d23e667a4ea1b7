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
