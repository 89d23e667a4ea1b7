"""UDR of trained runs: a set of run directories scored against each other, or a study's seed groups.

UDR (:mod:`disentangled.metrics.udr`) needs several models trained with the same data set,
method and hyperparameters (different seeds); it cannot score a run alone, so it is not one
of a run's metrics. Two forms:

* :func:`udr_of_runs` scores the finished runs given against each other, on observations
  shared by all of them, and returns the reference's results (``model_scores`` in the order
  of the runs, ``pairwise_disentanglement_scores``, ``raw_correlations``) keyed by run;
* :func:`udr_of_study` does it, as the UDR paper does, for every group of a study's runs
  that share their configuration except the seed, and writes each run's score into
  ``RUN_DIR/metrics/mean/udr.json`` (``udr.model_score``), so that ``study collect`` puts
  one UDR score per run into the study's table. A group is scored once all its runs are
  trained; rerunning skips groups already scored with the same runs and settings.

Both use the encoder means and log-variances of each run (the reference's
``gaussian_encoder`` signature) and, as the reference's configuration, ``RandomState(0)``
for the shared observations.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .errors import ParameterError
from .rundir import RunDir, StudyDir

SEED = 0  # evaluation.random_seed of the reference's udr.gin


def _check_runs(runs: Sequence[RunDir]):
    """The runs' configurations, or an error naming the runs that cannot be compared."""
    if len(runs) < 2:
        named = ", ".join(str(r) for r in runs) or "none"
        raise ParameterError(f"UDR scores runs against each other: give at least two run directories, got {len(runs)} ({named})")
    unfinished = [str(r) for r in runs if not r.is_done]
    if unfinished:
        raise ParameterError(f"UDR needs finished runs; not finished (no {RunDir('.').done_file.name}): {', '.join(unfinished)}; "
                             "train or resume them first")
    configs = [r.config() for r in runs]
    first = configs[0]
    def data_set(c) -> str:
        options = ", ".join(f"{k}={v}" for k, v in sorted(c.data.options().items()))
        return c.data.name + (f" ({options})" if options else "")

    for what, value in (("data set", data_set), ("latent size", lambda c: str(c.model.num_latent))):
        groups: dict = {}
        for run, config in zip(runs, configs):
            groups.setdefault(value(config), []).append(str(run))
        if len(groups) > 1:
            shown = "; ".join(f"{key}: {', '.join(names)}" for key, names in groups.items())
            raise ParameterError(f"UDR compares runs of one data set and one latent size; these runs differ in {what} ({shown})")
    return configs, first


def udr_of_runs(run_dirs: Iterable, *, settings: dict | None = None, seed: int = SEED, device=None) -> dict:
    """Score the finished runs ``run_dirs`` against each other (see the module docstring).

    Returns ``{"runs", "model_scores" (run -> score), "pairwise_disentanglement_scores",
    "reasons" (run -> why its score is NaN), "settings", "seed", "data", "elapsed_s"}`` and,
    with ``include_raw_correlations``, ``"raw_correlations"``.
    """
    from . import data as data_module
    from .metrics import UDR
    from .train.represent import GaussianEncoder, load_model

    runs = [RunDir(r) for r in run_dirs]
    configs, first = _check_runs(runs)
    metric = UDR(**(settings or {}))
    start = time.perf_counter()
    data = data_module.get(first.data.name, **first.data.options())
    encoders = [GaussianEncoder(load_model(r.path)[0], device=device) for r in runs]
    result = metric.evaluate(data, encoders, rng=np.random.RandomState(seed))
    names = [str(r) for r in runs]
    out = {
        "runs": names,
        "model_scores": dict(zip(names, result["model_scores"])),
        "pairwise_disentanglement_scores": result["pairwise_disentanglement_scores"],
        "reasons": {names[i]: reason for i, reason in result["reasons"].items()},
        "settings": recorded_settings(metric),
        "seed": int(seed),
        "rng": "numpy.random.RandomState",
        "data": data.describe(),
        "elapsed_s": round(time.perf_counter() - start, 3),
    }
    if "raw_correlations" in result:
        out["raw_correlations"] = result["raw_correlations"]
    return out


def recorded_settings(metric) -> dict:
    """The UDR settings a result depends on (execution-only options left out)."""
    from .metrics import settings_of

    return {k: v for k, v in settings_of(metric).items() if metric.__dataclass_fields__[k].metadata.get("setting", True)}


def to_dlib_format(result: dict) -> dict:
    """The reference's result keys: ``model_scores`` (a list, in the runs' order), pairwise ``[n, n, 1]``."""
    out = {
        "udr.model_scores": [result["model_scores"][r] for r in result["runs"]],
        "udr.pairwise_disentanglement_scores": [[[v] for v in row] for row in result["pairwise_disentanglement_scores"]],
        "udr.elapsed_time": result["elapsed_s"],
    }
    if "raw_correlations" in result:
        out["udr.raw_correlations"] = result["raw_correlations"]
    return out


def seed_groups(study: StudyDir) -> list[list[int]]:
    """Model numbers of the study's runs grouped by their configuration without the seed, in model-number order."""
    from .config import flatten

    spec = study.spec()
    groups: dict[str, list[int]] = {}
    for n in range(len(spec)):
        config = flatten(spec.run_config(n).to_dict())
        config.pop("seed", None)
        groups.setdefault(repr(sorted(config.items())), []).append(n)
    return list(groups.values())


def udr_of_study(study_dir, *, settings: dict | None = None, seed: int = SEED, device=None, force: bool = False,
                 echo: Callable[[str], None] | None = None) -> list[dict]:
    """UDR of every seed group of a study, written into each run's ``metrics/mean/udr.json``; one summary per group."""
    from .io import write_json_atomic
    from .metrics import UDR

    study = StudyDir(study_dir)
    wanted = recorded_settings(UDR(**(settings or {})))
    summaries = []
    for group in seed_groups(study):
        runs = [study.run(n) for n in group]
        summary = {"model_nums": group, "status": "", "reason": ""}
        summaries.append(summary)
        if len(group) < 2:
            summary.update(status="skipped", reason="a group of one run (the sweep has no seeds to compare)")
        elif not all(r.is_done for r in runs):
            waiting = [n for n, r in zip(group, runs) if not r.is_done]
            summary.update(status="waiting", reason=f"runs not trained yet: {waiting}")
        elif not force and all(_scored(r, group, wanted, seed) for r in runs):
            summary.update(status="done", reason="scored before")
        else:
            result = udr_of_runs([r.path for r in runs], settings=settings, seed=seed, device=device)
            pairwise = np.asarray(result["pairwise_disentanglement_scores"], dtype=np.float64)
            for i, (n, run) in enumerate(zip(group, runs)):
                record = {
                    "metric": "udr",
                    "scores": {"udr.model_score": result["model_scores"][str(run)]},
                    "settings": result["settings"],
                    "seed": result["seed"],
                    "rng": result["rng"],
                    "group": group,
                    # the scores of the pairs (other -> this run), whose median is this run's score
                    "pair_scores": {str(m): float(pairwise[j, i]) for j, m in enumerate(group) if j != i},
                    "reason": result["reasons"].get(str(run)),
                    "representation": "mean",
                    "run_id": run.saved_config().get("run_id"),
                    "data": result["data"],
                    "elapsed_s": result["elapsed_s"],
                }
                write_json_atomic(run.metric_file("mean", "udr"), record)
            summary.update(status="scored", scores={n: result["model_scores"][str(r)] for n, r in zip(group, runs)})
        if echo:
            shown = summary["status"] + (f" ({summary['reason']})" if summary["reason"] else "")
            echo(f"UDR of runs {group}: {shown}")
    return summaries


def _scored(run: RunDir, group: list[int], settings: dict, seed: int) -> bool:
    import json

    path = run.metric_file("mean", "udr")
    if not path.is_file():
        return False
    record = json.loads(path.read_text())
    return record.get("group") == group and record.get("settings") == settings and record.get("seed") == seed


def is_study(path) -> bool:
    return StudyDir(Path(path)).is_study
