"""``disentangled report``: the paper's figures for a results table, as a static HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import MissingFileError, check_choice, check_int
from .common import console


def report(
    table: Path = typer.Argument(..., help="The results table (results.parquet or .csv from `disentangled study collect`)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write index.html, figures/ and the CSV statistics into."),
    study_dir: Optional[Path] = typer.Option(
        None, "--study-dir", help="The study folder: link every run's pictures (default: the table's folder if it holds runs/)."
    ),
    representation: str = typer.Option("mean", "--representation", help="Representation whose scores the metric analyses use (mean or sampled)."),
    visualize_missing: bool = typer.Option(
        True, "--visualize-missing/--no-visualize-missing", help="Draw quick pictures for finished runs that have none (at most --max-visualize runs)."
    ),
    max_visualize: int = typer.Option(50, "--max-visualize", help="Draw missing pictures only when at most this many runs lack them."),
    draws: int = typer.Option(10_000, "--draws", help="Draws of the Table 1 procedure per cell."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Table 1 draws."),
) -> None:
    """Write the report: the paper's analyses of whatever the table holds, each a figure with a one-line reading.

    Open OUTPUT/index.html in a browser; the statistics behind the figures are CSV files beside it.
    """
    from ..analysis.report import write_report

    check_choice("--representation", representation, ("mean", "sampled"))
    check_int("--draws", draws, low=1)
    from ..rundir import StudyDir

    if study_dir is None and StudyDir(table.parent).runs_dir.is_dir():
        study_dir = table.parent
    elif study_dir is not None and not StudyDir(study_dir).runs_dir.is_dir():
        raise MissingFileError(f"--study-dir {study_dir}: no {StudyDir(study_dir).runs_dir.name}/ folder there")
    index = write_report(
        table, output, study_dir=study_dir, representation=representation,
        visualize_missing=visualize_missing, max_visualize=max_visualize, num_draws=draws, seed=seed,
    )
    console.print(f"wrote {index}")
