"""Faults a rerun must survive: transient failures never exhaust a run, lasting ones are not retried pointlessly,
and the summary, the exit code and the progress bar tell the truth."""

import errno
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pandas as pd
import pytest

from disentangled.cli import main
from disentangled.study import execute
from disentangled.study.collect import collect
from disentangled.study.execute import is_transient, run_study, summarize
from disentangled.rundir import StudyDir
from disentangled.train import TrainingDiverged
from disentangled.train import checkpoint as ckpt

from test_run import comparable, run_tiny, tiny_spec


def quiet(spec, out, **kwargs):
    return run_study(spec, out, executor="inline", progress=False, echo=lambda s: None, threads=1, **kwargs)


def tries(results, n):
    return [r["status"] for r in results if r["model_num"] == n]


@pytest.mark.parametrize("err, transient", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EIO, "Input/output error"), True),
    (MemoryError(), True),
    (BrokenProcessPool("a child process terminated abruptly"), True),
    (FileNotFoundError(errno.ENOENT, "no such file"), False),
    (PermissionError(errno.EACCES, "denied"), False),
    (TrainingDiverged("non-finite loss at step 1"), False),
    (ValueError("objective.beta must be >= 0, got -1"), False),
    (RuntimeError("a bug"), False),
])
def test_failures_are_classified(err, transient):
    assert is_transient(err) is transient


def test_a_full_disk_never_exhausts_a_run(tmp_path, monkeypatch):
    """Every write fails with ENOSPC: each run is tried max_attempts times, stays pending, and finishes once space is back."""
    straight, _ = run_tiny(tmp_path, "straight", "inline")
    spec, out = tiny_spec(), tmp_path / "full"
    StudyDir(out).claim(spec)
    real = ckpt.save

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save", no_space)
    results = quiet(spec, out, max_attempts=3)
    assert all(tries(results, n) == ["failed"] * 3 for n in range(4))
    groups = summarize(results)
    assert len(groups["failed"]) == 4 and all(r["transient"] for r in groups["failed"])
    assert StudyDir(out).stage_status(spec, 0)["train"] == "failed"

    monkeypatch.setattr(ckpt, "save", real)  # space freed
    again = quiet(spec, out, max_attempts=3)
    assert [len(summarize(again)[k]) for k in ("done", "failed", "skipped", "busy")] == [4, 0, 0, 0]
    pd.testing.assert_frame_equal(comparable(collect(straight)), comparable(collect(out)))


def test_a_lasting_failure_is_tried_once_listed_and_retried_on_request(tmp_path, monkeypatch, capsys):
    import disentangled.train as train_module

    spec, out = tiny_spec(), tmp_path / "s"
    StudyDir(out).claim(spec)
    real = train_module.train

    def diverge_run_two(config, run_dir, **kwargs):
        if run_dir.name == "00002":
            raise TrainingDiverged("training stopped at step 1: non-finite loss terms")
        return real(config, run_dir, **kwargs)

    monkeypatch.setattr(train_module, "train", diverge_run_two)
    results = quiet(spec, out, max_attempts=3)
    assert tries(results, 2) == ["failed"]  # not trained three times
    assert [len(summarize(results)[k]) for k in ("done", "failed")] == [3, 1]

    # a rerun lists it with its reason and the option, and exits 1; the others are done before
    path = tmp_path / "tiny.yaml"
    import yaml

    from test_run import TINY

    path.write_text(yaml.safe_dump(TINY))
    with pytest.raises(SystemExit) as exit_:
        main(["study", "run", str(path), "--out", str(out), "--executor", "inline", "--no-progress"])
    assert exit_.value.code == 1
    text = " ".join(capsys.readouterr().out.split())
    assert "0 done, 3 done before, 1 failed, 0 held by another process" in text
    assert "run 2 failed: TrainingDiverged: training stopped at step 1" in text and "--retry-failed" in text

    monkeypatch.setattr(train_module, "train", real)  # the cause fixed
    assert tries(quiet(spec, out), 2) == ["failed"]  # without the option it stays failed
    again = quiet(spec, out, retry_failed=True)
    assert tries(again, 2) == ["done"] and not summarize(again)["failed"]


def test_a_run_held_elsewhere_is_counted_as_such(tmp_path):
    spec, out = tiny_spec(), tmp_path / "s"
    StudyDir(out).claim(spec)
    with StudyDir(out).run(1).lock() as mine:
        assert mine
        results = quiet(spec, out)
    groups = summarize(results)
    assert [r["model_num"] for r in groups["busy"]] == [1] and len(groups["done"]) == 3 and not groups["failed"]


def test_the_progress_bar_never_passes_its_total(tmp_path, monkeypatch):
    import tqdm

    seen = []

    class Recording(tqdm.tqdm):
        def update(self, n=1):
            super().update(n)
            seen.append((self.n, self.total))

    monkeypatch.setattr(tqdm, "tqdm", Recording)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    spec, out = tiny_spec(), tmp_path / "s"
    StudyDir(out).claim(spec)
    monkeypatch.setattr(ckpt, "save", no_space)
    run_study(spec, out, executor="inline", progress=True, max_attempts=3, threads=1)
    assert seen and all(n <= total for n, total in seen) and seen[-1] == (4, 4)


def test_a_dead_worker_gives_transient_failures(tmp_path):
    spec, out = tiny_spec(), tmp_path / "s"
    StudyDir(out).claim(spec)
    future = Future()
    future.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
    results = execute._outcomes(future, [0, 3], out)
    assert [r["model_num"] for r in results] == [0, 3] and all(r["transient"] for r in results)
    assert "WorkerLost" in results[0]["reason"] and not StudyDir(out).run(0).failed_for_good
    assert execute.pending(out, spec, None) == [0, 1, 2, 3]


def test_a_run_held_by_another_process_is_left_alone_and_the_exit_code_is_zero(tmp_path, capsys):
    """A real second process holds run 1's lock: this study does the others, counts run 1 as held, exits 0."""
    import subprocess
    import sys

    import yaml

    from test_run import TINY

    spec, out = tiny_spec(), tmp_path / "s"
    StudyDir(out).claim(spec)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from disentangled.rundir import RunDir\n"
         "with RunDir(sys.argv[1]).lock() as mine:\n    print(mine, flush=True); time.sleep(120)",
         str(StudyDir(out).run(1).path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(TINY))
        main(["study", "run", str(path), "--out", str(out), "--executor", "inline", "--no-progress", "--threads", "1"])
    finally:
        holder.kill()
        holder.wait()
    text = " ".join(capsys.readouterr().out.split())
    assert "3 done, 0 done before, 0 failed, 1 held by another process" in text
    assert not StudyDir(out).run(1).is_done and StudyDir(out).run(2).is_done
