"""``disentangled visualize``: reconstructions, samples and latent traversals of a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import console


def visualize(
    run_dir: Path = typer.Argument(..., help="A finished training run directory."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Folder to write (default: RUN_DIR/visualizations)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the observations, the posterior and the prior samples."),
    num_animations: int = typer.Option(5, "--num-animations", help="Base codes traversed (static PNGs and GIFs)."),
    num_frames: int = typer.Option(20, "--num-frames", help="Frames per animated traversal."),
    fps: float = typer.Option(10.0, "--fps", help="Frames per second of the GIFs."),
    num_values: int = typer.Option(11, "--num-values", help="Values per dimension in the static traversals."),
    traversal_range: str = typer.Option(
        "fitted", "--range", help="Static traversal range: fitted (mean +- 2 sd of the encoded data), minmax, fixed ([-2, 2]) or unit ([-1, 1])."
    ),
    animation: Optional[List[str]] = typer.Option(
        None, "--animation", help="Kinds of GIF (repeatable): std_gaussian, fitted_gaussian, fixed_interval, conf_interval, minmax_interval; default all."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redraw even if the pictures exist with the same settings."),
) -> None:
    """Draw a run's reconstructions, prior samples, latent traversals (PNG) and animated traversals (GIF).

    Writes RUN_DIR/visualizations/ (or --output), seeded and atomically, with a manifest.json
    written last; a second call with the same settings does nothing.
    """
    from ..viz.model import visualize as run_visualize

    manifest = run_visualize(
        run_dir,
        output,
        overwrite=overwrite,
        seed=seed,
        num_animations=num_animations,
        num_frames=num_frames,
        fps=fps,
        num_values=num_values,
        traversal_range=traversal_range,
        animations=tuple(animation) if animation else None,
    )
    from ..rundir import RunDir

    out = output if output is not None else RunDir(run_dir).pictures
    kl = manifest["latent"]["kl"]
    active = sum(1 for v in kl if v > 0.1)
    console.print(f"{len(manifest['files'])} pictures in {out} ({active} of {len(kl)} latent dimensions with KL > 0.1 nats)")
