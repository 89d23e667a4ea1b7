"""``disentangled study``: plan, run, status, collect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .common import console

app = typer.Typer(help="Studies: many runs planned from a spec, run locally or on Ray, collected into one table.",
                  no_args_is_help=True)

SpecArg = typer.Argument(..., help="A preset name (see `disentangled list presets`: quickstart, small, unsupervised_study_v1, weak_small, weakly_supervised_study, ...) or a YAML spec path.")


@app.command()
def plan(
    spec: str = SpecArg,
    model_num: Optional[int] = typer.Option(None, "--model-num", help="Show this run only."),
    as_json: bool = typer.Option(False, "--json", help="With --model-num: print the run's resolved config as JSON."),
    show_all: bool = typer.Option(False, "--all", help="List every run (default: the first 20 and the last 5)."),
) -> None:
    """The number of runs and a table of them; or one run's resolved configuration."""
    from ..study.spec import load_spec

    s = load_spec(spec)
    s.run_configs()  # every run's configuration validated now, as `study run` will
    if model_num is not None:
        config = s.run_config(model_num)
        if as_json:
            typer.echo(json.dumps({"model_num": model_num, "run_id": config.run_id, **config.to_dict()}, indent=2, sort_keys=True))
        else:
            console.print(f"model_num {model_num}: run {config.run_id}")
            console.print(config.to_dict())
        return
    settings = s.settings
    console.print(f"study {s.name}: {len(settings)} runs; evaluation: {list(s.evaluation.representations)} x {sorted(s.evaluation.metrics)}")
    p = s.evaluation.protocol
    if p.num_eval > 1 or p.sample_sizes or p.seeds != "study":
        sizes = ", ".join(f"{m} at {list(v)}" for m, v in p.sample_sizes.items()) or "none"
        console.print(f"  {len(s.evaluation.keys())} evaluations per run: {p.num_eval} repetition(s), seeds {p.seeds}"
                      f"{' (the sweep seed is the pipeline random_seed)' if p.seeds == 'jmlr' else ''}; sample sizes: {sizes}")
    keys = sorted({k for setting in settings for k in setting})
    table = Table()
    table.add_column("model_num", justify="right")
    for k in keys:
        table.add_column(k)
    shown = range(len(settings)) if show_all or len(settings) <= 25 else [*range(20), *range(len(settings) - 5, len(settings))]
    previous = -1
    for n in shown:
        if n != previous + 1:
            table.add_row("...", *["..."] * len(keys))
        table.add_row(str(n), *[str(settings[n].get(k, "")) for k in keys])
        previous = n
    console.print(table)


@app.command()
def run(
    spec: str = SpecArg,
    out: Path = typer.Option(..., "--out", help="Study directory (a shared path for a Ray cluster)."),
    executor: str = typer.Option("local", "--executor", help="inline | local | ray"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel runs (default: the number of cores)."),
    only: Optional[List[int]] = typer.Option(None, "--only", help="Only these model numbers (repeatable)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="PyTorch threads per run (default: cores / workers)."),
    max_attempts: int = typer.Option(3, "--max-attempts", min=1,
                                     help="Tries per run in this call for transient failures (out of space, I/O errors, "
                                          "a lost worker); such runs stay pending for the next call anyway."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Try again runs that failed for good before (a diverged loss, a bad config, "
                                           "a missing file): after fixing the cause."),
    ensemble: Optional[int] = typer.Option(
        None, "--ensemble", min=1,
        help="Train up to N runs that differ only in seed and objective hyperparameters together as one "
             "vectorised model, then evaluate each. Default: 32 when a GPU is available (then --workers "
             "defaults to 1), else 1 (each run alone). On the CPU results are the same bit for bit; on a GPU "
             "each step agrees to float32 rounding. See docs/ensembles.md."),
    tf32: bool = typer.Option(
        False, "--tf32/--no-tf32",
        help="Let ensembles on a GPU compute convolutions and matrix products in TensorFloat-32 (faster on "
             "Ampere and newer; inputs rounded to 10-bit mantissas). Default off: float32, as the study."),
    eval_workers: Optional[int] = typer.Option(
        None, "--eval-workers", min=0,
        help="With ensembles (local or ray executor): processes that score trained members while training goes "
             "on. Default: on a GPU the cores the training workers leave free, on the CPU 0 (score in the "
             "ensemble's process)."),
    force: bool = typer.Option(False, "--force", help="Adopt a study directory made by another spec."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train and evaluate every run not yet done; safe to rerun after any crash."""
    from ..study.execute import run_study
    from ..study.spec import load_spec
    from ..rundir import StudyDir

    s = load_spec(spec)
    s.run_configs()  # validates every run and refuses collisions before anything starts
    StudyDir(out).claim(s, force=force)
    results = run_study(s, out, executor=executor, workers=workers, only=only, max_attempts=max_attempts,
                        retry_failed=retry_failed, address=address, threads=threads, ensemble=ensemble, tf32=tf32,
                        eval_workers=eval_workers, progress=progress, echo=console.print)
    if report_outcome(s.name, results, out):
        raise typer.Exit(1)


def report_outcome(name: str, results: list[dict], out) -> bool:
    """Print the study's counts per run and each failed run with its reason; True when some run failed."""
    from ..study.execute import summarize

    groups = summarize(results)
    console.print(f"study {name}: {len(groups['done'])} done, {len(groups['skipped'])} done before, "
                  f"{len(groups['failed'])} failed, {len(groups['busy'])} held by another process; results in {out}")
    for r in groups["failed"]:
        why = (r.get("reason") or "").splitlines()[0] if r.get("reason") else "unknown reason"
        fix = ("transient: run the same command again" if r.get("transient")
               else "after fixing the cause, rerun with --retry-failed")
        console.print(f"  run {r['model_num']} failed: {why} ({fix})")
    return bool(groups["failed"])


@app.command()
def status(study_dir: Path = typer.Argument(..., help="Study directory.")) -> None:
    """Per run and stage: done, running, failed (with the reason) or missing."""
    from ..rundir import StudyDir

    study = StudyDir(study_dir)
    s = study.spec()
    rows = [study.stage_status(s, n) for n in range(len(s))]
    counts: dict[str, dict[str, int]] = {"train": {}, "evaluate": {}}
    for r in rows:
        for stage in counts:
            counts[stage][r[stage]] = counts[stage].get(r[stage], 0) + 1
    console.print(f"study {s.name}: {len(rows)} runs")
    for stage, c in counts.items():
        console.print(f"  {stage}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    table = Table()
    for col in ("model_num", "train", "evaluate", "evaluations", "attempts", "reason"):
        table.add_column(col, overflow="fold")
    interesting = [r for r in rows if r["train"] != "done" or r["evaluate"] != "done"]
    for r in interesting[:50]:
        table.add_row(str(r["model_num"]), r["train"], r["evaluate"], r["evaluations_done"], str(r["attempts"]),
                      (r["reason"] or "").splitlines()[0] if r["reason"] else "")
    if interesting:
        console.print(table)


@app.command()
def collect(
    study_dir: Path = typer.Argument(..., help="Study directory."),
    output: Path = typer.Option(..., "-o", "--output", help="results.parquet (or .csv)"),
) -> None:
    """One row per run x representation x score key, the config flattened into columns."""
    from ..study.collect import collect as run_collect, write_table

    table = run_collect(study_dir)
    write_table(table, output)
    console.print(f"wrote {len(table)} rows from {table['model_num'].nunique() if len(table) else 0} runs to {output}")
