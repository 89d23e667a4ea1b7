"""Projected time of a whole study on one machine: training, encoding and the metrics.

Three measurements, all from the machine the projection is for:

* training throughput (model-steps per second at the best ensemble size), from the JSON
  of ``benchmarks/ensemble.py --json``;
* the CPU time of the metric suite for one representation of one model, encoding left
  out, from the JSON of ``benchmarks/metrics.py --skip-reference --jobs 1 --threads 1
  --output`` (the cheap linear representation, one core, as a study evaluates each run:
  ``n_jobs=1``, one run per worker);
* the encoding rate of the study's conv encoder on ``--device`` (images per second at the
  evaluation batch size, observations moved from host memory), measured here.

The study (a preset or spec file) gives the number of runs, their training steps and the
representations each run is scored on; ``--images`` is how many distinct images one run
encodes for the suite (691,852 at study sizes, counted by ``benchmarks/metrics.py
--encoding``; the mean and sampled representations share them: the encoder's mean and
log-variance are encoded once and cached). Training and encoding share the GPU; the metrics
run on the host's cores (``--cores``) beside them. Printed: each part in hours, the total
when the metrics overlap the GPU work (as ``study run`` does on a GPU with the local or
Ray executor: the ensemble process trains the next ensemble while ``--eval-workers``
processes score the trained members) and when nothing overlaps, and the paper's budget (2.52 P100 GPU-years; 1% of it is 220.8 hours).

    .venv/bin/python benchmarks/project.py --ensemble out/ensemble_cuda.json --metrics out/metrics.json --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PAPER_GPU_HOURS = 2.52 * 365.25 * 24  # Locatello et al. 2019, section 4: 2.52 GPU-years on P100s
IMAGES_PER_RUN = 691_852  # benchmarks/metrics.py --encoding, study sizes (docs/benchmarks.md), for both representations


def encoding_rate(device: str, images: int, channels: int = 1) -> float:
    """Images per second through the conv encoder of the study, as ``Representation`` encodes them."""
    import numpy as np
    import torch

    from disentangled import config as cfg
    from disentangled.train.core import build
    from disentangled.train.represent import Representation

    config = cfg.load(None, ["data.name=dummy_data"])
    _, model = build(config)
    rep = Representation(model.eval(), "mean", device=device)
    obs = np.random.default_rng(0).random((images, channels, 64, 64), dtype=np.float32)
    rep(obs[: rep.batch_size])  # warm-up: kernels chosen, memory allocated
    if rep.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    rep(obs)
    return images / (time.perf_counter() - start)


def study_shape(preset: str) -> tuple[int, int, int]:
    """(runs, total training steps, representations per run) of a study preset or spec file."""
    from disentangled.study.spec import load_spec

    spec = load_spec(preset)
    steps = sum(spec.run_config(n).train.steps for n in range(len(spec)))
    return len(spec), steps, len(spec.evaluation.representations)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", type=Path, required=True, help="JSON of benchmarks/ensemble.py --json")
    ap.add_argument("--metrics", type=Path, default=None,
                    help="JSON of benchmarks/metrics.py --skip-reference --jobs 1 --threads 1 --output")
    ap.add_argument("--metrics-seconds", type=float, default=None,
                    help="instead of --metrics: CPU seconds of the suite for one representation")
    ap.add_argument("--device", default="cpu", help="where to time the encoder (cpu, cuda)")
    ap.add_argument("--encode-images", type=int, default=None, help="images to time the encoder on (default: 65,536 on a GPU, 4,096 on the CPU)")
    ap.add_argument("--images", type=int, default=IMAGES_PER_RUN, help="distinct images one run encodes for the suite (both representations)")
    ap.add_argument("--study", default="unsupervised_study_v1", help="study preset or spec file")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="host cores scoring runs beside the GPU")
    ap.add_argument("--json", type=Path, default=None, help="also write the projection here")
    args = ap.parse_args(argv)

    rows = json.loads(args.ensemble.read_text())["rows"]
    good = [r for r in rows if r.get("kind") == "ensemble" and "error" not in r]
    if not good:
        sys.exit(f"--ensemble {args.ensemble}: no successful ensemble measurement in it")
    best = max(good, key=lambda r: r["model_steps_per_s"])
    if args.metrics is not None:
        suite_s = float(json.loads(args.metrics.read_text())["ours_total_s"])
    elif args.metrics_seconds is not None:
        suite_s = args.metrics_seconds
    else:
        sys.exit("give --metrics FILE.json (benchmarks/metrics.py --output) or --metrics-seconds S")
    n_images = args.encode_images or (65_536 if args.device.startswith("cuda") else 4_096)
    rate = encoding_rate(args.device, n_images)
    runs, steps, reps = study_shape(args.study)

    train_h = steps / best["model_steps_per_s"] / 3600
    encode_h = runs * args.images / rate / 3600  # once per run: both representations are served from it
    metrics_core_h = runs * reps * suite_s / 3600
    metrics_h = metrics_core_h / max(args.cores, 1)
    overlapped = max(train_h + encode_h, metrics_h)
    sequential = train_h + encode_h + metrics_h
    budget = PAPER_GPU_HOURS / 100
    print(f"# projection of {args.study}: {runs:,} runs, {steps:,} training steps, {reps} representation(s) per run")
    print("| part | measured | hours |")
    print("|---|---|---:|")
    print(f"| training (device) | {best['model_steps_per_s']:,.1f} model-steps/s at N = {best['n']} | {train_h:,.1f} |")
    print(f"| encoding (device) | {rate:,.0f} images/s on {args.device}, {args.images:,} images per run | {encode_h:,.1f} |")
    print(f"| metrics (host CPU) | {suite_s:.1f} core-s per representation, {args.cores} cores | {metrics_h:,.1f} ({metrics_core_h:,.0f} core-hours) |")
    print(f"| **total, metrics beside the device work** | | **{overlapped:,.1f}** |")
    print(f"| total, one thing after another | | {sequential:,.1f} |")
    print(f"| the paper's 2.52 P100 GPU-years | | {PAPER_GPU_HOURS:,.0f} (1%: {budget:,.1f}) |")
    print(f"\nshare of the paper's compute: {overlapped / PAPER_GPU_HOURS:.2%} (overlapped), {sequential / PAPER_GPU_HOURS:.2%} (sequential)")
    if args.json:
        args.json.write_text(json.dumps({
            "study": args.study, "runs": runs, "training_steps": steps, "representations": reps,
            "model_steps_per_s": best["model_steps_per_s"], "ensemble_n": best["n"], "encode_images_per_s": rate,
            "metrics_seconds_per_representation": suite_s, "cores": args.cores, "hours": {
                "training": train_h, "encoding": encode_h, "metrics_wall": metrics_h, "metrics_core": metrics_core_h,
                "overlapped": overlapped, "sequential": sequential}, "budget_hours": budget}, indent=2))


if __name__ == "__main__":
    main()
