"""``disentangled data``: list, prepare, show and download the ground-truth data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .common import DataDirOption, SourceOption, console, dataset_options
from ..errors import ParameterError, check_int

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
    pairs: bool = typer.Option(False, "--pairs", help="Draw pairs of observations (weak supervision) instead: OUTPUT as PNG, "
                               "with animation.gif and the pairs' factors (JSON) beside it."),
    k: int = typer.Option(1, "--k", help="With --pairs: factors a pair changes, in [1, d - 1], or -1 (drawn per pair)."),
    sampler: str = typer.Option("dlib", "--sampler", help="With --pairs: dlib (the reference's dynamics) or paper (Section 5)."),
    num_pairs: int = typer.Option(10, "--num-pairs", help="With --pairs: how many pairs."),
) -> None:
    """One row per latent factor, varying only that factor from a random base (or, with --pairs, pairs side by side)."""
    from ..data import get
    from ..viz import factor_variations, save_labelled_grid

    if num_values < 2:
        raise ParameterError(f"--num-values must be at least 2, got {num_values}")
    data = get(name, **dataset_options(source, data_dir))
    if pairs:
        from ..data.pairs import check_pairs
        from ..viz.pairs import pair_pictures

        check_pairs(k, sampler, data, key="--pairs", k_key="--k", sampler_key="--sampler")
        check_int("--num-pairs", num_pairs, low=1)
        written = pair_pictures(data, output.parent, sampler=sampler, k=k, seed=seed, num_pairs=num_pairs, name=output.stem)
        console.print("wrote " + ", ".join(str(p) for p in written))
        return
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
