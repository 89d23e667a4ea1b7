"""``disentangled data``: list, prepare, show and download the ground-truth data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .common import DataDirOption, SourceOption, console, dataset_options
from ..errors import ParameterError

app = typer.Typer(help="Ground-truth data sets: list, prepare, show, download.", no_args_is_help=True)


@app.command("list")
def list_(
    source: Optional[str] = SourceOption,
    data_dir: Optional[Path] = DataDirOption,
) -> None:
    """Every registered data set: factors with sizes, observation shape, ready or not and why."""
    from ..data import DATASETS, get, options_of

    table = Table(title="data sets")
    for col in ("name", "latent factors (sizes)", "observation", "ready", "why"):
        table.add_column(col, overflow="fold")
    for name in DATASETS:
        allowed = options_of(name)
        opts = {k: v for k, v in dataset_options(source, data_dir).items() if k in allowed}
        data = get(name, **opts)
        ready, why = data.readiness()
        factors = ", ".join(f"{n} {s}" for n, s in zip(data.factor_names, data.factor_sizes))
        shape = "x".join(str(s) for s in data.observation_shape)
        table.add_row(name, factors, shape, "yes" if ready else "no", why)
    console.print(table)


@app.command()
def prepare(
    name: str = typer.Argument(..., help="Data set name (see `disentangled data list`)."),
    source: Optional[str] = SourceOption,
    data_dir: Optional[Path] = DataDirOption,
) -> None:
    """Generate (procedural) or check (official) a data set, with a progress bar; print where it is."""
    from ..data.prepare import prepare as run_prepare

    _, message = run_prepare(name, **dataset_options(source, data_dir))
    console.print(message)


@app.command()
def show(
    name: str = typer.Argument(..., help="Data set name."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG file to write."),
    source: Optional[str] = SourceOption,
    data_dir: Optional[Path] = DataDirOption,
    seed: int = typer.Option(0, help="Seed of the base factors and of the variants' noise."),
    num_values: int = typer.Option(10, help="Images per row (values of the factor, evenly spaced)."),
) -> None:
    """One row per latent factor, varying only that factor from a random base."""
    from ..data import get
    from ..viz import factor_variations, save_labelled_grid

    if num_values < 2:
        raise ParameterError(f"--num-values must be at least 2, got {num_values}")
    data = get(name, **dataset_options(source, data_dir))
    images, labels, _ = factor_variations(data, rng=np.random.default_rng(seed), num_values=num_values)
    title = f"{name} ({data.describe()['source']}, seed {seed})"
    save_labelled_grid(images, labels, output, title=title)
    console.print(f"wrote {output}")


@app.command()
def download(
    name: str = typer.Argument(..., help="Data set name."),
    data_dir: Optional[Path] = DataDirOption,
) -> None:
    """Download the official files (needs internet), verify checksums, place them."""
    from ..data.download import download as run_download

    for path in run_download(name, root=data_dir):
        console.print(f"ready: {path}")
