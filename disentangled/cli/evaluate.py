"""``disentangled evaluate``: score a trained run, saved codes, or a TorchScript encoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ParameterError, check_choice
from .common import DataDirOption, SourceOption, dataset_options


def evaluate(
    run_dirs: Optional[List[Path]] = typer.Argument(
        None, help="A finished training run directory (with --udr: several runs, or one study directory).", show_default=False,
        metavar="RUN_DIR"
    ),
    representation: str = typer.Option("mean", "--representation", help="mean or sampled (with RUN_DIR)."),
    metric: Optional[List[str]] = typer.Option(
        None, "--metric", help="A metric to compute (repeatable); default: the study's nine (for --codes: the array-level ones)."
    ),
    codes: Optional[Path] = typer.Option(
        None, "--codes", help="An .npz with 'codes' [N, D], 'factors' [N, K] and optionally 'codes_test', 'factors_test'."
    ),
    fmt: str = typer.Option("project", "--format", help="Keys of the printed scores: project or dlib (the reference's)."),
    encoder: Optional[Path] = typer.Option(None, "--encoder", help="A TorchScript encoder (output: codes, or (mean, logvar))."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Data set for --encoder."),
    source: Optional[str] = SourceOption,
    data_dir: Optional[Path] = DataDirOption,
    seed_per_model: bool = typer.Option(
        False, "--seed-per-model", help="Seed the evaluation from the run's seed (default: the study's seeds, the same for every model)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="With --encoder: derive the seeds from this number instead of the study's."),
    num_eval: int = typer.Option(1, "--num-eval", help="With RUN_DIR: compute every metric this many times, each with its own seed."),
    sample_size: Optional[List[str]] = typer.Option(
        None, "--sample-size", help="With RUN_DIR: METRIC=N[,N...] computes METRIC at each num_train N, each its own result "
        "(repeatable)."
    ),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="With RUN_DIR: study (default), per_model, or jmlr (the JMLR pipeline's stream; needs --random-seed)."
    ),
    random_seed: Optional[int] = typer.Option(
        None, "--random-seed", help="With --seeds jmlr: the pipeline's random_seed the run was trained with."
    ),
    force: bool = typer.Option(False, "--force", help="Recompute metrics that are already done."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Worker processes for the per-factor classifiers (default: all cores for large fits)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Also write the printed JSON to this file."),
    device: str = typer.Option("cpu", "--device", help="Where RUN_DIR's encoder runs: cpu, cuda or cuda:N (codes agree to float32 rounding)."),
    udr: bool = typer.Option(
        False, "--udr", help="UDR: score RUN_DIR RUN_DIR ... against each other, or every seed group of one STUDY_DIR "
        "(written into each run's metrics/mean/udr.json)."
    ),
    udr_correlation: str = typer.Option("lasso", "--udr-correlation", help="With --udr: lasso or spearman."),
    validation: bool = typer.Option(
        False, "--validation", help="Validation scores of RUN_DIR on a labelled set (--metric: mig, dci, sap, unified; "
        "default the first three), written to metrics/<representation>/validation/ (docs/semi.md)."
    ),
    validation_draw: str = typer.Option("training", "--validation-draw", help="With --validation: training (the reference's) or disjoint."),
    labels: Optional[int] = typer.Option(
        None, "--labels", help="With --validation: the number of labels (default: the run's own; 1000 for a run without labels, "
        "drawn with the perfect labeller and train_percentage 0.9)."
    ),
) -> None:
    """Score representations with the study's metrics.

    RUN_DIR: writes RUN_DIR/metrics/<representation>/<metric>.json, skipping metrics already
    done; --num-eval and --sample-size repeat and sweep them (files <metric>.n<N>.r<k>.json,
    printed per file). --codes: scores saved arrays and prints JSON. --encoder with --dataset: scores a
    TorchScript encoder on a data set and prints JSON. --udr RUN_DIR RUN_DIR ...: the UDR
    of finished runs against each other (JSON); --udr STUDY_DIR: the UDR of each group of
    the study's runs that differ only in their seed, one score per run in the study's table.
    """
    from .. import evaluate as ev
    from ..io import write_json_atomic

    if validation:
        from ..train.validation import DEFAULT_FORMS, validate_run

        if not run_dirs or len(run_dirs) != 1 or codes is not None or encoder is not None or udr:
            raise ParameterError("--validation takes one RUN_DIR, without --codes, --encoder or --udr")
        records = validate_run(run_dirs[0], representation=representation, forms=metric or DEFAULT_FORMS,
                               draw=validation_draw, supervision={"num_labelled_samples": labels or 1000},
                               num_labelled_samples=labels, device=device, force=force)
        result = _flatten(records, "project", ev)
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        if output is not None:
            write_json_atomic(output, result)
        return
    if udr:
        if codes is not None or encoder is not None or metric:
            raise ParameterError("--udr takes run directories (or one study directory) only, not --codes, --encoder or --metric")
        result = _udr(run_dirs or [], udr_correlation, fmt, force, device)
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        if output is not None:
            write_json_atomic(output, result)
        return
    if run_dirs and len(run_dirs) > 1:
        raise ParameterError(f"give one RUN_DIR (or --udr to score several against each other), got {len(run_dirs)}")
    run_dir = run_dirs[0] if run_dirs else None
    given = [x is not None for x in (run_dir, codes, encoder)]
    if sum(given) != 1:
        raise ParameterError("give exactly one of RUN_DIR, --codes FILE.npz, or --encoder FILE.pt (with --dataset)")
    check_choice("--format", fmt, ("project", "dlib"))
    if encoder is None and dataset is not None:
        raise ParameterError("--dataset goes with --encoder")

    def echo(line: str) -> None:
        typer.echo(line, err=True)

    if codes is not None:
        arrays = ev.load_codes(codes)
        result: dict = ev.score_codes(*arrays, metrics=metric, fmt=fmt, n_jobs=jobs)
    elif encoder is not None:
        if dataset is None:
            raise ParameterError("--encoder needs --dataset NAME (see `disentangled data list`)")
        records = ev.evaluate_encoder(
            encoder, dataset, dataset_options=dataset_options(source, data_dir), metrics=metric, seed=seed, n_jobs=jobs, echo=echo
        )
        result = _flatten(records, fmt, ev)
    else:
        if seeds is not None and seed_per_model and seeds != "per_model":
            raise ParameterError(f"--seed-per-model contradicts --seeds {seeds}; give one of them")
        scheme = seeds or ("per_model" if seed_per_model else "study")
        if scheme == "jmlr" and random_seed is None:
            raise ParameterError("--seeds jmlr needs --random-seed R, the JMLR pipeline's seed the run was trained with")
        protocol = ev.EvaluationProtocol(num_eval=num_eval, sample_sizes=_sample_sizes(sample_size or []), seeds=scheme)
        names = list(metric or []) or None
        if names is not None:
            unknown = [m for m in protocol.sample_sizes if m not in names]
            if unknown:
                raise ParameterError(f"--sample-size names {', '.join(unknown)}, which --metric does not ask for")
        records = ev.evaluate_run(
            run_dir,
            representation=representation,
            metrics=names,
            protocol=protocol,
            random_seed=random_seed,
            force=force,
            n_jobs=jobs,
            echo=echo,
            device=device,
        )
        repeated = protocol.num_eval > 1 or bool(protocol.sample_sizes)
        result = {stem: _flatten({stem: r}, fmt, ev) for stem, r in records.items()} if repeated else _flatten(records, fmt, ev)
    text = json.dumps(result, indent=2, sort_keys=True)
    typer.echo(text)
    if output is not None:
        write_json_atomic(output, result)


def _sample_sizes(values: list[str]) -> dict[str, list[int]]:
    """``["mig=100,1000"]`` -> ``{"mig": [100, 1000]}``."""
    out: dict[str, list[int]] = {}
    for value in values:
        name, _, sizes = value.partition("=")
        try:
            out.setdefault(name.strip(), []).extend(int(n) for n in sizes.split(","))
        except ValueError:
            raise ParameterError(f"--sample-size must look like METRIC=N[,N...] (for example mig=1000,10000), got {value!r}") from None
        if not name.strip() or not sizes:
            raise ParameterError(f"--sample-size must look like METRIC=N[,N...] (for example mig=1000,10000), got {value!r}")
    return out


def _udr(paths: list[Path], correlation: str, fmt: str, force: bool, device: str) -> dict:
    from .. import udr as udr_runs

    settings = {"correlation_matrix": correlation}
    if len(paths) == 1 and udr_runs.is_study(paths[0]):
        groups = udr_runs.udr_of_study(paths[0], settings=settings, force=force, device=device,
                                       echo=lambda line: typer.echo(line, err=True))
        return {"study": str(paths[0]), "groups": groups}
    result = udr_runs.udr_of_runs(paths, settings=settings, device=device)
    return udr_runs.to_dlib_format(result) if fmt == "dlib" else result


def _flatten(records: dict, fmt: str, ev) -> dict:
    scores: dict = {}
    for record in records.values():
        scores.update(record["scores"])
    return ev.to_dlib_keys(scores) if fmt == "dlib" else scores
