"""Running studies: executors agree, crashes resume, failures are recorded, tables collect."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from disentangled.cli import app
from disentangled.study.collect import collect
from disentangled.study.execute import run_study
from disentangled.study.spec import from_mapping
from disentangled.rundir import StudyDir, StudyDirError

TINY = {
    "name": "tiny",
    "base": {"data": {"name": "dummy_data"}, "train": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2, "eval_batches": 2}},
    "sweep": {"product": [{"sweep": {"objective.beta": [1.0, 4.0]}}, {"sweep": {"seed": [0, 1]}}]},
    "evaluation": {"representations": ["mean", "sampled"],
                   "metrics": {"mig": {"num_train": 200}, "unsupervised": {"num_train": 200}}},
}
VALUE_COLUMNS = ["model_num", "run_id", "representation", "metric", "score_key", "value"]


def tiny_spec(**changes):
    return from_mapping({**TINY, **changes})


def run_tiny(tmp_path, name, executor, **kwargs):
    spec = tiny_spec()
    out = tmp_path / name
    StudyDir(out).claim(spec)
    kwargs.setdefault("threads", 1)  # same thread count in every executor: tables equal bit for bit
    results = run_study(spec, out, executor=executor, progress=False, echo=lambda s: None, **kwargs)
    return out, results


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in table.columns if not c.startswith("train.elapsed")]
    return table[keep].reset_index(drop=True)


def test_inline_and_local_executors_give_the_same_table(tmp_path):
    inline, results = run_tiny(tmp_path, "inline", "inline")
    assert sorted(r["status"] for r in results) == ["done"] * 4
    local, _ = run_tiny(tmp_path, "local", "local", workers=2)
    a, b = collect(inline), collect(local)
    assert len(a) == 4 * 2 * (1 + 4)  # runs x representations x (MIG + four unsupervised keys)
    assert set(a["score_key"]) == {"mig.discrete_mig", "unsupervised.gaussian_total_correlation",
                                   "unsupervised.gaussian_wasserstein_correlation",
                                   "unsupervised.gaussian_wasserstein_correlation_norm", "unsupervised.mutual_info_score"}
    assert {"config.objective.beta", "config.seed", "config.data.name", "train.reconstruction_loss", "train.kl_loss"} <= set(a.columns)
    pd.testing.assert_frame_equal(comparable(a), comparable(b))


def test_ray_executor_on_a_local_cluster(tmp_path):
    pytest.importorskip("ray")
    inline, _ = run_tiny(tmp_path, "inline", "inline")
    ray_dir, results = run_tiny(tmp_path, "ray", "ray", workers=2)
    assert sorted(r["status"] for r in results) == ["done"] * 4
    pd.testing.assert_frame_equal(comparable(collect(inline)), comparable(collect(ray_dir)))


def test_rerun_does_only_what_is_missing(tmp_path):
    out, _ = run_tiny(tmp_path, "s", "inline")
    (out / "runs" / "00002" / "metrics" / "sampled" / "mig.json").unlink()
    _, results = run_tiny(tmp_path, "s", "inline")
    assert [r["model_num"] for r in results if r["status"] != "skipped"] == [2]
    assert sorted(r["model_num"] for r in results if r["status"] == "skipped") == [0, 1, 3]


def test_failing_run_is_recorded_and_others_finish(tmp_path):
    spec = tiny_spec(sweep={"chain": [
        {"product": [{"sweep": {"objective.beta": [1.0, 4.0]}}, {"sweep": {"seed": [0]}}]},
        {"fixed": {"data.name": "dsprites_full", "data.source": "official"}},  # its file is missing
    ]})
    out = tmp_path / "s"
    StudyDir(out).claim(spec)
    results = run_study(spec, out, executor="inline", progress=False, echo=lambda s: None, max_attempts=2)
    by_num = {}
    for r in results:
        by_num.setdefault(r["model_num"], []).append(r["status"])
    # a missing file fails again until it is fetched: tried once, not retried pointlessly
    assert by_num[0] == ["done"] and by_num[1] == ["done"] and by_num[2] == ["failed"]
    status = StudyDir(out).stage_status(spec, 2)
    assert status["train"] == "failed" and status["attempts"] == 1
    assert "disentangled data download dsprites_full" in status["reason"]
    result = CliRunner().invoke(app, ["study", "status", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "failed 1" in result.output and "DataFileError" in result.output


def test_cli_exit_code_is_one_when_runs_failed(tmp_path):
    """`disentangled study run` (the console entry point, not the test runner) exits 1 when a
    run failed, so scripts and CI notice."""
    from disentangled.cli import main

    spec = dict(TINY, sweep={"fixed": {"data.name": "dsprites_full", "data.source": "official"}})
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as exit_:
        main(["study", "run", str(path), "--out", str(tmp_path / "s"), "--executor", "inline",
              "--no-progress", "--max-attempts", "1"])
    assert exit_.value.code == 1


def test_directory_of_another_spec_is_refused(tmp_path):
    out, _ = run_tiny(tmp_path, "s", "inline", only=[0])
    other = tiny_spec(name="other")
    with pytest.raises(StudyDirError, match="another spec"):
        StudyDir(out).claim(other)
    StudyDir(out).claim(other, force=True)


@pytest.mark.slow
def test_sigkill_midway_then_rerun_completes_every_run_once(tmp_path):
    spec_path = tmp_path / "tiny.yaml"
    spec = dict(TINY)
    spec["base"] = {**TINY["base"], "train": {**TINY["base"]["train"], "steps": 60, "checkpoint_every": 5}}
    spec_path.write_text(yaml.safe_dump(spec))
    exe = [sys.executable, "-m", "disentangled", "study", "run", str(spec_path), "--executor", "inline", "--no-progress"]
    straight = tmp_path / "straight"
    subprocess.run(exe + ["--out", str(straight)], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(exe + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "runs" / "00001" / "checkpoints" / "latest.json").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "runs" / "00003" / "train.done").exists()
    subprocess.run(exe + ["--out", str(killed)], check=True, capture_output=True)
    for n in range(4):
        log = (killed / "runs" / f"{n:05d}" / "train_log.jsonl").read_text().splitlines()
        assert [json.loads(x)["step"] for x in log] == list(range(2, 61, 2)), n  # none duplicated, none lost
    pd.testing.assert_frame_equal(comparable(collect(straight)), comparable(collect(killed)))


def test_collect_cli_writes_parquet(tmp_path):
    out, _ = run_tiny(tmp_path, "s", "inline")
    target = tmp_path / "results.parquet"
    result = CliRunner().invoke(app, ["study", "collect", str(out), "-o", str(target)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(target)
    assert len(table) == 40 and list(table.columns[:6]) == VALUE_COLUMNS
