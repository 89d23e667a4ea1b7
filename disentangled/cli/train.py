"""``disentangled train`` and ``disentangled list``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import console


def train(
    args: Optional[List[str]] = typer.Argument(None, help="[CONFIG.yaml] then key=value overrides, e.g. objective.name=beta_tc_vae objective.beta=6 train.steps=500"),
    out: Path = typer.Option(..., "--out", help="Run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the unfinished run in --out from its last checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when available, else the CPU)."),
) -> None:
    """Train one model; the run directory explains itself (config, log, checkpoints, results)."""
    from ..config import load
    from ..train import train as run_train
    from ..train.core import device_name, training_device

    args = list(args or [])
    config_file = args.pop(0) if args and "=" not in args[0] else None
    config = load(config_file, args)
    where = device_name(training_device(device))
    console.print(f"run {config.run_id}: {config.objective} on {config.data.name} ({config.data.source}), "
                  f"{config.train.steps} steps on {where} -> {out}")
    results = run_train(config, out, resume=resume, progress=progress, device=where)
    shown = {k: round(v, 4) for k, v in results.items() if isinstance(v, float)}
    console.print(f"done: {shown}")


def list_(what: str = typer.Argument(..., help="objectives | architectures | datasets")) -> None:
    """List the registered objectives (with hyperparameter defaults), architectures or data sets."""
    from dataclasses import fields

    from ..data import DATASETS
    from ..data.base import close_matches
    from ..models import ARCHITECTURES, OBJECTIVES

    if what == "objectives":
        for name, cls in OBJECTIVES.items():
            obj = cls()
            params = ", ".join(f"{f.name}={getattr(obj, f.name)}" for f in fields(obj)
                               if isinstance(getattr(obj, f.name), (int, float, str)))
            console.print(f"{name}: {params}")
    elif what == "architectures":
        for name, (enc, dec) in ARCHITECTURES.items():
            console.print(f"{name}: {enc.__name__} / {dec.__name__}")
    elif what == "datasets":
        for name in DATASETS:
            console.print(name)
    else:
        choices = ["objectives", "architectures", "datasets"]
        raise ValueError(f"list: unknown {what!r}; choose one of {choices}." + close_matches(what, choices))
