"""Bad input a user can act on gets one clear line naming the file or key, never a traceback."""

import numpy as np
import pytest
import yaml

from disentangled import config as cfg
from disentangled.cli import main
from disentangled.study.spec import load_spec


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    return " ".join(err.split())


def test_a_train_config_that_is_a_list(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("- train.steps: 3\n")
    err = run_cli(["train", str(path), "--out", str(tmp_path / "r")], capsys)
    assert f"{path}: a configuration file must be a mapping of sections" in err and "got a list" in err


def test_yaml_numbers_in_exponent_form_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective: {name: beta_vae, beta: 1.0e30}\ntrain: {lr: 1e-4}\n")
    c = cfg.load(path)
    assert c.objective["beta"] == 1e30 and c.train.lr == 1e-4
    assert cfg.load(None, ["objective.beta=2e3"]).objective["beta"] == 2000.0


def test_study_plan_and_run_agree_on_every_run(tmp_path, capsys):
    spec = {"name": "s", "base": {"data": {"name": "dummy_data"}},
            "sweep": {"sweep": {"objective.beta": [1.0e30, 1.0]}}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec).replace("1.0e+30", "1.0e30"))
    assert [c.objective["beta"] for c in load_spec(str(path)).run_configs()] == [1e30, 1.0]
    main(["study", "plan", str(path)])  # valid: plans
    spec["sweep"] = {"sweep": {"objective.beta": [1.0, -1.0]}}
    path.write_text(yaml.safe_dump(spec))
    err = run_cli(["study", "plan", str(path)], capsys)  # refused at plan time, not when run 1 trains
    assert "beta must be >= 0, got -1.0" in err


def test_codes_that_are_not_an_npz_archive(tmp_path, capsys):
    text = tmp_path / "codes.txt"
    text.write_text("0.1 0.2\n")
    err = run_cli(["evaluate", "--codes", str(text)], capsys)
    assert f"{text}: not a NumPy .npz archive" in err and "numpy.savez" in err and "pickle" not in err
    single = tmp_path / "codes.npy"
    np.save(single, np.zeros((4, 2)))
    assert "a single .npy array" in run_cli(["evaluate", "--codes", str(single)], capsys)


def test_an_encoder_that_is_not_torchscript(tmp_path, capsys):
    path = tmp_path / "encoder.pt"
    path.write_bytes(b"not a zip archive")
    err = run_cli(["evaluate", "--encoder", str(path), "--dataset", "dummy_data"], capsys)
    assert f"{path}: not a TorchScript file" in err and "torch.jit.save" in err


def test_a_data_folder_that_cannot_be_written_is_refused_before_rendering(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("DISENTANGLED_DATA", str(blocker / "data"))  # a folder below a file cannot exist
    from disentangled.data import dsprites_render

    def must_not_render(**kwargs):
        raise AssertionError("rendering started before the folder was checked")

    monkeypatch.setattr(dsprites_render, "render_grid_chunks", must_not_render)
    err = run_cli(["data", "prepare", "dsprites_full", "--source", "procedural"], capsys)
    assert "cannot write there" in err and "DISENTANGLED_DATA" in err
