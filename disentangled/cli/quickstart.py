"""``disentangled quickstart``: the README's main job, on the embedded defaults, offline.

Runs the ``quickstart`` study (four models on dSprites) end to end: prepares the data,
draws its factors, trains, evaluates, collects the results table and writes the report.
The official dSprites file is used when it is in the data directory; otherwise the
procedural source, and the results say which.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .common import console


def quickstart(
    out: Path = typer.Option(Path("out"), "--out", help="Folder for everything the main job makes."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel runs (default: the number of cores)."),
    executor: str = typer.Option("local", "--executor", help="inline | local | ray"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train, evaluate and report the quickstart study (within ten minutes on 2 cores)."""
    from ..analysis.report import write_report
    from ..data import get
    from ..data.dsprites import OFFICIAL_HDF5, OFFICIAL_NPZ
    from ..data.paths import find_file
    from ..data.prepare import prepare
    from ..study.collect import collect, write_table
    from ..study.execute import run_study, summarize
    from ..study.spec import from_mapping, load_spec
    from ..rundir import StudyDir
    from ..viz import factor_variations, save_labelled_grid

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    spec = load_spec("quickstart")
    source = "official" if find_file([OFFICIAL_NPZ, OFFICIAL_HDF5]) else "procedural"
    if source != spec.base["data"]["source"]:
        raw = spec.to_dict()
        raw["base"]["data"]["source"] = source
        spec = from_mapping(raw)
    _, message = prepare("dsprites_full", source=source, progress=progress)
    console.print(message)
    data = get("dsprites_full", source=source)
    images, labels, _ = factor_variations(data, rng=np.random.default_rng(0))
    factors_png = save_labelled_grid(images, labels, out / "dsprites_factors.png", title=f"dsprites_full ({source})")

    study_dir = out / "study"
    StudyDir(study_dir).claim(spec)
    results = run_study(spec, study_dir, executor=executor, workers=workers, progress=progress, echo=console.print)
    failed = summarize(results)["failed"]
    table = collect(study_dir)
    table_path = write_table(table, out / "results.parquet")
    made = [("factors of the data", factors_png), ("study", study_dir), ("results table", table_path)]
    made.append(("report", write_report(table_path, out / "report", study_dir=study_dir)))
    console.print(f"main job done in {time.perf_counter() - start:.0f} s ({len(spec)} models, {source} dSprites):")
    for what, path in made:
        console.print(f"  {what}: {path}")
    if failed:
        console.print(f"[red]{len(failed)} runs failed; see `disentangled study status {study_dir}`[/red]")
        raise typer.Exit(1)

