"""``disentangled quickstart``: the README's main job, on the embedded defaults, offline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from .common import console


def quickstart(
    out: Path = typer.Option(Path("out"), "--out", help="Folder for everything the main job makes."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data directory (default: $DISENTANGLED_DATA or the user cache)."),
) -> None:
    """Prepare the offline dSprites and draw its factors (grows into the quickstart study)."""
    from ..data import get
    from ..data.dsprites import OFFICIAL_NPZ
    from ..data.paths import find_file
    from ..data.prepare import prepare
    from ..viz import factor_variations, save_labelled_grid

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    source = "official" if find_file([OFFICIAL_NPZ], data_dir) else "procedural"
    options = {"source": source} if data_dir is None else {"source": source, "data_dir": data_dir}
    _, message = prepare("dsprites_full", **options)
    console.print(message)
    made = []
    for name in ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites"):
        data = get(name, **options)
        images, labels, _ = factor_variations(data, rng=np.random.default_rng(0))
        made.append(save_labelled_grid(images, labels, out / f"{name}_factors.png", title=f"{name} ({source})"))
    console.print(f"main job done in {time.perf_counter() - start:.0f} s; pictures of the factors:")
    for path in made:
        console.print(f"  {path}")
