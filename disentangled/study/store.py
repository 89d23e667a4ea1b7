"""A study directory: what is done, what is running, what failed, and who works on what.

::

    STUDY_DIR/
      study.json                 the spec that made it (a directory belongs to one spec)
      runs/<model_num>/          one run directory per model (see train/loop.py)
        metrics/<rep>/<metric>.json   one file per evaluation, written atomically
        stage_failed.json        the last failure of this run: stage, reason, attempts
        .lock                    held (flock) by the process working on the run

Every marker is written last and atomically, so a crash leaves either a finished stage
or nothing. Two processes never work on one run at once: a process takes a run's lock
with a non-blocking ``flock`` and skips runs whose lock another holds. The operating
system releases the lock when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from ..io import write_json_atomic
from ..train.loop import DONE
from .spec import StudySpec, from_mapping

FAILED = "stage_failed.json"


class StudyDirError(ValueError):
    pass


def run_dir(study_dir: Path, model_num: int) -> Path:
    return Path(study_dir) / "runs" / f"{model_num:05d}"


def metric_path(run: Path, representation: str, metric: str) -> Path:
    return run / "metrics" / representation / f"{metric}.json"


def claim_study_dir(study_dir: Path, spec: StudySpec, *, force: bool = False) -> None:
    """Create the study directory, or check it was made by this spec (``force`` adopts it)."""
    study_dir = Path(study_dir)
    marker = study_dir / "study.json"
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("digest") != spec.digest and not force:
            raise StudyDirError(
                f"{study_dir} was made by another spec ({saved.get('spec', {}).get('name')!r}, digest {saved.get('digest')}); "
                f"this spec is {spec.name!r} (digest {spec.digest}). Use another --out, or --force to adopt the directory."
            )
        if saved.get("digest") == spec.digest:
            return
    study_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"digest": spec.digest, "spec": spec.to_dict(), "num_runs": len(spec)})


def load_study(study_dir: Path) -> StudySpec:
    marker = Path(study_dir) / "study.json"
    if not marker.is_file():
        raise StudyDirError(f"{study_dir} is not a study directory (no study.json); run `disentangled study run SPEC --out {study_dir}` first")
    return from_mapping(json.loads(marker.read_text())["spec"], source=str(marker))


@contextlib.contextmanager
def run_lock(run: Path):
    """Yield True if this process now holds the run's lock, False if another process does."""
    run.mkdir(parents=True, exist_ok=True)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(run: Path) -> bool:
    lock = run / ".lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def stage_status(study_dir: Path, spec: StudySpec, model_num: int) -> dict:
    """Per stage: done, running, failed (with reason) or missing."""
    run = run_dir(study_dir, model_num)
    failed = json.loads((run / FAILED).read_text()) if (run / FAILED).is_file() else None
    running = is_locked(run)

    def state(done: bool, stage: str) -> str:
        if done:
            return "done"
        if running:
            return "running"
        if failed and failed.get("stage") == stage:
            return "failed"
        return "missing"

    out = {"model_num": model_num, "train": state((run / DONE).is_file(), "train")}
    evals = [metric_path(run, r, m).is_file() for r in spec.evaluation.representations for m in spec.evaluation.metrics]
    out["evaluate"] = state(all(evals), "evaluate") if evals else "done"
    out["evaluations_done"] = f"{sum(evals)}/{len(evals)}"
    out["attempts"] = failed.get("attempts", 0) if failed else 0
    out["reason"] = failed.get("reason", "") if failed and "failed" in (out["train"], out["evaluate"]) else ""
    return out


def is_complete(study_dir: Path, spec: StudySpec, model_num: int) -> bool:
    run = run_dir(study_dir, model_num)
    if not (run / DONE).is_file():
        return False
    return all(metric_path(run, r, m).is_file() for r in spec.evaluation.representations for m in spec.evaluation.metrics)


def record_failure(run: Path, stage: str, reason: str) -> int:
    previous = json.loads((run / FAILED).read_text()) if (run / FAILED).is_file() else {}
    attempts = int(previous.get("attempts", 0)) + 1
    write_json_atomic(run / FAILED, {"stage": stage, "reason": reason, "attempts": attempts})
    return attempts


def attempts(run: Path) -> int:
    return int(json.loads((run / FAILED).read_text()).get("attempts", 0)) if (run / FAILED).is_file() else 0
