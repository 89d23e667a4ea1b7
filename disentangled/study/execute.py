"""Run a study: each run goes through train -> evaluate, on one of three executors.

* ``inline``: in this process, one run after the other (tests, debugging).
* ``local``: a pool of worker processes on this machine (the default).
* ``ray``: each run is a Ray task (with retries) on the cluster at ``--address`` or on a
  local Ray started here; for a real cluster the study directory must be a shared path.

Whatever the executor, a run is processed by :func:`process_run`, which takes the run's
lock, skips the stages already done, resumes training from its last checkpoint, and
records a failure with its reason rather than stopping the study. The collected table is
therefore the same whichever executor ran it, bit for bit when each run gets the same
number of threads (``threads``); a different thread count changes how floating-point
sums are split and so the last digits of the training losses.

Ensembles (``ensemble > 1``): pending runs that differ only in seed and the objective's
numeric hyperparameters are grouped, in model-number order, into ensembles of up to
``ensemble`` members (:func:`ensemble_jobs`); :func:`process_ensemble` takes every
member's run lock, trains the members that need it as one vectorised model
(:func:`~disentangled.train.ensemble.train_ensemble`) and then evaluates each member as
:func:`process_run` does. On the CPU the table is then the same bit for bit; on a GPU
each training step agrees to float32 rounding (see docs/ensembles.md). With
``eval_workers`` (the default on a GPU) the ensemble's process only trains, and each
trained member is scored in a separate single-threaded process (its encoder on the
GPU), so the GPU trains the next ensemble while the CPU cores score the last one.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

from .spec import StudySpec
from ..errors import DisentangledError
from ..rundir import RunDir, StudyDir
from ..errors import ParameterError

EXECUTORS = ("inline", "local", "ray")


def process_run(study_dir: str, model_num: int, spec_dict: dict, threads: int | None = None,
                device: str | None = None) -> dict:
    """Train and evaluate one run; returns ``{"model_num", "status", "reason", "seconds"}``.

    ``device``: where the evaluation encodes (default: the CPU; ``"auto"``: a GPU if there is one).
    """
    from .spec import from_mapping

    if threads:
        import torch

        torch.set_num_threads(threads)
    spec = from_mapping(spec_dict)
    study = StudyDir(study_dir)
    run = study.run(model_num)
    start = time.perf_counter()
    with run.lock() as mine:
        if not mine:
            return {"model_num": model_num, "status": "busy", "reason": "another process holds this run", "seconds": 0.0}
        if study.is_complete(spec, model_num):
            return {"model_num": model_num, "status": "done", "reason": "", "seconds": 0.0}
        stage = "train"
        try:
            from ..train import train

            config = spec.run_config(model_num)
            train(config, run.path, resume=True, progress=False)
            stage = "evaluate"
            evaluate_run(run, spec, model_num, device=_device(device))
        except Exception as err:  # the study goes on; the reason is kept with the run
            reason = f"{type(err).__name__}: {err}"
            transient = is_transient(err)
            n = run.record_stage_failure(stage, reason + "\n" + traceback.format_exc(limit=3), transient=transient)
            return {"model_num": model_num, "status": "failed", "reason": reason, "attempts": n, "transient": transient,
                    "seconds": time.perf_counter() - start}
        run.clear_stage_failure()
    return {"model_num": model_num, "status": "done", "reason": "", "seconds": time.perf_counter() - start}


def default_ensemble() -> int:
    """Members per ensemble when ``--ensemble`` is not given: 32 with a GPU, 1 (no ensembles) without."""
    import torch

    return 32 if torch.cuda.is_available() else 1


def ensemble_jobs(spec: StudySpec, todo: list[int], size: int) -> list[list[int]]:
    """``todo`` grouped into lists of up to ``size`` runs that can train as one ensemble."""
    if size <= 1:
        return [[n] for n in todo]
    from ..train.ensemble import stack_key

    groups: dict[str, list[int]] = {}
    for n in todo:
        groups.setdefault(stack_key(spec.run_config(n)), []).append(n)
    jobs = [nums[i:i + size] for nums in groups.values() for i in range(0, len(nums), size)]
    return sorted(jobs, key=lambda job: job[0])


def process_ensemble(study_dir: str, model_nums: list[int], spec_dict: dict, threads: int | None = None,
                     tf32: bool = False, evaluate: bool = True) -> list[dict]:
    """Train ``model_nums`` as one ensemble, then evaluate each; one result per run, as :func:`process_run`.

    ``tf32``: let a GPU compute the ensemble's convolutions and matrix products in
    TensorFloat-32 (see :func:`~disentangled.train.ensemble.train_ensemble`). With
    ``evaluate=False`` the members are only trained: those that trained get the status
    ``"trained"`` and are evaluated elsewhere (:func:`process_run` with the encoder on
    the GPU), so that the GPU process can go on training the next ensemble.
    """
    import contextlib

    from .spec import from_mapping

    if threads:
        import torch

        torch.set_num_threads(threads)
    from ..train.ensemble import default_device, train_ensemble

    spec = from_mapping(spec_dict)
    study = StudyDir(study_dir)
    device = default_device()
    start = time.perf_counter()
    results: dict[int, dict] = {}
    with contextlib.ExitStack() as stack:
        mine = []
        for n in model_nums:
            run = study.run(n)
            if not stack.enter_context(run.lock()):
                results[n] = {"model_num": n, "status": "busy", "reason": "another process holds this run", "seconds": 0.0}
            elif study.is_complete(spec, n):
                results[n] = {"model_num": n, "status": "done", "reason": "", "seconds": 0.0}
            else:
                mine.append(n)
        trained: dict[int, object] = {}
        try:
            if mine:
                outcomes = train_ensemble([spec.run_config(n) for n in mine], [study.run(n).path for n in mine],
                                          resume=True, progress=False, device=device, allow_tf32=tf32)
                trained = dict(zip(mine, outcomes))
        except Exception as err:  # the whole ensemble stopped: every member records why
            trained = {n: err for n in mine}
        for n in mine:
            run = study.run(n)
            outcome, stage = trained[n], "train"
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                if not evaluate:
                    results[n] = {"model_num": n, "status": "trained", "reason": "", "seconds": time.perf_counter() - start}
                    continue
                stage = "evaluate"
                evaluate_run(run, spec, n, device=device)  # on the GPU the ensemble trained on, if any
            except Exception as err:
                reason = f"{type(err).__name__}: {err}"
                transient = is_transient(err)
                count = run.record_stage_failure(stage, reason + "\n" + "".join(traceback.format_exception(err, limit=3)),
                                                 transient=transient)
                results[n] = {"model_num": n, "status": "failed", "reason": reason, "attempts": count,
                              "transient": transient, "seconds": time.perf_counter() - start}
                continue
            run.clear_stage_failure()
            results[n] = {"model_num": n, "status": "done", "reason": "", "seconds": time.perf_counter() - start}
    return [results[n] for n in model_nums]


def process_job(study_dir: str, model_nums: list[int], spec_dict: dict, threads: int | None = None,
                ensemble: bool = False, tf32: bool = False, evaluate: bool = True) -> list[dict]:
    """One unit of work of an executor: a run alone, or an ensemble of runs (also of one, on its device)."""
    if not ensemble:
        return [process_run(study_dir, n, spec_dict, threads) for n in model_nums]
    return process_ensemble(study_dir, model_nums, spec_dict, threads, tf32, evaluate)


def _device(device: str | None) -> str | None:
    if device == "auto":
        from ..train.ensemble import default_device

        return default_device()
    return device


def evaluate_run(run: RunDir, spec: StudySpec, model_num: int, device=None) -> None:
    """Every evaluation of the spec not yet done for this run; the encoder runs on ``device``."""
    from ..evaluate import evaluate_run as evaluate_run_dir

    ev = spec.evaluation
    if ev.metrics and not all(run.metric_path(k).is_file() for k in ev.keys()):
        # all of them are asked for, so that seeds drawn from a stream (seeds: jmlr) are the same whichever are missing
        evaluate_run_dir(
            run.path, representation=ev.representations, metrics=sorted(ev.metrics), protocol=ev.protocol,
            random_seed=spec.random_seed(model_num), settings={m: dict(v) for m, v in ev.metrics.items()}, n_jobs=1,
            device=device,
        )
    if ev.validation is not None:
        validate_study_run(run, spec, model_num, device=device)


def validate_study_run(run: RunDir, spec: StudySpec, model_num: int, device=None) -> None:
    """The validation scores ``spec`` asks of this run not yet written (``evaluation.validation``; docs/semi.md).

    A semi-supervised run is scored on its own labelled set; any other run on the set drawn
    with the study's ``base.supervision`` settings and the run's seed, which is the set a
    semi-supervised run of that seed trains on, so both kinds are selected with the same labels.
    """
    from ..train.validation import validate_run

    v = spec.evaluation.validation
    config = spec.run_config(model_num)
    supervision = None if config.supervision is not None else spec.validation_supervision()
    for representation in spec.evaluation.representations:
        for n in spec.validation_counts(model_num):
            todo = [f for f in v.metrics if not run.validation_file(representation, f, n, v.draw).is_file()]
            if todo:
                validate_run(run.path, representation=representation, forms=todo, draw=v.draw, supervision=supervision,
                             num_labelled_samples=None if config.supervision is not None else n, device=device)


#: OS errors that say something is wrong with the request, not with the moment: they would fail again.
_LASTING_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_transient(err: BaseException) -> bool:
    """Whether a run's failure may pass by itself, so that trying again can succeed.

    Transient: running out of space or memory, other I/O errors, a worker process that
    died or a Ray task lost with its node. Everything else (a non-finite loss, which
    recurs at the same step; a bad configuration; a missing data file; a bug) fails again
    until something is changed, so it is not retried unless asked (``--retry-failed``).
    """
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(err, (BrokenProcessPool, MemoryError, WorkerLost)):
        return True
    if isinstance(err, OSError):
        return not isinstance(err, _LASTING_OS_ERRORS)
    return False


class WorkerLost(RuntimeError):
    """The process or Ray task working on a run died before it could report."""


def pending(study_dir: Path, spec: StudySpec, only: list[int] | None, retry_failed: bool = False) -> list[int]:
    """The runs still to do: not complete and not failed for good (unless ``retry_failed``)."""
    nums = only if only is not None else range(len(spec))
    study = StudyDir(study_dir)
    return [n for n in nums if not study.is_complete(spec, n) and (retry_failed or not study.run(n).failed_for_good)]


def summarize(results: list[dict]) -> dict[str, list[dict]]:
    """The last outcome of each run, grouped: ``done``, ``failed``, ``busy`` (held by another process), ``skipped``."""
    last: dict[int, dict] = {}
    for r in results:
        last[r["model_num"]] = r
    out: dict[str, list[dict]] = {"done": [], "failed": [], "busy": [], "skipped": []}
    for n in sorted(last):
        out[last[n]["status"] if last[n]["status"] in out else "failed"].append(last[n])
    return out


def run_study(
    spec: StudySpec,
    study_dir: Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    only: list[int] | None = None,
    max_attempts: int = 3,
    retry_failed: bool = False,
    address: str | None = None,
    threads: int | None = None,
    ensemble: int | None = None,
    tf32: bool = False,
    eval_workers: int | None = None,
    progress: bool = True,
    echo=print,
) -> list[dict]:
    """Process every unfinished run; return one result per try (see :func:`summarize`).

    A run that fails for a transient reason (:func:`is_transient`) is tried again, up to
    ``max_attempts`` tries in this call, and stays pending for the next call whatever
    happens. A run that fails for good is tried once and then left failed: later calls
    list it (status ``failed``, ``"retried": False``) without trying it again unless
    ``retry_failed``. Runs finished before are reported as ``skipped``; runs that another
    process holds as ``busy``.

    ``threads`` is the number of PyTorch threads each run uses (default: the cores shared
    evenly among the workers). ``ensemble`` is the most runs trained together as one
    vectorised model (default :func:`default_ensemble`: 32 with a GPU, 1 without); with a
    GPU and ensembles, ``workers`` defaults to 1 (one process drives the GPU). ``tf32`` lets
    ensembles on a GPU compute in TensorFloat-32 (off by default: float32, as the study).

    ``eval_workers``: with ensembles and the ``local`` or ``ray`` executor, score trained
    members in this many separate single-threaded processes (their encoders on the GPU
    when there is one) while the ensemble workers go on training; 0 scores each member in
    its ensemble's process after training. Default: on a GPU, the cores the training
    workers leave free (at least 1); on the CPU, 0.
    """
    from tqdm import tqdm

    if executor not in EXECUTORS:
        raise ParameterError(f"--executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ParameterError(f"--max-attempts must be an integer >= 1, got {max_attempts!r}")
    study = StudyDir(study_dir)
    nums = list(only) if only is not None else list(range(len(spec)))
    todo = pending(study_dir, spec, nums, retry_failed)
    results: list[dict] = []
    for n in nums:
        if n in todo:
            continue
        if study.is_complete(spec, n):
            results.append({"model_num": n, "status": "skipped", "reason": "done before", "seconds": 0.0})
        else:
            failure = study.run(n).stage_failure() or {}
            results.append({"model_num": n, "status": "failed", "retried": False, "transient": False, "seconds": 0.0,
                            "reason": (failure.get("reason") or "").splitlines()[0] + " (failed before; --retry-failed tries it again)"})
    settled: set[int] = set()
    bar = tqdm(total=len(nums), initial=len(nums) - len(todo), desc=f"study {spec.name}", unit="run", disable=not progress)
    spec_dict = spec.to_dict()
    if workers is not None and workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise ParameterError(f"--threads must be at least 1, got {threads}")
    if ensemble is not None and ensemble < 1:
        raise ParameterError(f"--ensemble must be at least 1 (1 trains each run alone), got {ensemble}")
    ensemble = ensemble or default_ensemble()
    if workers is None and ensemble > 1 and default_ensemble() > 1:
        workers = 1  # a GPU: one process feeds it whole ensembles
    workers = workers or max(1, min(len(ensemble_jobs(spec, todo, ensemble)), (os.cpu_count() or 1)))
    gpu = ensemble > 1 and default_ensemble() > 1
    if eval_workers is not None and eval_workers < 0:
        raise ParameterError(f"--eval-workers must be 0 or more, got {eval_workers}")
    if eval_workers is None:
        eval_workers = max(1, (os.cpu_count() or 1) - workers) if gpu else 0
    # a process driving a GPU needs one thread; on the CPU the cores are shared among the workers
    threads = threads or (1 if gpu and eval_workers else max(1, (os.cpu_count() or 1) // workers))

    last_round = {"now": False}

    def finished(result: dict) -> None:
        results.append(result)
        retry = result["status"] == "failed" and result.get("transient") and not last_round["now"]
        if not retry and result["model_num"] not in settled:  # each run moves the bar once, when it is settled
            settled.add(result["model_num"])
            bar.update(1)
        line = f"run {result['model_num']}: {result['status']}"
        if result.get("reason"):
            line += f" ({result['reason'].splitlines()[0]})"
        if result.get("seconds"):
            line += f" in {result['seconds']:.0f} s"
        bar.write(line) if progress else echo(line)

    with bar:
        for attempt in range(max_attempts):
            if not todo:
                break
            last_round["now"] = attempt == max_attempts - 1
            jobs = ensemble_jobs(spec, todo, ensemble)
            stacked = (ensemble > 1, tf32)
            split = eval_workers if ensemble > 1 else 0
            if executor == "inline":
                _run_inline(study_dir, jobs, spec_dict, threads, stacked, finished)
            elif executor == "local":
                _run_local(study_dir, jobs, spec_dict, workers, threads, stacked, finished, split)
            else:
                _run_ray(study_dir, jobs, spec_dict, workers, threads, stacked, address, max_attempts, finished, split)
            todo = [n for n in todo if _last(results, n).get("status") == "failed" and _last(results, n).get("transient")]
    return results


def _last(results: list[dict], model_num: int) -> dict:
    return next((r for r in reversed(results) if r["model_num"] == model_num), {})


def _run_inline(study_dir, jobs, spec_dict, threads, stacked, finished) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        for job in jobs:
            for result in process_job(str(study_dir), job, spec_dict, threads, *stacked):
                finished(result)
    finally:
        torch.set_num_threads(before)


def _run_local(study_dir, jobs, spec_dict, workers, threads, stacked, finished, eval_workers=0) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait

    spawn = mp.get_context("spawn")
    if not eval_workers:
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            futures = {pool.submit(process_job, str(study_dir), job, spec_dict, threads, *stacked): job for job in jobs}
            for future in as_completed(futures):
                for result in _outcomes(future, futures[future], study_dir):
                    finished(result)
        return
    # ensembles train in ``workers`` processes; each trained member is scored in one of ``eval_workers``
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as train_pool, \
            ProcessPoolExecutor(max_workers=eval_workers, mp_context=spawn) as eval_pool:
        jobs_of = {train_pool.submit(process_job, str(study_dir), job, spec_dict, threads, *stacked, False): job
                   for job in jobs}
        waiting = set(jobs_of)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for future in done:
                for result in _outcomes(future, jobs_of[future], study_dir):  # an ensemble's, or one scored run
                    if result["status"] == "trained":
                        scoring = eval_pool.submit(process_run, str(study_dir), result["model_num"], spec_dict, 1, "auto")
                        jobs_of[scoring] = [result["model_num"]]
                        waiting.add(scoring)
                    else:
                        finished(result)


def _outcomes(future, job: list[int], study_dir) -> list[dict]:
    """A finished job's results; a job whose worker died gives each of its runs a transient failure."""
    try:
        results = future.result()
    except Exception as err:  # the worker process died (BrokenProcessPool) or the task was lost
        return lost(job, study_dir, err)
    return results if isinstance(results, list) else [results]


def lost(job: list[int], study_dir, err: BaseException) -> list[dict]:
    """Transient failures for the runs of a job whose process or task died before it could report."""
    reason = f"{WorkerLost.__name__}: the worker working on it died ({type(err).__name__}: {err})"
    out = []
    for n in job:
        attempts = StudyDir(study_dir).run(n).record_stage_failure("train", reason, transient=True)
        out.append({"model_num": n, "status": "failed", "reason": reason, "attempts": attempts, "transient": True,
                    "seconds": 0.0})
    return out


def ray_gpu_shares(gpus: float, workers: int, ensembles: bool) -> tuple[float, float]:
    """GPU shares ``(per training task, per scoring task)`` for Ray on a cluster with ``gpus`` GPUs.

    Without GPUs, or without ensembles (runs trained alone, on the CPU), none. With them,
    the ``workers`` training tasks share 0.8 of each GPU (one ensemble per GPU when there
    are as many GPUs as workers) and each scoring task asks for 0.01 of one, enough to be
    shown a GPU for its encoder while 20 of them fit beside the training.
    """
    if gpus <= 0 or not ensembles:
        return 0.0, 0.0
    return min(0.8, 0.8 * gpus / max(workers, 1)), 0.01


class RayUnavailable(DisentangledError, RuntimeError):
    pass


def _run_ray(study_dir, jobs, spec_dict, workers, threads, stacked, address, max_attempts, finished, eval_workers=0) -> None:
    try:
        import ray
    except ImportError as err:
        raise RayUnavailable("the ray executor needs Ray: pip install 'disentangled[ray]'") from err
    started_here = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers + eval_workers, include_dashboard=False, log_to_driver=False)
                started_here = True
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise RayUnavailable(f"cannot connect to the Ray cluster at {address!r}: {err}; nothing was started") from err
    try:
        # Ray hides the GPUs from a task that asks for none (CUDA_VISIBLE_DEVICES=""): ensembles and
        # the scorers' encoders ask for a share of one when the cluster has GPUs
        train_gpus, score_gpus = ray_gpu_shares(ray.cluster_resources().get("GPU", 0.0), workers, stacked[0])
        task = ray.remote(num_cpus=threads, num_gpus=train_gpus, max_retries=max_attempts - 1)(process_job)
        scorer = ray.remote(num_cpus=1, num_gpus=score_gpus, max_retries=max_attempts - 1)(process_run)
        root = str(Path(study_dir).resolve())
        refs = {task.remote(root, job, spec_dict, threads, *stacked, not eval_workers): job for job in jobs}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                job = refs.pop(ref)
                try:
                    results = ray.get(ref)
                    results = results if isinstance(results, list) else [results]
                except ray.exceptions.RayError as err:  # a worker or node lost: the task itself catches run errors
                    results = lost(job, study_dir, err)
                for result in results:
                    if result["status"] == "trained":
                        refs[scorer.remote(root, result["model_num"], spec_dict, 1, "auto")] = [result["model_num"]]
                    else:
                        finished(result)
    finally:
        if started_here:
            ray.shutdown()
