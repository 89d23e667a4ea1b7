"""Run directories and study directories: every file name and the protocol of a run, in one place.

A run directory holds one trained model and everything said about it::

    RUN_DIR/
      config.json            the resolved configuration and its run id; written when the run is claimed
      metadata.json          versions, git sha, device, threads, seeds, the data set's describe() (source!)
      train_log.jsonl        loss terms every train.log_every steps (cut back to the checkpoint on resume)
      checkpoints/           the newest checkpoint and latest.json (format: disentangled.train.checkpoint)
      model.safetensors      final weights
      train_results.json     the objective on train.eval_batches fresh batches, elapsed time, steps
      train.done             written last, atomically: training is complete
      failed.json            only after a non-finite loss: step, terms, last good checkpoint
      metrics/<representation>/<metric>[.n<size>][.r<k>].json   one evaluation each, written atomically;
                             .n<size>: at sample size num_train = size (a swept metric), .r<k>: repetition k > 0
      metrics/<representation>/validation/<form>_<n>[_disjoint].json   a validation score on n labels (docs/semi.md)
      visualizations/        pictures (manifest and files: disentangled.viz.model)
      stage_failed.json      in a study: the last failure of this run (stage, reason, tries, transient or not)
      .lock                  in a study: held (flock) by the process working on the run

The protocol: :meth:`RunDir.claim` writes ``config.json`` (or checks that the one there is
this configuration, and that an unfinished run is only continued with ``resume``); training
writes checkpoints, the log and, at the end, weights, results and last of all the done
marker (:meth:`RunDir.finish`). Every file is written atomically, so a crash leaves either a
complete file or none, and a run without ``train.done`` is unfinished whatever else is there.

A study directory holds the spec that made it and one run directory per model::

    STUDY_DIR/
      study.json             the spec (a directory belongs to one spec) and its digest
      runs/<model_num>/      run directories, numbered as the reference numbers models (00000, ...)

Two processes never work on one run at once: a process takes the run's lock with a
non-blocking ``flock`` and skips runs whose lock another holds; the operating system
releases the lock when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import DisentangledError
from .io import write_json_atomic


class RunConfigMismatch(DisentangledError, ValueError):
    """The run directory holds another configuration, or an unfinished run without ``--resume``."""


class DamagedFile(DisentangledError):
    """A file of a run or study directory cannot be read back as written; the message names it and what to do."""


class StudyDirError(DisentangledError, ValueError):
    """The folder is not a study directory, or it belongs to another spec."""


@dataclass(frozen=True, order=True)
class MetricKey:
    """One evaluation of a run: a metric on a representation, at a sample size, in a repetition.

    ``sample_size`` is the metric's ``num_train`` when a study sweeps it (None: the metric's
    own setting); ``repetition`` counts repeated evaluations with distinct seeds
    (``evaluation.num_eval``). Repetition 0 without a sample size is the ordinary evaluation,
    so its file is the one a study without these options writes.
    """

    representation: str
    metric: str
    sample_size: int | None = None
    repetition: int = 0

    @property
    def stem(self) -> str:
        size = "" if self.sample_size is None else f".n{self.sample_size}"
        repetition = "" if self.repetition == 0 else f".r{self.repetition}"
        return f"{self.metric}{size}{repetition}"

    @classmethod
    def from_stem(cls, representation: str, stem: str) -> MetricKey:
        metric, *parts = stem.split(".")  # metric names have no dots
        size, repetition = None, 0
        for part in parts:
            if part[:1] == "n" and part[1:].isdigit():
                size = int(part[1:])
            elif part[:1] == "r" and part[1:].isdigit():
                repetition = int(part[1:])
        return cls(representation, metric, size, repetition)


#: The optimiser rule of runs whose config.json predates the ``train.optimizer`` key.
LEGACY_OPTIMIZER = "torch_adam"


class _Folder:
    """A folder with a protocol: compares, hashes and converts (``os.fspath``) as its path."""

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike | _Folder):
        object.__setattr__(self, "path", Path(path.path if isinstance(path, _Folder) else path))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.path == self.path

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path))

    def __reduce__(self):  # pickles (for worker processes) as the path it is
        return type(self), (str(self.path),)


class RunDir(_Folder):
    """One run directory (see the module docstring for its layout and protocol)."""

    # -- the files ---------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def metadata_file(self) -> Path:
        return self.path / "metadata.json"

    @property
    def log_file(self) -> Path:
        return self.path / "train_log.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def weights_file(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def results_file(self) -> Path:
        return self.path / "train_results.json"

    @property
    def done_file(self) -> Path:
        return self.path / "train.done"

    @property
    def failed_file(self) -> Path:
        return self.path / "failed.json"

    @property
    def pictures(self) -> Path:
        return self.path / "visualizations"

    @property
    def stage_failed_file(self) -> Path:
        return self.path / "stage_failed.json"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def metrics_dir(self, representation: str) -> Path:
        return self.path / "metrics" / representation

    def metric_file(self, representation: str, metric: str, *, sample_size: int | None = None,
                    repetition: int = 0) -> Path:
        return self.metric_path(MetricKey(representation, metric, sample_size, repetition))

    def metric_path(self, key: MetricKey) -> Path:
        return self.metrics_dir(key.representation) / f"{key.stem}.json"

    def metric_files(self) -> list[tuple[MetricKey, Path]]:
        """``(key, path)`` of every evaluation written so far, sorted."""
        return [(MetricKey.from_stem(p.parent.name, p.stem), p) for p in sorted((self.path / "metrics").glob("*/*.json"))]

    def validation_file(self, representation: str, form: str, num_labelled_samples: int, draw: str = "training") -> Path:
        """The validation score of ``form`` (``mig``, ``dci``, ...) on ``num_labelled_samples`` labels of ``draw``."""
        suffix = "" if draw == "training" else f"_{draw}"
        return self.metrics_dir(representation) / "validation" / f"{form}_{int(num_labelled_samples)}{suffix}.json"

    def validation_files(self) -> list[tuple[str, str, int, str, Path]]:
        """``(representation, form, num_labelled_samples, draw, path)`` of every validation score written so far, sorted."""
        out = []
        for p in sorted((self.path / "metrics").glob("*/validation/*.json")):
            parts = p.stem.split("_")
            draw = parts.pop() if len(parts) == 3 else "training"
            out.append((p.parent.parent.name, parts[0], int(parts[1]), draw, p))
        return out

    # -- state -------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    @property
    def is_claimed(self) -> bool:
        return self.config_file.is_file()

    @property
    def is_done(self) -> bool:
        return self.done_file.is_file()

    def saved_config(self) -> dict:
        """``{"run_id": ..., "config": {...}}`` as claimed (configs from before ``train.optimizer`` get its old rule)."""
        saved = _read_json(self.config_file)
        train = saved.get("config", {}).get("train")
        if isinstance(train, dict) and "optimizer" not in train:
            train["optimizer"] = LEGACY_OPTIMIZER
        return saved

    def config(self):
        """The resolved :class:`~disentangled.config.RunConfig` of this run."""
        from .config import from_dict

        return from_dict(self.saved_config()["config"])

    def metadata(self) -> dict:
        return _read_json(self.metadata_file) if self.metadata_file.is_file() else {}

    def results(self) -> dict:
        return _read_json(self.results_file)

    def failure(self) -> dict | None:
        return _read_json(self.failed_file) if self.failed_file.is_file() else None

    # -- the protocol ------------------------------------------------------------------
    def claim(self, config, *, resume: bool) -> bool:
        """Make this the run of ``config``; return True when it is finished already.

        A new directory gets ``config.json``. One that holds another configuration is
        refused with the differing keys; an unfinished run of this configuration is only
        taken with ``resume`` (so nothing is overwritten by accident).
        """
        from .config import diff

        if self.is_claimed:
            differing = diff(self.config(), config)
            if differing:
                raise RunConfigMismatch(
                    f"{self.path} holds a run with another configuration; differing keys: {', '.join(differing)}. "
                    "Use another --out folder, or the same configuration to resume."
                )
            if not resume and not self.is_done:
                raise RunConfigMismatch(f"{self.path} holds an unfinished run of this configuration; pass --resume to continue it")
            return self.is_done
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.config_file, {"run_id": config.run_id, "config": config.to_dict()})
        return False

    def restart(self) -> None:
        """Forget the training done so far (checkpoints, log, weights, results, markers); keep the configuration."""
        import shutil

        self.done_file.unlink(missing_ok=True)  # first: from here on the run is unfinished
        for path in (self.results_file, self.weights_file, self.failed_file, self.log_file, self.metadata_file):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def write_metadata(self, metadata: dict) -> None:
        write_json_atomic(self.metadata_file, metadata)

    def update_metadata(self, **entries) -> None:
        write_json_atomic(self.metadata_file, {**self.metadata(), **entries})

    def mark_failed(self, record: dict) -> None:
        write_json_atomic(self.failed_file, {"status": "failed", **record})

    def clear_failed(self) -> None:
        self.failed_file.unlink(missing_ok=True)

    def finish(self, results: dict, *, run_id: str, steps: int, weights_sha256: str | None = None) -> None:
        """The results, then the done marker, last (a crash between them leaves an unfinished run)."""
        write_json_atomic(self.results_file, results)
        write_json_atomic(self.done_file, {"run_id": run_id, "steps": steps, "weights_sha256": weights_sha256})

    def done_record(self) -> dict:
        """What the done marker says: run id, steps and the final weights' SHA-256."""
        return _read_json(self.done_file) if self.is_done else {}

    def open_log(self, *, keep_bytes: int | None):
        """The training log for appending: cut back to ``keep_bytes`` (a checkpoint's length), or new when None."""
        if keep_bytes is None:
            self.log_file.unlink(missing_ok=True)
        elif self.log_file.exists() and self.log_file.stat().st_size > keep_bytes:
            with open(self.log_file, "r+b") as fh:
                fh.truncate(keep_bytes)
        return open(self.log_file, "a")

    # -- a study's bookkeeping ---------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[bool]:
        """Yield True if this process now holds the run's lock, False if another process does."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
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

    @property
    def is_locked(self) -> bool:
        if not self.lock_file.exists():
            return False
        fd = os.open(self.lock_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def stage_failure(self) -> dict | None:
        return _read_json(self.stage_failed_file) if self.stage_failed_file.is_file() else None

    def record_stage_failure(self, stage: str, reason: str, *, transient: bool) -> int:
        """Note that ``stage`` failed for ``reason``; return how many tries have failed so far.

        ``transient``: the cause may pass (out of space, an I/O error, a lost worker), so a
        rerun tries the run again; otherwise it failed for good until retried on request.
        """
        attempts = self.attempts + 1
        write_json_atomic(self.stage_failed_file,
                          {"stage": stage, "reason": reason, "attempts": attempts, "transient": bool(transient)})
        return attempts

    def clear_stage_failure(self) -> None:
        self.stage_failed_file.unlink(missing_ok=True)

    @property
    def attempts(self) -> int:
        failure = self.stage_failure()
        return int(failure.get("attempts", 0)) if failure else 0

    @property
    def failed_for_good(self) -> bool:
        """The last try failed for a reason that would fail again (a diverged loss, a bad config, a missing file)."""
        failure = self.stage_failure()
        return bool(failure) and not failure.get("transient", False)


class StudyDir(_Folder):
    """A study directory: its spec and its runs by model number (see the module docstring)."""

    @property
    def spec_file(self) -> Path:
        return self.path / "study.json"

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    @property
    def is_study(self) -> bool:
        return self.spec_file.is_file()

    def run(self, model_num: int) -> RunDir:
        return RunDir(self.runs_dir / f"{int(model_num):05d}")

    def claim(self, spec, *, force: bool = False) -> None:
        """Create the study directory, or check it was made by this spec (``force`` adopts it)."""
        if self.is_study:
            saved = _read_json(self.spec_file)
            if saved.get("digest") != spec.digest and not force:
                raise StudyDirError(
                    f"{self.path} was made by another spec ({saved.get('spec', {}).get('name')!r}, digest {saved.get('digest')}); "
                    f"this spec is {spec.name!r} (digest {spec.digest}). Use another --out, or --force to adopt the directory."
                )
            if saved.get("digest") == spec.digest:
                return
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.spec_file, {"digest": spec.digest, "spec": spec.to_dict(), "num_runs": len(spec)})

    def spec(self):
        """The :class:`~disentangled.study.spec.StudySpec` that made this directory."""
        from .study.spec import from_mapping

        if not self.is_study:
            raise StudyDirError(
                f"{self.path} is not a study directory (no {self.spec_file.name}); "
                f"run `disentangled study run SPEC --out {self.path}` first"
            )
        return from_mapping(_read_json(self.spec_file)["spec"], source=str(self.spec_file))

    def evaluations(self, spec) -> list[MetricKey]:
        """Every evaluation that ``spec`` asks of each run."""
        return spec.evaluation.keys()

    def validations(self, spec, model_num: int) -> list[Path]:
        """The validation files ``spec`` asks of run ``model_num`` (none without ``evaluation.validation``)."""
        v = spec.evaluation.validation
        if v is None:
            return []
        run = self.run(model_num)
        return [run.validation_file(r, form, n, v.draw) for r in spec.evaluation.representations
                for form in v.metrics for n in spec.validation_counts(model_num)]

    def is_complete(self, spec, model_num: int) -> bool:
        run = self.run(model_num)
        return (run.is_done and all(run.metric_path(k).is_file() for k in self.evaluations(spec))
                and all(p.is_file() for p in self.validations(spec, model_num)))

    def stage_status(self, spec, model_num: int) -> dict:
        """Per stage: done, running, failed (with reason) or missing."""
        run = self.run(model_num)
        failed = run.stage_failure()
        running = run.is_locked

        def state(done: bool, stage: str) -> str:
            if done:
                return "done"
            if running:
                return "running"
            if failed and failed.get("stage") == stage:
                return "failed"
            return "missing"

        out = {"model_num": model_num, "train": state(run.is_done, "train")}
        evals = [run.metric_path(k).is_file() for k in self.evaluations(spec)]
        evals += [p.is_file() for p in self.validations(spec, model_num)]
        out["evaluate"] = state(all(evals), "evaluate") if evals else "done"
        out["evaluations_done"] = f"{sum(evals)}/{len(evals)}"
        out["attempts"] = failed.get("attempts", 0) if failed else 0
        out["reason"] = failed.get("reason", "") if failed and "failed" in (out["train"], out["evaluate"]) else ""
        return out


def _read_json(path: Path):
    """A JSON file of a run or study directory, or :class:`DamagedFile` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, ValueError) as err:
        raise DamagedFile(
            f"{path}: not readable as JSON ({err}); this file is written whole or not at all, so it was changed "
            "after it was written: restore it, or delete the run directory (a study reruns it)"
        ) from err
