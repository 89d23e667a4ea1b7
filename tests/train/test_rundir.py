"""Run and study directories: one module spells their files, and the docs show its layout."""

import re
from pathlib import Path

import pytest

import disentangled
from disentangled import config as cfg
from disentangled import rundir
from disentangled.rundir import RunConfigMismatch, RunDir, StudyDir

PACKAGE = Path(disentangled.__file__).parent
DOCS = PACKAGE.parent / "docs" / "training.md"


def layout_names() -> list[str]:
    """Every file or folder name in the module docstring's two layout blocks."""
    names = re.findall(r"^\s{6,}([\w.<>/]+)", rundir.__doc__, flags=re.M)
    return sorted({part for n in names for part in n.split("/") if part and not part.startswith("<")})


def test_the_layout_names_every_file_the_module_uses():
    names = layout_names()
    for expected in ("config.json", "metadata.json", "train_log.jsonl", "checkpoints", "model.safetensors",
                     "train_results.json", "train.done", "failed.json", "visualizations", "stage_failed.json",
                     ".lock", "study.json", "runs"):
        assert expected in names, expected
    run, study = RunDir("r"), StudyDir("s")
    used = {p.name for p in (run.config_file, run.metadata_file, run.log_file, run.checkpoints, run.weights_file,
                             run.results_file, run.done_file, run.failed_file, run.pictures, run.stage_failed_file,
                             run.lock_file, study.spec_file, study.runs_dir)}
    assert used <= set(names), used - set(names)


@pytest.mark.parametrize("name", ["config.json", "metadata.json", "train_log.jsonl", "model.safetensors",
                                  "train_results.json", "train.done", "failed.json", "stage_failed.json", "study.json"])
def test_no_other_module_spells_a_run_file(name):
    """Only rundir.py writes these names in code (docstrings may mention them)."""
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "rundir.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(rf"[\"']{re.escape(name)}[\"']", line):
                spelled.append(f"{path.relative_to(PACKAGE)}:{number}")
    assert not spelled, f"{name} spelled outside rundir.py: {spelled}"


def test_docs_show_the_module_docstring():
    text = DOCS.read_text()
    shown = text.split("<!-- rundir docstring -->\n", 1)[1].split("<!-- /rundir docstring -->", 1)[0]
    doc = rundir.__doc__
    assert shown.strip() == doc[doc.index("A run directory holds one trained model"):].strip()


def test_claim_protocol(tmp_path):
    a = cfg.load(None, ["data.name=dummy_data", "train.steps=3"])
    b = cfg.load(None, ["data.name=dummy_data", "train.steps=4"])
    run = RunDir(tmp_path / "run")
    assert run.claim(a, resume=False) is False and run.is_claimed and not run.is_done
    with pytest.raises(RunConfigMismatch, match="unfinished run of this configuration; pass --resume"):
        run.claim(a, resume=False)
    with pytest.raises(RunConfigMismatch, match="differing keys: train.steps"):
        run.claim(b, resume=True)
    assert run.claim(a, resume=True) is False
    run.finish({"loss": 1.0}, run_id=a.run_id, steps=3)
    assert run.claim(a, resume=False) is True and run.results() == {"loss": 1.0}
    assert run.config() == a


def test_study_dir_hands_out_numbered_runs(tmp_path):
    study = StudyDir(tmp_path)
    assert study.run(7).path == tmp_path / "runs" / "00007"
    assert study.run(7) == RunDir(tmp_path / "runs" / "00007")
    with pytest.raises(rundir.StudyDirError, match="not a study directory"):
        study.spec()


def test_stage_failures_count_attempts(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    assert run.attempts == 0
    assert run.record_stage_failure("train", "OSError: disk full", transient=True) == 1
    assert not run.failed_for_good
    assert run.record_stage_failure("evaluate", "ValueError: x", transient=False) == 2
    assert run.stage_failure() == {"stage": "evaluate", "reason": "ValueError: x", "attempts": 2, "transient": False}
    assert run.failed_for_good
    run.clear_stage_failure()
    assert run.attempts == 0 and not run.failed_for_good


def test_the_lock_is_exclusive(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock() as mine:
        assert mine and run.is_locked
        with RunDir(tmp_path / "run").lock() as again:
            assert again is False
    assert not run.is_locked
