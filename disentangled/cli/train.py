"""``disentangled train`` and ``disentangled list``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..registry import Registry
from .common import console


def train(
    args: Optional[List[str]] = typer.Argument(None, help="[CONFIG.yaml] then key=value overrides, e.g. objective.name=beta_tc_vae objective.beta=6 train.steps=500"),
    out: Path = typer.Option(..., "--out", help="Run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the unfinished run in --out from its last checkpoint."),
    restart: bool = typer.Option(False, "--restart", help="Train the run in --out again from step 0 (its checkpoints, log and results are deleted)."),
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
    results = run_train(config, out, resume=resume, progress=progress, device=where, restart=restart)
    shown = {k: round(v, 4) for k, v in results.items() if isinstance(v, float)}
    console.print(f"done: {shown}")


def _defaults(settings: dict) -> str:
    # nested settings (FactorVAE's discriminator optimiser) would not fit on the entry's line
    return ", ".join(f"{k}={v}" for k, v in settings.items() if isinstance(v, (int, float, str, list, type(None))))


#: The family of an objective, by what a step of it trains on (its ``batch_kind``).
_FAMILIES = {"images": "unsupervised", "pairs": "weakly supervised", "labelled": "semi-supervised"}


def _objectives() -> list[str]:
    from ..models import ALL_OBJECTIVES

    groups: dict[str, list[str]] = {family: [] for family in _FAMILIES.values()}
    for name in ALL_OBJECTIVES:  # family by family, each in the registry's order
        objective = ALL_OBJECTIVES.build(name)
        family = _FAMILIES[type(objective).batch_kind]
        # None marks a setting of another supervised loss than the default one, not a default of this objective
        settings = {k: v for k, v in objective.hyperparameters().items() if v is not None}
        groups[family].append(f"{name}: {_defaults(settings)} ({family})")
    return [line for lines in groups.values() for line in lines]


def _architectures() -> list[str]:
    from ..models import ARCHITECTURES

    return [f"{name}: {enc.__name__} / {dec.__name__} (options: {', '.join(ARCHITECTURES.options(name))})"
            for name, (enc, dec) in ARCHITECTURES.items()]


def _datasets() -> list[str]:
    from ..data import DATASETS

    return list(DATASETS)


def _metrics() -> list[str]:
    from ..metrics import METRICS, settings_of

    return [f"{name}: {_defaults(settings_of(METRICS.build(name)))}" for name in METRICS]


def _presets() -> list[str]:
    from ..study.spec import PRESETS

    lines = []
    for name in PRESETS:
        spec = PRESETS.build(name)
        lines.append(f"{name}: {len(spec)} runs. {spec.description.splitlines()[0] if spec.description else ''}".rstrip())
    return lines


_LISTINGS = Registry("list", {
    "objectives": _objectives,
    "architectures": _architectures,
    "datasets": _datasets,
    "metrics": _metrics,
    "presets": _presets,
})


def list_(what: str = typer.Argument(..., help=" | ".join(_LISTINGS))) -> None:
    """List a registry: objectives (with their family) and metrics with their defaults, architectures, data sets, study presets."""
    for line in _LISTINGS[what]():
        console.print(line, highlight=False, soft_wrap=True)  # one line per entry, for grep
